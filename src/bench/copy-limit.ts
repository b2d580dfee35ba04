// The copy limit of a workload: how fast the bounce copy primitive alone moves the same bytes.
// Measured in the same process, right before the workload, with the same primitive
// (PhysicalMemory.copy, which swiotlb's bounce calls), the same sizes in the same
// proportions (one fixed size for pingpong; the ring's xorshift32 sequence), each step a copy
// in and a copy back like one bidirectional map+unmap, and destinations walking the 64 MiB
// pool region slot-aligned, as the slot search walks it (page-aligned from 4 KiB up, never
// across a 128-slot segment).

import type { PhysicalMemory } from "../memory/physical-memory.js";
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from "../swiotlb/constants.js";
import { ORIG_BASE, XorShift32, ringOrig, ringSize } from "./xorshift.js";

export interface CopyLimitOptions {
  memory: PhysicalMemory;
  /** the region the destinations walk (the pool's bounce memory) */
  destStart: number;
  destBytes: number;
  /** pingpong: one size; ring: 0 (the ring's mix) */
  size: number;
  /** wall time to spend, in seconds */
  seconds: number;
  pageSize?: number;
}

export interface CopyLimit {
  bytes: number;
  elapsedNs: number;
  bytesPerSec: number;
}

const SEG_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;
const BATCH = 256;

/** One step's destination after `dest` for `size` bytes, as the slot walk would place it. */
function nextDest(dest: number, size: number, pageSize: number, limit: number): number {
  const align = size >= pageSize ? pageSize : IO_TLB_SIZE;
  let d = Math.ceil(dest / align) * align;
  // a run never crosses a segment
  if ((d % SEG_BYTES) + size > SEG_BYTES) d = Math.ceil(d / SEG_BYTES) * SEG_BYTES;
  if (d + size > limit) d = 0;
  return d;
}

export function measureCopyLimit(o: CopyLimitOptions): CopyLimit {
  const mem = o.memory;
  const pageSize = o.pageSize ?? 4096;
  const base = o.destStart;
  const limit = o.destBytes;
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
    rel = nextDest(rel, size, pageSize, limit);
    const dst = base + rel;
    mem.copy(dst, orig, size);
    mem.copy(orig, dst, size);
    rel += size;
    bytes += 2 * size;
  };
  // warm the primitive and touch the walk once, untimed
  for (let i = 0; i < 2 * BATCH; i++) step();
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
