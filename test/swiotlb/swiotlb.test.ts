import { describe, expect, it } from "vitest";
import { FaultError, InvalidArgumentError, UsageError } from "../../src/errors.js";
import { EventSink, KernelLog } from "../../src/events.js";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
} from "../../src/kernel/dma-mapping.js";
import { EINVAL, ENOMEM } from "../../src/kernel/errno.js";
import { KernelBug, KernelPanic } from "../../src/kernel/panic.js";
import { MemoryFault, PhysicalMemory } from "../../src/memory/physical-memory.js";
import {
  IO_TLB_SIZE,
  SWIOTLB_ANY,
  SWIOTLB_FORCE,
  SWIOTLB_FORCE_FLAG,
  SWIOTLB_NO_FORCE,
  SWIOTLB_NORMAL,
  SWIOTLB_VERBOSE,
} from "../../src/kernel/swiotlb.js";
import type { SwiotlbDevice } from "../../src/swiotlb/device.js";
import { parseSwiotlbCmdline } from "../../src/swiotlb/cmdline.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";
import {
  Swiotlb,
  limitNareas,
} from "../../src/swiotlb/swiotlb.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const FOUR_G = 0x1_0000_0000;
const PR = "software IO TLB: ";

function machine(version: string, possibleCpus = 1, ramGiB = 8) {
  const memory = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: ramGiB * GiB }] });
  const log = new KernelLog();
  const events = new EventSink();
  const sw = new Swiotlb(memory, kernelProfile(version), log, events, { possibleCpus });
  return { memory, log, events, sw };
}

function device(over: Partial<SwiotlbDevice> = {}): SwiotlbDevice {
  const mask = over.dmaMask ?? 0xffff_ffffn;
  const lim = Number(mask);
  return {
    name: "e1000e 0000:00:02.0",
    minAlignMask: 0,
    segBoundaryMask: 2 ** 64,
    dmaMask: mask,
    busDmaLimit: 0n,
    coherent: true,
    physToDma: (p) => p,
    dmaToPhys: (d) => d,
    dmaCapable: (d, s) => d + s - 1 <= lim,
    ...over,
  };
}

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = x & 0xff;
  }
  return a;
}

const BUF = 0x1_8000_0000; // above 4 GiB: has to bounce

describe("5.13 init paths", () => {
  it("swiotlb_init places 64 MiB top-down below the low limit and prints the kernel's line", () => {
    const { sw, log } = machine("5.13");
    expect(sw.defaultMem).toBeNull();
    sw.swiotlbInit(true, FOUR_G);
    const m = sw.defaultMem!;
    expect(m.start).toBe(FOUR_G - 64 * MiB);
    expect(m.nslabs).toBe(32768);
    expect(log.lines).toEqual([`${PR}mapped [mem 0x00000000fc000000-0x0000000100000000] (64MB)`]);
    expect(sw.isActive()).toBe(true);
    expect(sw.swiotlbMaxSegment()).toBe(64 * MiB);
  });

  it("double init: -ENOMEM with a one-time warning, pool unchanged", () => {
    const { sw, log } = machine("5.13");
    sw.swiotlbInit(false, FOUR_G);
    const m = sw.defaultMem;
    expect(sw.swiotlbInitWithTbl(0x4000_0000, 1024, true)).toBe(-ENOMEM);
    expect(sw.swiotlbLateInitWithTbl(0x4000_0000, 1024)).toBe(-ENOMEM);
    expect(sw.swiotlbInitWithTbl(0x4000_0000, 1024, true)).toBe(-ENOMEM);
    expect(sw.defaultMem).toBe(m);
    expect(log.lines.filter((l) => l.startsWith("WARNING")).length).toBe(2);
  });

  it("SWIOTLB_NO_FORCE: every init path returns 0 and allocates nothing (the pointer stays NULL)", () => {
    const { sw } = machine("5.13");
    sw.applyCmdline(parseSwiotlbCmdline("noforce", sw.profile));
    expect(sw.forceState).toBe(SWIOTLB_NO_FORCE);
    sw.swiotlbInit(true, FOUR_G);
    expect(sw.swiotlbInitWithTbl(0x4000_0000, 1024, true)).toBe(0);
    expect(sw.swiotlbLateInitWithDefaultSize(64 * MiB)).toBe(0);
    expect(sw.swiotlbLateInitWithTbl(0x4000_0000, 1024)).toBe(0);
    expect(sw.defaultMem).toBeNull();
    expect(sw.isActive()).toBe(false);
  });

  it("5.12 (before 2726bf3ff252): noforce shrinks the pool to one slab instead of skipping it", () => {
    const { sw } = machine("5.12");
    sw.applyCmdline(parseSwiotlbCmdline("noforce", sw.profile));
    sw.swiotlbInit(false, FOUR_G);
    expect(sw.defaultMem?.nslabs).toBe(1);
  });

  it("late init: power-of-two page orders, 'only able to allocate' when it had to shrink", () => {
    const { sw, log } = machine("5.13", 1, 1);
    // 1 GiB of RAM at 1 GiB; a GFP_DMA limit leaving ~40 MiB of room
    expect(sw.swiotlbLateInitWithDefaultSize(64 * MiB, 0x4000_0000 + 40 * MiB)).toBe(0);
    expect(sw.defaultMem!.nslabs).toBe(16384);
    expect(sw.defaultMem!.lateAlloc).toBe(true);
    expect(log.lines[0]).toBe(`${PR}only able to allocate 32 MB`);
    expect(log.lines[1]).toMatch(/^software IO TLB: mapped \[mem 0x0000000040000000-0x0000000042000000\] \(32MB\)$/);
  });

  it("late init with no room at all: -ENOMEM and no pool", () => {
    const { sw } = machine("5.13", 1, 1);
    expect(sw.swiotlbLateInitWithDefaultSize(64 * MiB, 0x4000_0000 + MiB)).toBe(-ENOMEM);
    expect(sw.defaultMem).toBeNull();
  });

  it("6.x init functions do not exist in 5.13 (and vice versa)", () => {
    expect(() => machine("5.13").sw.swiotlbInitRemap(true, 0)).toThrow(UsageError);
    expect(() => machine("6.x").sw.swiotlbInit(true)).toThrow(UsageError);
  });
});

describe("6.x init paths", () => {
  it("areas from the possible CPUs (rounded to a power of two), logged", () => {
    const { sw, log } = machine("6.x", 6);
    sw.swiotlbInitRemap(true, SWIOTLB_VERBOSE, FOUR_G);
    const p = sw.defaultMem!.pool;
    expect(p.nareas).toBe(8);
    expect(p.areaNslabs).toBe(4096);
    expect(log.lines).toEqual([`${PR}area num 8.`, `${PR}mapped [mem 0x00000000fc000000-0x0000000100000000] (64MB)`]);
  });

  it("cmdline size and areas: ALIGN to 128, then round up to a power of two with the message", () => {
    const { sw, log } = machine("6.x", 2);
    sw.applyCmdline(parseSwiotlbCmdline("1100,3", sw.profile));
    expect(sw.defaultNslabs).toBe(2048);
    expect(sw.defaultNareas).toBe(4);
    expect(log.lines).toEqual([`${PR}area num 4.`, `${PR}SWIOTLB bounce buffer size roundup to 4MB`]);
    sw.swiotlbInitRemap(true, 0, FOUR_G);
    expect(sw.defaultMem!.nslabs).toBe(2048);
    expect(sw.defaultMem!.pool.nareas).toBe(4);
  });

  it("no addressing limit and no force: no pool; noforce: no pool; force: force_bounce", () => {
    const a = machine("6.x");
    a.sw.swiotlbInitRemap(false, 0, FOUR_G);
    expect(a.sw.defaultMem).toBeNull();
    expect(a.sw.isActive(device())).toBe(false);
    const b = machine("6.x");
    b.sw.applyCmdline(parseSwiotlbCmdline("noforce", b.sw.profile));
    b.sw.swiotlbInitRemap(true, 0, FOUR_G);
    expect(b.sw.defaultMem).toBeNull();
    expect(b.sw.swiotlbInitLate(64 * MiB)).toBe(0);
    expect(b.sw.defaultMem).toBeNull();
    const c = machine("6.x");
    c.sw.applyCmdline(parseSwiotlbCmdline("force", c.sw.profile));
    c.sw.swiotlbInitRemap(false, 0, FOUR_G);
    expect(c.sw.isForceBounce(device())).toBe(true);
    const d = machine("6.x");
    d.sw.swiotlbInitRemap(true, SWIOTLB_FORCE_FLAG, FOUR_G);
    expect(d.sw.isForceBounce(device())).toBe(true);
    expect(d.sw.forceState).toBe(SWIOTLB_NORMAL);
  });

  it("the early allocation halves when low memory is short, re-limiting areas", () => {
    const { sw, log } = machine("6.x", 4, 1);
    sw.swiotlbInitRemap(true, 0, 0x4000_0000 + 20 * MiB);
    expect(sw.defaultMem!.nslabs).toBe(8192);
    expect(log.lines).toEqual([
      `${PR}area num 4.`,
      `${PR}swiotlb_memblock_alloc: Failed to allocate 67108864 bytes tlb structure`,
      `${PR}swiotlb_memblock_alloc: Failed to allocate 33554432 bytes tlb structure`,
      `${PR}SWIOTLB bounce buffer size adjusted 32768 -> 8192 slabs`,
    ]);
    const any = machine("6.x", 1, 8);
    any.sw.swiotlbInitRemap(true, SWIOTLB_ANY, FOUR_G);
    expect(any.sw.defaultMem!.end).toBe(0x4000_0000 + 8 * GiB);
  });

  it("late init: a second call is a no-op returning 0 (the 6.x double-init protection)", () => {
    const { sw, log } = machine("6.x");
    expect(sw.swiotlbInitLate(4 * MiB, FOUR_G)).toBe(0);
    const m = sw.defaultMem;
    expect(m!.nslabs).toBe(2048);
    expect(sw.swiotlbInitLate(4 * MiB, FOUR_G)).toBe(0);
    expect(sw.defaultMem).toBe(m);
    expect(log.lines.at(-1)).toMatch(/mapped \[mem .*\] \(4MB\)$/);
  });
});

function ready(version: string, nslabs?: number) {
  const mc = machine(version);
  if (nslabs !== undefined) mc.sw.defaultNslabs = nslabs;
  if (mc.sw.profile.era === "5.13") mc.sw.swiotlbInit(false, FOUR_G);
  else mc.sw.swiotlbInitRemap(true, 0, FOUR_G);
  mc.log.clear();
  return mc;
}

describe("map / unmap / sync bounce copies (every byte checked)", () => {
  for (const v of ["5.13", "6.x"]) {
    it(`${v}: a BIDIRECTIONAL round trip`, () => {
      const { sw, memory } = ready(v);
      const dev = device();
      const data = pattern(10000, 1);
      memory.write(BUF + 0x123, data);
      const dma = sw.swiotlbMap(dev, BUF + 0x123, data.length, DMA_BIDIRECTIONAL, 0, 0);
      expect(dma).toBeGreaterThan(0);
      expect(sw.isSwiotlbBuffer(dev, dma)).toBe(true);
      expect(memory.read(dma, data.length)).toEqual(data);
      // the device writes the bounce buffer; unmap copies it back
      const back = pattern(10000, 2);
      memory.write(dma, back);
      sw.tblUnmapSingle(dev, dma, data.length, DMA_BIDIRECTIONAL, 0);
      expect(memory.read(BUF + 0x123, back.length)).toEqual(back);
      expect(sw.stats()!.io_tlb_used).toBe(0);
    });
  }

  it("FROM_DEVICE map: 6.x copies the original into the bounce buffer, 5.13 does not", () => {
    for (const [v, copies] of [
      ["6.x", true],
      ["5.13", false],
    ] as const) {
      const { sw, memory } = ready(v);
      const data = pattern(3000, 3);
      memory.write(BUF, data);
      const dma = sw.swiotlbMap(device(), BUF, data.length, DMA_FROM_DEVICE, 0, 0);
      const got = memory.read(dma, data.length);
      if (copies) expect(got).toEqual(data);
      else expect(got).toEqual(new Uint8Array(data.length)); // the zero-filled pool
      // SKIP_CPU_SYNC: 6.x still copies at map time
      const dma2 = sw.swiotlbMap(device(), BUF, data.length, DMA_TO_DEVICE, DMA_ATTR_SKIP_CPU_SYNC, 0);
      if (copies) expect(memory.read(dma2, data.length)).toEqual(data);
      else expect(memory.read(dma2, data.length)).toEqual(new Uint8Array(data.length));
    }
  });

  it("partial sync at an offset: 6.x copies orig+100, 5.13 copies to orig+0 (no-offset quirk)", () => {
    for (const v of ["6.x", "5.13"]) {
      const { sw, memory } = ready(v);
      const dev = device();
      memory.fill(BUF, 4096, 0x11);
      const dma = sw.swiotlbMap(dev, BUF, 4096, DMA_BIDIRECTIONAL, 0, 0);
      const dev50 = pattern(50, 9);
      memory.write(dma + 100, dev50);
      sw.syncSingleForCpu(dev, dma + 100, 50, DMA_FROM_DEVICE);
      const orig = memory.read(BUF, 4096);
      const expected = new Uint8Array(4096).fill(0x11);
      expected.set(dev50, v === "6.x" ? 100 : 0);
      expect(orig).toEqual(expected);
    }
  });

  it("sync_for_device copies orig -> bounce for TO/BIDIR only; sync_for_cpu bounce -> orig for FROM/BIDIR only", () => {
    const { sw, memory } = ready("6.x");
    const dev = device();
    memory.fill(BUF, 2048, 1);
    const dma = sw.swiotlbMap(dev, BUF, 2048, DMA_BIDIRECTIONAL, 0, 0);
    memory.fill(BUF, 2048, 2);
    sw.syncSingleForDevice(dev, dma, 2048, DMA_FROM_DEVICE);
    expect(memory.read8(dma + 7)).toBe(1);
    sw.syncSingleForDevice(dev, dma, 2048, DMA_TO_DEVICE);
    expect(memory.read8(dma + 7)).toBe(2);
    memory.fill(dma, 2048, 3);
    sw.syncSingleForCpu(dev, dma, 2048, DMA_TO_DEVICE);
    expect(memory.read8(BUF + 7)).toBe(2);
    sw.syncSingleForCpu(dev, dma, 2048, DMA_BIDIRECTIONAL);
    expect(memory.read(BUF, 2048)).toEqual(new Uint8Array(2048).fill(3));
    expect(() => sw.syncSingleForCpu(dev, dma, 16, DMA_NONE)).toThrow(KernelBug);
    expect(() => sw.syncSingleForDevice(dev, dma, 16, DMA_NONE)).toThrow(FaultError);
  });

  it("unmap with SKIP_CPU_SYNC or TO_DEVICE does not copy back", () => {
    const { sw, memory } = ready("5.13");
    const dev = device();
    memory.fill(BUF, 100, 5);
    const a = sw.swiotlbMap(dev, BUF, 100, DMA_BIDIRECTIONAL, 0, 0);
    memory.fill(a, 100, 6);
    sw.tblUnmapSingle(dev, a, 100, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC);
    const b = sw.swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0, 0);
    memory.fill(b, 100, 7);
    sw.tblUnmapSingle(dev, b, 100, DMA_TO_DEVICE, 0);
    expect(memory.read(BUF, 100)).toEqual(new Uint8Array(100).fill(5));
  });

  it("overflow: a sync past the allocation is clamped with a one-time 'Buffer overflow detected'", () => {
    const { sw, memory, log } = ready("6.x");
    const dev = device();
    memory.fill(BUF, 8192, 0x22);
    const dma = sw.swiotlbMap(dev, BUF, 1000, DMA_BIDIRECTIONAL, 0, 0);
    memory.fill(dma, 4096, 0x33);
    sw.syncSingleForCpu(dev, dma, 3000, DMA_FROM_DEVICE);
    sw.syncSingleForCpu(dev, dma, 3000, DMA_FROM_DEVICE);
    expect(log.lines).toEqual([`${dev.name}: Buffer overflow detected. Allocation size: 1000. Mapping size: 3000.`]);
    const orig = memory.read(BUF, 8192);
    expect(orig.subarray(0, 1000)).toEqual(new Uint8Array(1000).fill(0x33));
    expect(orig.subarray(1000)).toEqual(new Uint8Array(7192).fill(0x22));
  });

  it("a fault on the original buffer leaves the pool as it was", () => {
    const { sw } = ready("6.x");
    const dev = device();
    const p = sw.defaultMem!.pool;
    const first = sw.swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0, 0);
    const before = [sw.stats(), p.areaIndexList(), Array.from(p.listSnapshot().subarray(0, 256))];
    expect(() => sw.swiotlbMap(dev, 0x10_0000_0000, 4096, DMA_TO_DEVICE, 0, 0)).toThrow(MemoryFault);
    expect([sw.stats(), p.areaIndexList(), Array.from(p.listSnapshot().subarray(0, 256))]).toEqual(before);
    // and the next map lands where it would have without the failed one
    expect(sw.swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0, 0)).toBe(first + IO_TLB_SIZE);
  });
});

describe("failures and messages", () => {
  it("full: the rate-limited device warning in each era's wording; NO_WARN silences it", () => {
    for (const v of ["5.13", "6.x"]) {
      const { sw, log } = ready(v, 1024);
      const dev = device({ minAlignMask: 0xfff });
      const tlbs: number[] = [];
      for (let i = 0; i < 8; i++) tlbs.push(sw.tblMapSingle(dev, BUF + 0xa00, 250_000, v === "5.13" ? 250_000 : 0, DMA_TO_DEVICE, 0));
      expect(tlbs.every((t) => t > 0)).toBe(true);
      const used = sw.stats()!.io_tlb_used;
      expect(sw.tblMapSingle(dev, BUF + 0xa00, 250_000, v === "5.13" ? 250_000 : 0, DMA_TO_DEVICE, 0)).toBe(-1);
      // 5.13 reports alloc_size; 6.x the searched size with the in-slot offset (0xa00 & 0x7ff)
      const sz = v === "5.13" ? 250000 : 250000 + 0x200;
      expect(log.lines).toEqual([`${dev.name}: swiotlb buffer is full (sz: ${sz} bytes), total 1024 (slots), used ${used} (slots)`]);
      expect(sw.tblMapSingle(dev, BUF, 250_000, v === "5.13" ? 250_000 : 0, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(-1);
      expect(log.lines.length).toBe(1);
      for (let i = 0; i < 20; i++) sw.tblMapSingle(dev, BUF, 250_000, v === "5.13" ? 250_000 : 0, DMA_TO_DEVICE, 0);
      expect(log.lines.length).toBe(10);
    }
  });

  it("no pool: 5.13 panics, 6.x warns and fails", () => {
    const a = machine("5.13");
    let err: unknown;
    try {
      a.sw.swiotlbMap(device(), BUF, 64, DMA_TO_DEVICE, 0, 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelPanic);
    expect((err as KernelPanic).exitCode).toBe(3);
    expect((err as Error).message).toBe(
      "Kernel panic - not syncing: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer",
    );
    const b = machine("6.x");
    expect(b.sw.swiotlbMap(device(), BUF, 64, DMA_TO_DEVICE, 0, 0)).toBe(-1);
    expect(b.log.lines).toEqual([
      "e1000e 0000:00:02.0: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer",
    ]);
  });

  it("5.13: mapping_size > alloc_size is refused once-warned", () => {
    const { sw, log } = ready("5.13");
    expect(sw.tblMapSingle(device(), BUF, 200, 100, DMA_TO_DEVICE, 0)).toBe(-1);
    expect(log.lines).toEqual(["e1000e 0000:00:02.0: Invalid sizes (mapping: 200 bytes, alloc: 100 bytes)"]);
  });

  it("6.x: an alloc_align_mask above PAGE_SIZE - 1 warns once", () => {
    const { sw, log } = ready("6.x");
    sw.tblMapSingle(device(), BUF, 100, 0x1fff, DMA_TO_DEVICE, 0);
    sw.tblMapSingle(device(), BUF, 100, 0x1fff, DMA_TO_DEVICE, 0);
    expect(log.lines).toEqual(["e1000e 0000:00:02.0: Alloc alignment may prevent fulfilling requests with max mapping_size"]);
  });

  it("swiotlb_map: a bounce buffer the device cannot reach is unmapped without copy-back and warned once", () => {
    const { sw, memory, log } = ready("6.x");
    const dev = device({ dmaMask: 0xffffn });
    memory.fill(BUF, 64, 0x44);
    const before = sw.stats();
    expect(sw.swiotlbMap(dev, BUF, 64, DMA_BIDIRECTIONAL, 0, 0)).toBe(-1);
    expect(sw.swiotlbMap(dev, BUF, 64, DMA_BIDIRECTIONAL, 0, 0)).toBe(-1);
    expect(sw.stats()!.io_tlb_used).toBe(before!.io_tlb_used);
    expect(log.lines).toEqual([`e1000e 0000:00:02.0: swiotlb addr 0x00000000fc000000+64 overflow (mask ffff, bus limit 0).`]);
    expect(memory.read(BUF, 64)).toEqual(new Uint8Array(64).fill(0x44));
  });

  it("5.13 spin guard through the map path: full, and a warning that the kernel would lock up", () => {
    const { sw, log } = ready("5.13", 256);
    const dev = device({ minAlignMask: 0xfff });
    expect(sw.tblMapSingle(dev, 0x4000_0800, 2048, 2048, DMA_TO_DEVICE, 0)).toBeGreaterThan(0);
    expect(sw.tblMapSingle(dev, 0x4000_0800, 129 * 2048, 129 * 2048, DMA_TO_DEVICE, 0)).toBe(-1);
    expect(log.lines[0]).toMatch(/^software IO TLB: dmalab: find_slots would spin forever here \(the real kernel soft-locks up\)/);
    expect(log.lines[1]).toMatch(/swiotlb buffer is full \(sz: 264192 bytes\), total 256 \(slots\), used 1 \(slots\)$/);
  });

  it("unmap/sync of addresses that are not live mappings: typed errors, pool unchanged", () => {
    const { sw } = ready("6.x");
    const dev = device();
    const dma = sw.swiotlbMap(dev, BUF, 5000, DMA_TO_DEVICE, 0, 0);
    const snap = () => [sw.stats(), Array.from(sw.defaultMem!.pool.listSnapshot().subarray(0, 256))];
    const before = snap();
    expect(() => sw.tblUnmapSingle(dev, dma + IO_TLB_SIZE, 5000, DMA_TO_DEVICE, 0)).toThrow(InvalidArgumentError);
    expect(() => sw.tblUnmapSingle(dev, BUF, 5000, DMA_TO_DEVICE, 0)).toThrow(/not inside a swiotlb pool/);
    expect(() => sw.syncSingleForCpu(dev, 0x4000_0000, 16, DMA_FROM_DEVICE)).toThrow(InvalidArgumentError);
    expect(snap()).toEqual(before);
    sw.tblUnmapSingle(dev, dma, 5000, DMA_TO_DEVICE, 0);
    expect(() => sw.tblUnmapSingle(dev, dma, 5000, DMA_TO_DEVICE, 0)).toThrow(/not a live bounce buffer/);
    expect(sw.stats()!.io_tlb_used).toBe(0);
  });
});

describe("state, stats, predicates", () => {
  it("debugfs counters by kernel name; 6.x hiwater resets only with 0", () => {
    const { sw } = ready("6.x");
    const dev = device();
    const a = sw.swiotlbMap(dev, BUF, 10_000, DMA_TO_DEVICE, 0, 0);
    const b = sw.swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0, 0);
    expect(sw.stats()).toEqual({ io_tlb_nslabs: 32768, io_tlb_used: 5 + 1, io_tlb_used_hiwater: 6 });
    sw.tblUnmapSingle(dev, a, 10_000, DMA_TO_DEVICE, 0);
    expect(sw.stats()).toEqual({ io_tlb_nslabs: 32768, io_tlb_used: 1, io_tlb_used_hiwater: 6 });
    expect(sw.writeUsedHiwater(5)).toBe(-EINVAL);
    expect(sw.stats()!.io_tlb_used_hiwater).toBe(6);
    expect(sw.writeUsedHiwater(0)).toBe(0);
    expect(sw.stats()!.io_tlb_used_hiwater).toBe(0);
    sw.tblUnmapSingle(dev, b, 100, DMA_TO_DEVICE, 0);
    const c = ready("5.13");
    c.sw.swiotlbMap(dev, BUF, 100, DMA_TO_DEVICE, 0, 0);
    expect(c.sw.stats()).toEqual({ io_tlb_nslabs: 32768, io_tlb_used: 1 });
    expect(() => c.sw.writeUsedHiwater(0)).toThrow(InvalidArgumentError);
    expect(machine("5.13").sw.stats()).toBeNull();
  });

  it("swiotlb_max_mapping_size: 256 KiB; 6.x subtracts the rounded-up min_align_mask", () => {
    expect(ready("5.13").sw.maxMappingSize(device({ minAlignMask: 0xfff }))).toBe(262144);
    const s = ready("6.x").sw;
    expect(s.maxMappingSize(device())).toBe(262144);
    expect(s.maxMappingSize(device({ minAlignMask: 0xfff }))).toBe(258048);
  });

  it("5.13 swiotlb_force is one global; isForceBounce reads it", () => {
    const { sw } = ready("5.13");
    expect(sw.forceState).toBe(SWIOTLB_NORMAL);
    sw.forceState = SWIOTLB_FORCE;
    expect(sw.isForceBounce(device())).toBe(true);
    expect(sw.swiotlbMaxSegment()).toBe(1);
    expect(() => {
      sw.forceState = 7 as 0;
    }).toThrow(InvalidArgumentError);
  });

  it("emits swiotlb_bounced (with swiotlb_force in 5.13) only when someone listens", () => {
    for (const v of ["5.13", "6.x"]) {
      const { sw, events } = ready(v);
      const rec = events.record((e) => e.name === "swiotlb_bounced");
      sw.swiotlbMap(device(), BUF, 64, DMA_TO_DEVICE, 0, 0);
      rec.stop();
      const f: Record<string, unknown> = { dev: "e1000e 0000:00:02.0", dev_addr: BUF, size: 64 };
      if (v === "5.13") f["force"] = "SWIOTLB_NORMAL";
      expect(rec.events.map((e) => e.fields)).toEqual([f]);
    }
  });

  it("restricted DMA pools (6.x): one area, force_bounce, selected per device; not in 5.13", () => {
    const { sw, log, memory } = ready("6.x");
    const m = sw.addRestrictedPool("restricted@50000000", 0x5000_0000, 4 * MiB);
    expect(log.lines).toEqual([`${PR}Reserved memory: created restricted DMA pool at 0x0000000050000000, size 4 MiB`]);
    expect(m.pool.nareas).toBe(1);
    const dev = device({ ioTlbMemName: "restricted@50000000", dmaMask: (1n << 64n) - 1n, dmaCapable: () => true });
    expect(sw.isForceBounce(dev)).toBe(true);
    expect(sw.isForceBounce(device())).toBe(false);
    memory.fill(0x4100_0000, 64, 9);
    const dma = sw.swiotlbMap(dev, 0x4100_0000, 64, DMA_TO_DEVICE, 0, 3);
    expect(dma).toBe(0x5000_0000);
    expect(sw.isSwiotlbBuffer(dev, dma)).toBe(true);
    expect(sw.isSwiotlbBuffer(device(), dma)).toBe(false);
    expect(sw.stats(m)).toEqual({ io_tlb_nslabs: 2048, io_tlb_used: 1, io_tlb_used_hiwater: 1 });
    expect(() => sw.swiotlbMap(device({ ioTlbMemName: "nope" }), BUF, 64, DMA_TO_DEVICE, 0, 0)).toThrow(InvalidArgumentError);
    expect(() => ready("5.13").sw.addRestrictedPool("r", 0x5000_0000, 4 * MiB)).toThrow(UsageError);
  });

  it("CPU number picks the area in the full map path", () => {
    const { sw } = machine("6.x", 4);
    sw.swiotlbInitRemap(true, 0, FOUR_G);
    const p = sw.defaultMem!.pool;
    const dma = sw.swiotlbMap(device(), BUF, 64, DMA_TO_DEVICE, 0, 2);
    expect((dma - p.start) / IO_TLB_SIZE).toBe(2 * p.areaNslabs);
  });
});

describe("sizes and boundaries", () => {
  it("a zero or fractional size is a typed error and changes nothing", () => {
    const { sw } = ready("6.x");
    expect(() => sw.swiotlbMap(device(), BUF, 0, DMA_TO_DEVICE, 0, 0)).toThrow(InvalidArgumentError);
    expect(() => sw.tblMapSingle(device(), BUF, 1.5, 0, DMA_TO_DEVICE, 0)).toThrow(/positive integer/);
    expect(sw.stats()!.io_tlb_used).toBe(0);
    expect(sw.stats()!.io_tlb_used_hiwater).toBe(0);
  });
  it("an oversize map (> 256 KiB) gets the kernel's answer: full", () => {
    for (const v of ["5.13", "6.x"]) {
      const { sw, log } = ready(v);
      expect(sw.swiotlbMap(device(), BUF, 262145, DMA_TO_DEVICE, 0, 0)).toBe(-1);
      expect(log.lines[0]).toContain("swiotlb buffer is full (sz: 262145 bytes)");
      expect(sw.swiotlbMap(device(), BUF, 262144, DMA_TO_DEVICE, 0, 0)).toBeGreaterThan(0);
    }
  });
  it("a segment boundary mask: runs never cross its window; a non-power-of-two window is a kernel BUG", () => {
    const { sw } = ready("6.x");
    const dev = device({ segBoundaryMask: 0x3fff });
    const a = sw.swiotlbMap(dev, BUF, 4096, DMA_TO_DEVICE, 0, 0);
    const b = sw.swiotlbMap(dev, BUF, 6000, DMA_TO_DEVICE, 0, 0);
    expect(Math.floor(a / 0x4000)).toBe(Math.floor((a + 4095) / 0x4000));
    expect(Math.floor(b / 0x4000)).toBe(Math.floor((b + 5999) / 0x4000));
    expect(b - a).toBe(4096);
    // hint 5 -> page-aligned candidate 6: 6 + 3 slots crosses the 8-slot window -> 8
    const c = sw.swiotlbMap(dev, BUF, 6000, DMA_TO_DEVICE, 0, 0);
    expect(c - a).toBe(0x4000);
    expect(() => sw.swiotlbMap(device({ segBoundaryMask: 0x2fff }), BUF, 64, DMA_TO_DEVICE, 0, 0)).toThrow(KernelBug);
  });
  it("limit_nareas: never more areas than whole segments (may leave a non-power-of-two)", () => {
    expect(limitNareas(4, 384)).toBe(3);
    expect(limitNareas(8, 32768)).toBe(8);
    expect(limitNareas(4, 512)).toBe(4);
  });
});

describe("swiotlb_adjust_size", () => {
  it("5.13: ALIGN to slots and segments, logged; a size from the command line wins", () => {
    const { sw, log } = machine("5.13");
    sw.adjustSize(10 * MiB + 1);
    expect(sw.defaultNslabs).toBe(5120 + 128);
    expect(log.lines).toEqual([`${PR}SWIOTLB bounce buffer size adjusted to 10MB`]);
    const b = machine("5.13");
    b.sw.applyCmdline(parseSwiotlbCmdline("4096", b.sw.profile));
    b.sw.adjustSize(10 * MiB);
    expect(b.sw.defaultNslabs).toBe(4096);
    expect(b.log.lines).toEqual([]);
  });
  it("6.x: rounds up to a power of two once the areas are known", () => {
    const { sw, log } = machine("6.x");
    sw.applyCmdline(parseSwiotlbCmdline(",2", sw.profile));
    sw.adjustSize(10 * MiB);
    expect(sw.defaultNslabs).toBe(8192);
    expect(log.lines.at(-1)).toBe(`${PR}SWIOTLB bounce buffer size adjusted to 16MB`);
  });
});

describe("rate-limited messages: one ratelimit_state per call site, in emulated time", () => {
  // kernel/dma/swiotlb.c swiotlb_tbl_map_single (v6.11): "Can not allocate SWIOTLB buffer
  // earlier and can't now provide you with the DMA bounce buffer" and "swiotlb buffer is full
  // (sz: %zd bytes), total %lu (slots), used %lu (slots)" are two dev_warn_ratelimited calls,
  // each with its own static DEFINE_RATELIMIT_STATE (include/linux/dev_printk.h)
  it("a flood of one message does not silence the other; the count restarts after 5 * HZ emulated jiffies", () => {
    const { sw, log, memory } = machine("6.x");
    const base = 0x8000_0000;
    memory.fill(base, 4 * IO_TLB_SIZE, 0);
    sw.addRestrictedPool("rp", base, 4 * IO_TLB_SIZE);
    log.clear();
    const noPool = device({ name: "a" });
    const restricted = device({ name: "b", ioTlbMemName: "rp" });
    for (let i = 0; i < 25; i++) expect(sw.tblMapSingle(noPool, BUF, 64, 0, DMA_TO_DEVICE, 0)).toBe(-1);
    const nopoolMsg = "a: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer";
    expect(log.lines).toEqual(Array(10).fill(nopoolMsg));
    // the pool of 4 slots is full after one 8 KiB mapping and a 4 KiB one
    expect(sw.tblMapSingle(restricted, BUF, 8192, 0, DMA_TO_DEVICE, 0)).toBeGreaterThan(0);
    expect(sw.tblMapSingle(restricted, BUF, 8192, 0, DMA_TO_DEVICE, 0)).toBe(-1);
    expect(log.lines.length).toBe(11);
    expect(log.lines[10]).toMatch(/^b: swiotlb buffer is full \(sz: 8192 bytes\), total 4 \(slots\), used 4 \(slots\)$/);
    // host time passing changes nothing; emulated time past the interval does
    sw.clock.advance(5 * 250);
    sw.tblMapSingle(noPool, BUF, 64, 0, DMA_TO_DEVICE, 0);
    expect(log.lines.length).toBe(11);
    sw.clock.advance(1);
    sw.tblMapSingle(noPool, BUF, 64, 0, DMA_TO_DEVICE, 0);
    expect(log.lines.slice(11)).toEqual(["swiotlb_tbl_map_single: 16 callbacks suppressed", nopoolMsg]);
  });
});
