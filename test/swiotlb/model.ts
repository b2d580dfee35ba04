// An independent, slow model of the kernel's slot allocator for differential tests: it keeps
// the explicit io_tlb_slot.list array and does the kernel's walks slot by slot, with BigInt
// addresses (spec linux-dma.md Appendix A). Only tests use it.

const SLOT = 2048n;
const SEG = 128;
const U64 = (1n << 64n) - 1n;

export interface ModelParams {
  start: bigint;
  nslabs: number;
  nareas: number;
  era: "5.13" | "6.x";
  pageSize: number;
}

export class ModelPool {
  readonly list: number[];
  readonly orig: bigint[];
  readonly alloc: bigint[];
  readonly pad: number[];
  readonly areaIndex: number[];
  readonly areaUsed: number[];
  readonly areaNslabs: number;
  spun = false;

  constructor(readonly p: ModelParams) {
    const n = p.nslabs;
    this.list = Array.from({ length: n }, (_, i) => (p.era === "6.x" ? Math.min(SEG - (i % SEG), n - i) : SEG - (i % SEG)));
    this.orig = new Array<bigint>(n).fill(U64);
    this.alloc = new Array<bigint>(n).fill(0n);
    this.pad = new Array<number>(n).fill(0);
    this.areaIndex = new Array<number>(p.nareas).fill(0);
    this.areaUsed = new Array<number>(p.nareas).fill(0);
    this.areaNslabs = Math.floor(n / p.nareas);
  }

  private static slots(b: bigint): number {
    return Number((b + SLOT - 1n) / SLOT);
  }

  private renumber(idx: number): void {
    let c = 0;
    for (let i = idx - 1; i >= 0 && i % SEG !== SEG - 1 && this.list[i] !== 0; i--) this.list[i] = ++c;
  }

  /** 5.13 find_slots + metadata; returns tlb offset from start, or null (full / spin) */
  map513(orig: bigint, size: bigint, minAlign: bigint): { first: number; tlb: bigint } | null {
    const p = this.p;
    const off = orig & minAlign & (SLOT - 1n);
    const bytes = size + off;
    const amask = minAlign & ~(SLOT - 1n);
    const n = ModelPool.slots(bytes);
    let stride = Number(amask >> 11n) + 1;
    if (bytes >= BigInt(p.pageSize)) stride = Math.max(stride, stride * (p.pageSize / 2048));
    if (n > p.nslabs - this.areaUsed[0]!) return null;
    const wrapAt = (i: number) => (i >= p.nslabs ? 0 : i);
    // ALIGN for a power-of-two stride (the tests use masks of the form 2^k - 1)
    let idx = wrapAt(Math.ceil(this.areaIndex[0]! / stride) * stride);
    const start = idx;
    let guard = 0;
    do {
      if (++guard > 4 * p.nslabs) {
        this.spun = true;
        return null;
      }
      if (((p.start + BigInt(idx) * SLOT) & amask) !== (orig & amask)) {
        idx = wrapAt(idx + 1);
        continue;
      }
      if (this.list[idx]! >= n) {
        for (let i = idx; i < idx + n; i++) this.list[i] = 0;
        this.renumber(idx);
        this.areaIndex[0] = idx + n < p.nslabs ? idx + n : 0;
        this.areaUsed[0]! += n;
        for (let i = 0; i < n; i++) {
          this.orig[idx + i] = orig + BigInt(i) * SLOT;
          this.alloc[idx + i] = (size - BigInt(i) * SLOT) & U64;
        }
        return { first: idx, tlb: BigInt(idx) * SLOT + off };
      }
      idx = wrapAt(idx + stride);
    } while (idx !== start);
    return null;
  }

  private searchArea(a: number, orig: bigint, size: bigint, alignMask: bigint, minAlign: bigint): number {
    const p = this.p;
    let imask = minAlign;
    const n = ModelPool.slots(size);
    const low = orig & imask & (SLOT - 1n);
    if (alignMask === 0n && imask === 0n && size >= BigInt(p.pageSize)) alignMask = BigInt(p.pageSize) - 1n;
    alignMask |= SLOT - 1n;
    imask &= ~alignMask;
    const stride = Number(((alignMask > imask ? alignMask : imask) >> 11n) + 1n);
    if (n > this.areaNslabs - this.areaUsed[a]!) return -1;
    const base = a * this.areaNslabs;
    let idx = this.areaIndex[a]!;
    const wrapAt = (i: number) => (i >= this.areaNslabs ? 0 : i);
    for (let checked = 0; checked < this.areaNslabs; ) {
      const s = base + idx;
      const t = p.start + BigInt(s) * SLOT;
      if ((t & alignMask) !== 0n || (orig !== 0n && (t & imask) !== (orig & imask))) {
        idx = wrapAt(idx + 1);
        checked += 1;
        continue;
      }
      if ((this.list[s] ?? 0) >= n) {
        for (let i = s; i < s + n; i++) {
          this.list[i] = 0;
          this.alloc[i] = (size - (low + BigInt(i - s) * SLOT)) & U64;
        }
        this.renumber(s);
        this.areaIndex[a] = wrapAt(idx + n);
        this.areaUsed[a]! += n;
        return s;
      }
      idx = wrapAt(idx + stride);
      checked += stride;
    }
    return -1;
  }

  /** 6.11 map; returns the first slot (pads included) and tlb offset, or null */
  map6x(cpu: number, orig: bigint, len: bigint, alignMask: bigint, minAlign: bigint): { first: number; tlb: bigint } | null {
    const full = orig & minAlign & (alignMask | (SLOT - 1n));
    const size = (len + full + alignMask) & ~alignMask;
    const na = this.p.nareas;
    const firstArea = cpu & (na - 1);
    let s: number;
    let a = firstArea;
    do {
      s = this.searchArea(a, orig, size, alignMask, minAlign);
      if (s >= 0) break;
      a = a + 1 >= na ? 0 : a + 1;
    } while (a !== firstArea);
    if (s < 0) return null;
    const pad = Number(full >> 11n);
    const real = s + pad;
    this.pad[real] = pad;
    for (let i = 0; i < ModelPool.slots(size) - pad; i++) this.orig[real + i] = orig + BigInt(i) * SLOT;
    return { first: s, tlb: BigInt(real) * SLOT + (full & (SLOT - 1n)) };
  }

  release(tlbOff: bigint, minAlign: bigint): number {
    const tlb = this.p.start + tlbOff;
    const off = tlb & minAlign & (SLOT - 1n);
    let idx = Number((tlb - off - this.p.start) >> 11n);
    if (this.p.era === "6.x") idx -= this.pad[idx]!;
    const n = ModelPool.slots((this.alloc[idx]! + off) & U64);
    let c = idx + n < Math.ceil((idx + 1) / SEG) * SEG ? (this.list[idx + n] ?? 0) : 0;
    for (let i = idx + n - 1; i >= idx; i--) {
      this.list[i] = ++c;
      this.orig[i] = U64;
      this.alloc[i] = 0n;
      this.pad[i] = 0;
    }
    for (let i = idx - 1; i >= 0 && i % SEG !== SEG - 1 && this.list[i] !== 0; i--) this.list[i] = ++c;
    const a = this.p.era === "5.13" ? 0 : Math.floor(idx / this.areaNslabs);
    this.areaUsed[a]! -= n;
    return n;
  }
}
