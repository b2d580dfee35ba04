// A NIC-like ring per device: TX buffers are filled by the CPU and mapped TO_DEVICE, RX
// buffers are mapped FROM_DEVICE and filled by the device. Up to `depth` mappings per device
// are in flight at once (like descriptors posted to a ring), so the swiotlb pool holds many
// buffers at a time; the oldest completes when the ring is full, the rest at the end.

import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE } from "../kernel/dma-mapping.js";
import { Engine, mixedSize, type Arena } from "./engine.js";
import { XorShift32 } from "./rng.js";
import type { WorkloadDevice } from "./target.js";

export interface RingOptions {
  ops: number;
  seed: number;
  /** descriptors in flight per device */
  depth: number;
  /** see WorkloadOptions.progress */
  progress?: ((opsDone: number) => void) | undefined;
}

class Ring {
  readonly phys: Float64Array;
  readonly dma: Float64Array;
  readonly size: Float64Array;
  readonly len: Float64Array;
  readonly seed: Uint32Array;
  readonly rx: Uint8Array;
  readonly bounced: Uint8Array;
  head = 0;
  count = 0;
  constructor(
    readonly depth: number,
    readonly arena: Arena,
  ) {
    this.phys = new Float64Array(depth);
    this.dma = new Float64Array(depth);
    this.size = new Float64Array(depth);
    this.len = new Float64Array(depth);
    this.seed = new Uint32Array(depth);
    this.rx = new Uint8Array(depth);
    this.bounced = new Uint8Array(depth);
  }
}

export function runRing<D extends WorkloadDevice>(e: Engine<D>, o: RingOptions): void {
  const r = new XorShift32(o.seed);
  const page = e.t.pageSize;
  const rings = e.devices.map((d) => new Ring(o.depth, e.arena(d, 65536 + page, o.depth + 1)));

  const complete = (dev: D, ring: Ring): void => {
    const i = ring.head;
    const dma = ring.dma[i]!;
    const size = ring.size[i]!;
    const bounced = ring.bounced[i] === 1;
    if (ring.rx[i] === 1) {
      // the device receives a packet of len <= size bytes; the driver reads only those
      e.deviceWrite(dev, dma, ring.len[i]!, ring.seed[i]!);
      e.t.unmap(dev, dma, size, DMA_FROM_DEVICE);
      e.cpuReadCheck(dev, ring.phys[i]!, dma, ring.len[i]!, ring.seed[i]!, bounced);
    } else {
      e.deviceReadCheck(dev, dma, size, ring.seed[i]!, bounced);
      e.t.unmap(dev, dma, size, DMA_TO_DEVICE);
    }
    ring.head = (i + 1) % ring.depth;
    ring.count--;
  };

  for (let op = 0; op < o.ops; op++) {
    if ((op & 1023) === 0 && o.progress !== undefined) o.progress(op);
    const di = op % e.devices.length;
    const dev = e.devices[di]!;
    const ring = rings[di]!;
    if (ring.count === ring.depth) complete(dev, ring);
    const rx = r.chance(0.5);
    const size = mixedSize(r);
    // a quarter of the buffers start off the page boundary (NET_IP_ALIGN-like offsets)
    const offset = r.chance(0.25) ? r.range(1, page - 1) & ~1 : 0;
    const phys = ring.arena.take() + offset;
    const seed = r.next();
    let len = size;
    if (rx) {
      len = r.range(Math.max(1, size >>> 1), size);
      e.cpuPoison(phys, size);
    } else e.cpuFill(phys, size, seed);
    const dma = e.map(dev, phys, size, rx ? DMA_FROM_DEVICE : DMA_TO_DEVICE, op % e.t.cpus);
    if (dma === DMA_MAPPING_ERROR) continue;
    const i = (ring.head + ring.count) % ring.depth;
    ring.phys[i] = phys;
    ring.dma[i] = dma;
    ring.size[i] = size;
    ring.len[i] = len;
    ring.seed[i] = seed;
    ring.rx[i] = rx ? 1 : 0;
    ring.bounced[i] = e.t.isBounced(dev, dma) ? 1 : 0;
    ring.count++;
  }
  e.devices.forEach((dev, di) => {
    const ring = rings[di]!;
    while (ring.count > 0) complete(dev, ring);
  });
}
