// Where RAM chunks live on the host: one shared WebAssembly memory per PhysicalMemory. The
// default swiotlb pool's slot table and the hot path's own tables live there too (see
// swiotlb/plain-path.ts: its WebAssembly code addresses all of them in one memory).
//
// Why not a SharedArrayBuffer per chunk: V8 (Node 20) copies between shared buffers with
// TypedArray.prototype.set / copyWithin through a relaxed-atomic word loop (about 6-8 GB/s
// on the 2-core EPYC this was measured on), while a WebAssembly `memory.copy` on a shared
// memory is a plain memmove (about 11 GB/s walking the same 64 MiB, the speed set() reaches
// on unshared buffers). Bounces of a few KiB and up are bound by that copy. The memory's
// buffer is still a SharedArrayBuffer: views over it go to worker threads and to Unicorn
// (uc_mem_map_ptr) exactly as before, and growing a shared memory never moves its bytes, so a
// view made before a grow stays valid.
//
// A memory holds at most 4 GiB (wasm32); chunks past that, or a host where the memory cannot
// be made, fall back to one SharedArrayBuffer per chunk and the copies to set().

import { InvalidArgumentError } from "../errors.js";
import { adviseHugePages } from "./huge-pages.js";
import { noteMissingHostFeature } from "../host-features.js";

/** the minimal WebAssembly surface used here (the ES2022 lib has no WebAssembly types) */
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export type ArenaMemory = WasmMemory;
export const WASM_PAGE = 65536;
/** the host's transparent huge page (x86-64 and arm64 with 4 KiB pages) */
const HUGE_PAGE = 2 << 20;
/** wasm32: 65536 pages of 64 KiB */
export const ARENA_MAX_PAGES = 65536;

/**
 * The module, assembled by hand: it imports a shared memory "e"."m" (1..65536 pages) and
 * exports copy(dst, src, len) = memory.copy, a memmove inside that memory. Offsets are i32
 * bit patterns: JS passes numbers >= 2^31 wrapped (ToInt32) and memory.copy reads them
 * unsigned. An out-of-range copy traps (a RangeError in JS) and writes nothing.
 */
function moduleBytes(): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const name = (s: string): number[] => [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  const I32 = 0x7f;
  const type = section(1, [1, 0x60, 3, I32, I32, I32, 0]); // (func (param i32 i32 i32))
  const imp = section(2, [1, ...name("e"), ...name("m"), 0x02, 0x03, ...leb(1), ...leb(ARENA_MAX_PAGES)]); // shared, min 1, max
  const func = section(3, [1, 0]);
  const exp = section(7, [1, ...name("copy"), 0x00, 0]);
  // local.get 0, local.get 1, local.get 2, memory.copy 0 0, end
  const body = [0, 0x20, 0, 0x20, 1, 0x20, 2, 0xfc, 0x0a, 0, 0, 0x0b];
  const code = section(10, [1, ...leb(body.length), ...body]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...imp, ...func, ...exp, ...code]);
}

let compiled: object | null | undefined;
function arenaModule(): object | null {
  if (compiled === undefined) {
    try {
      compiled = wasm === undefined ? null : new wasm.Module(moduleBytes());
    } catch (e) {
      // no shared-memory wasm here: RAM chunks are plain SharedArrayBuffers (same answers)
      noteMissingHostFeature("RAM arena (wasm)", e);
      compiled = null;
    }
  }
  return compiled;
}

export type ArenaCopy = (dst: number, src: number, len: number) => void;

/**
 * The memory's first 4 KiB hold the allocation cursor (an Int32, in 4 KiB units), shared by
 * every ChunkArena over the memory: a worker thread that touches a chunk nobody allocated yet
 * takes the next free range with an atomic compare-and-swap, never one the main thread (or
 * another worker) already handed out.
 */
const HEADER_BYTES = 4096;

export class ChunkArena {
  /** the shared allocation cursor (see HEADER_BYTES) */
  private readonly cursor: Int32Array;
  /** arena offset of every chunk view it handed out or adopted */
  private readonly offsets = new Map<Uint8Array, number>();
  /** memmove(dst, src, len) on arena offsets */
  readonly copy: ArenaCopy;

  private constructor(
    readonly memory: WasmMemory,
    copy: ArenaCopy,
    fresh: boolean,
  ) {
    this.copy = copy;
    this.cursor = new Int32Array(memory.buffer, 0, 1);
    if (fresh) Atomics.store(this.cursor, 0, HEADER_BYTES / 4096);
  }

  /**
   * An arena over a new shared memory able to grow to maxBytes (rounded up to pages, capped
   * at 4 GiB), advised to use transparent huge pages unless `hugePages` is false, or over
   * `memory` (a worker attaching its main thread's RAM). Null when the host has no shared
   * WebAssembly memory.
   */
  static create(maxBytes: number, memory?: WasmMemory, hugePages = true): ChunkArena | null {
    const mod = arenaModule();
    if (mod === null || wasm === undefined) return null;
    try {
      const pages = Math.min(ARENA_MAX_PAGES, Math.max(1, Math.ceil(maxBytes / WASM_PAGE)));
      let mem = memory;
      if (mem === undefined) {
        mem = new wasm.Memory({ initial: 1, maximum: pages, shared: true });
        // the advice covers the whole reservation: pages grown into later are huge too
        if (hugePages) adviseHugePages(new Uint8Array(mem.buffer), pages * WASM_PAGE);
      }
      const inst = new wasm.Instance(mod, { e: { m: mem } });
      const copy = inst.exports["copy"];
      if (typeof copy !== "function") return null;
      return new ChunkArena(mem, copy as ArenaCopy, memory === undefined);
    } catch (e) {
      // no memory of that size, or the module does not link: the caller uses SharedArrayBuffers
      noteMissingHostFeature("RAM arena (wasm memory)", e);
      return null;
    }
  }

  /**
   * A view of `len` bytes starting `colour` bytes past a 4 KiB boundary of the memory (see
   * chunkColour), zero-filled (fresh pages are). Null when the memory cannot grow that far.
   */
  alloc(len: number, colour: number): Uint8Array | null {
    if (!Number.isInteger(len) || len <= 0 || !Number.isInteger(colour) || colour < 0 || colour >= 4096)
      throw new InvalidArgumentError(`arena chunk of ${len} bytes at colour ${colour}: bad request`);
    const off = this.take(len, colour);
    if (off < 0) return null;
    const v = new Uint8Array(this.memory.buffer, off, len);
    this.offsets.set(v, off);
    return v;
  }

  /**
   * `len` zero-filled bytes on a 4 KiB boundary of the memory for state that is not RAM (a
   * swiotlb pool's slot table, the hot path's tables: code compiled against this memory reads
   * them). Their offset, or -1 when the memory cannot grow that far.
   */
  allocState(len: number): number {
    if (!Number.isInteger(len) || len <= 0) throw new InvalidArgumentError(`arena state of ${len} bytes: bad request`);
    return this.take(len, 0);
  }

  /** Takes whole 4 KiB pages for [colour, colour + len) and grows the memory over them; the offset, or -1. */
  private take(len: number, colour: number): number {
    const pages = Math.ceil((colour + len) / 4096);
    let first = Atomics.load(this.cursor, 0);
    for (;;) {
      if ((first + pages) * 4096 > ARENA_MAX_PAGES * WASM_PAGE) return -1;
      const seen = Atomics.compareExchange(this.cursor, 0, first, first + pages);
      if (seen === first) break;
      first = seen;
    }
    const off = first * 4096 + colour;
    const end = off + len;
    // another thread may grow the memory at the same time: grow by what is still missing, to
    // a whole 2 MiB: the host backs a 2 MiB range with a huge page only if all of it is mapped
    // when it is first touched (measured: growing to each chunk's end left 48 of a 64 MiB pool's
    // MiB on 4 KiB pages)
    while (this.memory.buffer.byteLength < end) {
      const have = this.memory.buffer.byteLength;
      if (this.tryGrow(Math.ceil((Math.ceil(end / HUGE_PAGE) * HUGE_PAGE - have) / WASM_PAGE))) continue;
      if (this.memory.buffer.byteLength >= end) continue;
      if (!this.tryGrow(Math.ceil((end - this.memory.buffer.byteLength) / WASM_PAGE)) && this.memory.buffer.byteLength < end) return -1;
    }
    return off;
  }

  /** memory.grow(pages); false when the host or the reservation has no more pages. */
  private tryGrow(pages: number): boolean {
    try {
      this.memory.grow(pages);
      return true;
    } catch (e) {
      // grow throws a RangeError when it cannot: the caller asks for less, or answers -1
      if (e instanceof RangeError) return false;
      throw e;
    }
  }

  /** A view of [off, off + len) of the memory, known from then on (a worker's side). */
  adopt(off: number, len: number): Uint8Array {
    if (off + len > this.memory.buffer.byteLength) throw new InvalidArgumentError(`arena range 0x${off.toString(16)}+0x${len.toString(16)}: beyond the shared memory`);
    if (off < HEADER_BYTES || off + len > Atomics.load(this.cursor, 0) * 4096)
      throw new InvalidArgumentError(`arena range 0x${off.toString(16)}+0x${len.toString(16)}: not a range this memory handed out`);
    const v = new Uint8Array(this.memory.buffer, off, len);
    this.offsets.set(v, off);
    return v;
  }

  /** the arena offset of a chunk view, or -1 for a view that is not the arena's */
  offsetOf(chunk: Uint8Array): number {
    return this.offsets.get(chunk) ?? -1;
  }
}
