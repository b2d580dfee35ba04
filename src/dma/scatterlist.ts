// struct scatterlist, reduced to what a DMA mapping needs: the CPU side (page + offset as one
// physical address, length) and the DMA side that map_sg fills in (dma_address, dma_length).

import { InvalidArgumentError, hex } from "../errors.js";
import { DMA_MAPPING_ERROR } from "../kernel/dma-mapping.js";

export interface ScatterlistEntry {
  /** page_to_phys(sg_page(sg)) + sg->offset */
  phys: number;
  /** sg->length */
  length: number;
  /** sg_dma_address(sg): set by map_sg */
  dmaAddress: number;
  /** sg_dma_len(sg): set by map_sg */
  dmaLength: number;
}

/** sg_init_table + sg_set_page for each (phys, length). */
export function sgInitTable(segments: readonly { phys: number; length: number }[]): ScatterlistEntry[] {
  return segments.map((s, i) => {
    if (!Number.isSafeInteger(s.phys) || s.phys < 0)
      throw new InvalidArgumentError(`scatterlist[${i}] address ${String(s.phys)}: must be a physical address`);
    if (!Number.isSafeInteger(s.length) || s.length <= 0 || s.length > 0xffff_ffff)
      throw new InvalidArgumentError(`scatterlist[${i}] length ${String(s.length)} at ${hex(s.phys)}: must be 1..2^32-1 (unsigned int)`);
    return { phys: s.phys, length: s.length, dmaAddress: DMA_MAPPING_ERROR, dmaLength: 0 };
  });
}
