// The copy limit of a workload: how fast the bounce copy primitive alone moves the same bytes.
// Measured in the same process, right before the workload, with the same primitive (the
// code the map/unmap hot path copies with: Swiotlb.hotBounce), the same sizes in the same proportions
// (one fixed size for pingpong; the ring's xorshift32 sequence), the copies in the workload's
// order — pingpong copies back right after copying in; the ring copies back what it copied
// in RING_DEPTH steps earlier, when that mapping leaves the FIFO, by which time its bytes have
// usually left the caches — and destinations walking the pool's slots as the slot search
// walks them (page-aligned from PAGE_SIZE up, never across a 128-slot segment).

import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import type { HotBounce } from "../swiotlb/bounce.js";
import { ORIG_BASE, RING_DEPTH, XorShift32, ringOrig, ringSize } from "./xorshift.js";

export interface CopyLimitOptions {
  /** the hot path's bounce copy (Swiotlb.hotBounce) */
  bounce: HotBounce;
  pool: IoTlbPool;
  /** the slots the destinations walk: [firstSlot, firstSlot + nslots) */
  firstSlot: number;
  nslots: number;
  /** pingpong: one size; ring: 0 (the ring's mix) */
  size: number;
  /** wall time to spend, in seconds */
  seconds: number;
}

export interface CopyLimit {
  bytes: number;
  elapsedNs: number;
  bytesPerSec: number;
}

const BATCH = 256;

/** The slot after `slot` where `size` bytes would land in the walk (relative slot numbers). */
export function nextSlot(slot: number, size: number, pageSlots: number, nslots: number): number {
  const n = Math.ceil(size / IO_TLB_SIZE);
  const align = size >= pageSlots * IO_TLB_SIZE ? pageSlots : 1;
  let s = Math.ceil(slot / align) * align;
  // a run never crosses a segment
  if ((s % IO_TLB_SEGSIZE) + n > IO_TLB_SEGSIZE) s = Math.ceil(s / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  if (s + n > nslots) s = 0;
  return s;
}

/**
 * The copies of the walk, a batch at a time. State lives in fields and typed arrays, not in
 * a closure: a number that a closure updates lives in a context slot, and V8 boxes every new
 * value of a non-integer one there — the limit would then measure the allocator too.
 */
class CopyWalk {
  private rel = 0;
  private head = 0;
  /** bytes copied so far: a one-element counter ([0] always exists), a double kept off the heap */
  readonly bytes = new Float64Array(1) as Float64Array & { 0: number };
  // the ring's copies in flight: slot, original and size of each, FIFO by `head`
  private readonly qSlot = new Int32Array(RING_DEPTH).fill(-1);
  private readonly qOrig = new Float64Array(RING_DEPTH);
  private readonly qSize = new Int32Array(RING_DEPTH);
  private readonly rng = new XorShift32(1);
  private readonly pageSlots: number;

  constructor(
    private readonly o: CopyLimitOptions,
  ) {
    this.pageSlots = o.pool.pageSize >>> IO_TLB_SHIFT;
  }

  /** n pingpong steps: copy in and straight back */
  pingpong(n: number): void {
    const { bounce, firstSlot, nslots, size } = this.o;
    const per = Math.ceil(size / IO_TLB_SIZE);
    const pageSlots = this.pageSlots;
    const arg = bounce.origArg;
    let rel = this.rel;
    for (let i = 0; i < n; i++) {
      rel = nextSlot(rel, size, pageSlots, nslots);
      arg[0] = ORIG_BASE;
      bounce.copyWith(firstSlot + rel, size, true);
      bounce.copyWith(firstSlot + rel, size, false);
      rel += per;
    }
    this.rel = rel;
    this.bytes[0] += 2 * size * n;
  }

  /** n ring steps: copy back the mapping leaving the FIFO, copy in the new one */
  ring(n: number): void {
    const { bounce, firstSlot, nslots } = this.o;
    const { qSlot, qOrig, qSize, rng, pageSlots } = this;
    const arg = bounce.origArg;
    let rel = this.rel;
    let head = this.head;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const old = qSlot[head]!;
      if (old >= 0) {
        arg[0] = qOrig[head]!;
        bounce.copyWith(old, qSize[head]!, false);
        bytes += qSize[head]!;
      }
      const size = ringSize(rng.next());
      const orig = ringOrig(rng.next());
      rel = nextSlot(rel, size, pageSlots, nslots);
      arg[0] = orig;
      bounce.copyWith(firstSlot + rel, size, true);
      qSlot[head] = firstSlot + rel;
      qOrig[head] = orig;
      qSize[head] = size;
      head = head + 1 === RING_DEPTH ? 0 : head + 1;
      rel += Math.ceil(size / IO_TLB_SIZE);
      bytes += size;
    }
    this.rel = rel;
    this.head = head;
    this.bytes[0] += bytes;
  }

  steps(n: number): void {
    if (this.o.size > 0) this.pingpong(n);
    else this.ring(n);
  }
}

export function measureCopyLimit(o: CopyLimitOptions): CopyLimit {
  const walk = new CopyWalk(o);
  // warm the primitive and the walk (and fill the ring), untimed
  for (let i = 0; i < 4; i++) walk.steps(BATCH);
  const b0 = walk.bytes[0];
  const t0 = performance.now();
  const deadline = t0 + o.seconds * 1000;
  let t: number;
  do {
    walk.steps(BATCH);
    t = performance.now();
  } while (t < deadline);
  const bytes = walk.bytes[0] - b0;
  const elapsedNs = (t - t0) * 1e6;
  return { bytes, elapsedNs, bytesPerSec: (bytes / elapsedNs) * 1e9 };
}
