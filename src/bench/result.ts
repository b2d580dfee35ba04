// What one benchmark run reports, the suite summary written by `npm run bench`, and
// `--compare`: the ratio of this run to a saved summary, workload by workload.

import { readFileSync } from "node:fs";
import { InputError, InvalidArgumentError } from "../errors.js";
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
  /** the copy primitive's rate, same sizes and walk, measured right before */
  copyBytesPerSec: number;
  fractionOfCopyLimit: number;
  avgMapNs: number;
  avgUnmapNs: number;
  /** of one map+unmap pair, from individually timed samples */
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
    throw new InputError(`not JSON: ${(e as Error).message}`, file);
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
  now: number;
  base: number | null;
  /** now / base, null when the baseline lacks the workload */
  ratio: number | null;
}

export function compareResults(now: Record<string, WorkloadResult>, base: Record<string, WorkloadResult>): CompareRow[] {
  return Object.entries(now).map(([key, r]) => {
    const b = base[key];
    const bp = b ? b.pairsPerSec : null;
    return { key, now: r.pairsPerSec, base: bp, ratio: bp !== null && bp > 0 ? r.pairsPerSec / bp : null };
  });
}

export function formatCompare(rows: readonly CompareRow[]): string[] {
  const lines = ["workload              pairs/s now   pairs/s base   ratio"];
  for (const r of rows) {
    const ratio = r.ratio === null ? "   (not in baseline)" : `   ${r.ratio.toFixed(3)}x`;
    lines.push(`${r.key.padEnd(20)} ${fmtRate(r.now).padStart(12)}   ${(r.base === null ? "-" : fmtRate(r.base)).padStart(12)}${ratio}`);
  }
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
    `copy limit (same copies, no allocator): ${fmtBytesRate(r.copyBytesPerSec)}; fraction of copy limit: ${r.fractionOfCopyLimit.toFixed(3)}`,
    `average map ${r.avgMapNs.toFixed(1)} ns, unmap ${r.avgUnmapNs.toFixed(1)} ns; pair p50 ${r.p50Ns.toFixed(0)} ns, p99 ${r.p99Ns.toFixed(0)} ns; heap bytes per pair ${r.heapBytesPerPair.toFixed(3)}`,
  ];
}
