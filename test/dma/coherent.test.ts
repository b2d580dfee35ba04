import { describe, expect, it } from "vitest";
import { buildMachine } from "../../src/machine/builder.js";
import { Device } from "../../src/dma/device.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { DMA_ATTR_NO_KERNEL_MAPPING, dmaBitMask } from "../../src/kernel/dma-mapping.js";
import { GFP_KERNEL, __GFP_DMA, __GFP_DMA32 } from "../../src/memory/page-alloc.js";

const MiB = 2 ** 20;

function dev(over: Partial<ConstructorParameters<typeof Device>[0]> = {}): Device {
  return new Device({ driver: "test", device: "dev0", ...over });
}

describe("dma_direct_optimal_gfp_mask (kernel/dma/direct.c)", () => {
  it("picks GFP_DMA within zone_dma_bits, GFP_DMA32 within 32 bits, else no zone", () => {
    // qemu-virt-16g: no DMA restriction, zone_dma_bits 32
    const q = buildMachine({ machine: "qemu-virt-16g" }).coherent.direct;
    expect(q.optimalGfpMask(dev()).gfp).toBe(__GFP_DMA);
    expect(q.optimalGfpMask(dev({ coherentDmaMask: dmaBitMask(64) })).gfp).toBe(0);
    // bus_dma_limit counts too: min_not_zero(coherent mask, bus limit)
    expect(q.optimalGfpMask(dev({ coherentDmaMask: dmaBitMask(64), busDmaLimit: 0xffff_ffffn })).gfp).toBe(__GFP_DMA);
    // rpi4: firmware describes 30-bit DMA, so ZONE_DMA is 1 GiB and a 32-bit device gets GFP_DMA32
    const r = buildMachine({ machine: "rpi4-8g" }).coherent.direct;
    expect(r.optimalGfpMask(dev()).gfp).toBe(__GFP_DMA32);
    expect(r.optimalGfpMask(dev({ coherentDmaMask: dmaBitMask(30) })).gfp).toBe(__GFP_DMA);
  });
});

describe("dma_alloc_attrs → dma_direct_alloc", () => {
  it("gives a zeroed, naturally aligned buffer the coherent mask reaches, and takes it back", () => {
    const b = buildMachine({ machine: "qemu-virt-16g" });
    const c = b.coherent;
    const d = b.machine.devices[0]!.dev;
    const buf = c.dmaAllocAttrs(d, 12288)!;
    expect(buf).not.toBeNull();
    expect(buf.phys % 16384).toBe(0);
    expect(buf.dma).toBe(buf.phys);
    expect(buf.dma + 12288 - 1).toBeLessThanOrEqual(0xffff_ffff);
    expect(c.direct.pages.usedPages).toBe(4);
    b.machine.memory.fill(buf.phys, 12288, 0xaa);
    c.dmaFreeAttrs(d, 12288, buf.phys, buf.dma);
    // the next buffer reuses the block, zeroed again
    const again = c.dmaAllocAttrs(d, 12288)!;
    expect(again.phys).toBe(buf.phys);
    expect(b.machine.memory.read(again.phys, 12288).every((x) => x === 0)).toBe(true);
    c.dmaFreeAttrs(d, 12288, again.phys, again.dma);
    expect(c.direct.pages.usedPages).toBe(0);
    expect(c.direct.pages.check()).toEqual([]);
  });

  it("DMA_ATTR_NO_KERNEL_MAPPING: the pages come back as they are (no memset)", () => {
    const b = buildMachine({ machine: "qemu-virt-2g" });
    const c = b.coherent;
    const d = b.machine.devices[0]!.dev;
    const x = c.dmaAllocAttrs(d, 4096)!;
    b.machine.memory.fill(x.phys, 4096, 0x5a);
    c.dmaFreeAttrs(d, 4096, x.phys, x.dma);
    const y = c.dmaAllocAttrs(d, 4096, GFP_KERNEL, DMA_ATTR_NO_KERNEL_MAPPING)!;
    expect(y.phys).toBe(x.phys);
    expect(b.machine.memory.read(y.phys, 4096).every((v) => v === 0x5a)).toBe(true);
    c.dmaFreeAttrs(d, 4096, y.phys, y.dma, DMA_ATTR_NO_KERNEL_MAPPING);
  });

  it("__dma_direct_alloc_pages retries a lower zone when the block is not addressable", () => {
    // a 33-bit device: no zone flag first (ZONE_NORMAL, top of 17 GiB), then GFP_DMA32, then GFP_DMA
    const b = buildMachine({ machine: "qemu-virt-16g" });
    const d = dev({ coherentDmaMask: dmaBitMask(33) });
    const buf = b.coherent.dmaAllocAttrs(d, 4 * MiB)!;
    expect(buf.dma + 4 * MiB - 1).toBeLessThanOrEqual(2 ** 33 - 1);
    const st = b.coherent.direct.pages.stats();
    expect(st.find((z) => z.name === "Normal")!.used).toBe(0);
    expect(b.coherent.direct.pages.usedPages).toBe(1024);
  });

  it("an offset dma-ranges: the DMA address is the bus view of the buffer", () => {
    const b = buildMachine({ machine: "rpi4-8g" });
    const d = b.machine.devices[0]!.dev;
    const buf = b.coherent.dmaAllocAttrs(d, 8192)!;
    expect(buf.dma).toBe(d.physToDma(buf.phys));
    expect(buf.dma - buf.phys).toBe(0xc000_0000);
    // ZONE_DMA (30 bits) is where a 32-bit coherent mask through that window lands
    expect(buf.phys + 8192).toBeLessThanOrEqual(2 ** 30);
  });

  it("a non-coherent device (arm64 DMA_DIRECT_REMAP): the same pages and DMA address, behind an uncached remap", () => {
    const b = buildMachine({ machine: "rpi4-8g" });
    const md = b.machine.devices.find((m) => !m.dev.coherent)!;
    const buf = b.coherent.dmaAllocAttrs(md.dev, 4096)!;
    expect(buf.dma).toBe(md.dev.physToDma(buf.phys));
    expect(b.coherent.direct.remaps).toBe(1);
    b.coherent.dmaFreeAttrs(md.dev, 4096, buf.phys, buf.dma);
    expect(b.coherent.direct.pages.usedPages).toBe(0);
  });

  it("zone exhausted: NULL, the kernel's page allocation failure, nothing leaked", () => {
    const b = buildMachine({ machine: "qemu-virt-2g" });
    const c = b.coherent;
    const d = b.machine.devices[0]!.dev;
    const got = [];
    for (;;) {
      // no memset: the test is about the allocator, not about touching 2 GiB
      const x = c.dmaAllocAttrs(d, 4 * MiB, GFP_KERNEL, DMA_ATTR_NO_KERNEL_MAPPING);
      if (x === null) break;
      got.push(x);
    }
    expect(got.length).toBeGreaterThan(400);
    expect(b.machine.log.lines.some((l) => /page allocation failure: order:10, mode:0xcc1\(GFP_KERNEL\|GFP_DMA\)/.test(l))).toBe(true);
    expect(c.stats.failed).toBe(1);
    for (const x of got) c.dmaFreeAttrs(d, 4 * MiB, x.phys, x.dma, DMA_ATTR_NO_KERNEL_MAPPING);
    expect(b.machine.memory.allocatedBytes).toBeLessThan(64 * MiB);
    expect(c.stats.live).toBe(0);
    expect(c.direct.pages.usedPages).toBe(0);
    expect(c.direct.pages.check()).toEqual([]);
  });

  it("a free that names no live buffer, or the wrong size or address, is refused with nothing changed", () => {
    const b = buildMachine({ machine: "qemu-virt-2g" });
    const c = b.coherent;
    const d = b.machine.devices[0]!.dev;
    const x = c.dmaAllocAttrs(d, 4096)!;
    expect(() => c.dmaFreeAttrs(d, 4096, x.phys, x.dma + 4096)).toThrow(InvalidArgumentError);
    expect(() => c.dmaFreeAttrs(d, 8192, x.phys, x.dma)).toThrow(/has size 4096, not 8192/);
    expect(() => c.dmaFreeAttrs(d, 4096, x.phys + 4096, x.dma)).toThrow(/is at/);
    expect(() => c.dmaAllocAttrs(d, 0)).toThrow(/size 0/);
    expect(c.direct.pages.usedPages).toBe(1);
    c.dmaFreeAttrs(d, 4096, x.phys, x.dma);
  });
});

describe("restricted DMA pool: swiotlb_alloc / swiotlb_free (6.x)", () => {
  it("a device whose dma_io_tlb_mem is a restricted pool allocates from it, page aligned", () => {
    const b = buildMachine({ machine: "fixtures/dt/restricted-dma.dtb" });
    const md = b.machine.devices.find((m) => m.dev.ioTlbMemName !== undefined)!;
    const mem = b.machine.swiotlb.memFor(md.dev)!;
    expect(mem.forAlloc).toBe(true);
    const c = b.coherent;
    const x = c.dmaAllocAttrs(md.dev, 8192)!;
    expect(x.phys).toBeGreaterThanOrEqual(mem.start);
    expect(x.phys + 8192).toBeLessThanOrEqual(mem.end);
    expect(x.phys % 8192).toBe(0);
    expect(mem.used).toBe(4);
    expect(c.direct.pages.usedPages).toBe(0);
    c.dmaFreeAttrs(md.dev, 8192, x.phys, x.dma);
    expect(mem.used).toBe(0);
  });
});

describe("DMA-API debugging of coherent buffers (debug_dma_alloc_coherent / debug_dma_free_coherent)", () => {
  it("tracks a coherent buffer as a coherent entry; misuse at free is reported in the kernel's words; a leak is pending at unbind", () => {
    const b = buildMachine({ machine: "qemu-virt-2g", dmaDebug: true });
    const c = b.coherent;
    const md = b.machine.devices[0]!;
    const dbg = b.machine.api.debug!;
    const buf = c.dmaAllocAttrs(md.dev, 8192)!;
    expect(dbg.entryCount(md.dev)).toBe(1);
    // kernel/dma/debug.c check_unmap: "[cpu alloc address=0x%pa]" — %pa carries its own 0x
    expect(() => c.dmaFreeAttrs(md.dev, 8192, buf.phys + 4096, buf.dma)).toThrow(InvalidArgumentError);
    const r1 = dbg.summary().reports.at(-1)!;
    expect(r1.kind).toBe("free-different-cpu-address");
    expect(r1.message).toContain(`[cpu alloc address=0x0x${buf.phys.toString(16).padStart(16, "0")}] [cpu free address=0x0x${(buf.phys + 4096).toString(16).padStart(16, "0")}]`);
    // the kernel dropped its entry at that free; a second buffer, never freed, is reported at unbind
    const leak = c.dmaAllocAttrs(md.dev, 4096)!;
    expect(leak).not.toBeNull();
    dbg.releaseDevices([md.dev]);
    const pending = dbg.summary().reports.filter((r) => r.kind === "pending-at-unbind");
    expect(pending).toHaveLength(1);
    // show_num_errors is 1: only the first report was printed, every one is kept
    expect(pending[0]!.printed).toBe(false);
    expect(pending[0]!.message).toMatch(/One of leaked entries details: .*\[mapped as coherent\]/);
  });
  it("freeing a streaming mapping with dma_free_coherent is the wrong function", () => {
    const b = buildMachine({ machine: "qemu-virt-2g", dmaDebug: true });
    const md = b.machine.devices[0]!;
    const dbg = b.machine.api.debug!;
    dbg.mapPage(md.dev, 0x4010_0000, 4096, 1, 0x4010_0000);
    dbg.mappingError(md.dev, 0x4010_0000);
    dbg.freeCoherent(md.dev, 4096, 0x4010_0000, 0x4010_0000);
    expect(dbg.summary().reports.map((r) => r.kind)).toEqual(["free-wrong-function", "free-different-direction"]);
    expect(dbg.summary().reports[0]!.message).toContain("[mapped as single] [unmapped as coherent]");
  });
});
