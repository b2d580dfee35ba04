import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EventSink, KernelLog } from "../../../src/events.js";
import { Device } from "../../../src/dma/device.js";
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, dmaBitMask, type DmaDirection } from "../../../src/kernel/dma-mapping.js";
import { Memblock } from "../../../src/memory/memblock.js";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { Swiotlb } from "../../../src/swiotlb/swiotlb.js";
import { SWIOTLB_FORCE, SWIOTLB_NO_FORCE } from "../../../src/kernel/swiotlb.js";
import { kernelProfile, type KernelProfile } from "../../../src/swiotlb/profile.js";

import type { ContiguousRegionOps } from "../../../src/xen/guest/contiguous-region.js";
import { KernelOops } from "../../../src/kernel/oops.js";
import { P2mOverrides } from "../../../src/xen/guest/p2m.js";
import { XenSwiotlb, getOrder, swiotlbForXen } from "../../../src/xen/guest/swiotlb-xen.js";

const MiB = 1 << 20;

/** byte-for-byte equality without vitest's slow deep compare; names the first difference */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0 ? -1 : a.findIndex((x, i) => x !== b[i]);
}
const GiB = 1 << 30;

/** a contiguous-region stand-in whose answer depends on the address bits asked for */
function contigWhere(ok: (pstart: number, order: number, bits: number) => boolean): ContiguousRegionOps & { calls: [number, number, number][] } {
  const calls: [number, number, number][] = [];
  return {
    calls,
    create(pstart, order, bits) {
      calls.push([pstart, order, bits]);
      return ok(pstart, order, bits) ? { rc: 0, dmaHandle: pstart } : { rc: -12, dmaHandle: pstart };
    },
    destroy() {},
  };
}

function setup(version: string, contig: ContiguousRegionOps, ramBase = 0x4000_0000, ramSize = 2 * GiB) {
  const profile: KernelProfile = kernelProfile(version);
  const mem = new PhysicalMemory({ banks: [{ base: ramBase, size: ramSize }] });
  const log = new KernelLog();
  const memblock = new Memblock(mem);
  const sw = new Swiotlb(mem, profile, log, new EventSink(), { memblock });
  const p2m = new P2mOverrides();
  const allocs: number[] = [];
  const xs = new XenSwiotlb({
    profile,
    swiotlb: swiotlbForXen(sw, profile),
    p2m,
    contig,
    log,
    pages: {
      alloc: (order) => {
        allocs.push(order);
        const size = 4096 * 2 ** order;
        return memblock.allocTopDown(size, size, 2 ** 32, "xen-swiotlb");
      },
      free: (a) => memblock.free(a),
    },
    isLocalRam: (p) => mem.isRam(p, 1),
  });
  return { profile, mem, log, memblock, sw, p2m, xs, allocs };
}

describe("xen_swiotlb_fixup", () => {
  it("asks for 18, 19, … address bits and does not start over for the next chunk", () => {
    const c = contigWhere((_p, _o, bits) => bits >= 21);
    const { xs } = setup("5.13", c);
    expect(xs.fixup(0x4000_0000, 3 * 128 + 5)).toBe(0);
    // chunk 0: 18, 19, 20 fail, 21 works; chunks 1..3 start at 21
    expect(c.calls.map((x) => x[2])).toEqual([18, 19, 20, 21, 21, 21, 21]);
    // chunks of IO_TLB_SEGSIZE slots (256 KiB, order 6), the tail chunk of 5 slots: order 2
    expect(c.calls.slice(3).map((x) => [x[0] - 0x4000_0000, x[1]])).toEqual([
      [0, 6],
      [256 << 10, 6],
      [512 << 10, 6],
      [768 << 10, 2],
    ]);
  });

  it("gives up after address_bits 32 (15 tries) with the last error", () => {
    const c = contigWhere(() => false);
    const { xs } = setup("5.13", c);
    expect(xs.fixup(0x4000_0000, 1024)).toBe(-12);
    expect(c.calls.map((x) => x[2])).toEqual([18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]);
  });

  it("get_order(IO_TLB_SEGSIZE << IO_TLB_SHIFT) + PAGE_SHIFT is 18 for 4K pages", () => {
    expect(getOrder(128 * 2048) + 12).toBe(18);
  });
});

describe("xen_swiotlb_init", () => {
  it("5.13: allocates, fixes up and publishes the pool through swiotlb_late_init_with_tbl", () => {
    const c = contigWhere(() => true);
    const { xs, sw, log } = setup("5.13", c);
    expect(xs.init()).toBe(0);
    expect(sw.defaultMem).not.toBeNull();
    expect(sw.defaultMem!.nslabs).toBe(32768);
    expect(xs.ownPool).toEqual({ start: sw.defaultMem!.start, nslabs: 32768, order: 14 });
    expect(c.calls).toHaveLength(256);
    expect(log.lines.some((l) => l.startsWith("software IO TLB: mapped [mem "))).toBe(true);
  });

  it("5.13: -EEXIST with a warning when io_tlb_default_mem exists (97729b653de5), nothing allocated", () => {
    const c = contigWhere(() => true);
    const { xs, sw, log, allocs } = setup("5.13", c);
    sw.swiotlbInit(true, 2 ** 32);
    const before = sw.defaultMem;
    expect(xs.init()).toBe(-17);
    expect(log.lines).toContain("xen:swiotlb_xen: swiotlb buffer already initialized");
    expect(sw.defaultMem).toBe(before);
    expect(allocs).toEqual([]);
    expect(c.calls).toEqual([]);
  });

  it("5.13-rc1: no check of its own — the core's swiotlb_late_init_with_tbl refuses the second pool with -ENOMEM", () => {
    const c = contigWhere(() => true);
    const { xs, sw, log } = setup("5.13-rc1", c);
    sw.swiotlbInit(true, 2 ** 32);
    const before = sw.defaultMem;
    expect(xs.init()).toBe(-12);
    expect(sw.defaultMem).toBe(before);
    expect(log.lines.some((l) => l.includes("WARNING") && l.includes("swiotlb_late_init_with_tbl"))).toBe(true);
    expect(xs.initAttempts.at(-1)!.lateInitRc).toBe(-12);
  });

  it("5.12: reuses the pool mem_init made (\"already allocated\") and returns -ENOMEM without allocating", () => {
    const c = contigWhere(() => true);
    const { xs, sw, allocs } = setup("5.12", c);
    sw.swiotlbInit(true, 2 ** 32);
    const before = sw.defaultMem;
    expect(xs.init()).toBe(-12);
    expect(sw.defaultMem).toBe(before);
    expect(allocs).toEqual([]);
  });

  it("5.13-rc1 under SWIOTLB_NO_FORCE: returns 0 but no pool exists (2726bf3ff252)", () => {
    const { xs, sw } = setup("5.13-rc1", contigWhere(() => true));
    sw.forceState = SWIOTLB_NO_FORCE;
    expect(xs.init()).toBe(0);
    expect(sw.defaultMem).toBeNull();
  });

  it("5.12 under SWIOTLB_NO_FORCE: the late init still creates the pool", () => {
    const { xs, sw } = setup("5.12", contigWhere(() => true));
    sw.forceState = SWIOTLB_NO_FORCE;
    expect(xs.init()).toBe(0);
    expect(sw.defaultMem!.nslabs).toBe(32768);
  });

  it("retries by halving nslabs; 5.13 forgets to recompute bytes, so the same 64 MiB is asked for again", () => {
    const c = contigWhere(() => false);
    const { xs, log } = setup("5.13", c);
    expect(xs.init()).toBe(-12);
    expect(xs.initAttempts.map((a) => [a.nslabs, a.order])).toEqual([
      [32768, 14],
      [16384, 14],
      [8192, 14],
      [4096, 14],
    ]);
    expect(log.lines.filter((l) => l.startsWith("xen:swiotlb_xen: Lowering to"))).toEqual([
      "xen:swiotlb_xen: Lowering to 32MB",
      "xen:swiotlb_xen: Lowering to 16MB",
      "xen:swiotlb_xen: Lowering to 8MB",
    ]);
    expect(log.lines.at(-1)).toMatch(/^xen:swiotlb_xen: You either: .* \(rc:-12\)$/);
    expect(log.lines.at(-2)).toBe("xen:swiotlb_xen: Failed to get contiguous memory for DMA from Xen!");
  });

  it("5.12 recomputes bytes on retry: the buffer shrinks with nslabs", () => {
    const { xs } = setup("5.12", contigWhere(() => false));
    expect(xs.init()).toBe(-12);
    expect(xs.initAttempts.map((a) => [a.nslabs, a.order])).toEqual([
      [32768, 14],
      [16384, 13],
      [8192, 12],
      [4096, 11],
    ]);
  });

  it("a retry that succeeds publishes the halved pool (5.13: over the full-size buffer)", () => {
    let n = 0;
    // the first attempt's first chunk fails at every address width, then everything works
    const c = contigWhere(() => ++n > 15);
    const { xs, sw } = setup("5.13", c);
    expect(xs.init()).toBe(0);
    expect(sw.defaultMem!.nslabs).toBe(16384);
    expect(xs.initAttempts.map((a) => a.order)).toEqual([14, 14]);
  });

  it("falls back to smaller page orders while the block stays above 1 MiB", () => {
    // only 5 MiB of RAM under the 4 GiB GFP_DMA32 limit is free
    const { xs, sw, memblock, allocs, log } = setup("5.13", contigWhere(() => true), 0xffa0_0000, 6 * MiB + 1 * GiB);
    memblock.reserve(0x1_0000_0000, 1 * GiB, "high");
    memblock.reserve(0xffa0_0000, 1 * MiB, "low");
    expect(xs.init()).toBe(0);
    expect(allocs).toEqual([14, 13, 12, 11, 10]);
    expect(sw.defaultMem!.nslabs).toBe(2048);
    expect(log.lines).toContain("xen:swiotlb_xen: Warning: only able to allocate 4 MB for software IO TLB");
  });
});

describe("xen_swiotlb_dma_supported", () => {
  const dev = () => new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(32) });

  it("5.13-rc1/5.13 with no pool: a NULL dereference of io_tlb_default_mem->end at 0x8", () => {
    for (const v of ["5.13-rc1", "5.13"]) {
      const { xs } = setup(v, contigWhere(() => true));
      xs.callContext = () => ["really_probe", "nic_probe", "dma_set_mask_and_coherent", "dma_set_mask", "dma_supported"];
      xs.faultCauses = () => ["mem_init set SWIOTLB_NO_FORCE"];
      let e: unknown;
      try {
        xs.dmaSupported(dev(), dmaBitMask(32));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(KernelOops);
      const o = e as KernelOops;
      expect(o.exitCode).toBe(3);
      expect(o.function).toBe("xen_swiotlb_dma_supported");
      expect(o.pointer).toBe("io_tlb_default_mem");
      expect(o.address).toBe(0x8);
      expect(o.callChain).toEqual(["really_probe", "nic_probe", "dma_set_mask_and_coherent", "dma_set_mask", "dma_supported", "xen_swiotlb_dma_supported"]);
      expect(o.message).toContain("NULL pointer dereference at virtual address 0000000000000008");
      expect(o.report()).toContain(" - mem_init set SWIOTLB_NO_FORCE");
      expect(xs.lastOops).toBe(o);
    }
  });

  it("≤5.12 and 6.x read a static end: no pool means the mask test fails, not a fault", () => {
    for (const v of ["5.12", "6.x"]) {
      const { xs } = setup(v, contigWhere(() => true));
      expect(xs.dmaSupported(dev(), dmaBitMask(32))).toBe(false);
      expect(xs.dmaSupported(dev(), dmaBitMask(64))).toBe(true);
    }
  });

  it("with a pool: the bus address of the pool's last byte against the mask", () => {
    const { xs, sw } = setup("5.13", contigWhere(() => true));
    sw.swiotlbInit(true, 0x8000_0000);
    const last = sw.defaultMem!.end - 1;
    expect(xs.dmaSupported(dev(), dmaBitMask(32))).toBe(true);
    expect(xs.dmaSupported(dev(), BigInt(last))).toBe(true);
    expect(xs.dmaSupported(dev(), BigInt(last - 1))).toBe(false);
  });
});

describe("swiotlb-xen map_page / unmap_page", () => {
  function forced(version: string) {
    const s = setup(version, contigWhere(() => true));
    s.sw.forceState = SWIOTLB_FORCE;
    if (version === "6.x") s.sw.swiotlbInitRemap(true, 0, 0x8000_0000);
    else s.sw.swiotlbInit(true, 0x8000_0000);
    return s;
  }
  const dirs: DmaDirection[] = [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL];

  for (const version of ["5.13", "6.x"])
    it(`${version}: every bounced byte reaches the device and comes back (property)`, () => {
      const { xs, mem, sw } = forced(version);
      const dev = new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(64) });
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 255 }),
          fc.integer({ min: 1, max: 64 * 1024 }),
          fc.integer({ min: 0, max: 4095 }),
          fc.constantFrom(...dirs),
          fc.integer({ min: 0, max: 255 }),
          (page, size, off, dir, seed) => {
            const phys = 0x9000_0000 + page * 65536 + off;
            const orig = Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed) & 0xff);
            mem.write(phys, orig);
            const used = sw.defaultMem!.used;
            const dma = xs.mapPage(dev, phys, size, dir, 0, 0);
            expect(dma).not.toBe(DMA_MAPPING_ERROR);
            expect(sw.isSwiotlbBuffer(dev, dma)).toBe(true); // identity P2M: bus == phys
            if (dir !== DMA_FROM_DEVICE) expect(firstDiff(mem.read(dma, size), orig)).toBe(-1);
            const fromDev = Uint8Array.from({ length: size }, (_, i) => (i * 13 + seed + 1) & 0xff);
            mem.write(dma, fromDev);
            xs.unmapPage(dev, dma, size, dir, 0);
            expect(firstDiff(mem.read(phys, size), dir === DMA_TO_DEVICE ? orig : fromDev)).toBe(-1);
            expect(sw.defaultMem!.used).toBe(used);
          },
        ),
        { numRuns: 150 },
      );
    });

  it("sync_single_for_cpu / _for_device move the bytes between the bounce slot and the buffer", () => {
    const { xs, mem, sw } = forced("5.13");
    const dev = new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(64) });
    const phys = 0x9000_0100;
    mem.write(phys, Uint8Array.of(1, 2, 3, 4));
    const dma = xs.mapPage(dev, phys, 4, DMA_BIDIRECTIONAL, 0, 0);
    expect(sw.isSwiotlbBuffer(dev, dma)).toBe(true);
    mem.write(dma, Uint8Array.of(9, 8, 7, 6)); // the device writes
    xs.syncSingleForCpu(dev, dma, 4, DMA_BIDIRECTIONAL);
    expect([...mem.read(phys, 4)]).toEqual([9, 8, 7, 6]);
    mem.write(phys, Uint8Array.of(5, 5, 5, 5)); // the CPU writes
    xs.syncSingleForDevice(dev, dma, 4, DMA_BIDIRECTIONAL);
    expect([...mem.read(dma, 4)]).toEqual([5, 5, 5, 5]);
    const sg = [{ phys, length: 4, dmaAddress: dma, dmaLength: 4 }];
    mem.write(dma, Uint8Array.of(4, 4, 4, 4));
    xs.syncSgForCpu(dev, sg, 1, DMA_BIDIRECTIONAL);
    expect([...mem.read(phys, 4)]).toEqual([4, 4, 4, 4]);
    xs.unmapPage(dev, dma, 4, DMA_BIDIRECTIONAL, 0);
    expect(sw.defaultMem!.used).toBe(0);
  });

  it("maps directly when the device reaches the bus address and nothing forces a bounce", () => {
    const { xs, sw } = setup("5.13", contigWhere(() => true));
    sw.swiotlbInit(true, 0x8000_0000);
    const dev = new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(32) });
    const used = sw.defaultMem!.used;
    expect(xs.mapPage(dev, 0x9000_0010, 100, DMA_TO_DEVICE, 0, 0)).toBe(0x9000_0010);
    expect(sw.defaultMem!.used).toBe(used);
    xs.unmapPage(dev, 0x9000_0010, 100, DMA_TO_DEVICE, 0);
    expect(xs.stats).toEqual({ mapped: 1, bounced: 0, failed: 0 });
  });

  it("uses the bus frame from Linux's p2m, and bounces a buffer that straddles discontiguous bus frames", () => {
    const { xs, sw, p2m } = setup("5.13", contigWhere(() => true));
    sw.swiotlbInit(true, 0x8000_0000);
    const dev = new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(40) });
    // 0x9000_0000's frame is a foreign page at machine 0x7_0000_0000; the next frame is local
    p2m.set(0x9000_0, 0x7000_00);
    expect(xs.mapPage(dev, 0x9000_0100, 0x100, DMA_TO_DEVICE, 0, 0)).toBe(0x7_0000_0100);
    const dma = xs.mapPage(dev, 0x9000_0f00, 0x200, DMA_TO_DEVICE, 0, 0);
    expect(sw.isSwiotlbBuffer(dev, dma)).toBe(true);
    xs.unmapPage(dev, dma, 0x200, DMA_TO_DEVICE, 0);
    expect(sw.defaultMem!.used).toBe(0);
  });

  it("a bounce slot the device cannot reach is unmapped again and the map fails", () => {
    const { xs, sw } = forced("5.13");
    // the pool sits at the top of the first 1 GiB of RAM (below 2 GiB); a 30-bit device cannot reach it
    const dev = new Device({ driver: "old", device: "0000:00:03.0", dmaMask: dmaBitMask(30) });
    expect(xs.mapPage(dev, 0x9000_0000, 64, DMA_TO_DEVICE, 0, 0)).toBe(DMA_MAPPING_ERROR);
    expect(sw.defaultMem!.used).toBe(0);
    expect(xs.stats.failed).toBe(1);
  });

  it("map_sg: a failing entry unmaps the ones before it and returns 0", () => {
    const { xs, sw } = forced("5.13");
    const dev = new Device({ driver: "nic", device: "0000:00:01.0", dmaMask: dmaBitMask(64) });
    const sg = [
      { phys: 0x9000_0000, length: 4096, dmaAddress: -1, dmaLength: 0 },
      { phys: 0x9001_0000, length: 300 * 1024, dmaAddress: -1, dmaLength: 0 }, // above 256 KiB: no slot run
    ];
    expect(xs.mapSg(dev, sg, 2, DMA_TO_DEVICE, 0, 0)).toBe(0);
    expect(sw.defaultMem!.used).toBe(0);
    expect(sg[0]!.dmaLength).toBe(0);
  });
});
