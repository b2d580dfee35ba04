import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CopyLimiter, measureCopyLimit, nextSlot } from "../../src/bench/copy-limit.js";
import { heapBytesPerPair, latencyFigures, quantile, runUntil, takeSample } from "../../src/bench/measure.js";
import { buildBenchMachine, workloadDevice, workloadOriginals, WORKLOAD_NSLABS } from "../../src/bench/setup.js";
import { Pingpong, Ring, type BenchSwiotlb } from "../../src/bench/workloads.js";
import { ORIG_REGION_BYTES, RING_DEPTH, XorShift32, ringOrig, ringSize } from "../../src/bench/xorshift.js";
import type { SwiotlbDevice } from "../../src/swiotlb/device.js";
import { threadCpuNs } from "../../src/bench/thread-clock.js";
import { turnFraction } from "../../src/bench/threads.js";

/** xorshift32 with BigInt arithmetic, written independently of the number version */
function refXorshift(seed: bigint, n: number): number[] {
  const M = (1n << 32n) - 1n;
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (x ^ (x << 13n)) & M;
    x = x ^ (x >> 17n);
    x = (x ^ (x << 5n)) & M;
    out.push(Number(x));
  }
  return out;
}

/** Records every call and forwards it to the real swiotlb. */
class Recorder implements BenchSwiotlb {
  maps: { orig: number; size: number; arg4: number; cpu: number; tlb: number }[] = [];
  unmaps: { tlb: number; size: number }[] = [];
  constructor(private readonly sw: BenchSwiotlb) {}
  tblMapSingle(dev: SwiotlbDevice, orig: number, size: number, arg4: number, dir: 0 | 1 | 2 | 3, attrs: number, cpu: number): number {
    const tlb = this.sw.tblMapSingle(dev, orig, size, arg4, dir, attrs, cpu);
    this.maps.push({ orig, size, arg4, cpu, tlb });
    return tlb;
  }
  tblUnmapSingle(dev: SwiotlbDevice, tlb: number, size: number, dir: 0 | 1 | 2 | 3, attrs: number): void {
    this.unmaps.push({ tlb, size });
    this.sw.tblUnmapSingle(dev, tlb, size, dir, attrs);
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const machine = (kernel = "6.x", areas?: number) => buildBenchMachine({ machine: "qemu-virt-8g", kernel, areas, mode: "workload" });

describe("xorshift32", () => {
  it("is Marsaglia's (13, 17, 5) on an unsigned 32-bit state", () => {
    const r = new XorShift32(1);
    const got = Array.from({ length: 1000 }, () => r.next());
    expect(got).toEqual(refXorshift(1n, 1000));
  });
  it("maps draws to the ring's sizes and originals", () => {
    expect(ringSize(0)).toBe(64);
    expect(ringSize(10)).toBe(65536);
    expect(ringSize(11)).toBe(64);
    expect(ringOrig(0x4000_0000, 0)).toBe(0x4000_0000);
    expect(ringOrig(0x4000_0000, 65520)).toBe(0x4000_0000);
    expect(ringOrig(0x4000_0000, 65519)).toBe(0x4000_0000 + 65519 * 4096);
  });
});

describe("the workload machine", () => {
  it("has a 64 MiB pool with 1 area by default, and --areas areas", () => {
    const m = machine();
    expect(m.swiotlb.defaultMem!.pool.nslabs).toBe(WORKLOAD_NSLABS);
    expect(m.swiotlb.defaultMem!.pool.nareas).toBe(1);
    expect(machine("6.x", 2).swiotlb.defaultMem!.pool.nareas).toBe(2);
    expect(() => machine("5.13", 2)).toThrow(/single lock/);
  });
});

describe("the workloads' originals", () => {
  // rpi4-1g's RAM starts at 0, server-64g's banks are elsewhere: nothing may assume 0x4000_0000
  for (const name of ["qemu-virt-8g", "rpi4-1g", "server-64g"])
    it(`${name}: in RAM the boot left free, clear of the pool, 2 MiB aligned`, () => {
      const m = buildBenchMachine({ machine: name, kernel: "6.x", mode: "workload" });
      const o = workloadOriginals(m);
      expect(o % (2 << 20)).toBe(0);
      expect(m.memory.isRam(o, ORIG_REGION_BYTES)).toBe(true);
      const pool = m.swiotlb.defaultMem!.pool;
      expect(o + ORIG_REGION_BYTES <= pool.start || o >= pool.end).toBe(true);
      // taken: a second region does not overlap the first
      const o2 = workloadOriginals(m);
      expect(o2 + ORIG_REGION_BYTES <= o || o2 >= o + ORIG_REGION_BYTES).toBe(true);
    });
});

describe("pingpong", () => {
  it("maps and unmaps one buffer at the originals' base, bouncing 2 x size per pair, and leaves the pool empty", () => {
    const m = machine();
    const rec = new Recorder(m.swiotlb);
    const o = workloadOriginals(m);
    const p = new Pingpong(rec, workloadDevice(), 512, 0, false, o);
    m.memory.fill(o, 512, 0xab);
    p.run(100);
    expect(p.pairs).toBe(100);
    expect(p.failures).toBe(0);
    expect(p.bouncedBytes).toBe(100 * 2 * 512);
    expect(rec.maps.every((c) => c.orig === o && c.size === 512 && c.arg4 === 0)).toBe(true);
    expect(rec.unmaps.map((u) => u.tlb)).toEqual(rec.maps.map((c) => c.tlb));
    // the kernel's slot walk: each map starts where the last one ended
    expect(rec.maps[1]!.tlb - rec.maps[0]!.tlb).toBe(2048);
    expect(m.swiotlb.defaultMem!.used).toBe(0);
    // every bounced byte came back unchanged
    expect([...m.memory.read(o, 512)].every((b) => b === 0xab)).toBe(true);
    expect([...m.memory.read(rec.maps[99]!.tlb, 512)].every((b) => b === 0xab)).toBe(true);
  });

  it("passes alloc_size as the fourth argument on 5.13", () => {
    const m = machine("5.13");
    const rec = new Recorder(m.swiotlb);
    new Pingpong(rec, workloadDevice(), 4096, 0, true, workloadOriginals(m)).run(3);
    expect(rec.maps.map((c) => c.arg4)).toEqual([4096, 4096, 4096]);
  });
});

describe("ring", () => {
  it("keeps 256 in flight, FIFO, with the xorshift sizes and originals (r1 then r2)", () => {
    const m = machine();
    const rec = new Recorder(m.swiotlb);
    const o = workloadOriginals(m);
    const r = new Ring(rec, workloadDevice(), 0, false, o);
    r.prefill();
    expect(rec.maps.length).toBe(RING_DEPTH);
    expect(rec.unmaps.length).toBe(0);
    r.run(300);
    const draws = refXorshift(1n, 2 * (RING_DEPTH + 300));
    rec.maps.forEach((c, i) => {
      expect(c.size).toBe(64 << (draws[2 * i]! % 11));
      expect(c.orig).toBe(o + (draws[2 * i + 1]! % 65520) * 4096);
    });
    // FIFO: the k-th unmap releases the k-th map
    rec.unmaps.forEach((u, k) => expect(u).toEqual({ tlb: rec.maps[k]!.tlb, size: rec.maps[k]!.size }));
    expect(m.swiotlb.defaultMem!.used).toBeGreaterThan(0);
    const mapped = rec.maps.reduce((s, c) => s + c.size, 0);
    const unmapped = rec.unmaps.reduce((s, u) => s + u.size, 0);
    expect(r.bouncedBytes).toBe(mapped + unmapped);
    r.drain();
    expect(m.swiotlb.defaultMem!.used).toBe(0);
  });
});

describe("measurement", () => {
  it("times batches until the deadline and counts pairs and bytes", () => {
    const m = machine();
    const p = new Pingpong(m.swiotlb, workloadDevice(), 64, 0, false, workloadOriginals(m));
    const t = runUntil(p, performance.now() + 50, 64);
    expect(t.pairs % 64).toBe(0);
    expect(t.pairs).toBeGreaterThan(0);
    expect(t.bouncedBytes).toBe(t.pairs * 128);
    expect(t.elapsedNs).toBeGreaterThan(0);
  });

  it("samples pairs individually, map and unmap apart", () => {
    const m = machine();
    const p = new Pingpong(m.swiotlb, workloadDevice(), 64, 0, false, workloadOriginals(m));
    const s = takeSample([p], 500);
    expect(s.pairNs.length).toBe(500);
    for (let i = 0; i < 500; i++) expect(s.pairNs[i]!).toBeCloseTo(s.mapNs[i]! + s.unmapNs[i]!, 3);
    const f = latencyFigures(s);
    expect(f.p99Ns).toBeGreaterThanOrEqual(f.p50Ns);
    expect(quantile(Float64Array.from([1, 2, 3, 4]), 0.5)).toBe(2);
    expect(quantile(Float64Array.from([1, 2, 3, 4]), 0.99)).toBe(4);
  });

  // Not a timing test: what is checked is that the hot path, once optimized, allocates nothing
  // (a double crossing a call V8 does not inline, or a number field holding a non-small
  // integer, costs 8-16 bytes per pair and shows up here). Run by the built CLI in a process
  // of its own: in this one, other tests' doubles (the Recorder above) change what V8 inlines.
  for (const args of [["--workload", "pingpong", "--size", "64"], ["--workload", "ring"]])
    it(`${args.slice(1).join(" ")}: the optimized hot path allocates (next to) nothing`, () => {
      const out = execFileSync(process.execPath, [join(root, "bin", "dmalab.js"), "bench", ...args, "-s", "1", "--json"], { encoding: "utf8" });
      const j = JSON.parse(out) as { heapBytesPerPair: number; pairsPerSec: number };
      expect(j.pairsPerSec).toBeGreaterThan(0);
      expect(j.heapBytesPerPair).toBeLessThan(1);
    });

  // Worker threads on one shared pool, through the wasm hot path with its area locks: two
  // threads on one area (every map and unmap contends for its lock) and on two. The run ends
  // with the pool checked drained (every slot free, every counter 0): a lost update under the
  // locks fails it with exit code 3.
  for (const areas of ["1", "2"])
    it(`ring -t 2 --areas ${areas}: worker threads leave the shared pool consistent`, () => {
      const out = execFileSync(process.execPath, [join(root, "bin", "dmalab.js"), "bench", "--workload", "ring", "-t", "2", "--areas", areas, "-s", "1", "--json"], {
        encoding: "utf8",
      });
      const j = JSON.parse(out) as { threads: number; areas: number; pairsPerSec: number; bouncedBytesPerSec: number };
      expect(j.threads).toBe(2);
      expect(j.areas).toBe(Number(areas));
      expect(j.pairsPerSec).toBeGreaterThan(0);
      expect(j.bouncedBytesPerSec).toBeGreaterThan(0);
    });

  it("heap bytes per pair is measured, non-negative and finite", () => {
    const m = machine();
    const p = new Pingpong(m.swiotlb, workloadDevice(), 64, 0, false, workloadOriginals(m));
    const h = heapBytesPerPair(p, 2000);
    expect(Number.isFinite(h)).toBe(true);
    expect(h).toBeGreaterThanOrEqual(0);
  });

  it("the copy limit moves the same bytes as the workload's bounces, through the pool's slots", () => {
    const m = machine();
    const pool = m.swiotlb.defaultMem!.pool;
    const o = workloadOriginals(m);
    m.memory.fill(o, 65536, 0x5a);
    const c = measureCopyLimit({ bounce: m.swiotlb.hotBounce()!, pool, firstSlot: 0, nslots: pool.nslabs, size: 65536, origBase: o }, 0.02);
    expect(c.bytes % (2 * 65536)).toBe(0);
    expect(c.bytesPerSec).toBeGreaterThan(0);
    // the original is unchanged (copied out and back) and the slots hold its bytes
    expect([...m.memory.read(o, 65536)].every((b) => b === 0x5a)).toBe(true);
    expect([...m.memory.read(pool.start, 65536)].every((b) => b === 0x5a)).toBe(true);
    const ring = measureCopyLimit({ bounce: m.swiotlb.hotBounce()!, pool, firstSlot: 0, nslots: pool.nslabs, size: 0, origBase: o }, 0.02);
    expect(ring.bytes).toBeGreaterThan(0);
    // nothing was mapped, and the slots' orig_addr were not touched
    expect(m.swiotlb.defaultMem!.used).toBe(0);
    expect(pool.origAddr.every((a) => a === -1)).toBe(true);
  });

  it("times the hot path's own copy: the plain path's module walk, the general copy on 5.13", () => {
    const m = machine();
    const pool = m.swiotlb.defaultMem!.pool;
    const b = m.swiotlb.hotBounce()!;
    expect(b.constructor.name).toBe("PlainPath");
    const o = workloadOriginals(m);
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
    m.memory.write(o, bytes);
    const c = measureCopyLimit({ bounce: b, pool, firstSlot: 0, nslots: pool.nslabs, size: 64, origBase: o }, 0.02);
    expect(c.bytes % 128).toBe(0);
    expect(m.memory.read(o, 64)).toEqual(bytes);
    expect(m.memory.read(pool.start, 64)).toEqual(bytes);
    // a 5.13 pool has no plain path: the general bounce copy is timed
    expect(machine("5.13").swiotlb.hotBounce()!.constructor.name).toBe("PoolBounce");
  });

  // The module's walk (plain-path.wat) and the JavaScript walk (the 5.13 path's) are written
  // independently: the same steps must put the same bytes in the same slots.
  for (const size of [64, 100, 4096, 65536, 0])
    it(`the module's copy walk lands where the JavaScript walk does (${size === 0 ? "ring" : `${size} B`})`, () => {
      const run = (kernel: string): Uint8Array => {
        const m = machine(kernel);
        const pool = m.swiotlb.defaultMem!.pool;
        const o = workloadOriginals(m);
        // originals: a byte pattern that differs page by page
        const pattern = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + (i >>> 12)) & 0xff);
        for (let a = 0; a < 256; a++) m.memory.write(o + a * (1 << 20), pattern);
        const lim = new CopyLimiter({ bounce: m.swiotlb.hotBounce()!, pool, firstSlot: 0, nslots: pool.nslabs, size, origBase: o });
        lim.warmUp();
        expect(lim.inModule).toBe(kernel === "6.x");
        return m.memory.read(pool.start, 8 << 20);
      };
      const wasm = run("6.x");
      const js = run("5.13");
      expect(Buffer.compare(Buffer.from(wasm), Buffer.from(js))).toBe(0);
      expect(wasm.some((b) => b !== 0)).toBe(true);
    });

  it("walks slots as the search would: page-aligned from 4 KiB, never across a segment, wrapping", () => {
    expect(nextSlot(3, 64, 2, 32768)).toBe(3);
    expect(nextSlot(3, 4096, 2, 32768)).toBe(4);
    expect(nextSlot(126, 8192, 2, 32768)).toBe(128);
    expect(nextSlot(32767, 4096, 2, 32768)).toBe(0);
  });
});

describe("the copy limit's turns", () => {
  it("the thread clock counts this thread's CPU time, in ns, and advances with work", () => {
    const a = threadCpuNs();
    if (a === null) return; // not Linux, or no koffi: the turns fall back to wall time
    let x = 0;
    for (let i = 0; i < 5e6; i++) x += i & 7;
    const b = threadCpuNs()!;
    expect(x).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
    expect(b - a).toBeLessThan(60e9);
  });

  it("the fraction is the median over the turns of the threads' summed rates", () => {
    // rates in bytes per ns: each turn's bytes over its own time
    const t = (work: number[], copy: number[]) => ({
      turns: { workBytes: work.map((w) => w * 10), workNs: work.map(() => 10), copyBytes: copy.map((c) => c * 4), copyNs: copy.map(() => 4) },
    });
    // two threads, three turns: Σwork / Σcopy per turn = 0.5, 0.9 and 3 (a turn gone wrong)
    expect(turnFraction([t([1, 4, 10], [2, 5, 2]), t([1, 5, 2], [2, 5, 2])])).toBeCloseTo(0.9, 12);
    // turns one thread did not reach are left out; none at all is 0
    expect(turnFraction([t([1, 1], [2, 2]), t([1], [2])])).toBeCloseTo(0.5, 12);
    expect(turnFraction([t([], [])])).toBe(0);
  });
});
