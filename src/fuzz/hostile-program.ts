// Hostile guest programs: straight-line arm64 code that calls every hypercall, every dmalab
// service and every DMA-engine register with arguments drawn from what a buggy or malicious
// driver would pass — plausible pointers just inside and outside RAM, stale DMA addresses,
// zero/huge sizes, bad directions — interleaved with random instruction words.
//
// The program keeps its bearings in callee-saved registers, set from the dmalab guest entry
// ABI: x19 RAM base, x20 RAM size, x21 DMA-engine MMIO base, x22 the engine's device,
// x23 a scratch area 1 MiB into RAM (argument structures), x24 the last call's result.

import { addi, addx, brk, hvc, mov64, movx, strw, strx, svc } from "../cpu/a64.js";
import { mix32, Rng } from "../soak/rng.js";
import { HYPERCALL, XENMEM } from "../xen/hypervisor/public.js";
import { SVC_DMA_MAP, SVC_DMA_SYNC_FOR_CPU, SVC_DMA_SYNC_FOR_DEVICE, SVC_DMA_UNMAP, SVC_EXIT, SVC_WRITE } from "../cpu/traps.js";
import { REG_CTRL, REG_DST, REG_ERROR_ADDR, REG_FILL, REG_LEN, REG_RING_BASE, REG_RING_COUNT, REG_RING_HEAD, REG_RING_TAIL, REG_SRC } from "../dma/engine.js";

/** The soak's generator, with the draws the program builder needs. */
class FuzzRng extends Rng {
  below(n: number): number {
    return this.int(n);
  }
  u64(): bigint {
    return (BigInt(this.next()) << 32n) | BigInt(this.next());
  }
}

/** The seed of program `index` of a campaign: independent of how the campaign is sharded. */
export function programSeed(campaignSeed: number, index: number): number {
  return mix32(mix32(((campaignSeed >>> 0) ^ Math.imul(index + 1, 0x27d4eb2f)) >>> 0));
}

/** What a step of a program exercises (counted per campaign). */
export const STEP_KINDS = ["hypercall", "smccc", "service", "engine", "memory", "random-word"] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface HostileProgram {
  words: number[];
  steps: Record<StepKind, number>;
}

const X_BASE = 19;
const X_SIZE = 20;
const X_ENGINE = 21;
const X_DEV = 22;
const X_SCRATCH = 23;
const X_LAST = 24;
const TMP = 9;
const TMP2 = 10;
const SCRATCH_OFFSET = 0x10_0000;
const SCRATCH_BYTES = 0x2000;

/** An argument: a constant, or a register (or register + offset) of the program's bearings. */
type Arg = { k: "const"; v: bigint } | { k: "reg"; r: number; off: number };

const HYPERCALLS: readonly number[] = [
  HYPERCALL.memory_op, HYPERCALL.memory_op, HYPERCALL.memory_op, HYPERCALL.xen_version, HYPERCALL.console_io,
  HYPERCALL.grant_table_op, HYPERCALL.sched_op, HYPERCALL.event_channel_op, HYPERCALL.physdev_op, HYPERCALL.hvm_op,
  HYPERCALL.vcpu_op, HYPERCALL.multicall, HYPERCALL.platform_op, HYPERCALL.domctl, HYPERCALL.sysctl,
];
const SMCCC_FIDS: readonly bigint[] = [0x8000_0000n, 0x8000_0001n, 0x8400_0000n, 0x8400_0006n, 0x8400_000an, 0xc400_0003n, 0x8400_0002n];
// 0x1004/0x1005 are dma_alloc_coherent/dma_free_coherent; 0x1006 and the rest are unassigned
const SERVICES: readonly number[] = [SVC_WRITE, SVC_DMA_MAP, SVC_DMA_MAP, SVC_DMA_UNMAP, SVC_DMA_SYNC_FOR_CPU, SVC_DMA_SYNC_FOR_DEVICE, 0x1004, 0x1005, 0x1006, 63, 0xffff];
const ENGINE_REGS: readonly number[] = [REG_SRC, REG_DST, REG_LEN, REG_FILL, REG_RING_BASE, REG_RING_COUNT, REG_RING_HEAD, REG_RING_TAIL, REG_ERROR_ADDR, 0x00, 0x04, 0x0c, 0x28, 0x2c];
/** offsets inside the window that name no register */
const ENGINE_HOLES: readonly number[] = [0x50, 0x44, 0xff8];
const SIZES: readonly bigint[] = [0n, 1n, 7n, 64n, 4096n, 4097n, 0x1_0000n, 0x4_0000n, 0x100_0000n, 0xffff_ffffn, 0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n];

function plausible(r: FuzzRng): Arg {
  switch (r.below(12)) {
    case 0:
      return { k: "const", v: 0n };
    case 1:
      return { k: "const", v: r.pick(SIZES) };
    case 2:
      return { k: "const", v: BigInt(r.below(8)) };
    case 3:
      return { k: "const", v: r.u64() };
    case 4:
      return { k: "reg", r: X_SCRATCH, off: r.below(SCRATCH_BYTES / 8) * 8 };
    case 5:
      return { k: "reg", r: X_LAST, off: r.pick([0, 0, 1, 64, 4096]) };
    case 6:
      return { k: "reg", r: X_BASE, off: r.pick([0, 4095, 0x8_0000]) };
    case 7:
      // the first byte past RAM, and the last one
      return { k: "reg", r: X_SIZE, off: 0 };
    case 8:
      return { k: "reg", r: X_DEV, off: r.pick([0, 1, 100]) };
    case 9:
      return { k: "reg", r: X_ENGINE, off: r.pick([0, 8, 0x1000]) };
    case 10:
      return { k: "const", v: 0x7ff0n + BigInt(r.below(8)) }; // DOMID_SELF … DOMID_IDLE neighbourhood
    default:
      return { k: "const", v: BigInt(r.next()) };
  }
}

/** Emits code that puts `a` into register `rd`. */
function load(out: number[], rd: number, a: Arg): void {
  if (a.k === "const") {
    out.push(...mov64(rd, a.v));
    return;
  }
  if (a.r === X_SIZE) {
    // x19 + x20 (one past the end of RAM) or a register of its own
    out.push(addx(rd, X_BASE, X_SIZE));
    return;
  }
  if (a.off < 4096) {
    out.push(addi(rd, a.r, a.off));
    return;
  }
  out.push(...mov64(TMP2, BigInt(a.off)), addx(rd, a.r, TMP2));
}

/** Fills some of the scratch area with plausible structure fields. */
function fillScratch(out: number[], r: FuzzRng): void {
  const n = 1 + r.below(8);
  for (let i = 0; i < n; i++) {
    load(out, TMP, plausible(r));
    out.push(strx(TMP, X_SCRATCH, r.below(64) * 8));
  }
}

function emitHypercall(out: number[], r: FuzzRng): void {
  fillScratch(out, r);
  const nr = r.below(8) === 0 ? r.below(64) : r.pick(HYPERCALLS);
  const cmd: Arg = nr === HYPERCALL.memory_op && r.below(4) !== 0 ? { k: "const", v: BigInt(r.below(Object.keys(XENMEM).length + 3)) | (r.below(4) === 0 ? BigInt(r.below(1 << 20)) << 6n : 0n) } : plausible(r);
  load(out, 0, cmd);
  load(out, 1, r.below(3) === 0 ? plausible(r) : { k: "reg", r: X_SCRATCH, off: 0 });
  for (let i = 2; i <= 4; i++) load(out, i, plausible(r));
  out.push(...mov64(16, BigInt(nr)), hvc(0xea1), movx(X_LAST, 0));
}

function emitSmccc(out: number[], r: FuzzRng): void {
  load(out, 0, r.below(4) === 0 ? { k: "const", v: r.u64() } : { k: "const", v: r.pick(SMCCC_FIDS) });
  load(out, 1, plausible(r));
  out.push(hvc(0), movx(X_LAST, 0));
}

function emitService(out: number[], r: FuzzRng): void {
  const nr = r.below(10) === 0 ? r.next() & 0xffff : r.pick(SERVICES);
  if (nr === SVC_WRITE) {
    load(out, 0, { k: "const", v: BigInt(r.pick([1, 2, 0, 3, -1])) });
    load(out, 1, r.below(2) === 0 ? { k: "reg", r: X_SCRATCH, off: 0 } : plausible(r));
    load(out, 2, r.below(2) === 0 ? { k: "const", v: BigInt(r.below(64)) } : plausible(r));
  } else {
    load(out, 0, r.below(2) === 0 ? { k: "reg", r: X_DEV, off: 0 } : plausible(r));
    load(out, 1, r.below(2) === 0 ? { k: "reg", r: X_SCRATCH, off: r.below(SCRATCH_BYTES / 8) * 8 } : plausible(r));
    load(out, 2, r.below(2) === 0 ? { k: "const", v: r.pick(SIZES) } : plausible(r));
    load(out, 3, r.below(2) === 0 ? { k: "const", v: BigInt(r.below(5)) } : plausible(r));
    load(out, 4, plausible(r));
  }
  out.push(...mov64(8, BigInt(nr)), svc(0), movx(X_LAST, 0));
}

const ENGINE_REGS_64: ReadonlySet<number> = new Set([REG_SRC, REG_DST, REG_RING_BASE, REG_ERROR_ADDR]);

function emitEngine(out: number[], r: FuzzRng): void {
  const n = 1 + r.below(4);
  for (let i = 0; i < n; i++) {
    const reg = r.below(16) === 0 ? r.pick(ENGINE_HOLES) : r.pick(ENGINE_REGS);
    load(out, TMP, r.below(3) === 0 ? { k: "reg", r: X_LAST, off: 0 } : plausible(r));
    // mostly the register's own width; now and then the wrong one (a bus error)
    const wide = ENGINE_REGS_64.has(reg) ? r.below(8) !== 0 : r.below(8) === 0 && reg % 8 === 0;
    out.push(wide ? strx(TMP, X_ENGINE, reg) : strw(TMP, X_ENGINE, reg - (reg % 4)));
  }
  // ring the doorbell: COPY, FILL, RING, RESET, or a command the engine does not know
  load(out, TMP, { k: "const", v: BigInt(r.pick([1, 2, 3, 4, 0, 5, 0xffff_ffff])) });
  out.push(strw(TMP, X_ENGINE, REG_CTRL));
}

function emitMemory(out: number[], r: FuzzRng): void {
  fillScratch(out, r);
}

/**
 * One hostile program: at most `maxSteps` steps, then exit(0) (if it gets that far). With
 * `hypervisor` false (bare metal) HVC is an undefined instruction, so hypercalls are rare.
 * Most programs are well-formed code with bad arguments; some carry one random word, a few
 * many, so that the calls after a random word are reached often enough to matter.
 */
export function hostileProgram(seed: number, hypervisor: boolean, maxSteps = 24): HostileProgram {
  const r = new FuzzRng(seed);
  const steps = Object.fromEntries(STEP_KINDS.map((k) => [k, 0])) as Record<StepKind, number>;
  const out: number[] = [movx(X_BASE, 0), movx(X_SIZE, 1), movx(X_ENGINE, 2), movx(X_DEV, 3), movx(X_LAST, 31)];
  out.push(...mov64(TMP2, BigInt(SCRATCH_OFFSET)), addx(X_SCRATCH, X_BASE, TMP2));
  const n = 1 + r.below(maxSteps);
  const mode = r.below(20);
  const randomAt = mode < 12 ? -1 : mode < 17 ? r.below(n) : -2;
  for (let i = 0; i < n; i++) {
    let kind: StepKind;
    if (randomAt === -2) kind = STEP_KINDS[r.below(STEP_KINDS.length)]!;
    else if (i === randomAt) kind = "random-word";
    else {
      kind = STEP_KINDS[r.below(STEP_KINDS.length - 1)]!;
      if ((kind === "hypercall" || kind === "smccc") && !hypervisor && r.below(10) !== 0) kind = "service";
    }
    steps[kind]++;
    switch (kind) {
      case "hypercall":
        emitHypercall(out, r);
        break;
      case "smccc":
        emitSmccc(out, r);
        break;
      case "service":
        emitService(out, r);
        break;
      case "engine":
        emitEngine(out, r);
        break;
      case "memory":
        emitMemory(out, r);
        break;
      case "random-word":
        out.push(r.next());
        break;
    }
  }
  out.push(...mov64(0, 0n), ...mov64(8, BigInt(SVC_EXIT)), svc(0), brk(0));
  return { words: out, steps };
}
