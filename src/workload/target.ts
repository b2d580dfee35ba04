// What a workload needs from a booted machine: the CPU's view of memory, the DMA mapping API
// (dma_map_page_attrs & co), the device's own view of memory by DMA address, and the swiotlb
// counters. The machine provides it (machine.ts, `MachineDmaTarget`); tests may provide a fake.

import type { DmaDirection } from "../kernel/dma-mapping.js";
import type { ScatterlistEntry } from "../dma/scatterlist.js";

export interface WorkloadDevice {
  /** "<driver> <device>" */
  readonly name: string;
  /** where the driver's buffers come from */
  readonly buffers: "high" | "low";
}

export interface DmaTarget<D extends WorkloadDevice = WorkloadDevice> {
  readonly cpus: number;
  readonly pageSize: number;
  // CPU side
  cpuWrite(phys: number, src: Uint8Array): void;
  cpuRead(phys: number, dst: Uint8Array): void;
  /** a physically contiguous buffer for the device's driver; throws when RAM is exhausted */
  allocBuffer(dev: D, size: number, align: number): number;
  // the DMA API (dma_map_page_attrs etc.); DMA_MAPPING_ERROR is -1
  map(dev: D, phys: number, size: number, dir: DmaDirection, cpu: number): number;
  unmap(dev: D, dma: number, size: number, dir: DmaDirection): void;
  syncForCpu(dev: D, dma: number, size: number, dir: DmaDirection): void;
  syncForDevice(dev: D, dma: number, size: number, dir: DmaDirection): void;
  mapSg(dev: D, sg: ScatterlistEntry[], dir: DmaDirection, cpu: number): number;
  unmapSg(dev: D, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void;
  // device side: reads/writes by DMA address, faulting if the device cannot reach it
  busRead(dev: D, dma: number, dst: Uint8Array): void;
  busWrite(dev: D, dma: number, src: Uint8Array): void;
  /** the mapping's DMA address lies in a swiotlb pool */
  isBounced(dev: D, dma: number): boolean;
  // counters
  /** "swiotlb buffer is full" events so far */
  poolFullCount(): number;
  /** io_tlb_used_hiwater of the default pool (slots) */
  usedHiwater(): number;
  /** io_tlb_used now (slots) — 0 after a clean run */
  used(): number;
}
