// Copying to and from a guest the way Xen/arm does (guestcopy.c): a guest pointer is a
// virtual address; with the guest MMU off VA == IPA; each 4 KiB page is translated through
// the domain's P2M and must be RAM of the domain (p2m_is_ram; read-only RAM refuses a
// write). Copies go page by page, so a copy that fails halfway has already moved the bytes
// before the bad page — as a real copy_to_guest does. Failure is a return value, never a
// host exception: the hypercall turns it into -EFAULT or a short count.

import { FaultError, hex } from "../../errors.js";
import { MemoryFault, type PhysicalMemory } from "../../memory/physical-memory.js";
import type { Domain } from "./domain.js";
import { XEN_PAGE_SIZE } from "./public.js";

/** Stage-1 translation of a guest VA (for a guest with its MMU on); undefined = not mapped. */
export type Stage1 = (va: number, write: boolean) => number | undefined;

/** The accessors the structure helpers need; PhysicalMemory and GuestMemory both have them. */
export interface ByteAccess {
  read16(addr: number): number;
  read32(addr: number): number;
  read64(addr: number): bigint;
  write16(addr: number, v: number): void;
  write32(addr: number, v: number): void;
  write64(addr: number, v: bigint | number): void;
  write(addr: number, src: Uint8Array): void;
  read(addr: number, len: number): Uint8Array;
}

export class GuestMemory implements ByteAccess {
  constructor(
    readonly mem: PhysicalMemory,
    readonly domain: Domain,
    readonly stage1?: Stage1,
  ) {}

  /** Machine address of one guest byte, or undefined (the page is not accessible). */
  translate(va: number, write: boolean): number | undefined {
    if (!Number.isSafeInteger(va) || va < 0) return undefined;
    const ipa = this.stage1 ? this.stage1(va, write) : va;
    if (ipa === undefined || !Number.isSafeInteger(ipa) || ipa < 0) return undefined;
    const e = this.domain.p2m.lookup(Math.floor(ipa / XEN_PAGE_SIZE));
    if (e === undefined) return undefined;
    if (e.type !== "ram_rw" && !(e.type === "ram_ro" && !write)) return undefined;
    return e.mfn * XEN_PAGE_SIZE + (ipa % XEN_PAGE_SIZE);
  }

  /** Copy len bytes from the guest; undefined when any page is not readable. */
  tryRead(va: number | bigint, len: number): Uint8Array | undefined {
    const a = toAddr(va);
    if (a === undefined) return undefined;
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const ma = this.translate(a + done, false);
      if (ma === undefined) return undefined;
      const n = Math.min(len - done, XEN_PAGE_SIZE - ((a + done) % XEN_PAGE_SIZE));
      try {
        this.mem.readInto(ma, out.subarray(done, done + n));
      } catch (e) {
        // a frame that is not RAM: the hypercall answers -EFAULT, as Xen's copy_from_guest
        if (e instanceof MemoryFault) return undefined;
        throw e;
      }
      done += n;
    }
    return out;
  }

  /** Copy bytes to the guest; false when a page is not writable (earlier pages are written). */
  tryWrite(va: number | bigint, src: Uint8Array): boolean {
    const a = toAddr(va);
    if (a === undefined) return false;
    let done = 0;
    while (done < src.length) {
      const ma = this.translate(a + done, true);
      if (ma === undefined) return false;
      const n = Math.min(src.length - done, XEN_PAGE_SIZE - ((a + done) % XEN_PAGE_SIZE));
      try {
        this.mem.write(ma, src.subarray(done, done + n));
      } catch (e) {
        // a frame that is not RAM: the hypercall answers -EFAULT, as Xen's copy_to_guest
        if (e instanceof MemoryFault) return false;
        throw e;
      }
      done += n;
    }
    return true;
  }

  tryRead64(va: number | bigint): bigint | undefined {
    const b = this.tryRead(va, 8);
    return b === undefined ? undefined : new DataView(b.buffer).getBigUint64(0, true);
  }
  tryWrite64(va: number | bigint, v: bigint): boolean {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    return this.tryWrite(va, b);
  }

  // ---- throwing accessors (test helpers, structure builders) ------------------------------

  private fault(va: number, len: number, write: boolean): FaultError {
    return new FaultError(`${this.domain}: guest ${write ? "write" : "read"} of ${len} bytes at ${hex(va)}: not RAM of the domain`);
  }
  read(addr: number, len: number): Uint8Array {
    const b = this.tryRead(addr, len);
    if (b === undefined) throw this.fault(addr, len, false);
    return b;
  }
  write(addr: number, src: Uint8Array): void {
    if (!this.tryWrite(addr, src)) throw this.fault(addr, src.length, true);
  }
  read16(addr: number): number {
    const b = this.read(addr, 2);
    return b[0]! | (b[1]! << 8);
  }
  read32(addr: number): number {
    return new DataView(this.read(addr, 4).buffer).getUint32(0, true);
  }
  read64(addr: number): bigint {
    return new DataView(this.read(addr, 8).buffer).getBigUint64(0, true);
  }
  write16(addr: number, v: number): void {
    this.write(addr, new Uint8Array([v & 0xff, (v >>> 8) & 0xff]));
  }
  write32(addr: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.write(addr, b);
  }
  write64(addr: number, v: bigint | number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    this.write(addr, b);
  }
}

/** A 64-bit guest pointer as a number, or undefined when it cannot be a guest address. */
function toAddr(va: number | bigint): number | undefined {
  if (typeof va === "bigint") return va <= BigInt(Number.MAX_SAFE_INTEGER) && va >= 0n ? Number(va) : undefined;
  return Number.isSafeInteger(va) && va >= 0 ? va : undefined;
}
