// `dmalab bench --workload guest`: what a trap costs a guest, measured from guest loops in
// one run on one booted machine, against plain guest instructions measured in the same run.
//
//   loop-plain      N iterations of add/eor/subs/b.ne (the yardstick: seconds per instruction)
//   loop-hypercall  N xen_version(XENVER_version) round trips through HVC #0xEA1 (with Xen)
//   loop-dma-map    N dma_map + dma_unmap pairs of one 4 KiB buffer through SVC #0
//
// A trap's cost is stated in plain-instruction equivalents: (seconds per loop iteration) /
// (seconds per plain instruction). An iteration also runs its own five or eleven plain
// instructions; they are included (they are what a guest loop pays too). Each trap loop is
// measured against the plain loops run just before and after it, in several rounds, and the
// medians are kept, so drift of the host's speed during the run shows in the figures less.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FaultError } from "../errors.js";
import { buildGuestContext, type GuestContext } from "../cpu/guest-context.js";
import { guestDir } from "../cli/commands/guest.js";
import { out, printJson } from "../cli/output.js";

/** The goals of issue "traps that cost microseconds", in plain-instruction equivalents. */
export const HYPERCALL_GOAL = 1500;
export const DMA_PAIR_GOAL = 3000;

export interface GuestWorkloadOptions {
  machine: string;
  kernel: string;
  /** "dom0" (default) measures hypercalls; "none" only the services */
  xen?: string;
  swiotlb?: string;
  /** iterations: plain loop (4 instructions each), hypercalls, map/unmap pairs */
  plainIterations?: number;
  hypercalls?: number;
  pairs?: number;
  /** rounds of (trap loop, plain loop) pairs; the medians are reported */
  rounds?: number;
}

export interface GuestLoopFigure {
  /** loop iterations (hypercalls, pairs) over all rounds */
  n: number;
  seconds: number;
  /** per iteration, median over the rounds */
  usPer: number;
  /** per iteration, in plain-instruction equivalents: median over the rounds */
  insnEquivalents: number;
}

export interface GuestWorkloadResult {
  workload: "guest";
  machine: string;
  kernel: string;
  xen: string;
  rounds: number;
  plain: { insns: number; seconds: number; mips: number };
  hypercall: GuestLoopFigure | null;
  dmaMapUnmap: GuestLoopFigure & { pairsPerSec: number };
  goals: { hypercall: number; dmaMapUnmap: number };
  /** every measured figure is within its goal */
  withinGoals: boolean;
}

function program(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(guestDir(), `${name}.bin`)));
}

interface LoopRun {
  insns: number;
  seconds: number;
}

function runLoop(ctx: GuestContext, image: Uint8Array, n: number): LoopRun {
  const load = ctx.ramBase + 0x80000;
  ctx.cpu.load(load, image);
  const t0 = process.hrtime.bigint();
  const r = ctx.cpu.run({
    entry: load,
    stack: load,
    maxInsns: Number.MAX_SAFE_INTEGER,
    timeLimitMs: 600_000,
    regs: { 0: BigInt(ctx.ramBase), 1: BigInt(ctx.ramSize), 2: BigInt(ctx.engineBase), 3: BigInt(ctx.engineDevice), 4: BigInt(n) },
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.exit.kind !== "exit" || r.exit.code !== 0)
    throw new FaultError(`guest workload: loop ended with ${JSON.stringify(r.exit, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`);
  return { insns: r.insns, seconds };
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};

export function runGuestWorkload(o: GuestWorkloadOptions): GuestWorkloadResult {
  const xen = o.xen ?? "dom0";
  const ctx = buildGuestContext({ machine: o.machine, kernel: o.kernel, xen, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}) });
  try {
    const rounds = Math.max(1, o.rounds ?? 7);
    const plainIters = o.plainIterations ?? 2_500_000;
    const nh = o.hypercalls ?? 10_000;
    const np = o.pairs ?? 5_000;
    const plainImg = program("loop-plain");
    const hcImg = ctx.hypervisor !== undefined ? program("loop-hypercall") : undefined;
    const dmaImg = program("loop-dma-map");
    // first runs translate the code and map the pages: not measured
    runLoop(ctx, plainImg, 1000);
    if (hcImg) runLoop(ctx, hcImg, 100);
    runLoop(ctx, dmaImg, 100);
    // The host's speed drifts (other processes): every trap loop is compared with the plain
    // loops run just before and after it, and the median over rounds is kept.
    let insns = 0;
    let seconds = 0;
    const plain = (): number => {
      const r = runLoop(ctx, plainImg, plainIters);
      insns += r.insns;
      seconds += r.seconds;
      return r.seconds / r.insns;
    };
    const hc: { eq: number; s: number }[] = [];
    const dm: { eq: number; s: number }[] = [];
    let before = plain();
    for (let i = 0; i < rounds; i++) {
      if (hcImg) {
        const r = runLoop(ctx, hcImg, nh);
        const after = plain();
        hc.push({ eq: r.seconds / nh / ((before + after) / 2), s: r.seconds });
        before = after;
      }
      const r = runLoop(ctx, dmaImg, np);
      const after = plain();
      dm.push({ eq: r.seconds / np / ((before + after) / 2), s: r.seconds });
      before = after;
    }
    const fig = (n: number, xs: { eq: number; s: number }[]): GuestLoopFigure => {
      const s = median(xs.map((x) => x.s));
      return { n: n * xs.length, seconds: xs.reduce((a, x) => a + x.s, 0), usPer: (s / n) * 1e6, insnEquivalents: median(xs.map((x) => x.eq)) };
    };
    const hypercall = hcImg ? fig(nh, hc) : null;
    const d = fig(np, dm);
    const dmaMapUnmap = { ...d, pairsPerSec: 1e6 / d.usPer };
    return {
      workload: "guest",
      machine: ctx.boot.machine,
      kernel: ctx.boot.kernel,
      xen,
      rounds,
      plain: { insns, seconds, mips: insns / seconds / 1e6 },
      hypercall,
      dmaMapUnmap,
      goals: { hypercall: HYPERCALL_GOAL, dmaMapUnmap: DMA_PAIR_GOAL },
      withinGoals: (hypercall === null || hypercall.insnEquivalents <= HYPERCALL_GOAL) && dmaMapUnmap.insnEquivalents <= DMA_PAIR_GOAL,
    };
  } finally {
    ctx.cpu.close();
  }
}

/** The text report. */
export function guestWorkloadLines(r: GuestWorkloadResult): string[] {
  const f = (x: number): string => x.toFixed(0);
  const lines = [`guest workload: ${r.machine}, kernel ${r.kernel}, xen ${r.xen}`, `plain guest code: ${r.plain.insns} instructions in ${r.plain.seconds.toFixed(3)} s = ${r.plain.mips.toFixed(1)} MIPS`];
  if (r.hypercall)
    lines.push(
      `hypercall round trip (xen_version): ${r.hypercall.usPer.toFixed(2)} µs = ${f(r.hypercall.insnEquivalents)} plain-instruction equivalents (goal <= ${r.goals.hypercall}) over ${r.hypercall.n} calls`,
    );
  else lines.push("hypercall round trip: not measured (no Xen: --xen none)");
  lines.push(
    `dma_map+dma_unmap pair (4 KiB, services): ${r.dmaMapUnmap.usPer.toFixed(2)} µs = ${f(r.dmaMapUnmap.insnEquivalents)} plain-instruction equivalents (goal <= ${r.goals.dmaMapUnmap}) over ${r.dmaMapUnmap.n} pairs`,
  );
  lines.push(`guest-driven map/unmap pairs per second: ${Math.round(r.dmaMapUnmap.pairsPerSec)}`);
  lines.push(`within goals: ${r.withinGoals ? "yes" : "no"}`);
  return lines;
}

/** `dmalab bench --workload guest [--machine M] [--kernel K] [--json] [--out FILE]`, as dom0. */
export function guestBench(o: { machine: string; kernel: string; swiotlb?: string | undefined; json: boolean; out?: string | undefined }): void {
  const r = runGuestWorkload({ machine: o.machine, kernel: o.kernel, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}) });
  const doc = { schema: "dmalab/bench@1", ...r };
  if (o.out !== undefined) writeFileSync(o.out, JSON.stringify(doc, null, 2) + "\n");
  if (o.json) printJson(doc);
  else for (const l of guestWorkloadLines(r)) out(l);
}
