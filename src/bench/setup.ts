// The emulated machine a benchmark runs on: RAM from a preset, the kernel profile's swiotlb
// initialised the way arm64 mem_init does it, dma-direct and the mapping API, and the
// benchmark's device. Built the same way in every worker thread, which then attaches the
// main thread's shared RAM chunks and pool state (SharedArrayBuffers), so all threads run
// over one pool and one memory.

import { InvalidArgumentError, UsageError } from "../errors.js";
import { EventSink, KernelLog } from "../events.js";
import { Device } from "../dma/device.js";
import { DmaDirect } from "../dma/direct.js";
import { DmaApi } from "../dma/mapping.js";
import { resolveMachine, type MachineDesc } from "../machine/preset.js";
import { arm64Zones, type Arm64Zones } from "../machine/zones.js";
import { PhysicalMemory } from "../memory/physical-memory.js";
import type { ArenaMemory } from "../memory/arena.js";
import { parseSwiotlbCmdline } from "../swiotlb/cmdline.js";
import { IoTlbPool } from "../swiotlb/pool.js";
import { kernelProfile, type KernelProfile } from "../swiotlb/profile.js";
import { IoTlbMem, Swiotlb, SWIOTLB_VERBOSE } from "../swiotlb/swiotlb.js";
import { IO_TLB_SIZE } from "../swiotlb/constants.js";

/** What a worker needs to build the same machine: plain, structured-cloneable data. */
export interface BenchMachineConfig {
  machine: string;
  kernel: string;
  /** the `swiotlb=` value given on our command line, if any */
  swiotlb?: string;
  /** --areas */
  areas?: number;
  /**
   * "workload": a 64 MiB pool with 1 area (unless --swiotlb/--areas say otherwise), always
   * allocated. "kernel": the machine boots as its preset says (no pool when no RAM is out of
   * the DMA zone's reach, as arm64 mem_init decides).
   */
  mode: "workload" | "kernel";
}

export interface BenchMachine {
  config: BenchMachineConfig;
  desc: MachineDesc;
  profile: KernelProfile;
  zones: Arm64Zones;
  memory: PhysicalMemory;
  log: KernelLog;
  events: EventSink;
  swiotlb: Swiotlb;
  direct: DmaDirect;
  api: DmaApi;
}

/** The workloads' pool: IO_TLB_DEFAULT_SIZE, 32768 slots. */
export const WORKLOAD_NSLABS = 32768;

export function buildBenchMachine(config: BenchMachineConfig): BenchMachine {
  const desc = resolveMachine(config.machine);
  const profile = kernelProfile(config.kernel);
  const zones = arm64Zones(desc, profile);
  const memory = new PhysicalMemory({
    banks: desc.ram.map((b) => ({ base: b.base, size: b.size, name: b.name })),
    reserved: desc.reserved.map((r) => ({ base: r.base, size: r.size, name: r.name, noMap: r.noMap })),
    paBits: desc.paBits,
    granule: desc.granule,
  });
  const log = new KernelLog();
  const events = new EventSink();
  const swiotlb = new Swiotlb(memory, profile, log, events, { possibleCpus: desc.cpus });

  const areas = config.areas;
  if (areas !== undefined) {
    if (!Number.isInteger(areas) || areas < 1 || areas > 1024) throw new UsageError(`--areas ${areas}: must be 1..1024`);
    if (!profile.areas && areas !== 1) throw new UsageError(`--areas ${areas}: kernel ${profile.version} has a single lock and index (areas came in 6.0)`);
  }
  const cmd = config.swiotlb ?? desc.swiotlbCmdline;
  if (config.mode === "workload" && config.swiotlb === undefined) swiotlb.defaultNslabs = WORKLOAD_NSLABS;
  if (cmd !== "") {
    const c = parseSwiotlbCmdline(cmd, profile);
    if (c.ignored !== undefined) log.print(`dmalab: swiotlb=${cmd}: the kernel ignores '${c.ignored}'`);
    swiotlb.applyCmdline(c);
  }
  if (profile.areas && (areas !== undefined || (config.mode === "workload" && swiotlb.defaultNareas === 0)))
    swiotlb.adjustNareas(areas ?? 1);

  // arm64 mem_init: a pool when RAM lies beyond the DMA zone (or forced); the workloads always want one
  const need = config.mode === "workload" || zones.ramAboveDmaLimit;
  const lowLimit = zones.lowAddressLimit + 1;
  if (profile.era === "6.x") swiotlb.swiotlbInitRemap(need, SWIOTLB_VERBOSE, lowLimit);
  else if (need || swiotlb.forceState === 1) swiotlb.swiotlbInit(true, lowLimit);
  else if (profile.memInitSetsNoForce) swiotlb.forceState = 2;

  if (config.mode === "workload" && swiotlb.defaultMem === null)
    throw new UsageError(`machine ${desc.name}: no swiotlb pool could be allocated for the workload (swiotlb=${cmd || "default"})`);

  const direct = new DmaDirect({
    memory,
    swiotlb,
    profile,
    log,
    events,
    maxPfn: zones.maxPfn,
    zoneDmaBits: zones.zoneDmaBits,
  });
  const api = new DmaApi({ direct, memory, log, events });
  return { config, desc, profile, zones, memory, log, events, swiotlb, direct, api };
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

/** The pool's bounce region (the copy limit's destinations walk it). */
export function poolRegion(m: BenchMachine): { start: number; bytes: number; nareas: number } {
  const mem = m.swiotlb.defaultMem;
  if (mem === null) throw new InvalidArgumentError("no swiotlb pool");
  return { start: mem.pool.start, bytes: mem.pool.nslabs * IO_TLB_SIZE, nareas: mem.pool.nareas };
}
