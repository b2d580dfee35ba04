// Arm64Cpu: one arm64 vCPU (EL1, MMU off, so VA == IPA) on Unicorn over a PhysicalMemory.
//
// - RAM chunks are mapped zero-copy (uc_mem_map_ptr over the SharedArrayBuffer chunk views),
//   lazily: the unmapped-memory hook translates the IPA, maps the chunk and lets Unicorn retry.
// - A GuestPhysMap translates IPA → machine address per 2 MiB block (a domU that is not
//   direct-mapped); identity by default.
// - MMIO windows are RAM pages in Unicorn with read/write hooks (uc_mmio_map splits 8-byte
//   accesses in 2.0.1, so width checks would be impossible): a read hook stores the device's
//   value where the load will find it. Unaligned accesses, and widths the device refuses, are
//   guest faults.
// - Every run passes an instruction count to uc_emu_start: that is the instruction limit, it
//   keeps PC exact inside hooks and it makes a stop take effect after the current instruction
//   (measured: without it PC reads as the block start and the rest of the block runs).
// - Traps (UC_HOOK_INTR) are decoded here and handed to the TrapRouter (traps.ts) inside the
//   hook: the handler sets x0 (and PC for HVC) and the guest resumes in the same uc_emu_start.

import { inspect } from "node:util";
import { DmalabError, FaultError, InternalError, LimitError, hex } from "../errors.js";
import type { PhysicalMemory, MmioWindow } from "../memory/physical-memory.js";
import {
  REG,
  UC_ERR_OK,
  UC_HOOK_MEM_READ,
  UC_HOOK_MEM_UNMAPPED,
  UC_HOOK_MEM_WRITE,
  UC_HOOK_MEM_PROT,
  UC_MEM_FETCH_UNMAPPED,
  UC_MEM_FETCH_PROT,
  UC_MEM_READ,
  UC_MEM_READ_PROT,
  UC_MEM_READ_UNMAPPED,
  UC_MEM_WRITE_UNMAPPED,
  UC_PROT_READ,
  UC_PROT_WRITE,
  UnicornEngine,
  type HookHandle,
  type RegBatch,
  ucStrerror,
  xReg,
} from "./unicorn.js";
import {
  CallLog,
  decodeTrapInsn,
  FRAME_PC,
  INTNO_BKPT,
  INTNO_SWI,
  INTNO_UDEF,
  WRITE_ALL,
  WRITE_NONE,
  WRITE_X0,
  type CallSummary,
  type TrapFrame,
  type TrapRouter,
  type TrapLogRecord,
} from "./traps.js";
import { noteMissingHostFeature } from "../host-features.js";

/** Guest-physical (IPA) → machine physical translation, per 2 MiB block. */
export interface GuestPhysMap {
  /** machine address of `ipa` (any address inside a 2 MiB block), or -1 when not mapped */
  ipaToMachine(ipa: number): number;
}

export const IDENTITY_PHYS_MAP: GuestPhysMap = { ipaToMachine: (ipa) => ipa };

export const TRANSLATION_BLOCK = 2 * 1024 * 1024;

export type GuestFaultKind =
  | "unmapped" // a load/store/fetch to an IPA that is neither RAM nor MMIO
  | "mmio" // an MMIO access the device refused (width, alignment, register)
  | "undefined-instruction"
  | "exception" // any other CPU exception Unicorn reports
  | "trap-error" // a trap handler failed (e.g. a fault inside the DMA code a service called)
  | "wfi"; // WFI/WFE with no interrupt or event source modelled: the vCPU would sleep forever

/** Everything known about a guest fault. Addresses are guest (IPA) addresses. */
export interface GuestFault {
  kind: GuestFaultKind;
  pc: number;
  /** the exact pc in hex when it is beyond 2^53 (pc is then only close) */
  pcHex?: string;
  /** the faulting data address, when there is one */
  address?: number;
  /** the instruction word at pc, when readable */
  insn?: number;
  /** Unicorn's interrupt number for "exception" faults */
  intno?: number;
  message: string;
}

export class GuestFaultError extends FaultError {
  constructor(readonly fault: GuestFault) {
    super(`guest fault at pc ${hex(fault.pc)}: ${fault.message}`);
  }
}

export type ExitReason =
  | { kind: "exit"; code: number; service: "exit" | "exit_group" }
  | { kind: "brk"; imm: number }
  | { kind: "fault"; fault: GuestFault }
  | { kind: "limit"; limit: "insns" | "time" | "debugger" };

export interface RegisterState {
  x: BigUint64Array; // x0..x30
  sp: bigint;
  pc: bigint;
}

export interface RunOptions {
  /** guest address of the first instruction */
  entry: number;
  /** initial SP (16-byte aligned) */
  stack?: number;
  /** initial x0..x30 values (others are zero) */
  regs?: Record<number, bigint>;
  /** instruction limit; default 100 million */
  maxInsns?: number;
  /** wall-time limit in milliseconds; default 30 s */
  timeLimitMs?: number;
  /** keep every hypercall/service call in the log, up to this many (default: counts and the last few) */
  logCalls?: number;
  /** keep the PCs of the last N instructions (a per-instruction hook: only when asked) */
  traceInsns?: number;
}

export interface RunResult {
  exit: ExitReason;
  /** instructions started, including a trapping one */
  insns: number;
  regs: RegisterState;
  /** the calls kept: every call (logCalls) or the last RECENT_CALLS */
  log: TrapLogRecord[];
  /** counts per op and what the log kept */
  calls: CallSummary;
  /** the first CONSOLE_CAP bytes the guest wrote */
  console: string;
  /** console bytes beyond the cap, not kept */
  consoleDropped: number;
  /** with traceInsns: the PCs of the last instructions started, oldest first (the last one is where it stopped) */
  trace?: number[];
}

/** The console keeps the first 64 KiB a guest writes (the rest is counted, not kept). */
export const CONSOLE_CAP = 64 * 1024;

export interface Arm64CpuOptions {
  memory: PhysicalMemory;
  physMap?: GuestPhysMap;
  traps?: TrapRouter;
}

const DEFAULT_MAX_INSNS = 100_000_000;
const DEFAULT_TIME_MS = 30_000;
const NEVER = 0xffff_ffff_ffff_fffcn; // the `until` address: a guest reaching it is told apart in run()
const WFI = 0xd503207f;
const WFE = 0xd503205f;

/**
 * The bytes a SIMD&FP load/store moves when that is more than 8 (a Q register, or a pair of
 * them), else undefined. Unicorn 2.0.1 splits such an access into 8-byte pieces before a
 * memory hook sees it, so the MMIO hook asks the instruction for the true width.
 */
export function simdAccessBytes(insn: number): number | undefined {
  const w = insn >>> 0;
  // LDR/STR (SIMD&FP) immediate, unscaled, pre/post-index, register offset: size 00, opc<1> 1 = 128-bit
  if ((w & 0x3b000000) >>> 0 === 0x38000000 || (w & 0x3b000000) >>> 0 === 0x39000000) {
    if ((w & 0x04000000) !== 0 && w >>> 30 === 0 && (w & 0x00800000) !== 0) return 16;
    return undefined;
  }
  // LDR (literal, SIMD&FP) opc 10 = 128-bit
  if ((w & 0x3f000000) >>> 0 === 0x1c000000 && w >>> 30 === 2) return 16;
  // LDP/STP/LDNP/STNP (SIMD&FP): opc 10 = two Q registers, 01 = two D registers
  if ((w & 0x3c000000) >>> 0 === 0x2c000000) {
    const opc = w >>> 30;
    return opc === 2 ? 32 : opc === 1 ? 16 : undefined;
  }
  // LD1..LD4 / ST1..ST4 (multiple structures) of 128-bit vectors (Q = 1)
  if ((w & 0xbf000000) >>> 0 === 0x0c000000 && (w & 0x40000000) !== 0) return 16;
  return undefined;
}

/** the counter offset calibrated once per process; false when calibration failed */
let counterOffsetProbe: number | false | undefined;

export class Arm64Cpu {
  readonly memory: PhysicalMemory;
  physMap: GuestPhysMap;
  traps: TrapRouter | undefined;
  private uc: UnicornEngine;
  /** mapped RAM units: IPA base → length */
  private readonly mapped = new Map<number, number>();
  private readonly mmioMapped = new Set<MmioWindow>();
  private readonly unit: number;
  private exitReason: ExitReason | undefined;
  private blockCount = 0;
  private countByBlocks = false;
  /** the hypercall/service log of the current run (bounded) */
  readonly calls = new CallLog();
  private readonly consoleBuf = new Uint8Array(CONSOLE_CAP);
  private consoleLen = 0;
  private consoleDropped = 0;
  private ran = false;
  /** Date.now() past which the current run must end (the DMA engine checks it inside a doorbell) */
  runDeadline = Infinity;
  /** the trap being handled: registers read in one native call (allRegs) */
  private readonly frame: TrapFrame;
  /** frame.regs is Unicorn's own register file: nothing to read or write back per trap */
  private readonly regsLive: boolean;
  /** instruction fetch cache: the 2 MiB IPA block last read, its chunk and the offset there */
  private fetchBlock = -1;
  private fetchChunk: Uint8Array | undefined;
  private fetchOff = 0;
  /** x0..x30, sp, pc in one native call */
  private readonly allRegs: RegBatch;
  private readonly xRegs: RegBatch;

  constructor(opts: Arm64CpuOptions) {
    this.memory = opts.memory;
    this.physMap = opts.physMap ?? IDENTITY_PHYS_MAP;
    this.traps = opts.traps;
    this.unit = Math.min(this.memory.chunkSize, TRANSLATION_BLOCK);
    this.uc = new UnicornEngine();
    const xIds = Array.from({ length: 31 }, (_, i) => xReg(i));
    this.allRegs = this.uc.regBatch([...xIds, REG.SP, REG.PC]);
    this.xRegs = this.uc.regBatch(xIds);
    const file = this.uc.registerFile();
    this.regsLive = file !== undefined;
    const regs = file ?? this.allRegs.values;
    this.frame = { regs, x: regs.subarray(0, 31), write: WRITE_NONE };
    if (!this.setupCounter()) {
      this.countByBlocks = true;
      this.uc.hookBlock((_a, size) => {
        this.blockCount += size >>> 2;
      });
    }
    this.uc.hookIntr((intno) => this.onIntr(intno));
    this.uc.hookMemEvent(UC_HOOK_MEM_UNMAPPED | UC_HOOK_MEM_PROT, (type, addr, size) => this.onUnmapped(type, addr, size));
    this.syncMmio();
  }

  private setupCounter(): boolean {
    // The offset of Unicorn's private counter is the same for every engine of one library:
    // calibrate once per process, in a throwaway engine.
    if (counterOffsetProbe === false) return false;
    if (typeof counterOffsetProbe === "number") {
      this.uc.adoptCounterOffset(counterOffsetProbe);
      return true;
    }
    const probe = new UnicornEngine();
    try {
      const page = new Uint8Array(4096);
      const dv = new DataView(page.buffer);
      const base = 0x1000;
      probe.mapPtr(base, page);
      const ok = probe.calibrateCounter(base, (a, w) => dv.setUint32(a - base, w, true));
      counterOffsetProbe = ok ? (probe.calibratedCounterOffset ?? false) : false;
      if (!ok) return false;
      // the real engine shares the layout: calibrate it too (cheap, and proves it)
      const page2 = new Uint8Array(4096);
      const dv2 = new DataView(page2.buffer);
      const base2 = 0x7fff_ffff_0000;
      this.uc.mapPtr(base2, page2);
      const ok2 = this.uc.calibrateCounter(base2, (a, w) => dv2.setUint32(a - base2, w, true));
      // a TB flush would touch all of Unicorn 2.0.1's 1 GiB code buffer (RSS +1 GiB, measured)
      this.uc.removeCache(base2, base2 + 4096);
      this.uc.unmap(base2, 4096);
      if (!ok2 || this.uc.calibratedCounterOffset !== counterOffsetProbe) counterOffsetProbe = false;
      return ok2;
    } catch (e) {
      // this libunicorn's layout is not the one calibrated for: instructions are counted by blocks
      noteMissingHostFeature("unicorn instruction counter", e);
      counterOffsetProbe = false;
      return false;
    } finally {
      probe.close();
    }
  }

  close(): void {
    this.uc.close();
  }

  /** The captured console (`write` to fd 1/2): its first CONSOLE_CAP bytes. */
  get console(): string {
    return Buffer.from(this.consoleBuf.buffer, 0, this.consoleLen).toString("utf8");
  }

  /**
   * write(1|2, ptr, len): false (EFAULT) when any byte is not guest RAM. Only what fits under
   * the console cap is copied; the rest is counted as dropped.
   */
  consoleWriteFromGuest(ptr: number, len: number): boolean {
    if (!this.isGuestRam(ptr, len)) return false;
    const keep = Math.min(len, CONSOLE_CAP - this.consoleLen);
    if (keep > 0) {
      const b = this.readGuest(ptr, keep)!;
      this.consoleBuf.set(b, this.consoleLen);
      this.consoleLen += keep;
    }
    this.consoleDropped += len - keep;
    return true;
  }

  /** Is every byte of [ipa, ipa+len) guest RAM? (no copy) */
  isGuestRam(ipa: number, len: number): boolean {
    let done = 0;
    while (done < len) {
      const a = ipa + done;
      const n = Math.min(len - done, TRANSLATION_BLOCK - (a % TRANSLATION_BLOCK));
      const ma = this.translate(a);
      if (ma < 0 || !this.memory.isRam(ma, n)) return false;
      done += n;
    }
    return true;
  }

  // ---- guest memory (IPA) -------------------------------------------------------------------

  /** Machine address of an IPA, or -1. */
  translate(ipa: number): number {
    if (!Number.isSafeInteger(ipa) || ipa < 0) return -1;
    const blk = ipa - (ipa % TRANSLATION_BLOCK);
    const ma = this.physMap.ipaToMachine(blk);
    if (ma < 0) return -1;
    return ma - (ma % TRANSLATION_BLOCK) + (ipa - blk);
  }

  /** Copies guest memory [ipa, ipa+len) (RAM only); undefined when any byte is not RAM. */
  readGuest(ipa: number, len: number): Uint8Array | undefined {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const a = ipa + done;
      const n = Math.min(len - done, TRANSLATION_BLOCK - (a % TRANSLATION_BLOCK));
      const ma = this.translate(a);
      if (ma < 0 || !this.memory.isRam(ma, n)) return undefined;
      this.memory.readInto(ma, out.subarray(done, done + n));
      done += n;
    }
    return out;
  }

  /** Writes guest memory; false (nothing written) when any byte is not RAM. */
  writeGuest(ipa: number, bytes: Uint8Array): boolean {
    const parts: [number, number, number][] = [];
    let done = 0;
    while (done < bytes.length) {
      const a = ipa + done;
      const n = Math.min(bytes.length - done, TRANSLATION_BLOCK - (a % TRANSLATION_BLOCK));
      const ma = this.translate(a);
      if (ma < 0 || !this.memory.isRam(ma, n)) return false;
      parts.push([ma, done, n]);
      done += n;
    }
    for (const [ma, off, n] of parts) this.memory.write(ma, bytes.subarray(off, off + n));
    return true;
  }

  /** Loads a program image at an IPA (drops any translated code there). */
  load(ipa: number, image: Uint8Array): void {
    if (!this.writeGuest(ipa, image))
      throw new GuestFaultError({ kind: "unmapped", pc: ipa, address: ipa, message: `cannot load ${image.length} bytes at ${hex(ipa)}: not guest RAM` });
    // Unicorn does not see host writes to code it already translated: drop the blocks over the
    // image (page-rounded, and the page before it for a block running into the image). Not a
    // TB flush: in 2.0.1 that touches all of the 1 GiB code buffer (RSS +1 GiB, measured).
    // uc_ctl_remove_cache misses blocks of units mapped from inside a hook (the lazy mapping,
    // measured): those units are mapped again from here first.
    if (this.ran) {
      for (let u = ipa - (ipa % this.unit); u < ipa + image.length; u += this.unit) {
        const len = this.mapped.get(u);
        if (len === undefined) continue;
        this.uc.unmap(u, len);
        this.mapped.delete(u);
        this.mapUnit(u);
      }
      const from = Math.max(0, ipa - (ipa % 4096) - 4096);
      this.uc.removeCache(from, ipa + image.length + 4096 - ((ipa + image.length) % 4096));
    }
    this.fetchBlock = -1;
  }

  /** The instruction word at an IPA, or undefined. */
  insnAt(ipa: number): number | undefined {
    const b = this.readGuest(ipa, 4);
    if (!b) return undefined;
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  /**
   * Forgets every RAM mapping (they are re-made lazily through the translation): call it after
   * the P2M changed (e.g. a XENMEM_exchange moved guest frames).
   */
  invalidateMappings(): void {
    // blocks translated from these pages go with them (not a TB flush: see load())
    for (const [base, len] of this.mapped) {
      this.uc.removeCache(base, base + len);
      this.uc.unmap(base, len);
    }
    this.mapped.clear();
    this.fetchBlock = -1;
  }

  /** The instruction word at an IPA through a one-block cache (the trap path's fetch). */
  private fetchInsn(ipa: number): number | undefined {
    const blk = ipa - (ipa % TRANSLATION_BLOCK);
    if (blk !== this.fetchBlock) {
      const ma = this.translate(blk);
      if (ma < 0 || !this.memory.isRam(ma, TRANSLATION_BLOCK)) return this.insnAt(ipa);
      this.fetchChunk = this.memory.chunkAt(ma);
      this.fetchOff = ma & (this.memory.chunkSize - 1);
      this.fetchBlock = blk;
    }
    const c = this.fetchChunk!;
    const o = this.fetchOff + (ipa - blk);
    if (o + 4 > c.length) return this.insnAt(ipa);
    return (c[o]! | (c[o + 1]! << 8) | (c[o + 2]! << 16) | (c[o + 3]! << 24)) >>> 0;
  }

  private syncMmio(): void {
    for (const w of this.memory.mmio) {
      if (this.mmioMapped.has(w)) continue;
      this.mmioMapped.add(w);
      // registers live in this page so a load sees what the read hook stored
      const page = new Uint8Array(w.size);
      this.uc.mapPtr(w.base, page, UC_PROT_READ | UC_PROT_WRITE);
      this.uc.hookMem(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, (type, addr, size, value) => this.onMmio(w, page, type, addr, size, value), w.base, w.base + w.size - 1);
    }
  }

  // ---- registers ------------------------------------------------------------------------------

  readX(n: number): bigint {
    return this.uc.regRead(xReg(n));
  }
  writeX(n: number, v: bigint): void {
    this.uc.regWrite(xReg(n), v);
  }
  get pc(): number {
    return Number(this.uc.regRead(REG.PC));
  }
  set pc(v: number) {
    this.uc.regWrite(REG.PC, BigInt(v));
  }
  readRegs(): RegisterState {
    const v = this.allRegs.read();
    return { x: v.slice(0, 31), sp: v[31]!, pc: v[32]! };
  }
  writeAllX(x: BigUint64Array): void {
    this.xRegs.values.set(x.subarray(0, 31));
    this.xRegs.write();
  }

  /** Ends the run from inside a hook (takes effect after the current instruction). */
  requestStop(reason: ExitReason): void {
    if (this.exitReason === undefined) this.exitReason = reason;
    this.uc.stop();
  }

  fault(f: GuestFault): void {
    this.requestStop({ kind: "fault", fault: f });
  }

  // ---- running ----------------------------------------------------------------------------------

  run(opts: RunOptions): RunResult {
    const maxInsns = opts.maxInsns ?? DEFAULT_MAX_INSNS;
    const timeMs = opts.timeLimitMs ?? DEFAULT_TIME_MS;
    if (!Number.isSafeInteger(maxInsns) || maxInsns < 1) throw new FaultError(`instruction limit ${maxInsns}: must be a positive integer`);
    this.syncMmio();
    const init = new BigUint64Array(31);
    for (let i = 0; i < 31; i++) init[i] = BigInt.asUintN(64, opts.regs?.[i] ?? 0n);
    this.writeAllX(init);
    this.uc.regWrite(REG.SP, BigInt(opts.stack ?? 0));
    this.exitReason = undefined;
    this.blockCount = 0;
    this.calls.reset(opts.logCalls ?? 0);
    this.consoleLen = 0;
    this.consoleDropped = 0;
    this.ran = true;
    const t0 = Date.now();
    this.runDeadline = t0 + timeMs;
    const trace = opts.traceInsns !== undefined && opts.traceInsns > 0 ? this.startTrace(opts.traceInsns) : undefined;
    const err = this.uc.start(opts.entry, NEVER, Math.max(1, Math.round(timeMs * 1000)), maxInsns);
    if (trace) {
      this.uc.hookDel(trace.hook);
      this.uc.flushCache(); // blocks translated with the hook would still call out per instruction
    }
    const cbErr = this.uc.callbackError;
    let insns = this.countByBlocks ? this.blockCount : (this.uc.instructionCounter() ?? 0);
    let exit = this.exitReason as ExitReason | undefined;
    if (cbErr !== undefined && exit === undefined) {
      // a trap handler threw: a fault of the emulated machine stops the guest; a host bug does not hide
      if (!(cbErr instanceof DmalabError)) throw cbErr instanceof Error ? cbErr : new InternalError(`a hook threw ${inspect(cbErr)}`);
      const pc = this.pc;
      exit = { kind: "fault", fault: { kind: "trap-error", pc, insn: this.insnAt(pc), message: cbErr.message } };
    }
    if (exit === undefined && err !== UC_ERR_OK) {
      const pc = this.pc;
      exit = { kind: "fault", fault: { kind: "exception", pc, insn: this.insnAt(pc), message: `${ucStrerror(err)} (uc_err ${err})` } };
    }
    this.runDeadline = Infinity;
    const regs = this.readRegs();
    if (exit === undefined) exit = this.stoppedWithoutReason(regs.pc, insns, maxInsns);
    if (exit === undefined) {
      if (this.uc.timedOut() || Date.now() - t0 >= timeMs) exit = { kind: "limit", limit: "time" };
      else exit = { kind: "limit", limit: "insns" };
    }
    // Unicorn counts the instruction at which the count ran out, without executing it
    if (insns > maxInsns) insns = maxInsns;
    const res: RunResult = { exit, insns, regs, log: this.calls.records(), calls: this.calls.summary(), console: this.console, consoleDropped: this.consoleDropped };
    if (trace) res.trace = trace.pcs();
    return res;
  }

  /**
   * Unicorn returned with no hook having stopped it and before the count ran out: either the
   * guest branched to the `until` address (an address like any other: nothing is mapped there,
   * so it is an instruction fetch abort) or a WFI/WFE halted the vCPU (nothing can wake it).
   */
  private stoppedWithoutReason(pc: bigint, insns: number, maxInsns: number): ExitReason | undefined {
    if (pc === NEVER) {
      const at = "0x" + pc.toString(16);
      return { kind: "fault", fault: { kind: "unmapped", pc: Number(pc), pcHex: at, address: Number(pc), message: `instruction fetch at ${at}: not RAM or MMIO (instruction fetch abort)` } };
    }
    if (insns >= maxInsns || this.uc.timedOut()) return undefined;
    const p = Number(pc);
    for (const at of [p - 4, p]) {
      const w = this.insnAt(at);
      if (w === WFI || w === WFE)
        return {
          kind: "fault",
          fault: {
            kind: "wfi",
            pc: at,
            insn: w,
            message: `${w === WFI ? "WFI" : "WFE"} with no interrupt source (dmalab models no timer or device interrupts): the vCPU would sleep forever`,
          },
        };
    }
    return undefined;
  }

  // ---- seeing what the guest does (tracing, debugging) -----------------------------------------
  //
  // Nothing here is installed unless asked for: a code hook costs a native→JS call per
  // instruction (or per breakpoint address), so plain runs keep their speed.

  /** A ring of the last `n` PCs, filled by a code hook on every instruction. */
  private startTrace(n: number): { hook: HookHandle; pcs(): number[] } {
    const ring = new Float64Array(n);
    let next = 0;
    let filled = false;
    const hook = this.uc.hookCode((addr) => {
      ring[next] = addr;
      if (++next === n) {
        next = 0;
        filled = true;
      }
    });
    this.uc.flushCache();
    return { hook, pcs: () => (filled ? [...ring.subarray(next), ...ring.subarray(0, next)] : [...ring.subarray(0, next)]) };
  }

  private readonly breakpoints = new Map<number, HookHandle>();
  private bpHit: number | undefined;
  private bpSkip = -1;
  private debugInsns = 0;

  /** Sets up registers as run() does, without running: the debugger then steps or continues. */
  debugStart(opts: Pick<RunOptions, "entry" | "stack" | "regs">): void {
    this.syncMmio();
    const init = new BigUint64Array(31);
    for (let i = 0; i < 31; i++) init[i] = BigInt.asUintN(64, opts.regs?.[i] ?? 0n);
    this.writeAllX(init);
    this.uc.regWrite(REG.SP, BigInt(opts.stack ?? 0));
    this.pc = opts.entry;
    this.exitReason = undefined;
    this.calls.reset(0);
    this.consoleLen = 0;
    this.consoleDropped = 0;
    this.debugInsns = 0;
    this.ran = true;
  }

  /** A software breakpoint: execution stops before the instruction at `addr`. */
  setBreakpoint(addr: number): void {
    if (this.breakpoints.has(addr)) return;
    this.breakpoints.set(
      addr,
      this.uc.hookCode((a) => {
        if (a === this.bpSkip) {
          this.bpSkip = -1;
          return;
        }
        this.bpHit = a;
        this.uc.stop();
      }, addr, addr),
    );
    this.uc.flushCache(); // translated blocks do not see hooks added after them
  }

  clearBreakpoint(addr: number): void {
    const h = this.breakpoints.get(addr);
    if (h === undefined) return;
    this.breakpoints.delete(addr);
    this.uc.hookDel(h);
    this.uc.flushCache();
  }

  /** Overwrites guest code from the debugger (drops translated blocks). */
  debugWrite(ipa: number, bytes: Uint8Array): boolean {
    const ok = this.writeGuest(ipa, bytes);
    if (ok) this.uc.flushCache();
    return ok;
  }

  /** Instructions run since debugStart. */
  get debugInstructions(): number {
    return this.debugInsns;
  }

  /**
   * Runs at most `count` instructions from the current PC (a breakpoint at that PC is stepped
   * over). "stopped": the count ran out or a breakpoint was reached; "exit": the run is over
   * (exit, BRK, fault), as run() reports it.
   */
  debugResume(count: number, timeMs = DEFAULT_TIME_MS): { kind: "stopped"; breakpoint: boolean } | { kind: "exit"; exit: ExitReason } {
    if (this.exitReason !== undefined) return { kind: "exit", exit: this.exitReason };
    const pc = this.pc;
    this.bpHit = undefined;
    this.bpSkip = this.breakpoints.has(pc) ? pc : -1;
    const err = this.uc.start(pc, NEVER, Math.max(1, Math.round(timeMs * 1000)), count);
    this.bpSkip = -1;
    const n = this.countByBlocks ? count : (this.uc.instructionCounter() ?? count);
    // the counter includes an instruction a breakpoint stopped before
    this.debugInsns += Math.min(count, this.bpHit !== undefined ? Math.max(0, n - 1) : n);
    const cbErr = this.uc.callbackError;
    if (this.exitReason === undefined && cbErr !== undefined) {
      if (!(cbErr instanceof DmalabError)) throw cbErr instanceof Error ? cbErr : new InternalError(`a hook threw ${inspect(cbErr)}`);
      const at = this.pc;
      this.exitReason = { kind: "fault", fault: { kind: "trap-error", pc: at, insn: this.insnAt(at), message: cbErr.message } };
    }
    if (this.exitReason === undefined && err !== UC_ERR_OK) {
      const at = this.pc;
      this.exitReason = { kind: "fault", fault: { kind: "exception", pc: at, insn: this.insnAt(at), message: `${ucStrerror(err)} (uc_err ${err})` } };
    }
    if (this.exitReason !== undefined) return { kind: "exit", exit: this.exitReason };
    return { kind: "stopped", breakpoint: this.bpHit !== undefined };
  }

  /** Ends a debugged run (the debugger killed it, or the instruction limit) with `reason`. */
  debugEnd(reason: ExitReason): RunResult {
    this.exitReason ??= reason;
    return { exit: this.exitReason, insns: this.debugInsns, regs: this.readRegs(), log: this.calls.records(), calls: this.calls.summary(), console: this.console, consoleDropped: this.consoleDropped };
  }

  /** Writes x0..x30, sp, pc (the debugger's G/P packets). */
  writeRegs(r: RegisterState): void {
    this.writeAllX(r.x);
    this.uc.regWrite(REG.SP, r.sp);
    this.uc.regWrite(REG.PC, r.pc);
  }

  /** NZCV (bits 31..28 of PSTATE). */
  get nzcv(): number {
    return Number(this.uc.regRead(REG.NZCV));
  }
  set nzcv(v: number) {
    this.uc.regWrite(REG.NZCV, BigInt(v >>> 0) & 0xf000_0000n);
  }

  // ---- hooks --------------------------------------------------------------------------------

  private onIntr(intno: number): void {
    // The trap is handled here and the guest resumes without leaving uc_emu_start. Registers
    // come from Unicorn's own register file when it was located (no native call), else from
    // one batch read; what the handler changed goes back in at most one call.
    const frame = this.frame;
    const regs = this.regsLive ? frame.regs : this.allRegs.read();
    frame.write = WRITE_NONE;
    const pc = Number(regs[FRAME_PC]!);
    if (this.traps !== undefined && (intno === INTNO_UDEF || intno === INTNO_SWI)) {
      const at = intno === INTNO_SWI ? pc - 4 : pc;
      const insn = this.fetchInsn(at);
      const d = insn === undefined ? undefined : decodeTrapInsn(insn);
      if (d?.kind === (intno === INTNO_SWI ? "svc" : "hvc")) {
        try {
          if (d.kind === "svc") this.traps.svc(this, frame, d.imm, at, insn!);
          else this.traps.hvc(this, frame, d.imm, at, insn!);
        } finally {
          // what the handler changed goes back, even when it threw after changing it
          if (!this.regsLive) {
            if (frame.write === WRITE_X0) this.uc.regWrite(REG.X0, regs[0]!);
            else if (frame.write === WRITE_ALL) this.allRegs.write();
          }
        }
        return;
      }
    }
    this.onOtherIntr(intno, pc);
  }

  private onOtherIntr(intno: number, pc: number): void {
    // Measured on 2.0.1 (test/cpu/traps.test.ts): HVC and UDF arrive as intno 1 (EXCP_UDEF)
    // with PC at the instruction (no EL2, so HVC is undefined to QEMU); SVC as intno 2
    // (EXCP_SWI) with PC past it; BRK as intno 7 (EXCP_BKPT) with PC at it.
    if (intno === INTNO_UDEF) {
      const insn = this.insnAt(pc);
      this.fault({ kind: "undefined-instruction", pc, insn, message: insn === undefined ? "instruction fetch outside RAM" : `undefined instruction ${hex(insn)}` });
      return;
    }
    if (intno === INTNO_SWI) {
      const at = pc - 4;
      const insn = this.insnAt(at);
      this.fault({ kind: "exception", pc: at, insn, intno, message: `supervisor call ${insn === undefined ? "" : hex(insn)} with no service handler` });
      return;
    }
    if (intno === INTNO_BKPT) {
      const insn = this.insnAt(pc);
      const d = insn === undefined ? undefined : decodeTrapInsn(insn);
      this.requestStop({ kind: "brk", imm: d?.kind === "brk" ? d.imm : 0 });
      return;
    }
    this.fault({ kind: "exception", pc, insn: this.insnAt(pc), intno, message: `CPU exception (Unicorn interrupt number ${intno})` });
  }

  /** Maps the RAM unit at IPA `base` (zero-copy); false when it is not RAM. */
  private mapUnit(base: number): boolean {
    const ma = this.translate(base);
    if (ma < 0 || this.memory.bankAt(ma) === undefined) return false;
    const chunk = this.memory.chunkAt(ma);
    const off = ma & (this.memory.chunkSize - 1);
    const view = chunk.subarray(off, Math.min(chunk.length, off + this.unit));
    this.uc.mapPtr(base, view);
    this.mapped.set(base, view.length);
    return true;
  }

  private onUnmapped(type: number, addr: number, size: number): boolean {
    const fetch = type === UC_MEM_FETCH_UNMAPPED || type === UC_MEM_FETCH_PROT;
    const isRead = type === UC_MEM_READ_UNMAPPED || type === UC_MEM_READ_PROT;
    const base = addr - (addr % this.unit);
    const unmapped = type === UC_MEM_READ_UNMAPPED || type === UC_MEM_WRITE_UNMAPPED || type === UC_MEM_FETCH_UNMAPPED;
    if (unmapped && !this.mapped.has(base) && this.mapUnit(base)) return true;
    const pc = fetch ? addr : this.pc;
    const what = fetch ? "instruction fetch" : isRead ? `read of ${size} bytes` : `write of ${size} bytes`;
    const ma = this.translate(addr);
    const why = ma < 0 ? "no stage-2 mapping for this guest-physical address" : ma !== addr ? `machine address ${hex(ma)} is not RAM or MMIO` : "not RAM or MMIO";
    this.fault({ kind: "unmapped", pc, address: addr, insn: fetch ? undefined : this.insnAt(pc), message: `${what} at ${hex(addr)}: ${why}` });
    return false;
  }

  private onMmio(w: MmioWindow, page: Uint8Array, type: number, addr: number, size: number, value: bigint): void {
    const off = addr - w.base;
    const isRead = type === UC_MEM_READ;
    const refuse = (why: string): void => {
      if (isRead) page.fill(0, off, Math.min(page.length, off + size));
      const pc = this.pc;
      this.fault({ kind: "mmio", pc, address: addr, insn: this.insnAt(pc), message: `MMIO ${isRead ? "read" : "write"} of ${size} bytes at ${hex(addr)} (${w.name} + ${hex(off)}): ${why}` });
    };
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) return refuse("unsupported access width");
    if (size === 8) {
      const insn = this.insnAt(this.pc);
      const wide = insn === undefined ? undefined : simdAccessBytes(insn);
      if (wide !== undefined) {
        size = wide;
        return refuse(`a ${wide}-byte SIMD&FP access: device registers take 1, 2, 4 or 8 bytes (data abort)`);
      }
    }
    if (off % size !== 0) return refuse("unaligned access");
    if (this.exitReason !== undefined) return;
    try {
      if (isRead) {
        const v = BigInt.asUintN(size * 8, w.handler.read(off, size));
        for (let i = 0; i < size; i++) page[off + i] = Number((v >> BigInt(8 * i)) & 0xffn);
      } else {
        w.handler.write(off, size, BigInt.asUintN(size * 8, value));
      }
    } catch (e) {
      // the DMA engine ran out of the run's time inside a doorbell
      if (e instanceof LimitError) return this.requestStop({ kind: "limit", limit: "time" });
      if (e instanceof DmalabError) return refuse(e.message);
      throw e;
    }
  }
}

export { decodeTrapInsn };
