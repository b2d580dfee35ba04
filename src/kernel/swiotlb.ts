// Facts of include/linux/swiotlb.h and kernel/dma/swiotlb.c that every layer shares (same
// values in 5.13 and 6.11; spec linux-dma.md §1).
//
// The hot paths (swiotlb/pool.ts, plain-path.ts, bounce.ts) import these as `const` numbers,
// which V8 inlines; swiotlb/plain-path.wat spells them as literals.

export const IO_TLB_SHIFT = 11;
/** one slot ("slab"): 1 << IO_TLB_SHIFT = 2048 bytes */
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** free-run tracking never crosses a segment of this many slots */
export const IO_TLB_SEGSIZE = 128;
/** the default pool: 64 MiB */
export const IO_TLB_DEFAULT_SIZE = 64 << 20;
/** the allocation fallbacks stop at 1 MiB (swiotlb.c IO_TLB_MIN_SLABS) */
export const IO_TLB_MIN_SLABS = (1 << 20) >> IO_TLB_SHIFT;
/** biggest single bounce buffer: one whole segment (256 KiB) */
export const IO_TLB_SEG_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;

/**
 * INVALID_PHYS_ADDR (all ones in a phys_addr_t) as stored in the orig_addr slot array.
 * No physical address is negative, so -1 stands for it (as DMA_MAPPING_ERROR does).
 */
export const INVALID_PHYS_ADDR = -1;

/** enum swiotlb_force (5.13 include/linux/swiotlb.h; 5.17 replaced it with flags) */
export const SWIOTLB_NORMAL = 0;
export const SWIOTLB_FORCE = 1;
export const SWIOTLB_NO_FORCE = 2;
export type SwiotlbForce = 0 | 1 | 2;
/** the names of swiotlb_force values, by value */
export const SWIOTLB_FORCE_NAMES = ["SWIOTLB_NORMAL", "SWIOTLB_FORCE", "SWIOTLB_NO_FORCE"] as const;

/** swiotlb_init flags (5.18+; spec 7.2 [M] for the bit values) */
export const SWIOTLB_VERBOSE = 1 << 0;
export const SWIOTLB_FORCE_FLAG = 1 << 1;
export const SWIOTLB_ANY = 1 << 2;
