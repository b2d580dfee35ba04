// The copy limit of a workload: how fast the bounce copy primitive alone moves the same bytes.
// Measured in the same process, right before the workload, with the same primitive (the
// swiotlb's BounceCopy, which swiotlb_bounce calls), the same sizes in the same proportions
// (one fixed size for pingpong; the ring's xorshift32 sequence), each step a copy in and a
// copy back like one bidirectional map+unmap, and destinations walking the pool's slots as
// the slot search walks them (page-aligned from PAGE_SIZE up, never across a 128-slot segment).

import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE } from "../swiotlb/constants.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import type { BounceCopy } from "../swiotlb/bounce.js";
import { ORIG_BASE, XorShift32, ringOrig, ringSize } from "./xorshift.js";

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
  let rel = 0;
  let bytes = 0;
  const step = (): void => {
    let size: number;
    let orig: number;
    if (fixed > 0) {
      size = fixed;
      orig = ORIG_BASE;
    } else {
      size = ringSize(rng.next());
      orig = ringOrig(rng.next());
    }
    rel = nextSlot(rel, size, pageSlots, nslots);
    copier.toSlot(pool, firstSlot + rel, orig, size);
    copier.fromSlot(pool, firstSlot + rel, orig, size);
    rel += Math.ceil(size / IO_TLB_SIZE);
    bytes += 2 * size;
  };
  // warm the primitive and the walk, untimed
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
