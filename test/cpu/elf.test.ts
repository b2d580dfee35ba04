import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ElfError, isElf, parseElf } from "../../src/cpu/elf.js";
import { SymbolTable } from "../../src/cpu/symbols.js";
import { tinyElf } from "./asm.js";

const hello = new Uint8Array(readFileSync(join(__dirname, "..", "..", "fixtures", "guest", "hello.elf")));

describe("parseElf", () => {
  it("reads the C fixture: entry, segments at p_paddr with .bss past p_filesz, symbols", () => {
    expect(isElf(hello)).toBe(true);
    const e = parseElf(hello, "hello.elf");
    expect(e.entry).toBe(0x4008_0000);
    expect(e.segments.length).toBeGreaterThanOrEqual(3);
    expect(e.segments.some((s) => s.memsz > s.data.length)).toBe(true); // .bss
    const syms = new SymbolTable(e);
    const main = syms.address("main")!;
    expect(main).toBeGreaterThan(0x4008_0000);
    expect(syms.describe(main)).toBe("<main>");
    expect(syms.describe(main + 8)).toBe("<main+0x8>");
    expect(syms.describe(0x4008_0000)).toBe("<_start>");
    expect(syms.describe(0x1000)).toBe("");
  });

  it("a tiny hand-made ELF", () => {
    const e = parseElf(tinyElf(new Uint8Array([0, 0, 0x20, 0xd4]), 0x4008_0000, 16), "t");
    expect(e).toMatchObject({ entry: 0x4008_0000, symbols: [] });
    expect(e.segments[0]).toMatchObject({ paddr: 0x4008_0000, memsz: 20 });
  });

  it.each([
    ["not an ELF", new Uint8Array([1, 2, 3, 4, 5]), /no \\x7fELF magic/],
    ["truncated header", hello.subarray(0, 40), /truncated ELF header/],
    ["ELF32", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setUint8(4, 1)), /only ELF64/],
    ["big-endian", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setUint8(5, 2)), /little-endian/],
    ["x86-64", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setUint16(18, 62, true)), /not an AArch64/],
    ["PIE", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setUint16(16, 3, true)), /ET_DYN/],
    ["truncated program headers", tinyElf(new Uint8Array(4)).subarray(0, 100), /truncated: program headers/],
    ["segment past the end of the file", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => { dv.setBigUint64(96, 4096n, true); dv.setBigUint64(104, 4096n, true); }), /truncated: segment 0/],
    ["filesz > memsz", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setBigUint64(104, 2n, true)), /p_filesz/],
    ["entry outside the segments", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setBigUint64(24, 0x1000n, true)), /entry point 0x1000/],
    ["dynamic", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => dv.setUint32(64, 3, true)), /PT_INTERP/],
    ["truncated section headers", tinyElf(new Uint8Array(4), 0x4008_0000, 0, (dv) => { dv.setBigUint64(40, 200n, true); dv.setUint16(60, 4, true); }), /truncated: section headers/],
  ])("refuses %s with a typed error naming the file (exit 2)", (_n, bytes, re) => {
    let err: unknown;
    try {
      parseElf(bytes, "prog.elf");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ElfError);
    expect((err as ElfError).exitCode).toBe(2);
    expect((err as Error).message).toMatch(/^prog\.elf: /);
    expect((err as Error).message).toMatch(re);
  });

  it("any corruption of the headers is a typed error or a valid image, never a crash", () => {
    const head = hello.subarray(0, 4096);
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 191 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 64, max: hello.length }), (at, v, len) => {
        const b = new Uint8Array(hello.subarray(0, len));
        b[at] = v;
        try {
          const e = parseElf(b, "f");
          for (const s of e.segments) expect(s.data.length).toBeLessThanOrEqual(s.memsz);
        } catch (e) {
          expect(e).toBeInstanceOf(ElfError);
        }
      }),
      { numRuns: 300 },
    );
    expect(head.length).toBe(4096);
  });
});
