// The RAM arena: chunks carved out of one shared WebAssembly memory, and what PhysicalMemory
// does with it (colours, growth, the SharedArrayBuffer fallback, workers adopting it).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { InvalidArgumentError } from "../../src/errors.js";
import { ChunkArena, WASM_PAGE } from "../../src/memory/arena.js";
import { adviseHugePages } from "../../src/memory/huge-pages.js";
import { missingHostFeatures } from "../../src/host-features.js";
import { CHUNK_COLOURS, PhysicalMemory, chunkColour } from "../../src/memory/physical-memory.js";
import { readFileSync } from "node:fs";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe("ChunkArena", () => {
  it("hands out zeroed views at their colour past a page boundary, and knows their offsets", () => {
    const a = ChunkArena.create(16 * MiB)!;
    expect(a).not.toBeNull();
    const v1 = a.alloc(MiB, 0)!;
    const v2 = a.alloc(MiB, 3 * 64)!;
    expect(v1.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.offsetOf(v1) % 4096).toBe(0);
    expect(a.offsetOf(v2) % 4096).toBe(192);
    expect(a.offsetOf(v2)).toBeGreaterThanOrEqual(a.offsetOf(v1) + MiB);
    expect(v2.every((b) => b === 0)).toBe(true);
    expect(a.offsetOf(new Uint8Array(8))).toBe(-1);
  });

  it("keeps views made before a grow valid (the memory never moves)", () => {
    const a = ChunkArena.create(64 * MiB)!;
    const v1 = a.alloc(WASM_PAGE, 0)!;
    v1[7] = 0x5a;
    const v2 = a.alloc(8 * MiB, 0)!; // grows the memory
    expect(a.memory.buffer.byteLength).toBeGreaterThanOrEqual(a.offsetOf(v2) + 8 * MiB);
    const whole = new Uint8Array(a.memory.buffer);
    expect(whole[a.offsetOf(v1) + 7]).toBe(0x5a);
    whole[a.offsetOf(v1) + 8] = 0xa5;
    expect(v1[8]).toBe(0xa5);
  });

  it("grows by whole 2 MiB, so that every 2 MiB of RAM can be one huge page when first touched", () => {
    const a = ChunkArena.create(64 * MiB)!;
    for (const [len, colour] of [[WASM_PAGE, 0], [2 * MiB, 64], [3 * MiB + 4096, 128]] as const) {
      const v = a.alloc(len, colour)!;
      expect(a.memory.buffer.byteLength % (2 * MiB)).toBe(0);
      expect(a.memory.buffer.byteLength).toBeGreaterThanOrEqual(a.offsetOf(v) + len);
    }
    // near the maximum it grows only as far as it may
    const b = ChunkArena.create(3 * MiB)!;
    expect(b.alloc(2 * MiB + 8192, 0)).not.toBeNull();
    expect(b.memory.buffer.byteLength).toBeLessThanOrEqual(3 * MiB);
  });

  it("copy() is a memmove on arena offsets, overlapping ranges included", () => {
    const a = ChunkArena.create(4 * MiB)!;
    const v = a.alloc(MiB, 0)!;
    const base = a.offsetOf(v);
    fc.assert(
      fc.property(fc.nat(MiB - 1), fc.nat(MiB - 1), fc.nat(70_000), (d, s, n) => {
        n = Math.min(n, MiB - d, MiB - s);
        for (let i = 0; i < v.length; i += 997) v[i] = (i * 13) & 0xff;
        const ref = Uint8Array.from(v);
        ref.copyWithin(d, s, s + n);
        a.copy(base + d, base + s, n);
        expect(Buffer.compare(v, ref)).toBe(0);
      }),
      { numRuns: 30 },
    );
  });

  it("answers null when the memory cannot grow that far, and refuses bad requests", () => {
    const a = ChunkArena.create(2 * WASM_PAGE)!;
    expect(a.alloc(WASM_PAGE, 0)).not.toBeNull();
    expect(a.alloc(4 * WASM_PAGE, 0)).toBeNull();
    expect(() => a.alloc(0, 0)).toThrow(InvalidArgumentError);
    expect(() => a.alloc(4096, 4096)).toThrow(InvalidArgumentError);
    expect(() => a.adopt(4096, 100 * WASM_PAGE)).toThrow(/beyond the shared memory/);
    expect(() => a.adopt(0, 64)).toThrow(/not a range this memory handed out/); // the cursor's page
  });

  it("arenas over one memory (threads) never hand out the same range", () => {
    const a = ChunkArena.create(16 * MiB)!;
    const b = ChunkArena.create(0, a.memory)!;
    const ranges: [number, number][] = [];
    for (let i = 0; i < 6; i++) {
      const x = (i % 2 === 0 ? a : b).alloc(MiB - 4096, (i * 64) % 4096)!;
      ranges.push([(i % 2 === 0 ? a : b).offsetOf(x), MiB - 4096]);
      x.fill(i + 1);
    }
    ranges.sort((p, q) => p[0] - q[0]);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![0] + ranges[i - 1]![1]);
    expect(ranges[0]![0]).toBeGreaterThanOrEqual(4096); // the cursor's own page stays out
  });

  it("a second arena over the same memory (a worker's) sees and copies the same bytes", () => {
    const a = ChunkArena.create(4 * MiB)!;
    const v = a.alloc(MiB, 64)!;
    v.fill(0x11, 0, 512);
    const b = ChunkArena.create(0, a.memory)!;
    const w = b.adopt(a.offsetOf(v), MiB);
    expect(b.offsetOf(w)).toBe(a.offsetOf(v));
    b.copy(b.offsetOf(w) + 4096, b.offsetOf(w), 512);
    expect(v[4096 + 511]).toBe(0x11);
  });
});

describe("PhysicalMemory on the arena", () => {
  it("chunks start at their cache colour; emulated addresses do not move", () => {
    const m = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: GiB }] });
    const seen = new Set<number>();
    for (let k = 0; k < CHUNK_COLOURS + 2; k++) {
      const addr = 0x4000_0000 + k * m.chunkSize;
      const c = m.chunkAt(addr);
      expect(c.byteOffset % 4096).toBe(chunkColour(addr, m.chunkSize));
      seen.add(c.byteOffset % 4096);
      m.write32(addr + 0x40, k);
    }
    expect(seen.size).toBe(CHUNK_COLOURS);
    for (let k = 0; k < CHUNK_COLOURS + 2; k++) expect(m.read32(0x4000_0000 + k * m.chunkSize + 0x40)).toBe(k);
    expect(m.arena).not.toBeNull();
  });

  it("falls back to SharedArrayBuffer chunks once the arena is full, and copies across both kinds", () => {
    const m = new PhysicalMemory({ banks: [{ base: 0, size: 64 * MiB }], arenaMaxBytes: 5 * MiB });
    const a = m.arena!;
    const first = m.chunkAt(0);
    const second = m.chunkAt(2 * MiB);
    const third = m.chunkAt(4 * MiB); // no room left: a buffer of its own
    expect(a.offsetOf(first)).toBeGreaterThanOrEqual(0);
    expect(a.offsetOf(second)).toBeGreaterThanOrEqual(0);
    expect(a.offsetOf(third)).toBe(-1);
    expect(third.buffer).toBeInstanceOf(SharedArrayBuffer);
    const src = Uint8Array.from({ length: 3 * MiB }, (_, i) => (i * 7 + (i >>> 9)) & 0xff);
    m.write(MiB, src); // spans arena and own-buffer chunks
    m.copy(5 * MiB, MiB, 3 * MiB);
    expect(Buffer.compare(m.read(5 * MiB, 3 * MiB), src)).toBe(0);
  });

  it("the bulk paths give the same bytes on either backing (reference model)", () => {
    const size = 6 * MiB;
    fc.assert(
      fc.property(fc.nat(size - 1), fc.nat(size - 1), fc.integer({ min: 0, max: 300_000 }), (d, s, len) => {
        len = Math.min(len, size - d, size - s);
        const ref = new Uint8Array(size);
        const mems = [new PhysicalMemory({ banks: [{ base: 0, size }] }), new PhysicalMemory({ banks: [{ base: 0, size }], backing: "sab" })];
        for (let i = 0; i < size; i += 509) ref[i] = (i >>> 3) & 0xff;
        for (const m of mems) {
          for (let i = 0; i < size; i += 509) m.write8(i, (i >>> 3) & 0xff);
          m.copy(d, s, len);
        }
        ref.copyWithin(d, s, s + len);
        for (const m of mems) expect(Buffer.compare(m.read(0, size), ref)).toBe(0);
        expect(mems[1]!.arena).toBeNull();
      }),
      { numRuns: 20 },
    );
  });

  it("refuses a bad backing or arena size by name", () => {
    expect(() => new PhysicalMemory({ banks: [{ base: 0, size: 4 * MiB }], backing: "mmap" as "sab" })).toThrow(/RAM backing mmap/);
    expect(() => new PhysicalMemory({ banks: [{ base: 0, size: 4 * MiB }], arenaMaxBytes: -1 })).toThrow(/arena size -1/);
  });
});

describe("transparent huge pages", () => {
  it("are asked for over a WebAssembly memory, and only from a page start", () => {
    const a = ChunkArena.create(8 * MiB, undefined, false)!;
    const whole = new Uint8Array(a.memory.buffer);
    expect(adviseHugePages(whole.subarray(64), 4096)).toBe(false);
    let thp = "";
    try {
      thp = readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8");
    } catch {
      // no THP on this host: the advice may fail, which only costs speed
    }
    const took = adviseHugePages(whole, 8 * MiB);
    if (process.platform === "linux" && /\[(always|madvise)\]/.test(thp)) expect(took).toBe(true);
    else expect(typeof took).toBe("boolean");
  });
});

describe("host features", () => {
  it("an arena was made here: no wasm fallback is recorded, and a recorded one would say why", () => {
    expect(ChunkArena.create(MiB)).not.toBeNull();
    const missing = missingHostFeatures();
    expect(missing.has("RAM arena (wasm)")).toBe(false);
    expect(missing.has("RAM arena (wasm memory)")).toBe(false);
    for (const why of missing.values()) expect(why.length).toBeGreaterThan(0);
  });
});
