// The map/unmap hot path for plain requests on one 6.x pool: a device with no min_align_mask,
// no alloc_align_mask, no segment boundary and an identity bus view, mapping through the
// default pool while nobody traces. Swiotlb decides that a request is plain; this does the
// slot search, the claim, orig_addr, the bounce copy and the release for it, as the general
// path (IoTlbPool.mapSlots / releaseSlots, the bounce copy) would, picking the same slots and
// leaving the same table (test/bench/hot-path.test.ts runs both side by side).
//
// Its body is WebAssembly (plain-path.wat), over the one shared memory that already holds the
// RAM chunks (memory/arena.ts) and, for this, the pool's slot table (Swiotlb.newPool). Why:
// measured on the 64 B pingpong, the same steps written as flat JavaScript cost ~100 ns a pair
// in instructions alone (typed-array bounds and base loads, spills, a call chain that V8
// inlines only in part), ~45 ns in WebAssembly; a JS -> wasm call costs ~4 ns. What is left
// then is the store to a bounce slot that is not in cache; the wasm code fetches the slots
// the search will hand out next with loads, sixteen at a time (see $prefetch there): on a
// 64 MiB pool, 5 -> 20 M pairs/s in the prototype, against ~9 M for the JavaScript path.
//
// With worker threads on the pool, the module takes the area spin locks (the pool's own lock
// words, so JS and wasm exclude each other) and moves the debugfs counters atomically.
// Anything out of the ordinary — another area, an original that is not plain RAM in the
// arena, a mapping with pad slots — is answered by the general functions, which give the
// same answer.
// Only small integers cross into the module; the original's address goes through origArg.

import type { DmaDirection } from "../kernel/dma-mapping.js";
import { IO_TLB_SHIFT, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import { MemoryFault, type PhysicalMemory } from "../memory/physical-memory.js";
import { noteMissingHostFeature } from "../host-features.js";
import type { ChunkArena } from "../memory/arena.js";
import type { BounceCopy, HotBounce } from "./bounce.js";
import { AREA_WORDS, type IoTlbPool } from "./pool.js";
import { PLAIN_PATH_WASM } from "./plain-path-wasm.js";

/** entries of the original-side chunk table (direct-mapped by chunk number) */
const ORIG_TABLE = 256;
// the module's answers (see plain-path.wat)
const GENERAL = -1;
const ORIG_MISS = -2;

interface PlainExports {
  map: (size: number, cpu: number, locking: number) => number;
  unmap: (index: number, size: number, dir: number, attrs: number, locking: number) => number;
  copy: (slot: number, len: number, toBounce: number) => number;
  walk: (state: number, first: number, nslots: number, size: number, steps: number) => number;
}

/** Bytes of a copy walk's state in the module's memory (see walk in plain-path.wat). */
const WALK_STATE_BYTES = 48 + 256 * 16;

/**
 * The state of one copy walk (the benchmark's copy limit) in the module's memory: `i32` and
 * `f64` view it from its start (layout in plain-path.wat, walk).
 */
export interface CopyWalkState {
  readonly offset: number;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
}
/** the minimal WebAssembly surface used here (the ES2022 lib has no WebAssembly types) */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;
function plainModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = wasm === undefined ? null : new wasm.Module(new Uint8Array(Buffer.from(PLAIN_PATH_WASM, "base64")));
    } catch (e) {
      // a host without these wasm features: every map takes the general path (same answers)
      noteMissingHostFeature("swiotlb plain path (wasm)", e);
      compiled = null;
    }
  }
  return compiled;
}

export class PlainPath implements HotBounce {
  /** The original's address of the next map() (or copyWith()): a double is boxed when it crosses a call. */
  readonly origArg: Float64Array;
  /** pool.start: the physical address of slot 0 */
  readonly start: number;
  /** bytes of the pool an unmap may name here (all of it; the pool is below 2^31 bytes) */
  readonly bytes: number;
  private readonly wmap: (size: number, cpu: number, locking: number) => number;
  private readonly wunmap: (index: number, size: number, dir: number, attrs: number, locking: number) => number;
  private readonly wcopy: (slot: number, len: number, toBounce: number) => number;
  private readonly wwalk: (state: number, first: number, nslots: number, size: number, steps: number) => number;
  /** the chunk a miss asks for */
  private readonly miss: Int32Array;
  /** ORIG_TABLE x {chunk number (-1: empty), arena offset, length (0: not plain RAM)} */
  private readonly origTable: Int32Array;
  /** arena offset per pool chunk: -1 not looked up yet, -2 not in the arena */
  private readonly poolTable: Int32Array;
  private readonly cs: number;
  private readonly poolBase: number;
  /** no-map reserved regions exist: every copy takes the checked path */
  private readonly noMap: boolean;

  /**
   * The hot path of `pool`, or null where it cannot run: no WebAssembly, no RAM arena, a slot
   * table outside the arena, a pool the general path must serve (5.13, off a slot boundary), a
   * pool of 2^31 bytes or more.
   */
  static create(pool: IoTlbPool, memory: PhysicalMemory, copier: BounceCopy): PlainPath | null {
    const arena = memory.arena;
    const mod = plainModule();
    if (arena === null || mod === null || !pool.plainOk || pool.arenaOffset < 0) return null;
    const cs = memory.chunkSize;
    const shift = Math.log2(cs);
    const skew = pool.start - Math.floor(pool.start / cs) * cs;
    if (!Number.isInteger(shift) || shift < IO_TLB_SHIFT || shift > 30 || skew + pool.nslabs * IO_TLB_SIZE >= 2 ** 31) return null;
    const poolChunks = Math.ceil((skew + pool.nslabs * IO_TLB_SIZE) / cs);
    const tables = arena.allocState(16 + ORIG_TABLE * 12 + poolChunks * 4);
    if (tables < 0) return null;
    try {
      return new PlainPath(pool, memory, copier, arena, mod, tables, poolChunks);
    } catch (e) {
      // the module did not instantiate over this arena: the general path answers (the same)
      noteMissingHostFeature("swiotlb plain path (wasm instance)", e);
      return null;
    }
  }

  private constructor(
    readonly pool: IoTlbPool,
    private readonly memory: PhysicalMemory,
    private readonly copier: BounceCopy,
    private readonly arena: ChunkArena,
    mod: object,
    tables: number,
    poolChunks: number,
  ) {
    const buf = arena.memory.buffer;
    this.start = pool.start;
    this.bytes = pool.nslabs * IO_TLB_SIZE;
    this.cs = memory.chunkSize;
    this.poolBase = Math.floor(pool.start / this.cs) * this.cs;
    this.noMap = memory.reserved.some((r) => r.noMap === true);
    this.origArg = new Float64Array(buf, tables, 1);
    this.miss = new Int32Array(buf, tables + 8, 1);
    this.origTable = new Int32Array(buf, tables + 16, ORIG_TABLE * 3);
    for (let i = 0; i < ORIG_TABLE; i++) this.origTable[i * 3] = -1;
    this.poolTable = new Int32Array(buf, tables + 16 + ORIG_TABLE * 12, poolChunks).fill(-1);
    const o = pool.arenaOffset;
    const at = (view: { byteOffset: number }): number => o + (view.byteOffset - pool.bufferOffset);
    const inst = new wasm!.Instance(mod, {
      e: { m: arena.memory },
      g: {
        origAddr: at(pool.origAddr),
        allocSize: at(pool.allocSize),
        busy: at(pool.busy),
        padSlots: at(pool.padSlots),
        mapped: at(pool.mapped),
        areas: at(pool.areas),
        areaShift: Math.log2(AREA_WORDS * 4),
        counters: at(pool.counters),
        lockable: pool.areaNslabs % 32 === 0 ? 1 : 0,
        nareas: pool.nareas,
        areaNslabs: pool.areaNslabs,
        pageSlots: pool.pageSize >>> IO_TLB_SHIFT,
        startPhase: pool.startPhase,
        clipAt: pool.listClippedTail ? pool.nslabs : 2 ** 31 - 1,
        arg: tables,
        miss: tables + 8,
        origTable: tables + 16,
        poolTable: tables + 16 + ORIG_TABLE * 12,
        poolSkew: pool.start - this.poolBase,
        chunkShift: Math.log2(this.cs),
        chunkMask: this.cs - 1,
      },
    });
    const x = inst.exports as unknown as PlainExports;
    this.wmap = x.map;
    this.wunmap = x.unmap;
    this.wcopy = x.copy;
    this.wwalk = x.walk;
  }

  /**
   * swiotlb_tbl_map_single for a plain request of `size` bytes of origArg[0] on CPU `cpu`: the
   * slot, or -1 when the general path must answer (nothing changed then; a full pool fails
   * there the same way, with the kernel's warning).
   */
  map(size: number, cpu: number): number {
    if ((size | 0) !== size || size <= 0 || (cpu | 0) !== cpu || cpu < 0) return -1;
    // kept this small so that it and its callers inline into a caller's loop whatever else
    // V8 inlines there (see Swiotlb.tblMapSingle): the rest is mapMore's
    const r = this.wmap(size, cpu, this.pool.locking ? 1 : 0);
    return r >= 0 ? r : this.mapMore(r, size, cpu);
  }

  /**
   * map() past the module's first answer: chunk lookups to fill and ask again; -1 (no room in
   * the CPU's area, locks the module leaves alone, not plain RAM) sends the request to the
   * general path, which searches every area and gives the same answer.
   */
  private mapMore(r: number, size: number, cpu: number): number {
    const locking = this.pool.locking ? 1 : 0;
    while (r < GENERAL) {
      this.fill(r);
      r = this.wmap(size, cpu, locking);
    }
    return r;
  }

  /**
   * swiotlb_tbl_unmap_single of the plain mapping at slot `index`: copy back `size` bytes for
   * FROM_DEVICE/BIDIRECTIONAL without DMA_ATTR_SKIP_CPU_SYNC, release. False, with nothing
   * done, when the general path must answer (no mapping starts there, an overflowing size,
   * anything the module leaves to it).
   */
  unmap(index: number, size: number, dir: DmaDirection, attrs: number): boolean {
    if ((size | 0) !== size || size < 0 || (index | 0) !== index || index < 0) return false;
    const r = this.wunmap(index, size, dir, attrs, this.pool.locking ? 1 : 0);
    return r === 1 || (r < GENERAL && this.unmapMore(r, index, size, dir, attrs));
  }

  /** unmap() after a chunk lookup miss: fill, call again. */
  private unmapMore(r: number, index: number, size: number, dir: DmaDirection, attrs: number): boolean {
    const locking = this.pool.locking ? 1 : 0;
    while (r < GENERAL) {
      this.fill(r);
      r = this.wunmap(index, size, dir, attrs, locking);
    }
    return r === 1;
  }

  /**
   * The hot path's bounce copy between slot `slot` and the address in origArg[0] (rather than
   * orig_addr): what the benchmark's copy limit times (bench/copy-limit.ts), so that it
   * measures this very code.
   */
  copyWith(slot: number, len: number, toBounce: boolean): void {
    if ((len | 0) === len && len >= 0 && (slot | 0) === slot && slot >= 0 && slot < this.pool.nslabs) {
      let r = this.wcopy(slot, len, toBounce ? 1 : 0);
      while (r < GENERAL) {
        this.fill(r);
        r = this.wcopy(slot, len, toBounce ? 1 : 0);
      }
      if (r === 0) return;
    }
    if (toBounce) this.copier.toSlot(this.pool, slot, this.origArg[0]!, len);
    else this.copier.fromSlot(this.pool, slot, this.origArg[0]!, len);
  }

  /**
   * A new copy walk's state for walk(), zeroed, in the arena (next to the module's tables), or
   * null when the arena has no room left.
   */
  newWalk(): CopyWalkState | null {
    const off = this.arena.allocState(WALK_STATE_BYTES);
    if (off < 0) return null;
    const buf = this.arena.memory.buffer;
    const i32 = new Int32Array(buf, off, WALK_STATE_BYTES >>> 2).fill(0);
    return { offset: off, i32, f64: new Float64Array(buf, off, WALK_STATE_BYTES >>> 3) };
  }

  /**
   * `steps` steps of the benchmark's copy walk (walk in plain-path.wat): the hot path's copies
   * and prefetches alone. False when the module cannot do them (an original or slot that is not
   * plain RAM in the arena); the steps done so far stay done.
   */
  walk(w: CopyWalkState, first: number, nslots: number, size: number, steps: number): boolean {
    let left = steps;
    for (;;) {
      const r = this.wwalk(w.offset, first, nslots, size, left);
      left -= w.i32[3]!;
      if (r === 0) return true;
      if (r >= GENERAL) return false;
      this.fill(r);
    }
  }

  /** Answers a miss: the chunk's table entry, filled; the module is called again. */
  private fill(code: number): void {
    const k = this.miss[0]!;
    if (code === ORIG_MISS) this.fillOrig(k);
    else this.fillPool(k);
  }

  /** Original-side entry for chunk number ck: its arena offset and length, or length 0. */
  private fillOrig(ck: number): void {
    let off = 0;
    let len = 0;
    const addr = ck * this.cs;
    // banks start on chunk boundaries, so a chunk is in a bank whole or not at all
    if (!this.noMap && this.memory.bankAt(addr) !== undefined) {
      const c = this.memory.chunkAt(addr);
      const o = this.arena.offsetOf(c);
      if (o >= 0) {
        off = o;
        len = c.length;
      }
    }
    const e = (ck & (ORIG_TABLE - 1)) * 3;
    this.origTable[e] = ck;
    this.origTable[e + 1] = off | 0;
    this.origTable[e + 2] = len;
  }

  /** Pool chunk k's arena offset, or -2 when it is not in the arena. */
  private fillPool(k: number): void {
    let off = -2;
    try {
      const o = this.arena.offsetOf(this.memory.chunkAt(this.poolBase + k * this.cs));
      if (o >= 0) off = o | 0;
    } catch (e) {
      // not RAM: stays -2, and the general path reports the fault
      if (!(e instanceof MemoryFault)) throw e;
    }
    this.poolTable[k] = off;
  }
}
