// A domain's stage-2 table: guest frame (GFN, 4 KiB, = IPA >> 12) → machine frame (MFN)
// and a p2m type. Stored in 2 MiB leaves (512 entries each, typed arrays) keyed by
// GFN >> 9, so a multi-GiB domain costs a few MB and the CPU can ask for a whole 2 MiB
// chunk at once (`contiguousChunk`).

import { InvalidArgumentError, hex } from "../../errors.js";

export type P2mType = "ram_rw" | "ram_ro" | "grant_map_rw" | "grant_map_ro" | "foreign_rw" | "mmio_direct";

const TYPES: readonly P2mType[] = ["ram_rw", "ram_ro", "grant_map_rw", "grant_map_ro", "foreign_rw", "mmio_direct"];
const TYPE_CODE = new Map<P2mType, number>(TYPES.map((t, i) => [t, i + 1]));

export const P2M_LEAF_SHIFT = 9;
const LEAF = 1 << P2M_LEAF_SHIFT;

interface Leaf {
  mfn: Float64Array;
  type: Uint8Array;
  count: number;
}

export interface P2mEntry {
  mfn: number;
  type: P2mType;
}

export class P2M {
  private readonly leaves = new Map<number, Leaf>();
  private entries = 0;
  /** highest GFN ever mapped (arm's max_mapped_gfn: never lowered by removals) */
  private maxMapped = 0;
  /** GFNs must be below this (the IPA size of the stage-2 table) */
  readonly gfnLimit: number;

  constructor(readonly ipaBits = 48) {
    this.gfnLimit = 2 ** (ipaBits - 12);
  }

  get size(): number {
    return this.entries;
  }
  get maxMappedGfn(): number {
    return this.maxMapped;
  }

  /** MFN behind a GFN, or -1 when nothing is mapped there. No allocation. */
  lookupMfn(gfn: number): number {
    const leaf = this.leaves.get(Math.floor(gfn / LEAF));
    if (leaf === undefined) return -1;
    return leaf.mfn[gfn % LEAF]!;
  }

  lookup(gfn: number): P2mEntry | undefined {
    if (!Number.isSafeInteger(gfn) || gfn < 0) return undefined;
    const leaf = this.leaves.get(Math.floor(gfn / LEAF));
    if (leaf === undefined) return undefined;
    const i = gfn % LEAF;
    const t = leaf.type[i]!;
    return t === 0 ? undefined : { mfn: leaf.mfn[i]!, type: TYPES[t - 1]! };
  }

  /** True when [gfn, gfn+count) fits the stage-2 address space. */
  inRange(gfn: number, count = 1): boolean {
    return Number.isSafeInteger(gfn) && gfn >= 0 && gfn + count <= this.gfnLimit;
  }

  /**
   * Map [gfn, gfn+count) → [mfn, mfn+count), replacing what was there (as p2m_set_entry
   * does). Returns false, changing nothing, when the range is beyond the IPA size.
   */
  insert(gfn: number, mfn: number, count = 1, type: P2mType = "ram_rw"): boolean {
    if (!this.inRange(gfn, count) || !Number.isSafeInteger(mfn) || mfn < 0) return false;
    const code = TYPE_CODE.get(type);
    if (code === undefined) throw new InvalidArgumentError(`p2m type ${String(type)}`);
    let leaf: Leaf | undefined;
    let leafKey = -1;
    for (let k = 0; k < count; k++) {
      const g = gfn + k;
      const key = Math.floor(g / LEAF);
      if (key !== leafKey || leaf === undefined) {
        leafKey = key;
        leaf = this.leaves.get(key);
        if (leaf === undefined) {
          leaf = { mfn: new Float64Array(LEAF).fill(-1), type: new Uint8Array(LEAF), count: 0 };
          this.leaves.set(key, leaf);
        }
      }
      const i = g % LEAF;
      if (leaf.type[i] === 0) {
        leaf.count++;
        this.entries++;
      }
      leaf.mfn[i] = mfn + k;
      leaf.type[i] = code;
    }
    if (count > 0 && gfn + count - 1 > this.maxMapped) this.maxMapped = gfn + count - 1;
    return true;
  }

  /** Unmap [gfn, gfn+count); returns how many entries were present. */
  remove(gfn: number, count = 1): number {
    let n = 0;
    for (let k = 0; k < count; k++) {
      const g = gfn + k;
      const key = Math.floor(g / LEAF);
      const leaf = this.leaves.get(key);
      if (leaf === undefined) continue;
      const i = g % LEAF;
      if (leaf.type[i] === 0) continue;
      leaf.type[i] = 0;
      leaf.mfn[i] = -1;
      leaf.count--;
      this.entries--;
      n++;
      if (leaf.count === 0) this.leaves.delete(key);
    }
    return n;
  }

  /** Every mapping, ascending by GFN. */
  *[Symbol.iterator](): IterableIterator<[number, P2mEntry]> {
    const keys = [...this.leaves.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const leaf = this.leaves.get(key)!;
      for (let i = 0; i < LEAF; i++) {
        const t = leaf.type[i]!;
        if (t !== 0) yield [key * LEAF + i, { mfn: leaf.mfn[i]!, type: TYPES[t - 1]! }];
      }
    }
  }

  /**
   * When the 2 MiB guest chunk holding `gfn` is entirely RAM mapped onto one naturally
   * aligned 2 MiB machine block, its first MFN; otherwise undefined. Lets the CPU map guest
   * RAM chunk by chunk.
   */
  contiguousChunk(gfn: number): number | undefined {
    const leaf = this.leaves.get(Math.floor(gfn / LEAF));
    if (leaf === undefined || leaf.count !== LEAF) return undefined;
    const base = leaf.mfn[0]!;
    if (base % LEAF !== 0) return undefined;
    for (let i = 0; i < LEAF; i++) if (leaf.mfn[i] !== base + i || leaf.type[i] !== 1) return undefined;
    return base;
  }

  /** A stable text image of the table, for "unchanged after an error" assertions. */
  snapshot(): string {
    const parts: string[] = [];
    let runStart = -1;
    let runMfn = -1;
    let runType: P2mType | undefined;
    let runLen = 0;
    const flush = (): void => {
      if (runLen > 0) parts.push(`${hex(runStart)}+${runLen}->${hex(runMfn)}:${runType}`);
    };
    for (const [g, e] of this) {
      if (runLen > 0 && g === runStart + runLen && e.mfn === runMfn + runLen && e.type === runType) {
        runLen++;
        continue;
      }
      flush();
      runStart = g;
      runMfn = e.mfn;
      runType = e.type;
      runLen = 1;
    }
    flush();
    return parts.join(" ");
  }
}
