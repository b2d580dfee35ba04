// One io_tlb_pool: the slot table of a bounce-buffer region and the per-area search state,
// with the slot search and release of each allocator era (spec linux-dma.md §2-§4):
//   "5.13": find_slots of swiotlb.c 95b079d8 (one index hint, one used counter, stride search)
//   "6.x" : swiotlb_search_pool_area of v6.11 (7296f2301a05), per-CPU areas, pad slots
//
// All mutable state sits in one SharedArrayBuffer (typed-array views), so worker threads can
// run over the same pool later. Each area's index, used count and Atomics spin lock fill a
// 64-byte line of their own (`areas`), and the shared counters another: areas that sat in one
// line made every map and unmap of one thread take that line from the other's core (measured:
// pingpong 64 B on two threads and two areas, 4.1-7.1 -> 8.1-9.7 M pairs/s in all). The
// kernel's io_tlb_area array is not padded; the values are the same either way.
// For threads: an area owns whole words of `busy` when area_nslabs is a multiple of 32 (always
// so for power-of-two pools of >= 128 slots per area); `counters` is shared by all areas and
// moves with Atomics then, as the kernel's atomic_long total_used does.
// The hot path (findSlots/mapSlots*/releaseSlots) allocates nothing and uses plain numbers.
//
// Number arithmetic: physical and DMA addresses stay below 2^53. JS bitwise operators work on
// the low 32 bits, which is exact for `x & m` whenever m < 2^32 (the result is read back with
// `>>> 0`). Every mask the search uses is an `unsigned int` in the kernel, so that holds; wider
// values (the segment boundary mask) are handled arithmetically by the caller.

import { InternalError, InvalidArgumentError } from "../errors.js";
import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, INVALID_PHYS_ADDR } from "../kernel/swiotlb.js";
import type { SwiotlbEra } from "./profile.js";

export interface IoTlbPoolParams {
  /** physical start of the bounce region (slot 0) */
  readonly start: number;
  readonly nslabs: number;
  /** areas after limit_nareas (6.x); always 1 in 5.13 */
  readonly nareas: number;
  readonly era: SwiotlbEra;
  /** PAGE_SIZE of the kernel (4096, 16384 or 65536) */
  readonly pageSize: number;
  /** io_tlb_slot.list initialised clipped at the pool tail (6.10+) */
  readonly listClippedTail: boolean;
}

/** Shared-memory layout of the mutable pool state, in bytes. */
function layout(nslabs: number, nareas: number) {
  const origAddr = 0;
  const allocSize = origAddr + 8 * nslabs;
  const areas = Math.ceil((allocSize + 8 * nslabs) / LINE) * LINE;
  const counters = areas + LINE * nareas;
  const busy = counters + LINE;
  const padSlots = busy + 4 * busyWords(nslabs);
  const mapped = padSlots + 2 * nslabs;
  const bytes = mapped + nslabs;
  return { origAddr, allocSize, areas, counters, busy, padSlots, mapped, bytes };
}

function busyWords(nslabs: number): number {
  return Math.ceil(nslabs / IO_TLB_SEGSIZE) * (IO_TLB_SEGSIZE / 32);
}

/** counters[] slots: debugfs total_used and used_hiwater (6.7+; kept in both eras) */
const COUNTERS = 2;
/** a host cache line: what one thread's area state keeps to itself */
const LINE = 64;
/** Int32 words per area in `areas` (one line), and where io_tlb_area's fields sit in them */
export const AREA_WORDS = LINE / 4;
const A_INDEX = 0;
const A_USED = 1;
const A_LOCK = 2;
export const CNT_TOTAL_USED = 0;
export const CNT_HIWATER = 1;

/** findSlots answer when the 5.13 search would spin forever (spec 3.1); treated as full */
export const FIND_SPIN = -2;

export class IoTlbPool {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  /** nslabs / nareas; slots past nareas * areaNslabs are never searched (6.x) */
  readonly areaNslabs: number;
  readonly era: SwiotlbEra;
  readonly pageSize: number;
  readonly pageShift: number;
  readonly listClippedTail: boolean;
  /** true for the 5.13 allocator (find_slots), false for 6.x (areas, pad slots) */
  readonly is513: boolean;

  /** the one buffer holding every array below, from byte bufferOffset on */
  readonly buffer: SharedArrayBuffer;
  readonly bufferOffset: number;
  /**
   * Where the table starts in the RAM arena's memory when `buffer` is that memory's (set by
   * Swiotlb.newPool; the hot path's WebAssembly code reads it there), else -1.
   */
  arenaOffset = -1;
  /** io_tlb_slot.orig_addr; INVALID_PHYS_ADDR (-1) when free */
  readonly origAddr: Float64Array;
  /**
   * io_tlb_slot.alloc_size, a u64 in the kernel that can wrap below zero (spec 3.1 step 6).
   * Stored as the signed value: a negative v stands for 2^64 + v. Every consumer (release,
   * bounce) compares as the kernel's unsigned arithmetic would.
   */
  readonly allocSize: Float64Array;
  /**
   * The free-run `list` of io_tlb_slot, held as what it encodes: bit i set <=> slot i is
   * allocated. The kernel keeps list[i] = length of the free run from i up to the next
   * allocated slot or the segment end (clipped at the pool end in 6.10+); every map and
   * release re-establishes exactly that (spec 4.3), so list is a function of this bitmap and
   * `listAt(i)` returns the kernel's value. The kernel's O(128) walks that re-number runs
   * become a few word operations; slot choice is unchanged (tested against a walking model).
   */
  readonly busy: Int32Array;
  /** io_tlb_slot.pad_slots (6.10+): set on the first real slot of an allocation */
  readonly padSlots: Uint16Array;
  /** dmalab's own: 1 on the slot a live mapping's tlb_addr points at (to refuse bad unmaps) */
  readonly mapped: Uint8Array;
  /**
   * One line (AREA_WORDS) per area: io_tlb_area.index (area-relative search hint), .used, and
   * a word for its Atomics spin lock (unused single-threaded); 5.13: mem->index and mem->used
   * in area 0. Read them with areaIndexOf / areaUsedOf.
   */
  readonly areas: Int32Array;
  /** [total_used, used_hiwater] (debugfs counters of the mem that owns this pool) */
  readonly counters: Int32Array;

  /** visits of the last 5.13 search (for the spin guard's message and tests) */
  lastVisits = 0;
  /**
   * Other threads run over this pool's state (enableLocking): every search and release then
   * holds its area's spin lock (the kernel's area->lock; 5.13's single mem->lock is area 0),
   * and the shared debugfs counters move with Atomics, as the kernel's atomic_long ones do.
   */
  locking = false;
  /** (start / IO_TLB_SIZE) mod (PAGE_SIZE / IO_TLB_SIZE): where pages begin, counted in slots */
  readonly startPhase: number;
  /** a 6.x pool that starts on a slot boundary: the plain hot path (PlainPath) may serve it */
  readonly plainOk: boolean;
  /** what the last successful search changed besides the slots, for undoLastMap */
  private undoArea = 0;
  private undoIndex = 0;
  private undoHiwater = 0;

  static bytesFor(nslabs: number, nareas: number): number {
    return layout(nslabs, nareas).bytes;
  }

  /**
   * A pool over `buffer` from byte `offset` when given, else over a fresh SharedArrayBuffer.
   * A given buffer is attached as is (another thread's live pool) unless `attach` is false: then
   * it is zero-filled memory set aside for a new pool (the RAM arena, see Swiotlb.newPool), which
   * is initialised like swiotlb_init_io_tlb_pool, as a fresh buffer is.
   */
  constructor(p: IoTlbPoolParams, buffer?: SharedArrayBuffer, offset = 0, attach = buffer !== undefined) {
    if (!Number.isSafeInteger(p.nslabs) || p.nslabs <= 0) throw new InvalidArgumentError(`io_tlb_pool: nslabs ${p.nslabs}`);
    if (!Number.isSafeInteger(p.nareas) || p.nareas <= 0 || p.nareas > p.nslabs) throw new InvalidArgumentError(`io_tlb_pool: nareas ${p.nareas}`);
    if (p.era === "5.13" && p.nareas !== 1) throw new InvalidArgumentError("io_tlb_pool: 5.13 has one area");
    this.start = p.start;
    this.nslabs = p.nslabs;
    this.end = p.start + p.nslabs * IO_TLB_SIZE;
    this.nareas = p.nareas;
    this.areaNslabs = Math.floor(p.nslabs / p.nareas);
    this.era = p.era;
    this.is513 = p.era === "5.13";
    this.pageSize = p.pageSize;
    this.pageShift = Math.log2(p.pageSize);
    this.startPhase = Math.floor(p.start / IO_TLB_SIZE) % (p.pageSize / IO_TLB_SIZE);
    this.plainOk = p.era === "6.x" && p.start % IO_TLB_SIZE === 0;
    this.listClippedTail = p.listClippedTail;
    const l = layout(p.nslabs, p.nareas);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 8 !== 0) throw new InvalidArgumentError(`io_tlb_pool: buffer offset ${offset}`);
    if (buffer !== undefined && buffer.byteLength < offset + l.bytes)
      throw new InvalidArgumentError(`io_tlb_pool: shared buffer of ${buffer.byteLength} bytes, need ${offset + l.bytes}`);
    this.buffer = buffer ?? new SharedArrayBuffer(l.bytes);
    this.bufferOffset = buffer === undefined ? 0 : offset;
    const b = this.buffer;
    const o = this.bufferOffset;
    const n = p.nslabs;
    this.origAddr = new Float64Array(b, o + l.origAddr, n);
    this.allocSize = new Float64Array(b, o + l.allocSize, n);
    this.areas = new Int32Array(b, o + l.areas, p.nareas * AREA_WORDS);
    this.counters = new Int32Array(b, o + l.counters, COUNTERS);
    this.busy = new Int32Array(b, o + l.busy, busyWords(n));
    this.padSlots = new Uint16Array(b, o + l.padSlots, n);
    this.mapped = new Uint8Array(b, o + l.mapped, n);
    if (!attach) this.reset();
  }

  /** The initial table (swiotlb_init_io_tlb_pool): every slot free, hints and counters 0. */
  reset(): void {
    this.busy.fill(0);
    this.origAddr.fill(INVALID_PHYS_ADDR);
    this.allocSize.fill(0);
    this.padSlots.fill(0);
    this.mapped.fill(0);
    this.areas.fill(0);
    this.counters.fill(0);
  }

  /** io_tlb_area.index of area a */
  areaIndexOf(a: number): number {
    return this.areas[a * AREA_WORDS + A_INDEX]!;
  }

  /** io_tlb_area.used of area a */
  areaUsedOf(a: number): number {
    return this.areas[a * AREA_WORDS + A_USED]!;
  }

  /** every area's used count, area 0 first */
  areaUsedList(): number[] {
    return Array.from({ length: this.nareas }, (_, a) => this.areaUsedOf(a));
  }

  /** every area's search hint, area 0 first */
  areaIndexList(): number[] {
    return Array.from({ length: this.nareas }, (_, a) => this.areaIndexOf(a));
  }

  /** every area's lock word (0: free), area 0 first */
  areaLockList(): number[] {
    return Array.from({ length: this.nareas }, (_, a) => this.areas[a * AREA_WORDS + A_LOCK]!);
  }

  /** Slots in use over all areas (mem_used without debugfs; 5.13 mem->used). */
  get used(): number {
    let u = 0;
    for (let a = 0; a < this.nareas; a++) u += this.areas[a * AREA_WORDS + A_USED]!;
    return u;
  }

  /** slot index of a physical address inside the pool */
  slotOf(phys: number): number {
    return Math.floor((phys - this.start) / IO_TLB_SIZE);
  }

  contains(phys: number): boolean {
    return phys >= this.start && phys < this.end;
  }

  // ---------------------------------------------------------------- 5.13

  /**
   * 5.13 find_slots(dev, orig, alloc_size) where `allocSize` already includes the in-slot
   * offset. `tblDmaAddr` = phys_to_dma_unencrypted(start) & boundary mask; `maxSlots` =
   * get_max_slots(boundary mask), 0 for an all-ones mask. Returns the first slot, -1 when
   * nothing fits, or FIND_SPIN where the kernel's loop would never end.
   */
  findSlots513(orig: number, allocSize: number, minAlignMask: number, tblDmaAddr: number, maxSlots: number): number {
    const nslabs = this.nslabs;
    // only the bits at or above the slot size are matched by slot choice
    const iotlbMask = (minAlignMask & ~(IO_TLB_SIZE - 1)) >>> 0;
    const nslots = Math.ceil(allocSize / IO_TLB_SIZE);
    let stride = (iotlbMask >>> IO_TLB_SHIFT) + 1;
    // 5.13 quirk: the page rule multiplies the min-align stride too (NVMe 0xfff: 2 -> 4)
    if (allocSize >= this.pageSize) {
      const paged = stride * 2 ** (this.pageShift - IO_TLB_SHIFT);
      if (paged > stride) stride = paged;
    }
    const locking = this.locking;
    if (locking) this.lockArea(0);
    if (nslots > nslabs - this.areas[A_USED]!) {
      if (locking) this.unlockArea(0);
      return -1;
    }
    const origBits = (orig & iotlbMask) >>> 0;
    const shift = Math.ceil(tblDmaAddr / IO_TLB_SIZE);
    // ALIGN(mem->index, stride), bitwise as the kernel does it (stride need not be 2^k)
    let index = ((this.areas[A_INDEX]! + stride - 1) & ~(stride - 1)) >>> 0;
    if (index >= nslabs) index = 0;
    const wrap = index;
    const guard = 4 * nslabs;
    let visits = 0;
    do {
      // the kernel has no such guard: it would soft-lockup (spec 3.1)
      if (++visits > guard) {
        this.lastVisits = visits;
        if (locking) this.unlockArea(0);
        return FIND_SPIN;
      }
      if (((tblDmaAddr + index * IO_TLB_SIZE) & iotlbMask) >>> 0 !== origBits) {
        index = index + 1 >= nslabs ? 0 : index + 1;
        continue;
      }
      if ((maxSlots === 0 || ((shift + index) % maxSlots) + nslots <= maxSlots) && this.fits(index, nslots)) {
        this.markBusy(index, nslots);
        this.noteUndo(0, this.areas[A_INDEX]!, this.counters[CNT_HIWATER]!);
        this.areas[A_INDEX] = index + nslots < nslabs ? index + nslots : 0;
        this.areas[A_USED] = this.areas[A_USED]! + nslots;
        this.countUsed(nslots);
        this.lastVisits = visits;
        if (locking) this.unlockArea(0);
        return index;
      }
      index = index + stride >= nslabs ? 0 : index + stride;
    } while (index !== wrap);
    this.lastVisits = visits;
    if (locking) this.unlockArea(0);
    return -1;
  }

  /**
   * 5.13 swiotlb_tbl_map_single steps 3-7 (no bounce): search for `allocSize + offset` bytes
   * and record orig_addr / alloc_size. Returns tlb_addr, -1 (full) or FIND_SPIN.
   */
  mapSlots513(orig: number, allocSize: number, minAlignMask: number, tblDmaAddr: number, maxSlots: number): number {
    const offset = orig & minAlignMask & (IO_TLB_SIZE - 1);
    const index = this.findSlots513(orig, allocSize + offset, minAlignMask, tblDmaAddr, maxSlots);
    if (index < 0) return index;
    const n = Math.ceil((allocSize + offset) / IO_TLB_SIZE);
    for (let i = 0; i < n; i++) {
      this.origAddr[index + i] = orig + i * IO_TLB_SIZE;
      // u64 in the kernel: the last slot may go below zero (kept signed, see allocSize)
      this.allocSize[index + i] = allocSize - i * IO_TLB_SIZE;
    }
    this.mapped[index] = 1;
    return this.start + index * IO_TLB_SIZE + offset;
  }

  // ---------------------------------------------------------------- 6.x

  /**
   * 6.11 swiotlb_search_pool_area for area `a`. `size` is the aligned size the caller
   * computed (mapping + full offset, rounded to alloc_align_mask + 1). Returns the pool-wide
   * slot index or -1.
   */
  searchArea(a: number, orig: number, size: number, allocAlignMask: number, minAlignMask: number, tblDmaAddr: number, maxSlots: number): number {
    const areaNslabs = this.areaNslabs;
    let iotlbMask = minAlignMask >>> 0;
    const nslots = Math.ceil(size / IO_TLB_SIZE);
    const low = orig & minAlignMask & (IO_TLB_SIZE - 1);
    // the historic page alignment survives only without any other alignment request
    if (allocAlignMask === 0 && iotlbMask === 0 && size >= this.pageSize) allocAlignMask = this.pageSize - 1;
    allocAlignMask = (allocAlignMask | (IO_TLB_SIZE - 1)) >>> 0;
    iotlbMask = (iotlbMask & ~allocAlignMask) >>> 0;
    const stride = ((allocAlignMask > iotlbMask ? allocAlignMask : iotlbMask) >>> IO_TLB_SHIFT) + 1;
    const locking = this.locking;
    if (locking) this.lockArea(a);
    if (nslots > areaNslabs - this.areas[a * AREA_WORDS + A_USED]!) {
      if (locking) this.unlockArea(a);
      return -1;
    }
    const slotBase = a * areaNslabs;
    const origBits = orig === 0 ? 0 : (orig & iotlbMask) >>> 0;
    const checkOrig = orig !== 0 && iotlbMask !== 0;
    const shift = Math.ceil(tblDmaAddr / IO_TLB_SIZE);
    let index = this.areas[a * AREA_WORDS + A_INDEX]!;
    for (let checked = 0; checked < areaNslabs; ) {
      const slot = slotBase + index;
      const t = tblDmaAddr + slot * IO_TLB_SIZE;
      if ((t & allocAlignMask) !== 0 || (checkOrig && ((t & iotlbMask) >>> 0) !== origBits)) {
        index = index + 1 >= areaNslabs ? 0 : index + 1;
        checked += 1;
        continue;
      }
      if ((maxSlots === 0 || ((shift + slot) % maxSlots) + nslots <= maxSlots) && this.fits(slot, nslots)) {
        return this.claim(a, slot, index, nslots, size - low, locking);
      }
      index = index + stride >= areaNslabs ? 0 : index + stride;
      checked += stride;
    }
    if (locking) this.unlockArea(a);
    return -1;
  }

  /** 6.11 swiotlb_find_slots, non-dynamic build: the CPU's area first, then the next ones. */
  findSlots(cpu: number, orig: number, size: number, allocAlignMask: number, minAlignMask: number, tblDmaAddr: number, maxSlots: number): number {
    const nareas = this.nareas;
    // masks with nareas - 1 even when limit_nareas left a non-power-of-two count (spec 3.3)
    const first = cpu & (nareas - 1);
    let a = first;
    do {
      const s = this.searchArea(a, orig, size, allocAlignMask, minAlignMask, tblDmaAddr, maxSlots);
      if (s >= 0) return s;
      a = a + 1 === nareas ? 0 : a + 1;
    } while (a !== first);
    return -1;
  }

  /**
   * 6.11 swiotlb_tbl_map_single steps 2-9 (no bounce): pad slots, orig_addr, tlb_addr.
   * Returns tlb_addr or -1 (full).
   */
  mapSlots(cpu: number, orig: number, mappingSize: number, allocAlignMask: number, minAlignMask: number, tblDmaAddr: number, maxSlots: number): number {
    const offset = (orig & minAlignMask & (allocAlignMask | (IO_TLB_SIZE - 1))) >>> 0;
    const size = alignedSize(mappingSize + offset, allocAlignMask);
    let index = this.findSlots(cpu, orig, size, allocAlignMask, minAlignMask, tblDmaAddr, maxSlots);
    if (index < 0) return -1;
    const pad = offset >>> IO_TLB_SHIFT;
    index += pad;
    this.padSlots[index] = pad;
    const n = Math.ceil(size / IO_TLB_SIZE) - pad;
    for (let i = 0; i < n; i++) this.origAddr[index + i] = orig + i * IO_TLB_SIZE;
    this.mapped[index] = 1;
    return this.start + index * IO_TLB_SIZE + (offset & (IO_TLB_SIZE - 1));
  }

  // ---------------------------------------------------------------- 6.x plain requests (hot path)

  /**
   * The end of a successful area search: per-slot alloc_size (`first` bytes from the first slot
   * on, the kernel's `size - (low + k * IO_TLB_SIZE)`), the slots marked used, the area's index
   * hint and used count, the debugfs counters. Runs with the area lock held; releases it.
   */
  private claim(a: number, slot: number, index: number, nslots: number, first: number, locking: boolean): number {
    const alloc = this.allocSize;
    for (let i = 0; i < nslots; i++) alloc[slot + i] = first - i * IO_TLB_SIZE;
    this.markBusy(slot, nslots);
    this.noteUndo(a, this.areas[a * AREA_WORDS + A_INDEX]!, this.counters[CNT_HIWATER]!);
    this.areas[a * AREA_WORDS + A_INDEX] = index + nslots >= this.areaNslabs ? 0 : index + nslots;
    this.areas[a * AREA_WORDS + A_USED] = this.areas[a * AREA_WORDS + A_USED]! + nslots;
    if (locking) this.unlockArea(a);
    this.countUsed(nslots);
    return slot;
  }

  // ---------------------------------------------------------------- release (both eras)

  /**
   * swiotlb_release_slots (6.11) / the release half of 5.13 swiotlb_tbl_unmap_single.
   * Returns the slots released, or -1 (nothing changed) when `tlbAddr` is not where a live
   * mapping starts — the kernel would corrupt its table there; dmalab refuses.
   */
  releaseSlots(tlbAddr: number, minAlignMask: number): number {
    const offset = tlbAddr & minAlignMask & (IO_TLB_SIZE - 1);
    const rel = tlbAddr - offset - this.start;
    if (rel < 0 || rel >= this.nslabs * IO_TLB_SIZE) return -1;
    return this.releaseIndex(Math.floor(rel / IO_TLB_SIZE), offset);
  }

  /**
   * releaseSlots from the slot a tlb_addr points at and its in-slot offset: small integers,
   * so the unmap hot path calls it without boxing an address.
   */
  releaseIndex(index: number, offset: number): number {
    if (this.mapped[index] !== 1) return -1;
    this.mapped[index] = 0;
    if (!this.is513) index -= this.padSlots[index]!;
    const nslots = nrSlotsU64(this.allocSize[index]! + offset);
    const a = this.is513 ? 0 : Math.floor(index / this.areaNslabs);
    const locking = this.locking;
    if (locking) this.lockArea(a);
    // the kernel's merge with the following run and re-numbering of the preceding one are
    // implied by clearing the bits (see `busy`)
    const orig = this.origAddr;
    const alloc = this.allocSize;
    const pad = this.padSlots;
    for (let i = index; i < index + nslots; i++) {
      orig[i] = INVALID_PHYS_ADDR;
      alloc[i] = 0;
      pad[i] = 0;
    }
    this.setBusy(index, nslots, false);
    this.areas[a * AREA_WORDS + A_USED] = this.areas[a * AREA_WORDS + A_USED]! - nslots;
    if (locking) {
      this.unlockArea(a);
      Atomics.sub(this.counters, CNT_TOTAL_USED, nslots);
    } else this.counters[CNT_TOTAL_USED] = this.counters[CNT_TOTAL_USED]! - nslots;
    return nslots;
  }

  // ---------------------------------------------------------------- helpers

  /** the kernel's `list[slot] >= nslots`: nslots free slots from `slot` inside its segment */
  private fits(slot: number, nslots: number): boolean {
    const end = slot + nslots;
    if (end > slot - (slot & (IO_TLB_SEGSIZE - 1)) + IO_TLB_SEGSIZE) return false;
    if (this.listClippedTail && end > this.nslabs) return false;
    const busy = this.busy;
    let i = slot;
    while (i < end) {
      const b = i & 31;
      const n = end - i < 32 - b ? end - i : 32 - b;
      const mask = n === 32 ? -1 : ((1 << n) - 1) << b;
      if ((busy[i >>> 5]! & mask) !== 0) return false;
      i += n;
    }
    return true;
  }

  /** list[i] = 0 (allocated) for [slot, slot + n), or back to free */
  private markBusy(slot: number, n: number): void {
    this.setBusy(slot, n, true);
  }

  private setBusy(slot: number, n: number, on: boolean): void {
    const busy = this.busy;
    const end = slot + n;
    let i = slot;
    while (i < end) {
      const b = i & 31;
      const k = end - i < 32 - b ? end - i : 32 - b;
      const mask = k === 32 ? -1 : ((1 << k) - 1) << b;
      const w = i >>> 5;
      busy[w] = on ? busy[w]! | mask : busy[w]! & ~mask;
      i += k;
    }
  }

  /** io_tlb_slot.list of slot i, exactly as the kernel would hold it */
  listAt(i: number): number {
    if (i < 0 || i >= this.nslabs) throw new InvalidArgumentError(`slot ${i} outside the pool`);
    const busy = this.busy;
    if ((busy[i >>> 5]! & (1 << (i & 31))) !== 0) return 0;
    let end = i - (i & (IO_TLB_SEGSIZE - 1)) + IO_TLB_SEGSIZE;
    if (this.listClippedTail && end > this.nslabs) end = this.nslabs;
    let j = i + 1;
    while (j < end && (busy[j >>> 5]! & (1 << (j & 31))) === 0) j++;
    return j - i;
  }

  /** the whole list array as the kernel would hold it (for tests and inspection) */
  listSnapshot(): Uint16Array {
    const n = this.nslabs;
    const out = new Uint16Array(n);
    const busy = this.busy;
    // one backward pass: a free slot's run is 1 + its successor's, unless a segment (or the
    // clipped pool tail) ends right after it
    for (let i = n - 1; i >= 0; i--) {
      if ((busy[i >>> 5]! & (1 << (i & 31))) !== 0) out[i] = 0;
      else if ((i & (IO_TLB_SEGSIZE - 1)) === IO_TLB_SEGSIZE - 1) out[i] = 1;
      else if (i === n - 1) out[i] = this.listClippedTail ? 1 : IO_TLB_SEGSIZE - (i & (IO_TLB_SEGSIZE - 1));
      else out[i] = out[i + 1] === 0 ? 1 : out[i + 1]! + 1;
    }
    return out;
  }

  /**
   * Records what a map is about to change besides its slots — area `a`'s search hint `index`
   * and the high-water mark `hiwater`, both as they were before it — for undoLastMap.
   */
  private noteUndo(a: number, index: number, hiwater: number): void {
    this.undoArea = a;
    this.undoIndex = index;
    this.undoHiwater = hiwater;
  }

  /**
   * Takes back the last map entirely (slots, area hint, high-water mark): for a map whose
   * bounce copy faulted, so the pool is exactly as before it.
   */
  undoLastMap(tlbAddr: number, minAlignMask: number): void {
    if (this.releaseSlots(tlbAddr, minAlignMask) < 0) throw new InternalError("undoLastMap: not a live mapping");
    this.areas[this.undoArea * AREA_WORDS + A_INDEX] = this.undoIndex;
    this.counters[CNT_HIWATER] = this.undoHiwater;
  }

  /** inc_used_and_hiwater (6.7+ debugfs build): atomic_long_add_return, then a cmpxchg loop */
  private countUsed(nslots: number): void {
    const c = this.counters;
    if (!this.locking) {
      const u = c[CNT_TOTAL_USED]! + nslots;
      c[CNT_TOTAL_USED] = u;
      if (u > c[CNT_HIWATER]!) c[CNT_HIWATER] = u;
      return;
    }
    const u = Atomics.add(c, CNT_TOTAL_USED, nslots) + nslots;
    let h = Atomics.load(c, CNT_HIWATER);
    while (u > h) {
      const seen = Atomics.compareExchange(c, CNT_HIWATER, h, u);
      if (seen === h) break;
      h = seen;
    }
  }

  /** Other threads share this pool from now on: searches and releases take the area locks. */
  enableLocking(): void {
    this.locking = true;
  }

  /** spin_lock(&area->lock): test, then test-and-set (a waiter spins, as a kernel CPU does) */
  private lockArea(a: number): void {
    const l = this.areas;
    const w = a * AREA_WORDS + A_LOCK;
    for (;;) {
      if (Atomics.load(l, w) === 0 && Atomics.compareExchange(l, w, 0, 1) === 0) return;
    }
  }

  private unlockArea(a: number): void {
    Atomics.store(this.areas, a * AREA_WORDS + A_LOCK, 0);
  }
}

/** ALIGN(x, 32-bit unsigned mask + 1) of the 6.x map path, with the kernel's wrap at mask 2^32-1. */
export function alignedSize(x: number, allocAlignMask: number): number {
  // alloc_align_mask + 1 is computed in unsigned int: 0xffffffff + 1 == 0, so the mask is ~0
  if (allocAlignMask === 0xffffffff) return 0;
  const y = x + allocAlignMask;
  return y - ((y & allocAlignMask) >>> 0);
}

/** nr_slots() of a u64 held as its signed value (negative = wrapped). */
export function nrSlotsU64(v: number): number {
  if (v >= 0) return Math.ceil(v / IO_TLB_SIZE);
  // (2^64 + v + IO_TLB_SIZE - 1) / IO_TLB_SIZE in u64: small again when v + IO_TLB_SIZE - 1 >= 0
  if (v + (IO_TLB_SIZE - 1) >= 0) return 0;
  return Math.floor((2 ** 64 + v + (IO_TLB_SIZE - 1)) / IO_TLB_SIZE);
}
