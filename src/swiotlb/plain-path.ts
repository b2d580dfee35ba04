// The map/unmap hot path for plain requests on one 6.x pool: a device with no min_align_mask,
// no alloc_align_mask, no segment boundary and an identity bus view, mapping through the
// default pool while nobody traces. Swiotlb decides that a request is plain; this does the
// slot search, the claim, orig_addr, the bounce copy and the release for it, as the general
// path (IoTlbPool.searchArea / claim / releaseIndex, BounceCopy) would, picking the same
// slots and leaving the same table (test/bench/hot-path.test.ts runs both side by side).
//
// Why a path of its own: the general path is a chain of small functions (search, fits,
// claim, counters, copy dispatch, views), and V8 inlines only part of such a chain into a
// caller. Every remaining call spills registers and boxes doubles; on a 64-byte pingpong
// that overhead was ~2/3 of the time (measured 7.5 M pairs/s whether the pool was 256 or
// 32768 slots, so not the memory). Here map and unmap are one flat function each, with the
// slot geometry as literals (an imported constant is a module-cell load with a hole check in
// optimized code, and `x / IO_TLB_SIZE` stays a real division): 2048 = IO_TLB_SIZE,
// 11 = IO_TLB_SHIFT, 128 = IO_TLB_SEGSIZE.
//
// Anything out of the ordinary — a lock to take (worker threads), a run spanning two busy
// words, another area, a copy that is long, unaligned, across a chunk, overlapping its own
// slot or faulting — goes to the general functions, which give the same answer.

import type { DmaDirection } from "../kernel/dma-mapping.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { BounceCopy, HotBounce } from "./bounce.js";
import type { IoTlbPool } from "./pool.js";

/** 64-bit word copies up to this length when the original is in the RAM arena (see bounce.ts) */
const ARENA_WORD_COPY_MAX = 128;
/** the same outside the arena */
const WORD_COPY_MAX = 512;

export class PlainPath implements HotBounce {
  /**
   * The original's address of the next map() (or copyWith()): a physical address is a double,
   * and a double passed to a call V8 does not inline is boxed on the heap, so it goes here.
   */
  readonly origArg = new Float64Array(1);
  /** pool.start: the physical address of slot 0 */
  readonly start: number;
  /**
   * bytes of the pool an unmap may name here: all of it, up to 2^31 (so that the caller's
   * `rel & 2047` and `rel >>> 11` are exact); slots past that take the general path
   */
  readonly bytes: number;
  // the pool's state (shared views, see IoTlbPool)
  private readonly busy: Int32Array;
  private readonly allocSize: Float64Array;
  private readonly origAddr: Float64Array;
  private readonly padSlots: Uint16Array;
  private readonly mapped: Uint8Array;
  private readonly areaIndex: Int32Array;
  private readonly areaUsed: Int32Array;
  private readonly counters: Int32Array;
  private readonly nareas: number;
  private readonly areaNslabs: number;
  /** pages of PAGE_SIZE from this many slots up are page aligned (alloc_align_mask rule) */
  private readonly pageBytes: number;
  private readonly startPhase: number;
  /** slots at and past this are outside the kernel's list (6.10+ clipped tail), else 2^31 */
  private readonly clipAt: number;

  // the bounce side: pool chunk k (from the chunk holding pool.start) as 64-bit words
  private readonly cs: number;
  private readonly shift: number;
  private readonly poolBase: number;
  private readonly poolSkew: number;
  private readonly poolQwords: (BigInt64Array | undefined)[];
  /** no-map reserved regions exist: every copy takes the checked path */
  private readonly noMap: boolean;
  // the original side: the chunk of the last original, [oBase, oBase + oLen) (oLen 0: none)
  private oBase = 0;
  private oLen = 0;
  private oQwords: BigInt64Array | null = null;
  /** that chunk's number among the pool's chunks (for the overlap check), else -1 */
  private oPoolChunk = -1;
  private oWordMax = 0;
  /** the flat search's undo record: the area hint and high-water mark before its last claim */
  private undoIndex = 0;
  private undoHiwater = 0;

  constructor(
    readonly pool: IoTlbPool,
    private readonly memory: PhysicalMemory,
    private readonly copier: BounceCopy,
  ) {
    this.start = pool.start;
    this.bytes = Math.min(pool.nslabs * 2048, 2 ** 31);
    this.busy = pool.busy;
    this.allocSize = pool.allocSize;
    this.origAddr = pool.origAddr;
    this.padSlots = pool.padSlots;
    this.mapped = pool.mapped;
    this.areaIndex = pool.areaIndex;
    this.areaUsed = pool.areaUsed;
    this.counters = pool.counters;
    this.nareas = pool.nareas;
    this.areaNslabs = pool.areaNslabs;
    this.pageBytes = pool.pageSize;
    this.startPhase = pool.startPhase;
    this.clipAt = pool.listClippedTail ? pool.nslabs : 2 ** 31;
    this.cs = memory.chunkSize;
    this.shift = Math.log2(memory.chunkSize);
    this.poolBase = Math.floor(pool.start / this.cs) * this.cs;
    this.poolSkew = pool.start - this.poolBase;
    this.poolQwords = new Array<BigInt64Array | undefined>(Math.ceil((this.poolSkew + pool.nslabs * 2048) / this.cs)).fill(undefined);
    this.noMap = memory.reserved.some((r) => r.noMap === true);
  }

  /**
   * swiotlb_tbl_map_single for a plain request of `size` bytes of origArg[0] on CPU `cpu`: the
   * slot, or -1 when the general path must answer (nothing changed then; a full pool fails
   * there the same way, with the kernel's warning).
   */
  map(size: number, cpu: number): number {
    if ((size | 0) !== size || size <= 0 || (cpu | 0) !== cpu || cpu < 0) return -1;
    const pool = this.pool;
    const nslots = (size + 2047) >>> 11;
    const a = cpu & (this.nareas - 1);
    const areaNslabs = this.areaNslabs;
    const used = this.areaUsed[a]!;
    let slot = -1;
    /** the slot came from the flat search below (its undo record is here, not the pool's) */
    let flat = false;
    // the first area's search, flat, when no lock is needed and the area has room; else (and
    // when it finds nothing: a failed search changes nothing) the pool's own search of all areas
    if (!pool.locking && nslots <= areaNslabs - used) {
      // alloc_align_mask is PAGE_SIZE - 1 from PAGE_SIZE up, else 2047 (met by every slot)
      const stride = size >= this.pageBytes ? this.pageBytes >>> 11 : 1;
      const phaseMask = stride - 1;
      const phase = this.startPhase;
      const busy = this.busy;
      const clipAt = this.clipAt;
      const slotBase = a * areaNslabs;
      const first = this.areaIndex[a]!;
      let index = first;
      for (let checked = 0; checked < areaNslabs; ) {
        const s = slotBase + index;
        // list[s] >= nslots: page phase, the run inside its segment and the list, all free
        if (((s + phase) & phaseMask) === 0) {
          if ((s & 127) + nslots <= 128 && s + nslots <= clipAt) {
            const b = s & 31;
            if (b + nslots > 32) break; // a run over two busy words: the pool's search
            const mask = (-1 >>> (32 - nslots)) << b;
            const w = s >>> 5;
            if ((busy[w]! & mask) === 0) {
              // claim: alloc_size, list, area hint and count, debugfs counters, the undo record
              const alloc = this.allocSize;
              for (let i = 0; i < nslots; i++) alloc[s + i] = size - i * 2048;
              busy[w] = busy[w]! | mask;
              const c = this.counters;
              const hiwater = c[1]!;
              this.undoIndex = first;
              this.undoHiwater = hiwater;
              this.areaIndex[a] = index + nslots >= areaNslabs ? 0 : index + nslots;
              this.areaUsed[a] = used + nslots;
              const u = c[0]! + nslots;
              c[0] = u;
              if (u > hiwater) c[1] = u;
              // pad_slots[s] is 0 already: every release clears its run's
              this.mapped[s] = 1;
              slot = s;
              flat = true;
              break;
            }
          }
          index = index + stride >= areaNslabs ? 0 : index + stride;
          checked += stride;
        } else {
          index = index + 1 >= areaNslabs ? 0 : index + 1;
          checked += 1;
        }
      }
    }
    if (slot < 0) slot = pool.mapPlain(cpu, size);
    if (slot < 0) return -1;
    // orig_addr of every slot, then the copy in (6.x copies at map time whatever the direction)
    const origAddr = this.origAddr;
    const orig = this.origArg[0]!;
    origAddr[slot] = orig;
    for (let i = 1; i < nslots; i++) origAddr[slot + i] = orig + i * 2048;
    if (this.wordCopy(origAddr, slot, slot, size, true)) return slot;
    try {
      this.copier.bounceIn(pool, slot, size);
    } catch (e) {
      // a fault on the original: the map is taken back entirely
      if (flat) pool.noteUndo(a, this.undoIndex, this.undoHiwater);
      pool.undoLastMap(this.start + slot * 2048, 0);
      throw e;
    }
    return slot;
  }

  /**
   * swiotlb_tbl_unmap_single of the plain mapping at slot `index`: copy back `size` bytes for
   * FROM_DEVICE/BIDIRECTIONAL without DMA_ATTR_SKIP_CPU_SYNC, release. False, with nothing
   * done, when the general path must answer (no mapping starts there, an overflowing size).
   *
   * One function, common case, copy and the rest, on purpose: its bytecode stays above V8's
   * limit for inlining (460 bytes), so callers inline Swiotlb.tblUnmapSingle (small) and call
   * this with small integers. Were this inlined there, tblUnmapSingle's optimized code would
   * outgrow the caller's inlining budget, stay a call, and box its tlb_addr argument on the
   * heap (measured: 16 bytes per unmap).
   */
  unmap(index: number, size: number, dir: DmaDirection, attrs: number): boolean {
    const mapped = this.mapped;
    if (mapped[index] !== 1 || (size | 0) !== size || size < 0) return false;
    const alloc = this.allocSize;
    const origAddr = this.origAddr;
    const al = alloc[index]!;
    const orig = origAddr[index]!;
    // FROM_DEVICE (2) or BIDIRECTIONAL (0) without DMA_ATTR_SKIP_CPU_SYNC (1 << 5), and an
    // orig_addr (-1 = INVALID_PHYS_ADDR: nothing to copy back)
    if ((attrs & 32) === 0 && (dir === 2 || dir === 0) && orig !== -1) {
      // an overflow is clamped, with its warning, by the general bounce
      if (al >= 0 && size > al) return false;
      // wordCopy(index, size, false), written out (see above)
      const oOff = orig - this.oBase;
      const rel = this.poolSkew + index * 2048;
      const k = rel >>> this.shift;
      const pOff = rel & (this.cs - 1);
      const pq = this.poolQwords[k];
      if (
        !(oOff >= 0 && oOff + size <= this.oLen) ||
        size > this.oWordMax ||
        (oOff | 0) !== oOff ||
        ((oOff | size) & 7) !== 0 ||
        pq === undefined ||
        pOff + size > this.cs ||
        (k === this.oPoolChunk && pOff < oOff + size && oOff < pOff + size)
      ) {
        if (!this.wordCopyRest(origAddr, index, index, size, false)) this.copier.bounceOut(this.pool, index, size);
      } else {
        const oq = this.oQwords!;
        const n = size >>> 3;
        const pi = pOff >>> 3;
        const oi = oOff >>> 3;
        for (let i = 0; i < n; i++) oq[oi + i] = pq[pi + i]!;
      }
    }
    // a mapping made here (no pad slots, alloc_size a small count) and no lock to take: the
    // release written out; else the pool's own
    if (this.padSlots[index] !== 0 || !(al > 0 && al < 2 ** 31) || this.pool.locking) {
      this.pool.releaseIndex(index, 0);
      return true;
    }
    mapped[index] = 0;
    const nslots = (al + 2047) >>> 11;
    for (let i = index; i < index + nslots; i++) {
      origAddr[i] = -1;
      alloc[i] = 0;
    }
    // pad_slots of the run are 0 already: no map sets them inside its own slots
    const b = index & 31;
    if (b + nslots <= 32) {
      const w = index >>> 5;
      this.busy[w] = this.busy[w]! & ~((-1 >>> (32 - nslots)) << b);
    } else this.pool.clearBusy(index, nslots);
    const a = this.nareas === 1 ? 0 : Math.floor(index / this.areaNslabs);
    this.areaUsed[a] = this.areaUsed[a]! - nslots;
    this.counters[0] = this.counters[0]! - nslots;
    return true;
  }

  /**
   * The hot path's bounce copy between slot `slot` and the address in origArg[0] (rather than
   * orig_addr): what the benchmark's copy limit times (bench/copy-limit.ts), so that it
   * measures this very code.
   */
  copyWith(slot: number, len: number, toBounce: boolean): void {
    if (this.wordCopy(this.origArg, 0, slot, len, toBounce)) return;
    if (toBounce) this.copier.toSlot(this.pool, slot, this.origArg[0]!, len);
    else this.copier.fromSlot(this.pool, slot, this.origArg[0]!, len);
  }

  /**
   * The bounce copy between slot `slot` and the original at origs[oi] (its orig_addr, or
   * origArg) as 64-bit words, when it is short, 8-byte aligned, inside one chunk on each side
   * and not overlapping itself; false (nothing copied) for BounceCopy's general path otherwise.
   * Only small integers cross calls here.
   */
  private wordCopy(origs: Float64Array, oi: number, slot: number, len: number, toBounce: boolean): boolean {
    const oOff = origs[oi]! - this.oBase;
    const rel = this.poolSkew + slot * 2048;
    const k = rel >>> this.shift;
    const pOff = rel & (this.cs - 1);
    const pq = this.poolQwords[k];
    if (
      !(oOff >= 0 && oOff + len <= this.oLen) ||
      len > this.oWordMax ||
      (oOff | 0) !== oOff ||
      ((oOff | len) & 7) !== 0 ||
      pq === undefined ||
      pOff + len > this.cs ||
      (k === this.oPoolChunk && pOff < oOff + len && oOff < pOff + len)
    )
      return this.wordCopyRest(origs, oi, slot, len, toBounce);
    const oq = this.oQwords!;
    const n = len >>> 3;
    const pi = pOff >>> 3;
    const qi = oOff >>> 3;
    if (toBounce) for (let i = 0; i < n; i++) pq[pi + i] = oq[qi + i]!;
    else for (let i = 0; i < n; i++) oq[qi + i] = pq[pi + i]!;
    return true;
  }

  /** wordCopy once the views it lacked are made: another original chunk, a new pool chunk. */
  private wordCopyRest(origs: Float64Array, oi: number, slot: number, len: number, toBounce: boolean): boolean {
    if (len > WORD_COPY_MAX || (len & 7) !== 0) return false;
    const orig = origs[oi]!;
    const oOff = orig - this.oBase;
    if (!(oOff >= 0 && oOff + len <= this.oLen) && !(Number.isSafeInteger(orig) && orig >= 0 && this.origChunk(Math.floor(orig / this.cs)))) return false;
    const k = (this.poolSkew + slot * 2048) >>> this.shift;
    if (this.poolQwords[k] === undefined) this.poolChunk(k);
    // the views are there now: what still fails the fast test fails for good (the general path)
    const o2 = orig - this.oBase;
    const rel = this.poolSkew + slot * 2048;
    const pOff = rel & (this.cs - 1);
    if (
      !(o2 >= 0 && o2 + len <= this.oLen) ||
      len > this.oWordMax ||
      (o2 | 0) !== o2 ||
      ((o2 | len) & 7) !== 0 ||
      pOff + len > this.cs ||
      (k === this.oPoolChunk && pOff < o2 + len && o2 < pOff + len)
    )
      return false;
    return this.wordCopy(origs, oi, slot, len, toBounce);
  }

  /** Makes chunk number `ck` (physical address / chunk size) the original side; false when it is not plain RAM. */
  private origChunk(ck: number): boolean {
    this.oLen = 0;
    this.oQwords = null;
    this.oPoolChunk = -1;
    if (this.noMap) return false;
    const b = this.memory.bankAt(ck * this.cs);
    if (b === undefined) return false;
    // banks start on chunk boundaries, so a chunk is in a bank whole or not at all
    const c = this.memory.chunkAt(ck * this.cs);
    this.oBase = ck * this.cs;
    this.oLen = c.length;
    this.oQwords = qwordView(c);
    const k = (this.oBase - this.poolBase) / this.cs;
    this.oPoolChunk = k >= 0 && k < this.poolQwords.length ? k : -1;
    this.oWordMax = this.memory.arena !== null && this.memory.arena.offsetOf(c) >= 0 ? ARENA_WORD_COPY_MAX : WORD_COPY_MAX;
    return true;
  }

  private poolChunk(k: number): BigInt64Array {
    const v = qwordView(this.memory.chunkAt(this.poolBase + k * this.cs));
    this.poolQwords[k] = v;
    return v;
  }
}

const qwordViews = new WeakMap<Uint8Array, BigInt64Array>();

/** The 64-bit view of a chunk, made once (chunks start 64-byte aligned, whole 2 KiB blocks long). */
function qwordView(c: Uint8Array): BigInt64Array {
  let v = qwordViews.get(c);
  if (v === undefined) {
    v = new BigInt64Array(c.buffer, c.byteOffset, c.length >>> 3);
    qwordViews.set(c, v);
  }
  return v;
}
