// A boot fault reported like a kernel oops: what faulted (function, the NULL pointer read,
// the faulting address), the call chain that got there, and the earlier boot decisions that
// set it up. Fault errors may carry `function`, `address` and `pointer` fields (the Xen guest
// side's NULL dereference does); the chain comes from the boot's own frames otherwise.

import { hex, type FaultError } from "../errors.js";
import { KernelOops, type OopsContext } from "../kernel/oops.js";
import type { BootRecorder } from "./boot.js";
import type { Machine } from "./machine.js";

export interface BootFault {
  message: string;
  /** the function that faulted, when known */
  function?: string;
  /** the pointer that was NULL, e.g. "io_tlb_default_mem" */
  pointer?: string;
  /** the faulting virtual/physical address, e.g. "0x8" */
  address?: string;
  /** outermost first */
  callChain: string[];
  /** the boot decisions that led here, in order */
  causes: string[];
  /** oops-like text */
  lines: string[];
  /** the kernel's own oops lines, when the fault is a modelled kernel oops */
  oops?: string[];
}

function field(e: object, k: string): unknown {
  return k in e ? (e as Record<string, unknown>)[k] : undefined;
}

export function describeFault(e: FaultError, b: BootRecorder): BootFault {
  const fn = field(e, "function") ?? field(e, "fn");
  const ptr = field(e, "pointer");
  const addr = field(e, "address") ?? field(e, "addr");
  const chainField = field(e, "callChain");
  const chain = [...b.chain];
  if (Array.isArray(chainField)) for (const f of chainField) if (typeof f === "string" && !chain.includes(f)) chain.push(f);
  if (typeof fn === "string" && chain[chain.length - 1] !== fn) chain.push(fn);
  const f: BootFault = { message: e.message.split("\n")[0]!, callChain: chain, causes: [...b.decisions], lines: [] };
  if (typeof fn === "string") f.function = fn;
  if (typeof ptr === "string") f.pointer = ptr;
  if (typeof addr === "number" || typeof addr === "bigint") f.address = hex(addr);
  else if (typeof addr === "string") f.address = addr;
  const lines = f.lines;
  if (e instanceof KernelOops) {
    // the kernel log already has the oops with its call trace: say what it means, once
    lines.push(`fault: kernel oops in ${e.function}: ${e.pointer}->${e.details.member} read with ${e.pointer} == NULL`);
    if (f.causes.length > 0) {
      lines.push("  Earlier decisions:");
      for (const c of f.causes) lines.push(`    ${c}`);
    }
    return f;
  }
  lines.push(`fault: ${f.message}`);
  if (f.pointer || f.address)
    lines.push(`  ${f.pointer ? `NULL ${f.pointer}` : "bad pointer"} dereferenced${f.address ? ` at address ${f.address}` : ""}${f.function ? ` in ${f.function}` : ""}`);
  lines.push("  Call trace (outermost first):");
  for (const c of chain) lines.push(`    ${c}`);
  if (f.causes.length > 0) {
    lines.push("  Earlier decisions:");
    for (const c of f.causes) lines.push(`    ${c}`);
  }
  return f;
}

/** dump_stack_arch_desc's "Hardware name:" of the boards dmalab knows: the DT model, else the board's name. */
function hardwareName(m: Machine): string {
  const n = m.desc.name;
  // QEMU's virt machine calls its DT model "linux,dummy-virt"; the Pi 4's is "Raspberry Pi 4 Model B"
  if (n.startsWith("qemu-virt")) return "linux,dummy-virt (DT)";
  if (n.startsWith("rpi4")) return "Raspberry Pi 4 Model B (DT)";
  return `${n} (DT)`;
}

/** What a kernel oops prints about the machine it happened on. */
export function oopsContext(m: Machine): OopsContext {
  return { release: m.profile.release, hardware: hardwareName(m), smp: m.cpus > 1 };
}
