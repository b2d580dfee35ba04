// The two throughput workloads of `dmalab bench --workload`. Both drive
// swiotlb_tbl_map_single / swiotlb_tbl_unmap_single directly (bidirectional, device masks 0),
// the same loop a native build of the kernel's allocator runs, so the two can be compared.
//
//   pingpong: map then unmap one buffer of `size` bytes whose original sits at the originals'
//             base (free RAM the boot left, see workloadOriginals)
//   ring:     256 mappings in flight, FIFO; every step unmaps the oldest and maps a new one
//             (sizes 64 << (r1 % 11), originals base + (r2 % 65520) * 4096, xorshift32)
//
// Timing never reads the clock per pair: run(n) does n pairs and the caller times batches.
// The latency sample (sample()) is a separate stretch where each pair is timed on its own.

import { DMA_BIDIRECTIONAL } from "../kernel/dma-mapping.js";
import type { SwiotlbDevice } from "../swiotlb/device.js";
import { RING_DEPTH, XorShift32, ringOrig, ringSize } from "./xorshift.js";

/** What the workloads call: the swiotlb entry points of the chosen profile. */
export interface BenchSwiotlb {
  /**
   * swiotlb_tbl_map_single(dev, orig, mapping_size, x, dir, attrs) on CPU `cpu`, where x is
   * alloc_align_mask (6.10+) or alloc_size (5.13); -1 = DMA_MAPPING_ERROR
   */
  tblMapSingle(dev: SwiotlbDevice, orig: number, mappingSize: number, allocSizeOrAlignMask: number, dir: 0 | 1 | 2 | 3, attrs: number, cpu: number): number;
  /** swiotlb_tbl_unmap_single(dev, tlb_addr, mapping_size, dir, attrs) */
  tblUnmapSingle(dev: SwiotlbDevice, tlbAddr: number, mappingSize: number, dir: 0 | 1 | 2 | 3, attrs: number): void;
}

/** A workload on one emulated CPU. */
export interface Stepper {
  /** pairs done so far (timed or not) */
  readonly pairs: number;
  /** bytes copied between originals and bounce buffers so far */
  readonly bouncedBytes: number;
  /** maps that answered DMA_MAPPING_ERROR */
  readonly failures: number;
  /** n map+unmap pairs */
  run(n: number): void;
  /**
   * n pairs, each timed on its own: map and unmap separately into mapNs/unmapNs and the
   * whole pair into pairNs (pair = map + unmap as measured, so one clock read per edge).
   */
  sample(n: number, mapNs: Float64Array, unmapNs: Float64Array, pairNs: Float64Array, offset: number): void;
  /** bytes copied per pair in the bounces (2 × size in 6.x, bidirectional) */
  readonly copiesPerPair: number;
}

const now = (): number => performance.now();

export class Pingpong implements Stepper {
  pairs = 0;
  failures = 0;
  readonly copiesPerPair = 2;
  constructor(
    private readonly sw: BenchSwiotlb,
    private readonly dev: SwiotlbDevice,
    readonly size: number,
    private readonly cpu: number,
    /** the 5.13 signature: the fourth argument is alloc_size, not alloc_align_mask */
    passAllocSize: boolean,
    /** the original's address (the originals' base: workloadOriginals) */
    private readonly orig: number,
  ) {
    this.arg4 = passAllocSize ? size : 0;
  }
  private readonly arg4: number;

  get bouncedBytes(): number {
    return (this.pairs - this.failures) * 2 * this.size;
  }

  run(n: number): void {
    const sw = this.sw;
    const dev = this.dev;
    const size = this.size;
    const orig = this.orig;
    const cpu = this.cpu;
    const arg4 = this.arg4;
    // nothing after the loop: code that only runs once the loop is done has no type feedback
    // when V8 optimizes the loop on stack, and would deoptimize at the end of every call
    this.pairs += n;
    for (let i = 0; i < n; i++) {
      const tlb = sw.tblMapSingle(dev, orig, size, arg4, DMA_BIDIRECTIONAL, 0, cpu);
      if (tlb === -1) {
        this.failures++;
        continue;
      }
      sw.tblUnmapSingle(dev, tlb, size, DMA_BIDIRECTIONAL, 0);
    }
  }

  sample(n: number, mapNs: Float64Array, unmapNs: Float64Array, pairNs: Float64Array, offset: number): void {
    const sw = this.sw;
    const dev = this.dev;
    for (let i = 0; i < n; i++) {
      const t0 = now();
      const tlb = sw.tblMapSingle(dev, this.orig, this.size, this.arg4, DMA_BIDIRECTIONAL, 0, this.cpu);
      const t1 = now();
      if (tlb !== -1) sw.tblUnmapSingle(dev, tlb, this.size, DMA_BIDIRECTIONAL, 0);
      else this.failures++;
      const t2 = now();
      mapNs[offset + i] = (t1 - t0) * 1e6;
      unmapNs[offset + i] = (t2 - t1) * 1e6;
      pairNs[offset + i] = (t2 - t0) * 1e6;
    }
    this.pairs += n;
  }
}

export class Ring implements Stepper {
  pairs = 0;
  failures = 0;
  readonly copiesPerPair = 2;
  /**
   * bytes bounced so far, in a typed array: the count outgrows a small integer within a
   * second, and a number field that does so makes V8 box every later update on the heap
   */
  /** one double kept off the heap (a number field would box it on every update); [0] always exists */
  private readonly bounced = new Float64Array(1) as Float64Array & { 0: number };
  private readonly tlb = new Float64Array(RING_DEPTH);
  private readonly sizes = new Int32Array(RING_DEPTH);
  private head = 0;
  private readonly rng: XorShift32;

  constructor(
    private readonly sw: BenchSwiotlb,
    private readonly dev: SwiotlbDevice,
    private readonly cpu: number,
    /** the 5.13 signature: the fourth argument is alloc_size, not alloc_align_mask */
    private readonly passAllocSize: boolean,
    /** the originals' region (workloadOriginals) */
    private readonly origBase: number,
    seed = 1,
  ) {
    this.rng = new XorShift32(seed);
  }

  /** The untimed prefill: 256 maps. */
  prefill(): void {
    for (let i = 0; i < RING_DEPTH; i++) this.mapInto(i);
    this.head = 0;
  }

  get bouncedBytes(): number {
    return this.bounced[0];
  }

  private mapInto(i: number): void {
    const r1 = this.rng.next();
    const r2 = this.rng.next();
    const size = ringSize(r1);
    const tlb = this.sw.tblMapSingle(this.dev, ringOrig(this.origBase, r2), size, this.passAllocSize ? size : 0, DMA_BIDIRECTIONAL, 0, this.cpu);
    this.tlb[i] = tlb;
    this.sizes[i] = size;
    if (tlb === -1) this.failures++;
    else this.bounced[0] += size; // the map's copy-in
  }

  private unmapAt(i: number): void {
    const tlb = this.tlb[i]!;
    if (tlb === -1) return;
    const size = this.sizes[i]!;
    this.sw.tblUnmapSingle(this.dev, tlb, size, DMA_BIDIRECTIONAL, 0);
    this.bounced[0] += size; // the unmap's copy-back
  }

  run(n: number): void {
    // unmapAt and mapInto written out flat: what V8 inlines into one loop is limited (in
    // bytecodes), and an address (a double) passed to or returned from a call it did not
    // inline is boxed on the heap, once per map and unmap. Nothing after the loop (see
    // Pingpong.run).
    const sw = this.sw;
    const dev = this.dev;
    const cpu = this.cpu;
    const rng = this.rng;
    const tlbs = this.tlb;
    const sizes = this.sizes;
    const bounced = this.bounced;
    const passAllocSize = this.passAllocSize;
    const origBase = this.origBase;
    this.pairs += n;
    for (let k = 0; k < n; k++) {
      const head = this.head;
      const old = tlbs[head]!;
      if (old !== -1) {
        const sz = sizes[head]!;
        sw.tblUnmapSingle(dev, old, sz, DMA_BIDIRECTIONAL, 0);
        bounced[0] += sz;
      }
      const r1 = rng.next();
      const r2 = rng.next();
      const size = ringSize(r1);
      const tlb = sw.tblMapSingle(dev, ringOrig(origBase, r2), size, passAllocSize ? size : 0, DMA_BIDIRECTIONAL, 0, cpu);
      tlbs[head] = tlb;
      sizes[head] = size;
      if (tlb === -1) this.failures++;
      else bounced[0] += size;
      this.head = head + 1 === RING_DEPTH ? 0 : head + 1;
    }
  }

  sample(n: number, mapNs: Float64Array, unmapNs: Float64Array, pairNs: Float64Array, offset: number): void {
    let head = this.head;
    for (let k = 0; k < n; k++) {
      const t0 = now();
      this.unmapAt(head);
      const t1 = now();
      this.mapInto(head);
      const t2 = now();
      head = head + 1 === RING_DEPTH ? 0 : head + 1;
      unmapNs[offset + k] = (t1 - t0) * 1e6;
      mapNs[offset + k] = (t2 - t1) * 1e6;
      pairNs[offset + k] = (t2 - t0) * 1e6;
    }
    this.head = head;
    this.pairs += n;
  }

  /** Unmaps what is still in flight (the pool is left as found). */
  drain(): void {
    for (let i = 0; i < RING_DEPTH; i++) {
      this.unmapAt(i);
      this.tlb[i] = -1;
    }
  }
}

/** Bytes bounced per pair don't change the clock: the caller counts them from bouncedBytes. */
export const PINGPONG_WARMUP = 20_000;
