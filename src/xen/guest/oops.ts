// machine/boot.ts and cli/commands/boot.ts still import KernelOops from here; it lives in
// kernel/oops.ts with the other ways the emulated kernel stops.
export { KernelOops } from "../../kernel/oops.js";
