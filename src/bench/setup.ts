// The emulated machine a benchmark runs on: the machine every command builds
// (machine/builder.ts), booted as `dmalab boot` boots it; the workloads add one option, a
// pool of IO_TLB_DEFAULT_SIZE created on every board. Built the same way in every worker
// thread, which then attaches the main thread's shared RAM chunks and pool state
// (SharedArrayBuffers), so all threads run over one pool and one memory.

import { InvalidArgumentError, UsageError } from "../errors.js";
import { ORIG_ALIGN, ORIG_REGION_BYTES } from "./xorshift.js";
import { Device } from "../dma/device.js";
import { buildMachine, type MachineConfig } from "../machine/builder.js";
import type { Machine } from "../machine/machine.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { ArenaMemory } from "../memory/arena.js";
import { IoTlbPool } from "../swiotlb/pool.js";
import { IoTlbMem } from "../swiotlb/swiotlb.js";
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SHIFT } from "../kernel/swiotlb.js";

/** What a worker needs to build the same machine: plain, structured-cloneable data. */
export interface BenchMachineConfig {
  machine: string;
  kernel: string;
  /** --mem, for a device tree whose firmware fills in the memory node */
  mem?: number;
  /** the `swiotlb=` value given on our command line, if any */
  swiotlb?: string;
  /** --areas */
  areas?: number;
  /**
   * "workload": a 64 MiB pool with 1 area (unless --swiotlb/--areas say otherwise), always
   * created. "kernel": the machine boots as its description says (no pool when no RAM is out
   * of the DMA zone's reach, as arm64 mem_init decides).
   */
  mode: "workload" | "kernel";
  /** --dma-debug (the kernel benchmark: its map/unmap go through the DMA API) */
  dmaDebug?: boolean | "strict";
}

export type BenchMachine = Pick<Machine, "desc" | "profile" | "zones" | "memory" | "log" | "events" | "swiotlb" | "direct" | "api"> & {
  config: BenchMachineConfig;
  memblock: Machine["memblock"];
};

/** The workloads' pool: IO_TLB_DEFAULT_SIZE (64 MiB), 32768 slots. */
export const WORKLOAD_NSLABS = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT;

/** The builder's configuration of a benchmark machine. */
export function benchMachineConfig(config: BenchMachineConfig): MachineConfig {
  const c: MachineConfig = { machine: config.machine, kernel: config.kernel };
  if (config.mem !== undefined) c.mem = config.mem;
  if (config.swiotlb !== undefined) c.swiotlb = config.swiotlb;
  if (config.mode === "workload") {
    c.pool = { always: true, nareasIfUnset: 1 };
    if (config.swiotlb === undefined) c.pool.nslabs = WORKLOAD_NSLABS;
  }
  if (config.areas !== undefined) c.pool = { ...c.pool, nareas: config.areas };
  if (config.dmaDebug !== undefined) c.dmaDebug = config.dmaDebug;
  return c;
}

export function buildBenchMachine(config: BenchMachineConfig): BenchMachine {
  const built = buildMachine(benchMachineConfig(config));
  const m = built.machine;
  if (built.report.outcome === "fault") throw new InvalidArgumentError(`machine ${m.desc.name}: the boot faulted: ${built.report.fault?.message ?? "unknown fault"}`);
  if (config.mode === "workload" && m.swiotlb.defaultMem === null)
    throw new InvalidArgumentError(`machine ${m.desc.name}: no swiotlb pool could be allocated for the workload (swiotlb=${built.report.swiotlb.cmdline || "default"})`);
  const { desc, profile, zones, memory, memblock, log, events, swiotlb, direct, api } = m;
  return { config, desc, profile, zones, memory, memblock, log, events, swiotlb, direct, api };
}

/**
 * The workloads' originals (ORIG_REGION_BYTES, 2 MiB aligned), taken from the RAM the boot left
 * free, as high as it goes (as kernelBuffers does for the kernel tool): the base. Once per run,
 * in the main thread; workers get the address in their job spec.
 */
export function workloadOriginals(m: BenchMachine): number {
  const base = m.memblock.allocTopDown(ORIG_REGION_BYTES, ORIG_ALIGN, Infinity, "bench originals");
  if (base < 0) throw new UsageError(`machine ${m.desc.name}: the workloads' ${ORIG_REGION_BYTES >> 20} MiB of originals do not fit in its free RAM`);
  return base;
}

/** The device the workloads map for: no masks, no alignment, no boundary (swiotlb sees it raw). */
export function workloadDevice(): Device {
  return new Device({ driver: "dmalab-bench", device: "bench0", dmaMask: (1n << 64n) - 1n, coherent: true });
}

/**
 * The device bound to dma_map_benchmark: a PCI function, so dma_parms exist with PCI's
 * defaults (64 KiB max segment, 4 GiB segment boundary, no min_align_mask).
 */
export function mapBenchmarkDevice(): Device {
  return new Device({
    driver: "dma_map_benchmark",
    device: "0000:00:1f.0",
    dmaMask: 0xffff_ffffn,
    segBoundaryMask: 0xffff_ffffn,
    maxSegSize: 0x10000,
    coherent: true,
  });
}

// ---- sharing with worker threads ---------------------------------------------------------------

export interface SharedChunk {
  bank: number;
  index: number;
  buffer: SharedArrayBuffer;
  /** where the chunk starts in its buffer (its cache colour) */
  offset: number;
  length: number;
  /** its offset in the shared WebAssembly memory (`arena`), or -1 for a chunk of its own */
  arenaOffset: number;
}

export interface SharedState {
  chunks: SharedChunk[];
  poolBuffer: SharedArrayBuffer;
  /** where the pool's slot table starts in poolBuffer (the RAM arena holds it, see Swiotlb.newPool) */
  poolOffset: number;
  /** poolBuffer is the arena's memory */
  poolInArena: boolean;
  /** the main thread's RAM arena (see memory/arena.ts), if it has one */
  arena: ArenaMemory | null;
}

/** Allocates (touches) every RAM chunk of [start, start+len): workers must see the same bytes. */
export function touchRange(memory: PhysicalMemory, start: number, len: number): void {
  const cs = memory.chunkSize;
  for (let a = Math.floor(start / cs) * cs; a < start + len; a += cs) memory.chunkAt(Math.max(a, start));
}

/** The main thread's RAM chunks and pool state; a machine without a pool shares an empty pool buffer. */
export function exportShared(m: BenchMachine): SharedState {
  const mem = m.swiotlb.defaultMem;
  const chunks: SharedChunk[] = [];
  const arena = m.memory.arena;
  m.memory.banks.forEach((b, bi) =>
    b.chunks.forEach((c, ci) => {
      if (c !== undefined)
        chunks.push({ bank: bi, index: ci, buffer: c.buffer as SharedArrayBuffer, offset: c.byteOffset, length: c.length, arenaOffset: arena?.offsetOf(c) ?? -1 });
    }),
  );
  return { chunks, poolBuffer: mem?.pool.buffer ?? new SharedArrayBuffer(8), poolOffset: mem?.pool.bufferOffset ?? 0, poolInArena: (mem?.pool.arenaOffset ?? -1) >= 0, arena: arena?.memory ?? null };
}

/** In a worker: the machine built from the same config now runs over the main thread's state. */
export function attachShared(m: BenchMachine, s: SharedState): void {
  if (s.arena !== null) m.memory.attachArena(s.arena);
  const arena = m.memory.arena;
  for (const c of s.chunks) {
    const bank = m.memory.banks[c.bank];
    if (bank === undefined || c.index >= bank.chunks.length) throw new InvalidArgumentError(`shared chunk ${c.index} of bank ${c.bank}: no such chunk`);
    bank.chunks[c.index] = c.arenaOffset >= 0 && arena !== null ? arena.adopt(c.arenaOffset, c.length) : new Uint8Array(c.buffer, c.offset, c.length);
  }
  const old = m.swiotlb.defaultMem;
  // built from the same config as the main thread's: no pool there either
  if (old === null) return;
  const p = old.pool;
  const pool = new IoTlbPool(
    { start: p.start, nslabs: p.nslabs, nareas: p.nareas, era: p.era, pageSize: p.pageSize, listClippedTail: p.listClippedTail },
    s.poolBuffer,
    s.poolOffset,
  );
  // the table sits in the shared arena: the hot path may address it there (it takes the locks)
  if (arena !== null && s.poolInArena) pool.arenaOffset = s.poolOffset;
  // other threads map and unmap in this pool too: the area locks and atomic counters apply
  pool.enableLocking();
  m.swiotlb.defaultMem = new IoTlbMem(old.name, pool, old.forceBounce, old.forAlloc, old.lateAlloc);
}

/** Every slot free and every counter back at 0: what a drained pool must look like. */
export function poolIsDrained(m: BenchMachine): boolean {
  const mem = m.swiotlb.defaultMem;
  if (mem === null) return true;
  const p = mem.pool;
  return p.busy.every((w) => w === 0) && p.areaUsedList().every((u) => u === 0) && p.mapped.every((b) => b === 0) && p.counters[0] === 0;
}
