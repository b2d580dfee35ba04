// A driver with long-lived descriptor rings in coherent memory (dma_alloc_coherent), as NICs
// and NVMe queues have them, and streaming buffers mapped against them. Per device: one ring
// of `depth` 16-byte descriptors allocated at start and freed at the end. For each op the CPU
// writes a descriptor (buffer DMA address, length, pattern seed) straight into the ring — no
// sync, the memory is coherent — and maps a TX or RX buffer. The device fetches the
// descriptor by the ring's DMA address and does the transfer from what it read; for RX it
// writes the received length back into the descriptor, which the CPU reads to complete.
// Every descriptor byte the device reads and every completion the CPU reads is checked, as
// are the buffers (the shared integrity check). The coherent allocations must all be back
// when the run ends: a leaked page is a fault.

import { FaultError } from "../errors.js";
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE } from "../kernel/dma-mapping.js";
import { mixedSize, type Engine } from "./engine.js";
import { XorShift32 } from "./rng.js";
import type { WorkloadDevice } from "./target.js";

/** dma_alloc_coherent / dma_free_coherent as a workload reaches them. */
export interface CoherentTarget<D extends WorkloadDevice = WorkloadDevice> {
  /** a zeroed buffer: its physical address and DMA address; null when none is left */
  alloc(dev: D, size: number): { phys: number; dma: number } | null;
  free(dev: D, size: number, phys: number, dma: number): void;
  /** pages the coherent allocator has handed out (to check nothing leaked) */
  usedPages(): number;
}

export interface CoherentOptions {
  ops: number;
  seed: number;
  /** descriptors per ring */
  depth: number;
}

export const DESC_SIZE = 16;
const DESC_ADDR = 0;
const DESC_LEN = 8;
const DESC_SEED = 12;
/** bit 31 of the length word: the device completed the descriptor */
const DESC_DONE = 0x8000_0000;

interface Slot {
  phys: number;
  dma: number;
  size: number;
  len: number;
  seed: number;
  rx: boolean;
  bounced: boolean;
}

export function runCoherent<D extends WorkloadDevice>(e: Engine<D>, ct: CoherentTarget<D>, o: CoherentOptions): void {
  const r = new XorShift32(o.seed);
  const page = e.t.pageSize;
  const usedBefore = ct.usedPages();
  const ringBytes = o.depth * DESC_SIZE;
  const desc = new Uint8Array(DESC_SIZE);
  const dv = new DataView(desc.buffer);
  const seen = new Uint8Array(DESC_SIZE);
  const sv = new DataView(seen.buffer);
  const rings = e.devices.map((d) => {
    const ring = ct.alloc(d, ringBytes);
    if (ring === null) throw new FaultError(`${d.name}: dma_alloc_coherent of a ${ringBytes}-byte descriptor ring failed`);
    return { ring, arena: e.arena(d, 65536 + page, o.depth + 1), slots: new Array<Slot | null>(o.depth).fill(null), head: 0, count: 0 };
  });

  const corrupt = (dev: D, direction: "to-device" | "from-device", dma: number, off: number, expected: number, got: number): void => {
    if (e.firstCorruption === null) e.firstCorruption = { device: dev.name, direction, dma, offset: off, expected, got, bounced: false };
    e.corruptBytes++;
  };

  /** the device fetches descriptor i and must see exactly what the CPU wrote */
  const fetch = (dev: D, ringDma: number, i: number): void => {
    e.t.busRead(dev, ringDma + i * DESC_SIZE, seen);
    for (let k = 0; k < DESC_SIZE; k++) if (seen[k] !== desc[k]) corrupt(dev, "to-device", ringDma + i * DESC_SIZE, k, desc[k]!, seen[k]!);
    e.verifiedBytes += DESC_SIZE;
  };

  const complete = (dev: D, x: (typeof rings)[number]): void => {
    const i = x.head;
    const s = x.slots[i]!;
    const at = x.ring.phys + i * DESC_SIZE;
    if (s.rx) {
      e.t.cpuRead(at, seen);
      const word = sv.getUint32(DESC_LEN, true);
      if (word !== (DESC_DONE | s.len) >>> 0) corrupt(dev, "from-device", x.ring.dma + i * DESC_SIZE, DESC_LEN, DESC_DONE >>> 24, seen[DESC_LEN + 3]!);
      e.verifiedBytes += 4;
      e.t.unmap(dev, s.dma, s.size, DMA_FROM_DEVICE);
      e.cpuReadCheck(dev, s.phys, s.dma, s.len, s.seed, s.bounced);
    } else e.t.unmap(dev, s.dma, s.size, DMA_TO_DEVICE);
    x.slots[i] = null;
    x.head = (i + 1) % o.depth;
    x.count--;
  };

  for (let op = 0; op < o.ops; op++) {
    const di = op % e.devices.length;
    const dev = e.devices[di]!;
    const x = rings[di]!;
    if (x.count === o.depth) complete(dev, x);
    const rx = r.chance(0.5);
    const size = mixedSize(r);
    const phys = x.arena.take();
    const seed = r.next();
    const len = rx ? r.range(Math.max(1, size >>> 1), size) : size;
    if (rx) e.cpuPoison(phys, size);
    else e.cpuFill(phys, size, seed);
    const dma = e.map(dev, phys, size, rx ? DMA_FROM_DEVICE : DMA_TO_DEVICE, op % e.t.cpus);
    if (dma === DMA_MAPPING_ERROR) continue;
    const i = (x.head + x.count) % o.depth;
    // the CPU posts the descriptor: plain stores into coherent memory
    dv.setBigUint64(DESC_ADDR, BigInt(dma), true);
    dv.setUint32(DESC_LEN, size, true);
    dv.setUint32(DESC_SEED, seed, true);
    e.t.cpuWrite(x.ring.phys + i * DESC_SIZE, desc);
    // the device fetches it and works from what it read
    fetch(dev, x.ring.dma, i);
    const bounced = e.t.isBounced(dev, dma);
    const bufDma = Number(sv.getBigUint64(DESC_ADDR, true));
    if (rx) {
      e.deviceWrite(dev, bufDma, len, seed);
      // completion: the received length with the done bit, written into the descriptor
      sv.setUint32(DESC_LEN, (DESC_DONE | len) >>> 0, true);
      e.t.busWrite(dev, x.ring.dma + i * DESC_SIZE + DESC_LEN, seen.subarray(DESC_LEN, DESC_LEN + 4));
    } else e.deviceReadCheck(dev, bufDma, sv.getUint32(DESC_LEN, true), sv.getUint32(DESC_SEED, true), bounced);
    x.slots[i] = { phys, dma, size, len, seed, rx, bounced };
    x.count++;
  }
  e.devices.forEach((dev, di) => {
    const x = rings[di]!;
    while (x.count > 0) complete(dev, x);
    ct.free(dev, ringBytes, x.ring.phys, x.ring.dma);
  });
  const leaked = ct.usedPages() - usedBefore;
  if (leaked !== 0) throw new FaultError(`coherent workload: ${leaked} page(s) of coherent memory not given back at the end of the run`);
}
