// Scatter-gather: each op builds a list of 1..maxSegs segments at scattered addresses (odd
// offsets included), maps it with dma_map_sg, lets the device read (TO_DEVICE) or write
// (FROM_DEVICE) every segment through its own DMA address, and unmaps it with dma_unmap_sg.

import { DMA_FROM_DEVICE, DMA_TO_DEVICE } from "../kernel/dma-mapping.js";
import { sgInitTable, type ScatterlistEntry } from "../dma/scatterlist.js";
import type { Engine } from "./engine.js";
import { XorShift32 } from "./rng.js";
import type { WorkloadDevice } from "./target.js";

export interface SgOptions {
  ops: number;
  seed: number;
  maxSegs: number;
  /** see WorkloadOptions.progress */
  progress?: ((opsDone: number) => void) | undefined;
}

export function runSg<D extends WorkloadDevice>(e: Engine<D>, o: SgOptions): void {
  const r = new XorShift32(o.seed);
  const page = e.t.pageSize;
  const MAXSEG = 32768;
  const arenas = e.devices.map((d) => e.arena(d, MAXSEG + page, o.maxSegs));
  const seeds = new Uint32Array(o.maxSegs);
  for (let op = 0; op < o.ops; op++) {
    if ((op & 1023) === 0 && o.progress !== undefined) o.progress(op);
    const di = op % e.devices.length;
    const dev = e.devices[di]!;
    const nents = r.range(1, o.maxSegs);
    const toDevice = r.chance(0.5);
    const dir = toDevice ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
    const segs: { phys: number; length: number }[] = [];
    for (let k = 0; k < nents; k++) {
      const length = r.chance(0.5) ? r.range(512, MAXSEG) : 4096 * r.range(1, 8);
      const off = r.chance(0.3) ? r.range(0, page - 1) : 0;
      const phys = arenas[di]!.take() + off;
      seeds[k] = r.next();
      if (toDevice) e.cpuFill(phys, length, seeds[k]!);
      else e.cpuPoison(phys, length);
      segs.push({ phys, length });
    }
    const sg: ScatterlistEntry[] = sgInitTable(segs);
    const mapped = e.t.mapSg(dev, sg, dir, op % e.t.cpus);
    if (mapped === 0) {
      e.perDevice.get(dev)!.mapErrors++;
      continue;
    }
    const bounced: boolean[] = [];
    for (let k = 0; k < mapped; k++) {
      const s = sg[k]!;
      bounced.push(e.account(dev, s.dmaAddress, s.dmaLength));
      if (toDevice) e.deviceReadCheck(dev, s.dmaAddress, s.length, seeds[k]!, bounced[k]!);
      else e.deviceWrite(dev, s.dmaAddress, s.length, seeds[k]!);
    }
    e.t.unmapSg(dev, sg, nents, dir);
    if (!toDevice) for (let k = 0; k < mapped; k++) e.cpuReadCheck(dev, sg[k]!.phys, sg[k]!.dmaAddress, sg[k]!.length, seeds[k]!, bounced[k]!);
  }
}
