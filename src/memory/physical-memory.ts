// The arm64 physical address space: sparse RAM banks, reserved regions, MMIO windows.
//
// Addresses are plain numbers: a 48-bit (or even 52-bit) physical address is exact in a
// double, so no BigInt is needed anywhere on the access paths. 64-bit *values* use BigInt.
// RAM is backed by fixed-size chunks allocated on first touch, so a 16 GiB board costs only
// what is used. Chunks are views of shared memory (a WebAssembly memory, see arena.ts, else a
// SharedArrayBuffer each), so worker threads and Unicorn share the same bytes.

import { FaultError, InvalidArgumentError, hex } from "../errors.js";
import { ChunkArena, type ArenaMemory } from "./arena.js";

export const DEFAULT_CHUNK_SIZE = 2 * 1024 * 1024;

/**
 * Host cache colouring of RAM chunks. Every chunk starts `colour` cache lines into its own
 * SharedArrayBuffer, the colour taken from the chunk's physical address. Without it, data at
 * the same offset in every chunk lands in the same host cache sets, and power-of-two strides
 * (swiotlb slots every 2 KiB, rings of page-sized buffers) use 1/32 of the sets: a pingpong
 * walking a 64 MiB pool misses the L3 at every slot (measured ~105 ns per map+unmap on a
 * 2-core EPYC, ~55 ns coloured). The emulated addresses are untouched; only where the host
 * keeps each chunk moves, by a whole number of cache lines (word and 64-bit views stay aligned).
 */
export const CHUNK_COLOURS = 32;
const CACHE_LINE = 64;
export function chunkColour(chunkAddr: number, chunkSize: number): number {
  return (Math.floor(chunkAddr / chunkSize) % CHUNK_COLOURS) * CACHE_LINE;
}
/** copy() moves aligned ranges up to this size as 32-bit words; longer ones with TypedArray.set */
const WORD_COPY_MAX = 1024;
/** with an arena, copy() hands anything longer than this to its memmove (see swiotlb/bounce.ts) */
const ARENA_SMALL_COPY = 128;
export const DEFAULT_PA_BITS = 48;

export type Granule = 4096 | 16384 | 65536;
export type AccessSize = 1 | 2 | 4 | 8;

export interface RamBankSpec {
  base: number;
  size: number;
  name?: string;
}

export interface ReservedSpec {
  base: number;
  size: number;
  name: string;
  /** like a DT `no-map` reserved-memory node: not backed, any access faults */
  noMap?: boolean;
}

/** A device model behind an MMIO window. Offsets are relative to the window base. */
export interface MmioHandler {
  read(offset: number, size: AccessSize): bigint;
  write(offset: number, size: AccessSize, value: bigint): void;
}

export interface MmioWindow {
  readonly base: number;
  readonly size: number;
  readonly name: string;
  readonly handler: MmioHandler;
}

export type MemoryFaultKind = "unmapped" | "pa-width" | "no-map" | "mmio-bulk" | "overflow";

/** An access that does not land in RAM or MMIO. Names the address and the size. */
export class MemoryFault extends FaultError {
  constructor(
    readonly addr: number,
    readonly size: number,
    readonly kind: MemoryFaultKind,
    readonly write: boolean,
  ) {
    super(
      `physical memory fault: ${write ? "write" : "read"} of ${size} byte${size === 1 ? "" : "s"} at ${hex(addr)}: ` +
        (kind === "unmapped"
          ? "not RAM or MMIO"
          : kind === "pa-width"
            ? "beyond the physical address width"
            : kind === "no-map"
              ? "inside a no-map reserved region"
              : kind === "overflow"
                ? "address range wraps"
                : "bulk access to an MMIO window"),
    );
  }
}

export class RamBank {
  readonly end: number;
  /** chunk views, allocated on first touch */
  readonly chunks: (Uint8Array | undefined)[];
  constructor(
    readonly base: number,
    readonly size: number,
    readonly name: string,
    readonly chunkSize: number,
  ) {
    this.end = base + size;
    this.chunks = new Array<Uint8Array | undefined>(Math.ceil(size / chunkSize)).fill(undefined);
  }
}

export interface PhysicalMemoryOptions {
  banks: RamBankSpec[];
  reserved?: ReservedSpec[];
  paBits?: number;
  granule?: Granule;
  chunkSize?: number;
  /**
   * "arena" (default): chunks come from one shared WebAssembly memory (fast bulk copies,
   * see arena.ts), falling back to "sab" when it is full or unavailable; "sab": one
   * SharedArrayBuffer per chunk.
   */
  backing?: "arena" | "sab";
  /** ask the host for transparent huge pages under the arena (default true; see huge-pages.ts) */
  hugePages?: boolean;
  /**
   * the most the arena may grow to, in bytes (default: every chunk of every bank, capped at
   * the 4 GiB a WebAssembly memory holds); chunks past it get SharedArrayBuffers of their own
   */
  arenaMaxBytes?: number;
}

export type ChunkListener = (addr: number, chunk: Uint8Array) => void;

export class PhysicalMemory {
  readonly banks: RamBank[];
  readonly reserved: readonly ReservedSpec[];
  readonly mmio: MmioWindow[] = [];
  readonly paBits: number;
  readonly paLimit: number;
  readonly granule: Granule;
  readonly chunkSize: number;
  private readonly chunkShift: number;
  private lastBank: RamBank;
  private allocated = 0;
  private readonly chunkListeners: ChunkListener[] = [];
  private readonly scratch = new DataView(new ArrayBuffer(8));
  /** 32-bit views of chunks for word copies (see copy), and the last one used */
  private readonly wordViews = new Map<Uint8Array, Int32Array>();
  private lastWordsChunk: Uint8Array | null = null;
  private lastWords: Int32Array | null = null;
  /** any no-map reserved region: the fast paths skip the check when there is none */
  private readonly hasNoMap: boolean;
  /** where chunks come from: undefined until the first chunk, null for SharedArrayBuffers */
  private arenaState: ChunkArena | null | undefined;
  private readonly hugePages: boolean;
  private readonly arenaMaxBytes: number | undefined;

  constructor(opts: PhysicalMemoryOptions) {
    this.paBits = opts.paBits ?? DEFAULT_PA_BITS;
    if (!Number.isInteger(this.paBits) || this.paBits < 32 || this.paBits > 52)
      throw new InvalidArgumentError(`physical address width ${this.paBits} bits: must be 32..52`);
    this.paLimit = 2 ** this.paBits;
    this.granule = opts.granule ?? 4096;
    if (![4096, 16384, 65536].includes(this.granule))
      throw new InvalidArgumentError(`page granule ${this.granule}: must be 4096, 16384 or 65536`);
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (this.chunkSize < 65536 || (this.chunkSize & (this.chunkSize - 1)) !== 0)
      throw new InvalidArgumentError(`chunk size ${this.chunkSize}: must be a power of two >= 64 KiB`);
    this.chunkShift = Math.log2(this.chunkSize);
    if (opts.banks.length === 0) throw new InvalidArgumentError("a machine needs at least one RAM bank");
    const banks = [...opts.banks].sort((a, b) => a.base - b.base);
    this.banks = banks.map((b, i) => {
      if (!Number.isSafeInteger(b.base) || b.base < 0 || b.base % this.granule !== 0)
        throw new InvalidArgumentError(`RAM bank ${b.name ?? i} base ${hex(b.base)}: must be ${this.granule}-aligned`);
      if (!Number.isSafeInteger(b.size) || b.size <= 0 || b.size % this.granule !== 0)
        throw new InvalidArgumentError(`RAM bank ${b.name ?? i} size ${hex(b.size)}: must be a positive multiple of ${this.granule}`);
      if (b.base + b.size > this.paLimit)
        throw new InvalidArgumentError(`RAM bank ${b.name ?? i} [${hex(b.base)}-${hex(b.base + b.size - 1)}] exceeds the ${this.paBits}-bit physical address space`);
      if (b.base % this.chunkSize !== 0)
        throw new InvalidArgumentError(`RAM bank ${b.name ?? i} base ${hex(b.base)}: must be aligned to the ${this.chunkSize}-byte chunk size`);
      return new RamBank(b.base, b.size, b.name ?? `bank${i}`, this.chunkSize);
    });
    for (let i = 1; i < this.banks.length; i++)
      if (this.banks[i]!.base < this.banks[i - 1]!.end)
        throw new InvalidArgumentError(`RAM banks ${this.banks[i - 1]!.name} and ${this.banks[i]!.name} overlap`);
    this.lastBank = this.banks[0]!;
    this.reserved = (opts.reserved ?? []).map((r) => {
      const b = this.bankAt(r.base);
      if (b === undefined || r.size <= 0 || r.base + r.size > b.end)
        throw new InvalidArgumentError(`reserved region ${r.name} [${hex(r.base)}+${hex(r.size)}] is not inside one RAM bank`);
      return { ...r };
    });
    this.hasNoMap = this.reserved.some((r) => r.noMap === true);
    if (opts.backing !== undefined && opts.backing !== "arena" && opts.backing !== "sab")
      throw new InvalidArgumentError(`RAM backing ${String(opts.backing)}: must be "arena" or "sab"`);
    if (opts.backing === "sab") this.arenaState = null;
    this.hugePages = opts.hugePages ?? true;
    if (opts.arenaMaxBytes !== undefined && !(Number.isSafeInteger(opts.arenaMaxBytes) && opts.arenaMaxBytes > 0))
      throw new InvalidArgumentError(`arena size ${opts.arenaMaxBytes}: must be a positive whole number of bytes`);
    this.arenaMaxBytes = opts.arenaMaxBytes;
  }

  /** The shared WebAssembly memory chunks come from, or null (SharedArrayBuffer chunks). */
  get arena(): ChunkArena | null {
    if (this.arenaState === undefined) {
      // room for every chunk of every bank, each shifted by at most one page for its colour
      let bytes = 0;
      for (const b of this.banks) bytes += b.chunks.length * (this.chunkSize + 4096);
      this.arenaState = ChunkArena.create(Math.min(bytes, this.arenaMaxBytes ?? bytes), undefined, this.hugePages);
    }
    return this.arenaState;
  }

  /**
   * From now on chunks come from `memory`, another thread's arena: a worker attaching the
   * main thread's RAM, whose chunks it then installs with `arena.adopt`.
   */
  attachArena(memory: ArenaMemory): void {
    const a = ChunkArena.create(0, memory);
    if (a === null) throw new InvalidArgumentError("attachArena: this host cannot use the shared WebAssembly memory");
    this.arenaState = a;
  }

  /** Lowest RAM address and one past the highest. */
  get ramStart(): number {
    return this.banks[0]!.base;
  }
  get ramEnd(): number {
    return this.banks[this.banks.length - 1]!.end;
  }
  get ramSize(): number {
    let s = 0;
    for (const b of this.banks) s += b.size;
    return s;
  }
  /** Bytes of host memory actually allocated for RAM chunks. */
  get allocatedBytes(): number {
    return this.allocated;
  }

  /** Called once per chunk when it is first allocated (Unicorn maps it then). */
  onChunkAllocated(fn: ChunkListener): void {
    this.chunkListeners.push(fn);
  }

  addMmio(base: number, size: number, name: string, handler: MmioHandler): MmioWindow {
    if (base % 4096 !== 0 || size % 4096 !== 0 || size <= 0)
      throw new InvalidArgumentError(`MMIO window ${name} [${hex(base)}+${hex(size)}]: base and size must be 4 KiB aligned`);
    if (base + size > this.paLimit)
      throw new InvalidArgumentError(`MMIO window ${name} at ${hex(base)} exceeds the ${this.paBits}-bit physical address space`);
    for (const b of this.banks)
      if (base < b.end && b.base < base + size)
        throw new InvalidArgumentError(`MMIO window ${name} [${hex(base)}+${hex(size)}] overlaps RAM bank ${b.name}`);
    for (const w of this.mmio)
      if (base < w.base + w.size && w.base < base + size)
        throw new InvalidArgumentError(`MMIO window ${name} overlaps MMIO window ${w.name}`);
    const w: MmioWindow = { base, size, name, handler };
    this.mmio.push(w);
    return w;
  }

  // ---- classification -------------------------------------------------------------------

  /** The bank holding addr, or undefined. */
  bankAt(addr: number): RamBank | undefined {
    const lb = this.lastBank;
    if (addr >= lb.base && addr < lb.end) return lb;
    for (const b of this.banks) {
      if (addr >= b.base && addr < b.end) {
        this.lastBank = b;
        return b;
      }
    }
    return undefined;
  }

  /** True when [addr, addr+len) lies in one RAM bank (and outside no-map regions). */
  isRam(addr: number, len: number): boolean {
    if (!(len >= 0) || !Number.isSafeInteger(addr) || addr < 0) return false;
    const b = this.bankAt(addr);
    if (!b || addr + len > b.end) return false;
    for (const r of this.reserved) if (r.noMap && addr < r.base + r.size && r.base < addr + len) return false;
    return true;
  }

  mmioAt(addr: number): MmioWindow | undefined {
    for (const w of this.mmio) if (addr >= w.base && addr < w.base + w.size) return w;
    return undefined;
  }

  // ---- chunks -----------------------------------------------------------------------------

  /**
   * The chunk view holding RAM address addr (allocating it on first touch), and the
   * offset of addr inside it is `addr & (chunkSize - 1)`. Faults outside RAM.
   */
  chunkAt(addr: number, size = 1, write = false): Uint8Array {
    const b = this.bankAt(addr);
    if (b === undefined) throw this.fault(addr, size, write);
    const i = (addr - b.base) >>> 0 === addr - b.base ? (addr - b.base) >>> this.chunkShift : Math.floor((addr - b.base) / this.chunkSize);
    const c = b.chunks[i];
    return c !== undefined ? c : this.allocChunk(b, i);
  }

  /** Every chunk allocated so far, with its physical base. */
  *allocatedChunks(): IterableIterator<{ addr: number; chunk: Uint8Array }> {
    for (const b of this.banks)
      for (let i = 0; i < b.chunks.length; i++) {
        const c = b.chunks[i];
        if (c) yield { addr: b.base + i * this.chunkSize, chunk: c };
      }
  }

  private allocChunk(b: RamBank, i: number): Uint8Array {
    const len = Math.min(this.chunkSize, b.size - i * this.chunkSize);
    const colour = chunkColour(b.base + i * this.chunkSize, this.chunkSize);
    const c = this.arena?.alloc(len, colour) ?? new Uint8Array(new SharedArrayBuffer(this.chunkSize + CHUNK_COLOURS * CACHE_LINE), colour, len);
    b.chunks[i] = c;
    this.allocated += this.chunkSize;
    const addr = b.base + i * this.chunkSize;
    for (const fn of this.chunkListeners) fn(addr, c);
    return c;
  }

  private fault(addr: number, size: number, write: boolean): MemoryFault {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr + size > this.paLimit) return new MemoryFault(addr, size, "pa-width", write);
    for (const r of this.reserved) if (r.noMap && addr < r.base + r.size && r.base < addr + size) return new MemoryFault(addr, size, "no-map", write);
    return new MemoryFault(addr, size, "unmapped", write);
  }

  /** Checks [addr, addr+len) is plain RAM; throws the precise fault otherwise. */
  checkRam(addr: number, len: number, write: boolean): void {
    if (!this.isRam(addr, len)) {
      if (this.mmioAt(addr)) throw new MemoryFault(addr, len, "mmio-bulk", write);
      // name the first byte that is not RAM
      const b = this.bankAt(addr);
      if (b && addr + len > b.end) throw this.fault(b.end, addr + len - b.end, write);
      throw this.fault(addr, len, write);
    }
  }

  // ---- scalar little-endian accessors ----------------------------------------------------

  private scalarRam(addr: number, size: AccessSize, write: boolean): Uint8Array | undefined {
    const b = this.bankAt(addr);
    if (b !== undefined && addr + size <= b.end) {
      const off = addr & (this.chunkSize - 1);
      if (off + size <= this.chunkSize) {
        if (this.hasNoMap && !this.isRam(addr, size)) throw this.fault(addr, size, write);
        return this.chunkAt(addr, size, write);
      }
    }
    return undefined;
  }

  read8(addr: number): number {
    const c = this.scalarRam(addr, 1, false);
    if (c) return c[addr & (this.chunkSize - 1)]!;
    return Number(this.slowRead(addr, 1));
  }
  read16(addr: number): number {
    const c = this.scalarRam(addr, 2, false);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      return c[o]! | (c[o + 1]! << 8);
    }
    return Number(this.slowRead(addr, 2));
  }
  read32(addr: number): number {
    const c = this.scalarRam(addr, 4, false);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      return (c[o]! | (c[o + 1]! << 8) | (c[o + 2]! << 16) | (c[o + 3]! << 24)) >>> 0;
    }
    return Number(this.slowRead(addr, 4));
  }
  read64(addr: number): bigint {
    const c = this.scalarRam(addr, 8, false);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      const lo = (c[o]! | (c[o + 1]! << 8) | (c[o + 2]! << 16) | (c[o + 3]! << 24)) >>> 0;
      const hi = (c[o + 4]! | (c[o + 5]! << 8) | (c[o + 6]! << 16) | (c[o + 7]! << 24)) >>> 0;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
    return this.slowRead(addr, 8);
  }
  /** A 64-bit value that must fit in 2^53 (a physical address, a frame number): a number. */
  read64Number(addr: number): number {
    const v = this.read64(addr);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`64-bit value ${hex(v)} at ${hex(addr)} does not fit in 53 bits`);
    return Number(v);
  }

  write8(addr: number, v: number): void {
    const c = this.scalarRam(addr, 1, true);
    if (c) c[addr & (this.chunkSize - 1)] = v;
    else this.slowWrite(addr, 1, BigInt(v & 0xff));
  }
  write16(addr: number, v: number): void {
    const c = this.scalarRam(addr, 2, true);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      c[o] = v;
      c[o + 1] = v >>> 8;
    } else this.slowWrite(addr, 2, BigInt(v & 0xffff));
  }
  write32(addr: number, v: number): void {
    const c = this.scalarRam(addr, 4, true);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      c[o] = v;
      c[o + 1] = v >>> 8;
      c[o + 2] = v >>> 16;
      c[o + 3] = v >>> 24;
    } else this.slowWrite(addr, 4, BigInt(v >>> 0));
  }
  write64(addr: number, value: bigint | number): void {
    const v = BigInt.asUintN(64, typeof value === "bigint" ? value : BigInt(value));
    const c = this.scalarRam(addr, 8, true);
    if (c) {
      const o = addr & (this.chunkSize - 1);
      const lo = Number(v & 0xffff_ffffn);
      const hi = Number(v >> 32n);
      c[o] = lo;
      c[o + 1] = lo >>> 8;
      c[o + 2] = lo >>> 16;
      c[o + 3] = lo >>> 24;
      c[o + 4] = hi;
      c[o + 5] = hi >>> 8;
      c[o + 6] = hi >>> 16;
      c[o + 7] = hi >>> 24;
    } else this.slowWrite(addr, 8, v);
  }

  /** MMIO dispatch, or RAM access that straddles a chunk border. */
  private slowRead(addr: number, size: AccessSize): bigint {
    const w = this.mmioAt(addr);
    if (w) {
      if (addr + size > w.base + w.size) throw new MemoryFault(addr, size, "unmapped", false);
      return BigInt.asUintN(size * 8, w.handler.read(addr - w.base, size));
    }
    this.checkRam(addr, size, false);
    const buf = new Uint8Array(8);
    this.readInto(addr, buf.subarray(0, size));
    this.scratch.setBigUint64(0, 0n);
    for (let i = 0; i < 8; i++) this.scratch.setUint8(i, buf[i]!);
    return this.scratch.getBigUint64(0, true);
  }

  private slowWrite(addr: number, size: AccessSize, v: bigint): void {
    const w = this.mmioAt(addr);
    if (w) {
      if (addr + size > w.base + w.size) throw new MemoryFault(addr, size, "unmapped", true);
      w.handler.write(addr - w.base, size, v);
      return;
    }
    this.checkRam(addr, size, true);
    this.scratch.setBigUint64(0, v, true);
    const buf = new Uint8Array(this.scratch.buffer.slice(0, size));
    this.write(addr, buf);
  }

  // ---- bulk accessors (RAM only; they cross chunk borders) -------------------------------

  /** Copies [addr, addr+dst.length) into dst. */
  readInto(addr: number, dst: Uint8Array): void {
    const len = dst.length;
    this.checkRam(addr, len, false);
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const c = this.chunkAt(a);
      const o = a & (this.chunkSize - 1);
      const n = Math.min(len - done, this.chunkSize - o);
      dst.set(c.subarray(o, o + n), done);
      done += n;
    }
  }

  /** A fresh copy of [addr, addr+len). */
  read(addr: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(addr, out);
    return out;
  }

  write(addr: number, src: Uint8Array): void {
    const len = src.length;
    this.checkRam(addr, len, true);
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const c = this.chunkAt(a);
      const o = a & (this.chunkSize - 1);
      const n = Math.min(len - done, this.chunkSize - o);
      c.set(src.subarray(done, done + n), o);
      done += n;
    }
  }

  fill(addr: number, len: number, byte: number): void {
    this.checkRam(addr, len, true);
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const c = this.chunkAt(a);
      const o = a & (this.chunkSize - 1);
      const n = Math.min(len - done, this.chunkSize - o);
      c.fill(byte, o, o + n);
      done += n;
    }
  }

  /**
   * memmove between two RAM ranges. Hot path of every bounce: no allocation when both
   * ranges sit in one chunk each and the copy is small; one view for large cross-chunk copies.
   */
  copy(dst: number, src: number, len: number): void {
    if (len === 0) return;
    const cs = this.chunkSize;
    const mask = cs - 1;
    const so = src & mask;
    const dOff = dst & mask;
    if (so + len <= cs && dOff + len <= cs && !this.hasNoMap) {
      const sb = this.bankAt(src);
      const db = this.bankAt(dst);
      if (sb !== undefined && db !== undefined && src + len <= sb.end && dst + len <= db.end) {
        const s = this.chunkAt(src);
        const d = this.chunkAt(dst);
        if (len > ARENA_SMALL_COPY && this.arenaState) {
          // memmove in the arena (overlap-safe), or set(), which copies an overlapping source first
          this.move(d, dOff, s, so, len);
        } else if (s === d) {
          d.copyWithin(dOff, so, so + len);
        } else if (len <= WORD_COPY_MAX && ((so | dOff | len) & 3) === 0) {
          // 32-bit words through views made once per chunk: no allocation, 4x fewer steps
          const sw = this.words(s);
          const dw = this.words(d);
          const si = so >>> 2;
          const di = dOff >>> 2;
          const n = len >>> 2;
          for (let i = 0; i < n; i++) dw[di + i] = sw[si + i]!;
        } else if (len <= 64) {
          for (let i = 0; i < len; i++) d[dOff + i] = s[so + i]!;
        } else {
          this.move(d, dOff, s, so, len);
        }
        return;
      }
    }
    this.copySlow(dst, src, len);
  }

  /** the Int32Array view of a chunk, made once (integer views keep every bit of the data) */
  private words(c: Uint8Array): Int32Array {
    if (c === this.lastWordsChunk) return this.lastWords!;
    let v = this.wordViews.get(c);
    if (v === undefined) {
      v = new Int32Array(c.buffer, c.byteOffset, c.length >>> 2);
      this.wordViews.set(c, v);
    }
    this.lastWordsChunk = c;
    this.lastWords = v;
    return v;
  }

  private copySlow(dst: number, src: number, len: number): void {
    this.checkRam(src, len, false);
    this.checkRam(dst, len, true);
    // overlapping ranges: go through a temporary so the result is a true memmove
    if (dst < src + len && src < dst + len) {
      this.write(dst, this.read(src, len));
      return;
    }
    let done = 0;
    while (done < len) {
      const s = this.chunkAt(src + done);
      const d = this.chunkAt(dst + done);
      const so = (src + done) & (this.chunkSize - 1);
      const dOff = (dst + done) & (this.chunkSize - 1);
      const n = Math.min(len - done, this.chunkSize - so, this.chunkSize - dOff);
      this.move(d, dOff, s, so, n);
      done += n;
    }
  }

  /** d[dOff..+n) = s[so..+n): a memmove in the arena when both chunks are its, else set() */
  private move(d: Uint8Array, dOff: number, s: Uint8Array, so: number, n: number): void {
    const a = this.arenaState;
    if (a) {
      const da = a.offsetOf(d);
      const sa = a.offsetOf(s);
      if (da >= 0 && sa >= 0) {
        a.copy(da + dOff, sa + so, n);
        return;
      }
    }
    d.set(s.subarray(so, so + n), dOff);
  }

  /** Page-granule helpers. */
  pageAlignDown(addr: number): number {
    return addr - (addr % this.granule);
  }
  pageAlignUp(addr: number): number {
    return Math.ceil(addr / this.granule) * this.granule;
  }
}
