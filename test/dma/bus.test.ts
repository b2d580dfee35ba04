import { describe, expect, it } from "vitest";
import { BusFault, DeviceBus, type BusTranslation } from "../../src/dma/bus.js";
import { Device } from "../../src/dma/device.js";
import { FaultError } from "../../src/errors.js";
import { dmaBitMask } from "../../src/kernel/dma-mapping.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { firstDiff, pattern } from "./helpers.js";

const mem2 = () =>
  new PhysicalMemory({
    banks: [
      { base: 0x4000_0000, size: 0x4000_0000 },
      { base: 0x8000_0000, size: 0x1000_0000 }, // adjacent second bank
      { base: 0x1_0000_0000, size: 0x1000_0000 },
    ],
    reserved: [{ base: 0x4800_0000, size: 0x10_0000, name: "fw", noMap: true }],
  });
const dev = (o: Partial<ConstructorParameters<typeof Device>[0]> = {}) => new Device({ driver: "drv", device: "d0", dmaMask: dmaBitMask(64), ...o });

function snapshot(mem: PhysicalMemory, addr: number, len: number): Uint8Array {
  return mem.read(addr, len);
}

describe("DeviceBus: reads and writes by DMA address", () => {
  it("identity: a device write lands at the same physical address, and reads back", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem);
    const data = pattern(10000, 1);
    bus.write(0x4000_1003, data);
    expect(firstDiff(mem.read(0x4000_1003, data.length), data)).toBe(-1);
    expect(firstDiff(bus.read(0x4000_1003, data.length), data)).toBe(-1);
  });

  it("scalar accessors are little-endian and match PhysicalMemory", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem);
    bus.write32(0x4000_0000, 0xdeadbeef);
    expect(mem.read32(0x4000_0000)).toBe(0xdeadbeef);
    expect(bus.read8(0x4000_0000)).toBe(0xef);
    expect(bus.read16(0x4000_0002)).toBe(0xdead);
    bus.write64(0x4000_0010, 0x0123_4567_89ab_cdefn);
    expect(bus.read64(0x4000_0010)).toBe(0x0123_4567_89ab_cdefn);
    bus.write16(0x4000_0020, 0xbeef);
    bus.write8(0x4000_0022, 0x7f);
    expect(bus.read32(0x4000_0020)).toBe(0x007fbeef);
  });

  it("the dma_range_map translates (dma 0 = phys 0x4000_0000)", () => {
    const mem = mem2();
    const d = dev({ dmaRangeMap: [{ cpuStart: 0x4000_0000, dmaStart: 0, size: 0x5000_0000 }] });
    const bus = new DeviceBus(d, mem);
    bus.write32(0x10, 0x11223344);
    expect(mem.read32(0x4000_0010)).toBe(0x11223344);
    expect(bus.translate(0x10, 4)).toBe(0x4000_0010);
  });

  it("a range across two adjacent banks is split, not refused", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem);
    const data = pattern(8192, 2);
    bus.write(0x8000_0000 - 4096, data);
    expect(firstDiff(bus.read(0x8000_0000 - 4096, 8192), data)).toBe(-1);
    bus.write32(0x8000_0000 - 2, 0xa1b2c3d4);
    expect(bus.read32(0x8000_0000 - 2)).toBe(0xa1b2c3d4);
    expect(mem.read16(0x8000_0000)).toBe(0xa1b2);
  });

  it("fill and copy by DMA address", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem);
    bus.fill(0x4000_0000, 100, 0x5a);
    expect(mem.read(0x4000_0000, 100).every((x) => x === 0x5a)).toBe(true);
    const data = pattern(3000, 3);
    bus.write(0x4100_0000, data);
    bus.copy(0x1_0000_0000, 0x4100_0000, 3000);
    expect(firstDiff(mem.read(0x1_0000_0000, 3000), data)).toBe(-1);
  });
});

describe("DeviceBus: faults name the DMA address and length, and change nothing", () => {
  it("beyond the device's mask is a fault even though RAM is there", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev({ dmaMask: dmaBitMask(32) }), mem);
    expect(() => bus.read32(0x1_0000_0000)).toThrow(BusFault);
    expect(() => bus.read(0xffff_fff0, 32)).toThrow(/read of 32 bytes at DMA address 0xfffffff0: beyond the device's DMA limit 0xffffffff/);
    const bus31 = new DeviceBus(dev({ dmaMask: dmaBitMask(31) }), mem);
    const before = snapshot(mem, 0x7fff_ff00, 0x100);
    expect(() => bus31.write(0x7fff_ff00, new Uint8Array(0x101).fill(1))).toThrow(BusFault);
    expect(firstDiff(snapshot(mem, 0x7fff_ff00, 0x100), before)).toBe(-1);
    bus31.write(0x7fff_ff00, new Uint8Array(0x100).fill(1));
    expect(mem.read8(0x7fff_ffff)).toBe(1);
  });

  it("the bus_dma_limit counts too (min_not_zero)", () => {
    const bus = new DeviceBus(dev({ busDmaLimit: 0x7fff_ffffn }), mem2());
    expect(() => bus.read8(0x8000_0000)).toThrow(/DMA limit 0x7fffffff/);
  });

  it("not RAM (a hole, a no-map region) is a fault; a faulting write writes nothing", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem);
    expect(() => bus.read8(0x1000)).toThrow(BusFault);
    try {
      bus.read(0x9000_0000 - 16, 64); // crosses the end of the second bank into a hole
      throw new Error("no fault");
    } catch (e) {
      expect(e).toBeInstanceOf(FaultError);
      const f = e as BusFault;
      expect(f.dma).toBe(0x9000_0000 - 16);
      expect(f.length).toBe(64);
      expect(f.kind).toBe("not-ram");
      expect(f.exitCode).toBe(3);
    }
    const before = snapshot(mem, 0x8fff_f000, 0x1000);
    expect(() => bus.write(0x8fff_f000, new Uint8Array(0x1001).fill(7))).toThrow(BusFault);
    expect(firstDiff(snapshot(mem, 0x8fff_f000, 0x1000), before)).toBe(-1);
    expect(() => bus.read32(0x4800_0000)).toThrow(BusFault);
    const nm = snapshot(mem, 0x47ff_ff00, 0x100);
    expect(() => bus.write(0x47ff_ff00, new Uint8Array(0x200).fill(9))).toThrow(/not RAM/);
    expect(firstDiff(snapshot(mem, 0x47ff_ff00, 0x100), nm)).toBe(-1);
    expect(() => bus.fill(0x8fff_ffff, 2, 1)).toThrow(BusFault);
    expect(mem.read8(0x8fff_ffff)).toBe(0);
  });

  it("an address the dma_range_map does not cover is a translation fault", () => {
    const d = dev({ dmaRangeMap: [{ cpuStart: 0x4000_0000, dmaStart: 0, size: 0x1000_0000 }] });
    const bus = new DeviceBus(d, mem2());
    expect(() => bus.read8(0x1000_0000)).toThrow(/dma-ranges translates nothing at 0x10000000/);
    expect(() => bus.read(0x0fff_fff0, 32)).toThrow(BusFault);
    expect(bus.canAccess(0x0fff_fff0, 16)).toBe(true);
    expect(bus.canAccess(0x0fff_fff0, 17)).toBe(false);
  });

  it("negative or non-integer addresses are faults, not silent wraps", () => {
    const bus = new DeviceBus(dev(), mem2());
    expect(() => bus.read8(-1)).toThrow(BusFault);
    expect(() => bus.read8(1.5)).toThrow(BusFault);
  });
});

describe("DeviceBus: a pluggable translation (a Xen stage-2 walk)", () => {
  // DMA page n maps to a scattered machine page; page 3 is unmapped
  const frames = [0x1_0000_5000, 0x4000_2000, 0x1_0000_1000, -1, 0x8000_0000];
  const stage2: BusTranslation = {
    name: "stage-2",
    toPhys: (dma) => {
      const n = Math.floor(dma / 4096);
      const f = frames[n];
      return f === undefined || f < 0 ? -1 : f + (dma % 4096);
    },
    linearRun: (dma) => 4096 - (dma % 4096),
  };

  it("a range over non-contiguous frames is gathered page by page", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem, stage2);
    const data = pattern(3 * 4096 - 100, 4);
    bus.write(100, data);
    expect(firstDiff(mem.read(0x1_0000_5000 + 100, 4096 - 100), data.subarray(0, 3996))).toBe(-1);
    expect(firstDiff(mem.read(0x4000_2000, 4096), data.subarray(3996, 3996 + 4096))).toBe(-1);
    expect(firstDiff(mem.read(0x1_0000_1000, 4096), data.subarray(3996 + 4096))).toBe(-1);
    expect(firstDiff(bus.read(100, data.length), data)).toBe(-1);
    bus.write32(4094, 0xcafef00d); // a scalar straddling two frames
    expect(bus.read32(4094)).toBe(0xcafef00d);
    expect(mem.read16(0x1_0000_5000 + 4094)).toBe(0xf00d);
    expect(mem.read16(0x4000_2000)).toBe(0xcafe);
    expect(() => bus.translate(4000, 200)).toThrow(/not physically contiguous/);
  });

  it("an unmapped frame faults the whole access before any byte is written", () => {
    const mem = mem2();
    const bus = new DeviceBus(dev(), mem, stage2);
    const before = mem.read(0x1_0000_1000, 4096);
    expect(() => bus.write(2 * 4096, new Uint8Array(4097).fill(3))).toThrow(/stage-2 translates nothing at 0x3000/);
    expect(firstDiff(mem.read(0x1_0000_1000, 4096), before)).toBe(-1);
    bus.setTranslation(null);
    expect(bus.translation.name).toBe("dma-ranges");
  });
});
