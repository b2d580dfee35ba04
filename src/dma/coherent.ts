// Coherent DMA allocations: dma_alloc_attrs / dma_free_attrs (kernel/dma/mapping.c) and
// dma-direct's dma_direct_alloc / dma_direct_free (kernel/dma/direct.c), both eras:
//
//  - the zone comes from the coherent mask: dma_direct_optimal_gfp_mask() turns
//    min_not_zero(coherent_dma_mask, bus_dma_limit), seen as a physical limit, into GFP_DMA
//    (within ZONE_DMA's zone_dma_bits) or GFP_DMA32 (within 32 bits), else no zone flag;
//    __dma_direct_alloc_pages() then allocates 2^get_order(size) pages and, when the block
//    fails dma_coherent_ok(), frees it and retries with GFP_DMA32, then GFP_DMA;
//  - 6.x (5.15+): a device whose dma_io_tlb_mem is a restricted pool (for_alloc) takes its
//    pages from that pool: swiotlb_alloc() / swiotlb_free();
//  - DMA_ATTR_NO_KERNEL_MAPPING: the pages are returned without a kernel mapping and are not
//    zeroed (the cookie is the page); otherwise the buffer is zeroed;
//  - a non-coherent device (arm64: CONFIG_DMA_DIRECT_REMAP): arch_dma_prep_coherent (cache
//    maintenance, nothing to do without caches) and an uncached vmap remap of the same pages
//    — the physical buffer and the DMA address are the same as for a coherent device.
//  - DMA_ATTR_FORCE_CONTIGUOUS and DMA_ATTR_ALLOC_SINGLE_PAGES only matter to dma-iommu;
//    dma-direct ignores them, as here.
// No CMA area and no atomic pools are modelled: dma_alloc_contiguous() finds nothing and the
// pages come from the buddy allocator (memory/page-alloc.ts).

import { InvalidArgumentError, hex } from "../errors.js";
import type { KernelLog } from "../events.js";
import { DMA_ATTR_NO_KERNEL_MAPPING, DMA_ATTR_NO_WARN, DMA_MAPPING_ERROR, maskToNumber, minNotZero } from "../kernel/dma-mapping.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import { GFP_KERNEL, __GFP_COMP, __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM, __GFP_NOWARN, __GFP_ZERO, type PageAllocator } from "../memory/page-alloc.js";
import type { KernelProfile } from "../swiotlb/profile.js";
import type { Swiotlb } from "../swiotlb/swiotlb.js";
import type { Device } from "./device.js";

/** A coherent buffer: its physical address (the CPU's side) and the device's DMA address. */
export interface CoherentBuffer {
  phys: number;
  dma: number;
}

/** The alloc/free half of dma_map_ops (swiotlb-xen provides one; null ops = dma-direct). */
export interface CoherentOps {
  allocCoherent(dev: Device, size: number, gfp: number, attrs: number): CoherentBuffer | null;
  freeCoherent(dev: Device, size: number, phys: number, dma: number, attrs: number): void;
}

function isCoherentOps(o: unknown): o is CoherentOps {
  return typeof o === "object" && o !== null && typeof (o as Partial<CoherentOps>).allocCoherent === "function";
}

/**
 * Where DMA-API debugging records coherent allocations (debug_dma_alloc_coherent /
 * debug_dma_free_coherent, entries of type DMA_DEBUG_COHERENT). Called when the DmaApi's
 * debug object has these methods.
 */
export interface CoherentDebugHooks {
  allocCoherent(dev: Device, size: number, dma: number, phys: number, attrs: number): void;
  freeCoherent(dev: Device, size: number, phys: number, dma: number): void;
}

export interface DmaDirectAllocOptions {
  memory: PhysicalMemory;
  pages: PageAllocator;
  profile: KernelProfile;
  swiotlb: Swiotlb | null;
  /** zone_dma_bits (arm64: min(32, what firmware says)) */
  zoneDmaBits: number;
  log: KernelLog;
}

/** dma_direct_alloc / dma_direct_free and their helpers. */
export class DmaDirectAlloc implements CoherentOps {
  readonly pages: PageAllocator;
  private readonly memory: PhysicalMemory;
  private readonly profile: KernelProfile;
  private readonly swiotlb: Swiotlb | null;
  private readonly zoneDmaBits: number;
  private readonly log: KernelLog;
  /** buffers handed out with a kernel mapping that was remapped (non-coherent devices) */
  remaps = 0;

  constructor(o: DmaDirectAllocOptions) {
    this.memory = o.memory;
    this.pages = o.pages;
    this.profile = o.profile;
    this.swiotlb = o.swiotlb;
    this.zoneDmaBits = o.zoneDmaBits;
    this.log = o.log;
  }

  /**
   * dma_direct_optimal_gfp_mask(dev, &phys_limit): the zone the coherent limit falls in
   * (5.13 passes coherent_dma_mask as an argument; 6.x reads it; the same value).
   */
  optimalGfpMask(dev: Device): { gfp: number; physLimit: number } {
    // as a number: a limit of 2^53 or more saturates to 2^64 (all ones), see maskToNumber
    const lim = maskToNumber(minNotZero(dev.coherentDmaMask, dev.busDmaLimit));
    const p = lim >= 2 ** 53 ? lim : dev.dmaToPhys(lim);
    // dma_to_phys of an address no region holds: all ones
    const physLimit = p === DMA_MAPPING_ERROR ? 2 ** 64 : p;
    if (physLimit <= 2 ** this.zoneDmaBits - 1) return { gfp: __GFP_DMA, physLimit };
    if (physLimit <= 0xffff_ffff) return { gfp: __GFP_DMA32, physLimit };
    return { gfp: 0, physLimit };
  }

  /** dma_coherent_ok(dev, phys, size) */
  coherentOk(dev: Device, phys: number, size: number): boolean {
    const dma = dev.physToDma(phys);
    if (dma === DMA_MAPPING_ERROR) return false;
    return dma + size - 1 <= maskToNumber(minNotZero(dev.coherentDmaMask, dev.busDmaLimit));
  }

  /** is_swiotlb_for_alloc(dev) (6.x, CONFIG_DMA_RESTRICTED_POOL) */
  isSwiotlbForAlloc(dev: Device): boolean {
    if (!this.profile.restrictedDmaPool || this.swiotlb === null || dev.ioTlbMemName === undefined) return false;
    return this.swiotlb.memFor(dev)?.forAlloc === true;
  }

  /** swiotlb_alloc(dev, size): page-aligned slots of the device's pool; -1 when none */
  swiotlbAlloc(dev: Device, size: number): number {
    const mem = this.swiotlb?.memFor(dev) ?? null;
    if (mem === null) return -1;
    const pageShift = this.pages.pageShift;
    const align = 2 ** (this.pages.getOrder(size) + pageShift) - 1;
    // swiotlb_find_slots(dev, 0, size, align): no original buffer, so no min_align offset
    const tlb = mem.pool.mapSlots(0, 0, size, align, dev.minAlignMask >>> 0, dev.physToDma(mem.pool.start), 0);
    if (tlb < 0) return -1;
    if (tlb % this.pages.pageSize !== 0) {
      this.log.printOnce(`swiotlb_alloc:${dev.name}`, `${dev.name}: Cannot allocate pages from non page-aligned swiotlb addr ${hex(tlb)}.`);
      mem.pool.releaseSlots(tlb, dev.minAlignMask >>> 0);
      return -1;
    }
    return tlb;
  }

  /** swiotlb_free(dev, page, size): false when the page is not in the device's pool */
  swiotlbFree(dev: Device, phys: number): boolean {
    const pool = this.swiotlb?.findPool(dev, phys) ?? null;
    if (pool === null) return false;
    if (pool.releaseSlots(phys, dev.minAlignMask >>> 0) < 0)
      throw new InvalidArgumentError(`${dev.name}: swiotlb_free of ${hex(phys)}: not an allocation of the pool`);
    return true;
  }

  /** __dma_direct_alloc_pages(dev, size, gfp): the block's physical address, or -1 */
  allocPages(dev: Device, size: number, gfp: number): number {
    if (this.isSwiotlbForAlloc(dev)) {
      // dma_direct_alloc_swiotlb
      const p = this.swiotlbAlloc(dev, size);
      if (p >= 0 && !this.coherentOk(dev, p, size)) {
        this.swiotlbFree(dev, p);
        return -1;
      }
      return p;
    }
    const { gfp: zone, physLimit } = this.optimalGfpMask(dev);
    let g = gfp | zone;
    const order = this.pages.getOrder(size);
    for (;;) {
      const p = this.pages.allocPages(g, order);
      if (p < 0) return -1;
      if (this.coherentOk(dev, p, size)) return p;
      this.pages.freePages(p, order);
      // optimistic zone first; retry lower when the block is not addressable
      if (physLimit < 2 ** 64 && (g & (__GFP_DMA32 | __GFP_DMA)) === 0) {
        g |= __GFP_DMA32;
        continue;
      }
      if ((g & __GFP_DMA) === 0) {
        g = (g & ~__GFP_DMA32) | __GFP_DMA;
        continue;
      }
      return -1;
    }
  }

  /** __dma_direct_free_pages */
  freePagesOf(dev: Device, phys: number, size: number): void {
    if (this.isSwiotlbForAlloc(dev) && this.swiotlbFree(dev, phys)) return;
    const order = this.pages.getOrder(size);
    this.pages.freePages(phys, order);
  }

  /** dma_direct_alloc(dev, size, &dma_handle, gfp, attrs) */
  allocCoherent(dev: Device, size: number, gfp: number, attrs: number): CoherentBuffer | null {
    const psize = Math.ceil(size / this.pages.pageSize) * this.pages.pageSize;
    let g = gfp;
    if (attrs & DMA_ATTR_NO_WARN) g |= __GFP_NOWARN;
    if ((attrs & DMA_ATTR_NO_KERNEL_MAPPING) !== 0 && !this.isSwiotlbForAlloc(dev)) {
      // dma_direct_alloc_no_mapping: the page is the cookie; not zeroed
      const p = this.allocPages(dev, psize, g & ~__GFP_ZERO);
      if (p < 0) return null;
      return { phys: p, dma: dev.physToDma(p) };
    }
    // !dev_is_dma_coherent: DMA_DIRECT_REMAP, arch_dma_prep_coherent + an uncached remap
    const p = this.allocPages(dev, psize, g & ~__GFP_ZERO);
    if (p < 0) return null;
    if (!dev.coherent) this.remaps++;
    this.memory.fill(p, psize, 0);
    return { phys: p, dma: dev.physToDma(p) };
  }

  /** dma_direct_free(dev, size, cpu_addr, dma_addr, attrs): the pages come from dma_addr */
  freeCoherent(dev: Device, size: number, _phys: number, dma: number, _attrs: number): void {
    const phys = dev.dmaToPhys(dma);
    if (phys === DMA_MAPPING_ERROR) throw new InvalidArgumentError(`${dev.name}: dma_direct_free of DMA address ${hex(dma)}: outside the device's ranges`);
    const psize = Math.ceil(size / this.pages.pageSize) * this.pages.pageSize;
    this.freePagesOf(dev, phys, psize);
  }
}

export interface CoherentStats {
  allocs: number;
  frees: number;
  failed: number;
  /** buffers alive now, and their bytes */
  live: number;
  liveBytes: number;
}

/** dma_alloc_attrs / dma_free_attrs over dev->dma_ops (or dma-direct). */
export class CoherentApi {
  private readonly liveBufs = new Map<string, { size: number; phys: number }>();
  readonly stats: CoherentStats = { allocs: 0, frees: 0, failed: 0, live: 0, liveBytes: 0 };

  constructor(
    readonly direct: DmaDirectAlloc,
    private readonly log: KernelLog,
    /** the DMA API's dma-debug object, when it records coherent allocations */
    private readonly debug: () => unknown = () => null,
  ) {}

  private opsOf(dev: Device): CoherentOps {
    return isCoherentOps(dev.dmaOps) ? dev.dmaOps : this.direct;
  }

  private debugHooks(): CoherentDebugHooks | null {
    const d = this.debug() as Partial<CoherentDebugHooks> | null;
    return d && typeof d.allocCoherent === "function" && typeof d.freeCoherent === "function" ? (d as CoherentDebugHooks) : null;
  }

  /** dma_alloc_attrs(dev, size, &dma_handle, gfp, attrs); null on failure */
  dmaAllocAttrs(dev: Device, size: number, gfp = GFP_KERNEL, attrs = 0): CoherentBuffer | null {
    if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError(`dma_alloc_attrs: size ${String(size)} must be a positive integer`);
    if (dev.coherentDmaMask === 0n) this.log.printOnce("dma_alloc_attrs:no-mask", `WARNING: at kernel/dma/mapping.c dma_alloc_attrs: WARN_ON_ONCE(!dev->coherent_dma_mask) for ${dev.name}`);
    if (gfp & __GFP_COMP) {
      this.log.printOnce("dma_alloc_attrs:comp", `WARNING: at kernel/dma/mapping.c dma_alloc_attrs: WARN_ON_ONCE(flag & __GFP_COMP) for ${dev.name}`);
      this.stats.failed++;
      return null;
    }
    // let the implementation decide on the zone
    const g = gfp & ~(__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM);
    const b = this.opsOf(dev).allocCoherent(dev, size, g, attrs);
    if (b === null) {
      this.stats.failed++;
      return null;
    }
    this.stats.allocs++;
    this.liveBufs.set(`${dev.name}@${b.dma}`, { size, phys: b.phys });
    this.stats.live = this.liveBufs.size;
    this.stats.liveBytes += size;
    this.debugHooks()?.allocCoherent(dev, size, b.dma, b.phys, attrs);
    return b;
  }

  /**
   * dma_free_attrs(dev, size, cpu_addr, dma_handle, attrs). A buffer dmalab did not hand out
   * (or with another size or CPU address) is refused with nothing changed; the kernel would
   * free whatever pages the arguments name.
   */
  dmaFreeAttrs(dev: Device, size: number, phys: number, dma: number, attrs = 0): void {
    // debug_dma_free_coherent runs first, as in the kernel, so misuse is reported in its words
    this.debugHooks()?.freeCoherent(dev, size, phys, dma);
    const key = `${dev.name}@${dma}`;
    const live = this.liveBufs.get(key);
    if (live === undefined) throw new InvalidArgumentError(`dma_free_attrs: ${dev.name} has no coherent buffer at DMA address ${hex(dma)}`);
    if (live.size !== size) throw new InvalidArgumentError(`dma_free_attrs: ${dev.name} buffer at ${hex(dma)} has size ${live.size}, not ${size}`);
    if (live.phys !== phys) throw new InvalidArgumentError(`dma_free_attrs: ${dev.name} buffer at ${hex(dma)} is at ${hex(live.phys)}, not ${hex(phys)}`);
    this.opsOf(dev).freeCoherent(dev, size, phys, dma, attrs);
    this.liveBufs.delete(key);
    this.stats.frees++;
    this.stats.live = this.liveBufs.size;
    this.stats.liveBytes -= size;
  }
}
