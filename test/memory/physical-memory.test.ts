import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MemoryFault, PhysicalMemory } from "../../src/memory/physical-memory.js";
import { Memblock } from "../../src/memory/memblock.js";

const GiB = 1024 ** 3;

describe("PhysicalMemory", () => {
  it("is sparse: a 16 GiB board allocates only touched chunks", () => {
    const m = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 16 * GiB }] });
    expect(m.allocatedBytes).toBe(0);
    m.write32(0x4000_0000 + 15 * GiB, 0xdeadbeef);
    expect(m.allocatedBytes).toBe(2 * 1024 * 1024);
    expect(m.read32(0x4000_0000 + 15 * GiB)).toBe(0xdeadbeef);
  });

  it("reads and writes little-endian at every width, across chunk borders", () => {
    const m = new PhysicalMemory({ banks: [{ base: 0, size: 8 * 1024 * 1024 }] });
    const border = 2 * 1024 * 1024;
    for (const a of [0x100, border - 3, border - 1, border - 7]) {
      m.write64(a, 0x0102030405060708n);
      expect(m.read8(a)).toBe(0x08);
      expect(m.read16(a)).toBe(0x0708);
      expect(m.read32(a)).toBe(0x05060708);
      expect(m.read64(a)).toBe(0x0102030405060708n);
      m.write16(a, 0xbeef);
      expect(m.read8(a + 1)).toBe(0xbe);
      m.write32(a, 0xffffffff);
      expect(m.read32(a)).toBe(0xffffffff);
    }
  });

  it("faults outside RAM, past the PA width and in no-map regions, naming address and size", () => {
    const m = new PhysicalMemory({
      banks: [{ base: 0x4000_0000, size: GiB }],
      reserved: [{ base: 0x4800_0000, size: 0x10_0000, name: "fw", noMap: true }],
      paBits: 40,
    });
    expect(() => m.read32(0x1000)).toThrow(MemoryFault);
    expect(() => m.read32(0x1000)).toThrow(/read of 4 bytes at 0x1000/);
    expect(() => m.write64(2 ** 41, 1n)).toThrow(/beyond the physical address width/);
    expect(() => m.read8(0x4800_0010)).toThrow(/no-map/);
    expect(() => m.read(0x4000_0000 + GiB - 4, 8)).toThrow(/at 0x80000000/);
  });

  it("bulk copy/fill match a flat reference model", () => {
    const size = 6 * 1024 * 1024;
    fc.assert(
      fc.property(
        fc.nat(size - 1),
        fc.nat(size - 1),
        fc.integer({ min: 0, max: 300_000 }),
        fc.integer({ min: 0, max: 255 }),
        (d, s, len, byte) => {
          len = Math.min(len, size - d, size - s);
          const m = new PhysicalMemory({ banks: [{ base: 0, size }] });
          const ref = new Uint8Array(size);
          for (let i = 0; i < size; i += 4093) {
            ref[i] = i & 0xff;
            m.write8(i, i & 0xff);
          }
          m.copy(d, s, len);
          ref.copyWithin(d, s, s + len);
          m.fill(s, Math.min(len, 100), byte);
          ref.fill(byte, s, s + Math.min(len, 100));
          expect(Buffer.compare(m.read(0, size), ref)).toBe(0);
        },
      ),
      { numRuns: 25 },
    );
  });

  it("routes MMIO accesses to the window's handler and refuses bulk MMIO", () => {
    const m = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: GiB }] });
    const log: string[] = [];
    m.addMmio(0x0900_0000, 0x1000, "uart", {
      read: (o, s) => BigInt(o + s),
      write: (o, s, v) => void log.push(`${o}/${s}=${v}`),
    });
    expect(m.read32(0x0900_0010)).toBe(0x14);
    m.write16(0x0900_0008, 0x1234);
    expect(log).toEqual(["8/2=4660"]);
    expect(() => m.read(0x0900_0000, 16)).toThrow(/MMIO/);
    expect(() => m.addMmio(0x4000_0000, 0x1000, "bad", { read: () => 0n, write: () => {} })).toThrow(/overlaps RAM/);
  });
});

describe("Memblock", () => {
  it("allocates top-down below a limit and skips reserved regions", () => {
    const m = new PhysicalMemory({
      banks: [{ base: 0x4000_0000, size: 4 * GiB }],
      reserved: [{ base: 0xfff0_0000, size: 0x10_0000, name: "top" }],
    });
    const mb = new Memblock(m);
    const a = mb.allocTopDown(64 << 20, 4096, 0x1_0000_0000);
    expect(a).toBe(0x1_0000_0000 - 0x10_0000 - (64 << 20));
    expect(mb.allocTopDown(8 * GiB, 4096)).toBe(-1);
  });
});
