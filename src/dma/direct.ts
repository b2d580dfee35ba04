// dma-direct (kernel/dma/direct.{c,h}): the dma_map_ops of a device without an IOMMU. A mapping
// is the physical address seen through the device's dma_range_map, unless the device cannot
// reach it (dma_capable) or bouncing is forced — then it goes through swiotlb.
//
// The decision tree differs by era (spec linux-dma.md §6.3, §10), read from the profile:
//   5.13  (direct.h 2973073a): global swiotlb_force: FORCE always bounces; not capable bounces
//         unless NO_FORCE, which warns "DMA addr ... overflow" once and fails.
//   5.15+ (direct.h 07410559) / 6.x: per-mem force_bounce; not capable bounces iff
//         is_swiotlb_active(dev), else the same warning and failure.
// 6.5+ with CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC (arm64): a FROM_DEVICE/BIDIRECTIONAL buffer of a
// non-coherent device that may be a kmalloc() object smaller than a cache line takes the
// not-capable branch as well (dma_kmalloc_needs_bounce, kernel/kmalloc.ts).
// Unmap: up to v5.17 the caller's attrs go on to swiotlb_tbl_unmap_single after the for-cpu
// sync, so FROM_DEVICE/BIDIRECTIONAL data is copied back twice; 9e02977bfad0 ("dma-direct:
// avoid redundant memory sync for swiotlb", v5.18-rc3, in stable 5.17.4) adds SKIP_CPU_SYNC.
//
// Hot path (map/unmap/sync single): numbers only, no allocation.

import { InvalidArgumentError } from "../errors.js";
import type { EventSink, KernelLog } from "../events.js";
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_MAPPING_ERROR,
  U64_MAX,
  dmaBitMask,
  minNotZero,
  type DmaDirection,
} from "../kernel/dma-mapping.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { SwiotlbDevice } from "../swiotlb/device.js";
import type { KernelProfile } from "../swiotlb/profile.js";
import type { Device } from "./device.js";
import { llx, padHex } from "../kernel/printk.js";
import { SWIOTLB_FORCE, SWIOTLB_NO_FORCE } from "../kernel/swiotlb.js";
import { DMA_CACHE_ALIGNMENT, dmaKmallocNeedsBounce } from "../kernel/kmalloc.js";
import { SIZE_MAX_NUMBER, type DmaMapOps } from "./ops.js";
import type { ScatterlistEntry } from "./scatterlist.js";

/**
 * What dma-direct calls in swiotlb. The swiotlb/ `Swiotlb` object provides these; declaring
 * them here keeps dma/ coupled to the calls it makes, not to the pool's internals.
 */
export interface SwiotlbForDirect {
  /** 5.13's global `swiotlb_force` (SWIOTLB_NORMAL / _FORCE / _NO_FORCE) */
  readonly forceState: number;
  /** swiotlb_map(): bounce and translate; DMA_MAPPING_ERROR (-1) on failure */
  swiotlbMap(dev: SwiotlbDevice, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number;
  /** swiotlb_tbl_unmap_single() */
  tblUnmapSingle(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection, attrs: number): void;
  /** swiotlb_sync_single_for_cpu() */
  syncSingleForCpu(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void;
  /** swiotlb_sync_single_for_device() */
  syncSingleForDevice(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void;
  /** is_swiotlb_buffer(dev, paddr) */
  isSwiotlbBuffer(dev: SwiotlbDevice, phys: number): boolean;
  /** is_swiotlb_active(dev) (5.13: the default mem exists) */
  isActive(dev: SwiotlbDevice): boolean;
  /** is_swiotlb_force_bounce(dev): the device's mem has force_bounce (5.15+) */
  isForceBounce(dev: SwiotlbDevice): boolean;
  /** swiotlb_max_mapping_size(dev) */
  maxMappingSize(dev: SwiotlbDevice): number;
}

export interface DmaDirectOptions {
  memory: PhysicalMemory;
  /** null: a kernel without swiotlb — nothing can bounce */
  swiotlb: SwiotlbForDirect | null;
  profile: KernelProfile;
  log: KernelLog;
  events?: EventSink;
  /** max_pfn (one past the last RAM page frame); default: the top of RAM */
  maxPfn?: number;
  /** zone_dma_bits for dma_direct_supported (CONFIG_ZONE_DMA, arm64 default 32); 0 = no ZONE_DMA */
  zoneDmaBits?: number;
  /** CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC; default: the profile's (6.5+ arm64) */
  kmallocBounce?: boolean;
  /** kmalloc's minimum alignment (kernel/kmalloc.ts kmallocMinalign); default: not lowered */
  kmallocMinalign?: number;
}

/** Counters of what dma-direct decided, for reports (not kernel state). */
export interface DmaDirectStats {
  mapped: number;
  bounced: number;
  failed: number;
}

export class DmaDirect implements DmaMapOps {
  readonly name = "dma-direct";
  readonly memory: PhysicalMemory;
  swiotlb: SwiotlbForDirect | null;
  readonly profile: KernelProfile;
  readonly log: KernelLog;
  readonly events: EventSink | undefined;
  readonly maxPfn: number;
  readonly pageShift: number;
  readonly zoneDmaBits: number;
  readonly stats: DmaDirectStats = { mapped: 0, bounced: 0, failed: 0 };
  /** CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC (the boot may override the profile's choice) */
  kmallocBounce: boolean;
  /** __kmalloc_minalign() as kmem_cache_init left it (set by the boot once mem_init has run) */
  kmallocMinalign: number;

  constructor(opts: DmaDirectOptions) {
    this.memory = opts.memory;
    this.swiotlb = opts.swiotlb;
    this.profile = opts.profile;
    this.log = opts.log;
    this.events = opts.events;
    this.pageShift = Math.log2(opts.memory.granule);
    this.maxPfn = opts.maxPfn ?? Math.floor(opts.memory.ramEnd / opts.memory.granule);
    this.zoneDmaBits = opts.zoneDmaBits ?? 32;
    this.kmallocBounce = opts.kmallocBounce ?? (this.profile.memInitKmallocBounce && !this.profile.globalSwiotlbForce);
    this.kmallocMinalign = opts.kmallocMinalign ?? DMA_CACHE_ALIGNMENT;
    if (!Number.isSafeInteger(this.maxPfn) || this.maxPfn <= 0) throw new InvalidArgumentError(`max_pfn ${this.maxPfn}: must be a positive page frame number`);
    if (!Number.isInteger(this.zoneDmaBits) || this.zoneDmaBits < 0 || this.zoneDmaBits > 64)
      throw new InvalidArgumentError(`zone_dma_bits ${this.zoneDmaBits}: must be 0..64`);
  }

  // ---- map / unmap ---------------------------------------------------------------------------

  /** dma_direct_map_page(dev, page, offset, size, dir, attrs) with phys = page_to_phys + offset. */
  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number {
    const dma = dev.physToDma(phys);
    const sw = this.swiotlb;
    if (this.profile.globalSwiotlbForce) {
      // 5.13: the global swiotlb_force alone decides; a pool need not exist (5.13 panics in
      // swiotlb_tbl_map_single when it does not — swiotlb models that)
      const force = sw !== null ? sw.forceState : SWIOTLB_NO_FORCE;
      if (sw !== null && (force === SWIOTLB_FORCE || dev.forceBounce)) return this.bounce(sw, dev, phys, size, dir, attrs, cpu);
      if (!dev.dmaCapable(dma, size, true)) {
        if (sw !== null && force !== SWIOTLB_NO_FORCE) return this.bounce(sw, dev, phys, size, dir, attrs, cpu);
        return this.overflow(dev, dma, size);
      }
    } else {
      // 5.15+: per-mem force_bounce, and bounce only when the device's mem is active
      if (sw !== null && (dev.forceBounce || sw.isForceBounce(dev))) return this.bounce(sw, dev, phys, size, dir, attrs, cpu);
      if (!dev.dmaCapable(dma, size, true) || dmaKmallocNeedsBounce(this.kmallocBounce, dev.coherent, size, dir, this.kmallocMinalign)) {
        if (sw !== null && sw.isActive(dev)) return this.bounce(sw, dev, phys, size, dir, attrs, cpu);
        return this.overflow(dev, dma, size);
      }
    }
    // not coherent and no SKIP_CPU_SYNC: arch_sync_dma_for_device — a no-op in the emulator
    this.stats.mapped++;
    return dma;
  }

  private bounce(sw: SwiotlbForDirect, dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number {
    const dma = sw.swiotlbMap(dev, phys, size, dir, attrs, cpu);
    if (dma === DMA_MAPPING_ERROR) this.stats.failed++;
    else {
      this.stats.mapped++;
      this.stats.bounced++;
    }
    return dma;
  }

  /** dev_WARN_ONCE "DMA addr %pad+%zu overflow (mask %llx, bus limit %llx)." and ERROR */
  private overflow(dev: Device, dma: number, size: number): number {
    this.stats.failed++;
    this.log.printOnce(
      "dma-direct:overflow",
      `${dev.name}: DMA addr ${padHex(dma)}+${size} overflow (mask ${llx(dev.dmaMask)}, bus limit ${llx(dev.busDmaLimit)}).`,
    );
    return DMA_MAPPING_ERROR;
  }

  /** dma_direct_unmap_page */
  unmapPage(dev: Device, dma: number, size: number, dir: DmaDirection, attrs: number): void {
    const phys = dev.dmaToPhys(dma);
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0) this.syncSingleForCpu(dev, dma, size, dir);
    const sw = this.swiotlb;
    if (sw !== null && phys !== -1 && sw.isSwiotlbBuffer(dev, phys)) {
      // up to v5.17 the caller's attrs go on: without SKIP_CPU_SYNC the copy back runs a second
      // time. 9e02977bfad0 (v5.18-rc3) added SKIP_CPU_SYNC here.
      sw.tblUnmapSingle(dev, phys, size, dir, this.profile.unmapDoubleCopy ? attrs : attrs | DMA_ATTR_SKIP_CPU_SYNC);
    }
  }

  // ---- sync ----------------------------------------------------------------------------------

  /** dma_direct_sync_single_for_device */
  syncSingleForDevice(dev: Device, dma: number, size: number, dir: DmaDirection): void {
    const phys = dev.dmaToPhys(dma);
    const sw = this.swiotlb;
    if (sw !== null && phys !== -1 && sw.isSwiotlbBuffer(dev, phys)) sw.syncSingleForDevice(dev, phys, size, dir);
    // !coherent: arch_sync_dma_for_device — no-op
  }

  /** dma_direct_sync_single_for_cpu */
  syncSingleForCpu(dev: Device, dma: number, size: number, dir: DmaDirection): void {
    const phys = dev.dmaToPhys(dma);
    // !coherent: arch_sync_dma_for_cpu + _all — no-op
    const sw = this.swiotlb;
    if (sw !== null && phys !== -1 && sw.isSwiotlbBuffer(dev, phys)) sw.syncSingleForCpu(dev, phys, size, dir);
    // FROM_DEVICE: arch_dma_mark_clean — no-op
  }

  // ---- scatter-gather ------------------------------------------------------------------------

  /**
   * dma_direct_map_sg: each entry mapped on its own (no coalescing). On a failure the entries
   * mapped so far are unmapped with SKIP_CPU_SYNC and the result is 0.
   */
  mapSg(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number, cpu: number): number {
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      const dma = this.mapPage(dev, s.phys, s.length, dir, attrs, cpu);
      s.dmaAddress = dma;
      if (dma === DMA_MAPPING_ERROR) {
        this.unmapSg(dev, sg, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
        return 0;
      }
      s.dmaLength = s.length;
    }
    return nents;
  }

  /** dma_direct_unmap_sg */
  unmapSg(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number): void {
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      this.unmapPage(dev, s.dmaAddress, s.dmaLength, dir, attrs);
    }
  }

  /** dma_direct_sync_sg_for_device: the single-buffer logic per entry, with sg->length */
  syncSgForDevice(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void {
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      this.syncSingleForDevice(dev, s.dmaAddress, s.length, dir);
    }
  }

  /** dma_direct_sync_sg_for_cpu */
  syncSgForCpu(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void {
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      this.syncSingleForCpu(dev, s.dmaAddress, s.length, dir);
    }
  }

  // ---- masks and limits ----------------------------------------------------------------------

  /**
   * dma_direct_supported: any mask of 32 bits or more is fine; a smaller one must cover the
   * lowest of (the last RAM page, ZONE_DMA's top) as the device sees it.
   */
  dmaSupported(dev: Device, mask: bigint): boolean {
    if (mask >= dmaBitMask(32)) return true;
    let minMask = BigInt(this.maxPfn - 1) << BigInt(this.pageShift);
    if (this.zoneDmaBits > 0) {
      const z = dmaBitMask(this.zoneDmaBits);
      if (z < minMask) minMask = z;
    }
    const d = dev.physToDma(Number(minMask));
    const dmaMin = d === DMA_MAPPING_ERROR ? U64_MAX : BigInt(d);
    return mask >= dmaMin;
  }

  /**
   * dma_direct_get_required_mask: the smallest all-ones mask covering the DMA address of the
   * last RAM page: (1 << (fls64(top) - 1)) * 2 - 1 in 64-bit arithmetic.
   */
  getRequiredMask(dev: Device): bigint {
    const phys = (this.maxPfn - 1) * 2 ** this.pageShift;
    const d = dev.physToDma(phys);
    const top = d === DMA_MAPPING_ERROR ? U64_MAX : BigInt(d);
    if (top === 0n) return 0n; // fls64(0) - 1 is undefined in C; no RAM page above 0 exists
    const fls = top.toString(2).length;
    return BigInt.asUintN(64, (1n << BigInt(fls - 1)) * 2n - 1n);
  }

  /** dma_addressing_limited: min_not_zero(dma_get_mask, bus_dma_limit) < the required mask */
  addressingLimited(dev: Device): boolean {
    return minNotZero(dev.dmaGetMask(), dev.busDmaLimit) < this.getRequiredMask(dev);
  }

  /**
   * dma_direct_max_mapping_size: swiotlb's limit when the device's swiotlb is active and the
   * device is addressing-limited or force-bounced; else SIZE_MAX.
   * 5.12/5.13: is_swiotlb_active() && (limited || swiotlb_force == SWIOTLB_FORCE).
   * 5.15+: is_swiotlb_active(dev) && (limited || is_swiotlb_force_bounce(dev)).
   */
  maxMappingSize(dev: Device): number {
    const sw = this.swiotlb;
    if (sw === null || !sw.isActive(dev)) return SIZE_MAX_NUMBER;
    const forced = this.profile.globalSwiotlbForce
      ? sw.forceState === SWIOTLB_FORCE || dev.forceBounce
      : sw.isForceBounce(dev) || dev.forceBounce;
    if (forced || this.addressingLimited(dev)) return sw.maxMappingSize(dev);
    return SIZE_MAX_NUMBER;
  }

  /** dma_direct_need_sync: not coherent, or the address is a bounce buffer */
  needSync(dev: Device, dma: number): boolean {
    if (!dev.coherent) return true;
    const sw = this.swiotlb;
    const phys = dev.dmaToPhys(dma);
    return sw !== null && phys !== -1 && sw.isSwiotlbBuffer(dev, phys);
  }
}
