// Workload entry point used by `dmalab run` and `dmalab bench`.

import { UsageError } from "../errors.js";
import { Engine } from "./engine.js";
import { runCoherent, type CoherentTarget } from "./coherent.js";
import { runPingPong } from "./pingpong.js";
import { runRing } from "./ring.js";
import { runSg } from "./sg.js";
import type { WorkloadStats } from "./stats.js";
import type { DmaTarget, WorkloadDevice } from "./target.js";

export const WORKLOADS = ["ring", "pingpong", "sg", "coherent"] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export function isWorkloadName(s: string): s is WorkloadName {
  return (WORKLOADS as readonly string[]).includes(s);
}

export interface WorkloadOptions {
  workload: WorkloadName;
  ops: number;
  seed: number;
  /** ring: descriptors in flight per device (default 32) */
  depth?: number;
  /** pingpong: exchanges per mapping (default 8) */
  rounds?: number;
  /** sg: most segments per list (default 8) */
  maxSegs?: number;
  /** called with the ops done so far every 1024 ops (progress bars) */
  progress?: (opsDone: number) => void;
}

/** What the coherent workload needs besides the DMA target (dma_alloc_coherent). */
export interface WorkloadExtras<D extends WorkloadDevice> {
  coherent?: CoherentTarget<D>;
}

export function runWorkload<D extends WorkloadDevice>(t: DmaTarget<D>, devices: readonly D[], o: WorkloadOptions, extras: WorkloadExtras<D> = {}): WorkloadStats {
  if (devices.length === 0) throw new UsageError("the machine has no devices to run a workload on");
  if (!Number.isSafeInteger(o.ops) || o.ops < 0) throw new UsageError(`--ops ${o.ops}: must be a non-negative integer`);
  const e = new Engine(t, devices);
  const fullBefore = t.poolFullCount();
  const t0 = performance.now();
  switch (o.workload) {
    case "ring":
      runRing(e, { ops: o.ops, seed: o.seed, depth: o.depth ?? 32, progress: o.progress });
      break;
    case "pingpong":
      runPingPong(e, { ops: o.ops, seed: o.seed, rounds: o.rounds ?? 8, progress: o.progress });
      break;
    case "sg":
      runSg(e, { ops: o.ops, seed: o.seed, maxSegs: o.maxSegs ?? 8, progress: o.progress });
      break;
    case "coherent":
      if (!extras.coherent) throw new UsageError("the coherent workload needs dma_alloc_coherent (a booted machine)");
      runCoherent(e, extras.coherent, { ops: o.ops, seed: o.seed, depth: o.depth ?? 32 });
      break;
  }
  const elapsedMs = performance.now() - t0;
  const devs = [...e.perDevice.values()];
  const sum = (f: (d: (typeof devs)[number]) => number): number => devs.reduce((s, d) => s + f(d), 0);
  const mappings = sum((d) => d.mappings);
  const bytes = sum((d) => d.bouncedBytes + d.directBytes);
  const secs = Math.max(elapsedMs, 1e-3) / 1000;
  return {
    workload: o.workload,
    ops: o.ops,
    seed: o.seed,
    mappings,
    bounced: sum((d) => d.bounced),
    direct: sum((d) => d.direct),
    mapErrors: sum((d) => d.mapErrors),
    bouncedBytes: sum((d) => d.bouncedBytes),
    directBytes: sum((d) => d.directBytes),
    verifiedBytes: e.verifiedBytes,
    verifiedBouncedBytes: e.verifiedBouncedBytes,
    corruptBytes: e.corruptBytes,
    firstCorruption: e.firstCorruption,
    poolFull: t.poolFullCount() - fullBefore,
    io_tlb_used_hiwater: t.usedHiwater(),
    io_tlb_used_after: t.used(),
    elapsedMs,
    mappingsPerSec: mappings / secs,
    bytesPerSec: bytes / secs,
    devices: devs,
  };
}

export type { WorkloadStats } from "./stats.js";
export type { DmaTarget, WorkloadDevice } from "./target.js";
