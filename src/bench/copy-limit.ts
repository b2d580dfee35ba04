// The copy limit of a workload: how fast the bounce copy primitive alone moves the same bytes.
// Measured in the same process, right before the workload, with the same primitive (the
// swiotlb's BounceCopy, which swiotlb_bounce calls), the same sizes in the same proportions
// (one fixed size for pingpong; the ring's xorshift32 sequence), the copies in the workload's
// order — pingpong copies back right after copying in; the ring copies back what it copied
// in RING_DEPTH steps earlier, when that mapping leaves the FIFO, by which time its bytes have
// usually left the caches — and destinations walking the pool's slots as the slot search
// walks them (page-aligned from PAGE_SIZE up, never across a 128-slot segment).

import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE } from "../swiotlb/constants.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import type { BounceCopy } from "../swiotlb/bounce.js";
import { ORIG_BASE, RING_DEPTH, XorShift32, ringOrig, ringSize } from "./xorshift.js";

export interface CopyLimitOptions {
  copier: BounceCopy;
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

export function measureCopyLimit(o: CopyLimitOptions): CopyLimit {
  const { copier, pool, firstSlot, nslots } = o;
  const pageSlots = pool.pageSize >>> IO_TLB_SHIFT;
  const rng = new XorShift32(1);
  const fixed = o.size;
  // the ring's copies in flight: slot, original and size of each, FIFO by `head`
  const qSlot = new Int32Array(RING_DEPTH).fill(-1);
  const qOrig = new Float64Array(RING_DEPTH);
  const qSize = new Int32Array(RING_DEPTH);
  let head = 0;
  let rel = 0;
  let bytes = 0;
  const step = (): void => {
    if (fixed > 0) {
      rel = nextSlot(rel, fixed, pageSlots, nslots);
      copier.toSlot(pool, firstSlot + rel, ORIG_BASE, fixed);
      copier.fromSlot(pool, firstSlot + rel, ORIG_BASE, fixed);
      rel += Math.ceil(fixed / IO_TLB_SIZE);
      bytes += 2 * fixed;
      return;
    }
    const old = qSlot[head]!;
    if (old >= 0) {
      copier.fromSlot(pool, old, qOrig[head]!, qSize[head]!);
      bytes += qSize[head]!;
    }
    const size = ringSize(rng.next());
    const orig = ringOrig(rng.next());
    rel = nextSlot(rel, size, pageSlots, nslots);
    copier.toSlot(pool, firstSlot + rel, orig, size);
    qSlot[head] = firstSlot + rel;
    qOrig[head] = orig;
    qSize[head] = size;
    head = head + 1 === RING_DEPTH ? 0 : head + 1;
    rel += Math.ceil(size / IO_TLB_SIZE);
    bytes += size;
  };
  // warm the primitive and the walk (and fill the ring), untimed
  for (let i = 0; i < 4 * BATCH; i++) step();
  bytes = 0;
  const t0 = performance.now();
  const deadline = t0 + o.seconds * 1000;
  let t = t0;
  do {
    for (let i = 0; i < BATCH; i++) step();
    t = performance.now();
  } while (t < deadline);
  const elapsedNs = (t - t0) * 1e6;
  return { bytes, elapsedNs, bytesPerSec: (bytes / elapsedNs) * 1e9 };
}
