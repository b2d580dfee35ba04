// What dma-direct needs to know about kmalloc() on arm64 to decide whether a small buffer
// must bounce (v6.5+, CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC; include/linux/dma-map-ops.h
// dma_kmalloc_needs_bounce, mm/slab_common.c __kmalloc_minalign, v6.11 wording).
//
// A non-coherent device writing into a buffer that shares a cache line with another object
// would lose that object's dirty data to the cache invalidation, so when kmalloc() may hand
// out objects smaller than a cache line (its minimum alignment was lowered because swiotlb
// could bounce), FROM_DEVICE / BIDIRECTIONAL mappings whose kmalloc size is not a whole
// number of cache lines bounce.

import { DMA_TO_DEVICE } from "./dma-mapping.js";

/** arm64 ARCH_DMA_MINALIGN (L1_CACHE_BYTES, 128) */
export const ARCH_DMA_MINALIGN = 128;
/** arm64 ARCH_KMALLOC_MINALIGN (8 since v6.5) */
export const ARCH_KMALLOC_MINALIGN = 8;
/**
 * dma_get_cache_alignment() on the emulated arm64 cores: cache_line_size() from CTR_EL0.CWG,
 * 4 (16 words = 64 bytes) on the Cortex-A53/A57/A72 that QEMU virt and the Raspberry Pi 4 use
 */
export const DMA_CACHE_ALIGNMENT = 64;

/** kmalloc-N caches of sizes up to 2 * ARCH_DMA_MINALIGN (the only ones the check looks at) */
const KMALLOC_SIZES = [8, 16, 32, 64, 96, 128, 192, 256] as const;

function bucket(size: number): number {
  for (const s of KMALLOC_SIZES) if (size <= s) return s;
  return 2 ** Math.ceil(Math.log2(size));
}

/**
 * __kmalloc_minalign() when the kmalloc caches are made (kmem_cache_init, after mem_init):
 * ARCH_KMALLOC_MINALIGN when kmalloc bouncing is configured and swiotlb has a pool
 * (is_swiotlb_allocated), else the DMA cache alignment.
 */
export function kmallocMinalign(bounceUnalignedKmalloc: boolean, swiotlbAllocated: boolean): number {
  const min = bounceUnalignedKmalloc && swiotlbAllocated ? ARCH_KMALLOC_MINALIGN : DMA_CACHE_ALIGNMENT;
  return Math.max(min, ARCH_KMALLOC_MINALIGN);
}

/**
 * kmalloc_size_roundup(size): the object size of the cache kmalloc(size) uses. A cache
 * smaller than `minalign` is an alias of the one its aligned size falls in (new_kmalloc_cache).
 */
export function kmallocSizeRoundup(size: number, minalign: number): number {
  if (size === 0) return 0;
  const b = bucket(size);
  return minalign > ARCH_KMALLOC_MINALIGN ? bucket(Math.ceil(b / minalign) * minalign) : b;
}

/**
 * dma_kmalloc_needs_bounce(dev, size, dir) = !dma_kmalloc_safe && !dma_kmalloc_size_aligned.
 * Safe: the option is off, the device is coherent, or the direction is DMA_TO_DEVICE.
 * Aligned: size >= 2 * ARCH_DMA_MINALIGN, or kmalloc_size_roundup(size) is a multiple of
 * dma_get_cache_alignment(). Numbers only (the dma-direct hot path calls it).
 */
export function dmaKmallocNeedsBounce(enabled: boolean, coherent: boolean, size: number, dir: number, minalign: number): boolean {
  if (!enabled || coherent || dir === DMA_TO_DEVICE) return false;
  if (size >= 2 * ARCH_DMA_MINALIGN) return false;
  return kmallocSizeRoundup(size, minalign) % DMA_CACHE_ALIGNMENT !== 0;
}
