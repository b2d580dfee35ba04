// Boot-time physical allocator in the style of the kernel's memblock: hands out ranges of RAM,
// top-down (the kernel's default direction) below a limit, skipping reserved regions and what
// it already gave out. The swiotlb default pool and workload buffers are placed with it, so a
// pool lands where the kernel would put it: as high as possible in low memory.

import { InvalidArgumentError, hex } from "../errors.js";
import type { PhysicalMemory } from "./physical-memory.js";

interface Range {
  base: number;
  end: number;
  name: string;
}

export class Memblock {
  private readonly taken: Range[] = [];

  constructor(private readonly mem: PhysicalMemory) {
    for (const r of mem.reserved) this.taken.push({ base: r.base, end: r.base + r.size, name: r.name });
  }

  /** Ranges handed out or reserved, lowest first. */
  get regions(): readonly Range[] {
    return [...this.taken].sort((a, b) => a.base - b.base);
  }

  /**
   * Allocates `size` bytes aligned to `align`, ending at or below `limit` (exclusive upper
   * bound; Infinity = anywhere), searching top-down. Returns the base, or -1 if nothing fits.
   */
  allocTopDown(size: number, align: number, limit = Infinity, name = "memblock"): number {
    if (!(size > 0) || !Number.isSafeInteger(size)) throw new InvalidArgumentError(`memblock allocation of ${size} bytes`);
    if (!(align > 0) || !Number.isInteger(Math.log2(align))) throw new InvalidArgumentError(`memblock alignment ${hex(align)} is not a power of two`);
    const banks = [...this.mem.banks].sort((a, b) => b.base - a.base);
    for (const bank of banks) {
      let top = Math.min(bank.end, limit);
      while (top - size >= bank.base) {
        const base = Math.floor((top - size) / align) * align;
        if (base < bank.base) break;
        const clash = this.taken.find((t) => base < t.end && t.base < base + size);
        if (!clash) {
          this.taken.push({ base, end: base + size, name });
          return base;
        }
        top = clash.base;
      }
    }
    return -1;
  }

  /** Allocates bottom-up from `from` (inclusive). Returns the base, or -1. */
  allocBottomUp(size: number, align: number, from = 0, limit = Infinity, name = "memblock"): number {
    if (!(size > 0) || !Number.isSafeInteger(size)) throw new InvalidArgumentError(`memblock allocation of ${size} bytes`);
    for (const bank of this.mem.banks) {
      let base = Math.ceil(Math.max(bank.base, from) / align) * align;
      while (base + size <= Math.min(bank.end, limit)) {
        const clash = this.taken.find((t) => base < t.end && t.base < base + size);
        if (!clash) {
          this.taken.push({ base, end: base + size, name });
          return base;
        }
        base = Math.ceil(clash.end / align) * align;
      }
    }
    return -1;
  }

  /** Marks [base, base+size) as used (e.g. a fixed buffer a workload puts at a known address). */
  reserve(base: number, size: number, name: string): void {
    if (!this.mem.isRam(base, size)) throw new InvalidArgumentError(`memblock reserve ${name} [${hex(base)}+${hex(size)}] is not RAM`);
    const clash = this.taken.find((t) => base < t.end && t.base < base + size);
    if (clash) throw new InvalidArgumentError(`memblock reserve ${name} [${hex(base)}+${hex(size)}] overlaps ${clash.name}`);
    this.taken.push({ base, end: base + size, name });
  }

  free(base: number): void {
    const i = this.taken.findIndex((t) => t.base === base);
    if (i < 0) throw new InvalidArgumentError(`memblock free of ${hex(base)}: not allocated`);
    this.taken.splice(i, 1);
  }
}
