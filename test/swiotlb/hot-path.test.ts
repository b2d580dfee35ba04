import { IoTlbPool } from "../../src/swiotlb/pool.js";
import { describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import { buildBenchMachine, workloadDevice, type BenchMachine } from "../../src/bench/setup.js";
import { Device } from "../../src/dma/device.js";
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from "../../src/kernel/dma-mapping.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { EventSink, KernelLog } from "../../src/events.js";
import { Swiotlb } from "../../src/swiotlb/swiotlb.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";

// The plain fast path (PlainPath, with the general path behind it for other areas and
// unusual requests, and Swiotlb's small wrappers) must do exactly what the general path does. The general path is forced on a twin machine by a
// trace listener (events.active), which the fast path declines.

type Op = { kind: "map"; size: number; cpu: number; page: number; off: number; dir: 0 | 1 | 2 } | { kind: "unmap"; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("map" as const),
    size: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 4096, max: 262144 }), fc.constantFrom(8, 64, 128, 136, 200, 256, 264, 512, 2048, 4096, 65536, 262144, 262145)),
    cpu: fc.nat(7),
    page: fc.nat(255),
    off: fc.oneof(fc.constant(0), fc.nat(4095)),
    dir: fc.constantFrom<0 | 1 | 2>(DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE),
  }),
  fc.record({ kind: fc.constant("unmap" as const), pick: fc.nat() }),
);

type Twin = Pick<BenchMachine, "memory" | "swiotlb" | "events" | "log">;

/** the RAM chunk size of these machines (memory/physical-memory.ts) */
const CHUNK = 2 << 20;
/** originals from here on straddle a chunk boundary: pages 0..255 from it cross one at page 128 */
const straddle = 0x4000_0000 + CHUNK - 128 * 4096;

function twin(areas: number, nslabs: number, origBase = 0x4000_0000): [Twin, Twin] {
  const mk = () => buildBenchMachine({ machine: "qemu-virt-8g", kernel: "6.x", swiotlb: `${nslabs},${areas}`, mode: "workload" });
  return pair(mk, origBase);
}

/**
 * A pool whose start is not on a chunk boundary, so that slot runs straddle chunks: something
 * else took the top 0x23000 bytes of RAM before the pool was placed.
 */
function skewed(nslabs: number): Twin {
  const memory = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 2 ** 30 }] });
  const log = new KernelLog();
  const events = new EventSink();
  const swiotlb = new Swiotlb(memory, kernelProfile("6.x"), log, events, { possibleCpus: 1 });
  swiotlb.memblock.allocTopDown(0x23000, 4096, Infinity, "firmware");
  swiotlb.defaultNslabs = nslabs;
  swiotlb.adjustNareas(1);
  swiotlb.swiotlbInitRemap(true, 0);
  return { memory, swiotlb, events, log };
}

function pair(mk: () => Twin, origBase: number): [Twin, Twin] {
  const fast = mk();
  const slow = mk();
  slow.events.on(() => {});
  for (const m of [fast, slow]) {
    // the same original bytes on both
    const orig = new Uint8Array(256 * 4096 + 262145);
    for (let i = 0; i < orig.length; i++) orig[i] = (i * 131 + (i >>> 9)) & 0xff;
    m.memory.write(origBase, orig);
  }
  return [fast, slow];
}

/** byte-for-byte equality of two buffers (fast, unlike a deep equality over 256 KiB) */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** the whole pool state (one range of one buffer) and the kernel log */
function state(m: Twin) {
  const p = m.swiotlb.defaultMem!.pool;
  const table = new Uint8Array(p.buffer, p.bufferOffset, IoTlbPool.bytesFor(p.nslabs, p.nareas));
  return { table: Buffer.from(table).toString("base64"), log: m.log.lines.join("\n") };
}

describe("the plain hot path is the general path", () => {
  for (const [what, mk, origBase] of [
    ["1 area, 1024 slots", () => twin(1, 1024), 0x4000_0000],
    ["4 areas, 2048 slots", () => twin(4, 2048), 0x4000_0000],
    // areas of 288 slots: area borders inside segments
    ["4 areas, 1152 slots", () => twin(4, 1152), 0x4000_0000],
    ["originals across a RAM chunk boundary", () => twin(1, 1024, straddle), straddle],
    ["slot runs across the pool's chunk boundaries", () => pair(() => skewed(2048), 0x4000_0000), 0x4000_0000],
  ] as const)
    it(`picks the same slots, copies the same bytes and leaves the same table (${what})`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
          const [fast, slow] = mk();
          const devF = workloadDevice();
          const devS = workloadDevice();
          const live: { tlb: number; size: number; dir: 0 | 1 | 2; orig: number }[] = [];
          for (const op of ops) {
            if (op.kind === "map") {
              const orig = origBase + op.page * 4096 + op.off;
              const a = fast.swiotlb.tblMapSingle(devF, orig, op.size, 0, op.dir, 0, op.cpu);
              const b = slow.swiotlb.tblMapSingle(devS, orig, op.size, 0, op.dir, 0, op.cpu);
              expect(a).toBe(b);
              if (a !== -1) {
                expect(same(fast.memory.read(a, op.size), slow.memory.read(b, op.size))).toBe(true);
                expect(same(fast.memory.read(a, op.size), fast.memory.read(orig, op.size))).toBe(true);
                // the device writes into the bounce buffer, identically on both
                const w = new Uint8Array(Math.min(op.size, 300)).map((_, i) => (i * 7 + op.size) & 0xff);
                fast.memory.write(a, w);
                slow.memory.write(b, w);
                live.push({ tlb: a, size: op.size, dir: op.dir, orig });
              }
            } else if (live.length > 0) {
              const [x] = live.splice(op.pick % live.length, 1);
              fast.swiotlb.tblUnmapSingle(devF, x!.tlb, x!.size, x!.dir, 0);
              slow.swiotlb.tblUnmapSingle(devS, x!.tlb, x!.size, x!.dir, 0);
              expect(same(fast.memory.read(x!.orig, x!.size), slow.memory.read(x!.orig, x!.size))).toBe(true);
            }
          }
          expect(state(fast)).toEqual(state(slow));
        }),
        { numRuns: 30 },
      );
    });

  it("copies across chunk boundaries itself (original or bounce side), not through the general copy", () => {
    for (const [m, origBase] of [
      [twin(1, 1024, straddle)[0], straddle],
      [skewed(2048), 0x4000_0000],
    ] as const) {
      const pool = m.swiotlb.defaultMem!.pool;
      const dev = workloadDevice();
      const general = vi.spyOn(m.memory, "copy");
      // 64 KiB from page 120: across the original's chunk boundary (the first case); 32 runs of
      // 32 slots: some across the pool's (the second)
      const live: number[] = [];
      for (let i = 0; i < 32; i++) {
        const tlb = m.swiotlb.tblMapSingle(dev, origBase + 120 * 4096, 65536, 0, DMA_BIDIRECTIONAL, 0, 0);
        expect(tlb).toBeGreaterThan(0);
        expect(same(m.memory.read(tlb, 65536), m.memory.read(origBase + 120 * 4096, 65536))).toBe(true);
        live.push(tlb);
      }
      const crossing = live.filter((t) => Math.floor(t / CHUNK) !== Math.floor((t + 65535) / CHUNK));
      if (origBase === straddle) {
        // the original crosses; the pool's runs (from a chunk-aligned start) do not
        expect(Math.floor((origBase + 120 * 4096) / CHUNK)).not.toBe(Math.floor((origBase + 120 * 4096 + 65535) / CHUNK));
        expect(crossing.length).toBe(0);
      } else {
        expect(pool.start % CHUNK).not.toBe(0);
        expect(crossing.length).toBeGreaterThan(0);
      }
      for (const t of live) m.swiotlb.tblUnmapSingle(dev, t, 65536, DMA_BIDIRECTIONAL, 0);
      expect(general).not.toHaveBeenCalled();
      expect(m.swiotlb.defaultMem!.used).toBe(0);
    }
  });

  it("declines what is not plain: min_align_mask, a range map, a segment boundary, an alignment mask", () => {
    const [fast, slow] = twin(1, 1024);
    const devs = [
      new Device({ driver: "t", device: "a", dmaMask: (1n << 64n) - 1n, minAlignMask: 0xfff }),
      new Device({ driver: "t", device: "b", dmaMask: (1n << 64n) - 1n, segBoundaryMask: 0xffffn }),
      new Device({ driver: "t", device: "c", dmaMask: (1n << 64n) - 1n, dmaRangeMap: [{ cpuStart: 0x4000_0000, dmaStart: 0, size: 8 * 2 ** 30 }] }),
    ];
    for (const d of devs)
      for (const orig of [0x4000_0a00, 0x4010_0000]) {
        const a = fast.swiotlb.tblMapSingle(d, orig, 5000, 0, DMA_BIDIRECTIONAL, 0, 0);
        const b = slow.swiotlb.tblMapSingle(d, orig, 5000, 0, DMA_BIDIRECTIONAL, 0, 0);
        expect(a).toBe(b);
      }
    const w = workloadDevice();
    expect(fast.swiotlb.tblMapSingle(w, 0x4000_0000, 100, 0xfff, DMA_BIDIRECTIONAL, 0, 0)).toBe(
      slow.swiotlb.tblMapSingle(w, 0x4000_0000, 100, 0xfff, DMA_BIDIRECTIONAL, 0, 0),
    );
    expect(state(fast)).toEqual(state(slow));
  });

  it("follows the device: a range map or a min_align_mask set later sends it the general way", () => {
    const [fast, slow] = twin(1, 1024);
    const d = new Device({ driver: "t", device: "late", dmaMask: (1n << 64n) - 1n });
    expect(d.plainBus).toBe(true);
    d.setDmaRangeMap([{ cpuStart: 0x4000_0000, dmaStart: 0x1000_0000, size: 2 ** 32 }]);
    expect(d.plainBus).toBe(false);
    d.setDmaRangeMap(null);
    expect(d.plainBus).toBe(true);
    expect(new Device({ driver: "t", device: "seg", dmaMask: (1n << 64n) - 1n, segBoundaryMask: 0xffffn }).plainBus).toBe(false);
    const e = new Device({ driver: "t", device: "late2", dmaMask: (1n << 64n) - 1n });
    for (const m of [fast, slow]) m.swiotlb.tblMapSingle(e, 0x4000_0000, 64, 0, DMA_BIDIRECTIONAL, 0, 0);
    e.minAlignMask = 0xfff;
    for (const orig of [0x4000_0a00, 0x4000_1234]) expect(fast.swiotlb.tblMapSingle(e, orig, 3000, 0, DMA_BIDIRECTIONAL, 0, 0)).toBe(slow.swiotlb.tblMapSingle(e, orig, 3000, 0, DMA_BIDIRECTIONAL, 0, 0));
    expect(state(fast)).toEqual(state(slow));
  });

  it("a fault on the original leaves the pool exactly as it was", () => {
    const [fast] = twin(1, 1024);
    const before = state(fast);
    // the last 64 bytes of RAM and 64 past it
    const end = fast.memory.ramEnd;
    expect(() => fast.swiotlb.tblMapSingle(workloadDevice(), end - 64, 128, 0, DMA_BIDIRECTIONAL, 0, 0)).toThrow(/fault/);
    expect(state(fast)).toEqual(before);
  });

  it("refuses to unmap what is not mapped, as the general path does", () => {
    const [fast] = twin(1, 1024);
    const pool = fast.swiotlb.defaultMem!.pool;
    const before = state(fast);
    expect(() => fast.swiotlb.tblUnmapSingle(workloadDevice(), pool.start + 4096, 64, DMA_BIDIRECTIONAL, 0)).toThrow(/not a live bounce buffer/);
    expect(state(fast)).toEqual(before);
  });

  it("keeps every bit of the data, NaN payloads included", () => {
    const [fast] = twin(1, 1024);
    const dev = workloadDevice();
    const bytes = new Uint8Array(1024);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < 128; i++) dv.setBigUint64(i * 8, [0x7ff0000000000001n, 0xfff7fffffff7ffffn, 0x7ff4000000000000n, 0xffffffffffffffffn][i & 3]! ^ BigInt(i), true);
    fast.memory.write(0x4000_0000, bytes);
    for (const size of [8, 64, 1024]) {
      const tlb = fast.swiotlb.tblMapSingle(dev, 0x4000_0000, size, 0, DMA_BIDIRECTIONAL, 0, 0);
      expect(fast.memory.read(tlb, size)).toEqual(bytes.subarray(0, size));
      fast.swiotlb.tblUnmapSingle(dev, tlb, size, DMA_BIDIRECTIONAL, 0);
      expect(fast.memory.read(0x4000_0000, size)).toEqual(bytes.subarray(0, size));
    }
  });
});

describe("locking for threads", () => {
  it("changes nothing but the lock words (all free again) and the counters' atomicity", async () => {
    const { dealCpus } = await import("../../src/bench/threads.js");
    expect(dealCpus(5, 2)).toEqual([[0, 2, 4], [1, 3]]);
    expect(dealCpus(1, 1)).toEqual([[0]]);
    const [a, b] = twin(2, 1024);
    b.events.active = false;
    b.swiotlb.defaultMem!.pool.enableLocking();
    const dev = workloadDevice();
    const live: [number, number][] = [];
    for (let i = 0; i < 500; i++) {
      const size = 64 << (i % 11);
      const x = a.swiotlb.tblMapSingle(dev, 0x4000_0000 + (i % 200) * 4096, size, 0, DMA_BIDIRECTIONAL, 0, i & 3);
      const y = b.swiotlb.tblMapSingle(dev, 0x4000_0000 + (i % 200) * 4096, size, 0, DMA_BIDIRECTIONAL, 0, i & 3);
      expect(y).toBe(x);
      if (x !== -1) live.push([x, size]);
      if (live.length > 40) {
        const [t, sz] = live.shift()!;
        a.swiotlb.tblUnmapSingle(dev, t, sz, DMA_BIDIRECTIONAL, 0);
        b.swiotlb.tblUnmapSingle(dev, t, sz, DMA_BIDIRECTIONAL, 0);
      }
    }
    expect(state(b)).toEqual(state(a));
    expect(b.swiotlb.defaultMem!.pool.areaLockList()).toEqual([0, 0]);
  });
});
