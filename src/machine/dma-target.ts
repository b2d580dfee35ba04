// The booted machine as a workload target: CPU accesses through PhysicalMemory, mappings
// through the DMA API (dma_map_page_attrs & co, so dma-debug and per-device dma_ops apply),
// device accesses through each device's DeviceBus, counters from swiotlb.

import { InputError, hex } from "../errors.js";
import type { DmaDirection } from "../kernel/dma-mapping.js";
import type { ScatterlistEntry } from "../dma/scatterlist.js";
import type { DmaTarget } from "../workload/target.js";
import type { Machine, MachineDevice } from "./machine.js";

export class MachineDmaTarget implements DmaTarget<MachineDevice> {
  readonly cpus: number;
  readonly pageSize: number;

  constructor(readonly m: Machine) {
    this.cpus = m.cpus;
    this.pageSize = m.memory.granule;
  }

  /** Nothing to release: the target holds no listener (pool-full is the swiotlb's own count). */
  close(): void {}

  cpuWrite(phys: number, src: Uint8Array): void {
    this.m.memory.write(phys, src);
  }
  cpuRead(phys: number, dst: Uint8Array): void {
    this.m.memory.readInto(phys, dst);
  }

  allocBuffer(dev: MachineDevice, size: number, align: number): number {
    const mb = this.m.memblock;
    const name = `${dev.desc.driver} buffers`;
    const a = dev.buffers === "low" ? mb.allocBottomUp(size, align, 0, Infinity, name) : mb.allocTopDown(size, align, Infinity, name);
    // the workload's buffers do not fit the machine as described: the input is at fault (exit 2),
    // not the emulated kernel, and no limit of dmalab's was reached
    if (a < 0) {
      const ram = this.m.desc.ram.reduce((s, b) => s + b.size, 0);
      throw new InputError(
        `${dev.name}: the workload's ${hex(size)}-byte buffer (${align}-byte aligned) does not fit in what is left of the machine's ${hex(ram)} bytes of RAM after the boot's allocations: give the machine more RAM`,
        this.m.desc.name,
      );
    }
    return a;
  }

  map(dev: MachineDevice, phys: number, size: number, dir: DmaDirection, cpu: number): number {
    const g = this.pageSize;
    const page = Math.floor(phys / g) * g;
    const dma = this.m.api.dmaMapPageAttrs(dev.dev, page, phys - page, size, dir, 0, cpu);
    // the workload drivers check every map (dma-debug counts that as dma_mapping_error)
    this.m.api.dmaMappingError(dev.dev, dma);
    return dma;
  }
  unmap(dev: MachineDevice, dma: number, size: number, dir: DmaDirection): void {
    this.m.api.dmaUnmapPageAttrs(dev.dev, dma, size, dir, 0);
  }
  syncForCpu(dev: MachineDevice, dma: number, size: number, dir: DmaDirection): void {
    this.m.api.dmaSyncSingleForCpu(dev.dev, dma, size, dir);
  }
  syncForDevice(dev: MachineDevice, dma: number, size: number, dir: DmaDirection): void {
    this.m.api.dmaSyncSingleForDevice(dev.dev, dma, size, dir);
  }
  mapSg(dev: MachineDevice, sg: ScatterlistEntry[], dir: DmaDirection, cpu: number): number {
    return this.m.api.dmaMapSgAttrs(dev.dev, sg, sg.length, dir, 0, cpu);
  }
  unmapSg(dev: MachineDevice, sg: ScatterlistEntry[], nents: number, dir: DmaDirection): void {
    this.m.api.dmaUnmapSgAttrs(dev.dev, sg, nents, dir, 0);
  }

  busRead(dev: MachineDevice, dma: number, dst: Uint8Array): void {
    dev.bus.readInto(dma, dst);
  }
  busWrite(dev: MachineDevice, dma: number, src: Uint8Array): void {
    dev.bus.write(dma, src);
  }

  isBounced(dev: MachineDevice, dma: number): boolean {
    const phys = dev.dev.dmaToPhys(dma);
    return phys >= 0 && this.m.swiotlb.isSwiotlbBuffer(dev.dev, phys);
  }

  poolFullCount(): number {
    // the swiotlb counts every "buffer is full", also those the rate limit kept out of dmesg
    return this.m.swiotlb.fullCount;
  }
  usedHiwater(): number {
    let h = this.m.swiotlb.defaultMem?.usedHiwater ?? 0;
    for (const r of this.m.swiotlb.restrictedMems.values()) h = Math.max(h, r.usedHiwater);
    return h;
  }
  used(): number {
    let u = this.m.swiotlb.defaultMem?.used ?? 0;
    for (const r of this.m.swiotlb.restrictedMems.values()) u += r.used;
    return u;
  }
}
