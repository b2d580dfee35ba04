// The bounce copier caches set() source views per slot and per original (so a pingpong
// allocates nothing). A cached view must never be used for another length or address.
import { describe, expect, it } from "vitest";
import { EventSink, KernelLog } from "../../src/events.js";
import { DMA_BIDIRECTIONAL } from "../../src/kernel/dma-mapping.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import type { SwiotlbDevice } from "../../src/swiotlb/device.js";
import { parseSwiotlbCmdline } from "../../src/swiotlb/cmdline.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";
import { Swiotlb } from "../../src/swiotlb/swiotlb.js";
import { SWIOTLB_VERBOSE } from "../../src/kernel/swiotlb.js";

const GiB = 2 ** 30;

const dev: SwiotlbDevice = {
  name: "bench 0000:00:1f.0",
  minAlignMask: 0,
  segBoundaryMask: 2 ** 64,
  dmaMask: 0xffff_ffff_ffff_ffffn,
  busDmaLimit: 0n,
  coherent: true,
  physToDma: (p) => p,
  dmaToPhys: (d) => d,
  dmaCapable: () => true,
};

function pattern(mem: PhysicalMemory, addr: number, len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed * 31 + i * 7 + (i >>> 8)) & 0xff;
  mem.write(addr, b);
  return b;
}

describe("bounce copies with cached views", () => {
  it("slots and originals reused at other lengths and addresses: every byte right both ways", () => {
    const memory = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 2 * GiB }] });
    const profile = kernelProfile("6.x");
    const sw = new Swiotlb(memory, profile, new KernelLog(), new EventSink(), { possibleCpus: 1 });
    // a 256 KiB pool: the area index wraps every few maps, so slots come back with other lengths
    sw.applyCmdline(parseSwiotlbCmdline("128", profile));
    sw.swiotlbInitRemap(true, SWIOTLB_VERBOSE, 0x8000_0000);
    expect(sw.defaultMem?.pool.nslabs).toBe(128);
    const origs = [0x4000_0000, 0x4000_0800, 0x4000_1000, 0x4001_0000, 0x4000_0200];
    const lens = [4096, 2048, 600, 65536, 512, 1024, 4096, 700, 12288, 513, 516];
    const slotsSeen = new Map<number, Set<number>>();
    for (let k = 0; k < 400; k++) {
      const orig = origs[k % origs.length]!;
      const len = lens[k % lens.length]!;
      const guard = memory.read8(orig + len);
      const want = pattern(memory, orig, len, k);
      const tlb = sw.tblMapSingle(dev, orig, len, 0, DMA_BIDIRECTIONAL, 0, 0);
      expect(tlb).toBeGreaterThan(0);
      const s = slotsSeen.get(tlb) ?? new Set<number>();
      s.add(len);
      slotsSeen.set(tlb, s);
      // map copied exactly the original into the bounce buffer
      expect(Buffer.compare(memory.read(tlb, len), want)).toBe(0);
      // the "device" writes something else; unmap copies exactly that back, and nothing more
      const back = pattern(memory, tlb, len, k + 1000);
      memory.fill(orig, len, 0);
      sw.tblUnmapSingle(dev, tlb, len, DMA_BIDIRECTIONAL, 0);
      expect(Buffer.compare(memory.read(orig, len), back)).toBe(0);
      expect(memory.read8(orig + len)).toBe(guard);
    }
    // the test reached what it is about: one slot used with several lengths
    expect([...slotsSeen.values()].some((l) => l.size > 1)).toBe(true);
  });
});
