// The copy swiotlb_bounce does between an original buffer and a bounce slot, on the map/unmap
// hot path — also the primitive the benchmark's copy limit measures.
//
// What crosses a call here are small integers: slot numbers, chunk numbers, offsets inside a
// chunk. A physical address above 2^30 is not a small integer in V8, and passing one to a
// function that is not inlined boxes it on the heap; the map side therefore reads the
// original's address from the pool's own orig_addr table (bounceIn/bounceOut), and the
// explicit-address entry points (toSlot/fromSlot) split it before the call.
//
// When both ranges sit in one RAM chunk each:
//   - up to ARENA_WORD_COPY_MAX bytes (WORD_COPY_MAX outside the arena), 8-byte aligned:
//     64-bit words through BigInt64Array views made once per chunk (see copyQwords);
//   - else, both chunks in the RAM arena: one memmove (memory/arena.ts);
//   - else Uint8Array.prototype.set, with source views cached (see slotView / origView).
// Anything else — a chunk border, an original overlapping its own slot, a no-map region, a
// fault — goes through PhysicalMemory.copy with its checks and errors.

import type { ArenaCopy } from "../memory/arena.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import { IO_TLB_SHIFT, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { IoTlbPool } from "./pool.js";

/**
 * Copies up to this many bytes as 64-bit words when both chunks are in the arena; longer ones
 * with its memmove. Measured walking a 64 MiB pool (copy in and back, 2-core EPYC VM): 64 B
 * ~110 ns as words against ~270 ns through the call into memmove; even at 128-256 B; 512 B
 * ~500 ns as words against ~320 ns.
 */
const ARENA_WORD_COPY_MAX = 128;
/** the same outside the arena, where set() on SharedArrayBuffers is the slower alternative */
const WORD_COPY_MAX = 512;
/** entries of the table of original-side set() source views (a power of two) */
const ORIG_VIEWS = 8192;

/**
 * dst[di..di+n) = src[si..si+n) in 64-bit words. Optimized V8 moves BigInt64Array elements as
 * raw 64-bit integers (nothing allocated, every bit kept: integer views, unlike float ones,
 * promise that for any pattern). Half the stores of a 32-bit copy matters more than it looks:
 * the first store into a bounce slot that is not in cache holds up every store behind it, and
 * on a 64-byte bounce walking a 64 MiB pool the 32-bit loop ran ~3x slower than this one.
 */
function copyQwords(dst: BigInt64Array, di: number, src: BigInt64Array, si: number, n: number): void {
  for (let i = 0; i < n; i++) dst[di + i] = src[si + i]!;
}

export class BounceCopy {
  private readonly cs: number;
  private readonly shift: number;
  /** a no-map reserved region exists: every copy takes PhysicalMemory's checked path */
  private readonly noMap: boolean;
  // the pool whose slots were resolved last: its chunks by chunk number k
  private poolFor: IoTlbPool | null = null;
  private poolBytes: (Uint8Array | undefined)[] = [];
  private poolQwords: (BigInt64Array | undefined)[] = [];
  /** arena offset of pool chunk k, -1 when not in the arena */
  private poolArena = new Float64Array(0);
  private poolBase = 0;
  private poolSkew = 0;
  // the original's chunk: number oChunk (physical address / chunk size), oLen bytes of RAM
  // (0 when that chunk is not plain RAM: the checked path takes over)
  private oChunk = -1;
  private oLen = 0;
  private oBytes: Uint8Array | null = null;
  private oQwords: BigInt64Array | null = null;
  private oArena = -1;
  /** set() source views, see slotView / origView */
  private slotViews: (Uint8Array | undefined)[] = [];
  private slotViewLen = new Int32Array(0);
  private readonly origViews = new Array<Uint8Array | undefined>(ORIG_VIEWS).fill(undefined);
  private readonly origViewLen = new Int32Array(ORIG_VIEWS);
  private readonly origViewAddr = new Float64Array(ORIG_VIEWS);
  /** 64-bit views of chunks, made once per chunk */
  private readonly views = new Map<Uint8Array, BigInt64Array>();

  constructor(readonly memory: PhysicalMemory) {
    this.cs = memory.chunkSize;
    this.shift = Math.log2(memory.chunkSize);
    this.noMap = memory.reserved.some((r) => r.noMap === true);
  }

  /** orig_addr of `slot` -> the bounce buffer at `slot` (the map's copy-in) */
  bounceIn(pool: IoTlbPool, slot: number, len: number): void {
    const orig = pool.origAddr[slot]!;
    const ck = Math.floor(orig / this.cs);
    this.copy(pool, slot, ck, orig - ck * this.cs, len, true);
  }

  /** the bounce buffer at `slot` -> orig_addr of `slot` (the unmap's copy-back) */
  bounceOut(pool: IoTlbPool, slot: number, len: number): void {
    const orig = pool.origAddr[slot]!;
    const ck = Math.floor(orig / this.cs);
    this.copy(pool, slot, ck, orig - ck * this.cs, len, false);
  }

  /** orig -> the bounce buffer at `slot` of `pool` */
  toSlot(pool: IoTlbPool, slot: number, orig: number, len: number): void {
    const ck = Math.floor(orig / this.cs);
    this.copy(pool, slot, ck, orig - ck * this.cs, len, true);
  }

  /** the bounce buffer at `slot` of `pool` -> orig */
  fromSlot(pool: IoTlbPool, slot: number, orig: number, len: number): void {
    const ck = Math.floor(orig / this.cs);
    this.copy(pool, slot, ck, orig - ck * this.cs, len, false);
  }

  /** The copy for the original at byte oOff of chunk ck. */
  private copy(pool: IoTlbPool, slot: number, ck: number, oOff: number, len: number, toBounce: boolean): void {
    if (pool !== this.poolFor) this.setPool(pool);
    if (ck !== this.oChunk) this.origChunk(ck);
    // the slow path names the address in its errors: whole again (ck alone for +-Infinity/NaN)
    if (!this.copyInChunks(slot, oOff, len, toBounce)) this.slow(pool, slot, Number.isFinite(oOff) ? ck * this.cs + oOff : ck, len, toBounce);
  }

  /** The fast copy when both sides sit in one chunk each; false (nothing copied) otherwise. */
  private copyInChunks(slot: number, oOff: number, len: number, toBounce: boolean): boolean {
    if ((len | 0) !== len || len <= 0 || (oOff | 0) !== oOff || oOff < 0 || oOff + len > this.oLen) return false;
    // the pool side: chunk k, offset pOff (pools are far below 2^32 bytes long)
    const rel = this.poolSkew + slot * IO_TLB_SIZE;
    const k = rel >>> this.shift;
    const pOff = rel & (this.cs - 1);
    if (k >= this.poolBytes.length) return false;
    let p = this.poolBytes[k];
    if (p === undefined) p = this.poolView(k);
    if (pOff + len > p.length) return false;
    // an original overlapping its own bounce slot needs a true memmove
    if (p === this.oBytes && pOff < oOff + len && oOff < pOff + len) return false;
    const inArena = this.oArena >= 0 && this.poolArena[k]! >= 0;
    if (len <= (inArena ? ARENA_WORD_COPY_MAX : WORD_COPY_MAX) && ((pOff | oOff | len) & 7) === 0) {
      const pq = this.poolQwords[k]!;
      const oq = this.oQwords!;
      if (toBounce) copyQwords(pq, pOff >>> 3, oq, oOff >>> 3, len >>> 3);
      else copyQwords(oq, oOff >>> 3, pq, pOff >>> 3, len >>> 3);
    } else if (inArena) {
      const pa = this.poolArena[k]! + pOff;
      const oa = this.oArena + oOff;
      if (toBounce) this.arenaCopy!(pa, oa, len);
      else this.arenaCopy!(oa, pa, len);
    } else {
      const o = this.oBytes!;
      if (toBounce) p.set(this.origView(o, oOff, len), pOff);
      else o.set(this.slotView(p, rel >>> IO_TLB_SHIFT, pOff, len), oOff);
    }
    return true;
  }

  /** memmove on arena offsets, when the memory has an arena */
  private get arenaCopy(): ArenaCopy | null {
    return this.memory.arena?.copy ?? null;
  }

  /**
   * The source view for a set() out of a bounce slot: set() needs a view of exactly `len`
   * bytes, so the first one made for a slot is kept and reused whenever that slot is copied
   * with the same length again. An entry is never replaced, so mixed sizes do not keep storing
   * fresh views into the table; the length table is checked first so a miss never touches a
   * cold view object. Relies on a chunk staying put once made.
   */
  private slotView(p: Uint8Array, slot: number, pOff: number, len: number): Uint8Array {
    if (this.slotViewLen[slot] === len) return this.slotViews[slot]!;
    const w = p.subarray(pOff, pOff + len);
    if (this.slotViewLen[slot] === 0) {
      this.slotViews[slot] = w;
      this.slotViewLen[slot] = len;
    }
    return w;
  }

  /** The same for the original side, in a direct-mapped table by 2 KiB block of the address. */
  private origView(o: Uint8Array, oOff: number, len: number): Uint8Array {
    const addr = this.oChunk * this.cs + oOff;
    const i = (addr / IO_TLB_SIZE) & (ORIG_VIEWS - 1);
    if (this.origViewLen[i] === len && this.origViewAddr[i] === addr) return this.origViews[i]!;
    const w = o.subarray(oOff, oOff + len);
    if (this.origViewLen[i] === 0) {
      this.origViews[i] = w;
      this.origViewLen[i] = len;
      this.origViewAddr[i] = addr;
    }
    return w;
  }

  /** Makes chunk number ck the current original chunk (oLen 0 when it is not plain RAM). */
  private origChunk(ck: number): void {
    this.oChunk = ck;
    this.oLen = 0;
    this.oBytes = null;
    this.oQwords = null;
    this.oArena = -1;
    if (this.noMap || !Number.isSafeInteger(ck) || ck < 0) return;
    const lo = ck * this.cs;
    const b = this.memory.bankAt(lo);
    // banks start on chunk boundaries, so a chunk is in a bank whole or not at all
    if (b === undefined) return;
    const c = b.chunks[Math.floor((lo - b.base) / this.cs)] ?? this.memory.chunkAt(lo);
    this.oLen = c.length;
    this.oBytes = c;
    this.oQwords = this.qwords(c);
    this.oArena = this.memory.arena?.offsetOf(c) ?? -1;
  }

  private slow(pool: IoTlbPool, slot: number, orig: number, len: number, toBounce: boolean): void {
    const tlb = pool.start + slot * IO_TLB_SIZE;
    if (toBounce) this.memory.copy(tlb, orig, len);
    else this.memory.copy(orig, tlb, len);
  }

  private setPool(pool: IoTlbPool): void {
    const chunks = Math.ceil(((pool.start % this.cs) + pool.nslabs * IO_TLB_SIZE) / this.cs);
    this.poolFor = pool;
    this.poolBase = Math.floor(pool.start / this.cs) * this.cs;
    this.poolSkew = pool.start - this.poolBase;
    this.poolBytes = new Array<Uint8Array | undefined>(chunks).fill(undefined);
    this.poolQwords = new Array<BigInt64Array | undefined>(chunks).fill(undefined);
    this.poolArena = new Float64Array(chunks).fill(-1);
    this.slotViews = new Array<Uint8Array | undefined>(chunks * (this.cs / IO_TLB_SIZE)).fill(undefined);
    this.slotViewLen = new Int32Array(chunks * (this.cs / IO_TLB_SIZE));
  }

  private poolView(k: number): Uint8Array {
    const c = this.memory.chunkAt(this.poolBase + k * this.cs);
    this.poolBytes[k] = c;
    this.poolQwords[k] = this.qwords(c);
    this.poolArena[k] = this.memory.arena?.offsetOf(c) ?? -1;
    return c;
  }

  /** the 64-bit view of a chunk (chunks start 64-byte aligned and are whole 2 KiB blocks long) */
  private qwords(c: Uint8Array): BigInt64Array {
    let v = this.views.get(c);
    if (v === undefined) {
      v = new BigInt64Array(c.buffer, c.byteOffset, c.length >>> 3);
      this.views.set(c, v);
    }
    return v;
  }
}

/**
 * The bounce copy of the map/unmap hot path, between a slot and the address put in origArg[0]:
 * what the benchmark's copy limit times. PlainPath is one; PoolBounce is the general path's.
 */
export interface HotBounce {
  readonly origArg: Float64Array;
  copyWith(slot: number, len: number, toBounce: boolean): void;
}

/** HotBounce for a pool the plain path does not serve (5.13, a pool off a slot boundary). */
export class PoolBounce implements HotBounce {
  readonly origArg = new Float64Array(1);
  constructor(
    private readonly copier: BounceCopy,
    private readonly pool: IoTlbPool,
  ) {}
  copyWith(slot: number, len: number, toBounce: boolean): void {
    if (toBounce) this.copier.toSlot(this.pool, slot, this.origArg[0]!, len);
    else this.copier.fromSlot(this.pool, slot, this.origArg[0]!, len);
  }
}
