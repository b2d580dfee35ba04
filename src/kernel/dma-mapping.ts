// Facts from include/linux/dma-mapping.h and dma-direction.h that every layer shares.
//
// DMA addresses are plain numbers on every hot path. The kernel's DMA_MAPPING_ERROR is all
// ones in a 64-bit dma_addr_t; as a number it is represented by -1 (no valid DMA address is
// negative), and converts to exactly 0xffff_ffff_ffff_ffff with BigInt.asUintN(64, -1n).

import { InvalidArgumentError } from "../errors.js";

export const DMA_MAPPING_ERROR = -1;

/** dma_data_direction */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
export type DmaDirection = 0 | 1 | 2 | 3;

export const DMA_DIRECTION_NAMES = ["DMA_BIDIRECTIONAL", "DMA_TO_DEVICE", "DMA_FROM_DEVICE", "DMA_NONE"] as const;

export function validDmaDirection(dir: number): dir is 0 | 1 | 2 {
  return dir === 0 || dir === 1 || dir === 2;
}

/** DMA attributes (bits) */
/** @public: the rest of the table, unused here */
export const DMA_ATTR_WEAK_ORDERING = 1 << 1;
/** @public: the rest of the table, unused here */
export const DMA_ATTR_WRITE_COMBINE = 1 << 2;
/** @public: the rest of the table, unused here */
export const DMA_ATTR_NO_KERNEL_MAPPING = 1 << 4;
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;
/** @public: the rest of the table, unused here */
export const DMA_ATTR_FORCE_CONTIGUOUS = 1 << 6;
/** @public: the rest of the table, unused here */
export const DMA_ATTR_ALLOC_SINGLE_PAGES = 1 << 7;
export const DMA_ATTR_NO_WARN = 1 << 8;
/** @public: the rest of the table, unused here */
export const DMA_ATTR_PRIVILEGED = 1 << 9;

/** DMA_BIT_MASK(n) as an exact 64-bit value. */
export function dmaBitMask(n: number): bigint {
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new InvalidArgumentError(`DMA_BIT_MASK(${n}): n must be an integer in 0..64`);
  return n === 64 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(n)) - 1n;
}

const TWO_POW_53 = 1n << 53n;

/**
 * A 64-bit mask or limit as a number for hot-path comparisons against DMA addresses
 * (which stay below 2^53): masks above 2^53 saturate to 2^64, which compares the same way.
 */
export function maskToNumber(mask: bigint): number {
  // TWO_POW_53, not `1n << 53n`: that would make a new BigInt on every (hot-path) call
  return mask >= TWO_POW_53 ? 2 ** 64 : Number(mask);
}

/** min_not_zero() on 64-bit values */
export function minNotZero(a: bigint, b: bigint): bigint {
  if (a === 0n) return b;
  if (b === 0n) return a;
  return a < b ? a : b;
}

export const U64_MAX = 0xffff_ffff_ffff_ffffn;

// machine/boot.ts still takes these two from here; errno values live in ./errno.ts
