import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SIZE } from "../../src/kernel/swiotlb.js";
import { FIND_SPIN, IoTlbPool, alignedSize, nrSlotsU64 } from "../../src/swiotlb/pool.js";
import { ModelPool } from "./model.js";

const START = 0x8000_0000;

function pool513(nslabs = 32768, start = START): IoTlbPool {
  return new IoTlbPool({ start, nslabs, nareas: 1, era: "5.13", pageSize: 4096, listClippedTail: false });
}
function pool6x(nslabs = 32768, nareas = 1, start = START): IoTlbPool {
  return new IoTlbPool({ start, nslabs, nareas, era: "6.x", pageSize: 4096, listClippedTail: true });
}
/** map through the 5.13 path as swiotlb_map does (alloc_size == size); the slot index or -1 */
function map513(p: IoTlbPool, orig: number, size: number, minAlign: number): number {
  const tlb = p.mapSlots513(orig, size, minAlign, p.start, 0);
  return tlb < 0 ? tlb : tlb - p.start;
}
function map6x(p: IoTlbPool, cpu: number, orig: number, size: number, minAlign: number, alignMask = 0): number {
  const tlb = p.mapSlots(cpu, orig, size, alignMask, minAlign, p.start, 0);
  return tlb < 0 ? tlb : tlb - p.start;
}

/** the spec 4.3 invariant, computed from scratch */
function checkListInvariant(p: IoTlbPool): void {
  const list = p.listSnapshot();
  for (let i = 0; i < p.nslabs; i++) {
    const allocated = p.listAt(i) === 0;
    if (allocated) continue;
    let end = i - (i % IO_TLB_SEGSIZE) + IO_TLB_SEGSIZE;
    if (p.listClippedTail) end = Math.min(end, p.nslabs);
    let j = i;
    while (j < end && list[j] !== 0) j++;
    expect(list[i], `list[${i}]`).toBe(j - i);
  }
}

function expectInitial(p: IoTlbPool): void {
  const fresh = new IoTlbPool({ start: p.start, nslabs: p.nslabs, nareas: p.nareas, era: p.era, pageSize: p.pageSize, listClippedTail: p.listClippedTail });
  expect(Array.from(p.listSnapshot())).toEqual(Array.from(fresh.listSnapshot()));
  expect(Array.from(p.origAddr).every((v) => v === INVALID_PHYS_ADDR)).toBe(true);
  expect(Array.from(p.allocSize).every((v) => v === 0)).toBe(true);
  expect(Array.from(p.padSlots).every((v) => v === 0)).toBe(true);
  expect(Array.from(p.mapped).every((v) => v === 0)).toBe(true);
  expect(p.areaUsedList()).toEqual(new Array(p.nareas).fill(0));
  expect(p.used).toBe(0);
}

describe("IoTlbPool initial state", () => {
  it("list runs to the segment end; 6.x clips at the pool tail, 5.13 does not", () => {
    const a = pool6x(200);
    expect(a.listAt(0)).toBe(128);
    expect(a.listAt(127)).toBe(1);
    expect(a.listAt(128)).toBe(72);
    expect(a.listAt(199)).toBe(1);
    const b = pool513(200);
    expect(b.listAt(128)).toBe(128);
    expect(b.listAt(199)).toBe(57);
  });
  it("keeps every mutable array in one SharedArrayBuffer that another pool object can attach to", () => {
    const a = pool6x(1024, 2);
    const off = map6x(a, 1, 0x4000_0000, 3000, 0);
    const b = new IoTlbPool({ start: START, nslabs: 1024, nareas: 2, era: "6.x", pageSize: 4096, listClippedTail: true }, a.buffer);
    expect(b.listAt(off / IO_TLB_SIZE)).toBe(0);
    expect(b.areaUsedOf(1)).toBe(2);
    expect(b.releaseSlots(START + off, 0)).toBe(2);
    expect(a.used).toBe(0);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
  });
});

describe("spec 3.5 worked examples", () => {
  it("A (6.x): 100 bytes on CPU 1 with 4 areas lands at slot 8192", () => {
    const p = pool6x(32768, 4);
    expect(map6x(p, 1, 0x4000_0000, 100, 0)).toBe(8192 * IO_TLB_SIZE);
    expect(p.listAt(8192)).toBe(0);
    expect(p.allocSize[8192]).toBe(100);
    expect(p.listAt(8191)).toBe(1); // the backward walk stopped at once (8191 is offset 127)
    expect(p.areaIndexOf(1)).toBe(1);
    expect(p.areaUsedOf(1)).toBe(1);
  });
  it("B (5.13): NVMe min_align 0xfff, 8192 bytes at 0xa00 -> slot 1, then slot 9 (stride rounding)", () => {
    const p = pool513();
    expect(map513(p, 0x4000_0a00, 8192, 0xfff)).toBe(1 * IO_TLB_SIZE + 0x200);
    expect(p.listAt(0)).toBe(1);
    expect(p.areaIndexOf(0)).toBe(6);
    expect(Array.from(p.allocSize.subarray(1, 6))).toEqual([8192, 6144, 4096, 2048, 0]);
    // the 5.13 quirk: the start is ALIGN(6, 4) = 8 and the stride is 4 -> slot 9, 6..8 unused
    expect(map513(p, 0x4000_0a00, 8192, 0xfff)).toBe(9 * IO_TLB_SIZE + 0x200);
    expect([6, 7, 8].map((i) => p.listAt(i))).toEqual([3, 2, 1]);
  });
  it("C (6.x): the same request lands at 1 and then at 7", () => {
    const p = pool6x();
    expect(map6x(p, 0, 0x4000_0a00, 8192, 0xfff)).toBe(1 * IO_TLB_SIZE + 0x200);
    expect(p.areaIndexOf(0)).toBe(6);
    expect(map6x(p, 0, 0x4000_0a00, 8192, 0xfff)).toBe(7 * IO_TLB_SIZE + 0x200);
  });
  it("D (6.x): alloc_align 0xfff with an offset of 0xa00 takes one pad slot", () => {
    const p = pool6x();
    const off = map6x(p, 0, 0x4000_0a00, 1000, 0xfff, 0xfff);
    const real = Math.floor(off / IO_TLB_SIZE);
    const s = real - 1;
    expect(s % 2).toBe(0);
    expect(off % IO_TLB_SIZE).toBe(0x200);
    expect(p.allocSize[s]).toBe(3584);
    expect(p.allocSize[s + 1]).toBe(1536);
    expect(p.padSlots[real]).toBe(1);
    expect(p.origAddr[real]).toBe(0x4000_0a00);
    expect(p.origAddr[s]).toBe(INVALID_PHYS_ADDR);
    expect(p.releaseSlots(START + off, 0xfff)).toBe(2);
    expectInitial(p);
  });
});

describe("5.13 quirks", () => {
  it("stride rounding: the page rule doubles even the min_align stride (sizes >= PAGE_SIZE only)", () => {
    const p = pool513();
    // 2048 + 0 offset < PAGE_SIZE: stride 2 (mask 0x800), start ALIGN(0,2)=0 -> mismatch -> 1
    expect(map513(p, 0x4000_0800, 2048, 0xfff)).toBe(1 * IO_TLB_SIZE);
    // index 2: 4096 >= PAGE_SIZE -> stride 4 -> start ALIGN(2,4)=4 -> 5 (6.x would take 3)
    expect(map513(p, 0x4000_0800, 4096, 0xfff)).toBe(5 * IO_TLB_SIZE);
    const q = pool6x();
    map6x(q, 0, 0x4000_0800, 2048, 0xfff);
    expect(map6x(q, 0, 0x4000_0800, 4096, 0xfff)).toBe(3 * IO_TLB_SIZE);
  });

  it("spin guard: where find_slots would loop forever, answers FIND_SPIN (full) and changes nothing", () => {
    const p = pool513(256);
    expect(map513(p, 0x800, 2048, 0xfff)).toBe(IO_TLB_SIZE); // index hint now 2
    // 129 slots never fit; wrap = ALIGN(2, 4) = 4 is even, but after the first mismatch the
    // walk only visits odd slots (and 0 after a wrap): it never comes back to 4
    const before = p.listSnapshot();
    expect(p.mapSlots513(0x800, 129 * IO_TLB_SIZE, 0xfff, p.start, 0)).toBe(FIND_SPIN);
    expect(p.lastVisits).toBe(4 * 256 + 1);
    expect(p.listSnapshot()).toEqual(before);
    expect(p.used).toBe(1);
    expect(p.areaIndexOf(0)).toBe(2);
  });

  it("the same hopeless request terminates as plain full when the walk can return to its start", () => {
    const p = pool513(256);
    // hint 0: the walk from 0 wraps back to 0
    expect(p.mapSlots513(0x800, 129 * IO_TLB_SIZE, 0xfff, p.start, 0)).toBe(-1);
    expect(p.lastVisits).toBeLessThan(4 * 256);
  });

  it("fast fail: nslots > nslabs - used answers full without searching", () => {
    const p = pool513(256);
    for (let i = 0; i < 255; i++) expect(map513(p, 0x1000 * i, 100, 0)).toBe(i * IO_TLB_SIZE);
    expect(p.used).toBe(255);
    p.lastVisits = 0;
    expect(map513(p, 0, 4096, 0)).toBe(-1);
    expect(p.lastVisits).toBe(0);
    expect(map513(p, 0, 100, 0)).toBe(255 * IO_TLB_SIZE);
    expect(map513(p, 0, 1, 0)).toBe(-1);
  });

  it("alloc_size wraps as a u64: alloc 100 at offset 2000 gives slot 1 the value 100 - 2048 mod 2^64", () => {
    const p = pool513();
    const off = map513(p, 0x4000_0000 + 2000, 100, 0x7ff);
    expect(off).toBe(2000);
    expect(p.allocSize[0]).toBe(100);
    expect(p.allocSize[1]).toBe(100 - 2048);
    expect(BigInt.asUintN(64, BigInt(p.allocSize[1]!))).toBe((1n << 64n) - 1948n);
    expect(nrSlotsU64(p.allocSize[1]!)).toBe(0);
    expect(p.releaseSlots(START + off, 0x7ff)).toBe(2);
    expectInitial(p);
  });
});

describe("segments, fullness, alignment", () => {
  for (const era of ["5.13", "6.x"] as const) {
    const mk = (n: number) => (era === "5.13" ? pool513(n) : pool6x(n));
    const map = (p: IoTlbPool, size: number) => (era === "5.13" ? map513(p, 0x4000_0000, size, 0) : map6x(p, 0, 0x4000_0000, size, 0));

    it(`${era}: a 128-slot map only fits at a segment start; 129 slots never fit`, () => {
      const p = mk(512);
      expect(map(p, 2048)).toBe(0);
      // hint is 1 (5.13 aligns it to the stride 2 -> 2): the whole-segment map goes to 128
      expect(map(p, 128 * IO_TLB_SIZE)).toBe(128 * IO_TLB_SIZE);
      expect(map(p, 128 * IO_TLB_SIZE)).toBe(256 * IO_TLB_SIZE);
      expect(map(p, 128 * IO_TLB_SIZE + 1)).toBe(-1);
      expect(p.used).toBe(257);
      checkListInvariant(p);
    });

    it(`${era}: an exactly full pool answers full, and frees make room again`, () => {
      const p = mk(256);
      const offs: number[] = [];
      for (let i = 0; i < 128; i++) offs.push(map(p, 4096));
      expect(offs.every((o) => o >= 0)).toBe(true);
      expect(p.used).toBe(256);
      expect(map(p, 1)).toBe(-1);
      expect(p.releaseSlots(START + offs[77]!, 0)).toBe(2);
      expect(map(p, 4096)).toBe(offs[77]);
      for (const o of offs) expect(p.releaseSlots(START + o, 0)).toBe(2);
      expectInitial(p);
    });
  }

  it("6.x: alloc_align_mask masks are tested on the DMA address of the slot (pool above 4 GiB)", () => {
    // slot 0 is at 0x1_0000_0800 so that a 32-bit truncation would be visible only above 4 GiB
    const start = 0x1_0000_0800;
    const p = pool6x(4096, 1, start);
    const off = map6x(p, 0, 0x2_0000_0000, 4096, 0, 0xffff);
    expect((start + off) % 0x10000).toBe(0);
    const q = pool513(4096, 0x3_ffff_f800);
    // min_align 0x3fff: slot bits 0x3800 must match orig's
    const o2 = q.mapSlots513(0x5_0000_2a00, 100, 0x3fff, q.start, 0);
    expect(o2 % 0x4000).toBe(0x2a00);
  });

  it("6.x: a segment boundary mask rejects runs that cross its window", () => {
    const p = pool6x(1024);
    // max_slots 4 (16 KiB windows): a 3-slot run at hint 2 would cross -> goes to 4
    expect(map6x(p, 0, 0, 4096, 0)).toBe(0); // page aligned, 2 slots, hint -> 2
    const tlb = p.mapSlots(0, 0, 3 * 2048 - 100, 0, 0, p.start, 4);
    // 5948 >= PAGE_SIZE -> page-aligned candidates 2, 4: 2 + 3 crosses the window at 4
    expect(tlb - p.start).toBe(4 * IO_TLB_SIZE);
  });

  it("alignedSize follows ALIGN with the unsigned-int wrap of alloc_align_mask + 1", () => {
    expect(alignedSize(1000 + 0xa00, 0xfff)).toBe(4096);
    expect(alignedSize(5, 0)).toBe(5);
    expect(alignedSize(0x1_0000_0001, 0xffff)).toBe(0x1_0001_0000);
    expect(alignedSize(12345, 0xffffffff)).toBe(0);
  });
});

describe("areas (6.x)", () => {
  it("the CPU picks its area; a full area falls through to the next ones, wrapping", () => {
    const p = pool6x(512, 4); // 128 slots per area
    expect(map6x(p, 3, 0, 128 * IO_TLB_SIZE, 0)).toBe(384 * IO_TLB_SIZE);
    expect(map6x(p, 7, 0, 2048, 0)).toBe(0); // area 3 full -> wraps to area 0
    expect(map6x(p, 2, 0, 2048, 0)).toBe(256 * IO_TLB_SIZE);
    expect(p.areaUsedList()).toEqual([1, 0, 1, 128]);
  });
  it("an area's index wraps to 0 at its end (not into the next area)", () => {
    const p = pool6x(512, 2); // 256 per area
    const offs: number[] = [];
    for (let i = 0; i < 255; i++) offs.push(map6x(p, 1, 0, 2048, 0));
    expect(p.areaIndexOf(1)).toBe(255);
    expect(p.releaseSlots(START + offs[3]!, 0)).toBe(1);
    expect(map6x(p, 1, 0, 2048, 0)).toBe(511 * IO_TLB_SIZE);
    expect(p.areaIndexOf(1)).toBe(0);
    expect(map6x(p, 1, 0, 2048, 0)).toBe((256 + 3) * IO_TLB_SIZE);
  });
  it("a non-power-of-two area count (limit_nareas) masks with nareas - 1", () => {
    const p = pool6x(384, 3);
    // cpu 1: 1 & 2 = 0 -> area 0
    expect(map6x(p, 1, 0, 2048, 0)).toBe(0);
    expect(map6x(p, 3, 0, 2048, 0)).toBe(256 * IO_TLB_SIZE);
  });
});

describe("differential: random map/unmap sequences against the walking model", () => {
  const masks = [0, 0x7ff, 0xfff, 0x3ff, 0x3fff, 0xffff];
  const opArb = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("map" as const),
        cpu: fc.nat(7),
        low: fc.nat(0xffff),
        page: fc.nat(0xfffff),
        size: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 140 * 2048 })),
        minAlign: fc.constantFrom(...masks),
        alignMask: fc.constantFrom(0, 0, 0xfff, 0xffff, 0x7ff),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("unmap" as const), pick: fc.nat() }) },
  );

  for (const cfg of [
    { era: "5.13" as const, nslabs: 512, nareas: 1, start: START },
    { era: "5.13" as const, nslabs: 1024, nareas: 1, start: 0x1_7fff_f800 },
    { era: "6.x" as const, nslabs: 512, nareas: 1, start: START },
    { era: "6.x" as const, nslabs: 1024, nareas: 4, start: 0x2_0000_0000 },
    { era: "6.x" as const, nslabs: 640, nareas: 4, start: START },
  ]) {
    it(`${cfg.era}, ${cfg.nslabs} slots, ${cfg.nareas} area(s), pool at 0x${cfg.start.toString(16)}`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 100 }), (ops) => {
          const p = new IoTlbPool({ start: cfg.start, nslabs: cfg.nslabs, nareas: cfg.nareas, era: cfg.era, pageSize: 4096, listClippedTail: cfg.era === "6.x" });
          const m = new ModelPool({ start: BigInt(cfg.start), nslabs: cfg.nslabs, nareas: cfg.nareas, era: cfg.era, pageSize: 4096 });
          const live: { tlb: number; minAlign: number }[] = [];
          for (const op of ops) {
            if (op.kind === "map") {
              const orig = op.page * 0x10000 + op.low + 0x1_0000_0000;
              let got: number;
              let want: { first: number; tlb: bigint } | null;
              if (cfg.era === "5.13") {
                got = p.mapSlots513(orig, op.size, op.minAlign, p.start, 0);
                want = m.map513(BigInt(orig), BigInt(op.size), BigInt(op.minAlign));
              } else {
                got = p.mapSlots(op.cpu, orig, op.size, op.alignMask, op.minAlign, p.start, 0);
                want = m.map6x(op.cpu, BigInt(orig), BigInt(op.size), BigInt(op.alignMask), BigInt(op.minAlign));
              }
              if (want === null) expect(got).toBeLessThan(0);
              else {
                expect(got - cfg.start).toBe(Number(want.tlb));
                live.push({ tlb: got, minAlign: op.minAlign });
              }
            } else if (live.length > 0) {
              const [e] = live.splice(op.pick % live.length, 1);
              const n = p.releaseSlots(e!.tlb, e!.minAlign);
              expect(n).toBe(m.release(BigInt(e!.tlb - cfg.start), BigInt(e!.minAlign)));
            }
            const snap = p.listSnapshot();
            let diff = -1;
            for (let i = 0; i < cfg.nslabs && diff < 0; i++) if (snap[i] !== m.list[i]) diff = i;
            expect(diff, `first list difference (slot ${diff}: ${snap[diff]} vs ${m.list[diff]})`).toBe(-1);
            expect(p.areaIndexList()).toEqual(m.areaIndex);
            expect(p.areaUsedList()).toEqual(m.areaUsed);
          }
          for (let i = 0; i < cfg.nslabs; i++) {
            expect(BigInt.asUintN(64, BigInt(p.allocSize[i]!))).toBe(m.alloc[i]);
            expect(p.origAddr[i] === INVALID_PHYS_ADDR ? (1n << 64n) - 1n : BigInt(p.origAddr[i]!)).toBe(m.orig[i]);
          }
          checkListInvariant(p);
          // unmapping everything returns the pool to its initial state
          for (const e of live) expect(p.releaseSlots(e.tlb, e.minAlign)).toBeGreaterThan(0);
          expectInitial(p);
        }),
        { numRuns: 25 },
      );
    });
  }
});

describe("release refuses what is not a live mapping", () => {
  it("returns -1 and changes nothing for a free slot, a double release, a mid-mapping address, outside the pool", () => {
    const p = pool6x(1024);
    const off = map6x(p, 0, 0x4000_0000, 5000, 0);
    const snap = () => [Array.from(p.listSnapshot()), Array.from(p.allocSize), p.areaUsedList(), p.counters[0]];
    const before = snap();
    expect(p.releaseSlots(START + off + IO_TLB_SIZE, 0)).toBe(-1);
    expect(p.releaseSlots(START + 100 * IO_TLB_SIZE, 0)).toBe(-1);
    expect(p.releaseSlots(START - 4096, 0)).toBe(-1);
    expect(p.releaseSlots(START + 1024 * IO_TLB_SIZE, 0)).toBe(-1);
    expect(snap()).toEqual(before);
    expect(p.releaseSlots(START + off, 0)).toBe(3);
    expect(p.releaseSlots(START + off, 0)).toBe(-1);
    expectInitial(p);
  });
});
