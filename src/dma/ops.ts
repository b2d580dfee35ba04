// struct dma_map_ops: what a device's DMA mapping implementation provides. dma-direct is the
// default (dev.dmaOps === null); swiotlb-xen and IOMMU-like layers plug in their own. The
// members the kernel may leave NULL are optional here, with the same fallbacks in mapping.ts
// (no dma_supported = supported; no max_mapping_size = SIZE_MAX; no unmap/sync = nothing).
//
// Addresses are numbers: phys is page_to_phys(page) + offset; DMA_MAPPING_ERROR is -1.

import type { DmaDirection } from "../kernel/dma-mapping.js";
import type { Device } from "./device.js";
import type { ScatterlistEntry } from "./scatterlist.js";

export interface DmaMapOps {
  /** for messages and reports, e.g. "dma-direct", "xen-swiotlb" */
  readonly name: string;
  /** ->map_page: returns the DMA address or DMA_MAPPING_ERROR (-1). `cpu` picks the swiotlb area. */
  mapPage(dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number;
  unmapPage?(dev: Device, dma: number, size: number, dir: DmaDirection, attrs: number): void;
  /** ->map_sg: fills dmaAddress/dmaLength; returns the mapped count, 0 on failure */
  mapSg(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number, cpu: number): number;
  unmapSg?(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection, attrs: number): void;
  syncSingleForCpu?(dev: Device, dma: number, size: number, dir: DmaDirection): void;
  syncSingleForDevice?(dev: Device, dma: number, size: number, dir: DmaDirection): void;
  syncSgForCpu?(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void;
  syncSgForDevice?(dev: Device, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void;
  /** ->dma_supported(dev, mask): may fault, as xen_swiotlb_dma_supported does on a NULL pool */
  dmaSupported?(dev: Device, mask: bigint): boolean;
  /** ->max_mapping_size; a number, SIZE_MAX as SIZE_MAX_NUMBER */
  maxMappingSize?(dev: Device): number;
  /** ->get_required_mask */
  getRequiredMask?(dev: Device): bigint;
}

/** SIZE_MAX as a number: 2^64 (saturated, like maskToNumber); bigint form is U64_MAX. */
export const SIZE_MAX_NUMBER = 2 ** 64;
