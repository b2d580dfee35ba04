// The ring workload's random numbers: Marsaglia's xorshift32 (13, 17, 5) on an unsigned
// 32-bit state seeded with 1, so that a native build of the allocator running the same loop
// sees the same sizes and originals in the same order.

export const RING_DEPTH = 256;
/** originals walk 65520 pages from the region's base (just under 256 MiB) */
export const RING_PAGES = 65520;
export const PAGE_4K = 4096;
/**
 * The originals' region: RING_PAGES pages + 64 KiB (pingpong uses its first bytes), in RAM the
 * boot left free (workloadOriginals in job.ts), 2 MiB aligned.
 */
export const ORIG_REGION_BYTES = RING_PAGES * PAGE_4K + 65536;
export const ORIG_ALIGN = 2 * 1024 * 1024;

// the generator itself is the workloads' one (seed 1 is its own non-zero state)
export { XorShift32 } from "../workload/rng.js";

/** The ring's draw for one new mapping: r1 gives the size, r2 the original. */
export function ringSize(r1: number): number {
  return 64 << (r1 % 11);
}
export function ringOrig(base: number, r2: number): number {
  return base + (r2 % RING_PAGES) * PAGE_4K;
}
