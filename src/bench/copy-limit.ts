// The copy limit of a workload: how fast the hot path's bounce copies alone move the same bytes,
// a ceiling for the workload's bounced bytes per second. The same code (with the plain path, its
// WebAssembly `walk`: the module's own copy and prefetch functions, prefetching where map does;
// else the general path's copy, Swiotlb.hotBounce), the same sizes in the same proportions (one
// fixed size for pingpong; the ring's xorshift32 sequence), the same originals (the workload's
// region, so the same alignment and cache colour), the copies in the workload's order — pingpong
// copies back right after copying in; the ring copies back what it copied in RING_DEPTH steps
// earlier, when that mapping leaves the FIFO — and destinations walking the pool's slots as the
// slot search walks them (page-aligned from PAGE_SIZE up, never across a 128-slot segment).
// What it leaves out is the allocator: the search, claim and release, and the call per map.
// The job measures it in slices interleaved with the workload's, so a drifting host moves both.

import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import type { HotBounce } from "../swiotlb/bounce.js";
import { PlainPath, type CopyWalkState } from "../swiotlb/plain-path.js";
import { RING_DEPTH, RING_PAGES, XorShift32, ringOrig, ringSize } from "./xorshift.js";

export interface CopyLimitOptions {
  /** the hot path's bounce copy (Swiotlb.hotBounce) */
  bounce: HotBounce;
  pool: IoTlbPool;
  /** the slots the destinations walk: [firstSlot, firstSlot + nslots) */
  firstSlot: number;
  nslots: number;
  /** pingpong: one size; ring: 0 (the ring's mix) */
  size: number;
  /** where the workload's originals start (Pingpong's original; the ring's region) */
  origBase: number;
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
    const orig = this.o.origBase;
    for (let i = 0; i < n; i++) {
      rel = nextSlot(rel, size, pageSlots, nslots);
      arg[0] = orig;
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
      const orig = ringOrig(this.o.origBase, rng.next());
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

/** The same walk in the plain path's module (walk in plain-path.wat): no JavaScript per copy. */
class ModuleWalk {
  constructor(
    private readonly path: PlainPath,
    private readonly st: CopyWalkState,
    private readonly o: CopyLimitOptions,
  ) {
    // layout in plain-path.wat: rel 0, head 0, xorshift32 seeded with 1, base, pages, FIFO empty
    st.i32[2] = 1;
    st.f64[2] = o.origBase;
    st.i32[6] = RING_PAGES;
    for (let i = 0; i < RING_DEPTH; i++) st.i32[12 + 4 * i] = -1;
  }

  /** bytes copied so far */
  get bytes(): number {
    return this.st.f64[4]!;
  }

  /** false when the module could not (the JavaScript walk then takes over) */
  steps(n: number): boolean {
    return this.path.walk(this.st, this.o.firstSlot, this.o.nslots, this.o.size, n);
  }
}

/**
 * A workload's copy limit, measured in stretches (runUntil) that add up: the job interleaves
 * them with the workload's own.
 */
export class CopyLimiter {
  private readonly js: CopyWalk;
  private mod: ModuleWalk | null = null;
  private bytes = 0;
  private ns = 0;

  constructor(o: CopyLimitOptions) {
    this.js = new CopyWalk(o);
    if (o.bounce instanceof PlainPath) {
      const st = o.bounce.newWalk();
      if (st !== null) this.mod = new ModuleWalk(o.bounce, st, o);
    }
  }

  /** the copies run in the plain path's module (else the JavaScript walk over the general copy) */
  get inModule(): boolean {
    return this.mod !== null;
  }

  private total(): number {
    return this.mod !== null ? this.mod.bytes : this.js.bytes[0];
  }

  private steps(n: number): void {
    if (this.mod !== null && this.mod.steps(n)) return;
    // not plain RAM for the module after all: the general copy, from the walk's start
    this.mod = null;
    this.js.steps(n);
  }

  /** Untimed: warms the code and the walk (and fills the ring's FIFO). */
  warmUp(): void {
    for (let i = 0; i < 8; i++) this.steps(BATCH);
  }

  /** Copies until `deadlineMs` (performance.now() scale), at least one batch of `batch` steps. */
  runUntil(deadlineMs: number, batch = BATCH): void {
    const b0 = this.total();
    const t0 = performance.now();
    let t: number;
    do {
      this.steps(batch);
      t = performance.now();
    } while (t < deadlineMs);
    this.bytes += this.total() - b0;
    this.ns += (t - t0) * 1e6;
  }

  result(): CopyLimit {
    return { bytes: this.bytes, elapsedNs: this.ns, bytesPerSec: this.ns > 0 ? (this.bytes / this.ns) * 1e9 : 0 };
  }
}

/** One stretch of `seconds`, after a warm-up. */
export function measureCopyLimit(o: CopyLimitOptions, seconds: number): CopyLimit {
  const c = new CopyLimiter(o);
  c.warmUp();
  c.runUntil(performance.now() + seconds * 1000);
  return c.result();
}
