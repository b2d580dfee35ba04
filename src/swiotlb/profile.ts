// The one place that says how a kernel version behaves. Code elsewhere reads these flags;
// it never compares version strings.
//
// Allocator eras (spec linux-dma.md §10):
//   "6.x"  = v6.11 (kernel/dma/swiotlb.c at 7296f2301a05), without CONFIG_SWIOTLB_DYNAMIC
//   "5.13" = the v5.13 allocator (swiotlb.c at 95b079d8): one pool, one index, one lock
// Boot profiles add the arm64 mem_init / Xen rules of each release; profiles older than 5.13
// share the 5.13 allocator (5.12's swiotlb.c differs only in how io_tlb_default_mem is
// allocated, which does not change slot choice).

import { UsageError } from "../errors.js";

export type SwiotlbEra = "5.13" | "6.x";
export type KernelVersion = "5.12" | "5.13-rc1" | "5.13" | "6.x";

export const KERNEL_VERSIONS: readonly KernelVersion[] = ["5.12", "5.13-rc1", "5.13", "6.x"];

export interface KernelProfile {
  readonly version: KernelVersion;
  /** the release string `uname -r` and an oops print, e.g. "5.13.0-rc1" */
  readonly release: string;
  readonly era: SwiotlbEra;
  // ---- swiotlb allocator ----
  /** per-CPU areas with their own index/used/lock (6.0+) */
  readonly areas: boolean;
  /** swiotlb_tbl_map_single takes alloc_align_mask (6.10+) instead of alloc_size */
  readonly allocAlignMaskArg: boolean;
  /** pad slots before the first real slot (6.9/6.10+) */
  readonly padSlots: boolean;
  /** io_tlb_slot.list is unsigned short and clipped at the pool tail (6.10+) */
  readonly listU16ClippedTail: boolean;
  /** map copies orig into the bounce buffer whatever the direction (2022 info-leak fix) */
  readonly mapAlwaysCopies: boolean;
  /** swiotlb_bounce applies the tlb offset (5.14+); 5.13 copies from the slot's orig_addr */
  readonly bounceAppliesOffset: boolean;
  /**
   * dma_direct_unmap_page passes attrs unchanged, so FROM/BIDIR copy back twice (v5.1 … v5.17;
   * 9e02977bfad0, v5.18-rc3 and stable 5.17.4, passes attrs | DMA_ATTR_SKIP_CPU_SYNC)
   */
  readonly unmapDoubleCopy: boolean;
  /** map with no pool panics (5.13) instead of warning and failing (6.x) */
  readonly mapWithoutPoolPanics: boolean;
  /** swiotlb_max_mapping_size subtracts roundup(min_align_mask, IO_TLB_SIZE) (6.10+) */
  readonly maxMappingSubtractsMinAlign: boolean;
  /** `swiotlb=` accepts a second number: the area count (6.0+) */
  readonly cmdlineAreas: boolean;
  /** debugfs has io_tlb_used_hiwater (6.7+) */
  readonly debugfsHiwater: boolean;
  /** per-device dma_io_tlb_mem and restricted-dma-pool reserved memory (5.15+) */
  readonly restrictedDmaPool: boolean;
  // ---- dma-direct ----
  /** the bounce decision reads the global swiotlb_force (≤5.14); else per-mem force_bounce + is_swiotlb_active */
  readonly globalSwiotlbForce: boolean;
  /** map_sg reports failure as 0 (old API) — kept for both eras through dma_map_sg */
  readonly mapSgReturnsZero: boolean;
  // ---- arm64 mem_init / Xen ----
  /** mem_init sets SWIOTLB_NO_FORCE when RAM fits under the DMA limit (≤5.18) */
  readonly memInitSetsNoForce: boolean;
  /**
   * arm64 selects DMA_BOUNCE_UNALIGNED_KMALLOC (v6.5+; not in 5.12/5.13): mem_init always asks
   * for a pool, shrunk to 1 MiB per GiB of RAM when ZONE_DMA needs no bouncing
   * (swiotlb_adjust_size); kmalloc's minimum alignment drops to 8 once that pool exists, and
   * dma-direct bounces dma_kmalloc_needs_bounce() buffers (kernel/kmalloc.ts)
   */
  readonly memInitKmallocBounce: boolean;
  /** ...except when xen_swiotlb_detect() (687842ec, 5.13-rc2) */
  readonly noForceSkippedForXen: boolean;
  /** NO_FORCE makes every swiotlb init path allocate nothing and return 0 (2726bf3ff252, 5.13-rc1) */
  readonly noForceSkipsAllocation: boolean;
  /** xen_swiotlb_init refuses an existing pool with -EEXIST (97729b653de5, 5.13-rc2) */
  readonly xenSwiotlbInitChecksExisting: boolean;
  /** xen_mm_init runs swiotlb-xen init when xen_swiotlb_detect() (5.13-rc1+); before: only for dom0 */
  readonly xenMmInitUsesDetect: boolean;
  /** xen_swiotlb_detect honours XENFEAT_direct_mapped / not_direct_mapped (5.13-rc1+) */
  readonly xenDetectUsesFeatures: boolean;
  // ---- swiotlb-xen (drivers/xen/swiotlb-xen.c) — added by the Xen guest side ----
  /** ≤5.12: xen_swiotlb_init finds an existing pool ("IO TLB memory already allocated. Just use it.") and returns -ENOMEM without allocating */
  readonly xenSwiotlbInitReusesExisting: boolean;
  /** 5.13-rc1..5.14: the retry halves nslabs but keeps the old `bytes`, so it asks for the same size again (fixed in 5.15, 4c092c59015f) */
  readonly xenSwiotlbRetryKeepsBytes: boolean;
  /** 5.13-rc1..5.14: xen_swiotlb_dma_supported reads io_tlb_default_mem->end (a NULL pointer when no pool exists); ≤5.12 read the static io_tlb_end */
  readonly xenDmaSupportedDerefsDefaultMem: boolean;
  /** 5.19+: no xen_swiotlb_init; xen_mm_init calls swiotlb_init_late when no default pool exists */
  readonly xenMmInitUsesSwiotlbInitLate: boolean;
  /** 5.19+: on arm swiotlb-xen's .alloc/.free are dma_direct_alloc/free; x86 keeps its own pair without xen_alloc_coherent_pages */
  readonly xenSwiotlbCoherentIsDmaDirect: boolean;
}

const P513: KernelProfile = {
  version: "5.13",
  release: "5.13.0",
  era: "5.13",
  areas: false,
  allocAlignMaskArg: false,
  padSlots: false,
  listU16ClippedTail: false,
  mapAlwaysCopies: false,
  bounceAppliesOffset: false,
  unmapDoubleCopy: true,
  mapWithoutPoolPanics: true,
  maxMappingSubtractsMinAlign: false,
  cmdlineAreas: false,
  debugfsHiwater: false,
  restrictedDmaPool: false,
  globalSwiotlbForce: true,
  mapSgReturnsZero: true,
  memInitSetsNoForce: true,
  memInitKmallocBounce: false,
  noForceSkippedForXen: true,
  noForceSkipsAllocation: true,
  xenSwiotlbInitChecksExisting: true,
  xenMmInitUsesDetect: true,
  xenDetectUsesFeatures: true,
  xenSwiotlbInitReusesExisting: false,
  xenSwiotlbRetryKeepsBytes: true,
  xenDmaSupportedDerefsDefaultMem: true,
  xenMmInitUsesSwiotlbInitLate: false,
  xenSwiotlbCoherentIsDmaDirect: false,
};

const PROFILES: Record<KernelVersion, KernelProfile> = {
  "5.12": {
    ...P513,
    version: "5.12",
    release: "5.12.0",
    noForceSkippedForXen: false,
    // before 2726bf3ff252 NO_FORCE still let the late init allocate a pool
    noForceSkipsAllocation: false,
    xenSwiotlbInitChecksExisting: false,
    xenMmInitUsesDetect: false,
    xenDetectUsesFeatures: false,
    xenSwiotlbInitReusesExisting: true,
    xenSwiotlbRetryKeepsBytes: false,
    xenDmaSupportedDerefsDefaultMem: false,
  },
  "5.13-rc1": {
    ...P513,
    version: "5.13-rc1",
    release: "5.13.0-rc1",
    noForceSkippedForXen: false,
    xenSwiotlbInitChecksExisting: false,
  },
  "5.13": P513,
  "6.x": {
    version: "6.x",
    release: "6.11.0",
    era: "6.x",
    areas: true,
    allocAlignMaskArg: true,
    padSlots: true,
    listU16ClippedTail: true,
    mapAlwaysCopies: true,
    bounceAppliesOffset: true,
    unmapDoubleCopy: false,
    mapWithoutPoolPanics: false,
    maxMappingSubtractsMinAlign: true,
    cmdlineAreas: true,
    debugfsHiwater: true,
    restrictedDmaPool: true,
    globalSwiotlbForce: false,
    mapSgReturnsZero: true,
    memInitSetsNoForce: false,
    memInitKmallocBounce: true,
    noForceSkippedForXen: false,
    noForceSkipsAllocation: false,
    xenSwiotlbInitChecksExisting: true,
    xenMmInitUsesDetect: true,
    xenDetectUsesFeatures: true,
    xenSwiotlbInitReusesExisting: false,
    xenSwiotlbRetryKeepsBytes: false,
    xenDmaSupportedDerefsDefaultMem: false,
    xenMmInitUsesSwiotlbInitLate: true,
    xenSwiotlbCoherentIsDmaDirect: true,
  },
};

export function kernelProfile(version: string): KernelProfile {
  const p = (PROFILES as Record<string, KernelProfile | undefined>)[version];
  if (!p) throw new UsageError(`unknown kernel profile '${version}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  return p;
}

export function isKernelVersion(v: string): v is KernelVersion {
  return (KERNEL_VERSIONS as readonly string[]).includes(v);
}
