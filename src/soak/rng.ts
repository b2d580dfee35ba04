// The soak's random numbers: a small seeded generator (SplitMix32 steps; no global state), so
// a seed, a shard and an op index say exactly what ran.

/** One SplitMix32 step of x: a well-mixed 32-bit value (also the shard-stream derivation). */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** a uniform 32-bit unsigned value */
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    return mix32(this.s);
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }
  /** true with probability p */
  chance(p: number): boolean {
    return p > 0 && this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** The seed stream of shard k of n for a campaign seed: distinct, deterministic, independent of n. */
export function shardSeed(seed: number, k: number): number {
  return k === 0 ? seed >>> 0 : mix32((seed ^ Math.imul(k, 0x27d4eb2f)) >>> 0);
}

/** Fills dst with bytes derived from a 32-bit seed (a fast, repeatable pattern). */
export function fillPattern(dst: Uint8Array, seed: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < dst.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    dst[i] = x & 0xff;
  }
}
