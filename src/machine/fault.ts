// A boot fault reported like a kernel oops: what faulted (function, the NULL pointer read,
// the faulting address), the call chain that got there, and the earlier boot decisions that
// set it up. Fault errors may carry `function`, `address` and `pointer` fields (the Xen guest
// side's NULL dereference does); the chain comes from the boot's own frames otherwise.

import { hex, type FaultError } from "../errors.js";
import type { BootRecorder } from "./boot.js";

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
