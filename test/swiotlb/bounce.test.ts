// BounceCopy, path by path: 64-bit words (aligned, up to 512 bytes), the arena memmove, set()
// on SharedArrayBuffer chunks, and PhysicalMemory's checked path (chunk borders, an original
// overlapping its own slot, faults). Every byte of every copy is checked, and so are the
// bytes around it.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MemoryFault, PhysicalMemory } from "../../src/memory/physical-memory.js";
import { BounceCopy } from "../../src/swiotlb/bounce.js";
import { IO_TLB_SIZE } from "../../src/kernel/swiotlb.js";
import { IoTlbPool } from "../../src/swiotlb/pool.js";

const MiB = 2 ** 20;
const BASE = 0x4000_0000;
const RAM = 16 * MiB;
/** a 128-slot pool at 8 MiB - 64 KiB into RAM: its last slots sit in the next chunk */
const POOL_START = BASE + 8 * MiB - 64 * 1024;

function setup(backing: "arena" | "sab", noMap = false) {
  const memory = new PhysicalMemory({
    banks: [{ base: BASE, size: RAM }],
    backing,
    reserved: noMap ? [{ base: BASE + 15 * MiB, size: MiB, name: "fw", noMap: true }] : [],
  });
  const pool = new IoTlbPool({ start: POOL_START, nslabs: 128, nareas: 1, era: "6.x", pageSize: 4096, listClippedTail: true });
  // a recognisable pattern everywhere the copies can touch
  const img = new Uint8Array(RAM);
  for (let i = 0; i < RAM; i++) img[i] = (i * 7 + (i >>> 11)) & 0xff;
  if (noMap) img.fill(0, 15 * MiB);
  memory.write(BASE, img.subarray(0, noMap ? 15 * MiB : RAM));
  return { memory, pool, copier: new BounceCopy(memory), img };
}

describe("BounceCopy", () => {
  for (const backing of ["arena", "sab"] as const) {
    it(`${backing}: copies exactly len bytes both ways, whatever the size, alignment or chunk`, () => {
      const { memory, pool, copier, img } = setup(backing);
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 127 }),
          // originals below the pool, across the 2 MiB chunk border at BASE + 2 MiB, and far up
          fc.oneof(fc.integer({ min: 0, max: 4 * MiB }), fc.integer({ min: 2 * MiB - 70_000, max: 2 * MiB + 8 }), fc.integer({ min: 12 * MiB, max: 15 * MiB })),
          fc.oneof(fc.constantFrom(8, 64, 512, 520, 4096, 65536), fc.integer({ min: 1, max: 70_000 })),
          fc.boolean(),
          (slot, off, len, toBounce) => {
            len = Math.min(len, (128 - slot) * IO_TLB_SIZE);
            const orig = BASE + off;
            const tlb = pool.start + slot * IO_TLB_SIZE;
            const [dst, src] = toBounce ? [tlb, orig] : [orig, tlb];
            const want = Uint8Array.from(img);
            want.copyWithin(dst - BASE, src - BASE, src - BASE + len);
            if (toBounce) copier.toSlot(pool, slot, orig, len);
            else copier.fromSlot(pool, slot, orig, len);
            // the copied range and a margin on each side
            const lo = Math.max(0, dst - BASE - 64);
            const hi = Math.min(RAM, dst - BASE + len + 64);
            expect(Buffer.compare(memory.read(BASE + lo, hi - lo), want.subarray(lo, hi))).toBe(0);
            // put the image back for the next case
            memory.write(BASE + lo, img.subarray(lo, hi));
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  it("bounceIn/bounceOut use the slot's orig_addr", () => {
    const { memory, pool, copier } = setup("arena");
    const orig = BASE + 0x3008;
    pool.origAddr[5] = orig;
    memory.fill(orig, 200, 0xab);
    copier.bounceIn(pool, 5, 200);
    expect(memory.read(pool.start + 5 * IO_TLB_SIZE, 201)).toEqual(Uint8Array.from([...new Array<number>(200).fill(0xab), memory.read8(pool.start + 5 * IO_TLB_SIZE + 200)]));
    memory.fill(pool.start + 5 * IO_TLB_SIZE, 200, 0x5c);
    copier.bounceOut(pool, 5, 200);
    expect(memory.read(orig, 200).every((b) => b === 0x5c)).toBe(true);
  });

  it("an original overlapping its own bounce slot gets a true memmove", () => {
    const { memory, pool, copier, img } = setup("arena");
    const slot = 3;
    const tlb = pool.start + slot * IO_TLB_SIZE;
    const orig = tlb + 24; // overlaps by all but 24 bytes
    const want = Uint8Array.from(img);
    want.copyWithin(tlb - BASE, orig - BASE, orig - BASE + 512);
    copier.toSlot(pool, slot, orig, 512);
    expect(Buffer.compare(memory.read(tlb - 64, 640), want.subarray(tlb - BASE - 64, tlb - BASE + 576))).toBe(0);
  });

  it("faults name the original: outside RAM, in a no-map region, and for a non-finite address", () => {
    const { pool, copier } = setup("arena", true);
    expect(() => copier.toSlot(pool, 0, BASE + RAM + 4096, 64)).toThrow(MemoryFault);
    expect(() => copier.toSlot(pool, 0, BASE + 15 * MiB + 8, 64)).toThrow(/no-map/);
    expect(() => copier.fromSlot(pool, 0, BASE - 4096, 64)).toThrow(/0x3ffff000/);
    expect(() => copier.toSlot(pool, 0, Number.POSITIVE_INFINITY, 64)).toThrow(/Infinity/);
  });
});
