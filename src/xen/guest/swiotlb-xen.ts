// drivers/xen/swiotlb-xen.c: the swiotlb that knows guest frames are not bus frames.
//
// init (xen_swiotlb_init) — three generations, read from the profile:
//  - ≤5.12 (xenSwiotlbInitReusesExisting): a pool already set up by mem_init is reused as is
//    ("IO TLB memory already allocated. Just use it."), and the function then returns the
//    -ENOMEM its `rc` was initialised with — arm's xen_mm_init ignores it. The retry
//    recomputes `bytes` from the halved nslabs.
//  - 5.13-rc1: no check of its own (Hellwig's "lift the double initialization protection from
//    xen-swiotlb" moved it into the core: swiotlb_late_init_with_tbl warns and says -ENOMEM);
//    the retry halves nslabs but keeps `bytes` (fixed only in 5.15).
//  - 5.13 (97729b653de5, xenSwiotlbInitChecksExisting): -EEXIST with a warning up front when
//    io_tlb_default_mem exists.
//  - 5.19+/6.x: the function is gone (xen_mm_init uses swiotlb_init_late, see machine/boot.ts).
// fixup (xen_swiotlb_fixup): chunks of IO_TLB_SEGSIZE slots, each made contiguous with
//    address_bits 18, 19, … 32; dma_bits is not reset between chunks.
// dma_supported: 5.13-rc1..5.14 read io_tlb_default_mem->end — a NULL dereference at 0x8 when
//    no pool exists, the 2021 regression; ≤5.12 read the static io_tlb_end and 6.x
//    default_swiotlb_limit(), both of which are merely 0 without a pool.
// map_page / unmap / sync / sg: as 5.13, with the 6.x per-device force test where it differs.
// alloc/free coherent (attachCoherent wires the page sources):
//  - ≤5.18 (both arches share the code): xen_alloc_coherent_pages (arm: dma_direct_alloc;
//    x86: __get_free_pages), then xen_create_contiguous_region(phys, order, fls64(mask)) when
//    the bus address passes the coherent mask (32 bits when unset) or the buffer is not
//    machine-contiguous; PageXenRemapped marks it for xen_destroy_contiguous_region on free;
//  - 5.19+ arm ("swiotlb-xen: fix DMA_ATTR_NO_KERNEL_MAPPING on arm"): .alloc/.free are
//    dma_direct_alloc/dma_direct_free; x86 keeps its own pair (__get_free_pages, the exchange,
//    and a free that WARNs and leaks a buffer it cannot have handed out).

import type { KernelLog } from "../../events.js";
import type { CoherentBuffer, CoherentOps } from "../../dma/coherent.js";
import { fls64 } from "../../machine/units.js";
import type { Device } from "../../dma/device.js";
import { SIZE_MAX_NUMBER, type DmaMapOps } from "../../dma/ops.js";
import type { ScatterlistEntry } from "../../dma/scatterlist.js";
import {
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_MAPPING_ERROR,
  U64_MAX,
  type DmaDirection,
} from "../../kernel/dma-mapping.js";
import { EEXIST, ENOMEM } from "../../kernel/errno.js";
import { InvalidArgumentError, hex } from "../../errors.js";
import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_MIN_SLABS, SWIOTLB_FORCE } from "../../kernel/swiotlb.js";
import type { SwiotlbDevice } from "../../swiotlb/device.js";
import type { KernelProfile } from "../../swiotlb/profile.js";
import type { Swiotlb } from "../../swiotlb/swiotlb.js";
import type { ContiguousRegionOps } from "./contiguous-region.js";
import { KernelOops } from "../../kernel/oops.js";
import { P2mOverrides, XEN_PAGE_SIZE, rangeStraddlesPageBoundary, xenBusToPhys, xenPhysToBus } from "./p2m.js";

/** swiotlb-xen's MAX_DMA_BITS */
export const MAX_DMA_BITS = 32;
/** offsetof(struct io_tlb_mem, end) in 5.13: `start` @0, `end` @8 */
export const IO_TLB_MEM_END_OFFSET = 0x8;
/** pr_fmt of swiotlb-xen.c: "xen:" KBUILD_MODNAME ": " */
export const XEN_SWIOTLB_PREFIX = "xen:swiotlb_xen: ";

/** The fields of io_tlb_default_mem swiotlb-xen reads. */
export interface IoTlbMemView {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
}

/** What swiotlb-xen calls in the swiotlb core. */
export interface SwiotlbForXen {
  /** 5.13's global swiotlb_force */
  readonly forceState: number;
  /** io_tlb_default_mem: null when no pool was set up */
  readonly defaultMem: IoTlbMemView | null;
  /** swiotlb_size_or_default() */
  sizeOrDefault(): number;
  /** swiotlb_late_init_with_tbl(tlb, nslabs): 0, or -ENOMEM on a second pool */
  lateInitWithTbl(tlb: number, nslabs: number): number;
  /** swiotlb_set_max_segment() */
  setMaxSegment(bytes: number): void;
  /** swiotlb_tbl_map_single(): the bounce slot's phys address, or DMA_MAPPING_ERROR */
  tblMapSingle(dev: SwiotlbDevice, phys: number, mappingSize: number, allocSize: number, dir: DmaDirection, attrs: number, cpu: number): number;
  tblUnmapSingle(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection, attrs: number): void;
  syncSingleForCpu(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void;
  syncSingleForDevice(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: DmaDirection): void;
  isSwiotlbBuffer(dev: SwiotlbDevice, phys: number): boolean;
  /** is_swiotlb_force_bounce(dev) (5.15+) */
  isForceBounce(dev: SwiotlbDevice): boolean;
  /** swiotlb_max_mapping_size(dev) */
  maxMappingSize(dev: SwiotlbDevice): number;
}

/** __get_free_pages / free_pages for the pool (xen_get_swiotlb_free_pages on arm). */
export interface PageAllocator {
  /** 2^order pages, naturally aligned; -1 when nothing fits */
  alloc(order: number): number;
  free(addr: number, order: number): void;
}

export interface FixupCall {
  readonly pstart: number;
  readonly order: number;
  readonly dmaBits: number;
  readonly rc: number;
}

export interface XenSwiotlbInitAttempt {
  readonly nslabs: number;
  readonly order: number;
  /** -1 when no memory was found */
  readonly start: number;
  /** xen_swiotlb_fixup's result (undefined when not reached) */
  readonly fixupRc?: number;
  /** swiotlb_late_init_with_tbl's result (undefined when not reached) */
  readonly lateInitRc?: number;
}

export interface XenSwiotlbOptions {
  profile: KernelProfile;
  swiotlb: SwiotlbForXen;
  p2m: P2mOverrides;
  contig: ContiguousRegionOps;
  log: KernelLog;
  pages: PageAllocator;
  /** pfn_valid() of a physical address: RAM this kernel owns */
  isLocalRam: (phys: number) => boolean;
  /** PAGE_SHIFT of the kernel (12 for 4K pages) */
  pageShift?: number;
}

/** get_order(size) for the kernel's page size */
export function getOrder(size: number, pageShift = 12): number {
  let order = 0;
  while (2 ** (order + pageShift) < size) order++;
  return order;
}

export class XenSwiotlb implements DmaMapOps {
  readonly name = "xen-swiotlb";
  readonly profile: KernelProfile;
  private readonly sw: SwiotlbForXen;
  readonly p2m: P2mOverrides;
  private readonly contig: ContiguousRegionOps;
  private readonly log: KernelLog;
  private readonly pages: PageAllocator;
  private readonly isLocalRam: (phys: number) => boolean;
  readonly pageShift: number;
  /** hypercall_cflush (arch/arm/xen/mm.c): GNTTABOP_cache_flush answered something else than -ENOSYS */
  hypercallCflush = false;
  /** the pool xen_swiotlb_init set up itself, if any */
  ownPool: { start: number; nslabs: number; order: number } | null = null;
  readonly fixupCalls: FixupCall[] = [];
  readonly initAttempts: XenSwiotlbInitAttempt[] = [];
  /** callers above ->dma_supported (outermost first), for the oops report */
  callContext: () => readonly string[] = () => ["dma_supported"];
  /** the boot decisions to cite when dma_supported faults */
  faultCauses: () => readonly string[] = () => [];
  readonly stats = { mapped: 0, bounced: 0, failed: 0 };
  /** the oops dma_supported raised, kept for the report (the boot turns the throw into a result) */
  lastOops: KernelOops | null = null;

  constructor(o: XenSwiotlbOptions) {
    this.profile = o.profile;
    this.sw = o.swiotlb;
    this.p2m = o.p2m;
    this.contig = o.contig;
    this.log = o.log;
    this.pages = o.pages;
    this.isLocalRam = o.isLocalRam;
    this.pageShift = o.pageShift ?? 12;
  }

  private warn(msg: string): void {
    this.log.print(XEN_SWIOTLB_PREFIX + msg);
  }

  // ---- init ----------------------------------------------------------------------------------

  /** xen_swiotlb_init() of the profile's era (arm's late path: no `early` variant). */
  init(): number {
    const p = this.profile;
    if (p.xenSwiotlbInitChecksExisting && this.sw.defaultMem !== null) {
      this.warn("swiotlb buffer already initialized");
      return -EEXIST;
    }
    const slabsPerPage = 1 << (this.pageShift - IO_TLB_SHIFT);
    let bytes = this.sw.sizeOrDefault();
    let nslabs = Math.floor(bytes / 2 ** IO_TLB_SHIFT);
    let repeat = 3;
    let rc = -ENOMEM;
    if (p.xenSwiotlbInitReusesExisting && this.sw.defaultMem !== null) {
      // ≤5.12: "goto end" with rc still -ENOMEM; the existing pool is used unchanged
      return rc;
    }
    for (;;) {
      if (!p.xenSwiotlbRetryKeepsBytes) bytes = nslabs * 2 ** IO_TLB_SHIFT;
      let order = getOrder(bytes, this.pageShift);
      const wanted = order;
      let start = -1;
      let failure: "enomem" | "efixup";
      while (slabsPerPage * 2 ** order > IO_TLB_MIN_SLABS) {
        start = this.pages.alloc(order);
        if (start >= 0) break;
        order--;
      }
      if (start < 0) {
        this.initAttempts.push({ nslabs, order: wanted, start: -1 });
        failure = "enomem";
      } else {
        if (order !== wanted) {
          this.warn(`Warning: only able to allocate ${((2 ** this.pageShift) * 2 ** order) / 2 ** 20} MB for software IO TLB`);
          nslabs = slabsPerPage * 2 ** order;
          bytes = nslabs * 2 ** IO_TLB_SHIFT;
        }
        rc = this.fixup(start, nslabs);
        if (rc !== 0) {
          this.initAttempts.push({ nslabs, order, start, fixupRc: rc });
          this.pages.free(start, order);
          failure = "efixup";
        } else {
          rc = this.sw.lateInitWithTbl(start, nslabs);
          this.initAttempts.push({ nslabs, order, start, fixupRc: 0, lateInitRc: rc });
          // 5.13 returns at once and leaks the pages; ≤5.12 reaches the same return through `end`
          if (rc !== 0) return rc;
          this.ownPool = { start, nslabs, order };
          this.sw.setMaxSegment(2 ** this.pageShift);
          return 0;
        }
      }
      if (repeat-- > 0) {
        nslabs = Math.max(1024, Math.floor(nslabs / 2));
        this.log.print(`${XEN_SWIOTLB_PREFIX}Lowering to ${(nslabs * 2 ** IO_TLB_SHIFT) / 2 ** 20}MB`);
        continue;
      }
      const what =
        failure === "enomem"
          ? ["Cannot allocate Xen-SWIOTLB buffer"]
          : [
              "Failed to get contiguous memory for DMA from Xen!",
              "You either: don't have the permissions, do not have enough free memory under 4GB, or the hypervisor memory is too fragmented!",
            ];
      what[what.length - 1] += ` (rc:${rc})`;
      for (const l of what) this.log.print(XEN_SWIOTLB_PREFIX + l);
      return rc;
    }
  }

  /** xen_swiotlb_fixup(buf, nslabs) */
  fixup(start: number, nslabs: number): number {
    let dmaBits = getOrder(IO_TLB_SEGSIZE << IO_TLB_SHIFT, this.pageShift) + this.pageShift;
    let i = 0;
    do {
      const slabs = Math.min(nslabs - i, IO_TLB_SEGSIZE);
      const pstart = start + i * 2 ** IO_TLB_SHIFT;
      const order = getOrder(slabs * 2 ** IO_TLB_SHIFT, this.pageShift);
      let rc: number;
      // retry with one more address bit each time, up to MAX_DMA_BITS; dma_bits carries over
      for (;;) {
        rc = this.contig.create(pstart, order, dmaBits).rc;
        this.fixupCalls.push({ pstart, order, dmaBits, rc });
        if (rc === 0 || !(dmaBits++ < MAX_DMA_BITS)) break;
      }
      if (rc !== 0) return rc;
      i += slabs;
    } while (i < nslabs);
    return 0;
  }

  // ---- address helpers -----------------------------------------------------------------------

  /** xen_phys_to_dma(dev, p) */
  physToDma(dev: Device, phys: number): number {
    return dev.physToDma(xenPhysToBus(this.p2m, phys));
  }

  /** xen_dma_to_phys(dev, dma) */
  dmaToPhys(dev: Device, dma: number): number {
    const b = dev.dmaToPhys(dma);
    return b === DMA_MAPPING_ERROR ? b : xenBusToPhys(this.p2m, b);
  }

  /** xen_arch_need_swiotlb(dev, phys, dev_addr) on arm */
  private archNeedSwiotlb(dev: Device, phys: number, devAddr: number): boolean {
    if (this.hypercallCflush || dev.coherent) return false;
    const xenPfn = Math.floor(phys / XEN_PAGE_SIZE);
    const bfn = Math.floor(dev.dmaToPhys(devAddr) / XEN_PAGE_SIZE);
    // the kernel holds both in `unsigned int` locals
    return xenPfn >>> 0 !== bfn >>> 0;
  }

  /** is_xen_swiotlb_buffer(dev, dma) */
  isXenSwiotlbBuffer(dev: Device, dma: number): boolean {
    const b = dev.dmaToPhys(dma);
    if (b === DMA_MAPPING_ERROR) return false;
    const paddr = this.p2m.bfnToPfn(Math.floor(b / XEN_PAGE_SIZE)) * XEN_PAGE_SIZE;
    if (!this.isLocalRam(paddr)) return false;
    return this.sw.isSwiotlbBuffer(dev, paddr + (b % XEN_PAGE_SIZE));
  }

  private forced(dev: Device): boolean {
    if (dev.forceBounce) return true;
    return this.profile.globalSwiotlbForce ? this.sw.forceState === SWIOTLB_FORCE : this.sw.isForceBounce(dev);
  }

  // ---- dma_map_ops ---------------------------------------------------------------------------

  /** xen_swiotlb_map_page */
  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number {
    let devAddr = this.physToDma(dev, phys);
    if (
      dev.dmaCapable(devAddr, size, true) &&
      !rangeStraddlesPageBoundary(this.p2m, phys, size) &&
      !this.archNeedSwiotlb(dev, phys, devAddr) &&
      !this.forced(dev)
    ) {
      this.stats.mapped++;
      return devAddr;
    }
    const map = this.sw.tblMapSingle(dev, phys, size, size, dir, attrs, cpu);
    if (map === DMA_MAPPING_ERROR) {
      this.stats.failed++;
      return DMA_MAPPING_ERROR;
    }
    devAddr = this.physToDma(dev, map);
    if (!dev.dmaCapable(devAddr, size, true)) {
      this.sw.tblUnmapSingle(dev, map, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
      this.stats.failed++;
      return DMA_MAPPING_ERROR;
    }
    // non-coherent devices: arch_sync_dma_for_device / GNTTABOP_cache_flush — no caches here
    this.stats.mapped++;
    this.stats.bounced++;
    return devAddr;
  }

  /** xen_swiotlb_unmap_page */
  unmapPage(dev: Device, dma: number, size: number, dir: DmaDirection, attrs: number): void {
    const paddr = this.dmaToPhys(dev, dma);
    // NB: the pool test uses the bus address, not paddr (as the kernel does)
    if (this.isXenSwiotlbBuffer(dev, dma)) this.sw.tblUnmapSingle(dev, paddr, size, dir, attrs);
  }

  syncSingleForCpu(dev: Device, dma: number, size: number, dir: DmaDirection): void {
    const paddr = this.dmaToPhys(dev, dma);
    if (this.isXenSwiotlbBuffer(dev, dma)) this.sw.syncSingleForCpu(dev, paddr, size, dir);
  }

  syncSingleForDevice(dev: Device, dma: number, size: number, dir: DmaDirection): void {
    const paddr = this.dmaToPhys(dev, dma);
    if (this.isXenSwiotlbBuffer(dev, dma)) this.sw.syncSingleForDevice(dev, paddr, size, dir);
  }

  mapSg(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number, cpu: number): number {
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      s.dmaAddress = this.mapPage(dev, s.phys, s.length, dir, attrs, cpu);
      if (s.dmaAddress === DMA_MAPPING_ERROR) {
        this.unmapSg(dev, sg, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC);
        if (sg.length > 0) sg[0]!.dmaLength = 0;
        return 0;
      }
      s.dmaLength = s.length;
    }
    return nents;
  }

  unmapSg(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number): void {
    for (let i = 0; i < nents; i++) this.unmapPage(dev, sg[i]!.dmaAddress, sg[i]!.dmaLength, dir, attrs);
  }

  syncSgForCpu(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void {
    for (let i = 0; i < nents; i++) this.syncSingleForCpu(dev, sg[i]!.dmaAddress, sg[i]!.length, dir);
  }

  syncSgForDevice(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void {
    for (let i = 0; i < nents; i++) this.syncSingleForDevice(dev, sg[i]!.dmaAddress, sg[i]!.length, dir);
  }

  /** xen_swiotlb_dma_supported(dev, mask) */
  dmaSupported(dev: Device, mask: bigint): boolean {
    const mem = this.sw.defaultMem;
    let last: bigint;
    if (this.profile.xenDmaSupportedDerefsDefaultMem) {
      if (mem === null) {
        this.lastOops = new KernelOops({
          function: "xen_swiotlb_dma_supported",
          pointer: "io_tlb_default_mem",
          member: "end",
          address: IO_TLB_MEM_END_OFFSET,
          callChain: [...this.callContext(), "xen_swiotlb_dma_supported"],
          causes: this.faultCauses(),
          device: dev.name,
          mask,
        });
        throw this.lastOops;
      }
      last = BigInt(mem.end) - 1n;
    } else {
      // io_tlb_end (≤5.12) / default_swiotlb_limit() (6.x): 0 - 1 wraps to all ones without a pool
      last = BigInt.asUintN(64, BigInt(mem?.end ?? 0) - 1n);
    }
    if (last > BigInt(Number.MAX_SAFE_INTEGER)) return U64_MAX <= mask;
    const dma = this.physToDma(dev, Number(last));
    if (dma === DMA_MAPPING_ERROR) return U64_MAX <= mask;
    return BigInt(dma) <= mask;
  }

  /** 5.13's xen_swiotlb_dma_ops has no .max_mapping_size (SIZE_MAX); 6.x uses swiotlb's */
  maxMappingSize(dev: Device): number {
    return this.profile.globalSwiotlbForce ? SIZE_MAX_NUMBER : this.sw.maxMappingSize(dev);
  }

  // ---- coherent allocations ------------------------------------------------------------------

  private coh: XenCoherentDeps | null = null;
  /** PageXenRemapped: buffers xen_create_contiguous_region made contiguous (by phys) */
  readonly xenRemapped = new Set<number>();

  /** Wires the page sources of the coherent path (done by the machine builder). */
  attachCoherent(d: XenCoherentDeps): void {
    this.coh = d;
  }

  private cohDeps(): XenCoherentDeps {
    if (this.coh === null) throw new InvalidArgumentError("swiotlb-xen: no page allocator attached for coherent allocations");
    return this.coh;
  }

  /** xen_swiotlb_alloc_coherent of the profile's era (or dma_direct_alloc on 5.19+ arm) */
  allocCoherent(dev: Device, size: number, gfp: number, attrs: number): CoherentBuffer | null {
    const d = this.cohDeps();
    if (d.flavour === "arm" && this.profile.xenSwiotlbCoherentIsDmaDirect) return d.direct.allocCoherent(dev, size, gfp, attrs);
    const order = getOrder(size, this.pageShift);
    if (this.profile.xenSwiotlbCoherentIsDmaDirect) {
      // x86, 5.19+
      const mask = dev.coherentDmaMask;
      const sz = Math.ceil(size / XEN_PAGE_SIZE) * XEN_PAGE_SIZE;
      const phys = d.pages.allocPages(gfp, getOrder(sz, this.pageShift));
      if (phys < 0) return null;
      let dma = this.physToDma(dev, phys);
      if (BigInt(dma + sz - 1) > mask || rangeStraddlesPageBoundary(this.p2m, phys, sz)) {
        const r = this.contig.create(phys, order, fls64(mask));
        if (r.rc !== 0) {
          d.pages.freePages(phys, getOrder(sz, this.pageShift));
          return null;
        }
        dma = r.dmaHandle;
        this.xenRemapped.add(phys);
      }
      d.zero(phys, sz);
      return { phys, dma };
    }
    // ≤5.18: GFP zone bits are dropped (pseudo-physical zones say nothing about machine ones)
    const flags = gfp & ~(0x01 | 0x02);
    const sz = 2 ** (order + 12);
    let phys: number;
    if (d.flavour === "arm") {
      // *dma_handle is dma-direct's address; phys = dma_to_phys(dev, *dma_handle)
      const b = d.direct.allocCoherent(dev, sz, flags, attrs);
      if (b === null) return null;
      phys = dev.dmaToPhys(b.dma);
    } else {
      // x86: __get_free_pages, *dma_handle = virt_to_phys
      phys = d.pages.allocPages(flags, order);
      if (phys < 0) return null;
    }
    const mask = dev.coherentDmaMask !== 0n ? dev.coherentDmaMask : 0xffff_ffffn;
    const devAddr = this.physToDma(dev, phys);
    let dma: number;
    if (BigInt(devAddr + sz - 1) <= mask && !rangeStraddlesPageBoundary(this.p2m, phys, sz)) dma = devAddr;
    else {
      const r = this.contig.create(phys, order, fls64(mask));
      if (r.rc !== 0) {
        this.freeCoherentPages(d, dev, sz, phys, phys, attrs);
        return null;
      }
      dma = dev.physToDma(r.dmaHandle);
      this.xenRemapped.add(phys);
    }
    d.zero(phys, sz);
    return { phys, dma };
  }

  /** xen_free_coherent_pages: arm dma_direct_free (handed phys_to_dma(phys)); x86 free_pages */
  private freeCoherentPages(d: XenCoherentDeps, dev: Device, sz: number, phys: number, dmaArg: number, attrs: number): void {
    if (d.flavour === "arm") d.direct.freeCoherent(dev, sz, phys, dmaArg, attrs);
    else d.pages.freePages(phys, getOrder(sz, this.pageShift));
  }

  /** xen_swiotlb_free_coherent of the profile's era (or dma_direct_free on 5.19+ arm) */
  freeCoherent(dev: Device, size: number, phys: number, dma: number, attrs: number): void {
    const d = this.cohDeps();
    if (d.flavour === "arm" && this.profile.xenSwiotlbCoherentIsDmaDirect) return d.direct.freeCoherent(dev, size, phys, dma, attrs);
    const order = getOrder(size, this.pageShift);
    if (this.profile.xenSwiotlbCoherentIsDmaDirect) {
      const sz = Math.ceil(size / XEN_PAGE_SIZE) * XEN_PAGE_SIZE;
      if (BigInt(dma + sz - 1) > dev.coherentDmaMask || rangeStraddlesPageBoundary(this.p2m, phys, sz)) {
        // WARN_ON_ONCE, and the pages stay allocated
        this.log.printOnce("xen_swiotlb_free_coherent", `WARNING: at drivers/xen/swiotlb-xen.c xen_swiotlb_free_coherent for ${dev.name}: buffer at ${hex(phys)} not below the coherent mask or not contiguous`);
        return;
      }
      if (this.xenRemapped.delete(phys)) this.contig.destroy(phys, order);
      d.pages.freePages(phys, getOrder(sz, this.pageShift));
      return;
    }
    const mask = dev.coherentDmaMask !== 0n ? dev.coherentDmaMask : 0xffff_ffffn;
    // xen_dma_to_phys: bfn_to_pfn is the identity on arm; x86's mfn_to_pfn inverts the p2m,
    // which for a buffer it handed out gives that buffer back
    const p = d.flavour === "x86" && this.physToDma(dev, phys) === dma ? phys : this.dmaToPhys(dev, dma);
    const sz = 2 ** (order + 12);
    const warn = BigInt(dma + sz - 1) > mask || rangeStraddlesPageBoundary(this.p2m, p, sz);
    if (warn) this.log.print(`WARNING: at drivers/xen/swiotlb-xen.c xen_swiotlb_free_coherent for ${dev.name}: buffer at ${hex(p)} not below the coherent mask or not contiguous`);
    if (!warn && this.xenRemapped.delete(phys)) this.contig.destroy(p, order);
    this.freeCoherentPages(d, dev, sz, p, dev.physToDma(p), attrs);
  }
}

/** The swiotlb calls swiotlb-xen makes, on the kernel's Swiotlb. */
export function swiotlbForXen(sw: Swiotlb, profile: KernelProfile): SwiotlbForXen {
  const alignArg = profile.allocAlignMaskArg;
  return {
    get forceState() {
      return sw.forceState;
    },
    get defaultMem() {
      return sw.defaultMem;
    },
    // swiotlb_size_or_default(): the default pool's size in bytes
    sizeOrDefault: () => sw.defaultNslabs * 2 ** IO_TLB_SHIFT,
    lateInitWithTbl: (tlb, nslabs) => sw.swiotlbLateInitWithTbl(tlb, nslabs),
    // swiotlb_set_max_segment(PAGE_SIZE): only swiotlb_max_segment() reads it; not modelled
    setMaxSegment: () => {},
    // 6.10+: the fourth argument is alloc_align_mask, which swiotlb-xen passes as 0
    tblMapSingle: (dev, phys, ms, as, dir, attrs, cpu) => sw.tblMapSingle(dev, phys, ms, alignArg ? 0 : as, dir, attrs, cpu),
    tblUnmapSingle: (dev, a, s, dir, attrs) => sw.tblUnmapSingle(dev, a, s, dir, attrs),
    syncSingleForCpu: (dev, a, s, dir) => sw.syncSingleForCpu(dev, a, s, dir),
    syncSingleForDevice: (dev, a, s, dir) => sw.syncSingleForDevice(dev, a, s, dir),
    isSwiotlbBuffer: (dev, phys) => sw.isSwiotlbBuffer(dev, phys),
    isForceBounce: (dev) => sw.isForceBounce(dev),
    maxMappingSize: (dev) => sw.maxMappingSize(dev),
  };
}

/** What swiotlb-xen's coherent path allocates from. */
export interface XenCoherentDeps {
  /** "arm": xen_alloc_coherent_pages is dma_direct_alloc; "x86": __get_free_pages */
  flavour: "arm" | "x86";
  direct: CoherentOps;
  pages: { allocPages(gfp: number, order: number): number; freePages(base: number, order: number): void };
  /** memset through the kernel's linear map (after a remap: the new frames) */
  zero(phys: number, size: number): void;
}
