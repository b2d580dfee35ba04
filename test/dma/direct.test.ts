import { describe, expect, it } from "vitest";
import { FaultError } from "../../src/errors.js";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  dmaBitMask,
} from "../../src/kernel/dma-mapping.js";
import { SWIOTLB_FORCE, SWIOTLB_NO_FORCE } from "../../src/kernel/swiotlb.js";
import { sgInitTable } from "../../src/dma/scatterlist.js";
import { SIZE_MAX_NUMBER } from "../../src/dma/ops.js";
import { FOUR_GIB, NIC32, NVME64, RAM_BASE, firstDiff, makeBoard, pattern, poolFreeState, poolSnapshot } from "./helpers.js";

const HIGH = 0x1_2000_0000; // above 4 GiB: a 32-bit device cannot reach it
const LOW = 0x8000_0000;

describe.each(["5.13", "6.x"] as const)("dma-direct %s: bouncing every byte", (kernel) => {
  it("a 64-bit device maps directly: dma == phys and the pool is untouched", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NVME64);
    const before = poolSnapshot(b.swiotlb);
    const dma = b.direct.mapPage(dev, HIGH + 0x10, 4096, DMA_TO_DEVICE, 0, 0);
    expect(dma).toBe(HIGH + 0x10);
    b.direct.unmapPage(dev, dma, 4096, DMA_TO_DEVICE, 0);
    expect(firstDiff(poolSnapshot(b.swiotlb), before)).toBe(-1);
    expect(b.direct.stats).toEqual({ mapped: 1, bounced: 0, failed: 0 });
  });

  it("TO_DEVICE: a 32-bit device reads every byte of a buffer above 4 GiB through the bounce buffer", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const data = pattern(5000, 1);
    b.mem.write(HIGH + 3, data);
    const dma = b.direct.mapPage(dev, HIGH + 3, data.length, DMA_TO_DEVICE, 0, 0);
    expect(dma).not.toBe(DMA_MAPPING_ERROR);
    expect(dma + data.length - 1).toBeLessThan(FOUR_GIB);
    expect(b.swiotlb.isSwiotlbBuffer(dev, dev.dmaToPhys(dma))).toBe(true);
    expect(firstDiff(b.bus(dev).read(dma, data.length), data)).toBe(-1);
    b.direct.unmapPage(dev, dma, data.length, DMA_TO_DEVICE, 0);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
    // the original is unchanged by a TO_DEVICE unmap
    expect(firstDiff(b.mem.read(HIGH + 3, data.length), data)).toBe(-1);
  });

  it("FROM_DEVICE: what the device writes reaches the original, every byte, at unmap", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const len = 9000;
    b.mem.fill(HIGH, len, 0xee);
    const dma = b.direct.mapPage(dev, HIGH, len, DMA_FROM_DEVICE, 0, 0);
    const data = pattern(len, 2);
    b.bus(dev).write(dma, data);
    // not synced yet: the CPU still sees its old bytes
    expect(b.mem.read8(HIGH)).toBe(0xee);
    b.direct.unmapPage(dev, dma, len, DMA_FROM_DEVICE, 0);
    expect(firstDiff(b.mem.read(HIGH, len), data)).toBe(-1);
  });

  it("BIDIRECTIONAL: sync_for_cpu shows device data, sync_for_device shows CPU data", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const len = 3000;
    const a = pattern(len, 3);
    const c = pattern(len, 4);
    const d = pattern(len, 5);
    b.mem.write(HIGH, a);
    const dma = b.direct.mapPage(dev, HIGH, len, DMA_BIDIRECTIONAL, 0, 0);
    const bus = b.bus(dev);
    expect(firstDiff(bus.read(dma, len), a)).toBe(-1);
    bus.write(dma, c);
    b.direct.syncSingleForCpu(dev, dma, len, DMA_BIDIRECTIONAL);
    expect(firstDiff(b.mem.read(HIGH, len), c)).toBe(-1);
    b.mem.write(HIGH, d);
    b.direct.syncSingleForDevice(dev, dma, len, DMA_BIDIRECTIONAL);
    expect(firstDiff(bus.read(dma, len), d)).toBe(-1);
    b.direct.unmapPage(dev, dma, len, DMA_BIDIRECTIONAL, 0);
    expect(firstDiff(b.mem.read(HIGH, len), d)).toBe(-1);
  });

  it("TO_DEVICE sync_for_cpu and FROM_DEVICE sync_for_device copy nothing", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const bus = b.bus(dev);
    b.mem.write(HIGH, pattern(512, 6));
    const dt = b.direct.mapPage(dev, HIGH, 512, DMA_TO_DEVICE, 0, 0);
    bus.write(dt, pattern(512, 7)); // device scribbles on a buffer it should only read
    b.direct.syncSingleForCpu(dev, dt, 512, DMA_TO_DEVICE);
    expect(firstDiff(b.mem.read(HIGH, 512), pattern(512, 6))).toBe(-1);
    b.direct.unmapPage(dev, dt, 512, DMA_TO_DEVICE, 0);
    const df = b.direct.mapPage(dev, HIGH, 512, DMA_FROM_DEVICE, 0, 0);
    const seen = bus.read(df, 512);
    b.mem.write(HIGH, pattern(512, 8));
    b.direct.syncSingleForDevice(dev, df, 512, DMA_FROM_DEVICE);
    expect(firstDiff(bus.read(df, 512), seen)).toBe(-1);
    b.direct.unmapPage(dev, df, 512, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
  });

  it("map_sg maps every entry; unmap_sg copies every FROM_DEVICE byte back", () => {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const sg = sgInitTable([
      { phys: HIGH, length: 1500 },
      { phys: HIGH + 0x10000, length: 4096 },
      { phys: LOW, length: 700 }, // reachable: mapped directly
    ]);
    expect(b.direct.mapSg(dev, sg, 3, DMA_FROM_DEVICE, 0, 0)).toBe(3);
    expect(sg[2]!.dmaAddress).toBe(LOW);
    expect(sg.map((s) => s.dmaLength)).toEqual([1500, 4096, 700]);
    const bus = b.bus(dev);
    const datas = sg.map((s, i) => pattern(s.length, 20 + i));
    sg.forEach((s, i) => bus.write(s.dmaAddress, datas[i]!));
    b.direct.syncSgForCpu(dev, sg, 3, DMA_FROM_DEVICE);
    sg.forEach((s, i) => expect(firstDiff(b.mem.read(s.phys, s.length), datas[i]!)).toBe(-1));
    b.direct.unmapSg(dev, sg, 3, DMA_FROM_DEVICE, 0);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
  });
});

describe("dma-direct: the era differences by name", () => {
  function copyBacks(kernel: "5.13" | "6.x", dir: 0 | 2, attrs: number): number {
    const b = makeBoard({ kernel });
    const dev = b.device(NIC32);
    const dma = b.direct.mapPage(dev, HIGH, 4096, dir, 0, 0);
    const rec = b.events.record((e) => e.name === "swiotlb_sync" && e.fields["target"] === "orig");
    b.direct.unmapPage(dev, dma, 4096, dir, attrs);
    rec.stop();
    return rec.events.length;
  }
  // kernel/dma/direct.h dma_direct_unmap_page: before 9e02977bfad0 ("dma-direct: avoid redundant
  // memory sync for swiotlb", v5.18-rc3) swiotlb_tbl_unmap_single got the caller's attrs after
  // the for-cpu sync had already copied back; since then it gets attrs | DMA_ATTR_SKIP_CPU_SYNC
  it("5.13 unmap copies FROM_DEVICE / BIDIRECTIONAL data back twice (profile.unmapDoubleCopy)", () => {
    expect(copyBacks("5.13", DMA_FROM_DEVICE, 0)).toBe(2);
    expect(copyBacks("5.13", DMA_BIDIRECTIONAL, 0)).toBe(2);
  });
  it("6.x unmap copies back once (attrs | SKIP_CPU_SYNC to swiotlb_tbl_unmap_single)", () => {
    expect(copyBacks("6.x", DMA_FROM_DEVICE, 0)).toBe(1);
    expect(copyBacks("6.x", DMA_BIDIRECTIONAL, 0)).toBe(1);
  });
  it("with SKIP_CPU_SYNC neither era copies back", () => {
    expect(copyBacks("5.13", DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC)).toBe(0);
    expect(copyBacks("6.x", DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC)).toBe(0);
  });

  it("a FROM_DEVICE map fills the bounce buffer with the original in 6.x but not in 5.13", () => {
    for (const kernel of ["5.13", "6.x"] as const) {
      const b = makeBoard({ kernel });
      const dev = b.device(NIC32);
      const data = pattern(2048, 9);
      b.mem.write(HIGH, data);
      const dma = b.direct.mapPage(dev, HIGH, 2048, DMA_FROM_DEVICE, 0, 0);
      const seen = b.bus(dev).read(dma, 2048);
      if (kernel === "6.x") expect(firstDiff(seen, data)).toBe(-1);
      else expect(seen.every((x) => x === 0)).toBe(true); // fresh, zero-filled pool
    }
  });

  it("5.13 SWIOTLB_NO_FORCE: an unreachable buffer warns once and fails, no bounce", () => {
    const b = makeBoard({ kernel: "5.13" });
    b.swiotlb.forceState = SWIOTLB_NO_FORCE;
    const dev = b.device(NIC32);
    const before = poolSnapshot(b.swiotlb);
    expect(b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.direct.mapPage(dev, HIGH + 4096, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines).toEqual(["e1000e 0000:00:02.0: DMA addr 0x0000000120000000+64 overflow (mask ffffffff, bus limit 0)."]);
    expect(firstDiff(poolSnapshot(b.swiotlb), before)).toBe(-1);
    // a reachable buffer still maps directly
    expect(b.direct.mapPage(dev, LOW, 64, DMA_TO_DEVICE, 0, 0)).toBe(LOW);
  });

  it("5.13 SWIOTLB_FORCE: even a 64-bit device bounces", () => {
    const b = makeBoard({ kernel: "5.13" });
    b.swiotlb.forceState = SWIOTLB_FORCE;
    const dev = b.device(NVME64);
    const dma = b.direct.mapPage(dev, LOW, 256, DMA_TO_DEVICE, 0, 0);
    expect(dma).not.toBe(LOW);
    expect(b.swiotlb.isSwiotlbBuffer(dev, dma)).toBe(true);
  });

  it("5.13 SWIOTLB_NORMAL but no pool: the map panics (swiotlb_tbl_map_single)", () => {
    const b = makeBoard({ kernel: "5.13", nslabs: 0 });
    const dev = b.device(NIC32);
    expect(() => b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toThrow(FaultError);
    expect(() => b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toThrow(/Kernel panic/);
  });

  it("6.x without a pool: is_swiotlb_active is false, so the overflow warning and ERROR", () => {
    const b = makeBoard({ kernel: "6.x", nslabs: 0 });
    const dev = b.device(NIC32);
    expect(b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines.at(-1)).toBe("e1000e 0000:00:02.0: DMA addr 0x0000000120000000+64 overflow (mask ffffffff, bus limit 0).");
  });

  it("6.x swiotlb=force: the default mem force-bounces every device", () => {
    const b = makeBoard({ kernel: "6.x", force: "force" });
    const dev = b.device(NVME64);
    const dma = b.direct.mapPage(dev, LOW, 256, DMA_TO_DEVICE, 0, 0);
    expect(b.swiotlb.isSwiotlbBuffer(dev, dma)).toBe(true);
  });

  it("a device with forceBounce bounces even a reachable buffer (both eras)", () => {
    for (const kernel of ["5.13", "6.x"] as const) {
      const b = makeBoard({ kernel });
      const dev = b.device({ ...NVME64, forceBounce: true });
      const dma = b.direct.mapPage(dev, LOW, 256, DMA_TO_DEVICE, 0, 0);
      expect(b.swiotlb.isSwiotlbBuffer(dev, dma)).toBe(true);
    }
  });

  it("6.x restricted-dma-pool: the device bounces through its own pool", () => {
    const b = makeBoard({ kernel: "6.x" });
    const base = 0x9000_0000;
    b.swiotlb.addRestrictedPool("restricted@90000000", base, 0x10_0000);
    const dev = b.device({ ...NVME64, device: "wifi", ioTlbMemName: "restricted@90000000" });
    const data = pattern(1000, 11);
    b.mem.write(HIGH, data);
    const dma = b.direct.mapPage(dev, HIGH, 1000, DMA_TO_DEVICE, 0, 0);
    expect(dma).toBeGreaterThanOrEqual(base);
    expect(dma).toBeLessThan(base + 0x10_0000);
    expect(firstDiff(b.bus(dev).read(dma, 1000), data)).toBe(-1);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
  });

  it("6.x: the CPU number picks the swiotlb area", () => {
    const b = makeBoard({ kernel: "6.x", possibleCpus: 4, nslabs: 1024 });
    const dev = b.device(NIC32);
    const pool = b.swiotlb.defaultMem!.pool;
    expect(pool.nareas).toBe(4);
    const dma = b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 2);
    const slot = pool.slotOf(dev.dmaToPhys(dma));
    expect(Math.floor(slot / pool.areaNslabs)).toBe(2);
  });

  it("a device behind a dma_range_map: the bounce buffer's DMA address is translated", () => {
    const b = makeBoard({ kernel: "6.x", ramSize: 5 * 2 ** 30 });
    // the device sees RAM at 0: dma = phys - 0x4000_0000
    const dev = b.device({ ...NIC32, dmaRangeMap: [{ cpuStart: RAM_BASE, dmaStart: 0, size: 5 * 2 ** 30 }] });
    // phys 0x1_2000_0000 is dma 0xe000_0000: reachable by 32 bits, so direct
    expect(b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toBe(HIGH - RAM_BASE);
    // phys 0x1_3FFF_0000 is dma 0xFFFF_0000 + 0x20000 overflows 32 bits: bounced, translated
    const p = 0x1_3fff_0000;
    const data = pattern(0x20000, 12);
    b.mem.write(p, data);
    const dma = b.direct.mapPage(dev, p, 0x20000, DMA_TO_DEVICE, 0, 0);
    const tlb = dev.dmaToPhys(dma);
    expect(b.swiotlb.isSwiotlbBuffer(dev, tlb)).toBe(true);
    expect(dma).toBe(tlb - RAM_BASE);
    expect(firstDiff(b.bus(dev).read(dma, data.length), data)).toBe(-1);
  });

  it("a full pool answers ERROR (NO_WARN: silently) and changes nothing", () => {
    const b = makeBoard({ kernel: "6.x", nslabs: 128 });
    const dev = b.device(NIC32);
    const a = b.direct.mapPage(dev, HIGH, 0x40000, DMA_TO_DEVICE, 0, 0);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    const before = poolSnapshot(b.swiotlb);
    const lines = b.log.lines.length;
    expect(b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, DMA_ATTR_NO_WARN, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines.length).toBe(lines);
    expect(b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines.at(-1)).toMatch(/^e1000e 0000:00:02.0: swiotlb buffer is full/);
    expect(firstDiff(poolSnapshot(b.swiotlb), before)).toBe(-1);
    expect(b.direct.stats.failed).toBe(2);
  });

  it("map_sg failure: the mapped entries are released with SKIP_CPU_SYNC and the result is 0", () => {
    // 5.13 FROM_DEVICE does not fill the bounce buffer, so a copy back would zero the originals
    const b = makeBoard({ kernel: "5.13", nslabs: 128 });
    const dev = b.device(NIC32);
    const initial = poolFreeState(b.swiotlb);
    const segs = [0, 1, 2, 3, 4].map((i) => ({ phys: HIGH + i * 0x10_0000, length: 0x10000 }));
    segs.forEach((s, i) => b.mem.write(s.phys, pattern(s.length, 30 + i)));
    const sg = sgInitTable(segs);
    expect(b.direct.mapSg(dev, sg, 5, DMA_FROM_DEVICE, DMA_ATTR_NO_WARN, 0)).toBe(0);
    expect(poolFreeState(b.swiotlb)).toEqual(initial);
    segs.forEach((s, i) => expect(firstDiff(b.mem.read(s.phys, s.length), pattern(s.length, 30 + i))).toBe(-1));
  });
});

describe("dma-direct: masks and limits", () => {
  it("required mask from the top of RAM: 4 GiB at 0x4000_0000 needs 0x1_FFFF_FFFF (spec 6.5)", () => {
    const b = makeBoard();
    expect(b.direct.getRequiredMask(b.device(NIC32))).toBe(0x1_ffff_ffffn);
    expect(b.direct.addressingLimited(b.device(NIC32))).toBe(true);
    expect(b.direct.addressingLimited(b.device(NVME64))).toBe(false);
  });
  it("dma_direct_supported: >= 32 bits always; below, the mask must cover ZONE_DMA's top", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    expect(b.direct.dmaSupported(dev, dmaBitMask(32))).toBe(true);
    expect(b.direct.dmaSupported(dev, dmaBitMask(31))).toBe(false);
    const small = makeBoard({ ramSize: 0x1000_0000 }); // RAM ends at 0x5000_0000
    expect(small.direct.dmaSupported(small.device(NIC32), dmaBitMask(31))).toBe(true);
    expect(small.direct.dmaSupported(small.device(NIC32), dmaBitMask(30))).toBe(false);
  });
  it("max mapping size: swiotlb's for a limited device, SIZE_MAX otherwise (both eras)", () => {
    const b513 = makeBoard({ kernel: "5.13" });
    expect(b513.direct.maxMappingSize(b513.device({ ...NIC32, minAlignMask: 0xfff }))).toBe(262144);
    expect(b513.direct.maxMappingSize(b513.device(NVME64))).toBe(SIZE_MAX_NUMBER);
    const b6 = makeBoard({ kernel: "6.x" });
    expect(b6.direct.maxMappingSize(b6.device({ ...NIC32, minAlignMask: 0xfff }))).toBe(258048);
    expect(b6.direct.maxMappingSize(b6.device(NVME64))).toBe(SIZE_MAX_NUMBER);
    const forced = makeBoard({ kernel: "6.x", force: "force" });
    expect(forced.direct.maxMappingSize(forced.device(NVME64))).toBe(258048);
    const nopool = makeBoard({ kernel: "6.x", nslabs: 0 });
    expect(nopool.direct.maxMappingSize(nopool.device(NIC32))).toBe(SIZE_MAX_NUMBER);
  });
  it("need_sync: bounce buffers and non-coherent devices", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    const dma = b.direct.mapPage(dev, HIGH, 64, DMA_TO_DEVICE, 0, 0);
    expect(b.direct.needSync(dev, dma)).toBe(true);
    expect(b.direct.needSync(dev, LOW)).toBe(false);
    expect(b.direct.needSync(b.device({ ...NIC32, coherent: false }), LOW)).toBe(true);
  });
});

describe("6.x force_bounce outlives a failed pool allocation", () => {
  // kernel/dma/swiotlb.c swiotlb_init_remap (v6.11): io_tlb_default_mem.force_bounce is set
  // from swiotlb_force_bounce / SWIOTLB_FORCE before memblock is asked for the buffer, and the
  // failure path just returns; dma_direct_map_page then bounces (is_swiotlb_force_bounce) and
  // swiotlb_tbl_map_single refuses with "Can not allocate SWIOTLB buffer earlier and can't
  // now provide you with the DMA bounce buffer" (mem->nslabs == 0)
  it("swiotlb=force and no memory for the pool: every map fails, even one the device could reach", () => {
    const b = makeBoard({ kernel: "6.x", nslabs: 0, force: "force" });
    // nothing lies below the RAM base: every size down to IO_TLB_MIN_SLABS fails
    b.swiotlb.swiotlbInitRemap(false, 0, RAM_BASE);
    expect(b.swiotlb.defaultMem).toBeNull();
    expect(b.swiotlb.defaultForceBounce).toBe(true);
    const dev = b.device(NVME64);
    b.log.clear();
    expect(b.direct.mapPage(dev, LOW, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines).toEqual([`${dev.name}: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer`]);
    expect(b.direct.stats).toEqual({ mapped: 0, bounced: 0, failed: 1 });
  });
  it("without force the same failure leaves devices mapping directly", () => {
    const b = makeBoard({ kernel: "6.x", nslabs: 0 });
    b.swiotlb.swiotlbInitRemap(true, 0, RAM_BASE);
    expect(b.swiotlb.defaultForceBounce).toBe(false);
    expect(b.direct.mapPage(b.device(NVME64), LOW, 64, DMA_TO_DEVICE, 0, 0)).toBe(LOW);
  });
  it("swiotlb_init_late sets it before allocating too", () => {
    const b = makeBoard({ kernel: "6.x", nslabs: 0, force: "force" });
    expect(b.swiotlb.swiotlbInitLate(64 * 2 ** 20, RAM_BASE)).toBe(-12);
    expect(b.swiotlb.defaultForceBounce).toBe(true);
    expect(b.direct.mapPage(b.device(NVME64), LOW, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
  });
});

describe("6.5+ kmalloc bouncing in dma_direct_map_page (dma_kmalloc_needs_bounce)", () => {
  // kernel/dma/direct.h (v6.11): a buffer the device can reach still takes the swiotlb branch
  // when dma_kmalloc_needs_bounce(dev, size, dir): non-coherent device, FROM_DEVICE or
  // BIDIRECTIONAL, size below 2 * ARCH_DMA_MINALIGN and kmalloc_size_roundup(size) not a
  // multiple of dma_get_cache_alignment(); kmalloc's minimum alignment is 8 only because
  // swiotlb has a pool (mm/slab_common.c __kmalloc_minalign)
  const NC = { ...NVME64, minAlignMask: 0, coherent: false };
  it("a 32-byte FROM_DEVICE buffer of a non-coherent 64-bit device bounces; TO_DEVICE, 64 bytes or a coherent device do not", () => {
    const b = makeBoard({ kernel: "6.x" });
    b.direct.kmallocMinalign = 8;
    const dev = b.device(NC);
    const pool = b.swiotlb.defaultMem!;
    const d = b.direct.mapPage(dev, LOW, 32, DMA_FROM_DEVICE, 0, 0);
    expect(d).toBeGreaterThanOrEqual(pool.start);
    expect(d).toBeLessThan(pool.end);
    b.direct.unmapPage(dev, d, 32, DMA_FROM_DEVICE, 0);
    expect(b.direct.mapPage(dev, LOW, 96, DMA_BIDIRECTIONAL, 0, 0)).not.toBe(LOW);
    expect(b.direct.mapPage(dev, LOW, 32, DMA_TO_DEVICE, 0, 0)).toBe(LOW);
    expect(b.direct.mapPage(dev, LOW, 64, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
    expect(b.direct.mapPage(dev, LOW, 200, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
    expect(b.direct.mapPage(b.device({ ...NC, coherent: true }), LOW, 32, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
  });
  it("not before 6.5, not with the option off, not while kmalloc kept the cache alignment", () => {
    const old = makeBoard({ kernel: "5.13" });
    old.direct.kmallocMinalign = 8;
    expect(old.direct.kmallocBounce).toBe(false);
    expect(old.direct.mapPage(old.device(NC), LOW, 32, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
    const off = makeBoard({ kernel: "6.x" });
    off.direct.kmallocMinalign = 8;
    off.direct.kmallocBounce = false;
    expect(off.direct.mapPage(off.device(NC), LOW, 32, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
    const aligned = makeBoard({ kernel: "6.x" });
    expect(aligned.direct.mapPage(aligned.device(NC), LOW, 32, DMA_FROM_DEVICE, 0, 0)).toBe(LOW);
  });
});
