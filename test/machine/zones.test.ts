import { describe, expect, it } from "vitest";
import { resolveMachine, parseMachine } from "../../src/machine/preset.js";
import { arm64Zones, maxZonePhys, requiredMask, PHYS_ADDR_MAX } from "../../src/machine/zones.js";

// Hand-computed from spec 7.6 (max_zone_phys, zone_dma_bits = min3(32, dt, acpi)).
const expected: Record<string, { bits: number; limit: bigint; dma32: bigint; maxPfn: number; above: boolean }> = {
  // RAM 0x4000_0000 + 2 GiB = end 0xc000_0000: everything fits under 32 bits
  "qemu-virt-2g": { bits: 32, limit: 0xc000_0000n, dma32: 0xc000_0000n, maxPfn: 0xc0000, above: false },
  // end 0x2_4000_0000: ZONE_DMA stops at 4 GiB, RAM goes beyond
  "qemu-virt-8g": { bits: 32, limit: 0x1_0000_0000n, dma32: 0x1_0000_0000n, maxPfn: 0x240000, above: true },
  "qemu-virt-16g": { bits: 32, limit: 0x1_0000_0000n, dma32: 0x1_0000_0000n, maxPfn: 0x440000, above: true },
  // dma-ranges reach CPU 0x3fff_ffff: 30 bits, but RAM ends at 0x3b40_0000 first
  "rpi4-1g": { bits: 30, limit: 0x3b40_0000n, dma32: 0x3b40_0000n, maxPfn: 0x3b400, above: false },
  // 30-bit ZONE_DMA = first GiB; RAM up to 8 GiB
  "rpi4-8g": { bits: 30, limit: 0x4000_0000n, dma32: 0x1_0000_0000n, maxPfn: 0x200000, above: true },
  // DRAM starts above 4 GiB: the zones widen to all of RAM (end 0x90_0000_0000)
  "server-64g": { bits: 32, limit: 0x90_0000_0000n, dma32: 0x90_0000_0000n, maxPfn: 0x900_0000, above: false },
};

describe("arm64 zones per preset", () => {
  for (const [name, e] of Object.entries(expected)) {
    it(`${name}: zone_dma_bits ${e.bits}, arm64_dma_phys_limit 0x${e.limit.toString(16)}`, () => {
      const z = arm64Zones(resolveMachine(name));
      expect(z.zoneDmaBits).toBe(e.bits);
      expect(z.dmaPhysLimit).toBe(e.limit);
      expect(z.dma32PhysLimit).toBe(e.dma32);
      expect(z.maxPfn).toBe(e.maxPfn);
      expect(z.ramAboveDmaLimit).toBe(e.above);
      expect(z.lowAddressLimit).toBe(Number(e.limit) - 1);
    });
  }
});

describe("max_zone_phys special cases", () => {
  it("DRAM above the zone mask but below 4 GiB caps the zone at 32 bits", () => {
    // 30-bit zone, RAM at 0x8000_0000..0x1_8000_0000: mask becomes U32_MAX
    expect(maxZonePhys(30, { start: 0x8000_0000n, end: 0x1_8000_0000n })).toBe(0x1_0000_0000n);
    // ...and never past the end of DRAM
    expect(maxZonePhys(30, { start: 0x8000_0000n, end: 0xa000_0000n })).toBe(0xa000_0000n);
  });
  it("DRAM starting above 4 GiB - 1 spans all RAM, whatever the bits", () => {
    expect(maxZonePhys(30, { start: 0x1_0000_0000n, end: 0x3_0000_0000n })).toBe(0x3_0000_0000n);
    // exactly 4 GiB - 1 is not "above U32_MAX"
    expect(maxZonePhys(32, { start: 0xffff_f000n, end: 0x3_0000_0000n })).toBe(0x1_0000_0000n);
  });
  it("plain case: DMA_BIT_MASK(bits) + 1", () => {
    expect(maxZonePhys(30, { start: 0n, end: 0x2_0000_0000n })).toBe(0x4000_0000n);
    expect(maxZonePhys(64, { start: 0n, end: 0x2_0000_0000n })).toBe(0x2_0000_0000n);
  });
  it("an ACPI IORT limit lowers zone_dma_bits below the DT's", () => {
    const m = parseMachine(
      { name: "t", ram: [{ base: "0x4000_0000", size: "8GiB" }], dmaZone: { acpiMaxCpuAddress: "0xff_ffff" } },
      "test",
    );
    const z = arm64Zones(m);
    expect(z.acpiZoneDmaBits).toBe(24);
    expect(z.dtZoneDmaBits).toBe(64);
    expect(z.zoneDmaBits).toBe(24);
    // RAM starts at 0x4000_0000 > 0xff_ffff: capped at 32 bits
    expect(z.dmaPhysLimit).toBe(0x1_0000_0000n);
  });
  it("no restriction anywhere: fls64(PHYS_ADDR_MAX) = 64, zone_dma_bits = 32", () => {
    const z = arm64Zones(parseMachine({ name: "t", ram: [{ base: 0, size: "1GiB" }] }, "test"));
    expect(z.dtZoneDmaBits).toBe(64);
    expect(z.zoneDmaBits).toBe(32);
    expect(z.dmaPhysLimit).toBe(0x4000_0000n);
    expect(PHYS_ADDR_MAX).toBe(0xffff_ffff_ffff_ffffn);
  });
});

describe("dma_direct_get_required_mask", () => {
  it("4 GiB at 0x4000_0000 needs a 33-bit mask (spec 6.5 example)", () => {
    const z = arm64Zones(parseMachine({ name: "t", ram: [{ base: "0x4000_0000", size: "4GiB" }] }, "test"));
    expect(requiredMask(z)).toBe(0x1_ffff_ffffn);
  });
  it("2 GiB at 0x4000_0000 fits in 32 bits", () => {
    const z = arm64Zones(resolveMachine("qemu-virt-2g"));
    expect(requiredMask(z)).toBe(0xffff_ffffn);
  });
});
