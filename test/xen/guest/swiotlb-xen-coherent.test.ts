import { describe, expect, it } from "vitest";
import { buildMachine, type MachineConfig } from "../../../src/machine/builder.js";

const MiB = 2 ** 20;
const PAGE = 4096;

function xenBoot(c: MachineConfig) {
  const b = buildMachine(c);
  expect(b.report.outcome).toBe("ok");
  const xs = b.xen!.xenSwiotlb!;
  expect(xs).not.toBeNull();
  return { b, xs, dev: b.machine.devices[0]!.dev, pages: b.coherent.direct.pages };
}

describe("xen_swiotlb_alloc_coherent / free_coherent (drivers/xen/swiotlb-xen.c)", () => {
  it("5.13 dom0 on arm: dma_direct_alloc underneath; 1:1, so no contiguous region is needed", () => {
    const { b, xs, dev, pages } = xenBoot({ machine: "qemu-virt-2g", xen: "dom0", kernel: "5.13" });
    const x = b.coherent.dmaAllocAttrs(dev, 12288)!;
    expect(x.dma).toBe(x.phys);
    expect(xs.xenRemapped.size).toBe(0);
    // swiotlb-xen rounds up to 1 << (order + XEN_PAGE_SHIFT): 16 KiB
    expect(pages.usedPages).toBe(4);
    b.coherent.dmaFreeAttrs(dev, 12288, x.phys, x.dma);
    expect(pages.usedPages).toBe(0);
  });

  it("5.13 on arm: a buffer that is not machine-contiguous goes through the era's stub (dom0: pstart, 0)", () => {
    const { b, xs, dev, pages } = xenBoot({ machine: "qemu-virt-2g", xen: "dom0", kernel: "5.13" });
    const probe = b.coherent.dmaAllocAttrs(dev, 8192)!;
    b.coherent.dmaFreeAttrs(dev, 8192, probe.phys, probe.dma);
    // a foreign frame in the middle of where the next buffer lands
    xs.p2m.set(probe.phys / PAGE + 1, 0x12345);
    const x = b.coherent.dmaAllocAttrs(dev, 8192)!;
    expect(x.phys).toBe(probe.phys);
    expect(x.dma).toBe(x.phys);
    expect(xs.xenRemapped.has(x.phys)).toBe(true);
    expect(b.xen!.contig.exchanges).toEqual([]);
    xs.p2m.set(probe.phys / PAGE + 1, -1);
    b.coherent.dmaFreeAttrs(dev, 8192, x.phys, x.dma);
    expect(xs.xenRemapped.size).toBe(0);
    expect(pages.usedPages).toBe(0);
  });

  it("5.13 direct-mapped domU on arm: the stub says -EINVAL, the allocation fails and its pages are freed", () => {
    const { b, xs, dev, pages } = xenBoot({ machine: "qemu-virt-2g", xen: "domU", kernel: "5.13", features: ["direct_mapped"], xenVersion: "4.16", swiotlb: "force" });
    const probe = b.coherent.dmaAllocAttrs(dev, 8192)!;
    b.coherent.dmaFreeAttrs(dev, 8192, probe.phys, probe.dma);
    xs.p2m.set(probe.phys / PAGE + 1, 0x12345);
    expect(b.coherent.dmaAllocAttrs(dev, 8192)).toBeNull();
    expect(pages.usedPages).toBe(0);
  });

  it("6.x on arm: .alloc is dma_direct_alloc (5.19+), no contiguous-region call whatever the p2m says", () => {
    const { b, xs, dev } = xenBoot({ machine: "qemu-virt-2g", xen: "dom0", kernel: "6.x" });
    const probe = b.coherent.dmaAllocAttrs(dev, 8192)!;
    b.coherent.dmaFreeAttrs(dev, 8192, probe.phys, probe.dma);
    xs.p2m.set(probe.phys / PAGE + 1, 0x12345);
    const x = b.coherent.dmaAllocAttrs(dev, 8192)!;
    expect(x.dma).toBe(x.phys);
    expect(xs.xenRemapped.size).toBe(0);
  });

  it("x86-PV exchange (5.13): frames above the mask are exchanged for a contiguous extent below it, and given back on free", () => {
    const { b, xs, dev, pages } = xenBoot({ machine: "qemu-virt-16g", xen: "dom0", kernel: "5.13", features: ["not_direct_mapped"], contig: "x86-pv" });
    const xb = b.xen!;
    const boot = xb.contig.exchanges.length;
    const x = b.coherent.dmaAllocAttrs(dev, 2 * MiB)!;
    expect(x).not.toBeNull();
    expect(x.dma + 2 * MiB - 1).toBeLessThanOrEqual(0xffff_ffff);
    expect(x.dma % (2 * MiB)).toBe(0);
    expect(xs.xenRemapped.has(x.phys)).toBe(true);
    // XENMEM_exchange: 512 single frames in, one order-9 extent out, address_bits = fls64(mask)
    expect(xb.contig.exchanges.slice(boot)).toEqual([{ rc: 0, nrExchanged: 512, addressBits: 32 }]);
    for (let i = 0; i < 512; i++) expect(xb.domain.p2m.lookupMfn(x.phys / PAGE + i)).toBe(x.dma / PAGE + i);
    // the kernel zeroed the new frames
    expect(xb.host.read(x.dma, 4096).every((v) => v === 0)).toBe(true);
    b.coherent.dmaFreeAttrs(dev, 2 * MiB, x.phys, x.dma);
    expect(xb.contig.exchanges.at(-1)).toEqual({ rc: 0, nrExchanged: 1, addressBits: 0 });
    expect(xs.xenRemapped.size).toBe(0);
    expect(pages.usedPages).toBe(0);
    expect(xb.hv.check()).toEqual([]);
  });

  it("x86-PV exchange (5.13): an order above MAX_CONTIG_ORDER is -ENOMEM without a hypercall; the allocation fails cleanly", () => {
    const { b, dev, pages } = xenBoot({ machine: "qemu-virt-16g", xen: "dom0", kernel: "5.13", features: ["not_direct_mapped"], contig: "x86-pv" });
    const boot = b.xen!.contig.exchanges.length;
    expect(b.coherent.dmaAllocAttrs(dev, 4 * MiB)).toBeNull();
    expect(b.xen!.contig.exchanges.length).toBe(boot);
    expect(pages.usedPages).toBe(0);
  });

  it("x86-PV exchange (5.13): Xen has nothing below address_bits: -ENOMEM with nr_exchanged 0, the allocation fails, p2m and heap unchanged", () => {
    const { b, xs, dev, pages } = xenBoot({ machine: "qemu-virt-16g", xen: "dom0", kernel: "5.13", features: ["not_direct_mapped"], contig: "x86-pv" });
    const xb = b.xen!;
    // machine RAM starts at 1 GiB: no frame is below 2^30
    dev.setCoherentDmaMaskRaw(2n ** 30n - 1n);
    const boot = xb.contig.exchanges.length;
    expect(b.coherent.dmaAllocAttrs(dev, 2 * MiB)).toBeNull();
    expect(xb.contig.exchanges.slice(boot)).toEqual([{ rc: -12, nrExchanged: 0, addressBits: 30 }]);
    expect(xs.xenRemapped.size).toBe(0);
    expect(pages.usedPages).toBe(0);
    expect(xb.hv.check()).toEqual([]);
  });
});
