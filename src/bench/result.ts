// What one benchmark run reports, the suite summary written by `npm run bench`, and
// `--compare`: the ratio of this run to a saved summary, workload by workload.

import { readFileSync } from "node:fs";
import { InputError, InvalidArgumentError, oneLine } from "../errors.js";
import type { GuestWorkloadResult } from "./guest-workload.js";

export type WorkloadName = "pingpong" | "ring";

/** One throughput run (`--workload`), the fields `--json` prints. */
export interface WorkloadResult {
  workload: WorkloadName;
  kernel: string;
  /** bytes per mapping (pingpong); 0 for the ring's mixed sizes */
  size: number;
  threads: number;
  areas: number;
  seconds: number;
  /** timed map+unmap pairs over all threads */
  pairs: number;
  pairsPerSec: number;
  bouncedBytes: number;
  bouncedBytesPerSec: number;
  /** bouncedBytes over the CPU time the workload's turns took (each thread's, threads added; wall time where unread) */
  bouncedBytesPerCpuSec: number;
  /** the copy limit: the hot path's copies alone, same sizes and walk, per CPU-second as above, in turns with the workload */
  copyBytesPerSec: number;
  /**
   * bounced bytes over the copy limit's, per CPU-second of each thread (wall time where that
   * cannot be read), the median of turns measured alike (≤ 1 within noise; see turnFraction)
   */
  fractionOfCopyLimit: number;
  /** wall time per pair in the timed batches (per thread: threads × elapsed / pairs), the loop included */
  nsPerPair: number;
  /** mean of the individually timed maps / unmaps: every sample, host preemptions and GC pauses included */
  meanMapNs: number;
  meanUnmapNs: number;
  /** medians of the same samples */
  p50MapNs: number;
  p50UnmapNs: number;
  /** of one map+unmap pair, from the same individually timed samples */
  p50Ns: number;
  p99Ns: number;
  /** JS heap growth per pair over a GC-free stretch (≈ 0 when the hot path allocates nothing) */
  heapBytesPerPair: number;
  /** mapping failures during the timed run (the pool was full); 0 for these workloads */
  mapFailures: number;
}

/** A workload's key in a summary: pingpong-64, ring, ring-t2-a2 ... */
export function workloadKey(r: Pick<WorkloadResult, "workload" | "size" | "threads" | "areas">): string {
  let k = r.workload === "pingpong" ? `pingpong-${r.size}` : "ring";
  if (r.threads !== 1 || r.areas !== 1) k += `-t${r.threads}-a${r.areas}`;
  return k;
}

/** The summary of `--suite`: medians of several runs per workload. */
export interface SuiteSummary {
  dmalab: "bench-suite";
  version: 1;
  date: string;
  node: string;
  cpus: number;
  runsPerWorkload: number;
  /** median figures per workload key, plus every run's pairsPerSec */
  workloads: Record<string, WorkloadResult & { runs: number[] }>;
  /** ring-t2-a2 / ring-t1-a1 pairs per second, when both ran */
  ringScaling2x2?: number;
  /**
   * the same ratio for the copy limit measured in those runs: how far the memory system
   * itself scales from 1 to 2 threads doing the ring's copies (the ceiling for the above)
   */
  copyScaling2x2?: number;
  /** trap costs measured from guest loops on the CPU (guest-workload.ts), when Unicorn is installed */
  guest?: GuestWorkloadResult;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The median run of a set (by pairsPerSec), with every run's rate attached. Picking one whole
 * run keeps its figures consistent with each other (its own copy limit and fraction).
 */
export function medianRun(runs: readonly WorkloadResult[]): WorkloadResult & { runs: number[] } {
  if (runs.length === 0) throw new InvalidArgumentError("medianRun of no runs");
  const sorted = [...runs].sort((a, b) => a.pairsPerSec - b.pairsPerSec);
  const mid = sorted[(sorted.length - 1) >> 1]!;
  const m = median(runs.map((r) => r.pairsPerSec));
  return { ...mid, pairsPerSec: m, runs: runs.map((r) => r.pairsPerSec) };
}

/** Loads a summary written by --suite (or one --json result), with a clear error when it is not one. */
export function loadSummary(file: string): Record<string, WorkloadResult> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InputError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, file);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputError(`not JSON: ${oneLine((e as Error).message, 120)}`, file);
  }
  if (typeof v !== "object" || v === null) throw new InputError("not a bench summary (expected an object)", file);
  const o = v as Record<string, unknown>;
  if (o["dmalab"] === "bench-suite" && typeof o["workloads"] === "object" && o["workloads"] !== null) {
    const w = o["workloads"] as Record<string, unknown>;
    const out: Record<string, WorkloadResult> = {};
    for (const [k, r] of Object.entries(w)) {
      if (!isResult(r)) throw new InputError(`workloads.${k}: not a workload result (needs workload and a numeric pairsPerSec)`, file);
      out[k] = r;
    }
    return out;
  }
  if (isResult(o)) return { [workloadKey(o)]: o };
  throw new InputError("not a bench summary: no `dmalab: \"bench-suite\"` header and not a single --json result", file);
}

function isResult(r: unknown): r is WorkloadResult {
  if (typeof r !== "object" || r === null) return false;
  const o = r as Record<string, unknown>;
  return (o["workload"] === "pingpong" || o["workload"] === "ring") && typeof o["pairsPerSec"] === "number";
}

export interface CompareRow {
  key: string;
  /** median pairs per second of this invocation's runs */
  now: number;
  base: number | null;
  /** now / base, null when the baseline lacks the workload */
  ratio: number | null;
  /**
   * the noise band, relative: the largest deviation of one run from its median, among this
   * invocation's repeated runs and the baseline's (a ratio within 1 ± noise is noise)
   */
  noise: number;
  /** runs behind `now` */
  runs: number;
  verdict: "slower" | "faster" | "within noise" | "not in baseline";
}

/** The largest |run - median| / median of a set of runs (0 for fewer than two). */
export function spread(runs: readonly number[]): number {
  if (runs.length < 2) return 0;
  const m = median(runs);
  return m > 0 ? Math.max(...runs.map((r) => Math.abs(r - m) / m)) : 0;
}

type WithRuns = WorkloadResult & { runs?: number[] };

/**
 * This invocation's medians against a saved summary's, with the noise band measured in both
 * (see CompareRow.noise): a regression is a ratio below 1 - noise.
 */
export function compareResults(now: Record<string, WithRuns>, base: Record<string, WithRuns>): CompareRow[] {
  return Object.entries(now).map(([key, r]) => {
    const b = base[key];
    const runs = r.runs ?? [r.pairsPerSec];
    const bp = b ? b.pairsPerSec : null;
    const noise = Math.max(spread(runs), b?.runs ? spread(b.runs) : 0);
    const ratio = bp !== null && bp > 0 ? r.pairsPerSec / bp : null;
    const verdict = ratio === null ? "not in baseline" : ratio < 1 - noise ? "slower" : ratio > 1 + noise ? "faster" : "within noise";
    return { key, now: r.pairsPerSec, base: bp, ratio, noise, runs: runs.length, verdict };
  });
}

export function formatCompare(rows: readonly CompareRow[]): string[] {
  const lines = ["workload              pairs/s now   pairs/s base    ratio   noise band       verdict"];
  for (const r of rows) {
    const ratio = r.ratio === null ? "-" : `${r.ratio.toFixed(3)}x`;
    const band = `±${(r.noise * 100).toFixed(1)}% (${r.runs} runs)`;
    lines.push(
      `${r.key.padEnd(20)} ${fmtRate(r.now).padStart(12)}   ${(r.base === null ? "-" : fmtRate(r.base)).padStart(12)}   ${ratio.padStart(7)}   ${band.padEnd(16)} ${r.verdict}`,
    );
  }
  const slower = rows.filter((r) => r.verdict === "slower").map((r) => r.key);
  lines.push(slower.length > 0 ? `regression outside the noise band: ${slower.join(", ")}` : "no regression outside the noise band");
  return lines;
}

export function fmtRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(3)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

export function fmtBytesRate(x: number): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} GB/s`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(1)} MB/s`;
  return `${x.toFixed(0)} B/s`;
}

/** The human-readable lines of a workload run. */
export function workloadLines(r: WorkloadResult): string[] {
  const what = r.workload === "pingpong" ? `pingpong ${r.size} B` : "ring (256 in flight, 64 B..64 KiB)";
  return [
    `dmalab bench: ${what}, kernel ${r.kernel}, threads:${r.threads} areas:${r.areas} seconds:${r.seconds}`,
    `map+unmap pairs per second: ${Math.round(r.pairsPerSec)} (${fmtRate(r.pairsPerSec)})`,
    `bytes bounced per second: ${Math.round(r.bouncedBytesPerSec)} (${fmtBytesRate(r.bouncedBytesPerSec)})`,
    `per CPU-second (the host's other work left out): bounced ${fmtBytesRate(r.bouncedBytesPerCpuSec)}, copy limit (same copies, no allocator) ${fmtBytesRate(r.copyBytesPerSec)}; fraction of copy limit: ${r.fractionOfCopyLimit.toFixed(3)}`,
    `per pair in the timed batches (loop included): ${r.nsPerPair.toFixed(1)} ns`,
    `timed one by one: pair p50 ${r.p50Ns.toFixed(0)} ns, p99 ${r.p99Ns.toFixed(0)} ns; map p50 ${r.p50MapNs.toFixed(0)} ns, unmap p50 ${r.p50UnmapNs.toFixed(0)} ns`,
    `mean of every sample (host preemptions and GC pauses included): map ${r.meanMapNs.toFixed(1)} ns, unmap ${r.meanUnmapNs.toFixed(1)} ns; heap bytes per pair ${r.heapBytesPerPair.toFixed(3)}`,
  ];
}
