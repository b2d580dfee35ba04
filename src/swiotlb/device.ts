// What swiotlb needs to know about a device (a subset of struct device). The dma layer's
// Device implements it; swiotlb never imports from dma/ (layering: dma sits above swiotlb).

export interface SwiotlbDevice {
  /** "<driver> <device>" as dev_warn prints it, e.g. "e1000e 0000:00:02.0" */
  readonly name: string;
  /** dma_get_min_align_mask(dev): 0 when the device sets none (an unsigned int in the kernel) */
  readonly minAlignMask: number;
  /**
   * dma_get_seg_boundary(dev) as a number. The kernel's default is ULONG_MAX (all ones);
   * any value >= 2^53 - 1 means "all ones" here (get_max_slots is then effectively unbounded).
   */
  readonly segBoundaryMask: number;
  /** dev->dma_mask and dev->bus_dma_limit, exact, for messages and dma_capable */
  readonly dmaMask: bigint;
  readonly busDmaLimit: bigint;
  /** coherent DMA (no cache maintenance); an emulator treats arch syncs as no-ops */
  readonly coherent: boolean;
  /**
   * dev->dma_io_tlb_mem (5.15+): the allocator this device bounces through — the default one,
   * or a restricted-dma-pool registered with Swiotlb.addRestrictedPool under this name.
   * `undefined` means "the default pool" (5.13 has no per-device mem: always the default).
   */
  readonly ioTlbMemName?: string;
  /**
   * true when the device's bus view needs no work from swiotlb: no dma_range_map (DMA address
   * = physical address) and no segment boundary. Lets the map/unmap hot path skip both; a
   * device that does not say so takes the general path, which gives the same answers.
   */
  readonly plainBus?: boolean;
  /** phys_to_dma_unencrypted: the device's DMA view of a CPU physical address; -1 if unreachable */
  physToDma(phys: number): number;
  /** dma_to_phys; -1 if unmatched */
  dmaToPhys(dma: number): number;
  /** dma_capable(dev, addr, size, is_ram) */
  dmaCapable(dma: number, size: number, isRam: boolean): boolean;
}
