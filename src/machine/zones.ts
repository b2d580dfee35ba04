// arm64 memory zones as the kernel sizes them at boot (arch/arm64/mm/init.c, spec 7.6):
// zone_dma_bits from firmware, max_zone_phys() with its two special cases, the resulting
// arm64_dma_phys_limit, the ZONE_DMA32 end and max_pfn. Whether a board needs a swiotlb
// pool follows from these rules, never from a per-board table.
//
// The same rules hold for every profile dmalab models: max_zone_phys() took this form in
// v5.11 ("ignore any DMA offsets") and kept it until the v6.12 zone_dma_limit rework, which
// is newer than the "6.x" (= v6.11) profile. CONFIG_ZONE_DMA and CONFIG_ZONE_DMA32 are both
// set, as in arm64 defconfig.

import type { KernelProfile } from "../swiotlb/profile.js";
import type { MachineDesc } from "./preset.js";
import { fls64 } from "./units.js";

export const U32_MAX = 0xffff_ffffn;
export const PHYS_ADDR_MAX = (1n << 64n) - 1n;

function dmaBitMask(bits: number): bigint {
  return bits >= 64 ? PHYS_ADDR_MAX : (1n << BigInt(bits)) - 1n;
}

export interface DramExtent {
  /** memblock_start_of_DRAM() */
  start: bigint;
  /** memblock_end_of_DRAM(): one past the last byte */
  end: bigint;
}

/**
 * max_zone_phys(zone_bits): the first physical address past a zone reachable with
 * zone_bits of address.
 *  - DRAM starting above 4 GiB - 1: the zone spans all of RAM (PHYS_ADDR_MAX mask);
 *  - DRAM starting above the zone mask (but below 4 GiB): the zone is capped at 32 bits;
 *  - otherwise DMA_BIT_MASK(zone_bits), never past the end of DRAM.
 */
export function maxZonePhys(zoneBits: number, dram: DramExtent): bigint {
  let mask = dmaBitMask(zoneBits);
  if (dram.start > U32_MAX) mask = PHYS_ADDR_MAX;
  else if (dram.start > mask) mask = U32_MAX;
  const last = dram.end - 1n;
  return (mask < last ? mask : last) + 1n;
}

/**
 * of_dma_get_max_cpu_address(NULL): the smallest, over the DT nodes with dma-ranges, of the
 * last CPU address a node's ranges reach; PHYS_ADDR_MAX when no node restricts DMA. Each
 * device's dma-ranges stand for its parent bus node.
 */
export function dtMaxCpuAddress(m: MachineDesc): bigint {
  if (m.dmaZone.dtMaxCpuAddress !== undefined) return m.dmaZone.dtMaxCpuAddress;
  let max = PHYS_ADDR_MAX;
  for (const d of m.devices) {
    if (d.dmaRanges.length === 0) continue;
    let end = 0n;
    for (const r of d.dmaRanges) {
      const e = BigInt(r.cpuStart) + BigInt(r.size) - 1n;
      if (e > end) end = e;
    }
    if (end < max) max = end;
  }
  return max;
}

export interface Arm64Zones {
  pageShift: number;
  dram: DramExtent;
  /** fls64 of the DT / ACPI IORT limits, and zone_dma_bits = min3(32, dt, acpi) */
  dtZoneDmaBits: number;
  acpiZoneDmaBits: number;
  zoneDmaBits: number;
  /** arm64_dma_phys_limit (end of ZONE_DMA); exact */
  dmaPhysLimit: bigint;
  /** end of ZONE_DMA32 = max_zone_phys(32) */
  dma32PhysLimit: bigint;
  /** PFN_DOWN(memblock_end_of_DRAM()) */
  maxPfn: number;
  /** PFN_UP(memblock_start_of_DRAM()) */
  minPfn: number;
  /** max_pfn > PFN_DOWN(arm64_dma_phys_limit): RAM exists that ZONE_DMA devices cannot reach */
  ramAboveDmaLimit: boolean;
  /**
   * ARCH_LOW_ADDRESS_LIMIT = arm64_dma_phys_limit - 1: the default pool is allocated
   * from memblock below this (inclusive), like memblock_alloc_low().
   */
  lowAddressLimit: number;
}

/** zone_sizes_init() + bootmem_init() of arch/arm64/mm/init.c. */
export function arm64Zones(m: MachineDesc, _profile?: KernelProfile): Arm64Zones {
  const pageShift = Math.log2(m.granule);
  let start = BigInt(m.ram[0]!.base);
  let end = 0n;
  for (const b of m.ram) {
    if (BigInt(b.base) < start) start = BigInt(b.base);
    const e = BigInt(b.base) + BigInt(b.size);
    if (e > end) end = e;
  }
  const dram = { start, end };
  const dtZoneDmaBits = fls64(dtMaxCpuAddress(m));
  const acpiZoneDmaBits = fls64(m.dmaZone.acpiMaxCpuAddress ?? PHYS_ADDR_MAX);
  const zoneDmaBits = Math.min(32, dtZoneDmaBits, acpiZoneDmaBits);
  const dma32PhysLimit = maxZonePhys(32, dram);
  let dmaPhysLimit = maxZonePhys(zoneDmaBits, dram);
  // ZONE_DMA32: "if the limit is still 0" — only reachable without ZONE_DMA, kept for fidelity
  if (dmaPhysLimit === 0n) dmaPhysLimit = dma32PhysLimit;
  const shift = BigInt(pageShift);
  const maxPfn = Number(end >> shift);
  const minPfn = Number((start + (1n << shift) - 1n) >> shift);
  return {
    pageShift,
    dram,
    dtZoneDmaBits,
    acpiZoneDmaBits,
    zoneDmaBits,
    dmaPhysLimit,
    dma32PhysLimit,
    maxPfn,
    minPfn,
    ramAboveDmaLimit: BigInt(maxPfn) > dmaPhysLimit >> shift,
    lowAddressLimit: Number(dmaPhysLimit - 1n),
  };
}

/**
 * dma_direct_get_required_mask(): the smallest all-ones mask covering the DMA address of
 * the last page of RAM, (1 << (fls64(top) - 1)) * 2 - 1 (spec 6.5). `physToDma` is the
 * device's translation; identity when it has no dma-ranges.
 */
export function requiredMask(zones: Arm64Zones, physToDma: (phys: bigint) => bigint = (p) => p): bigint {
  const top = physToDma(BigInt(zones.maxPfn - 1) << BigInt(zones.pageShift));
  if (top <= 0n) return 0n;
  return (1n << BigInt(fls64(top) - 1)) * 2n - 1n;
}
