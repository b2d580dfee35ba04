import { describe, expect, it } from "vitest";
import { resolveMachine } from "../../../src/machine/preset.js";
import { kernelProfile } from "../../../src/swiotlb/profile.js";
import { XenGuestBoot } from "../../../src/machine/xen-boot.js";
import { ContiguousRegion, MAX_CONTIG_ORDER } from "../../../src/xen/guest/contiguous-region.js";
import { KernelBug } from "../../../src/kernel/panic.js";
import { P2mOverrides } from "../../../src/xen/guest/p2m.js";
import { XenGuest } from "../../../src/xen/guest/xen.js";
import { XenSwiotlb, swiotlbForXen } from "../../../src/xen/guest/swiotlb-xen.js";
import { Hypercalls } from "../../../src/xen/guest/hypercall.js";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";

const PAGE = 4096;

function armGuest(dom0: boolean): { region: ContiguousRegion; calls: number[] } {
  const mem = new PhysicalMemory({ banks: [{ base: 0, size: 4 << 20 }] });
  const calls: number[] = [];
  const hc = new Hypercalls((r) => {
    calls.push(Number(r.x[16]));
    if (r.x[16] === 17n && r.x[0] === 6n) {
      mem.write32(Number(r.x[1]) + 4, dom0 ? 0x6805 : 0x6005);
      r.x[0] = 0n;
    } else r.x[0] = BigInt.asUintN(64, -38n);
  }, mem);
  const xen = new XenGuest(hc, 0x1000);
  xen.earlyInit(["xen,xen-4.15", "xen,xen"]);
  calls.length = 0;
  return { region: new ContiguousRegion("arm", xen, new P2mOverrides()), calls };
}

describe("xen_create_contiguous_region, arm stub (arch/arm/xen/mm.c ≤ v5.18)", () => {
  it("dom0: the DMA handle is pstart, result 0, and no hypercall is made", () => {
    const { region, calls } = armGuest(true);
    expect(region.create(0x12_3000, 6, 18)).toEqual({ rc: 0, dmaHandle: 0x12_3000 });
    region.destroy(0x12_3000, 6);
    expect(calls).toEqual([]);
  });
  it("any other domain: -EINVAL, no hypercall", () => {
    const { region, calls } = armGuest(false);
    expect(region.create(0x40_0000, 0, 32).rc).toBe(-22);
    expect(calls).toEqual([]);
  });
});

describe("xen_create_contiguous_region, x86-PV style through XENMEM_exchange", () => {
  // a not-direct-mapped domU of qemu-virt-2g (machine RAM 1 GiB..3 GiB), in the stub's x86-pv mode
  function pvGuest(): XenGuestBoot {
    const xb = new XenGuestBoot(resolveMachine("qemu-virt-2g"), kernelProfile("5.13"), { role: "domU", contiguousRegion: "x86-pv" });
    xb.earlyInit();
    return xb;
  }

  it("gives the region's frames to Xen and gets one machine-contiguous extent below address_bits", () => {
    const xb = pvGuest();
    const pstart = xb.machine.memblock.allocTopDown(256 << 10, 256 << 10, Infinity, "test");
    const before = xb.hv.domain(xb.domain.id)!.totPages;
    // dom0 holds everything below 2 GiB (the lowest RAM), so the extent comes from 2..4 GiB
    const r = xb.contig.create(pstart, 6, 32);
    expect(r.rc).toBe(0);
    expect(r.dmaHandle % (256 << 10)).toBe(0);
    expect(r.dmaHandle + (256 << 10)).toBeLessThanOrEqual(2 ** 32);
    // Xen's P2M and Linux's override table agree, frame by frame, and the extent is contiguous
    for (let i = 0; i < 64; i++) {
      const gfn = pstart / PAGE + i;
      expect(xb.domain.p2m.lookupMfn(gfn)).toBe(r.dmaHandle / PAGE + i);
      expect(xb.p2m.pfnToBfn(gfn)).toBe(r.dmaHandle / PAGE + i);
    }
    expect(xb.contig.exchanges.at(-1)).toEqual({ rc: 0, nrExchanged: 64, addressBits: 32 });
    expect(xb.domain.totPages).toBe(before);
    expect(xb.hv.check()).toEqual([]);
    // and back: destroy gives the extent up for single frames again
    xb.contig.destroy(pstart, 6);
    expect(xb.contig.exchanges.at(-1)!.rc).toBe(0);
    for (let i = 0; i < 64; i++) expect(xb.p2m.pfnToBfn(pstart / PAGE + i)).toBe(xb.domain.p2m.lookupMfn(pstart / PAGE + i));
    expect(xb.hv.check()).toEqual([]);
  });

  it("fails with -ENOMEM when Xen's heap has nothing under address_bits, leaving P2M and heap unchanged", () => {
    const xb = pvGuest();
    const pstart = xb.machine.memblock.allocTopDown(256 << 10, 256 << 10, Infinity, "test");
    const snap = xb.hv.snapshot();
    const overrides = xb.p2m.size;
    const region = () => Array.from({ length: 64 }, (_, i) => xb.p2m.lookup(pstart / PAGE + i));
    const regionBefore = region();
    // machine RAM starts at 1 GiB and dom0 holds 1..2 GiB: nothing free below 2^18 … 2^31
    for (const bits of [18, 24, 30, 31]) {
      const r = xb.contig.create(pstart, 6, bits);
      expect(r.rc).toBe(-12);
      // the handle is the region's current machine address (frames unchanged)
      expect(r.dmaHandle).toBe(xb.domain.p2m.lookupMfn(pstart / PAGE) * PAGE);
      const x = xb.contig.exchanges.at(-1)!;
      expect(x.rc).toBe(-12);
      expect(x.nrExchanged).toBe(0);
    }
    expect(xb.hv.snapshot()).toBe(snap);
    expect(xb.p2m.size).toBe(overrides);
    expect(region()).toEqual(regionBefore);
    expect(xb.hv.check()).toEqual([]);
  });

  it("a region not aligned to its order is refused before anything changes", () => {
    const xb = pvGuest();
    const snap = xb.hv.snapshot();
    const n = xb.p2m.size;
    const calls = xb.hypercalls.counts.get(12) ?? 0;
    expect(() => xb.contig.create(0x4000_1000, 6, 32)).toThrow(/0x40001000 is not aligned to its order 6/);
    expect(xb.hv.snapshot()).toBe(snap);
    expect(xb.p2m.size).toBe(n);
    expect(xb.hypercalls.counts.get(12) ?? 0).toBe(calls);
  });

  it("an order above MAX_CONTIG_ORDER is -ENOMEM without a hypercall", () => {
    const xb = pvGuest();
    const n = xb.hypercalls.counts.get(12) ?? 0;
    expect(xb.contig.create(0x4000_0000, MAX_CONTIG_ORDER + 1, 32).rc).toBe(-12);
    expect(xb.hypercalls.counts.get(12) ?? 0).toBe(n);
  });

  it("an answer that breaks the exchange contract is a kernel BUG, as in xen_exchange_memory", () => {
    const mem = new PhysicalMemory({ banks: [{ base: 0, size: 4 << 20 }] });
    // a 'Xen' that reports success without exchanging anything
    const hc = new Hypercalls((r) => void (r.x[0] = 0n), mem);
    const xen = new XenGuest(hc, 0x1000);
    const region = new ContiguousRegion("x86-pv", xen, new P2mOverrides(), { structGpa: 0x2000, inListGpa: 0x3000, outListGpa: 0x4000 });
    expect(() => region.create(0x10_0000, 2, 32)).toThrow(KernelBug);
  });

  it("swiotlb-xen's fixup through the real exchange: Xen's -ENOMEM below 2 GiB drives the retries up to 32 bits", () => {
    const xb = pvGuest();
    const m = xb.machine;
    const xs = new XenSwiotlb({
      profile: m.profile,
      swiotlb: swiotlbForXen(m.swiotlb, m.profile),
      p2m: xb.p2m,
      contig: xb.contig,
      log: m.log,
      pages: { alloc: () => -1, free: () => {} },
      isLocalRam: (p) => m.memory.isRam(p, 1),
    });
    const start = m.memblock.allocTopDown(1 << 20, 1 << 20, Infinity, "pool");
    expect(xs.fixup(start, 512)).toBe(0);
    // chunk 0: 18..31 refused by Xen (dom0 owns all RAM below 2 GiB), 32 works; chunks 1..3 start at 32
    expect(xs.fixupCalls.map((c) => [c.dmaBits, c.rc])).toEqual([
      ...Array.from({ length: 14 }, (_, i) => [18 + i, -12]),
      [32, 0],
      [32, 0],
      [32, 0],
      [32, 0],
    ]);
    expect(xb.contig.exchanges.filter((x) => x.rc === -12 && x.nrExchanged === 0)).toHaveLength(14);
    // each 256 KiB chunk is machine-contiguous below 4 GiB now
    for (let c = 0; c < 4; c++) {
      const first = xb.p2m.pfnToBfn(start / PAGE + c * 64);
      expect(first % 64).toBe(0);
      expect(first * PAGE).toBeLessThan(2 ** 32);
      for (let i = 1; i < 64; i++) expect(xb.p2m.pfnToBfn(start / PAGE + c * 64 + i)).toBe(first + i);
    }
    expect(xb.hv.check()).toEqual([]);
  });
});
