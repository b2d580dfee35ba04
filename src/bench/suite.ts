// `npm run bench`: the whole set, each workload run several times, medians kept; and
// `--compare`: the same workloads measured now against a saved summary.

import { cpus as osCpus } from "node:os";
import { medianRun, workloadKey, type SuiteSummary, type WorkloadName, type WorkloadResult } from "./result.js";
import type { BenchMachineConfig } from "./setup.js";
import { runWorkload } from "./threads.js";
import { runGuestWorkload } from "./guest-workload.js";
import { unicornAvailable } from "../cpu/unicorn.js";

export interface SuiteEntry {
  workload: WorkloadName;
  size: number;
  threads: number;
  areas: number;
}

/** The regression set: the four pingpong sizes, the ring, and the ring on 2 threads (1 and 2 areas). */
export const SUITE: readonly SuiteEntry[] = [
  { workload: "pingpong", size: 64, threads: 1, areas: 1 },
  { workload: "pingpong", size: 512, threads: 1, areas: 1 },
  { workload: "pingpong", size: 4096, threads: 1, areas: 1 },
  { workload: "pingpong", size: 65536, threads: 1, areas: 1 },
  { workload: "ring", size: 0, threads: 1, areas: 1 },
  { workload: "ring", size: 0, threads: 2, areas: 2 },
  { workload: "ring", size: 0, threads: 2, areas: 1 },
];

export interface SuiteOptions {
  machine: string;
  kernel: string;
  swiotlb?: string;
  runs: number;
  seconds: number;
  entries?: readonly SuiteEntry[];
  /** progress lines (stderr) */
  progress?: (line: string) => void;
  /** the guest workload (trap costs on the CPU); default on when Unicorn is installed */
  guest?: boolean;
}

export async function runSuite(o: SuiteOptions): Promise<SuiteSummary> {
  const workloads: SuiteSummary["workloads"] = {};
  for (const e of o.entries ?? SUITE) {
    const config: BenchMachineConfig = { machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, areas: e.areas, mode: "workload" };
    const runs: WorkloadResult[] = [];
    for (let i = 0; i < o.runs; i++) {
      runs.push(await runWorkload({ config, workload: e.workload, size: e.size, threads: e.threads, seconds: o.seconds }));
    }
    const key = workloadKey({ workload: e.workload, size: e.size, threads: e.threads, areas: e.areas });
    const med = medianRun(runs);
    workloads[key] = med;
    o.progress?.(`${key}: ${(med.pairsPerSec / 1e6).toFixed(3)} M pairs/s (median of ${o.runs}), fraction of copy limit ${med.fractionOfCopyLimit.toFixed(3)}`);
  }
  const summary: SuiteSummary = {
    dmalab: "bench-suite",
    version: 1,
    date: new Date().toISOString(),
    node: process.version,
    cpus: osCpus().length,
    runsPerWorkload: o.runs,
    workloads,
  };
  if (o.guest !== false && unicornAvailable()) {
    o.progress?.("guest: trap costs from guest loops");
    summary.guest = runGuestWorkload({ machine: o.machine, kernel: o.kernel, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}) });
  }
  const r1 = workloads["ring"];
  const r2 = workloads["ring-t2-a2"];
  if (r1 && r2) {
    summary.ringScaling2x2 = r2.pairsPerSec / r1.pairsPerSec;
    summary.copyScaling2x2 = r2.copyBytesPerSec / r1.copyBytesPerSec;
  }
  return summary;
}

/** The suite entries a saved summary holds (so --compare re-runs exactly those). */
export function entriesOf(results: Record<string, WorkloadResult>): SuiteEntry[] {
  return Object.values(results).map((r) => ({ workload: r.workload, size: r.size, threads: r.threads, areas: r.areas }));
}
