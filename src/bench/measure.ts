// Measuring a Stepper: timed batches (the clock is read once per batch, never per pair), the
// individually timed latency sample, and the heap growth per pair.

import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Stepper } from "./workloads.js";
import { noteMissingHostFeature } from "../host-features.js";

export interface TimedRun {
  pairs: number;
  bouncedBytes: number;
  failures: number;
  elapsedNs: number;
}

/** Pairs per timed batch: large enough that the clock read is noise, small enough to stop on time. */
export const BATCH = 1024;

/** Runs batches until `deadlineMs` (performance.now() scale) has passed. */
export function runUntil(st: Stepper, deadlineMs: number, batch = BATCH): TimedRun {
  const p0 = st.pairs;
  const b0 = st.bouncedBytes;
  const f0 = st.failures;
  const t0 = performance.now();
  let t: number;
  do {
    st.run(batch);
    t = performance.now();
  } while (t < deadlineMs);
  return { pairs: st.pairs - p0, bouncedBytes: st.bouncedBytes - b0, failures: st.failures - f0, elapsedNs: (t - t0) * 1e6 };
}

/** Several steppers (logical CPUs multiplexed on one thread), one batch each in turn. */
export function runUntilMany(sts: readonly Stepper[], deadlineMs: number, batch = BATCH): TimedRun {
  const p0 = sts.map((s) => s.pairs);
  const b0 = sts.map((s) => s.bouncedBytes);
  const f0 = sts.map((s) => s.failures);
  const t0 = performance.now();
  let t: number;
  const per = Math.max(16, Math.floor(batch / sts.length));
  do {
    for (const s of sts) s.run(per);
    t = performance.now();
  } while (t < deadlineMs);
  let pairs = 0;
  let bytes = 0;
  let failures = 0;
  sts.forEach((s, i) => {
    pairs += s.pairs - p0[i]!;
    bytes += s.bouncedBytes - b0[i]!;
    failures += s.failures - f0[i]!;
  });
  return { pairs, bouncedBytes: bytes, failures, elapsedNs: (t - t0) * 1e6 };
}

export interface LatencySample {
  mapNs: Float64Array;
  unmapNs: Float64Array;
  pairNs: Float64Array;
  /** the cost of one clock read, subtracted from each edge-to-edge figure */
  clockNs: number;
}

/** Median cost of performance.now(), measured back to back. */
export function clockCost(n = 20_000): number {
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    const b = performance.now();
    d[i] = (b - a) * 1e6;
  }
  d.sort();
  return d[n >> 1]!;
}

export function takeSample(sts: readonly Stepper[], n: number): LatencySample {
  // untimed first: the sampling loop's own first calls run unoptimized (microseconds a pair)
  const w = Math.min(n, 2000);
  const scratch = new Float64Array(w);
  for (const s of sts) s.sample(w, scratch, scratch, scratch, 0);
  const mapNs = new Float64Array(n);
  const unmapNs = new Float64Array(n);
  const pairNs = new Float64Array(n);
  const per = Math.ceil(n / sts.length);
  let off = 0;
  for (const s of sts) {
    const k = Math.min(per, n - off);
    if (k <= 0) break;
    s.sample(k, mapNs, unmapNs, pairNs, off);
    off += k;
  }
  return { mapNs, unmapNs, pairNs, clockNs: clockCost() };
}

/**
 * Figures of the individually timed sample (clock cost subtracted). The medians and p99 say
 * what one operation costs; the means take every sample, so the rare one that spans a host
 * preemption or a GC pause (milliseconds) weighs in: they are the kernel tool's kind of
 * average, and read well above the medians on a busy host.
 */
export interface LatencyFigures {
  meanMapNs: number;
  meanUnmapNs: number;
  p50MapNs: number;
  p50UnmapNs: number;
  p50Ns: number;
  p99Ns: number;
}

/** Quantile q (0..1) of a sorted array, nearest rank. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function latencyFigures(s: LatencySample): LatencyFigures {
  const c = s.clockNs;
  let m = 0;
  let u = 0;
  for (let i = 0; i < s.mapNs.length; i++) {
    m += s.mapNs[i]!;
    u += s.unmapNs[i]!;
  }
  const n = Math.max(1, s.mapNs.length);
  const pairs = Float64Array.from(s.pairNs).sort();
  const maps = Float64Array.from(s.mapNs).sort();
  const unmaps = Float64Array.from(s.unmapNs).sort();
  // a pair spans two clock edges (t0..t2) with one read (t1) inside it
  return {
    meanMapNs: Math.max(0, m / n - c),
    meanUnmapNs: Math.max(0, u / n - c),
    p50MapNs: Math.max(0, quantile(maps, 0.5) - c),
    p50UnmapNs: Math.max(0, quantile(unmaps, 0.5) - c),
    p50Ns: Math.max(0, quantile(pairs, 0.5) - 2 * c),
    p99Ns: Math.max(0, quantile(pairs, 0.99) - 2 * c),
  };
}

// ---- heap bytes per pair ----------------------------------------------------------------------

let gcFn: (() => void) | null | undefined;

/** A gc() to call, if this Node lets us expose one. */
function getGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    setFlagsFromString("--expose-gc");
    const g: unknown = runInNewContext("gc");
    gcFn = typeof g === "function" ? (g as () => void) : null;
  } catch (e) {
    // no gc() to call: heap bytes per pair are measured without a collection first (noisier)
    noteMissingHostFeature("gc() for heap measurements", e);
    gcFn = null;
  }
  return gcFn;
}

/**
 * JS heap growth per pair over a stretch of `pairs` pairs after a full GC, minus the growth of
 * an empty stretch measured the same way. Other things can only add to the figure (code the
 * JIT installs, feedback vectors), so the smallest of several stretches is kept; stretches are
 * short enough that no young-generation GC can hide allocation inside one.
 */
export function heapBytesPerPair(st: Stepper, pairs = 4000, tries = 7): number {
  const gc = getGc();
  const used = (): number => getHeapStatistics().used_heap_size;
  const stretch = (n: number): number => {
    gc?.();
    const h0 = used();
    if (n > 0) st.run(n);
    return used() - h0;
  };
  st.run(pairs);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < tries; i++) {
    const empty = stretch(0);
    const full = stretch(pairs);
    best = Math.min(best, (full - empty) / pairs);
  }
  return Math.max(0, best);
}
