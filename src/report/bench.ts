// What a benchmark report shows: throughput per workload against its copy ceiling, and the
// latency histograms of the individually timed pairs (every run's samples of a workload pooled).
//   const c = new BenchCollector();      // before the runs: it taps their latency samples
//   ... runs ...; c.addWorkload(key, result) / c.addKernel(...)
//   const bench = c.finish();            // stops tapping

import { tapLatency } from "../bench/threads.js";
import { workloadKey, type WorkloadResult } from "../bench/result.js";
import { latencyFigure } from "./latency.js";
import type { BenchSection } from "./model.js";

export class BenchCollector {
  private readonly results: BenchSection["results"] = [];
  private readonly samples = new Map<string, Float64Array[]>();
  private toolLines: string[] = [];

  constructor() {
    tapLatency((r, pairNs) => {
      const k = workloadKey(r);
      const list = this.samples.get(k) ?? [];
      list.push(...pairNs);
      this.samples.set(k, list);
    });
  }

  addWorkload(label: string, r: Pick<WorkloadResult, "pairsPerSec" | "bouncedBytesPerSec" | "copyBytesPerSec" | "fractionOfCopyLimit">): void {
    this.results.push({ label, pairsPerSec: r.pairsPerSec, bouncedBytesPerSec: r.bouncedBytesPerSec, copyBytesPerSec: r.copyBytesPerSec, fractionOfCopyLimit: r.fractionOfCopyLimit });
  }

  /** The kernel tool: its report lines; it measures no copy ceiling (0 on the page). */
  addKernel(lines: string[], pairsPerSec: number, bouncedBytesPerSec: number): void {
    this.toolLines = lines;
    this.results.push({ label: "dma_map_benchmark", pairsPerSec, bouncedBytesPerSec, copyBytesPerSec: 0, fractionOfCopyLimit: 0 });
  }

  finish(): BenchSection {
    tapLatency(null);
    const latency = [...this.samples].map(([k, s]) => latencyFigure(k, s));
    return { results: this.results, latency, toolLines: this.toolLines };
  }
}
