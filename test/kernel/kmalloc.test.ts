import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from "../../src/kernel/dma-mapping.js";
import { ARCH_DMA_MINALIGN, DMA_CACHE_ALIGNMENT, dmaKmallocNeedsBounce, kmallocMinalign, kmallocSizeRoundup } from "../../src/kernel/kmalloc.js";

// include/linux/dma-map-ops.h (v6.11): dma_kmalloc_needs_bounce = !dma_kmalloc_safe(dev, dir)
// && !dma_kmalloc_size_aligned(size); safe when CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC is off, the
// device is coherent or dir is DMA_TO_DEVICE; aligned when size >= 2 * ARCH_DMA_MINALIGN or
// kmalloc_size_roundup(size) is a multiple of dma_get_cache_alignment().
// mm/slab_common.c __kmalloc_minalign: ARCH_KMALLOC_MINALIGN only when the option is on and
// is_swiotlb_allocated(), else dma_get_cache_alignment().
describe("kmalloc facts for dma_kmalloc_needs_bounce", () => {
  it("kmalloc_size_roundup with the lowered minimum alignment (8) and without it (64)", () => {
    const low = [1, 8, 9, 16, 17, 32, 33, 64, 65, 96, 97, 128, 129, 192, 193, 256].map((s) => kmallocSizeRoundup(s, 8));
    expect(low).toEqual([8, 8, 16, 16, 32, 32, 64, 64, 96, 96, 128, 128, 192, 192, 256, 256]);
    // kmalloc-8 … kmalloc-32 alias kmalloc-64, kmalloc-96 aliases kmalloc-128
    const high = [1, 32, 64, 65, 96, 128, 192, 200].map((s) => kmallocSizeRoundup(s, 64));
    expect(high).toEqual([64, 64, 64, 128, 128, 128, 192, 256]);
    expect(kmallocSizeRoundup(0, 8)).toBe(0);
  });

  it("minalign: lowered only with the option and a swiotlb pool", () => {
    expect(kmallocMinalign(true, true)).toBe(8);
    expect(kmallocMinalign(true, false)).toBe(DMA_CACHE_ALIGNMENT);
    expect(kmallocMinalign(false, true)).toBe(DMA_CACHE_ALIGNMENT);
  });

  it("which sizes bounce for a non-coherent device reading FROM_DEVICE", () => {
    const bounces = (n: number) => dmaKmallocNeedsBounce(true, false, n, DMA_FROM_DEVICE, 8);
    expect([1, 8, 32, 63, 64, 65, 96, 100, 128, 150, 192, 255, 256, 4096].filter(bounces)).toEqual([1, 8, 32, 65, 96]);
    // safe cases
    expect(dmaKmallocNeedsBounce(true, true, 32, DMA_FROM_DEVICE, 8)).toBe(false);
    expect(dmaKmallocNeedsBounce(true, false, 32, DMA_TO_DEVICE, 8)).toBe(false);
    expect(dmaKmallocNeedsBounce(false, false, 32, DMA_FROM_DEVICE, 8)).toBe(false);
    expect(dmaKmallocNeedsBounce(true, false, 32, DMA_BIDIRECTIONAL, 8)).toBe(true);
  });

  it("property: nothing bounces when kmalloc kept the cache alignment, nor from 2 * ARCH_DMA_MINALIGN up", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 << 20 }), fc.constantFrom(DMA_FROM_DEVICE, DMA_BIDIRECTIONAL), (size, dir) => {
        expect(dmaKmallocNeedsBounce(true, false, size, dir, DMA_CACHE_ALIGNMENT)).toBe(false);
        if (size >= 2 * ARCH_DMA_MINALIGN) expect(dmaKmallocNeedsBounce(true, false, size, dir, 8)).toBe(false);
        return true;
      }),
    );
  });
});
