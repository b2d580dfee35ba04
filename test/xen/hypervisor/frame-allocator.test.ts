import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { FRAME_ANON, FRAME_FREE, FRAME_NOT_RAM, FrameAllocator, zoneOf } from "../../../src/xen/hypervisor/frame-allocator.js";
import { MiB } from "./helpers.js";

function heap(banks = [{ base: 0, size: 64 * MiB }], reserved?: { base: number; size: number }[]) {
  const mem = new PhysicalMemory({ banks });
  return new FrameAllocator(mem, reserved ? { reserved } : {});
}

describe("FrameAllocator", () => {
  it("starts with every RAM frame free and consistent", () => {
    const a = heap([{ base: 0, size: 64 * MiB }, { base: 0x1_0000_0000, size: 32 * MiB }]);
    expect(a.totalFrames).toBe((96 * MiB) / 4096);
    expect(a.freeFrames).toBe(a.totalFrames);
    expect(a.maxPage).toBe(0x1_0000_0000 / 4096 + (32 * MiB) / 4096);
    expect(a.check()).toEqual([]);
    expect(a.ownerOf(0x2_0000_0000 / 4096)).toBe(FRAME_NOT_RAM);
  });

  it("hands out naturally aligned blocks from the highest zone first, upper half of a split", () => {
    const a = heap([{ base: 0, size: 64 * MiB }, { base: 0x1_0000_0000, size: 32 * MiB }]);
    const m = a.alloc(9, { owner: 3 })!;
    expect(m % 512).toBe(0);
    // the highest zone holds the bank above 4 GiB
    expect(m * 4096).toBeGreaterThanOrEqual(0x1_0000_0000);
    // a 32 MiB bank at 4 GiB is one order-13 block; the allocation is its top 2 MiB
    expect(m * 4096).toBe(0x1_0000_0000 + 30 * MiB);
    for (let k = 0; k < 512; k++) expect(a.ownerOf(m + k)).toBe(3);
    expect(a.freeFrames).toBe(a.totalFrames - 512);
    expect(a.check()).toEqual([]);
  });

  it("honours address_bits and fails when nothing below the limit fits", () => {
    const a = heap([{ base: 0x4000_0000, size: 16 * MiB }]);
    // RAM is at 1 GiB: every frame is >= 2^30
    expect(a.alloc(0, { addressBits: 30 })).toBeUndefined();
    const m = a.alloc(3, { addressBits: 31 })!;
    expect((m + 8) * 4096).toBeLessThanOrEqual(2 ** 31);
    expect(a.alloc(13, {})).toBeUndefined(); // 32 MiB block: larger than the bank
    expect(a.check()).toEqual([]);
  });

  it("frees and merges back to the initial state", () => {
    const a = heap();
    const before = a.fingerprint();
    const blocks = [a.alloc(0)!, a.alloc(4)!, a.alloc(9)!, a.alloc(2)!];
    expect(a.ownerOf(blocks[0]!)).toBe(FRAME_ANON);
    a.free(blocks[2]!, 9);
    a.free(blocks[0]!, 0);
    a.free(blocks[3]!, 2);
    a.free(blocks[1]!, 4);
    expect(a.check()).toEqual([]);
    expect(a.fingerprint()).toBe(before);
    expect(() => a.free(blocks[1]!, 0)).toThrow(/already free/);
  });

  it("claims an exact range all-or-nothing", () => {
    const a = heap();
    expect(a.claim(0x1234, 0x2000, 0)).toBe(true);
    expect(a.ownerOf(0x1233)).toBe(FRAME_FREE);
    expect(a.ownerOf(0x1234)).toBe(0);
    expect(a.ownerOf(0x3233)).toBe(0);
    expect(a.ownerOf(0x3234)).toBe(FRAME_FREE);
    expect(a.check()).toEqual([]);
    const fp = a.fingerprint();
    expect(a.claim(0x3000, 0x1000, 1)).toBe(false); // overlaps dom0's frames
    expect(a.fingerprint()).toBe(fp);
  });

  it("keeps reserved ranges out of the heap", () => {
    const a = heap([{ base: 0, size: 16 * MiB }], [{ base: 0x10_0000, size: 0x1000 }]);
    expect(a.reservedFrames).toBe(1);
    const seen = new Set<number>();
    for (;;) {
      const m = a.alloc(0);
      if (m === undefined) break;
      seen.add(m);
    }
    expect(seen.has(0x100)).toBe(false);
    expect(seen.size).toBe(a.totalFrames - 1);
    expect(a.check()).toEqual([]);
  });

  it("never lets a block straddle zones", () => {
    const a = heap([{ base: 0, size: 4 * MiB }]);
    for (;;) {
      const m = a.alloc(0);
      if (m === undefined) break;
    }
    expect(a.freeFrames).toBe(0);
    const b = heap([{ base: 0, size: 4 * MiB }]);
    const m = b.alloc(9, {})!;
    expect(zoneOf(m)).toBe(zoneOf(m + 511));
  });

  it("property: random alloc/free keeps the heap consistent and no frame has two owners", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ free: fc.boolean(), order: fc.integer({ min: 0, max: 10 }), bits: fc.constantFrom(0, 24, 25, 26, 40), pick: fc.nat() }), { maxLength: 60 }),
        (ops) => {
          const a = heap([{ base: 0, size: 16 * MiB }, { base: 0x200_0000, size: 8 * MiB }]);
          const live: { m: number; o: number }[] = [];
          for (const op of ops) {
            if (op.free && live.length > 0) {
              const [b] = live.splice(op.pick % live.length, 1);
              a.free(b!.m, b!.o);
            } else {
              const m = a.alloc(op.order, op.bits ? { addressBits: op.bits } : {});
              if (m === undefined) continue;
              expect(m % 2 ** op.order).toBe(0);
              if (op.bits) expect((m + 2 ** op.order) * 4096).toBeLessThanOrEqual(2 ** op.bits);
              for (const b of live) expect(m + 2 ** op.order <= b.m || b.m + 2 ** b.o <= m).toBe(true);
              live.push({ m, o: op.order });
            }
          }
          expect(a.check()).toEqual([]);
          const used = live.reduce((s, b) => s + 2 ** b.o, 0);
          expect(a.freeFrames + used).toBe(a.totalFrames);
        },
      ),
      { numRuns: 60 },
    );
  });
});
