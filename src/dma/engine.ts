// An emulated memcpy/fill DMA engine: a bus master with MMIO registers and a descriptor ring.
// It moves bytes only through its device's bus view (DeviceBus), so it sees exactly what a
// real device behind that DMA mask / dma-ranges / stage-2 table would see. A transfer that
// touches an address the device cannot reach sets STATUS = ERROR with an error code and the
// faulting DMA address; it writes nothing (the bus checks a whole range before moving a byte).
//
// Register map (offsets from the window base, little-endian; 4 KiB window):
//
//   off   name        width  access  meaning
//   0x00  ID          32     RO      0x444d4131 ("DMA1")
//   0x04  VERSION     32     RO      1
//   0x08  CTRL        32     WO      doorbell: 1 COPY, 2 FILL, 3 RING, 4 RESET (status/error to 0)
//   0x0c  STATUS      32     RO      0 IDLE, 1 BUSY, 2 DONE, 3 ERROR
//   0x10  SRC         64     RW      source DMA address (COPY)
//   0x18  DST         64     RW      destination DMA address (COPY, FILL)
//   0x20  LEN         32     RW      transfer length in bytes (1 .. 16 MiB)
//   0x24  FILL        32     RW      fill byte (bits 7:0) for FILL
//   0x28  ERROR       32     RO      0 NONE, 1 SRC_FAULT, 2 DST_FAULT, 3 BAD_LENGTH, 4 BAD_COMMAND,
//                                    5 DESC_FAULT (a descriptor could not be read/written),
//                                    6 BAD_RING (RING_COUNT 0 or HEAD/TAIL >= COUNT)
//   0x2c  DONE_COUNT  32     RO      transfers completed since reset (wraps at 2^32)
//   0x30  RING_BASE   64     RW      DMA address of the descriptor ring (16-byte aligned)
//   0x38  RING_COUNT  32     RW      descriptors in the ring
//   0x3c  RING_HEAD   32     RW      next descriptor the engine processes (advanced by the engine)
//   0x40  RING_TAIL   32     RW      one past the last descriptor the driver made ready
//   0x48  ERROR_ADDR  64     RO      DMA address (start of the range) of the failing access
//
// 64-bit registers take 8-byte accesses or 4-byte accesses to either half; 32-bit registers
// take 4-byte accesses only. Any other width, an unaligned access (refused by the CPU) or an
// offset not listed above is a bus error: the guest faults. Writes to RO registers are ignored.
//
// Descriptor (32 bytes, in memory the device reads by DMA):
//   0x00 src u64 · 0x08 dst u64 · 0x10 len u32 · 0x14 flags u32 (bit 0 FILL, bits 15:8 fill byte)
//   0x18 status u32, written back by the engine: 1 done, 0x8000_0000 | ERROR code on failure
//   0x1c reserved u32
// RING processes descriptors from HEAD up to TAIL (modulo COUNT), advancing HEAD; it stops
// at the first failure (HEAD left on the failing descriptor).
//
// Transfers complete synchronously when the doorbell is written: a driver polling STATUS
// sees DONE (or ERROR) on its first read. BUSY exists for drivers written against real ones.
// One doorbell can move up to RING_COUNT × 16 MiB (a 65,536-entry ring: 1 TiB), so the run's
// limit is checked between descriptors (`overLimit`): when it is reached the doorbell ends
// with LimitError, STATUS stays BUSY and HEAD on the first descriptor not processed.

import { FaultError, LimitError, hex } from "../errors.js";
import type { AccessSize, MmioHandler } from "../memory/physical-memory.js";
import { BusFault } from "./bus.js";

/** Where the engine sits on qemu-virt-like boards (RAM from 0x4000_0000). */
export const DMA_ENGINE_BASE_DEFAULT = 0x0a00_0000;
/** Boards with RAM at 0 (Raspberry Pi 4): the legacy-peripheral DMA block's neighbourhood. */
export const DMA_ENGINE_BASE_LOW_RAM = 0xfe00_7000;
export const DMA_ENGINE_WINDOW = 0x1000;

export const ENGINE_ID = 0x444d_4131;
export const ENGINE_VERSION = 1;

export const REG_ID = 0x00;
export const REG_VERSION = 0x04;
export const REG_CTRL = 0x08;
export const REG_STATUS = 0x0c;
export const REG_SRC = 0x10;
export const REG_DST = 0x18;
export const REG_LEN = 0x20;
export const REG_FILL = 0x24;
export const REG_ERROR = 0x28;
export const REG_DONE_COUNT = 0x2c;
export const REG_RING_BASE = 0x30;
export const REG_RING_COUNT = 0x38;
export const REG_RING_HEAD = 0x3c;
export const REG_RING_TAIL = 0x40;
export const REG_ERROR_ADDR = 0x48;

export const CMD_COPY = 1;
export const CMD_FILL = 2;
export const CMD_RING = 3;
export const CMD_RESET = 4;

export const STATUS_IDLE = 0;
export const STATUS_BUSY = 1;
export const STATUS_DONE = 2;
export const STATUS_ERROR = 3;

export const ERR_NONE = 0;
export const ERR_SRC_FAULT = 1;
export const ERR_DST_FAULT = 2;
export const ERR_BAD_LENGTH = 3;
export const ERR_BAD_COMMAND = 4;
export const ERR_DESC_FAULT = 5;
export const ERR_BAD_RING = 6;

export const DESC_SIZE = 32;
export const DESC_FLAG_FILL = 1;
export const DESC_STATUS_DONE = 1;
export const DESC_STATUS_ERROR = 0x8000_0000;

export const MAX_TRANSFER = 16 * 1024 * 1024;

/** What the engine needs of its bus view (DeviceBus provides it). */
export interface EngineBus {
  readInto(dma: number, dst: Uint8Array): void;
  write(dma: number, src: Uint8Array): void;
  fill(dma: number, len: number, byte: number): void;
}

/** A register access the device does not decode: the CPU turns it into a guest fault. */
export class EngineRegisterError extends FaultError {}

/** Picks the engine's MMIO base for a board: the default unless RAM is there. */
export function dmaEngineBaseFor(ramBanks: readonly { base: number; size: number }[]): number {
  for (const base of [DMA_ENGINE_BASE_DEFAULT, DMA_ENGINE_BASE_LOW_RAM]) {
    if (!ramBanks.some((b) => base < b.base + b.size && b.base < base + DMA_ENGINE_WINDOW)) return base;
  }
  throw new FaultError("no free MMIO window for the DMA engine");
}

export class DmaEngine implements MmioHandler {
  src = 0;
  dst = 0;
  len = 0;
  fillByte = 0;
  status = STATUS_IDLE;
  error = ERR_NONE;
  errorAddr = 0;
  doneCount = 0;
  ringBase = 0;
  ringCount = 0;
  ringHead = 0;
  ringTail = 0;
  /** bus faults seen, for reports (the last few) */
  readonly faults: BusFault[] = [];
  /** the run's wall-clock limit, checked inside a doorbell between descriptors (the CPU sets it) */
  overLimit: (() => boolean) | undefined;
  private buf = new Uint8Array(4096);
  private readonly desc = new Uint8Array(DESC_SIZE);
  private readonly descView = new DataView(this.desc.buffer);

  constructor(
    readonly bus: EngineBus,
    readonly name = "dma-engine",
  ) {}

  // ---- MMIO --------------------------------------------------------------------------------

  private bad(off: number, size: number, write: boolean, why: string): never {
    throw new EngineRegisterError(`${this.name}: ${write ? "write" : "read"} of ${size} bytes at register offset ${hex(off)}: ${why}`);
  }

  read(off: number, size: AccessSize): bigint {
    const r64 = this.reg64(off, size, false);
    if (r64 !== undefined) {
      const v = BigInt(r64.value);
      return r64.half === 0 ? (size === 8 ? v : v & 0xffff_ffffn) : v >> 32n;
    }
    if (size !== 4) this.bad(off, size, false, "32-bit register, 4-byte accesses only");
    switch (off) {
      case REG_ID:
        return BigInt(ENGINE_ID);
      case REG_VERSION:
        return BigInt(ENGINE_VERSION);
      case REG_CTRL:
        return 0n;
      case REG_STATUS:
        return BigInt(this.status);
      case REG_LEN:
        return BigInt(this.len);
      case REG_FILL:
        return BigInt(this.fillByte);
      case REG_ERROR:
        return BigInt(this.error);
      case REG_DONE_COUNT:
        return BigInt(this.doneCount >>> 0);
      case REG_RING_COUNT:
        return BigInt(this.ringCount);
      case REG_RING_HEAD:
        return BigInt(this.ringHead);
      case REG_RING_TAIL:
        return BigInt(this.ringTail);
      default:
        return this.bad(off, size, false, "no register here");
    }
  }

  write(off: number, size: AccessSize, value: bigint): void {
    const r64 = this.reg64(off, size, true);
    if (r64 !== undefined) {
      if (off >= REG_ERROR_ADDR && off < REG_ERROR_ADDR + 8) return; // RO
      const old = BigInt(r64.value);
      let v: bigint;
      if (size === 8) v = value;
      else if (r64.half === 0) v = (old & 0xffff_ffff_0000_0000n) | (value & 0xffff_ffffn);
      else v = (old & 0xffff_ffffn) | ((value & 0xffff_ffffn) << 32n);
      // DMA addresses are kept as numbers; a value beyond 2^53 cannot be reached by any bus
      const n = v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
      if (r64.reg === REG_SRC) this.src = n;
      else if (r64.reg === REG_DST) this.dst = n;
      else this.ringBase = n;
      return;
    }
    if (size !== 4) this.bad(off, size, true, "32-bit register, 4-byte accesses only");
    const v = Number(value & 0xffff_ffffn);
    switch (off) {
      case REG_CTRL:
        this.doorbell(v);
        return;
      case REG_LEN:
        this.len = v;
        return;
      case REG_FILL:
        this.fillByte = v & 0xff;
        return;
      case REG_RING_COUNT:
        this.ringCount = v;
        return;
      case REG_RING_HEAD:
        this.ringHead = v;
        return;
      case REG_RING_TAIL:
        this.ringTail = v;
        return;
      case REG_ID:
      case REG_VERSION:
      case REG_STATUS:
      case REG_ERROR:
      case REG_DONE_COUNT:
        return; // RO: ignored
      default:
        this.bad(off, size, true, "no register here");
    }
  }

  private reg64(off: number, size: number, write: boolean): { reg: number; half: 0 | 1; value: number } | undefined {
    for (const reg of [REG_SRC, REG_DST, REG_RING_BASE, REG_ERROR_ADDR]) {
      if (off < reg || off >= reg + 8) continue;
      if (size === 8 && off === reg) return { reg, half: 0, value: this.value64(reg) };
      if (size === 4) return { reg, half: off === reg ? 0 : 1, value: this.value64(reg) };
      this.bad(off, size, write, "64-bit register: 8-byte access or 4-byte access to a half");
    }
    return undefined;
  }

  private value64(reg: number): number {
    return reg === REG_SRC ? this.src : reg === REG_DST ? this.dst : reg === REG_RING_BASE ? this.ringBase : this.errorAddr;
  }

  // ---- engine --------------------------------------------------------------------------------

  reset(): void {
    this.status = STATUS_IDLE;
    this.error = ERR_NONE;
    this.errorAddr = 0;
  }

  private fail(code: number, addr: number): void {
    this.status = STATUS_ERROR;
    this.error = code;
    this.errorAddr = addr;
  }

  /** Fault injection (`dmalab soak --inject device-error@P`): the transfer ends in ERROR when it answers true. */
  faultHook: (() => boolean) | null = null;

  /** CTRL write: runs the command to completion. */
  doorbell(cmd: number): void {
    if (cmd === CMD_RESET) {
      this.reset();
      return;
    }
    this.status = STATUS_BUSY;
    this.error = ERR_NONE;
    this.errorAddr = 0;
    if (this.faultHook !== null && this.faultHook()) {
      // an injected target abort on the destination: nothing moves, as for a real bus error
      this.fail(ERR_DST_FAULT, this.dst);
      return;
    }
    let err: [number, number] | undefined;
    switch (cmd) {
      case CMD_COPY:
        err = this.transfer(false, this.src, this.dst, this.len, 0);
        break;
      case CMD_FILL:
        err = this.transfer(true, 0, this.dst, this.len, this.fillByte);
        break;
      case CMD_RING:
        err = this.runRing();
        break;
      default:
        err = [ERR_BAD_COMMAND, 0];
    }
    if (err) this.fail(err[0], err[1]);
    else this.status = STATUS_DONE;
  }

  /** One copy or fill; returns [error, address] on failure. Nothing is written on failure. */
  private transfer(fill: boolean, src: number, dst: number, len: number, byte: number): [number, number] | undefined {
    if (!(len >= 1 && len <= MAX_TRANSFER)) return [ERR_BAD_LENGTH, fill ? dst : src];
    try {
      // the bus checks a whole range before it moves a byte: a faulting write writes nothing
      if (fill) {
        this.bus.fill(dst, len, byte);
      } else {
        if (this.buf.length < len) this.buf = new Uint8Array(Math.max(len, this.buf.length * 2));
        const b = this.buf.subarray(0, len);
        this.bus.readInto(src, b);
        this.bus.write(dst, b);
      }
    } catch (e) {
      if (e instanceof BusFault) {
        this.noteFault(e);
        return [e.write ? ERR_DST_FAULT : ERR_SRC_FAULT, e.dma];
      }
      throw e;
    }
    this.doneCount = (this.doneCount + 1) >>> 0;
    return undefined;
  }

  private noteFault(e: BusFault): void {
    this.faults.push(e);
    if (this.faults.length > 16) this.faults.shift();
  }

  private runRing(): [number, number] | undefined {
    if (this.ringCount === 0 || this.ringHead >= this.ringCount || this.ringTail >= this.ringCount) return [ERR_BAD_RING, this.ringBase];
    let guard = 0;
    while (this.ringHead !== this.ringTail) {
      if (guard++ > this.ringCount) return [ERR_BAD_RING, this.ringBase];
      if (guard > 1 && this.overLimit?.() === true)
        throw new LimitError(`${this.name}: the run's time limit was reached inside a RING doorbell, at descriptor ${this.ringHead} of ${this.ringCount} (${guard - 1} done)`);
      const at = this.ringBase + this.ringHead * DESC_SIZE;
      try {
        this.bus.readInto(at, this.desc);
      } catch (e) {
        if (e instanceof BusFault) {
          this.noteFault(e);
          return [ERR_DESC_FAULT, at];
        }
        throw e;
      }
      const dv = this.descView;
      const src = Number(dv.getBigUint64(0, true));
      const dst = Number(dv.getBigUint64(8, true));
      const len = dv.getUint32(16, true);
      const flags = dv.getUint32(20, true);
      const fill = (flags & DESC_FLAG_FILL) !== 0;
      const err = this.transfer(fill, src, dst, len, (flags >>> 8) & 0xff);
      const st = new Uint8Array(4);
      new DataView(st.buffer).setUint32(0, err ? (DESC_STATUS_ERROR | err[0]) >>> 0 : DESC_STATUS_DONE, true);
      try {
        this.bus.write(at + 24, st);
      } catch (e) {
        if (e instanceof BusFault) {
          this.noteFault(e);
          return [ERR_DESC_FAULT, at];
        }
        throw e;
      }
      if (err) return err;
      this.ringHead = (this.ringHead + 1) % this.ringCount;
    }
    return undefined;
  }
}
