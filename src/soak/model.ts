// The soak's independent account of what every byte and slot should be: what the CPU should
// read in each buffer, what the device should read through each live mapping, which pool slots
// each live mapping holds. It is written from the DMA API's documented semantics (what map,
// unmap and sync copy, in which direction, per kernel profile) — never from swiotlb's tables —
// so that the machine can be checked against it.

import type { IoTlbPool } from "../swiotlb/pool.js";
import { BUF_SIZE } from "./ops.js";

export interface ModelSeg {
  buf: number;
  off: number;
  size: number;
  dma: number;
  /** the pool holding its bounce slots, null when the device reaches the buffer directly */
  pool: IoTlbPool | null;
  slot0: number;
  nslots: number;
  /** the device's view of a bounced segment (direct segments are the CPU's bytes) */
  devView: Uint8Array | null;
}

export interface ModelMapping {
  id: number;
  dev: number;
  sg: boolean;
  dir: number;
  segs: ModelSeg[];
  size: number;
  longLived: boolean;
}

export class SoakModel {
  /** what the CPU should read in each buffer */
  readonly cpu: Uint8Array[];
  readonly live = new Map<number, ModelMapping>();
  /** buffer -> the mapping over it, -1 */
  readonly bufOwner: Int32Array;
  /** per pool: slot -> owning mapping id, -1 */
  readonly slotOwner = new Map<IoTlbPool, Int32Array>();
  /** per pool: slots the model says are held */
  readonly slotsHeld = new Map<IoTlbPool, number>();

  constructor(
    readonly nbufs: number,
    pools: readonly IoTlbPool[],
  ) {
    this.cpu = Array.from({ length: nbufs }, () => new Uint8Array(BUF_SIZE));
    this.bufOwner = new Int32Array(nbufs).fill(-1);
    for (const p of pools) {
      this.slotOwner.set(p, new Int32Array(p.nslabs).fill(-1));
      this.slotsHeld.set(p, 0);
    }
  }

  /** the expected bytes the device reads through seg, [o, o+len) of the segment */
  devBytes(seg: ModelSeg, o: number, len: number): Uint8Array {
    if (seg.devView !== null) return seg.devView.subarray(o, o + len);
    return this.cpu[seg.buf]!.subarray(seg.off + o, seg.off + o + len);
  }

  /** the device writes bytes at offset o of seg */
  devWrite(seg: ModelSeg, o: number, bytes: Uint8Array): void {
    if (seg.devView !== null) seg.devView.set(bytes, o);
    else this.cpu[seg.buf]!.set(bytes, seg.off + o);
  }

  /** bounce -> original for [o, o+len) (sync for CPU, unmap of FROM/BIDIR) */
  copyBack(seg: ModelSeg, o: number, len: number): void {
    if (seg.devView === null) return;
    this.cpu[seg.buf]!.set(seg.devView.subarray(o, o + len), seg.off + o);
  }

  /** original -> bounce for [o, o+len) (map, sync for device) */
  copyIn(seg: ModelSeg, o: number, len: number): void {
    if (seg.devView === null) return;
    seg.devView.set(this.cpu[seg.buf]!.subarray(seg.off + o, seg.off + o + len), o);
  }

  /** claims the slots of seg for mapping id; the id of a mapping already holding one of them, or -1 */
  claimSlots(seg: ModelSeg, id: number): number {
    if (seg.pool === null) return -1;
    const owner = this.slotOwner.get(seg.pool)!;
    for (let i = seg.slot0; i < seg.slot0 + seg.nslots; i++) if (owner[i] !== -1) return owner[i]!;
    owner.fill(id, seg.slot0, seg.slot0 + seg.nslots);
    this.slotsHeld.set(seg.pool, this.slotsHeld.get(seg.pool)! + seg.nslots);
    return -1;
  }

  releaseSlots(seg: ModelSeg): void {
    if (seg.pool === null) return;
    this.slotOwner.get(seg.pool)!.fill(-1, seg.slot0, seg.slot0 + seg.nslots);
    this.slotsHeld.set(seg.pool, this.slotsHeld.get(seg.pool)! - seg.nslots);
  }
}
