// A kernel oops, as dmalab reports one: the function that faulted, the pointer it read
// through, the faulting virtual address, the call chain, and the earlier decisions that left
// the pointer NULL. arm64 prints such a fault as "Unable to handle kernel NULL pointer
// dereference at virtual address <16 hex digits>"; the first line of `message` keeps that
// wording so the CLI's one-line error names the same facts.

import { FaultError } from "../errors.js";
import { fmt016lx } from "./printk.js";

export interface OopsDetails {
  /** function executing when the fault happened */
  readonly function: string;
  /** the C expression whose pointer was NULL, e.g. "io_tlb_default_mem" */
  readonly pointer: string;
  /** the member read through it, e.g. "end" */
  readonly member: string;
  /** faulting virtual address (NULL + offsetof(member)) */
  readonly address: number;
  /** outermost caller first, faulting function last */
  readonly callChain: readonly string[];
  /** earlier boot decisions that led here, in the order they were taken */
  readonly causes: readonly string[];
}

export class KernelOops extends FaultError {
  readonly details: OopsDetails;
  // the same facts as top-level fields: the machine's boot report (machine/fault.ts) reads them
  readonly function: string;
  readonly pointer: string;
  readonly address: number;
  readonly callChain: readonly string[];
  constructor(d: OopsDetails) {
    super(
      `Unable to handle kernel NULL pointer dereference at virtual address ${fmt016lx(d.address)}` +
        ` in ${d.function}: read of ${d.pointer}->${d.member} with ${d.pointer} == NULL` +
        ` (call chain: ${d.callChain.join(" → ")})`,
    );
    this.details = d;
    this.function = d.function;
    this.pointer = d.pointer;
    this.address = d.address;
    this.callChain = d.callChain;
  }

  /** The oops as a kernel log would print it, plus dmalab's account of the causes. */
  report(withCauses = true): string[] {
    const d = this.details;
    const lines = [
      `Unable to handle kernel NULL pointer dereference at virtual address ${fmt016lx(d.address)}`,
      `Internal error: Oops: 96000004 [#1] PREEMPT SMP`,
      `pc : ${d.function}`,
      `faulting read: ${d.pointer}->${d.member} (offset 0x${d.address.toString(16)}), ${d.pointer} == NULL`,
      `Call trace:`,
      ...[...d.callChain].reverse().map((f) => ` ${f}`),
    ];
    if (withCauses && d.causes.length > 0) {
      lines.push(`caused by:`);
      for (const c of d.causes) lines.push(` - ${c}`);
    }
    return lines;
  }
}
