import { describe, expect, it } from "vitest";
import { Device } from "../../src/dma/device.js";
import { padHex } from "../../src/kernel/printk.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { DMA_MAPPING_ERROR, U64_MAX, dmaBitMask } from "../../src/kernel/dma-mapping.js";

const dev = (o: Partial<ConstructorParameters<typeof Device>[0]> = {}) => new Device({ driver: "drv", device: "dev0", ...o });

describe("Device: names and defaults", () => {
  it("prints as '<driver> <device>' like dev_warn", () => {
    expect(dev().name).toBe("drv dev0");
  });
  it("defaults: 32-bit dma_mask and coherent mask, no bus limit, ULONG_MAX boundary, 64 KiB segments", () => {
    const d = dev();
    expect(d.dmaMask).toBe(dmaBitMask(32));
    expect(d.coherentDmaMask).toBe(dmaBitMask(32));
    expect(d.busDmaLimit).toBe(0n);
    expect(d.segBoundary).toBe(U64_MAX);
    expect(d.segBoundaryMask).toBeGreaterThanOrEqual(2 ** 53 - 1);
    expect(d.maxSegSize).toBe(0x10000);
    expect(d.dmaOps).toBeNull();
  });
  it("dma_set_seg_boundary: the numeric mask the map path reads follows the exact one", () => {
    const d = dev({ segBoundaryMask: 0xffffn });
    expect(d.segBoundaryMask).toBe(0xffff);
    d.setSegBoundary(0xffff_ffffn);
    expect(d.segBoundary).toBe(0xffff_ffffn);
    expect(d.segBoundaryMask).toBe(0xffff_ffff);
    d.setSegBoundary(U64_MAX);
    expect(d.segBoundaryMask).toBe(2 ** 64);
  });
  it("dma_get_mask falls back to 32 bits for a zero or NULL mask", () => {
    expect(dev({ dmaMask: 0n }).dmaGetMask()).toBe(dmaBitMask(32));
    expect(dev({ dmaMask: null }).dmaGetMask()).toBe(dmaBitMask(32));
    expect(dev({ dmaMask: dmaBitMask(40) }).dmaGetMask()).toBe(dmaBitMask(40));
  });
  it("refuses bad values with a typed error naming them", () => {
    expect(() => dev({ dmaMask: -1n })).toThrow(InvalidArgumentError);
    expect(() => dev({ dmaMask: 1n << 64n })).toThrow(/dma_mask 18446744073709551616/);
    expect(() => dev({ minAlignMask: -1 })).toThrow(/min_align_mask -1/);
    expect(() => dev({ maxSegSize: 0 })).toThrow(/max_segment_size 0/);
    expect(() => dev({ dmaRangeMap: [{ cpuStart: 0, dmaStart: 0, size: 0 }] })).toThrow(/size is 0/);
    expect(() => new Device({ driver: "", device: "x" })).toThrow(InvalidArgumentError);
  });
});

describe("Device: dma_range_map translation (spec 6.1)", () => {
  const d = dev({
    dmaRangeMap: [
      { cpuStart: 0x4000_0000, dmaStart: 0x0, size: 0x4000_0000 },
      { cpuStart: 0x1_0000_0000, dmaStart: 0x8000_0000, size: 0x1000_0000 },
    ],
  });
  it("without a map phys and dma are the same", () => {
    expect(dev().physToDma(0x1234_5678)).toBe(0x1234_5678);
    expect(dev().dmaToPhys(0x1234_5678)).toBe(0x1234_5678);
  });
  it("subtracts the region offset and reverses it", () => {
    expect(d.physToDma(0x4000_0000)).toBe(0);
    expect(d.physToDma(0x7fff_ffff)).toBe(0x3fff_ffff);
    expect(d.physToDma(0x1_0000_1000)).toBe(0x8000_1000);
    expect(d.dmaToPhys(0x8000_1000)).toBe(0x1_0000_1000);
    expect(d.dmaToPhys(0x10)).toBe(0x4000_0010);
  });
  it("an address in no region is DMA_MAPPING_ERROR both ways", () => {
    expect(d.physToDma(0x3fff_ffff)).toBe(DMA_MAPPING_ERROR);
    expect(d.physToDma(0x8000_0000)).toBe(DMA_MAPPING_ERROR);
    expect(d.dmaToPhys(0x4000_0000)).toBe(DMA_MAPPING_ERROR);
    expect(d.dmaToPhys(0x9000_0000)).toBe(DMA_MAPPING_ERROR);
  });
  it("the first matching region wins", () => {
    const o = dev({
      dmaRangeMap: [
        { cpuStart: 0x1000, dmaStart: 0x10_0000, size: 0x1000 },
        { cpuStart: 0x1000, dmaStart: 0x20_0000, size: 0x1000 },
      ],
    });
    expect(o.physToDma(0x1800)).toBe(0x10_0800);
  });
  it("dmaLinearRun is the rest of the region", () => {
    expect(d.dmaLinearRun(0x3fff_f000)).toBe(0x1000);
    expect(d.dmaLinearRun(0x5000_0000)).toBe(0);
    expect(dev().dmaLinearRun(5)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("Device: dma_capable", () => {
  it("end = addr + size - 1 must not pass the mask", () => {
    const d = dev({ dmaMask: dmaBitMask(32) });
    expect(d.dmaCapable(0xffff_f000, 0x1000, true)).toBe(true);
    expect(d.dmaCapable(0xffff_f000, 0x1001, true)).toBe(false);
    expect(d.dmaCapable(0x1_0000_0000, 1, true)).toBe(false);
  });
  it("DMA_MAPPING_ERROR is never capable", () => {
    expect(dev({ dmaMask: U64_MAX }).dmaCapable(DMA_MAPPING_ERROR, 1, true)).toBe(false);
  });
  it("uses min_not_zero(mask, bus_dma_limit)", () => {
    const d = dev({ dmaMask: dmaBitMask(64), busDmaLimit: 0x3fff_ffffn });
    expect(d.dmaCapable(0x3fff_ffff, 1, true)).toBe(true);
    expect(d.dmaCapable(0x4000_0000, 1, true)).toBe(false);
    d.setBusDmaLimit(0n);
    expect(d.dmaCapable(0x4000_0000, 1, true)).toBe(true);
    const b = dev({ dmaMask: dmaBitMask(30), busDmaLimit: dmaBitMask(40) });
    expect(b.dmaCapable(0x4000_0000, 1, true)).toBe(false);
  });
  it("a size-0 access at 0 wraps to all ones (only an all-ones mask takes it)", () => {
    expect(dev({ dmaMask: dmaBitMask(32) }).dmaCapable(0, 0, true)).toBe(false);
    expect(dev({ dmaMask: U64_MAX }).dmaCapable(0, 0, true)).toBe(true);
  });
  it("changing the mask updates the hot-path limit", () => {
    const d = dev({ dmaMask: dmaBitMask(32) });
    expect(d.dmaCapable(0x1_0000_0000, 8, true)).toBe(false);
    d.setDmaMaskRaw(dmaBitMask(48));
    expect(d.dmaCapable(0x1_0000_0000, 8, true)).toBe(true);
    expect(d.dmaLimit).toBe(dmaBitMask(48));
  });
});

describe("formatting helpers", () => {
  it("%pad prints 0x and 16 digits; -1 is all ones", () => {
    expect(padHex(0x1234)).toBe("0x0000000000001234");
    expect(padHex(-1)).toBe("0xffffffffffffffff");
  });
});
