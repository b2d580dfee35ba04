// One benchmark thread's work, the same code in the main thread (-t 1) and in each worker:
// build the machine (attaching the shared state in a worker), warm up, measure the copy limit,
// run the timed stretch, take the latency sample. Logical CPUs beyond the number of workers
// are multiplexed: a worker runs several emulated CPUs in turn, batch by batch.

import { FaultError, InvalidArgumentError, UsageError } from "../errors.js";
import { DMA_FROM_DEVICE, DMA_TO_DEVICE, DMA_BIDIRECTIONAL, dmaBitMask, type DmaDirection } from "../kernel/dma-mapping.js";
import { sgInitTable, type ScatterlistEntry } from "../dma/scatterlist.js";
import type { Device } from "../dma/device.js";
import { CopyLimiter } from "./copy-limit.js";
import { DMA_MAP_BENCH_SG_MODE, moduleCheck, zeroSums, type LatencySums, type ToolArgs } from "./kernel-tool.js";
import { BATCH, heapBytesPerPair, latencyFigures, runUntilMany, takeSample, type LatencyFigures, type TimedRun } from "./measure.js";
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
import { threadCpuNs } from "./thread-clock.js";
import { PINGPONG_WARMUP, Pingpong, Ring, type Stepper } from "./workloads.js";
import { IO_TLB_SEGSIZE } from "../kernel/swiotlb.js";
import type { DmaDebugSummary } from "../dma/debug.js";

/** Called now and then during a timed stretch on this thread (a progress bar's redraw); null: never. */
let benchTick: (() => void) | null = null;

export function onBenchTick(fn: (() => void) | null): void {
  benchTick = fn;
}

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
  /** the originals' region (workloadOriginals, taken once in the main thread) */
  origBase: number;
}

/**
 * The timed stretch turn by turn (WorkloadJob.measure): bytes the workload bounced and the copy
 * limit copied, and the ns each took of this thread's CPU time (wall time where that cannot be
 * read).
 */
export interface Turns {
  workBytes: number[];
  workNs: number[];
  copyBytes: number[];
  copyNs: number[];
}

export interface WorkloadThreadResult {
  run: TimedRun;
  turns: Turns;
  latency: LatencyFigures;
  heapBytesPerPair: number;
  log: string[];
  /** the sample's pair times in ns, clock cost taken off (reports draw their histogram) */
  pairNs?: Float64Array;
}


/** One turn of the copy limit and the workload (see WorkloadJob.measure). */
export const SLICE_MS = 50;
/** the ring's mean bytes bounced per pair: 2 x the mean of 64 << (0..10) */
const RING_PAIR_BYTES = (2 * 64 * 2047) / 11;

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
      spec.workload === "pingpong" ? new Pingpong(sw, this.dev, spec.size, cpu, passAllocSize, spec.origBase) : new Ring(sw, this.dev, cpu, passAllocSize, spec.origBase),
    );
  }
  private limiter: CopyLimiter | null = null;

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
   * The copy limit for this thread (the same sizes and originals, destinations walking this
   * thread's part of the pool: its area when there is one per thread, else the whole pool),
   * warmed up, untimed.
   */
  warmCopy(threadIndex: number, threads: number): void {
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
    this.limiter = new CopyLimiter({
      bounce: this.m.swiotlb.hotBounce()!,
      pool,
      firstSlot,
      nslots,
      size: this.spec.workload === "pingpong" ? this.spec.size : 0,
      origBase: this.spec.origBase,
    });
    this.limiter.warmUp();
  }

  /**
   * The timed stretch [startMs, endMs) (performance.now() scale): the copy limit and the
   * workload in turns, slice by slice (SLICE_MS; `copyShare` of each slice copies), so that a
   * host whose speed drifts moves both figures alike. Slices are cut from the same times in
   * every thread, so threads copy together and run the workload together.
   */
  measure(startMs: number, endMs: number, copyShare: number): { run: TimedRun; turns: Turns } {
    const limiter = this.limiter;
    if (limiter === null) throw new InvalidArgumentError("measure before warmCopy");
    const rounds = Math.max(1, Math.round((endMs - startMs) / SLICE_MS));
    const per = (endMs - startMs) / rounds;
    // about half a MiB of copies between clock reads, so that a slice ends on time at any size
    const pairBytes = this.spec.workload === "pingpong" ? 2 * this.spec.size : RING_PAIR_BYTES;
    const batch = Math.max(16, Math.min(BATCH, Math.floor(2 ** 19 / pairBytes)));
    const run: TimedRun = { pairs: 0, bouncedBytes: 0, failures: 0, elapsedNs: 0 };
    const turns: Turns = { workBytes: [], workNs: [], copyBytes: [], copyNs: [] };
    for (let i = 0; i < rounds; i++) {
      const t = startMs + i * per;
      const c0 = limiter.result();
      const cpu0 = threadCpuNs();
      limiter.runUntil(t + per * copyShare, batch);
      const cpu1 = threadCpuNs();
      const c1 = limiter.result();
      const r = runUntilMany(this.steppers, t + per, batch);
      const cpu2 = threadCpuNs();
      run.pairs += r.pairs;
      run.bouncedBytes += r.bouncedBytes;
      run.failures += r.failures;
      run.elapsedNs += r.elapsedNs;
      // per CPU-second of this thread where it can be read (time the host ran something else
      // counts for neither half), else per wall second
      const cpu = cpu0 !== null && cpu1 !== null && cpu2 !== null && cpu1 > cpu0 && cpu2 > cpu1;
      turns.copyBytes.push(c1.bytes - c0.bytes);
      turns.copyNs.push(cpu ? cpu1 - cpu0 : c1.elapsedNs - c0.elapsedNs);
      turns.workBytes.push(r.bouncedBytes);
      turns.workNs.push(cpu ? cpu2 - cpu1 : r.elapsedNs);
      // a progress bar is drawn: redraw between turns
      benchTick?.();
    }
    return { run, turns };
  }

  /**
   * After the timed stretch: the heap growth per pair first (the steady state the timed pairs
   * ran in), then the individually timed latency sample.
   */
  sample(): { latency: LatencyFigures; heap: number; pairNs: Float64Array } {
    const heap = this.spec.measureHeap ? heapBytesPerPair(this.steppers[0]!) : 0;
    const s = takeSample(this.steppers, this.spec.sampleN);
    const latency = latencyFigures(s);
    // a pair spans two clock edges, as latencyFigures counts it
    const pairNs = s.pairNs.map((v) => Math.max(0, v - 2 * s.clockNs));
    return { latency, heap, pairNs };
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

  /** SG_MODE: one single-page entry per page of the buffer (the module's __get_free_page each) */
  private readonly sg: ScatterlistEntry[] | null;
  private readonly dir: DmaDirection;

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
    this.dir = args.dir === 1 ? DMA_TO_DEVICE : args.dir === 2 ? DMA_FROM_DEVICE : DMA_BIDIRECTIONAL;
    const page = m.memory.granule;
    this.sg = args.mode === DMA_MAP_BENCH_SG_MODE ? sgInitTable(Array.from({ length: args.granule }, (_, i) => ({ phys: this.buf + i * page, length: page }))) : null;
    // the newer module (-m) stains the buffer once, when the thread prepares it
    if (args.mode !== null && this.dir !== DMA_FROM_DEVICE) m.memory.fill(this.buf, this.size, 0x66);
  }

  /** One loop of map_benchmark_thread. Returns false when the thread ended with an error. */
  step(): boolean {
    const api = this.m.api;
    const dev = this.dev;
    const dir = this.dir;
    const sg = this.sg;
    // the older module stains it before every map
    if (this.args.mode === null && dir !== DMA_FROM_DEVICE) this.m.memory.fill(this.buf, this.size, 0x66);
    const t0 = performance.now();
    let dma: number;
    if (sg !== null) {
      if (api.dmaMapSgAttrs(dev, sg, sg.length, dir, 0, this.cpu) === 0) {
        this.error = `dma_map_sg failed on ${dev.device}`;
        return false;
      }
      dma = sg[0]!.dmaAddress;
    } else {
      dma = api.dmaMapSingleAttrs(dev, this.buf, this.size, dir, 0, this.cpu);
      if (api.dmaMappingError(dev, dma) !== 0) {
        this.error = `dma_map_single failed on ${dev.device}`;
        return false;
      }
    }
    const t1 = performance.now();
    ndelay(this.args.xdelay);
    const t2 = performance.now();
    if (sg !== null) api.dmaUnmapSgAttrs(dev, sg, sg.length, dir, 0);
    else api.dmaUnmapSingleAttrs(dev, dma, this.size, dir, 0);
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
      benchTick?.();
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

