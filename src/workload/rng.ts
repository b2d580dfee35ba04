// xorshift32 (Marsaglia 2003): tiny, fast and reproducible across platforms, so a workload
// with the same --seed makes the same mappings, sizes and bytes on every run.

export class XorShift32 {
  /**
   * The state, in a typed array: half the states are not small integers in V8, and a number
   * field holding one gets a fresh heap box on every store (measured: 8 bytes per ring pair).
   */
  private readonly s = new Int32Array(1);
  constructor(seed: number) {
    // the all-zero state is a fixed point of xorshift; map seed 0 to a fixed non-zero state
    this.s[0] = seed >>> 0 || 0x9e37_79b9;
  }
  /** next 32-bit value, as an unsigned number */
  next(): number {
    let x = this.s[0]!;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s[0] = x;
    return x >>> 0;
  }
  /** uniform integer in [lo, hi] (inclusive) */
  range(lo: number, hi: number): number {
    return lo + (this.next() % (hi - lo + 1));
  }
  /** true with probability p */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  get state(): number {
    return this.s[0]! >>> 0;
  }
}

/**
 * Fills dst[0..len) with the byte stream of xorshift32 seeded by `seed`: the content of one
 * DMA buffer is fully described by (seed, len), so nothing has to be kept to check it later.
 */
export function fillPattern(dst: Uint8Array, len: number, seed: number): void {
  let x = seed >>> 0 || 0x2545_f491;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    dst[i] = x & 0xff;
    dst[i + 1] = (x >>> 8) & 0xff;
    dst[i + 2] = (x >>> 16) & 0xff;
    dst[i + 3] = x >>> 24;
  }
  if (i < len) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    for (let k = 0; i < len; i++, k += 8) dst[i] = (x >>> k) & 0xff;
  }
}
