// The coordinator of a benchmark run: -t 1 runs in this thread; more threads run as one
// worker per core at most (logical CPUs beyond that are multiplexed inside the workers), all
// over one pool and one memory in SharedArrayBuffers. The phases (warm-up, the copy limit's
// warm-up, the timed stretch of copy limit and workload in turns) start together: workers meet
// at a shared counter and wait for the phase word.

import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { FaultError, LimitError, UsageError, type DmalabError } from "../errors.js";
import { KernelJob, WorkloadJob, kernelBuffers, ioctlError, type KernelJobSpec, type KernelThreadResult, type WorkloadJobSpec, type WorkloadThreadResult } from "./job.js";
import { addSums, benchmarkResult, reportLines, type LatencySums, type MapBenchmarkResult, type ToolArgs } from "./kernel-tool.js";
import { median, type WorkloadName, type WorkloadResult } from "./result.js";
import { buildBenchMachine, exportShared, poolIsDrained, touchRange, workloadDevice, workloadOriginals, type BenchMachine, type BenchMachineConfig, type SharedState } from "./setup.js";
import { ORIG_REGION_BYTES } from "./xorshift.js";
import type { DmaDebugSummary } from "../dma/debug.js";

export const CTL_PHASE = 0;
export const CTL_ARRIVED = 1;
// phase 0 (the word's initial value): the workers are starting
export const PHASE_COPY = 1;
export const PHASE_RUN = 2;
export const TIME_RUN_START = 0;
export const TIME_RUN_END = 1;
/** the share of each slice of the timed stretch that measures the copy limit */
export const TIME_COPY_SHARE = 2;
/** a worker that failed adds this to the arrival counter, so nobody waits for it */
const FAILED = 1 << 16;

export interface WorkerInit {
  spec: WorkloadJobSpec | KernelJobSpec;
  shared: SharedState;
  control: SharedArrayBuffer;
  times: SharedArrayBuffer;
  index: number;
  threads: number;
}

export function arrive(ctl: Int32Array): void {
  Atomics.add(ctl, CTL_ARRIVED, 1);
  Atomics.notify(ctl, CTL_ARRIVED);
}

export function waitPhase(ctl: Int32Array, phase: number): void {
  for (;;) {
    const p = Atomics.load(ctl, CTL_PHASE);
    if (p >= phase) return;
    Atomics.wait(ctl, CTL_PHASE, p, 1000);
  }
}

interface AtomicsWaitAsync {
  waitAsync(a: Int32Array, index: number, value: number, timeout?: number): { async: boolean; value: Promise<string> | string };
}

async function waitArrived(ctl: Int32Array, n: number): Promise<boolean> {
  for (;;) {
    const a = Atomics.load(ctl, CTL_ARRIVED);
    if (a >= FAILED) return false;
    if (a >= n) return true;
    // Atomics.waitAsync is in Node 20 but not in the ES2022 lib typings
    const w = (Atomics as unknown as AtomicsWaitAsync).waitAsync(ctl, CTL_ARRIVED, a, 1000);
    if (w.async) await w.value;
  }
}

function setPhase(ctl: Int32Array, phase: number): void {
  Atomics.store(ctl, CTL_PHASE, phase);
  Atomics.notify(ctl, CTL_PHASE);
}

export function cores(): number {
  return Math.max(1, availableParallelism());
}

/** Emulated CPUs 0..threads-1 dealt round-robin over `workers` threads. */
export function dealCpus(threads: number, workers: number): number[][] {
  const out: number[][] = Array.from({ length: workers }, () => []);
  for (let c = 0; c < threads; c++) out[c % workers]!.push(c);
  return out;
}

interface WorkerMsg<T> {
  ok: boolean;
  result?: T;
  error?: { name: string; message: string };
}

/** Re-raises a worker's error with the exit code its type had. */
function rethrow(err: { name: string; message: string }): DmalabError {
  if (err.name === "UsageError" || err.name === "InputError" || err.name === "InvalidArgumentError") return new UsageError(err.message);
  if (err.name === "LimitError") return new LimitError(err.message);
  return new FaultError(`benchmark thread failed: ${err.name}: ${err.message}`);
}

async function spawn<T>(
  specs: (WorkloadJobSpec | KernelJobSpec)[],
  shared: SharedState,
  drive: (ctl: Int32Array, times: Float64Array) => Promise<void>,
): Promise<T[]> {
  const control = new SharedArrayBuffer(16);
  const timesBuf = new SharedArrayBuffer(24);
  const ctl = new Int32Array(control);
  const times = new Float64Array(timesBuf);
  const url = new URL("./worker.js", import.meta.url);
  const workers = specs.map(
    (spec, index) =>
      new Worker(url, { workerData: { spec, shared, control, times: timesBuf, index, threads: specs.length } satisfies WorkerInit }),
  );
  const results = workers.map(
    (w) =>
      new Promise<WorkerMsg<T>>((resolve) => {
        w.once("message", (m: WorkerMsg<T>) => resolve(m));
        w.once("error", (e: Error) => resolve({ ok: false, error: { name: e.name, message: e.message } }));
        w.once("exit", (code) => resolve({ ok: false, error: { name: "Error", message: `worker exited with code ${code}` } }));
      }),
  );
  try {
    await drive(ctl, times);
    const msgs = await Promise.all(results);
    const bad = msgs.find((m) => !m.ok);
    if (bad) throw rethrow(bad.error!);
    return msgs.map((m) => m.result!);
  } finally {
    // a failed phase leaves the others waiting: release them, then end every worker
    setPhase(ctl, 99);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

// ---- workloads -----------------------------------------------------------------------------------

export interface WorkloadRunOptions {
  config: BenchMachineConfig;
  workload: WorkloadName;
  size: number;
  threads: number;
  seconds: number;
  /**
   * seconds of copy-limit measurement, in turns with the workload's `seconds` (see
   * WorkloadJob.measure); default `seconds`
   */
  copySeconds?: number;
  sampleN?: number;
}

const nowEpoch = (): number => performance.timeOrigin + performance.now();

export async function runWorkload(o: WorkloadRunOptions): Promise<WorkloadResult> {
  // as long as the workload by default: each turn's two halves see the host alike
  const copySeconds = o.copySeconds ?? o.seconds;
  const copyShare = copySeconds / (copySeconds + o.seconds);
  const sampleN = o.sampleN ?? 20_000;
  const workers = Math.min(o.threads, cores());
  const deal = dealCpus(o.threads, workers);
  let parts: WorkloadThreadResult[];
  let areas: number;
  if (o.threads === 1) {
    const m = buildBenchMachine(o.config);
    checkWorkloadSize(m, o);
    const origBase = workloadOriginals(m);
    const job = new WorkloadJob({ kind: "workload", config: o.config, workload: o.workload, size: o.size, cpus: [0], sampleN, measureHeap: true, origBase }, undefined, m);
    areas = job.m.swiotlb.defaultMem!.pool.nareas;
    prefault(job.m, origBase);
    job.warmUp();
    job.warmCopy(0, 1);
    const t0 = performance.now();
    const { run, turns } = job.measure(t0, t0 + (copySeconds + o.seconds) * 1000, copyShare);
    const { latency, heap, pairNs } = job.sample();
    job.finish();
    parts = [{ run, turns, latency, heapBytesPerPair: heap, log: job.m.log.lines, pairNs }];
  } else {
    const m = buildBenchMachine(o.config);
    checkWorkloadSize(m, o);
    const origBase = workloadOriginals(m);
    areas = m.swiotlb.defaultMem!.pool.nareas;
    const shared = shareWorkloadState(m, origBase);
    const specs: WorkloadJobSpec[] = deal.map((cpus, i) => ({
      kind: "workload",
      config: o.config,
      workload: o.workload,
      size: o.size,
      cpus,
      sampleN: Math.ceil(sampleN / workers),
      measureHeap: i === 0,
      origBase,
    }));
    parts = await spawn<WorkloadThreadResult>(specs, shared, async (ctl, times) => {
      if (!(await waitArrived(ctl, workers))) return;
      setPhase(ctl, PHASE_COPY);
      if (!(await waitArrived(ctl, 2 * workers))) return;
      // a few ms ahead, so that every worker is waiting when the first slice starts
      times[TIME_RUN_START] = nowEpoch() + 5;
      times[TIME_RUN_END] = times[TIME_RUN_START] + (copySeconds + o.seconds) * 1000;
      times[TIME_COPY_SHARE] = copyShare;
      setPhase(ctl, PHASE_RUN);
    });
    // every thread drained its ring or unmapped its last pair: a lost update under the
    // locks would show as a slot still busy or a counter off
    if (!poolIsDrained(m)) throw new FaultError("benchmark threads left the shared pool inconsistent (a slot still busy or a counter off)");
  }
  const r = mergeWorkload(o, areas, parts);
  latencyTap?.(r, parts.map((p) => p.pairNs ?? new Float64Array(0)));
  return r;
}

/** A listener for every workload run's latency samples (per thread), for reports; null: none. */
let latencyTap: ((r: WorkloadResult, pairNs: Float64Array[]) => void) | null = null;

export function tapLatency(fn: ((r: WorkloadResult, pairNs: Float64Array[]) => void) | null): void {
  latencyTap = fn;
}

/**
 * Writes the whole pool region and the originals once, so that no timed stretch (copy limit
 * or workload) pays the host's first-touch page faults, and workers get every chunk shared.
 */
export function prefault(m: BenchMachine, origBase: number): void {
  const pool = m.swiotlb.defaultMem!.pool;
  touchRange(m.memory, pool.start, pool.end - pool.start);
  touchRange(m.memory, origBase, ORIG_REGION_BYTES);
  m.memory.fill(pool.start, pool.end - pool.start, 0);
  m.memory.fill(origBase, ORIG_REGION_BYTES, 0x5a);
}

/**
 * --size of a pingpong: 1 byte up to swiotlb_max_mapping_size for the workload's device (a
 * mapping the pool can hold in one segment), else a usage error naming the limit.
 */
export function checkWorkloadSize(m: BenchMachine, o: Pick<WorkloadRunOptions, "workload" | "size">): void {
  if (o.workload !== "pingpong") return;
  const max = m.swiotlb.maxMappingSize(workloadDevice());
  if (!Number.isInteger(o.size) || o.size < 1 || o.size > max)
    throw new UsageError(`--size ${o.size}: must be 1-${max} (swiotlb_max_mapping_size of ${m.desc.name}'s pool, kernel ${m.profile.version})`);
}

function shareWorkloadState(m: BenchMachine, origBase: number): SharedState {
  prefault(m, origBase);
  return exportShared(m);
}

/**
 * The fraction of the copy limit: per turn of the timed stretch, the threads' bounced bytes per
 * second over their copy limit's in the same turn (threads turn together), and the median of
 * the turns — a turn where the host took the CPU away from one half only is an outlier, not a
 * bias, as it would be in a ratio of the totals.
 */
export function turnFraction(parts: readonly Pick<WorkloadThreadResult, "turns">[]): number {
  const n = Math.min(...parts.map((p) => p.turns.workNs.length));
  const fr: number[] = [];
  for (let i = 0; i < n; i++) {
    let w = 0;
    let c = 0;
    for (const { turns: t } of parts) {
      w += t.workBytes[i]! / t.workNs[i]!;
      c += t.copyBytes[i]! / t.copyNs[i]!;
    }
    if (c > 0 && Number.isFinite(w / c)) fr.push(w / c);
  }
  return fr.length > 0 ? median(fr) : 0;
}

/** Bytes per second of CPU time (wall time where unread) over all turns, the threads' rates added. */
function cpuRate(parts: readonly Pick<WorkloadThreadResult, "turns">[], side: "work" | "copy"): number {
  let rate = 0;
  for (const { turns: t } of parts) {
    const bytes = (side === "work" ? t.workBytes : t.copyBytes).reduce((a, b) => a + b, 0);
    const ns = (side === "work" ? t.workNs : t.copyNs).reduce((a, b) => a + b, 0);
    if (ns > 0) rate += (bytes / ns) * 1e9;
  }
  return rate;
}

function mergeWorkload(o: WorkloadRunOptions, areas: number, parts: WorkloadThreadResult[]): WorkloadResult {
  let pairs = 0;
  let bytes = 0;
  let failures = 0;
  let elapsed = 0;
  for (const p of parts) {
    pairs += p.run.pairs;
    bytes += p.run.bouncedBytes;
    failures += p.run.failures;
    elapsed = Math.max(elapsed, p.run.elapsedNs);
  }
  const n = parts.length;
  const mean = (f: (p: WorkloadThreadResult) => number): number => parts.reduce((s, p) => s + f(p), 0) / n;
  const pairsPerSec = (pairs / elapsed) * 1e9;
  const bouncedBytesPerSec = (bytes / elapsed) * 1e9;
  return {
    workload: o.workload,
    kernel: o.config.kernel,
    size: o.workload === "pingpong" ? o.size : 0,
    threads: o.threads,
    areas,
    seconds: o.seconds,
    pairs,
    pairsPerSec,
    bouncedBytes: bytes,
    bouncedBytesPerSec,
    bouncedBytesPerCpuSec: cpuRate(parts, "work"),
    copyBytesPerSec: cpuRate(parts, "copy"),
    fractionOfCopyLimit: turnFraction(parts),
    nsPerPair: pairs > 0 ? (elapsed * n) / pairs : 0,
    meanMapNs: mean((p) => p.latency.meanMapNs),
    meanUnmapNs: mean((p) => p.latency.meanUnmapNs),
    p50MapNs: mean((p) => p.latency.p50MapNs),
    p50UnmapNs: mean((p) => p.latency.p50UnmapNs),
    p50Ns: mean((p) => p.latency.p50Ns),
    p99Ns: mean((p) => p.latency.p99Ns),
    heapBytesPerPair: parts[0]!.heapBytesPerPair,
    mapFailures: failures,
  };
}

// ---- the kernel's dma_map_benchmark ------------------------------------------------------------

export interface KernelBenchOutcome {
  lines: string[];
  result: MapBenchmarkResult;
  loops: number;
  pairsPerSec: number;
  bouncedBytesPerSec: number;
  bouncedFraction: number;
  /** kernel log lines of the run (not of the boot) */
  dmesg: string[];
  /** set when a thread failed: the run's error, after the dmesg lines */
  error: DmalabError | null;
  /** with --dma-debug: every thread's reports (each thread's kernel tracks its own mappings) */
  dmaDebug?: DmaDebugSummary;
}

export async function runKernelBench(config: BenchMachineConfig, args: ToolArgs): Promise<KernelBenchOutcome> {
  const m = buildBenchMachine(config);
  const bootLines = m.log.lines.length;
  const workers = Math.min(args.threads, cores());
  const deal = dealCpus(args.threads, workers);
  // the module's checks and dma_set_mask happen once, before any thread starts
  const buffersTop = kernelBuffers(m, args);
  const first = new KernelJob({ kind: "kernel", config, args, cpus: deal[0]!, buffersTop }, undefined, m);
  first.prepare();
  let parts: KernelThreadResult[];
  if (workers === 1) {
    parts = [first.run(performance.now() + args.seconds * 1000)];
  } else {
    // every thread's buffer, and the pool, must be the same bytes in every worker
    const size = args.granule * m.memory.granule;
    touchRange(m.memory, buffersTop - args.threads * size, args.threads * size);
    const pool = m.swiotlb.defaultMem?.pool;
    if (pool) touchRange(m.memory, pool.start, pool.end - pool.start);
    const shared: SharedState = exportShared(m);
    const specs: KernelJobSpec[] = deal.map((cpus) => ({ kind: "kernel", config, args, cpus, buffersTop }));
    parts = await spawn<KernelThreadResult>(specs, shared, async (ctl, times) => {
      if (!(await waitArrived(ctl, workers))) return;
      times[TIME_RUN_END] = nowEpoch() + args.seconds * 1000;
      setPhase(ctl, PHASE_RUN);
    });
    if (pool && !poolIsDrained(m)) throw new FaultError("benchmark threads left the shared pool inconsistent (a slot still busy or a counter off)");
  }
  let sums: LatencySums = { sumMap: 0n, sumUnmap: 0n, sumSqMap: 0n, sumSqUnmap: 0n, loops: 0n };
  let loops = 0;
  let bounced = 0;
  let bytes = 0;
  let elapsed = 0;
  let error: string | null = null;
  const dmesg: string[] = [];
  parts.forEach((p) => {
    sums = addSums(sums, {
      sumMap: BigInt(p.sums.sumMap),
      sumUnmap: BigInt(p.sums.sumUnmap),
      sumSqMap: BigInt(p.sums.sumSqMap),
      sumSqUnmap: BigInt(p.sums.sumSqUnmap),
      loops: BigInt(p.sums.loops),
    });
    loops += p.loops;
    bounced += p.bouncedLoops;
    bytes += p.bouncedBytes;
    elapsed = Math.max(elapsed, p.elapsedNs);
    error ??= p.error;
    // every thread built the same machine: its log starts with the same boot lines
    dmesg.push(...p.log.slice(bootLines));
  });
  const result = benchmarkResult(sums);
  const dd = parts.map((p) => p.dmaDebug).filter((d) => d !== undefined);
  const dmaDebug: DmaDebugSummary | undefined =
    dd.length === 0 ? undefined : { mode: dd[0]!.mode, errorCount: dd.reduce((s, d) => s + d.errorCount, 0), reports: dd.flatMap((d) => d.reports) };
  return {
    ...(dmaDebug !== undefined ? { dmaDebug } : {}),
    lines: reportLines(args, result),
    result,
    loops,
    pairsPerSec: elapsed > 0 ? (loops / elapsed) * 1e9 : 0,
    bouncedBytesPerSec: elapsed > 0 ? (bytes / elapsed) * 1e9 : 0,
    bouncedFraction: loops > 0 ? bounced / loops : 0,
    dmesg: [...new Set(dmesg)],
    error: error !== null ? ioctlError(error) : null,
  };
}
