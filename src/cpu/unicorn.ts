// A thin typed binding of the few Unicorn 2 calls dmalab uses, through koffi. Every koffi
// type stays in this file: the rest of the code sees numbers, bigints, Uint8Arrays and plain
// callbacks. Loaded from Debian's libunicorn2 (`libunicorn.so.2`, measured with 2.0.1).
//
// Facts measured on Unicorn 2.0.1 that shape this binding (see test/cpu/unicorn.test.ts):
// - an exception thrown inside a koffi callback is swallowed and the guest then spins, so
//   every callback registered here is wrapped: the first error is kept and emulation stopped;
// - 64-bit values come back from koffi as JS numbers when they fit: register I/O goes through
//   a BigUint64Array instead, so a register is always an exact bigint;
// - with a non-zero instruction count, Unicorn installs its own per-instruction hook, which
//   keeps PC exact inside memory hooks and makes uc_emu_stop take effect after the current
//   instruction; without it PC reads as the start of the translated block;
// - uc_mmio_map splits 8-byte accesses into 4-byte ones, so MMIO is modelled instead with RAM
//   pages plus UC_HOOK_MEM_READ/WRITE, which report the true width and address.

import { createRequire } from "node:module";
import { FaultError } from "../errors.js";

// koffi is CommonJS; its typings use `any`, which must not leak out of this file.
type KoffiFn = (...args: unknown[]) => unknown;
interface KoffiLib {
  func(decl: string): KoffiFn;
}
interface KoffiType {
  readonly __brand: "IKoffiCType";
}
interface KoffiRegistered {
  readonly __brand: "IKoffiRegisteredCallback";
}
interface Koffi {
  load(path: string): KoffiLib;
  opaque(name: string): KoffiType;
  proto(decl: string): KoffiType;
  pointer(t: KoffiType): KoffiType;
  register(fn: (...args: never[]) => unknown, t: KoffiType): KoffiRegistered;
  unregister(cb: KoffiRegistered): void;
  decode(ptr: unknown, offset: number, type: string): unknown;
  alloc(type: string, n: number): unknown;
  free(ptr: unknown): void;
  address(ptr: unknown): bigint;
  view(ptr: unknown, len: number): ArrayBuffer;
}

/** The library cannot be loaded: says how to install it. */
export class UnicornMissingError extends FaultError {
  constructor(detail: string) {
    super(`the Unicorn CPU engine (libunicorn.so.2) is not installed: run \`apt-get update && apt-get install -y libunicorn2\` (${detail})`);
  }
}

/** A Unicorn API call failed (not a guest fault: a misuse or a resource problem). */
export class UnicornError extends FaultError {
  constructor(
    readonly call: string,
    readonly code: number,
    text: string,
  ) {
    super(`${call} failed: ${text} (uc_err ${code})`);
  }
}

// ---- constants (unicorn.h / arm64.h of Unicorn 2.0) ---------------------------------------

export const UC_ARCH_ARM64 = 2;
export const UC_MODE_ARM = 0;

export const UC_ERR_OK = 0;
/** @public: the rest of the table, unused here */
export const UC_ERR_READ_UNMAPPED = 6;
/** @public: the rest of the table, unused here */
export const UC_ERR_WRITE_UNMAPPED = 7;
/** @public: the rest of the table, unused here */
export const UC_ERR_FETCH_UNMAPPED = 8;
/** @public: the rest of the table, unused here */
export const UC_ERR_INSN_INVALID = 10;
/** @public: the rest of the table, unused here */
export const UC_ERR_EXCEPTION = 21;

export const UC_PROT_READ = 1;
export const UC_PROT_WRITE = 2;
/** @public: the rest of the table, unused here */
export const UC_PROT_EXEC = 4;
export const UC_PROT_ALL = 7;

export const UC_HOOK_INTR = 1 << 0;
/** @public: the rest of the table, unused here */
export const UC_HOOK_CODE = 1 << 2;
export const UC_HOOK_BLOCK = 1 << 3;
export const UC_HOOK_MEM_READ_UNMAPPED = 1 << 4;
export const UC_HOOK_MEM_WRITE_UNMAPPED = 1 << 5;
export const UC_HOOK_MEM_FETCH_UNMAPPED = 1 << 6;
export const UC_HOOK_MEM_READ_PROT = 1 << 7;
export const UC_HOOK_MEM_WRITE_PROT = 1 << 8;
export const UC_HOOK_MEM_FETCH_PROT = 1 << 9;
export const UC_HOOK_MEM_READ = 1 << 10;
export const UC_HOOK_MEM_WRITE = 1 << 11;
export const UC_HOOK_MEM_UNMAPPED = UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED | UC_HOOK_MEM_FETCH_UNMAPPED;
export const UC_HOOK_MEM_PROT = UC_HOOK_MEM_READ_PROT | UC_HOOK_MEM_WRITE_PROT | UC_HOOK_MEM_FETCH_PROT;

/** uc_mem_type as a memory hook reports it */
export const UC_MEM_READ = 16;
/** @public: the rest of the table, unused here */
export const UC_MEM_WRITE = 17;
/** @public: the rest of the table, unused here */
export const UC_MEM_FETCH = 18;
export const UC_MEM_READ_UNMAPPED = 19;
export const UC_MEM_WRITE_UNMAPPED = 20;
export const UC_MEM_FETCH_UNMAPPED = 21;
/** @public: the rest of the table, unused here */
export const UC_MEM_WRITE_PROT = 22;
export const UC_MEM_READ_PROT = 23;
export const UC_MEM_FETCH_PROT = 24;

const UC_QUERY_TIMEOUT = 4;
// uc_ctl(UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2)) and UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0)
const UC_CTL_IO_WRITE = 1;
const ctlWrite = (type: number, nargs: number): number => (type | (nargs << 26) | (UC_CTL_IO_WRITE << 30)) >>> 0;
const UC_CTL_TB_REMOVE_CACHE = 9;
const UC_CTL_TB_FLUSH = 10;

/** uc_arm64_reg ids (Unicorn 2.0) */
export const REG = {
  X29: 1,
  X30: 2,
  NZCV: 3,
  SP: 4,
  X0: 199, // X0..X28 are consecutive
  PC: 260,
} as const;

/** The uc_arm64_reg id of x0..x30. */
export function xReg(n: number): number {
  if (n === 29) return REG.X29;
  if (n === 30) return REG.X30;
  return REG.X0 + n;
}

// ---- loading -------------------------------------------------------------------------------

interface Api {
  koffi: Koffi;
  uc_open: KoffiFn;
  uc_close: KoffiFn;
  uc_strerror: KoffiFn;
  uc_mem_map_ptr: KoffiFn;
  uc_mem_unmap: KoffiFn;
  uc_reg_read: KoffiFn;
  uc_reg_write: KoffiFn;
  uc_reg_read_batch: KoffiFn;
  uc_reg_write_batch: KoffiFn;
  uc_emu_start: KoffiFn;
  uc_emu_stop: KoffiFn;
  uc_hook_add: KoffiFn;
  uc_hook_del: KoffiFn;
  uc_query: KoffiFn;
  uc_ctl2: KoffiFn;
  uc_ctl0: KoffiFn;
  intrProto: KoffiType;
  codeProto: KoffiType;
  memProto: KoffiType;
  eventMemProto: KoffiType;
}

let api: Api | undefined;
let loadError: UnicornMissingError | undefined;

/**
 * Where Unicorn keeps x0..x30, sp and pc (QEMU's CPUARMState xregs[32] then pc, 33 words):
 * `offset` bytes past the pointer stored at byte `field` of uc_struct. Located once per
 * process (the same library lays out every engine alike); false when it could not be.
 */
let regFileLayout: { field: number; offset: number } | false | undefined;
const REG_FILE_WORDS = 33;

function loadApi(): Api {
  if (api) return api;
  if (loadError) throw loadError;
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  let lib: KoffiLib;
  try {
    koffi = require("koffi") as Koffi;
  } catch (e) {
    throw (loadError = new UnicornMissingError(`koffi did not load: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`));
  }
  try {
    lib = koffi.load("libunicorn.so.2");
  } catch (e) {
    throw (loadError = new UnicornMissingError(e instanceof Error ? e.message.split("\n")[0]! : String(e)));
  }
  koffi.opaque("uc_engine");
  const a: Api = {
    koffi,
    uc_open: lib.func("int uc_open(int arch, int mode, _Out_ uc_engine **uc)"),
    uc_close: lib.func("int uc_close(uc_engine *uc)"),
    uc_strerror: lib.func("const char *uc_strerror(int code)"),
    uc_mem_map_ptr: lib.func("int uc_mem_map_ptr(uc_engine *uc, uint64_t address, size_t size, uint32_t perms, void *ptr)"),
    uc_mem_unmap: lib.func("int uc_mem_unmap(uc_engine *uc, uint64_t address, size_t size)"),
    uc_reg_read: lib.func("int uc_reg_read(uc_engine *uc, int regid, void *value)"),
    uc_reg_write: lib.func("int uc_reg_write(uc_engine *uc, int regid, const void *value)"),
    uc_reg_read_batch: lib.func("int uc_reg_read_batch(uc_engine *uc, void *regs, void *vals, int count)"),
    uc_reg_write_batch: lib.func("int uc_reg_write_batch(uc_engine *uc, void *regs, void *vals, int count)"),
    uc_emu_start: lib.func("int uc_emu_start(uc_engine *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count)"),
    uc_emu_stop: lib.func("int uc_emu_stop(uc_engine *uc)"),
    uc_hook_add: lib.func("int uc_hook_add(uc_engine *uc, _Out_ size_t *hh, int type, void *callback, void *user_data, uint64_t begin, uint64_t end, ...)"),
    uc_hook_del: lib.func("int uc_hook_del(uc_engine *uc, size_t hh)"),
    uc_query: lib.func("int uc_query(uc_engine *uc, int type, _Out_ size_t *result)"),
    // uc_ctl is variadic: one declaration per argument shape used
    uc_ctl2: lib.func("int uc_ctl(uc_engine *uc, uint32_t control, ...)"),
    uc_ctl0: lib.func("int uc_ctl(uc_engine *uc, uint32_t control, ...)"),
    intrProto: koffi.proto("void dmalab_uc_hookintr(uc_engine *uc, uint32_t intno, void *user_data)"),
    codeProto: koffi.proto("void dmalab_uc_hookcode(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)"),
    memProto: koffi.proto("void dmalab_uc_hookmem(uc_engine *uc, int type, uint64_t address, int size, int64_t value, void *user_data)"),
    eventMemProto: koffi.proto("bool dmalab_uc_eventmem(uc_engine *uc, int type, uint64_t address, int size, int64_t value, void *user_data)"),
  };
  api = a;
  return a;
}

/** True when libunicorn.so.2 loads (tests skip the CPU suites otherwise). */
export function unicornAvailable(): boolean {
  try {
    loadApi();
    return true;
  } catch (e) {
    // the reason stays in loadError: a CPU run reports it; a probe just answers no
    if (e instanceof UnicornMissingError) return false;
    throw e;
  }
}

export function ucStrerror(code: number): string {
  return String(loadApi().uc_strerror(code));
}

// ---- engine ---------------------------------------------------------------------------------

export type IntrHook = (intno: number) => void;
export type BlockHook = (address: number, size: number) => void;
/** type is UC_MEM_READ / UC_MEM_WRITE; value is the written value (exact, unsigned 64-bit) */
export type MemHook = (type: number, address: number, size: number, value: bigint) => void;
/** return true when the hook made the access possible (mapped the page) and it is retried */
export type MemEventHook = (type: number, address: number, size: number, value: bigint) => boolean;

/** Registers moved in one call: `values` is a live view of native memory. */
export interface RegBatch {
  readonly values: BigUint64Array;
  read(): BigUint64Array;
  write(): void;
}

export interface HookHandle {
  readonly id: number;
}

interface HookRecord {
  handle: number;
  cb: KoffiRegistered;
}

function toU64(v: unknown): bigint {
  if (typeof v === "bigint") return BigInt.asUintN(64, v);
  if (typeof v === "number") return BigInt.asUintN(64, BigInt(v));
  return 0n;
}
function toAddr(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : (v as number);
}

/**
 * One Unicorn arm64 engine. Every hook body runs inside a guard: the first exception is
 * kept in `callbackError` and emulation is stopped, because koffi would swallow it.
 */
export class UnicornEngine {
  private readonly a: Api;
  private handle: unknown;
  private readonly regBuf = new BigUint64Array(1);
  /** native buffer for single-register writes (a native pointer argument converts faster than a typed array) */
  private regOut: unknown;
  private regOutView: BigUint64Array | undefined;
  private readonly hooks = new Map<number, HookRecord>();
  private nextHookId = 1;
  private readonly batches: unknown[] = [];
  /** the first exception thrown by a hook during the current emu_start */
  callbackError: unknown = undefined;
  /** why uc_emu_stop failed after callbackError was kept, if it did (the run then went on to its limits) */
  callbackStopError: unknown = undefined;
  /** offset of Unicorn's private instruction counter in uc_struct, when calibrated */
  private counterOffset: number | undefined;

  constructor() {
    this.a = loadApi();
    const out: unknown[] = [null];
    this.check("uc_open", this.a.uc_open(UC_ARCH_ARM64, UC_MODE_ARM, out) as number);
    this.handle = out[0];
  }

  private check(call: string, err: number): void {
    if (err !== UC_ERR_OK) throw new UnicornError(call, err, ucStrerror(err));
  }

  get closed(): boolean {
    return this.handle === null;
  }

  close(): void {
    if (this.handle === null) return;
    this.a.uc_close(this.handle);
    this.handle = null;
    for (const h of this.hooks.values()) this.a.koffi.unregister(h.cb);
    this.hooks.clear();
    for (const b of this.batches) this.a.koffi.free(b);
    this.batches.length = 0;
  }

  /** Maps host memory (zero-copy): view.length must be a multiple of 4 KiB. */
  mapPtr(address: number, view: Uint8Array, perms = UC_PROT_ALL): void {
    this.check(`uc_mem_map_ptr(0x${address.toString(16)}, 0x${view.length.toString(16)})`, this.a.uc_mem_map_ptr(this.handle, address, view.length, perms, view) as number);
  }

  unmap(address: number, size: number): void {
    this.check(`uc_mem_unmap(0x${address.toString(16)}, 0x${size.toString(16)})`, this.a.uc_mem_unmap(this.handle, address, size) as number);
  }

  regRead(id: number): bigint {
    this.check("uc_reg_read", this.a.uc_reg_read(this.handle, id, this.regBuf) as number);
    return this.regBuf[0]!;
  }

  /**
   * A batch of registers read or written in one native call. Single register calls cost
   * ~1 µs each through koffi (measured); a trap that moves x0..x30 would pay 60 of them.
   * Values live in native memory viewed as a BigUint64Array (no copies).
   */
  regBatch(ids: readonly number[]): RegBatch {
    const n = ids.length;
    const k = this.a.koffi;
    // ids, value pointers and values all in native memory: koffi then passes plain pointers
    // (measured ~30 % cheaper per call than typed-array arguments)
    const vals = k.alloc("uint64_t", n);
    const base = k.address(vals);
    const ptrs = k.alloc("uint64_t", n);
    const ptrView = new BigUint64Array(k.view(ptrs, 8 * n));
    for (let i = 0; i < n; i++) ptrView[i] = base + BigInt(8 * i);
    const idArr = k.alloc("int32_t", n);
    new Int32Array(k.view(idArr, 4 * n)).set(ids);
    const values = new BigUint64Array(k.view(vals, 8 * n));
    this.batches.push(vals, ptrs, idArr);
    return {
      values,
      read: (): BigUint64Array => {
        this.check("uc_reg_read_batch", this.a.uc_reg_read_batch(this.handle, idArr, ptrs, n) as number);
        return values;
      },
      write: (): void => {
        this.check("uc_reg_write_batch", this.a.uc_reg_write_batch(this.handle, idArr, ptrs, n) as number);
      },
    };
  }

  regWrite(id: number, value: bigint): void {
    if (this.regOutView === undefined) {
      this.regOut = this.a.koffi.alloc("uint64_t", 1);
      this.batches.push(this.regOut);
      this.regOutView = new BigUint64Array(this.a.koffi.view(this.regOut, 8));
    }
    this.regOutView[0] = BigInt.asUintN(64, value);
    const err = this.a.uc_reg_write(this.handle, id, this.regOut) as number;
    if (err !== UC_ERR_OK) this.check("uc_reg_write", err);
  }

  /** uc_emu_start; returns the uc_err code (guest faults are codes, not exceptions). */
  start(begin: number, until: bigint, timeoutUs: number, count: number): number {
    this.callbackError = undefined;
    this.callbackStopError = undefined;
    return this.a.uc_emu_start(this.handle, begin, until, timeoutUs, count) as number;
  }

  stop(): void {
    this.a.uc_emu_stop(this.handle);
  }

  /** Did the last emu_start end because its timeout expired? */
  timedOut(): boolean {
    const out = [0];
    if ((this.a.uc_query(this.handle, UC_QUERY_TIMEOUT, out) as number) !== UC_ERR_OK) return false;
    return Number(out[0]) !== 0;
  }

  /** Drops translated code for [begin, end): needed after the host rewrites guest code. */
  removeCache(begin: number, end: number): void {
    this.check("uc_ctl_remove_cache", this.a.uc_ctl2(this.handle, ctlWrite(UC_CTL_TB_REMOVE_CACHE, 2), "uint64_t", begin, "uint64_t", end) as number);
  }

  /** Drops all translated code (hooks added mid-run are not seen by cached blocks otherwise). */
  flushCache(): void {
    this.check("uc_ctl_flush_tb", this.a.uc_ctl0(this.handle, ctlWrite(UC_CTL_TB_FLUSH, 0)) as number);
  }

  private guard<A extends unknown[], R>(fn: (...args: A) => R, fallback: R): (...args: A) => R {
    return (...args: A): R => {
      try {
        return fn(...args);
      } catch (e) {
        if (this.callbackError === undefined) this.callbackError = e;
        try {
          const err = this.a.uc_emu_stop(this.handle) as number;
          if (err !== UC_ERR_OK) this.callbackStopError ??= new UnicornError("uc_emu_stop", err, ucStrerror(err));
        } catch (stopErr) {
          // nothing can be thrown through a native callback: kept beside callbackError
          this.callbackStopError ??= stopErr;
        }
        return fallback;
      }
    };
  }

  private addHook(type: number, proto: KoffiType, fn: (...args: never[]) => unknown, begin: bigint, end: bigint): HookHandle {
    const cb = this.a.koffi.register(fn, this.a.koffi.pointer(proto));
    const out = [0];
    const err = this.a.uc_hook_add(this.handle, out, type, cb, null, begin, end) as number;
    if (err !== UC_ERR_OK) {
      this.a.koffi.unregister(cb);
      this.check("uc_hook_add", err);
    }
    const id = this.nextHookId++;
    this.hooks.set(id, { handle: Number(out[0]), cb });
    return { id };
  }

  hookIntr(fn: IntrHook): HookHandle {
    const g = this.guard((_uc: unknown, intno: number) => fn(intno), undefined);
    return this.addHook(UC_HOOK_INTR, this.a.intrProto, g, 1n, 0n);
  }

  hookBlock(fn: BlockHook, begin = 1, end = 0): HookHandle {
    const g = this.guard((_uc: unknown, addr: unknown, size: number) => fn(toAddr(addr), size), undefined);
    return this.addHook(UC_HOOK_BLOCK, this.a.codeProto, g, BigInt(begin), BigInt(end));
  }

  /** UC_HOOK_CODE over [begin, end] (inclusive; begin > end: every instruction). Costs a native→JS call per instruction. */
  hookCode(fn: BlockHook, begin = 1, end = 0): HookHandle {
    const g = this.guard((_uc: unknown, addr: unknown, size: number) => fn(toAddr(addr), size), undefined);
    return this.addHook(UC_HOOK_CODE, this.a.codeProto, g, BigInt(begin), BigInt(end));
  }

  /** UC_HOOK_MEM_READ / UC_HOOK_MEM_WRITE over [begin, end] (inclusive). */
  hookMem(types: number, fn: MemHook, begin: number, end: number): HookHandle {
    const g = this.guard((_uc: unknown, type: number, addr: unknown, size: number, value: unknown) => fn(type, toAddr(addr), size, toU64(value)), undefined);
    return this.addHook(types, this.a.memProto, g, BigInt(begin), BigInt(end));
  }

  /** Unmapped / protection events anywhere. */
  hookMemEvent(types: number, fn: MemEventHook): HookHandle {
    const g = this.guard((_uc: unknown, type: number, addr: unknown, size: number, value: unknown) => fn(type, toAddr(addr), size, toU64(value)), false);
    return this.addHook(types, this.a.eventMemProto, g, 1n, 0n);
  }

  hookDel(h: HookHandle): void {
    const r = this.hooks.get(h.id);
    if (!r) return;
    this.hooks.delete(h.id);
    this.check("uc_hook_del", this.a.uc_hook_del(this.handle, r.handle) as number);
    this.a.koffi.unregister(r.cb);
  }

  // ---- register file -------------------------------------------------------------------------
  //
  // A trap handler needs a handful of registers and writes one or two back; through koffi each
  // native call costs about as much as the trap itself (measured: a trap with no register I/O
  // ~3.4 µs, with one batch read and one batch write ~9.9 µs, on a loaded host). Unicorn 2.0.1
  // reads and writes these registers as plain fields of its CPU state, so the CPU state is
  // located once (like the instruction counter below) and viewed as a BigUint64Array: reading
  // and writing registers in a hook then costs no native call. Candidate memory is copied with
  // process_vm_readv (EFAULT, not a crash, where nothing is mapped); the place found is checked
  // mapped (msync) and verified both ways through the API for every engine, and any doubt
  // leaves the batch calls in use.

  /** A live view of x0..x30, sp, pc in Unicorn's CPU state, or undefined (use regBatch). */
  registerFile(): BigUint64Array | undefined {
    if (regFileLayout === false) return undefined;
    try {
      // the layout found for an earlier engine first (heap placement may differ: verified)
      if (regFileLayout !== undefined) {
        const v = this.viewRegisterFile(regFileLayout);
        if (v !== undefined) return v;
      }
      for (const c of this.registerFileCandidates()) {
        const v = this.viewRegisterFile(c);
        if (v !== undefined) {
          regFileLayout = c;
          return v;
        }
      }
      regFileLayout ??= false;
    } catch {
      // no libc to probe with, or an unexpected layout: the batch calls stay in use
      regFileLayout = false;
    }
    return undefined;
  }

  private msync: KoffiFn | undefined;
  /** Is [addr, addr+len) mapped? (msync answers ENOMEM otherwise, without touching memory) */
  private mapped(addr: bigint, len: number): boolean {
    this.msync ??= this.a.koffi.load("libc.so.6").func("int msync(uint64_t addr, size_t len, int flags)");
    const page = addr & ~0xfffn;
    const MS_ASYNC = 1;
    return (this.msync(page, Number(addr - page) + len, MS_ASYNC) as number) === 0;
  }

  private viewRegisterFile(c: { field: number; offset: number }): BigUint64Array | undefined {
    const k = this.a.koffi;
    const w = k.decode(this.handle, c.field, "uint64_t");
    const addr = typeof w === "bigint" ? w : typeof w === "number" ? BigInt(w) : 0n;
    if (addr < 0x10000n || !this.mapped(addr + BigInt(c.offset), 8 * REG_FILE_WORDS)) return undefined;
    const p = k.decode(this.handle, c.field, "void *");
    if (p === null || p === undefined) return undefined;
    const view = new BigUint64Array(k.view(p, c.offset + 8 * REG_FILE_WORDS), c.offset, REG_FILE_WORDS);
    return this.verifyRegisterFile(view) ? view : undefined;
  }

  private static readonly FILE_IDS = [...Array.from({ length: 31 }, (_, i) => xReg(i)), REG.SP, REG.PC];
  private static mark(i: number, salt: bigint): bigint {
    return 0x7a11_0000_0000_1000n + salt + BigInt(i * 8);
  }

  /** Both directions agree with the API on this engine. */
  private verifyRegisterFile(view: BigUint64Array): boolean {
    const b = this.regBatch(UnicornEngine.FILE_IDS);
    for (let i = 0; i < REG_FILE_WORDS; i++) b.values[i] = UnicornEngine.mark(i, 0x100_0000n);
    b.write();
    for (let i = 0; i < REG_FILE_WORDS; i++) if (view[i] !== UnicornEngine.mark(i, 0x100_0000n)) return false;
    for (let i = 0; i < REG_FILE_WORDS; i++) view[i] = UnicornEngine.mark(i, 0x200_0000n);
    const back = b.read();
    let ok = true;
    for (let i = 0; i < REG_FILE_WORDS; i++) if (back[i] !== UnicornEngine.mark(i, 0x200_0000n)) ok = false;
    view.fill(0n);
    return ok;
  }

  /** Places holding the 33 markers just written (the API's own copies included: verified later). */
  private registerFileCandidates(): { field: number; offset: number }[] {
    const found: { field: number; offset: number }[] = [];
    const k = this.a.koffi;
    const b = this.regBatch(UnicornEngine.FILE_IDS);
    for (let i = 0; i < REG_FILE_WORDS; i++) b.values[i] = UnicornEngine.mark(i, 0n);
    b.write();
    b.values.fill(0n); // our own buffer must not be found
    const words = k.decode(this.handle, 0, "uint64_t[1024]");
    if (!Array.isArray(words)) return found;
    // Candidates are read with process_vm_readv on this very process: a value that only looks
    // like a pointer (or memory another thread unmaps meanwhile) gives EFAULT, never a crash.
    const readv = k.load("libc.so.6").func("intptr_t process_vm_readv(int pid, void *local, unsigned long liovcnt, void *remote, unsigned long riovcnt, unsigned long flags)");
    const SPAN = 1 << 19;
    const buf = k.alloc("uint64_t", SPAN / 8);
    const local = new BigUint64Array([k.address(buf), BigInt(SPAN)]);
    const remote = new BigUint64Array(2);
    const v = new BigUint64Array(k.view(buf, SPAN));
    this.batches.push(buf);
    for (let i = 0; i < words.length; i++) {
      const w = BigInt(words[i] as number | bigint);
      if (w < 0x10000n || w >= 1n << 47n || w % 8n !== 0n) continue;
      remote[0] = w;
      remote[1] = BigInt(SPAN);
      v.fill(0n);
      const got = Number(readv(process.pid, local, 1, remote, 1, 0));
      if (!(got > 0)) continue;
      const m0 = UnicornEngine.mark(0, 0n);
      const n = Math.floor(got / 8);
      for (let j = 0; j + REG_FILE_WORDS <= n; j++) {
        if (v[j] !== m0) continue;
        let all = true;
        for (let r = 1; r < REG_FILE_WORDS && all; r++) all = v[j + r] === UnicornEngine.mark(r, 0n);
        if (all) found.push({ field: i * 8, offset: j * 8 });
      }
    }
    // the CPU state sits inside the object uc->cpu points to: the nearest pointer is that one,
    // and it is the same field and offset in every engine (farther ones are heap neighbours)
    return found.sort((a, b) => a.offset - b.offset);
  }

  // ---- instruction counter -----------------------------------------------------------------
  //
  // Unicorn counts executed instructions itself when uc_emu_start gets a count (its private
  // uc_struct fields emu_counter, emu_count) but exposes no API to read the counter. A JS
  // block hook to count costs ~0.6 µs per block (measured: 880 → 6.5 MIPS), so the field is
  // located once per engine by calibration — two runs of known length, the offset must hold
  // both counts with the requested count beside it — and read with koffi.decode. Where
  // calibration fails (another Unicorn build) the caller falls back to a block hook.

  /** Reads the private counter: instructions started by the last emu_start (incl. a trapping one). */
  instructionCounter(): number | undefined {
    if (this.counterOffset === undefined) return undefined;
    return Number(this.a.koffi.decode(this.handle, this.counterOffset, "uint64_t"));
  }

  /**
   * Locates the counter with two calibration runs at `scratch` (a mapped, executable,
   * otherwise unused 4 KiB-aligned address whose bytes the caller lets us overwrite via `poke`).
   */
  /** The counter's offset found by calibrateCounter, for engines of the same library. */
  get calibratedCounterOffset(): number | undefined {
    return this.counterOffset;
  }

  /** Reuses an offset calibrated on another engine of this process (same library, same layout). */
  adoptCounterOffset(offset: number): void {
    this.counterOffset = offset;
  }

  calibrateCounter(scratch: number, poke: (addr: number, word: number) => void): boolean {
    const runs: [number, number][] = [
      [5, 1000],
      [11, 777],
    ];
    let candidates: number[] | undefined;
    const WORDS = 1024; // uc_struct is a few KiB; the counter sits within the first 8 KiB
    for (const [n, count] of runs) {
      const at = scratch + (candidates === undefined ? 0 : 0x100);
      for (let i = 0; i < n; i++) poke(at + 4 * i, 0xd503201f); // nop
      poke(at + 4 * n, 0xd4200000); // brk #0 (stops through the INTR hook installed below)
      const h = this.hookIntr(() => this.stop());
      this.removeCache(at, at + 4 * (n + 1));
      this.start(at, 0n, 0, count);
      this.hookDel(h);
      const words = this.a.koffi.decode(this.handle, 0, `uint64_t[${WORDS}]`);
      const arr = Array.isArray(words) ? (words as unknown[]) : words instanceof BigUint64Array ? Array.from(words) : [];
      const match: number[] = [];
      for (let i = 0; i + 1 < arr.length; i++)
        if (Number(arr[i]) === n + 1 && Number(arr[i + 1]) === count) match.push(i * 8);
      candidates = candidates === undefined ? match : candidates.filter((o) => match.includes(o));
    }
    if (candidates !== undefined && candidates.length === 1) {
      this.counterOffset = candidates[0];
      return true;
    }
    return false;
  }
}
