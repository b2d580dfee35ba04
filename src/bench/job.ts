// One benchmark thread's work, the same code in the main thread (-t 1) and in each worker:
// build the machine (attaching the shared state in a worker), warm up, measure the copy limit,
// run the timed stretch, take the latency sample. Logical CPUs beyond the number of workers
// are multiplexed: a worker runs several emulated CPUs in turn, batch by batch.

import { FaultError, UsageError } from "../errors.js";
import { DMA_FROM_DEVICE, DMA_TO_DEVICE, DMA_BIDIRECTIONAL, dmaBitMask } from "../kernel/dma-mapping.js";
import type { Device } from "../dma/device.js";
import { measureCopyLimit, type CopyLimit } from "./copy-limit.js";
import { moduleCheck, zeroSums, type LatencySums, type ToolArgs } from "./kernel-tool.js";
import { heapBytesPerPair, latencyFigures, runUntilMany, takeSample, type LatencyFigures, type TimedRun } from "./measure.js";
import type { WorkloadName } from "./result.js";
import {
  attachShared,
  buildBenchMachine,
  mapBenchmarkDevice,
  workloadDevice,
  type BenchMachine,
  type BenchMachineConfig,
  type SharedState,
} from "./setup.js";
import { PINGPONG_WARMUP, Pingpong, Ring, type Stepper } from "./workloads.js";
import { IO_TLB_SEGSIZE } from "../kernel/swiotlb.js";
import type { DmaDebugSummary } from "../dma/debug.js";

export interface WorkloadJobSpec {
  kind: "workload";
  config: BenchMachineConfig;
  workload: WorkloadName;
  size: number;
  /** the emulated CPUs this thread runs */
  cpus: number[];
  /** pairs timed one by one for the latency figures (over all of this thread's CPUs) */
  sampleN: number;
  /** measure heap bytes per pair (one thread does) */
  measureHeap: boolean;
}

export interface WorkloadThreadResult {
  run: TimedRun;
  copy: CopyLimit;
  latency: LatencyFigures;
  heapBytesPerPair: number;
  log: string[];
}


export class WorkloadJob {
  readonly m: BenchMachine;
  readonly dev: Device;
  readonly steppers: Stepper[];

  constructor(
    readonly spec: WorkloadJobSpec,
    shared?: SharedState,
    machine?: BenchMachine,
  ) {
    this.m = machine ?? buildBenchMachine(spec.config);
    if (shared) attachShared(this.m, shared);
    this.dev = workloadDevice();
    const sw = this.m.swiotlb;
    const passAllocSize = !this.m.profile.allocAlignMaskArg;
    this.steppers = spec.cpus.map((cpu) =>
      spec.workload === "pingpong" ? new Pingpong(sw, this.dev, spec.size, cpu, passAllocSize) : new Ring(sw, this.dev, cpu, passAllocSize),
    );
  }

  /** Untimed: 20,000 pingpong pairs, or the ring's 256-map prefill (per emulated CPU). */
  warmUp(): void {
    for (const s of this.steppers) {
      if (s instanceof Ring) s.prefill();
      // in short calls, so that V8 optimizes run() as a whole (with the map and unmap inlined)
      // rather than only its loop, on stack, in the middle of one long call
      else for (let i = 0; i < PINGPONG_WARMUP / 20; i++) s.run(20);
    }
  }

  /**
   * The copy limit for this thread: the same sizes, destinations walking this thread's part of
   * the pool (its area when there is one per thread, else the whole pool).
   */
  copyLimit(deadlineMs: number, threadIndex: number, threads: number): CopyLimit {
    const pool = this.m.swiotlb.defaultMem!.pool;
    let firstSlot = 0;
    let nslots = pool.nareas * pool.areaNslabs;
    if (pool.nareas >= threads && threads > 1) {
      // with an area per thread, each thread's bounces stay in its own area
      firstSlot = (threadIndex & (pool.nareas - 1)) * pool.areaNslabs;
      nslots = pool.areaNslabs;
    } else if (threads > 1) {
      // threads sharing areas never bounce into the same slots at once: a share of whole segments each
      const segs = Math.floor(nslots / IO_TLB_SEGSIZE / threads);
      firstSlot = threadIndex * segs * IO_TLB_SEGSIZE;
      nslots = segs * IO_TLB_SEGSIZE;
    }
    const seconds = Math.max(0.05, (deadlineMs - performance.now()) / 1000);
    return measureCopyLimit({
      bounce: this.m.swiotlb.hotBounce()!,
      pool,
      firstSlot,
      nslots,
      size: this.spec.workload === "pingpong" ? this.spec.size : 0,
      seconds,
    });
  }

  timed(deadlineMs: number): TimedRun {
    return runUntilMany(this.steppers, deadlineMs);
  }

  /**
   * After the timed stretch: the heap growth per pair first (the steady state the timed pairs
   * ran in), then the individually timed latency sample.
   */
  sample(): { latency: LatencyFigures; heap: number } {
    const heap = this.spec.measureHeap ? heapBytesPerPair(this.steppers[0]!) : 0;
    const latency = latencyFigures(takeSample(this.steppers, this.spec.sampleN));
    return { latency, heap };
  }

  finish(): void {
    for (const s of this.steppers) if (s instanceof Ring) s.drain();
  }
}


// ---- the kernel's dma_map_benchmark thread ----------------------------------------------------

export interface KernelJobSpec {
  kind: "kernel";
  config: BenchMachineConfig;
  args: ToolArgs;
  cpus: number[];
  /** where the threads' buffers end (kernelBuffers): thread i's is the i-th below it */
  buffersTop: number;
}

export interface KernelThreadResult {
  sums: { sumMap: string; sumUnmap: string; sumSqMap: string; sumSqUnmap: string; loops: string };
  loops: number;
  bouncedLoops: number;
  bouncedBytes: number;
  elapsedNs: number;
  /** pr_err of a failed thread (the run's result is then its error) */
  error: string | null;
  log: string[];
  /** with --dma-debug: this thread's dma-debug account */
  dmaDebug?: DmaDebugSummary;
}

/** ndelay(): a busy wait, like the kernel's */
function ndelay(ns: number): void {
  if (ns <= 0) return;
  const until = performance.now() + ns / 1e6;
  while (performance.now() < until);
}

function kernelBufferSize(m: BenchMachine, args: ToolArgs): number {
  return args.granule * m.memory.granule;
}

/**
 * alloc_pages_exact for every thread, once, in the main thread: the buffers come from free RAM
 * as high as it goes (never from a pool the boot reserved there); returns where they end.
 * Workers get the address in their job spec.
 */
export function kernelBuffers(m: BenchMachine, args: ToolArgs): number {
  const size = kernelBufferSize(m, args) * args.threads;
  const base = m.memblock.allocTopDown(size, m.memory.granule, Infinity, "dma_map_benchmark");
  if (base < 0) throw new UsageError(`-t ${args.threads} -g ${args.granule}: ${size} bytes of buffers do not fit in ${m.desc.name}'s free RAM`);
  return base + size;
}

/** One emulated kthread "dma-map-benchmark/<cpu>": its own buffer, from the top of free RAM down. */
class KernelThread {
  readonly buf: number;
  readonly size: number;
  loops = 0;
  bounced = 0;
  // u64 accumulators kept as numbers while exact, folded into BigInts before they stop being so
  sumMap = 0;
  sumUnmap = 0;
  sqMap = 0;
  sqUnmap = 0;
  big: LatencySums = zeroSums();
  error: string | null = null;

  constructor(
    readonly m: BenchMachine,
    readonly dev: Device,
    readonly cpu: number,
    readonly args: ToolArgs,
    readonly pool: { start: number; end: number } | null,
    buffersTop: number,
  ) {
    this.size = kernelBufferSize(m, args);
    this.buf = buffersTop - (cpu + 1) * this.size;
  }

  /** One loop of map_benchmark_thread. Returns false when the thread ended with an error. */
  step(): boolean {
    const api = this.m.api;
    const dev = this.dev;
    const dir = this.args.dir === 1 ? DMA_TO_DEVICE : this.args.dir === 2 ? DMA_FROM_DEVICE : DMA_BIDIRECTIONAL;
    if (dir !== DMA_FROM_DEVICE) this.m.memory.fill(this.buf, this.size, 0x66);
    const t0 = performance.now();
    const dma = api.dmaMapSingleAttrs(dev, this.buf, this.size, dir, 0, this.cpu);
    if (api.dmaMappingError(dev, dma) !== 0) {
      this.error = `dma_map_single failed on ${dev.device}`;
      return false;
    }
    const t1 = performance.now();
    ndelay(this.args.xdelay);
    const t2 = performance.now();
    api.dmaUnmapSingleAttrs(dev, dma, this.size, dir, 0);
    const t3 = performance.now();
    if (this.pool !== null && dma >= this.pool.start && dma < this.pool.end) this.bounced++;
    // ktime deltas in ns, then div64_ul(delta, 100)
    const map100 = Math.floor(Math.round((t1 - t0) * 1e6) / 100);
    const unmap100 = Math.floor(Math.round((t3 - t2) * 1e6) / 100);
    this.sumMap += map100;
    this.sumUnmap += unmap100;
    this.sqMap += map100 * map100;
    this.sqUnmap += unmap100 * unmap100;
    this.loops++;
    if (this.sqMap > 2 ** 50 || this.sqUnmap > 2 ** 50) this.fold();
    return true;
  }

  fold(): void {
    const b = this.big;
    this.big = {
      sumMap: b.sumMap + BigInt(this.sumMap),
      sumUnmap: b.sumUnmap + BigInt(this.sumUnmap),
      sumSqMap: b.sumSqMap + BigInt(this.sqMap),
      sumSqUnmap: b.sumSqUnmap + BigInt(this.sqUnmap),
      loops: b.loops,
    };
    this.sumMap = this.sumUnmap = this.sqMap = this.sqUnmap = 0;
  }
}

export class KernelJob {
  readonly m: BenchMachine;
  readonly dev: Device;
  readonly threads: KernelThread[];

  constructor(
    readonly spec: KernelJobSpec,
    shared?: SharedState,
    machine?: BenchMachine,
  ) {
    this.m = machine ?? buildBenchMachine(spec.config);
    if (shared) attachShared(this.m, shared);
    this.dev = mapBenchmarkDevice();
    const mem = this.m.swiotlb.defaultMem;
    const pool = mem === null ? null : { start: mem.pool.start, end: mem.pool.end };
    this.threads = spec.cpus.map((cpu) => new KernelThread(this.m, this.dev, cpu, spec.args, pool, spec.buffersTop));
  }

  /**
   * The ioctl's checks after the CLI's, then dma_set_mask. Throws what the tool would report
   * (perror("ioctl") with the errno), after the kernel's pr_err line went to the log.
   */
  prepare(): void {
    const bad = moduleCheck(this.spec.args);
    if (bad !== null) {
      this.m.log.print(`dma_map_benchmark: ${bad}`);
      throw new UsageError(`ioctl: Invalid argument (dma_map_benchmark: ${bad})`);
    }
    if (this.m.api.dmaSetMask(this.dev, dmaBitMask(this.spec.args.bits)) !== 0) {
      const msg = `failed to set dma_mask on device ${this.dev.device}`;
      this.m.log.print(`dma_map_benchmark: ${msg}`);
      throw new UsageError(`ioctl: Invalid argument (dma_map_benchmark: ${msg})`);
    }
  }

  /** Runs until the deadline (or a thread's error), emulated CPUs in turn. */
  run(deadlineMs: number): KernelThreadResult {
    const t0 = performance.now();
    let error: string | null = null;
    const per = 64;
    outer: do {
      for (const th of this.threads) {
        for (let i = 0; i < per; i++) {
          if (!th.step()) {
            error = th.error;
            break outer;
          }
        }
      }
    } while (performance.now() < deadlineMs);
    const t = performance.now();
    let sums = zeroSums();
    let loops = 0;
    let bounced = 0;
    for (const th of this.threads) {
      th.fold();
      loops += th.loops;
      bounced += th.bounced;
      sums = {
        sumMap: sums.sumMap + th.big.sumMap,
        sumUnmap: sums.sumUnmap + th.big.sumUnmap,
        sumSqMap: sums.sumSqMap + th.big.sumSqMap,
        sumSqUnmap: sums.sumSqUnmap + th.big.sumSqUnmap,
        loops: sums.loops + BigInt(th.loops),
      };
    }
    if (error !== null) this.m.log.print(`dma_map_benchmark: ${error}`);
    const a = this.spec.args;
    const p = this.m.profile;
    const toDev = a.dir !== 2;
    const fromDev = a.dir !== 1;
    const copies = (p.mapAlwaysCopies || toDev ? 1 : 0) + (fromDev ? (p.unmapDoubleCopy ? 2 : 1) : 0);
    const size = a.granule * this.m.memory.granule;
    return {
      sums: {
        sumMap: sums.sumMap.toString(),
        sumUnmap: sums.sumUnmap.toString(),
        sumSqMap: sums.sumSqMap.toString(),
        sumSqUnmap: sums.sumSqUnmap.toString(),
        loops: sums.loops.toString(),
      },
      loops,
      bouncedLoops: bounced,
      bouncedBytes: bounced * copies * size,
      elapsedNs: (t - t0) * 1e6,
      error,
      log: [...this.m.log.lines],
      ...(this.m.api.debug !== null ? { dmaDebug: this.m.api.debug.summary() } : {}),
    };
  }
}

/**
 * The tool's perror("ioctl") when a map failed in the kernel (-ENOMEM): the emulated kernel's
 * DMA path failed, a fault (exit 3) — not a limit of dmalab's.
 */
export function ioctlError(threadError: string): FaultError {
  return new FaultError(`ioctl: Cannot allocate memory (dma_map_benchmark: ${threadError})`);
}

