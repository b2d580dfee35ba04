// Address → `symbol+offset` for fault reports, traces and the GDB stub's users, from an ELF
// .symtab. A sized symbol (a C function or object) covers [value, value+size); a label of
// size 0 (assembly) covers up to the next symbol, within the loaded segment that holds it.

import type { ElfImage, ElfSymbol } from "./elf.js";

export class SymbolTable {
  private readonly syms: ElfSymbol[];
  private readonly ranges: { start: number; end: number }[];

  constructor(image: Pick<ElfImage, "symbols" | "segments">) {
    // functions before objects before labels at one address: `cmain` rather than `$x` or a label
    const rank = (s: ElfSymbol): number => (s.kind === "func" ? 0 : s.kind === "object" ? 1 : 2);
    this.syms = [...image.symbols].sort((a, b) => a.value - b.value || rank(a) - rank(b) || a.name.localeCompare(b.name));
    this.ranges = image.segments.map((s) => ({ start: s.vaddr, end: s.vaddr + s.memsz }));
  }

  static readonly EMPTY = new SymbolTable({ symbols: [], segments: [] });

  get size(): number {
    return this.syms.length;
  }

  /** The symbol's address, for names given on a command line or by a debugger. */
  address(name: string): number | undefined {
    return this.syms.find((s) => s.name === name)?.value;
  }

  /** The symbol covering `addr` and the offset into it, or undefined. */
  lookup(addr: number): { name: string; offset: number } | undefined {
    const ss = this.syms;
    let lo = 0;
    let hi = ss.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ss[mid]!.value <= addr) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (best < 0) return undefined;
    // the first symbol at that address ranks best (sort order above)
    let i = best;
    while (i > 0 && ss[i - 1]!.value === ss[best]!.value) i--;
    const top = ss[i]!;
    if (top.size === 0) {
      const seg = this.ranges.find((r) => top.value >= r.start && top.value < r.end);
      return seg !== undefined && addr < seg.end ? { name: top.name, offset: addr - top.value } : undefined;
    }
    // a sized symbol that ends before addr does not cover it; an enclosing earlier one might
    for (let k = best; k >= 0; k--) {
      const s = ss[k]!;
      if (s.size > 0 && addr < s.value + s.size) return { name: s.name, offset: addr - s.value };
    }
    return undefined;
  }

  /** `<name+0x40>` (or `<name>` at its start), empty when no symbol covers addr. */
  describe(addr: number): string {
    const l = this.lookup(addr);
    if (l === undefined) return "";
    return l.offset === 0 ? `<${l.name}>` : `<${l.name}+0x${l.offset.toString(16)}>`;
  }
}
