// A latency histogram for a report: log-spaced buckets (4 per power of two) over the samples'
// range, and the p50/p90/p99/p99.9 of the samples themselves (nearest rank).

import type { LatencyFigure } from "./model.js";

function nearestRank(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function latencyFigure(label: string, samples: readonly Float64Array[]): LatencyFigure {
  let n = 0;
  for (const s of samples) n += s.length;
  const all = new Float64Array(n);
  let o = 0;
  for (const s of samples) {
    all.set(s, o);
    o += s.length;
  }
  all.sort();
  const STEP = 2 ** 0.25;
  const lo = Math.max(1, n > 0 ? all[0]! : 1);
  // the tail past 4 × p99.9 (a GC pause, a preemption) goes into the last bucket
  const top = n > 0 ? Math.min(all[n - 1]!, 4 * nearestRank(all, 0.999)) : 2;
  const hi = Math.max(lo * STEP, top);
  const first = Math.floor(Math.log2(lo) * 4);
  const last = Math.ceil(Math.log2(hi) * 4);
  const edgesNs: number[] = [];
  for (let k = first; k <= last; k++) edgesNs.push(Math.round(2 ** (k / 4)));
  const counts = new Array<number>(Math.max(1, edgesNs.length - 1)).fill(0);
  for (let i = 0; i < n; i++) {
    const v = Math.max(1, all[i]!);
    const b = Math.min(counts.length - 1, Math.max(0, Math.floor(Math.log2(v) * 4) - first));
    counts[b]!++;
  }
  return {
    label,
    edgesNs: edgesNs.slice(0, counts.length),
    counts,
    p50: nearestRank(all, 0.5),
    p90: nearestRank(all, 0.9),
    p99: nearestRank(all, 0.99),
    p999: nearestRank(all, 0.999),
    samples: n,
  };
}
