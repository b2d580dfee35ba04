// The device's own view of memory: a bus master reads and writes by DMA address. Every access
// is checked before a byte moves:
//   1. the range must fit under the device's addressing limit, min_not_zero(dma_mask,
//      bus_dma_limit) — a 32-bit device cannot drive address line 32;
//   2. each piece is translated DMA -> physical: the device's dma_range_map (dma_to_phys), or a
//      pluggable translation (a Xen domU that is not direct-mapped installs its stage-2 walk);
//   3. every translated piece must be RAM.
// Anything else is a BusFault naming the DMA address and length — never a silent read of the
// wrong bytes — and a faulting write writes nothing (the whole range is checked first).

import { FaultError, InvalidArgumentError, hex } from "../errors.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { Device } from "./device.js";

export type BusFaultKind = "mask" | "translation" | "not-ram" | "range";

/** A device-side DMA access that cannot complete. */
export class BusFault extends FaultError {
  constructor(
    readonly device: string,
    readonly dma: number,
    readonly length: number,
    readonly kind: BusFaultKind,
    readonly write: boolean,
    detail: string,
  ) {
    super(`DMA bus fault: ${device} ${write ? "write" : "read"} of ${length} byte${length === 1 ? "" : "s"} at DMA address ${hex(dma)}: ${detail}`);
  }
}

/**
 * How the bus turns a DMA address into a physical one. `toPhys` gives -1 when nothing maps the
 * address; `linearRun` says for how many bytes from `dma` the translation stays linear (a page
 * for a stage-2 walk, the rest of the region for a dma_range_map).
 */
export interface BusTranslation {
  readonly name: string;
  toPhys(dma: number): number;
  linearRun(dma: number): number;
}

/** The device's dma_range_map (identity without one). */
export function rangeMapTranslation(dev: Device): BusTranslation {
  return {
    name: "dma-ranges",
    toPhys: (dma) => dev.dmaToPhys(dma),
    linearRun: (dma) => dev.dmaLinearRun(dma),
  };
}

export class DeviceBus {
  translation: BusTranslation;
  // pieces of the access being checked: physical address and length (reused, grown on demand)
  private segPhys = new Float64Array(8);
  private segLen = new Float64Array(8);
  private segCount = 0;

  constructor(
    readonly dev: Device,
    readonly memory: PhysicalMemory,
    translation?: BusTranslation,
  ) {
    this.translation = translation ?? rangeMapTranslation(dev);
  }

  /** Installs another translation (e.g. a Xen stage-2 walk); null restores dma_to_phys. */
  setTranslation(t: BusTranslation | null): void {
    this.translation = t ?? rangeMapTranslation(this.dev);
  }

  /**
   * Checks [dma, dma+len) and splits it into physical pieces; throws BusFault on the first
   * problem. After a successful call segPhys/segLen[0..segCount) hold the pieces.
   */
  private resolve(dma: number, len: number, write: boolean): void {
    const name = this.dev.name;
    if (!Number.isSafeInteger(dma) || dma < 0 || !Number.isSafeInteger(len) || len < 0)
      throw new BusFault(name, dma, len, "range", write, "not a valid DMA address range");
    this.segCount = 0;
    if (len === 0) return;
    const end = dma + len - 1;
    const limit = this.dev.dmaLimitNumber;
    if (end > limit)
      throw new BusFault(name, dma, len, "mask", write, `beyond the device's DMA limit ${hex(this.dev.dmaLimit)} (dma_mask ${hex(this.dev.dmaMask)}, bus_dma_limit ${hex(this.dev.busDmaLimit)})`);
    const t = this.translation;
    let a = dma;
    let left = len;
    while (left > 0) {
      const p = t.toPhys(a);
      if (p < 0) throw new BusFault(name, dma, len, "translation", write, `${t.name} translates nothing at ${hex(a)}`);
      const run = t.linearRun(a);
      if (!(run >= 1)) throw new BusFault(name, dma, len, "translation", write, `${t.name} translates nothing at ${hex(a)}`);
      let n = run < left ? run : left;
      // a piece never spans two RAM banks (each bank is its own backing store)
      const bank = this.memory.bankAt(p);
      if (bank !== undefined && p + n > bank.end) n = bank.end - p;
      if (bank === undefined || !this.memory.isRam(p, n))
        throw new BusFault(name, dma, len, "not-ram", write, `DMA ${hex(a)} is physical ${hex(p)}, which is not RAM`);
      const k = this.segCount;
      // contiguous with the previous piece in the same bank: merge (one copy instead of two)
      if (k > 0 && this.segPhys[k - 1]! + this.segLen[k - 1]! === p && p !== bank.base) {
        this.segLen[k - 1] = this.segLen[k - 1]! + n;
      } else {
        if (k === this.segPhys.length) this.grow();
        this.segPhys[k] = p;
        this.segLen[k] = n;
        this.segCount = k + 1;
      }
      a += n;
      left -= n;
    }
  }

  private grow(): void {
    const np = new Float64Array(this.segPhys.length * 2);
    const nl = new Float64Array(this.segLen.length * 2);
    np.set(this.segPhys);
    nl.set(this.segLen);
    this.segPhys = np;
    this.segLen = nl;
  }

  /** The physical address of a single-piece range (throws if it faults or is split). */
  translate(dma: number, len: number): number {
    this.resolve(dma, len, false);
    if (this.segCount !== 1) throw new BusFault(this.dev.name, dma, len, "translation", false, "range is not physically contiguous");
    return this.segPhys[0]!;
  }

  /** True when the device could read (write) [dma, dma+len) without a fault. */
  canAccess(dma: number, len: number, write = false): boolean {
    try {
      this.resolve(dma, len, write);
      return true;
    } catch (e) {
      if (e instanceof BusFault) return false;
      throw e;
    }
  }

  /** Device reads [dma, dma+dst.length) into dst. */
  readInto(dma: number, dst: Uint8Array): void {
    this.resolve(dma, dst.length, false);
    const n = this.segCount;
    if (n === 1) {
      this.memory.readInto(this.segPhys[0]!, dst);
      return;
    }
    let off = 0;
    for (let i = 0; i < n; i++) {
      const l = this.segLen[i]!;
      this.memory.readInto(this.segPhys[i]!, dst.subarray(off, off + l));
      off += l;
    }
  }

  read(dma: number, len: number): Uint8Array {
    if (!Number.isSafeInteger(len) || len < 0) throw new InvalidArgumentError(`bus read length ${String(len)}: must be a non-negative integer`);
    const out = new Uint8Array(len);
    this.readInto(dma, out);
    return out;
  }

  /** Device writes src at dma; nothing is written if any part faults. */
  write(dma: number, src: Uint8Array): void {
    this.resolve(dma, src.length, true);
    const n = this.segCount;
    if (n === 1) {
      this.memory.write(this.segPhys[0]!, src);
      return;
    }
    let off = 0;
    for (let i = 0; i < n; i++) {
      const l = this.segLen[i]!;
      this.memory.write(this.segPhys[i]!, src.subarray(off, off + l));
      off += l;
    }
  }

  /** Device fills [dma, dma+len) with byte. */
  fill(dma: number, len: number, byte: number): void {
    this.resolve(dma, len, true);
    for (let i = 0; i < this.segCount; i++) this.memory.fill(this.segPhys[i]!, this.segLen[i]!, byte);
  }

  /**
   * Device-to-device-memory copy, both sides by DMA address (what a memcpy engine does).
   * Both ranges are checked before any byte moves.
   */
  copy(dstDma: number, srcDma: number, len: number): void {
    if (len === 0) return;
    // fast path: both contiguous
    this.resolve(srcDma, len, false);
    if (this.segCount === 1) {
      const src = this.segPhys[0]!;
      this.resolve(dstDma, len, true);
      if (this.segCount === 1) {
        this.memory.copy(this.segPhys[0]!, src, len);
        return;
      }
    }
    const tmp = this.read(srcDma, len);
    this.write(dstDma, tmp);
  }

  read8(dma: number): number {
    this.resolve(dma, 1, false);
    return this.memory.read8(this.segPhys[0]!);
  }
  read16(dma: number): number {
    this.resolve(dma, 2, false);
    if (this.segCount === 1) return this.memory.read16(this.segPhys[0]!);
    return this.scalarSplitRead(dma, 2);
  }
  read32(dma: number): number {
    this.resolve(dma, 4, false);
    if (this.segCount === 1) return this.memory.read32(this.segPhys[0]!);
    return this.scalarSplitRead(dma, 4);
  }
  read64(dma: number): bigint {
    this.resolve(dma, 8, false);
    if (this.segCount === 1) return this.memory.read64(this.segPhys[0]!);
    const b = this.read(dma, 8);
    return new DataView(b.buffer).getBigUint64(0, true);
  }

  private scalarSplitRead(dma: number, size: number): number {
    const b = this.read(dma, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return v;
  }

  write8(dma: number, v: number): void {
    this.resolve(dma, 1, true);
    this.memory.write8(this.segPhys[0]!, v);
  }
  write16(dma: number, v: number): void {
    this.resolve(dma, 2, true);
    if (this.segCount === 1) this.memory.write16(this.segPhys[0]!, v);
    else this.write(dma, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff));
  }
  write32(dma: number, v: number): void {
    this.resolve(dma, 4, true);
    if (this.segCount === 1) this.memory.write32(this.segPhys[0]!, v);
    else this.write(dma, Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff));
  }
  write64(dma: number, v: bigint | number): void {
    this.resolve(dma, 8, true);
    if (this.segCount === 1) this.memory.write64(this.segPhys[0]!, v);
    else {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(v)), true);
      this.write(dma, b);
    }
  }
}
