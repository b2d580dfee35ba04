// The shared machinery of every workload: per-device buffer arenas, the map bookkeeping
// (bounced or direct), and the integrity check. Buffers are described by (seed, length)
// so verification needs no copies; two scratch buffers are reused for every transfer.

import { DMA_MAPPING_ERROR, type DmaDirection } from "../kernel/dma-mapping.js";
import { fillPattern } from "./rng.js";
import { emptyDeviceStats, type CorruptionReport, type DeviceStats } from "./stats.js";
import type { DmaTarget, WorkloadDevice } from "./target.js";

/** Upper bound of one transfer (swiotlb cannot bounce more than 256 KiB in one mapping). */
export const MAX_TRANSFER = 256 * 1024;

/** A device's buffer arena: `nslots` slots of `slotBytes`, handed out round-robin. */
export class Arena {
  private nextSlot = 0;
  constructor(
    readonly base: number,
    readonly slotBytes: number,
    readonly nslots: number,
  ) {}
  /** the next slot's physical address */
  take(): number {
    const a = this.base + this.nextSlot * this.slotBytes;
    this.nextSlot = (this.nextSlot + 1) % this.nslots;
    return a;
  }
}

export class Engine<D extends WorkloadDevice> {
  readonly expect = new Uint8Array(MAX_TRANSFER + 8);
  readonly got = new Uint8Array(MAX_TRANSFER + 8);
  readonly perDevice = new Map<D, DeviceStats>();
  verifiedBytes = 0;
  verifiedBouncedBytes = 0;
  corruptBytes = 0;
  firstCorruption: CorruptionReport | null = null;

  constructor(
    readonly t: DmaTarget<D>,
    readonly devices: readonly D[],
  ) {
    for (const d of devices) this.perDevice.set(d, emptyDeviceStats(d.name));
  }

  /** One arena per device, placed where its driver takes buffers (high or low RAM). */
  arena(dev: D, slotBytes: number, nslots: number): Arena {
    const page = this.t.pageSize;
    const slot = Math.ceil(slotBytes / page) * page;
    return new Arena(this.t.allocBuffer(dev, slot * nslots, page), slot, nslots);
  }

  /** dma_map_page_attrs with the bookkeeping; DMA_MAPPING_ERROR is counted, not thrown. */
  map(dev: D, phys: number, size: number, dir: DmaDirection, cpu: number): number {
    const dma = this.t.map(dev, phys, size, dir, cpu);
    this.account(dev, dma, size);
    return dma;
  }

  account(dev: D, dma: number, size: number): boolean {
    const s = this.perDevice.get(dev)!;
    if (dma === DMA_MAPPING_ERROR) {
      s.mapErrors++;
      return false;
    }
    s.mappings++;
    if (this.t.isBounced(dev, dma)) {
      s.bounced++;
      s.bouncedBytes += size;
      return true;
    }
    s.direct++;
    s.directBytes += size;
    return false;
  }

  /** CPU fills [phys, phys+len) with the pattern of `seed`. */
  cpuFill(phys: number, len: number, seed: number): void {
    fillPattern(this.expect, len, seed);
    this.t.cpuWrite(phys, this.expect.subarray(0, len));
  }

  /** CPU writes a poison byte over a receive buffer so a missing copy-back shows. */
  cpuPoison(phys: number, len: number): void {
    this.got.fill(0xa5, 0, len);
    this.t.cpuWrite(phys, this.got.subarray(0, len));
  }

  /** Device reads len bytes at dma; they must equal the pattern of `seed` (CPU→device). */
  deviceReadCheck(dev: D, dma: number, len: number, seed: number, bounced: boolean): void {
    fillPattern(this.expect, len, seed);
    const got = this.got.subarray(0, len);
    this.t.busRead(dev, dma, got);
    this.compare(dev, "to-device", dma, len, bounced);
  }

  /** Device writes the pattern of `seed` at dma. */
  deviceWrite(dev: D, dma: number, len: number, seed: number): void {
    fillPattern(this.expect, len, seed);
    this.t.busWrite(dev, dma, this.expect.subarray(0, len));
  }

  /** CPU reads its buffer back; it must equal the pattern of `seed` (device→CPU). */
  cpuReadCheck(dev: D, phys: number, dma: number, len: number, seed: number, bounced: boolean): void {
    fillPattern(this.expect, len, seed);
    this.t.cpuRead(phys, this.got.subarray(0, len));
    this.compare(dev, "from-device", dma, len, bounced);
  }

  private compare(dev: D, direction: CorruptionReport["direction"], dma: number, len: number, bounced: boolean): void {
    const e = this.expect;
    const g = this.got;
    let bad = 0;
    for (let i = 0; i < len; i++) {
      if (e[i] !== g[i]) {
        if (bad === 0 && this.firstCorruption === null)
          this.firstCorruption = { device: dev.name, direction, dma, offset: i, expected: e[i]!, got: g[i]!, bounced };
        bad++;
      }
    }
    this.verifiedBytes += len;
    if (bounced) this.verifiedBouncedBytes += len;
    this.corruptBytes += bad;
  }
}

/** Mixed transfer sizes: mostly packets, some pages, a few large blocks (max 64 KiB). */
export function mixedSize(r: { next(): number; range(lo: number, hi: number): number }): number {
  const p = r.next() % 100;
  if (p < 45) return r.range(60, 256);
  if (p < 80) return r.range(257, 1514);
  if (p < 92) return 4096 * r.range(1, 4);
  if (p < 97) return r.range(4097, 16384);
  return 65536;
}
