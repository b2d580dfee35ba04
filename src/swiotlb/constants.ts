// Constants of include/linux/swiotlb.h (same values in 5.13 and 6.11; spec linux-dma.md §1).

export const IO_TLB_SHIFT = 11;
/** one slot ("slab") */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** free-run tracking never crosses a segment of this many slots */
export const IO_TLB_SEGSIZE = 128;
export const IO_TLB_DEFAULT_SIZE = 64 << 20;
/** the allocation fallbacks stop at 1 MiB */
export const IO_TLB_MIN_SLABS = (1 << 20) >> IO_TLB_SHIFT;
/** biggest single bounce buffer: one whole segment (256 KiB) */
export const IO_TLB_SEG_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;

/**
 * INVALID_PHYS_ADDR (all ones in a phys_addr_t) as stored in the orig_addr slot array.
 * No physical address is negative, so -1 stands for it (as DMA_MAPPING_ERROR does).
 */
export const INVALID_PHYS_ADDR = -1;

/** nr_slots(): slots needed for `bytes` (DIV_ROUND_UP by IO_TLB_SIZE) */
export function nrSlots(bytes: number): number {
  return Math.ceil(bytes / IO_TLB_SIZE);
}

/** errno values returned by the init paths */
export const ENOMEM = 12;
export const EINVAL = 22;
