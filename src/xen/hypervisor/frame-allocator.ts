// Xen's heap (page_alloc.c) over the machine's RAM banks: a buddy allocator of 4 KiB
// machine frames with per-zone free lists, plus the owner of every frame (the frame table's
// page_get_owner). Frames are either free in the heap, owned by one domain, anonymous
// (allocated but not yet assigned, or stolen mid-exchange), or reserved (not heap at all).
//
// Zones follow Xen: a frame's zone is fls(mfn) (at least 1), so zone z holds the MFNs whose
// highest set bit is z-1, and an `address_bits` limit b admits zones 1..b-12. Allocation
// walks zones from the highest admitted one down and, within a zone, takes the smallest
// order that fits; a larger block is split keeping its upper half for the caller, as
// alloc_heap_pages does. Free lists are LIFO. Buddies never merge across zones.

import { InternalError, InvalidArgumentError, hex } from "../../errors.js";
import type { PhysicalMemory } from "../../memory/physical-memory.js";
import { MAX_ORDER, XEN_PAGE_SHIFT } from "./public.js";

/** Owner codes returned by `ownerOf` besides a domain id (0..0x7fef). */
export const FRAME_FREE = -1;
export const FRAME_RESERVED = -2;
export const FRAME_ANON = -3;
export const FRAME_NOT_RAM = -4;

// encoding in the owner array
const OWN_FREE = 0;
const OWN_RESERVED = 0xffff;
const OWN_ANON = 0xfffe;

const NZONES = 64;

interface BankSpan {
  /** first MFN */
  base: number;
  /** one past the last MFN */
  end: number;
  /** index of `base` in the per-frame arrays */
  index: number;
}

export interface AllocOptions {
  /** only frames whose machine address is below 2^addressBits (0 / undefined: no limit) */
  addressBits?: number;
  /** domain to assign the block to; anonymous when absent */
  owner?: number;
}

function fls(n: number): number {
  // highest set bit, 1-based; works beyond 32 bits
  return n === 0 ? 0 : Math.floor(Math.log2(n)) + 1;
}

/** Xen's page_to_zone for a domheap page. */
export function zoneOf(mfn: number): number {
  return Math.max(1, fls(mfn));
}

/** Xen's bits_to_zone. */
export function bitsToZone(bits: number): number {
  return bits < XEN_PAGE_SHIFT + 1 ? 1 : bits - XEN_PAGE_SHIFT;
}

export class FrameAllocator {
  readonly totalFrames: number;
  /** one past the highest RAM frame (Xen's max_page) */
  readonly maxPage: number;
  private readonly spans: BankSpan[];
  private readonly owner: Uint16Array;
  private readonly freeOrder: Int8Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly heads: Int32Array;
  private readonly zoneFree: Float64Array;
  private freeCount = 0;
  private reservedCount = 0;
  private lastSpan = 0;

  constructor(
    mem: PhysicalMemory,
    opts: { reserved?: readonly { base: number; size: number }[] } = {},
  ) {
    let index = 0;
    this.spans = mem.banks.map((b) => {
      const s = { base: b.base / 4096, end: b.end / 4096, index };
      index += s.end - s.base;
      return s;
    });
    this.totalFrames = index;
    this.maxPage = this.spans[this.spans.length - 1]!.end;
    this.owner = new Uint16Array(index);
    this.freeOrder = new Int8Array(index).fill(-1);
    this.next = new Int32Array(index);
    this.prev = new Int32Array(index);
    this.heads = new Int32Array(NZONES * (MAX_ORDER + 1)).fill(-1);
    this.zoneFree = new Float64Array(NZONES);

    const holes = [
      ...mem.reserved.filter((r) => r.noMap === true).map((r) => ({ base: r.base, size: r.size })),
      ...(opts.reserved ?? []),
    ];
    for (const h of holes) {
      const first = Math.floor(h.base / 4096);
      const last = Math.ceil((h.base + h.size) / 4096);
      for (let m = first; m < last; m++) {
        const i = this.indexOf(m);
        if (i < 0) throw new InvalidArgumentError(`reserved range ${hex(h.base)}+${hex(h.size)} is not RAM`);
        if (this.owner[i] !== OWN_RESERVED) {
          this.owner[i] = OWN_RESERVED;
          this.reservedCount++;
        }
      }
    }
    // seed the heap with maximal aligned blocks of each run of non-reserved frames
    for (const s of this.spans) {
      let m = s.base;
      while (m < s.end) {
        if (this.owner[s.index + m - s.base] === OWN_RESERVED) {
          m++;
          continue;
        }
        let runEnd = m;
        while (runEnd < s.end && this.owner[s.index + runEnd - s.base] !== OWN_RESERVED) runEnd++;
        this.freeRun(m, runEnd);
        m = runEnd;
      }
    }
  }

  // ---- frame lookup -----------------------------------------------------------------------

  /** Index of an MFN in the per-frame arrays, or -1 when it is not RAM (mfn_valid false). */
  indexOf(mfn: number): number {
    const ls = this.spans[this.lastSpan]!;
    if (mfn >= ls.base && mfn < ls.end) return ls.index + (mfn - ls.base);
    for (let k = 0; k < this.spans.length; k++) {
      const s = this.spans[k]!;
      if (mfn >= s.base && mfn < s.end) {
        this.lastSpan = k;
        return s.index + (mfn - s.base);
      }
    }
    return -1;
  }

  private mfnOf(index: number): number {
    for (const s of this.spans) if (index < s.index + (s.end - s.base)) return s.base + (index - s.index);
    throw new InternalError(`frame index ${index} out of range`);
  }

  /** Xen's mfn_valid: the frame is machine RAM. */
  isValid(mfn: number): boolean {
    return Number.isSafeInteger(mfn) && mfn >= 0 && this.indexOf(mfn) >= 0;
  }

  /** A domain id, or FRAME_FREE / FRAME_RESERVED / FRAME_ANON / FRAME_NOT_RAM. */
  ownerOf(mfn: number): number {
    const i = Number.isSafeInteger(mfn) && mfn >= 0 ? this.indexOf(mfn) : -1;
    if (i < 0) return FRAME_NOT_RAM;
    const o = this.owner[i]!;
    return o === OWN_FREE ? FRAME_FREE : o === OWN_RESERVED ? FRAME_RESERVED : o === OWN_ANON ? FRAME_ANON : o - 1;
  }

  get freeFrames(): number {
    return this.freeCount;
  }
  get reservedFrames(): number {
    return this.reservedCount;
  }

  /** Frames owned by a domain id (or FRAME_ANON). Walks the frame table: for checks, not hot paths. */
  countOwned(owner: number): number {
    const code = owner === FRAME_ANON ? OWN_ANON : owner + 1;
    let n = 0;
    for (let i = 0; i < this.totalFrames; i++) if (this.owner[i] === code) n++;
    return n;
  }

  /** Frame counts per owner code in one pass: domain ids, FRAME_ANON, FRAME_FREE, FRAME_RESERVED. */
  countsByOwner(): Map<number, number> {
    const counts = new Map<number, number>();
    const o = this.owner;
    for (let i = 0; i < this.totalFrames; i++) {
      const c = o[i]!;
      const key = c === OWN_FREE ? FRAME_FREE : c === OWN_RESERVED ? FRAME_RESERVED : c === OWN_ANON ? FRAME_ANON : c - 1;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  /** Every MFN owned by a domain id, ascending. */
  ownedFrames(domid: number): number[] {
    const out: number[] = [];
    const code = domid + 1;
    for (const s of this.spans)
      for (let m = s.base; m < s.end; m++) if (this.owner[s.index + m - s.base] === code) out.push(m);
    return out;
  }

  // ---- free lists -------------------------------------------------------------------------

  private listAdd(index: number, zone: number, order: number): void {
    const h = zone * (MAX_ORDER + 1) + order;
    const head = this.heads[h]!;
    this.next[index] = head;
    this.prev[index] = -1;
    if (head >= 0) this.prev[head] = index;
    this.heads[h] = index;
    this.freeOrder[index] = order;
    this.zoneFree[zone] = this.zoneFree[zone]! + 2 ** order;
  }

  private listRemove(index: number, zone: number, order: number): void {
    const h = zone * (MAX_ORDER + 1) + order;
    const n = this.next[index]!;
    const p = this.prev[index]!;
    if (p >= 0) this.next[p] = n;
    else this.heads[h] = n;
    if (n >= 0) this.prev[n] = p;
    this.freeOrder[index] = -1;
    this.zoneFree[zone] = this.zoneFree[zone]! - 2 ** order;
  }

  private setOwnerRange(mfn: number, count: number, code: number): void {
    const i = this.indexOf(mfn);
    const last = this.indexOf(mfn + count - 1);
    // one bank: a single fill (blocks never leave their bank)
    if (i >= 0 && last === i + count - 1) this.owner.fill(code, i, i + count);
    else for (let k = 0; k < count; k++) this.owner[this.indexOf(mfn + k)] = code;
  }

  /** Give a free block back to the heap, merging with free buddies of the same zone. */
  private freeBlock(mfn: number, order: number): void {
    let m = mfn;
    let o = order;
    const zone = zoneOf(mfn);
    while (o < MAX_ORDER) {
      const size = 2 ** o;
      const buddy = m % (2 * size) === 0 ? m + size : m - size;
      const bi = this.indexOf(buddy);
      if (bi < 0 || this.freeOrder[bi] !== o || zoneOf(buddy) !== zone) break;
      this.listRemove(bi, zone, o);
      m = Math.min(m, buddy);
      o++;
    }
    this.listAdd(this.indexOf(m), zone, o);
  }

  /** Free [from, to): every frame becomes FREE and joins the heap in aligned blocks. */
  private freeRun(from: number, to: number): void {
    let m = from;
    while (m < to) {
      let o = 0;
      while (o < MAX_ORDER && m % 2 ** (o + 1) === 0 && m + 2 ** (o + 1) <= to && zoneOf(m) === zoneOf(m + 2 ** (o + 1) - 1)) o++;
      // a block must sit in one zone even at o = 0 .. (always true for a single frame)
      this.setOwnerRange(m, 2 ** o, OWN_FREE);
      this.freeCount += 2 ** o;
      this.freeBlock(m, o);
      m += 2 ** o;
    }
  }

  // ---- allocation -------------------------------------------------------------------------

  /**
   * A naturally aligned block of 2^order frames, all below 2^addressBits, assigned to
   * `owner` (anonymous when absent). Returns its first MFN, or undefined when no block fits
   * (the caller turns that into its own error, as Xen's callers do).
   */
  alloc(order: number, opts: AllocOptions = {}): number | undefined {
    if (!Number.isInteger(order) || order < 0 || order > MAX_ORDER) return undefined;
    const bits = opts.addressBits ?? 0;
    const zoneHi = bits === 0 ? NZONES - 1 : Math.min(NZONES - 1, bitsToZone(bits));
    const want = 2 ** order;
    for (let z = zoneHi; z >= 1; z--) {
      if (this.zoneFree[z]! < want) continue;
      for (let j = order; j <= MAX_ORDER; j++) {
        const idx = this.heads[z * (MAX_ORDER + 1) + j]!;
        if (idx < 0) continue;
        this.listRemove(idx, z, j);
        let m = this.mfnOf(idx);
        // halve, returning lower halves to the heap, until the block has the wanted order
        let o = j;
        while (o > order) {
          o--;
          this.listAdd(this.indexOf(m), z, o);
          m += 2 ** o;
        }
        this.setOwnerRange(m, want, opts.owner === undefined ? OWN_ANON : this.ownerCode(opts.owner));
        this.freeCount -= want;
        return m;
      }
    }
    return undefined;
  }

  private ownerCode(domid: number): number {
    if (!Number.isInteger(domid) || domid < 0 || domid >= 0x7ff0) throw new InvalidArgumentError(`frame owner ${domid}: not a domain id`);
    return domid + 1;
  }

  /** Return 2^order frames starting at mfn to the heap. Every frame must be allocated (owned or anonymous). */
  free(mfn: number, order = 0): void {
    const count = 2 ** order;
    for (let k = 0; k < count; k++) {
      const o = this.ownerOf(mfn + k);
      if (o === FRAME_FREE || o === FRAME_RESERVED || o === FRAME_NOT_RAM)
        throw new InvalidArgumentError(`free of frame ${hex(mfn + k)}: it is ${o === FRAME_FREE ? "already free" : o === FRAME_RESERVED ? "reserved" : "not RAM"}`);
    }
    this.freeRun(mfn, mfn + count);
  }

  /** Change the owner of allocated frames (assign an anonymous block, steal a page). */
  setOwner(mfn: number, count: number, owner: number): void {
    for (let k = 0; k < count; k++) {
      const o = this.ownerOf(mfn + k);
      if (o === FRAME_FREE || o === FRAME_RESERVED || o === FRAME_NOT_RAM)
        throw new InvalidArgumentError(`set owner of frame ${hex(mfn + k)}: it is not allocated`);
    }
    this.setOwnerRange(mfn, count, owner === FRAME_ANON ? OWN_ANON : this.ownerCode(owner));
  }

  /**
   * Take the exact frames [mfn, mfn+count) out of the heap for `owner` (a direct-mapped
   * domain's RAM). All or nothing: returns false, changing nothing, if any frame is not free.
   */
  claim(mfn: number, count: number, owner: number): boolean {
    const code = this.ownerCode(owner);
    const first = this.indexOf(mfn);
    if (first >= 0 && this.indexOf(mfn + count - 1) === first + count - 1) {
      for (let k = 0; k < count; k++) if (this.owner[first + k] !== OWN_FREE) return false;
    } else for (let k = 0; k < count; k++) if (this.ownerOf(mfn + k) !== FRAME_FREE) return false;
    const end = mfn + count;
    let p = mfn;
    while (p < end) {
      // find the free block holding p
      let found = -1;
      let head = -1;
      for (let o = 0; o <= MAX_ORDER; o++) {
        const h = p - (p % 2 ** o);
        const hi = this.indexOf(h);
        if (hi >= 0 && this.freeOrder[hi] === o) {
          found = o;
          head = h;
          break;
        }
      }
      if (found < 0) throw new InternalError(`frame allocator corrupt: free frame ${hex(p)} is in no free block`);
      this.listRemove(this.indexOf(head), zoneOf(head), found);
      this.freeCount -= 2 ** found;
      this.carve(head, found, mfn, end, code);
      p = head + 2 ** found;
    }
    return true;
  }

  /** Split a detached free block: frames inside [lo, hi) go to `code`, the rest back to the heap. */
  private carve(m: number, o: number, lo: number, hi: number, code: number): void {
    const size = 2 ** o;
    if (m >= lo && m + size <= hi) {
      this.setOwnerRange(m, size, code);
      return;
    }
    if (m + size <= lo || m >= hi) {
      this.freeCount += size;
      this.listAdd(this.indexOf(m), zoneOf(m), o);
      return;
    }
    this.carve(m, o - 1, lo, hi, code);
    this.carve(m + size / 2, o - 1, lo, hi, code);
  }

  // ---- invariants ---------------------------------------------------------------------------

  /**
   * Checks the heap: every free-list block is aligned, inside RAM, in its zone, made of FREE
   * frames, and no frame is in two blocks; the free-list total equals the FREE frames; free +
   * allocated + reserved = total. Returns the problems found (empty when consistent).
   */
  check(): string[] {
    const problems: string[] = [];
    const seen = new Uint8Array(this.totalFrames);
    let listed = 0;
    for (let z = 0; z < NZONES; z++)
      for (let o = 0; o <= MAX_ORDER; o++) {
        let idx = this.heads[z * (MAX_ORDER + 1) + o]!;
        let prev = -1;
        while (idx >= 0) {
          const m = this.mfnOf(idx);
          if (this.prev[idx] !== prev) problems.push(`free list z${z} o${o}: broken back link at ${hex(m)}`);
          if (this.freeOrder[idx] !== o) problems.push(`block ${hex(m)} on order-${o} list has order ${this.freeOrder[idx]}`);
          if (m % 2 ** o !== 0) problems.push(`block ${hex(m)} of order ${o} is not aligned`);
          if (zoneOf(m) !== z) problems.push(`block ${hex(m)} is on zone ${z}'s list but in zone ${zoneOf(m)}`);
          for (let k = 0; k < 2 ** o; k++) {
            const i = this.indexOf(m + k);
            if (i < 0) {
              problems.push(`block ${hex(m)} of order ${o} runs out of RAM at ${hex(m + k)}`);
              break;
            }
            if (seen[i]) problems.push(`frame ${hex(m + k)} is in two free blocks`);
            seen[i] = 1;
            if (this.owner[i] !== OWN_FREE) problems.push(`frame ${hex(m + k)} is on a free list but owned`);
            if (zoneOf(m + k) !== z) problems.push(`block ${hex(m)} straddles zones`);
          }
          listed += 2 ** o;
          prev = idx;
          idx = this.next[idx]!;
          if (problems.length > 20) return problems;
        }
      }
    let free = 0;
    let reserved = 0;
    for (let i = 0; i < this.totalFrames; i++) {
      if (this.owner[i] === OWN_FREE) {
        free++;
        if (!seen[i]) problems.push(`free frame ${hex(this.mfnOf(i))} is on no free list`);
      } else if (this.owner[i] === OWN_RESERVED) reserved++;
      if (problems.length > 20) return problems;
    }
    if (listed !== this.freeCount) problems.push(`free lists hold ${listed} frames, counter says ${this.freeCount}`);
    if (free !== this.freeCount) problems.push(`${free} frames are FREE, counter says ${this.freeCount}`);
    if (reserved !== this.reservedCount) problems.push(`${reserved} frames reserved, counter says ${this.reservedCount}`);
    return problems;
  }

  /** A cheap fingerprint of the whole frame table, for "unchanged after an error" tests. */
  fingerprint(): string {
    let h = 0x811c9dc5;
    for (let i = 0; i < this.totalFrames; i++) {
      h ^= this.owner[i]!;
      h = Math.imul(h, 0x01000193);
      h ^= this.freeOrder[i]! & 0xff;
      h = Math.imul(h, 0x01000193);
    }
    return `${this.freeCount}:${(h >>> 0).toString(16)}`;
  }
}
