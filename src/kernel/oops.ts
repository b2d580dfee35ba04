// A kernel oops, as dmalab reports one: the function that faulted, the pointer it read
// through, the faulting virtual address, the call chain, and the earlier decisions that left
// the pointer NULL.
//
// `kernelLog()` prints it as arm64 Linux of the 5.13 era prints a data abort at EL1 on a
// NULL pointer (arch/arm64/mm/fault.c die_kernel_fault / mem_abort_decode / show_pte,
// arch/arm64/kernel/traps.c die, arch/arm64/kernel/process.c __show_regs, lib/dump_stack.c),
// followed by the panic of killing init. The layout and the symbol offsets of the frames the
// 2021 Xen regression went through are those of the oops osstest reported for it on arm64
// (5.12-rc3+ with the swiotlb rework, May 2021); frames that report did not show get stable
// offsets derived from their names, which no real build promises. Register values are the
// ones the fault determines (the NULL base, the device, the mask, the frame pointer); the
// rest print as zero rather than as invented data.

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
  /** the device and mask the faulting call was asked about (x0/x19, x20/x21), when known */
  readonly device?: string;
  readonly mask?: bigint;
}

/** What the log lines need from the machine around the fault. */
export interface OopsContext {
  /** the kernel release as `uname -r` prints it, e.g. "5.13.0-rc1" */
  readonly release: string;
  /** dump_stack_arch_desc: the DT model, e.g. "Raspberry Pi 4 Model B (DT)" */
  readonly hardware: string;
  /** more than one CPU: the panic stops the others */
  readonly smp: boolean;
}

/** A data abort from the current EL, 32-bit instruction, level 0 translation fault (a NULL read). */
export const ESR_NULL_READ = 0x96000004;

/** static inline in include/linux/dma-mapping.h: never a frame of its own */
const INLINE = new Set(["dma_set_mask_and_coherent"]);

/** symbol+offset/size of the frames in the osstest report (5.12-rc3+, arm64 defconfig-like) */
const KNOWN_FRAMES: Readonly<Record<string, readonly [number, number]>> = {
  xen_swiotlb_dma_supported: [0x30, 0xc8],
  dma_supported: [0x38, 0x68],
  dma_set_mask: [0x30, 0x58],
  platform_probe: [0x6c, 0x108],
  really_probe: [0xfc, 0x3c8],
  driver_probe_device: [0x68, 0xe8],
  device_driver_attach: [0x74, 0x98],
  __driver_attach: [0x98, 0xe0],
  bus_for_each_dev: [0x84, 0xd8],
  driver_attach: [0x30, 0x40],
  bus_add_driver: [0x168, 0x228],
  driver_register: [0x64, 0x110],
  __platform_driver_register: [0x34, 0x40],
  do_one_initcall: [0x90, 0x470],
  kernel_init_freeable: [0x3ec, 0x440],
  kernel_init: [0x1c, 0x138],
  ret_from_fork: [0x10, 0x18],
};

/** FNV-1a, for stable made-up values */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** "%pS" of a return address in `fn`: fn+0xoff/0xsize */
export function symbolOffset(fn: string): string {
  const k = KNOWN_FRAMES[fn];
  let off: number;
  let size: number;
  if (k !== undefined) [off, size] = k;
  else {
    const h = fnv(fn);
    // an initcall that only registers a driver is a few instructions long
    size = /_init(_module)?$/.test(fn) ? 0x28 + ((h % 0x20) & ~7) : 0x40 + ((h % 0x400) & ~7);
    off = 4 * (1 + ((h >>> 12) % (size / 4 - 1)));
  }
  return `${fn}+0x${off.toString(16)}/0x${size.toString(16)}`;
}

function hex16(v: bigint): string {
  return BigInt.asUintN(64, v).toString(16).padStart(16, "0");
}

export class KernelOops extends FaultError {
  readonly details: OopsDetails;
  // the same facts as top-level fields: the machine's boot report (machine/fault.ts) reads them
  readonly function: string;
  readonly pointer: string;
  readonly address: number;
  readonly callChain: readonly string[];
  constructor(d: OopsDetails) {
    const from = d.callChain.indexOf("really_probe");
    const shown = from > 0 ? d.callChain.slice(from) : d.callChain;
    super(
      `Unable to handle kernel NULL pointer dereference at virtual address ${fmt016lx(d.address)}` +
        ` in ${d.function}: read of ${d.pointer}->${d.member} with ${d.pointer} == NULL` +
        ` (call chain: ${shown.join(" → ")})`,
    );
    this.details = d;
    this.function = d.function;
    this.pointer = d.pointer;
    this.address = d.address;
    this.callChain = d.callChain;
  }

  /** The frames a Call trace prints, innermost first (inline functions have none). */
  traceFrames(): string[] {
    return [...this.callChain].reverse().filter((f) => !INLINE.has(f));
  }

  /**
   * The oops as the kernel log prints it, then the panic of killing init (the probes run in
   * PID 1). `ctx` defaults to a generic board.
   */
  kernelLog(ctx: OopsContext = { release: "5.13.0-rc1", hardware: "linux,dummy-virt (DT)", smp: true }): string[] {
    const d = this.details;
    const esr = ESR_NULL_READ;
    const frames = this.traceFrames();
    const caller = frames[1];
    const seed = fnv(`${ctx.release} ${ctx.hardware} ${d.device ?? ""} ${frames.join(",")}`);
    // init's stack lies in the vmalloc area (VMAP_STACK), 16-byte aligned
    const sp = 0xffff8000_10000000n + BigInt((seed & 0x3fff0) | 0x30000);
    const dev = 0xffff0000_02000000n + BigInt((fnv(d.device ?? "dev") & 0xffff) << 4);
    const mask = d.mask ?? 0n;
    // what the fault fixes: x1 the NULL base of the load, x0/x19 the device, x20/x21 the mask
    const regs = new Map<number, bigint>([
      [29, sp],
      [21, mask],
      [20, mask],
      [19, dev],
      [1, 0n],
      [0, dev],
    ]);
    const ec = (esr >>> 26) & 0x3f;
    const lines = [
      `Unable to handle kernel NULL pointer dereference at virtual address ${fmt016lx(d.address)}`,
      "Mem abort info:",
      `  ESR = 0x${esr.toString(16).padStart(8, "0")}`,
      `  EC = 0x${ec.toString(16).padStart(2, "0")}: DABT (current EL), IL = ${esr & (1 << 25) ? 32 : 16} bits`,
      `  SET = ${(esr >>> 11) & 3}, FnV = ${(esr >>> 10) & 1}`,
      `  EA = ${(esr >>> 9) & 1}, S1PTW = ${(esr >>> 7) & 1}`,
      "Data abort info:",
      `  ISV = 0, ISS = 0x${(esr & 0x1ffffff).toString(16).padStart(8, "0")}`,
      `  CM = ${(esr >>> 8) & 1}, WnR = ${(esr >>> 6) & 1}`,
      `[${fmt016lx(d.address)}] user address but active_mm is swapper`,
      `Internal error: Oops: ${esr.toString(16)} [#1] PREEMPT SMP`,
      "Modules linked in:",
      `CPU: 0 PID: 1 Comm: swapper/0 Not tainted ${ctx.release} #1`,
      `Hardware name: ${ctx.hardware}`,
      "pstate: 60000005 (nZCv daif -PAN -UAO -TCO BTYPE=--)",
      `pc : ${symbolOffset(d.function)}`,
      `lr : ${caller !== undefined ? symbolOffset(caller) : "0x0"}`,
      `sp : ${hex16(sp)}`,
    ];
    // two registers a line, x29 down to x0 (x30 is the lr above): three a line came after
    // 5.13 ("arm64: Show three registers per line", Apr 2021). The kernel ends each of these
    // lines with a space; dmalab leaves it out
    for (let i = 29; i >= 0; i -= 2) {
      const r = (n: number) => `x${String(n).padEnd(2)}: ${hex16(regs.get(n) ?? 0n)}`;
      lines.push(`${r(i)} ${r(i - 1)}`);
    }
    lines.push("Call trace:", ...frames.map((f) => ` ${symbolOffset(f)}`));
    lines.push(`---[ end trace ${(seed >>> 0).toString(16).padStart(8, "0")}${fnv(String(seed)).toString(16).padStart(8, "0")} ]---`);
    // the oops killed PID 1
    const panic = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b";
    lines.push(panic);
    if (ctx.smp) lines.push("SMP: stopping secondary CPUs");
    lines.push(`---[ end ${panic} ]---`);
    return lines;
  }

  /** The kernel's lines, plus dmalab's account of the causes. */
  report(withCauses = true, ctx?: OopsContext): string[] {
    const lines = this.kernelLog(ctx);
    const d = this.details;
    if (withCauses && d.causes.length > 0) {
      lines.push(`caused by:`);
      for (const c of d.causes) lines.push(` - ${c}`);
    }
    return lines;
  }
}
