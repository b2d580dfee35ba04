// How the emulated kernel stops: panic() (kernel/panic.c) and BUG() / BUG_ON()
// (include/asm-generic/bug.h). Either is a fault of the emulated machine: exit code 3.
// A NULL dereference oops is ./oops.ts.

import { FaultError } from "../errors.js";

/** panic(): the emulated kernel stops; the CLI reports it as a fault (exit 3). */
export class KernelPanic extends FaultError {
  constructor(readonly reason: string) {
    super(`Kernel panic - not syncing: ${reason}`);
  }
}

/** BUG(): the emulated kernel oopses ("kernel BUG at <where>!"); a fault (exit 3). */
export class KernelBug extends FaultError {
  constructor(readonly where: string) {
    super(`kernel BUG at ${where}!`);
  }
}
