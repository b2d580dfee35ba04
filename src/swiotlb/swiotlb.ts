// One kernel's swiotlb: the default allocator (io_tlb_default_mem) and restricted pools over a
// PhysicalMemory, with the init paths, map/unmap/sync, bounce copies, messages and debugfs
// counters of the era its KernelProfile names (spec linux-dma.md §3-§7, §10).
//
//   5.13 (swiotlb.c 95b079d8): a NULL-able default mem pointer, global swiotlb_force,
//        swiotlb_init / *_with_tbl / late init returning errno, map without a pool panics.
//   6.x  (v6.11, 7296f2301a05, non-dynamic): swiotlb_init_remap / swiotlb_init_late,
//        force_bounce / force_disable, per-device mem (restricted-dma-pool), areas.

import { InvalidArgumentError, UsageError, hex } from "../errors.js";
import type { EventSink, KernelLog } from "../events.js";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "../kernel/dma-mapping.js";
import { Memblock } from "../memory/memblock.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import { EINVAL, ENOMEM } from "../kernel/errno.js";
import { KernelBug, KernelPanic } from "../kernel/panic.js";
import { fmtPa } from "../kernel/printk.js";
import { EmulatedClock, RatelimitState } from "../kernel/ratelimit.js";
import {
  INVALID_PHYS_ADDR,
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_MIN_SLABS,
  IO_TLB_SEG_BYTES,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
  SWIOTLB_FORCE,
  SWIOTLB_FORCE_NAMES,
  SWIOTLB_NORMAL,
  SWIOTLB_ANY,
  SWIOTLB_FORCE_FLAG,
  SWIOTLB_NO_FORCE,
  SWIOTLB_VERBOSE,
  type SwiotlbForce,
} from "../kernel/swiotlb.js";
import type { SwiotlbDevice } from "./device.js";
import { BounceCopy, PoolBounce, type HotBounce } from "./bounce.js";
import { PlainPath } from "./plain-path.js";
import { CNT_HIWATER, CNT_TOTAL_USED, FIND_SPIN, IoTlbPool, alignedSize, type IoTlbPoolParams } from "./pool.js";
import type { KernelProfile } from "./profile.js";
import type { SwiotlbCmdline } from "./cmdline.js";

// machine/boot.ts and bench/setup.ts still import these from here (kernel/swiotlb.ts has them)

/** pr_* prefix of kernel/dma/swiotlb.c (pr_fmt) */
const PR = "software IO TLB: ";

const NO_POOL_MSG = "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer";

/**
 * struct io_tlb_mem: an allocator with its pool (the non-dynamic build has exactly one).
 * The default one, or a restricted-dma-pool (1 area, force_bounce, for_alloc).
 */
export class IoTlbMem {
  constructor(
    /** "default", or the reserved-memory node name of a restricted pool */
    readonly name: string,
    readonly pool: IoTlbPool,
    /** mem->force_bounce (6.x); the 5.13 equivalent is the global swiotlb_force */
    public forceBounce: boolean,
    readonly forAlloc: boolean,
    readonly lateAlloc: boolean,
  ) {}

  get nslabs(): number {
    return this.pool.nslabs;
  }
  /** 5.13 mem->used; 6.x mem_used() (debugfs build: total_used) */
  get used(): number {
    return this.pool.counters[CNT_TOTAL_USED]!;
  }
  get usedHiwater(): number {
    return this.pool.counters[CNT_HIWATER]!;
  }
  get start(): number {
    return this.pool.start;
  }
  get end(): number {
    return this.pool.end;
  }
}

/** debugfs files of one mem, by their kernel names */
export interface SwiotlbStats {
  io_tlb_nslabs: number;
  io_tlb_used: number;
  /** 6.7+ only */
  io_tlb_used_hiwater?: number;
}

export interface SwiotlbOptions {
  /** the boot allocator that places the pool; one over `memory` is made when absent */
  memblock?: Memblock;
  /** num_possible_cpus(), for the 6.x default area count (default 1) */
  possibleCpus?: number;
  /** the emulated jiffies the rate-limited messages are timed in (default: a clock of its own) */
  clock?: EmulatedClock;
}

/** limit_nareas (6.x): never more areas than whole segments */
export function limitNareas(nareas: number, nslots: number): number {
  if (nslots < nareas * IO_TLB_SEGSIZE) return Math.floor(nslots / IO_TLB_SEGSIZE);
  return nareas;
}

function isPow2(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}
function roundupPow2(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}
/** get_order(bytes) for a page size */
function getOrder(bytes: number, pageSize: number): number {
  const pages = Math.ceil(bytes / pageSize);
  return pages <= 1 ? 0 : Math.ceil(Math.log2(pages));
}

export class Swiotlb {
  readonly memory: PhysicalMemory;
  readonly profile: KernelProfile;
  readonly log: KernelLog;
  readonly events: EventSink;
  readonly memblock: Memblock;
  readonly pageSize: number;
  readonly possibleCpus: number;

  /**
   * io_tlb_default_mem. 5.13: the pointer, NULL until an init path publishes it (the Xen
   * regression reads through it while NULL). 6.x: null stands for the static mem with
   * nslabs == 0 (no pool).
   */
  get defaultMem(): IoTlbMem | null {
    return this.mem;
  }
  set defaultMem(m: IoTlbMem | null) {
    this.mem = m;
    // the hot path follows the default pool (a 6.x pool that starts on a slot boundary)
    this.plain = m !== null ? PlainPath.create(m.pool, this.memory, this.copier) : null;
  }
  private mem: IoTlbMem | null = null;
  /** the hot path of the default pool, or null (see plainPath) */
  private plain: PlainPath | null = null;
  /** restricted-dma-pool allocators by reserved-memory node name (5.15+) */
  readonly restrictedMems = new Map<string, IoTlbMem>();

  /** default_nslabs (both eras) */
  defaultNslabs = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT;
  /** default_nareas (6.x): 0 until decided */
  defaultNareas = 0;
  /** 5.13 global swiotlb_force */
  private force: SwiotlbForce = SWIOTLB_NORMAL;
  /** 6.x swiotlb_force_bounce / swiotlb_force_disable ("force" / "noforce") */
  forceBounceParam = false;
  forceDisable = false;
  /** 5.13 swiotlb_max_segment() state */
  private maxSegment = 0;
  /** the bounce copy (also what the benchmark's copy limit measures) */
  readonly copier: BounceCopy;
  /** emulated time of the rate-limited messages */
  readonly clock: EmulatedClock;
  /**
   * 6.x io_tlb_default_mem.force_bounce while the static mem has no pool: swiotlb_init_remap and
   * swiotlb_init_late set it before they try to allocate, so it outlives a failed allocation
   */
  private staticForceBounce = false;
  // one ratelimit_state per dev_warn_ratelimited call site in swiotlb_tbl_map_single
  private readonly rsNoPool: RatelimitState;
  private readonly rsFull: RatelimitState;
  /** maps that found the pool full and said so ("swiotlb buffer is full"), printed or rate-limited */
  fullCount = 0;

  constructor(memory: PhysicalMemory, profile: KernelProfile, log: KernelLog, events: EventSink, opts: SwiotlbOptions = {}) {
    this.memory = memory;
    this.profile = profile;
    this.log = log;
    this.events = events;
    this.memblock = opts.memblock ?? new Memblock(memory);
    this.pageSize = memory.granule;
    this.possibleCpus = opts.possibleCpus ?? 1;
    this.copier = new BounceCopy(memory);
    this.clock = opts.clock ?? new EmulatedClock();
    this.rsNoPool = new RatelimitState(this.clock, "swiotlb_tbl_map_single");
    this.rsFull = new RatelimitState(this.clock, "swiotlb_tbl_map_single");
    if (!Number.isInteger(this.possibleCpus) || this.possibleCpus < 1)
      throw new InvalidArgumentError(`possible CPUs ${this.possibleCpus}: must be a positive integer`);
  }

  // ================================================================ state

  /** 5.13 `swiotlb_force` (SWIOTLB_NORMAL / _FORCE / _NO_FORCE). 6.x derives it from the booleans. */
  get forceState(): SwiotlbForce {
    if (this.profile.globalSwiotlbForce) return this.force;
    return this.forceDisable ? SWIOTLB_NO_FORCE : this.forceBounceParam ? SWIOTLB_FORCE : SWIOTLB_NORMAL;
  }
  /** arm64 mem_init sets NO_FORCE (5.13); the cmdline sets FORCE / NO_FORCE */
  set forceState(v: SwiotlbForce) {
    if (v !== 0 && v !== 1 && v !== 2) throw new InvalidArgumentError(`swiotlb_force ${String(v)}: must be 0, 1 or 2`);
    if (this.profile.globalSwiotlbForce) this.force = v;
    else {
      this.forceBounceParam = v === SWIOTLB_FORCE;
      this.forceDisable = v === SWIOTLB_NO_FORCE;
    }
  }

  /** dev->dma_io_tlb_mem (5.15+), else the default mem */
  memFor(dev: SwiotlbDevice): IoTlbMem | null {
    const n = dev.ioTlbMemName;
    if (n === undefined || !this.profile.restrictedDmaPool) return this.defaultMem;
    const m = this.restrictedMems.get(n);
    if (m === undefined) throw new InvalidArgumentError(`${dev.name}: restricted DMA pool '${n}' does not exist`);
    return m;
  }

  // ================================================================ command line

  /** Applies a parsed `swiotlb=` (see cmdline.ts) the way setup_io_tlb_npages does. */
  applyCmdline(c: SwiotlbCmdline): void {
    if (c.nslabs !== undefined) this.defaultNslabs = c.nslabs;
    if (c.nareas !== undefined && this.profile.cmdlineAreas) this.adjustNareas(c.nareas);
    if (c.force === "force") {
      if (this.profile.globalSwiotlbForce) this.force = SWIOTLB_FORCE;
      else this.forceBounceParam = true;
    } else if (c.force === "noforce") {
      if (this.profile.globalSwiotlbForce) {
        this.force = SWIOTLB_NO_FORCE;
        // before 2726bf3ff252 (5.13-rc1) noforce shrank the pool to one slot instead
        if (!this.profile.noForceSkipsAllocation) this.defaultNslabs = 1;
      } else this.forceDisable = true;
    }
  }

  /** swiotlb_adjust_nareas (6.x) */
  adjustNareas(n: number): void {
    if (n === 0) n = 1;
    else if (!isPow2(n)) n = roundupPow2(n);
    this.defaultNareas = n;
    this.log.print(`${PR}area num ${n}.`);
    if (this.roundUpDefaultNslabs())
      this.log.print(`${PR}SWIOTLB bounce buffer size roundup to ${Math.floor((this.defaultNslabs * IO_TLB_SIZE) / 2 ** 20)}MB`);
  }

  /** round_up_default_nslabs (6.x) */
  private roundUpDefaultNslabs(): boolean {
    if (this.defaultNareas === 0) return false;
    if (this.defaultNslabs < IO_TLB_SEGSIZE * this.defaultNareas) this.defaultNslabs = IO_TLB_SEGSIZE * this.defaultNareas;
    else if (isPow2(this.defaultNslabs)) return false;
    this.defaultNslabs = roundupPow2(this.defaultNslabs);
    return true;
  }

  /** swiotlb_adjust_size: arch code asking for a different default size */
  adjustSize(size: number): void {
    // dfc06b389a4f (5.13): a size the user gave on the command line wins
    if (this.defaultNslabs !== IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT) return;
    size = Math.ceil(size / IO_TLB_SIZE) * IO_TLB_SIZE;
    this.defaultNslabs = Math.ceil(Math.floor(size / IO_TLB_SIZE) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
    if (this.profile.areas && this.roundUpDefaultNslabs()) size = this.defaultNslabs * IO_TLB_SIZE;
    this.log.print(`${PR}SWIOTLB bounce buffer size adjusted to ${Math.floor(size / 2 ** 20)}MB`);
  }

  // ================================================================ init (5.13)

  private skipForNoForce(): boolean {
    return this.profile.globalSwiotlbForce && this.profile.noForceSkipsAllocation && this.force === SWIOTLB_NO_FORCE;
  }

  /**
   * 5.13 swiotlb_init(verbose): the default pool from low memory (memblock_alloc_low below
   * `lowLimit`, exclusive — arm64's ARCH_LOW_ADDRESS_LIMIT + 1 = arm64_dma_phys_limit).
   */
  swiotlbInit(verbose: boolean, lowLimit = Infinity): void {
    this.requireEra("5.13", "swiotlb_init(verbose)");
    if (this.skipForNoForce()) return;
    const bytes = this.pageAlign(this.defaultNslabs * IO_TLB_SIZE);
    const tlb = this.memblock.allocTopDown(bytes, this.pageSize, lowLimit, "swiotlb");
    if (tlb >= 0) {
      if (this.swiotlbInitWithTbl(tlb, this.defaultNslabs, verbose) === 0) return;
      this.memblock.free(tlb);
    }
    this.log.print(`${PR}Cannot allocate buffer`);
  }

  /** 5.13 swiotlb_init_with_tbl: 0, or -ENOMEM when a default mem already exists. */
  swiotlbInitWithTbl(tlb: number, nslabs: number, verbose: boolean): number {
    return this.initWithTbl513("swiotlb_init_with_tbl", tlb, nslabs, false, verbose);
  }

  /** 5.13 swiotlb_late_init_with_default_size: page-order loop below `limit` (GFP_DMA zone end). */
  swiotlbLateInitWithDefaultSize(defaultSize: number, limit = Infinity): number {
    this.requireEra("5.13", "swiotlb_late_init_with_default_size");
    if (this.skipForNoForce()) return 0;
    const late = this.lateAlloc(defaultSize, limit);
    if (late === null) return -ENOMEM;
    const { vstart, nslabs } = late;
    const rc = this.swiotlbLateInitWithTbl(vstart, nslabs);
    if (rc !== 0) this.memblock.free(vstart);
    return rc;
  }

  /**
   * The late-init allocation both eras share (5.13 swiotlb_late_init_with_default_size, 6.x
   * swiotlb_init_late): `size` rounded to whole segments, then to a page order; halve the order
   * until the pages are found below `limit` or the pool would drop to IO_TLB_MIN_SLABS, saying so
   * when it shrank. Null when nothing could be had (-ENOMEM).
   */
  private lateAlloc(size: number, limit: number): { vstart: number; nslabs: number } | null {
    const slabsPerPage = this.pageSize / IO_TLB_SIZE;
    const nslabs = Math.ceil(Math.floor(size / IO_TLB_SIZE) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
    const wanted = getOrder(nslabs * IO_TLB_SIZE, this.pageSize);
    for (let order = wanted; slabsPerPage * 2 ** order > IO_TLB_MIN_SLABS; order--) {
      const sz = this.pageSize * 2 ** order;
      const vstart = this.memblock.allocTopDown(sz, sz, limit, "swiotlb");
      if (vstart < 0) continue;
      if (order !== wanted) this.log.print(`${PR}only able to allocate ${Math.floor(sz / 2 ** 20)} MB`);
      return { vstart, nslabs: slabsPerPage * 2 ** order };
    }
    return null;
  }

  /** 5.13 swiotlb_late_init_with_tbl: 0, or -ENOMEM when a default mem already exists. */
  swiotlbLateInitWithTbl(tlb: number, nslabs: number): number {
    // the late variant always prints the pool
    return this.initWithTbl513("swiotlb_late_init_with_tbl", tlb, nslabs, true, true);
  }

  /**
   * What the two 5.13 *_with_tbl entry points share: nothing under NO_FORCE (2726bf3ff252), the
   * double-initialisation refusal (one-time WARN, -ENOMEM), then publish the pool.
   */
  private initWithTbl513(fn: string, tlb: number, nslabs: number, late: boolean, verbose: boolean): number {
    this.requireEra("5.13", fn);
    if (this.skipForNoForce()) return 0;
    if (this.defaultMem !== null) {
      this.log.printOnce(`${fn}:double`, `WARNING: at kernel/dma/swiotlb.c ${fn}`);
      return -ENOMEM;
    }
    this.checkTbl(tlb, nslabs);
    this.publish513(tlb, nslabs, late);
    if (verbose) this.printInfo();
    return 0;
  }

  private publish513(tlb: number, nslabs: number, late: boolean): void {
    const pool = this.newPool({
      start: tlb,
      nslabs,
      nareas: 1,
      era: "5.13",
      pageSize: this.pageSize,
      listClippedTail: this.profile.listU16ClippedTail,
    });
    // late init memsets the buffer; early pools get it in swiotlb_update_mem_attributes
    this.zeroFill(tlb, nslabs * IO_TLB_SIZE);
    this.defaultMem = new IoTlbMem("default", pool, false, false, late);
    this.maxSegment = nslabs * IO_TLB_SIZE;
  }

  /** 5.13 swiotlb_max_segment() */
  swiotlbMaxSegment(): number {
    if (this.defaultMem === null) return 0;
    if (this.force === SWIOTLB_FORCE) return 1;
    return this.maxSegment - (this.maxSegment % this.pageSize);
  }

  // ================================================================ init (6.x)

  /**
   * 6.x swiotlb_init_remap(addressing_limit, flags, NULL) = swiotlb_init(addressing_limit, flags):
   * the default pool from low memory below `lowLimit` (exclusive), anywhere with SWIOTLB_ANY.
   */
  swiotlbInitRemap(addressingLimit: boolean, flags: number, lowLimit = Infinity): void {
    this.requireEra("6.x", "swiotlb_init_remap");
    if (!addressingLimit && !this.forceBounceParam) return;
    if (this.forceDisable) return;
    if (this.defaultMem !== null) return; // the static mem would be overwritten; not a real path
    const forceBounce = this.forceBounceParam || (flags & SWIOTLB_FORCE_FLAG) !== 0;
    // set on the static mem before the allocation, which may still fail
    this.staticForceBounce = forceBounce;
    if (this.defaultNareas === 0) this.adjustNareas(this.possibleCpus);
    let nslabs = this.defaultNslabs;
    let nareas = limitNareas(this.defaultNareas, nslabs);
    const limit = flags & SWIOTLB_ANY ? Infinity : lowLimit;
    let tlb: number;
    for (;;) {
      const bytes = this.pageAlign(nslabs * IO_TLB_SIZE);
      tlb = this.memblock.allocTopDown(bytes, this.pageSize, limit, "swiotlb");
      if (tlb >= 0) break;
      this.log.print(`${PR}swiotlb_memblock_alloc: Failed to allocate ${bytes} bytes tlb structure`);
      if (nslabs <= IO_TLB_MIN_SLABS) return;
      nslabs = Math.ceil(Math.floor(nslabs / 2) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
      nareas = limitNareas(nareas, nslabs);
    }
    if (this.defaultNslabs !== nslabs) {
      this.log.print(`${PR}SWIOTLB bounce buffer size adjusted ${this.defaultNslabs} -> ${nslabs} slabs`);
      this.defaultNslabs = nslabs;
    }
    this.publish6x(tlb, nslabs, nareas, forceBounce, false);
    if (flags & SWIOTLB_VERBOSE) this.printInfo();
  }

  /** 6.x swiotlb_init_late(size, gfp): page-order loop below `limit` (the gfp zone end). */
  swiotlbInitLate(size: number, limit = Infinity): number {
    this.requireEra("6.x", "swiotlb_init_late");
    // the double-init protection of 6.x: a pool exists, nothing to do
    if (this.defaultMem !== null) return 0;
    if (this.forceDisable) return 0;
    const forceBounce = this.forceBounceParam;
    this.staticForceBounce = forceBounce;
    if (this.defaultNareas === 0) this.adjustNareas(this.possibleCpus);
    const late = this.lateAlloc(size, limit);
    if (late === null) return -ENOMEM;
    const { vstart, nslabs } = late;
    const nareas = limitNareas(this.defaultNareas, nslabs);
    this.publish6x(vstart, nslabs, nareas, forceBounce, true);
    this.printInfo();
    return 0;
  }

  private publish6x(tlb: number, nslabs: number, nareas: number, forceBounce: boolean, late: boolean): void {
    const pool = this.newPool({
      start: tlb,
      nslabs,
      nareas: Math.max(1, nareas),
      era: "6.x",
      pageSize: this.pageSize,
      listClippedTail: this.profile.listU16ClippedTail,
    });
    this.zeroFill(tlb, nslabs * IO_TLB_SIZE);
    this.defaultMem = new IoTlbMem("default", pool, forceBounce, false, late);
  }

  /** swiotlb_exit: 5.13 drops the mem (not the buffer); 6.x is a no-op under force_bounce. */
  swiotlbExit(): void {
    const m = this.defaultMem;
    if (m === null) return;
    if (!this.profile.globalSwiotlbForce) {
      if (m.forceBounce) return;
      this.log.print(`${PR}tearing down default memory pool`);
      this.memblock.free(m.start);
    }
    this.defaultMem = null;
  }

  /**
   * A restricted-dma-pool reserved-memory node (5.15+): 1 area, force_bounce, for_alloc.
   * Devices select it with `ioTlbMemName`.
   */
  addRestrictedPool(name: string, base: number, size: number): IoTlbMem {
    if (!this.profile.restrictedDmaPool)
      throw new UsageError(`restricted DMA pool '${name}': kernel ${this.profile.version} has none (5.15+)`);
    if (this.restrictedMems.has(name)) throw new InvalidArgumentError(`restricted DMA pool '${name}' already exists`);
    const nslabs = Math.floor(size / IO_TLB_SIZE);
    if (!Number.isSafeInteger(base) || base % this.pageSize !== 0 || nslabs < 1)
      throw new InvalidArgumentError(`restricted DMA pool '${name}' at ${hex(base)} size ${hex(size)}: needs a page-aligned base and at least one slot`);
    if (!this.memory.isRam(base, size)) throw new InvalidArgumentError(`restricted DMA pool '${name}' [${hex(base)}+${hex(size)}] is not RAM`);
    this.log.print(`${PR}Reserved memory: created restricted DMA pool at ${fmtPa(base)}, size ${Math.floor(size / 2 ** 20)} MiB`);
    const pool = this.newPool({ start: base, nslabs, nareas: 1, era: "6.x", pageSize: this.pageSize, listClippedTail: this.profile.listU16ClippedTail });
    this.zeroFill(base, nslabs * IO_TLB_SIZE);
    const m = new IoTlbMem(name, pool, true, true, false);
    this.restrictedMems.set(name, m);
    return m;
  }

  /** swiotlb_print_info */
  printInfo(): void {
    const m = this.defaultMem;
    if (m === null) {
      this.log.print(`${PR}No low mem`);
      return;
    }
    this.log.print(`${PR}mapped [mem ${fmtPa(m.start)}-${fmtPa(m.end)}] (${Math.floor((m.nslabs * IO_TLB_SIZE) / 2 ** 20)}MB)`);
  }

  // ================================================================ predicates

  /** is_swiotlb_active: 5.13 the mem exists; 6.x the device's mem has slots */
  isActive(dev?: SwiotlbDevice): boolean {
    if (dev === undefined || this.profile.globalSwiotlbForce) return this.defaultMem !== null;
    const m = this.memFor(dev);
    return m !== null && m.nslabs !== 0;
  }

  /** is_swiotlb_force_bounce(dev) (5.15+); 5.13: swiotlb_force == SWIOTLB_FORCE */
  isForceBounce(dev: SwiotlbDevice): boolean {
    if (this.profile.globalSwiotlbForce) return this.force === SWIOTLB_FORCE;
    const m = this.memFor(dev);
    // no mem object: the device uses the static default mem, which has no pool
    return m !== null ? m.forceBounce : this.staticForceBounce;
  }

  /** io_tlb_default_mem.force_bounce (6.x), with or without a pool; 5.13: false (no such field) */
  get defaultForceBounce(): boolean {
    if (this.profile.globalSwiotlbForce) return false;
    return this.mem !== null ? this.mem.forceBounce : this.staticForceBounce;
  }

  /** swiotlb_find_pool / the pool behind is_swiotlb_buffer */
  findPool(dev: SwiotlbDevice, phys: number): IoTlbPool | null {
    const m = this.memFor(dev);
    if (m === null) return null;
    const p = m.pool;
    return phys >= p.start && phys < p.end ? p : null;
  }

  isSwiotlbBuffer(dev: SwiotlbDevice, phys: number): boolean {
    return this.findPool(dev, phys) !== null;
  }

  /** swiotlb_max_mapping_size */
  maxMappingSize(dev: SwiotlbDevice): number {
    const m = dev.minAlignMask;
    // 6.10+: a min_align_mask eats into the segment (the offset must fit too)
    if (this.profile.maxMappingSubtractsMinAlign && m !== 0) return IO_TLB_SEG_BYTES - Math.ceil(m / IO_TLB_SIZE) * IO_TLB_SIZE;
    return IO_TLB_SEG_BYTES;
  }

  /**
   * A new pool's slot table: in the RAM arena when there is one (the hot path's WebAssembly
   * code addresses the table and the bounce slots in that one memory, see PlainPath), else in
   * a SharedArrayBuffer of its own.
   */
  private newPool(p: IoTlbPoolParams): IoTlbPool {
    const arena = this.memory.arena;
    const off = arena === null ? -1 : arena.allocState(IoTlbPool.bytesFor(p.nslabs, p.nareas));
    if (arena === null || off < 0) return new IoTlbPool(p);
    const pool = new IoTlbPool(p, arena.memory.buffer, off, false);
    pool.arenaOffset = off;
    return pool;
  }

  // ================================================================ map / unmap / sync

  /**
   * swiotlb_tbl_map_single. The fourth argument is `alloc_size` in 5.13 and
   * `alloc_align_mask` in 6.x (the 6.10 signature). `cpu` is raw_smp_processor_id().
   * Returns tlb_addr (a physical address) or DMA_MAPPING_ERROR (-1).
   */
  tblMapSingle(dev: SwiotlbDevice, orig: number, mappingSize: number, allocSizeOrAlignMask: number, dir: DmaDirection, attrs: number, cpu = 0): number {
    if (this.mapFaultHook !== null && this.mapFaultHook()) return this.injectedFull(dev, mappingSize, attrs);
    // the hot path: a plain request does exactly what the general path does (PlainPath).
    // Kept small so that callers inline it: no address crosses a call (the original goes
    // through PlainPath.origArg, the slot number comes back and the address is made here:
    // a double passed to or returned from a call V8 does not inline is boxed on the heap).
    const path = this.plainPath(dev);
    if (path !== null && allocSizeOrAlignMask === 0) {
      path.origArg[0] = orig;
      const slot = path.map(mappingSize, cpu);
      if (slot >= 0) return path.start + slot * IO_TLB_SIZE;
    }
    return this.tblMapSingleFull(dev, orig, mappingSize, allocSizeOrAlignMask, dir, attrs, cpu);
  }

  /**
   * The bounce copy the map/unmap hot path uses for the default pool (what the benchmark's
   * copy limit times), or null without a pool.
   */
  hotBounce(): HotBounce | null {
    const m = this.defaultMem;
    if (m === null) return null;
    return this.plain ?? new PoolBounce(this.copier, m.pool);
  }

  /**
   * The plain path of the default pool when a map (with no alloc_align_mask) or unmap from
   * `dev` may take it: there is one (see defaultMem), the device's mem is the default one, no
   * min_align_mask, a plain bus view (no range map, no segment boundary), nobody tracing.
   * Else null. Small, as its callers: V8 inlines them into the caller's loop.
   */
  private plainPath(dev: SwiotlbDevice): PlainPath | null {
    const p = this.plain;
    if (p === null || this.events.active || dev.minAlignMask !== 0 || dev.ioTlbMemName !== undefined || dev.plainBus !== true) return null;
    return p;
  }

  private tblMapSingleFull(dev: SwiotlbDevice, orig: number, mappingSize: number, allocSizeOrAlignMask: number, dir: DmaDirection, attrs: number, cpu: number): number {
    const mem = this.memFor(dev);
    const p = this.profile;
    if (mem === null) {
      if (p.mapWithoutPoolPanics) throw new KernelPanic(NO_POOL_MSG);
      if (this.rsNoPool.allow(this.log)) this.log.print(`${dev.name}: ${NO_POOL_MSG}`);
      return -1;
    }
    // size 0 would mark no slot yet record a mapping on a slot someone else may hold
    if (!(mappingSize >= 1) || !Number.isSafeInteger(mappingSize))
      throw new InvalidArgumentError(`${dev.name}: swiotlb map of ${mappingSize} bytes at ${hex(orig)}: the size must be a positive integer`);
    const pool = mem.pool;
    const minAlign = dev.minAlignMask >>> 0;
    // tbl_dma_addr = phys_to_dma_unencrypted(start) & boundary mask; max_slots from the mask
    let tblDma = dev.physToDma(pool.start);
    let maxSlots = 0;
    const bmask = dev.segBoundaryMask;
    if (bmask < 2 ** 53 - 1) {
      tblDma = and53(tblDma, bmask);
      maxSlots = p.allocAlignMaskArg ? Math.floor(bmask / IO_TLB_SIZE) + 1 : Math.ceil((bmask + 1) / IO_TLB_SIZE);
      // iommu_is_span_boundary BUGs on a window that is not a power of two
      if (!isPow2(maxSlots)) throw new KernelBug(`include/linux/iommu-helper.h (boundary of ${maxSlots} slots from segment boundary mask ${hex(bmask)})`);
    }
    let tlb: number;
    if (p.allocAlignMaskArg) {
      const alignMask = allocSizeOrAlignMask >>> 0;
      if (alignMask > this.pageSize - 1)
        this.log.printOnce("swiotlb_tbl_map_single:align", `${dev.name}: Alloc alignment may prevent fulfilling requests with max mapping_size`);
      tlb = pool.mapSlots(cpu, orig, mappingSize, alignMask, minAlign, tblDma, maxSlots);
      if (tlb < 0) {
        if ((attrs & DMA_ATTR_NO_WARN) === 0) {
          const offset = (orig & minAlign & (alignMask | (IO_TLB_SIZE - 1))) >>> 0;
          this.warnFull(dev, mem, alignedSize(mappingSize + offset, alignMask), { orig, size: mappingSize, alloc: alignMask, min_align_mask: minAlign, cpu });
        }
        return -1;
      }
    } else {
      const allocSize = allocSizeOrAlignMask;
      if (mappingSize > allocSize) {
        this.log.printOnce("swiotlb_tbl_map_single:sizes", `${dev.name}: Invalid sizes (mapping: ${mappingSize} bytes, alloc: ${allocSize} bytes)`);
        return -1;
      }
      tlb = pool.mapSlots513(orig, allocSize, minAlign, tblDma, maxSlots);
      if (tlb < 0) {
        if (tlb === FIND_SPIN)
          this.log.print(
            `${PR}dmalab: find_slots would spin forever here (the real kernel soft-locks up) after ${pool.lastVisits - 1} visits; answering full`,
          );
        if ((attrs & DMA_ATTR_NO_WARN) === 0) this.warnFull(dev, mem, allocSize, { orig, size: mappingSize, alloc: allocSize, min_align_mask: minAlign, cpu });
        return -1;
      }
    }
    // 6.x copies at map time whatever the direction (2022 info-leak fix); 5.13 only TO/BIDIR
    if (p.mapAlwaysCopies || ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL))) {
      try {
        this.bounce(dev, pool, tlb, mappingSize, DMA_TO_DEVICE);
      } catch (e) {
        // a fault on the original buffer: give the slots back so the pool is as before
        pool.undoLastMap(tlb, minAlign);
        throw e;
      }
    }
    // cpu, alloc (alloc_align_mask in 6.x, alloc_size in 5.13) and min_align_mask: what a replay trace needs
    if (this.events.active)
      this.events.emit("swiotlb_map", { dev: dev.name, orig, tlb_addr: tlb, size: mappingSize, dir, cpu, alloc: allocSizeOrAlignMask, min_align_mask: minAlign, pool: mem.name });
    return tlb;
  }

  /**
   * Fault injection (`dmalab soak --inject pool-full@P`): when set and it answers true, the map
   * finds the pool full, with the kernel's warning. null (the default) costs one test.
   */
  mapFaultHook: (() => boolean) | null = null;

  private injectedFull(dev: SwiotlbDevice, size: number, attrs: number): number {
    const mem = this.memFor(dev);
    if (mem !== null && (attrs & DMA_ATTR_NO_WARN) === 0) this.warnFull(dev, mem, size, { size });
    return -1;
  }

  /** `req`: the refused request (orig, size, alloc, min_align_mask, cpu), for traces */
  private warnFull(dev: SwiotlbDevice, mem: IoTlbMem, sz: number, req: Record<string, number>): void {
    this.fullCount++;
    if (this.rsFull.allow(this.log))
      this.log.print(`${dev.name}: swiotlb buffer is full (sz: ${sz} bytes), total ${mem.nslabs} (slots), used ${mem.used} (slots)`);
    if (this.events.active) this.events.emit("swiotlb_full", { ...req, dev: dev.name, size: sz, total: mem.nslabs, used: mem.used, pool: mem.name, map_size: req["size"]! });
  }

  /**
   * swiotlb_tbl_unmap_single: optional copy back (FROM/BIDIR without SKIP_CPU_SYNC), then
   * release. An address that is not a live mapping is refused with nothing changed.
   */
  tblUnmapSingle(dev: SwiotlbDevice, tlbAddr: number, mappingSize: number, dir: DmaDirection, attrs: number): void {
    // the hot path for plain mappings (see tblMapSingle): the same checks, copy and release
    const path = this.plainPath(dev);
    if (path !== null) {
      const rel = tlbAddr - path.start;
      // a slot start inside the pool (below 2^31 the bit test is exact; PlainPath checks the slot)
      if (rel >= 0 && rel < path.bytes && (rel & (IO_TLB_SIZE - 1)) === 0 && path.unmap(rel >>> IO_TLB_SHIFT, mappingSize, dir, attrs)) return;
    }
    this.tblUnmapSingleFull(dev, tlbAddr, mappingSize, dir, attrs);
  }

  private tblUnmapSingleFull(dev: SwiotlbDevice, tlbAddr: number, mappingSize: number, dir: DmaDirection, attrs: number): void {
    const pool = this.livePool(dev, tlbAddr, "unmap");
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL))
      this.bounce(dev, pool, tlbAddr, mappingSize, DMA_FROM_DEVICE);
    pool.releaseSlots(tlbAddr, dev.minAlignMask >>> 0);
    if (this.events.active) this.events.emit("swiotlb_unmap", { dev: dev.name, tlb_addr: tlbAddr, size: mappingSize, dir });
  }

  /** swiotlb_sync_single_for_device: orig -> bounce for TO/BIDIR; FROM does nothing; else BUG */
  syncSingleForDevice(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.poolOf(dev, tlbAddr, "sync_single_for_device");
    if (dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, pool, tlbAddr, size, DMA_TO_DEVICE);
    else if (dir !== DMA_FROM_DEVICE) throw new KernelBug(`kernel/dma/swiotlb.c (swiotlb_sync_single_for_device, dir ${dir})`);
    if (this.events.active) this.events.emit("swiotlb_sync", { dev: dev.name, tlb_addr: tlbAddr, size, dir, target: "device" });
  }

  /** swiotlb_sync_single_for_cpu: bounce -> orig for FROM/BIDIR; TO does nothing; else BUG */
  syncSingleForCpu(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void {
    const pool = this.poolOf(dev, tlbAddr, "sync_single_for_cpu");
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, pool, tlbAddr, size, DMA_FROM_DEVICE);
    else if (dir !== DMA_TO_DEVICE) throw new KernelBug(`kernel/dma/swiotlb.c (swiotlb_sync_single_for_cpu, dir ${dir})`);
    if (this.events.active) this.events.emit("swiotlb_sync", { dev: dev.name, tlb_addr: tlbAddr, size, dir, target: "cpu" });
  }

  /**
   * swiotlb_map: bounce, translate, re-check dma_capable. Returns the DMA address or
   * DMA_MAPPING_ERROR (-1).
   */
  swiotlbMap(dev: SwiotlbDevice, paddr: number, size: number, dir: DmaDirection, attrs: number, cpu = 0): number {
    if (this.events.active) {
      const f: Record<string, number | string> = { dev: dev.name, dev_addr: dev.physToDma(paddr), size };
      if (this.profile.globalSwiotlbForce) f["force"] = SWIOTLB_FORCE_NAMES[this.force];
      this.events.emit("swiotlb_bounced", f);
    }
    const tlb = this.profile.allocAlignMaskArg
      ? this.tblMapSingle(dev, paddr, size, 0, dir, attrs, cpu)
      : this.tblMapSingle(dev, paddr, size, size, dir, attrs, cpu);
    if (tlb === -1) return -1;
    const dma = dev.physToDma(tlb);
    if (dma === -1 || !dev.dmaCapable(dma, size, true)) {
      this.tblUnmapSingle(dev, tlb, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      this.log.printOnce(
        "swiotlb_map:overflow",
        `${dev.name}: swiotlb addr ${fmtPa(dma === -1 ? tlb : dma)}+${size} overflow (mask ${dev.dmaMask.toString(16)}, bus limit ${dev.busDmaLimit.toString(16)}).`,
      );
      return -1;
    }
    // arch_sync_dma_for_device for non-coherent devices: caches are not modelled
    return dma;
  }

  /**
   * swiotlb_bounce: copy between the original buffer and the bounce slot(s) of `tlbAddr`.
   * 5.13 copies from the slot's orig_addr as is (no tlb offset, fixed in 5.14); 6.x applies the
   * offset into the mapping. Overflows are clamped with a one-time warning.
   */
  bounce(dev: SwiotlbDevice, pool: IoTlbPool, tlbAddr: number, size: number, dir: DmaDirection): void {
    const index = Math.floor((tlbAddr - pool.start) / IO_TLB_SIZE);
    let orig = pool.origAddr[index]!;
    if (orig === INVALID_PHYS_ADDR) return;
    // alloc_size is a u64 held signed: negative means a huge unsigned value
    let avail = pool.allocSize[index]!;
    if (this.profile.bounceAppliesOffset) {
      const delta = (tlbAddr & (IO_TLB_SIZE - 1)) - (orig & dev.minAlignMask & (IO_TLB_SIZE - 1));
      orig += delta;
      avail -= delta;
    }
    if (avail >= 0 && size > avail) {
      this.log.printOnce("swiotlb_bounce:overflow", `${dev.name}: Buffer overflow detected. Allocation size: ${avail}. Mapping size: ${size}.`);
      size = avail;
    }
    if (dir === DMA_TO_DEVICE) this.memory.copy(tlbAddr, orig, size);
    else this.memory.copy(orig, tlbAddr, size);
    if (this.events.active)
      this.events.emit("swiotlb_sync", { dev: dev.name, tlb_addr: tlbAddr, orig, size, dir, target: dir === DMA_TO_DEVICE ? "bounce" : "orig" });
  }

  // ================================================================ debugfs

  /** the debugfs files of a mem (default: the default mem); null when the kernel has none */
  stats(mem: IoTlbMem | null = this.defaultMem): SwiotlbStats | null {
    if (mem === null) return null;
    const s: SwiotlbStats = { io_tlb_nslabs: mem.nslabs, io_tlb_used: mem.used };
    if (this.profile.debugfsHiwater) s.io_tlb_used_hiwater = mem.usedHiwater;
    return s;
  }

  /** write to io_tlb_used_hiwater: only 0 resets it; anything else is -EINVAL */
  writeUsedHiwater(value: number, mem: IoTlbMem | null = this.defaultMem): number {
    if (!this.profile.debugfsHiwater || mem === null)
      throw new InvalidArgumentError(`io_tlb_used_hiwater does not exist in kernel ${this.profile.version}${mem === null ? " without a pool" : ""}`);
    if (value !== 0) return -EINVAL;
    mem.pool.counters[CNT_HIWATER] = 0;
    return 0;
  }

  // ================================================================ helpers

  private poolOf(dev: SwiotlbDevice, tlbAddr: number, what: string): IoTlbPool {
    const m = this.memFor(dev);
    if (m === null || !(tlbAddr >= m.pool.start && tlbAddr < m.pool.end))
      throw new InvalidArgumentError(`${dev.name}: swiotlb ${what} of ${hex(tlbAddr)}: not inside a swiotlb pool`);
    return m.pool;
  }

  private livePool(dev: SwiotlbDevice, tlbAddr: number, what: string): IoTlbPool {
    const pool = this.poolOf(dev, tlbAddr, what);
    const offset = tlbAddr & dev.minAlignMask & (IO_TLB_SIZE - 1);
    const index = Math.floor((tlbAddr - offset - pool.start) / IO_TLB_SIZE);
    if (index < 0 || pool.mapped[index] !== 1)
      throw new InvalidArgumentError(`${dev.name}: swiotlb ${what} of ${hex(tlbAddr)}: not a live bounce buffer`);
    return pool;
  }

  private checkTbl(tlb: number, nslabs: number): void {
    if (!Number.isSafeInteger(nslabs) || nslabs < 1) throw new InvalidArgumentError(`swiotlb: nslabs ${nslabs}`);
    if (!this.memory.isRam(tlb, nslabs * IO_TLB_SIZE))
      throw new InvalidArgumentError(`swiotlb: table [${hex(tlb)}+${hex(nslabs * IO_TLB_SIZE)}] is not RAM`);
  }

  private requireEra(era: "5.13" | "6.x", fn: string): void {
    if (this.profile.era !== era) throw new UsageError(`${fn} does not exist in kernel ${this.profile.version}`);
  }

  private pageAlign(n: number): number {
    return Math.ceil(n / this.pageSize) * this.pageSize;
  }

  /** Zero the bounce area without allocating chunks nobody touched (they read as zero). */
  private zeroFill(base: number, len: number): void {
    const mem = this.memory;
    const cs = mem.chunkSize;
    let a = base;
    const end = base + len;
    while (a < end) {
      const bank = mem.bankAt(a);
      const next = Math.min(end, Math.floor(a / cs) * cs + cs);
      if (bank !== undefined && bank.chunks[Math.floor((a - bank.base) / cs)] !== undefined) mem.fill(a, next - a, 0);
      a = next;
    }
  }
}

/** x & mask for a non-negative x < 2^53 and any mask < 2^53 */
export function and53(x: number, mask: number): number {
  const hi = Math.floor(x / 2 ** 32) & Math.floor(mask / 2 ** 32);
  const lo = (x & mask) >>> 0;
  return (hi >>> 0) * 2 ** 32 + lo;
}
