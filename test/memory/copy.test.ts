import { describe, it } from "vitest";
import fc from "fast-check";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";

// PhysicalMemory.copy (the swiotlb's bounce copies go through it) against copyWithin on a
// plain array. Moved here from the hot-path tests.

describe("PhysicalMemory.copy fast paths", () => {
  it("is a memmove for any range, aligned or not, within or across chunks", () => {
    const size = 3 * 65536;
    const m = new PhysicalMemory({ banks: [{ base: 0, size }], chunkSize: 65536 });
    const ref = new Uint8Array(size);
    for (let i = 0; i < size; i++) ref[i] = (i * 2654435761) >>> 24;
    m.write(0, ref);
    fc.assert(
      fc.property(fc.nat(size - 1), fc.nat(size - 1), fc.integer({ min: 1, max: 3000 }), (dst, src, len) => {
        len = Math.min(len, size - dst, size - src);
        m.copy(dst, src, len);
        ref.copyWithin(dst, src, src + len);
        return Buffer.compare(m.read(0, size), ref) === 0;
      }),
      { numRuns: 300 },
    );
  });
});
