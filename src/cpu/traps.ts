// What a guest's HVC, SVC and BRK mean on a dmalab machine.
//
// How Unicorn 2.0.1 reports them (measured, test/cpu/traps.test.ts), with no EL2/EL3 modelled:
//   HVC #imm  → UC_HOOK_INTR intno 1 (EXCP_UDEF), PC at the HVC
//   UDF / any undefined encoding → intno 1, PC at the instruction
//   SVC #imm  → intno 2 (EXCP_SWI), PC past the SVC
//   BRK #imm  → intno 7 (EXCP_BKPT), PC at the BRK
// Since there is no syndrome register to read, the immediate comes from the instruction word.
//
// HVC, as Xen on arm64 handles a guest's HVC64 (xen/arch/arm/traps.c, vsmc.c, vpsci.c):
//   #0xEA1 → hypercall, number in x16, args x0..x4, result in x0, PC past the HVC;
//   #0     → SMCCC (PSCI, SMCCC_VERSION...): unknown function → -1 in x0;
//   other  → Xen injects an undefined-instruction exception: a guest fault here.
// Without a hypervisor (bare metal at EL1, no EL2) every HVC is an undefined instruction.
//
// SVC #0 → dmalab services, number in x8, args x0..x5, result in x0 (Linux arm64 syscall ABI):
//   64 write(fd, buf, len)   fd 1/2 → the captured console; returns len, -EBADF, -EFAULT
//   93 exit(code), 94 exit_group(code) → the run ends with `exit` (code & 0xff, as Linux)
//   0x1000 dma_map(dev, phys, size, dir) → DMA address, or DMA_MAPPING_ERROR (all ones)
//   0x1001 dma_unmap(dev, dma, size, dir) → 0
//   0x1002 dma_sync_for_cpu(dev, dma, size, dir) → 0
//   0x1003 dma_sync_for_device(dev, dma, size, dir) → 0
//   0x1004 dma_alloc_coherent(dev, size) → DMA address or all ones, x1 = guest-physical address
//   0x1005 dma_free_coherent(dev, size, phys, dma) → 0   (both in coherent-service.ts)
//   unknown number → -ENOSYS (-38) in x0, as Linux; no device → -ENODEV; bad direction or a
//   misuse the DMA layer refuses → -EINVAL. SVC with a non-zero immediate is a guest fault.
// BRK #imm ends the run with `brk` and the immediate.

import { DmalabError, FaultError, hex } from "../errors.js";
import { EBADF, EFAULT, EINVAL, ENODEV, ENOSYS } from "../kernel/errno.js";
import type { Arm64Cpu } from "./arm64-cpu.js";
import { SVC_DMA_ALLOC_COHERENT, SVC_DMA_FREE_COHERENT, coherentService, type CoherentServices } from "./coherent-service.js";

export const INTNO_UDEF = 1;
export const INTNO_SWI = 2;
export const INTNO_BKPT = 7;

export const XEN_HYPERCALL_TAG = 0xea1;

export type TrapInsn = { kind: "hvc" | "svc" | "brk" | "smc"; imm: number } | { kind: "other" };

/** Decodes the exception-generating instructions (A64 "Exception generation" class). */
export function decodeTrapInsn(word: number): TrapInsn {
  const w = word >>> 0;
  const imm = (w >>> 5) & 0xffff;
  switch ((w & 0xffe0001f) >>> 0) {
    case 0xd4000001:
      return { kind: "svc", imm };
    case 0xd4000002:
      return { kind: "hvc", imm };
    case 0xd4000003:
      return { kind: "smc", imm };
    case 0xd4200000:
      return { kind: "brk", imm };
    default:
      return { kind: "other" };
  }
}


// ---- log ------------------------------------------------------------------------------------

export interface TrapLogRecord {
  kind: "hypercall" | "smccc" | "service";
  /** e.g. "memory_op", "PSCI_VERSION", "write", "dma_map" */
  op: string;
  nr: number;
  args: bigint[];
  /** the signed 64-bit result placed in x0 */
  ret: bigint;
  pc: number;
}

/** How often one op was called in a run. */
export interface CallCount {
  kind: TrapLogRecord["kind"];
  op: string;
  nr: number;
  count: number;
}

/** What a run's call log kept: counts per op always; every call only with logAll. */
export interface CallSummary {
  total: number;
  /** per op, in order of first call; ops beyond MAX_DISTINCT_OPS are counted under op "other" */
  byOp: CallCount[];
  /** "all": every call up to the cap is in the log; "recent": only the last `kept` calls */
  logged: "all" | "recent";
  /** calls in the log */
  kept: number;
  /** calls not in the log (older than the recent window, or past the --log-calls cap) */
  dropped: number;
}

/** the last calls kept when the full log is off */
export const RECENT_CALLS = 32;
/** the full log (--log-calls) keeps at most this many calls by default */
export const DEFAULT_LOG_CALLS_CAP = 100_000;
/** a guest can invent any number of hypercall/service numbers: their counts are capped */
const MAX_DISTINCT_OPS = 256;
const MAX_ARGS = 6;
const KIND_CODE: Record<TrapLogRecord["kind"], number> = { hypercall: 0, smccc: 1, service: 2 };
const u64Of = (v: bigint | number): bigint => BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(v));
const KINDS: TrapLogRecord["kind"][] = ["hypercall", "smccc", "service"];

/**
 * A run's hypercall and service log, bounded whatever the guest does: counts per op, the last
 * RECENT_CALLS calls in a ring of preallocated slots (no allocation per call), and, only when
 * asked (logAll), every call up to a cap.
 */
export class CallLog {
  total = 0;
  private readonly counts = new Map<string, CallCount>();
  private readonly ringKind = new Uint8Array(RECENT_CALLS);
  private readonly ringOp: string[] = new Array<string>(RECENT_CALLS).fill("");
  private readonly ringNr = new Float64Array(RECENT_CALLS);
  private readonly ringNargs = new Uint8Array(RECENT_CALLS);
  private readonly ringArgs = new BigUint64Array(RECENT_CALLS * MAX_ARGS);
  private readonly ringRet = new BigInt64Array(RECENT_CALLS);
  private readonly ringPc = new Float64Array(RECENT_CALLS);
  private all: TrapLogRecord[] | undefined;
  private allCap = 0;
  /** told of every call as it is recorded (`guest --trace`); null costs one test per trap */
  listener: ((kind: TrapLogRecord["kind"], op: string, nr: number, args: ArrayLike<bigint | number>, nargs: number, ret: bigint, pc: number) => void) | null = null;

  /** Starts a run: logAll = the cap of the full log (0: counts and the recent calls only). */
  reset(logAll = 0): void {
    this.total = 0;
    this.counts.clear();
    this.all = logAll > 0 ? [] : undefined;
    this.allCap = logAll;
  }

  /** One call; args are read from `args[0..nargs)` (copied: the caller may reuse the array). */
  record(kind: TrapLogRecord["kind"], op: string, nr: number, args: ArrayLike<bigint | number>, nargs: number, ret: bigint, pc: number): void {
    this.listener?.(kind, op, nr, args, nargs, ret, pc);
    let c = this.counts.get(op);
    if (c === undefined) {
      if (this.counts.size >= MAX_DISTINCT_OPS) {
        c = this.counts.get("other");
        if (c === undefined) this.counts.set("other", (c = { kind, op: "other", nr: -1, count: 0 }));
      } else this.counts.set(op, (c = { kind, op, nr, count: 0 }));
    }
    c.count++;
    const n = Math.min(nargs, MAX_ARGS);
    if (this.all !== undefined) {
      if (this.all.length < this.allCap) {
        const a: bigint[] = [];
        for (let i = 0; i < n; i++) a.push(u64Of(args[i]!));
        this.all.push({ kind, op, nr, args: a, ret, pc });
      }
    } else {
      const s = this.total % RECENT_CALLS;
      this.ringKind[s] = KIND_CODE[kind];
      this.ringOp[s] = op;
      this.ringNr[s] = nr;
      this.ringNargs[s] = n;
      for (let i = 0; i < n; i++) this.ringArgs[s * MAX_ARGS + i] = u64Of(args[i]!);
      this.ringRet[s] = BigInt.asIntN(64, ret);
      this.ringPc[s] = pc;
    }
    this.total++;
  }

  /** The calls kept, oldest first. */
  records(): TrapLogRecord[] {
    if (this.all !== undefined) return [...this.all];
    const kept = Math.min(this.total, RECENT_CALLS);
    const out: TrapLogRecord[] = [];
    for (let k = this.total - kept; k < this.total; k++) {
      const s = k % RECENT_CALLS;
      const args: bigint[] = [];
      for (let i = 0; i < this.ringNargs[s]!; i++) args.push(this.ringArgs[s * MAX_ARGS + i]!);
      out.push({ kind: KINDS[this.ringKind[s]!]!, op: this.ringOp[s]!, nr: this.ringNr[s]!, args, ret: this.ringRet[s]!, pc: this.ringPc[s]! });
    }
    return out;
  }

  summary(): CallSummary {
    const kept = this.all !== undefined ? this.all.length : Math.min(this.total, RECENT_CALLS);
    return { total: this.total, byOp: [...this.counts.values()].map((c) => ({ ...c })), logged: this.all !== undefined ? "all" : "recent", kept, dropped: this.total - kept };
  }
}

/**
 * The registers of the trap being handled, read in one native call: x0..x30, sp, pc. A handler
 * changes them in place and says what must go back (one native call again).
 */
export interface TrapFrame {
  readonly regs: BigUint64Array;
  /** x0..x30 (a live view of regs) */
  readonly x: BigUint64Array;
  /** WRITE_NONE, WRITE_X0 or WRITE_ALL (x0..x30, sp and pc) */
  write: number;
}
export const WRITE_NONE = 0;
export const WRITE_X0 = 1;
export const WRITE_ALL = 2;
export const FRAME_PC = 32;

// ---- Xen -------------------------------------------------------------------------------------

/** What a hypervisor's register-level dispatch returns (XenHypervisor.dispatch's log record). */
export interface HypercallRecord {
  op: string;
  nr: number;
  args: readonly (bigint | number)[];
  ret: bigint | number;
  /** Xen arranged a continuation: the guest re-executes the HVC (PC is not advanced) */
  continuation?: boolean;
}

/**
 * A hypervisor bound to the running domain. `dispatch` decodes x16/x0..x4 from regs.x, does
 * the work (reading/writing guest memory itself), stores the result in regs.x[0] and may
 * clobber argument registers as a debug build of Xen does; every x register is written back.
 */
export interface HypercallHandler {
  dispatch(regs: { x: BigUint64Array }): HypercallRecord;
  /** the guest's P2M changed during the last dispatch (the CPU then remaps its RAM) */
  p2mChanged?(): boolean;
}

// SMCCC / PSCI function ids and results (Xen's vsmc.c / vpsci.c, HEAD of 2026)
export const SMCCC_VERSION_FID = 0x8000_0000;
export const SMCCC_ARCH_FEATURES_FID = 0x8000_0001;
export const PSCI_0_2_FN_PSCI_VERSION = 0x8400_0000;
export const PSCI_0_2_FN_MIGRATE_INFO_TYPE = 0x8400_0006;
export const PSCI_1_0_FN_PSCI_FEATURES = 0x8400_000a;
/** SMCCC 1.2, as current Xen reports (ARM_SMCCC_VERSION_1_2) */
export const XEN_SMCCC_VERSION = 0x1_0002;
/** PSCI 1.1 (PSCI_VERSION(1, 1)) */
export const XEN_PSCI_VERSION = 0x1_0001;
export const SMCCC_NOT_SUPPORTED = -1n;
const PSCI_0_2_TOS_MP_OR_NOT_PRESENT = 2n;

/** Function ids PSCI_FEATURES reports as implemented (vpsci.c do_psci_1_0_features). */
const PSCI_FEATURES_SUPPORTED = new Set([
  0x8400_0000, // PSCI_VERSION
  0x8400_0001, // CPU_SUSPEND (32)
  0xc400_0001, // CPU_SUSPEND (64)
  0x8400_0002, // CPU_OFF
  0x8400_0003, // CPU_ON (32)
  0xc400_0003, // CPU_ON (64)
  0x8400_0004, // AFFINITY_INFO (32)
  0xc400_0004, // AFFINITY_INFO (64)
  0x8400_0006, // MIGRATE_INFO_TYPE
  0x8400_0008, // SYSTEM_OFF
  0x8400_0009, // SYSTEM_RESET
  0x8400_000a, // PSCI_FEATURES
  0x8000_0000, // SMCCC_VERSION
]);

/**
 * The SMCCC calls dmalab answers as Xen does for a 64-bit guest with a single vCPU and no
 * firmware workarounds. Calls that would change vCPU power state are not modelled and
 * answer NOT_SUPPORTED. Returns [name, x0].
 */
export function smcccCall(fid32: number, x1: bigint): [string, bigint] {
  switch (fid32) {
    case SMCCC_VERSION_FID:
      return ["SMCCC_VERSION", BigInt(XEN_SMCCC_VERSION)];
    case SMCCC_ARCH_FEATURES_FID:
      // no Spectre workaround is advertised by an emulated CPU
      return ["SMCCC_ARCH_FEATURES", SMCCC_NOT_SUPPORTED];
    case PSCI_0_2_FN_PSCI_VERSION:
      return ["PSCI_VERSION", BigInt(XEN_PSCI_VERSION)];
    case PSCI_0_2_FN_MIGRATE_INFO_TYPE:
      return ["PSCI_MIGRATE_INFO_TYPE", PSCI_0_2_TOS_MP_OR_NOT_PRESENT];
    case PSCI_1_0_FN_PSCI_FEATURES:
      return ["PSCI_FEATURES", PSCI_FEATURES_SUPPORTED.has(Number(BigInt.asUintN(32, x1))) ? 0n : -1n];
    default:
      return [`SMCCC ${hex(fid32)}`, SMCCC_NOT_SUPPORTED];
  }
}

// ---- dmalab services -----------------------------------------------------------------------

export const SVC_WRITE = 64;
export const SVC_EXIT = 93;
export const SVC_EXIT_GROUP = 94;
export const SVC_DMA_MAP = 0x1000;
export const SVC_DMA_UNMAP = 0x1001;
export const SVC_DMA_SYNC_FOR_CPU = 0x1002;
export const SVC_DMA_SYNC_FOR_DEVICE = 0x1003;


/**
 * The DMA API as a guest reaches it. Device numbers are the machine's device indices; `phys`
 * is the guest's own physical address of the buffer (an IPA in a domU). The machine backs
 * this with dma-direct / swiotlb / swiotlb-xen. map returns -1 for DMA_MAPPING_ERROR.
 */
export interface DmaServices {
  hasDevice(dev: number): boolean;
  map(dev: number, phys: number, size: number, dir: number): number;
  unmap(dev: number, dma: number, size: number, dir: number): void;
  syncForCpu(dev: number, dma: number, size: number, dir: number): void;
  syncForDevice(dev: number, dma: number, size: number, dir: number): void;
  /** dma_alloc_coherent / dma_free_coherent (services 0x1004 / 0x1005, cpu/coherent-service.ts) */
  coherent?: CoherentServices;
}

export interface TrapRouterOptions {
  /** the hypervisor for the running domain; absent = bare metal (every HVC is undefined) */
  hypercalls?: HypercallHandler;
  dma?: DmaServices;
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const S64 = (v: bigint | number): bigint => BigInt.asIntN(64, typeof v === "bigint" ? v : BigInt(v));

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
function safeNumber(v: bigint): number | undefined {
  return v <= MAX_SAFE ? Number(v) : undefined;
}

export class TrapRouter {
  hypercalls: HypercallHandler | undefined;
  dma: DmaServices | undefined;

  constructor(opts: TrapRouterOptions = {}) {
    this.hypercalls = opts.hypercalls;
    this.dma = opts.dma;
  }

  /** HVC at `pc` (frame.regs[FRAME_PC] === pc): handled in the trap hook, PC set past it. */
  hvc(cpu: Arm64Cpu, frame: TrapFrame, imm: number, pc: number, insn: number): void {
    if (this.hypercalls === undefined) {
      cpu.fault({ kind: "undefined-instruction", pc, insn, message: `HVC #${hex(imm)} with no hypervisor: undefined instruction` });
      return;
    }
    const x = frame.x;
    if (imm === XEN_HYPERCALL_TAG) {
      const rec = this.hypercalls.dispatch({ x });
      if (!rec.continuation) frame.regs[FRAME_PC] = BigInt(pc + 4);
      frame.write = WRITE_ALL;
      cpu.calls.record("hypercall", rec.op, rec.nr, rec.args, rec.args.length, S64(rec.ret), pc);
      if (this.hypercalls.p2mChanged?.()) cpu.invalidateMappings();
      return;
    }
    if (imm === 0) {
      const x0 = x[0]!;
      const x1 = x[1]!;
      const fid = Number(BigInt.asUintN(32, x0));
      const [op, ret] = smcccCall(fid, x1);
      cpu.calls.record("smccc", op, fid, x, 2, S64(ret), pc);
      x[0] = U64(ret);
      frame.regs[FRAME_PC] = BigInt(pc + 4);
      frame.write = WRITE_ALL;
      return;
    }
    // Xen: "unknown HVC" → inject UNDEF into the guest
    cpu.fault({ kind: "undefined-instruction", pc, insn, message: `HVC #${hex(imm)}: not a Xen hypercall (#0xea1) or SMCCC (#0); Xen injects an undefined-instruction exception` });
  }

  /** SVC at `pc` (PC already past it): the result goes to x0 only. */
  svc(cpu: Arm64Cpu, frame: TrapFrame, imm: number, pc: number, insn: number): void {
    if (imm !== 0) {
      cpu.fault({ kind: "exception", pc, insn, intno: INTNO_SWI, message: `SVC #${hex(imm)}: dmalab services use SVC #0` });
      return;
    }
    const x = frame.x;
    const nrReg = x[8]!;
    const nr = nrReg <= 0xffffn ? Number(nrReg) : -1;
    switch (nr) {
      case SVC_EXIT:
      case SVC_EXIT_GROUP: {
        const op = nr === SVC_EXIT ? "exit" : "exit_group";
        cpu.calls.record("service", op, nr, x, 1, 0n, pc);
        cpu.requestStop({ kind: "exit", code: Number(x[0]! & 0xffn), service: op });
        return;
      }
      case SVC_WRITE: {
        const fd = BigInt.asIntN(32, x[0]!);
        const len = safeNumber(x[2]!);
        if (fd !== 1n && fd !== 2n) return this.done(cpu, frame, "write", nr, -EBADF, 3, pc);
        if (len === undefined || len > 1 << 30) return this.done(cpu, frame, "write", nr, -EFAULT, 3, pc);
        if (len === 0) return this.done(cpu, frame, "write", nr, 0n, 3, pc);
        const ptr = safeNumber(x[1]!);
        if (ptr === undefined || !cpu.consoleWriteFromGuest(ptr, len)) return this.done(cpu, frame, "write", nr, -EFAULT, 3, pc);
        return this.done(cpu, frame, "write", nr, BigInt(len), 3, pc);
      }
      case SVC_DMA_MAP:
      case SVC_DMA_UNMAP:
      case SVC_DMA_SYNC_FOR_CPU:
      case SVC_DMA_SYNC_FOR_DEVICE:
        return this.dmaService(cpu, frame, nr, pc);
      case SVC_DMA_ALLOC_COHERENT:
      case SVC_DMA_FREE_COHERENT:
        return coherentService(
          cpu,
          this.dma,
          nr,
          [x[0]!, x[1]!, x[2]!, x[3]!],
          pc,
          (op, ret, nargs) => this.done(cpu, frame, op, nr, ret, nargs, pc),
          (v) => {
            x[1] = v;
            frame.write = WRITE_ALL;
          },
        );
      default:
        return this.done(cpu, frame, `svc ${hex(nrReg)}`, nr >= 0 ? nr : Number(nrReg & 0xffff_ffffn), -ENOSYS, 4, pc);
    }
  }

  /** Logs the call (its arguments still in x0..) and puts the result in x0. */
  private done(cpu: Arm64Cpu, frame: TrapFrame, op: string, nr: number, ret: bigint | number, nargs: number, pc: number): void {
    const r = S64(ret);
    cpu.calls.record("service", op, nr, frame.x, nargs, r, pc);
    frame.x[0] = U64(r);
    if (frame.write < WRITE_X0) frame.write = WRITE_X0;
  }

  private dmaService(cpu: Arm64Cpu, frame: TrapFrame, nr: number, pc: number): void {
    const op = nr === SVC_DMA_MAP ? "dma_map" : nr === SVC_DMA_UNMAP ? "dma_unmap" : nr === SVC_DMA_SYNC_FOR_CPU ? "dma_sync_for_cpu" : "dma_sync_for_device";
    const x = frame.x;
    const dma = this.dma;
    const dev = safeNumber(x[0]!);
    if (dma === undefined || dev === undefined || !dma.hasDevice(dev)) return this.done(cpu, frame, op, nr, -ENODEV, 4, pc);
    const addr = safeNumber(x[1]!);
    const size = safeNumber(x[2]!);
    const dir = Number(BigInt.asUintN(32, x[3]!));
    if (addr === undefined || size === undefined || dir > 2) return this.done(cpu, frame, op, nr, -EINVAL, 4, pc);
    try {
      switch (nr) {
        case SVC_DMA_MAP: {
          const r = dma.map(dev, addr, size, dir);
          return this.done(cpu, frame, op, nr, r === -1 ? -1n : BigInt(r), 4, pc);
        }
        case SVC_DMA_UNMAP:
          dma.unmap(dev, addr, size, dir);
          return this.done(cpu, frame, op, nr, 0n, 4, pc);
        case SVC_DMA_SYNC_FOR_CPU:
          dma.syncForCpu(dev, addr, size, dir);
          return this.done(cpu, frame, op, nr, 0n, 4, pc);
        default:
          dma.syncForDevice(dev, addr, size, dir);
          return this.done(cpu, frame, op, nr, 0n, 4, pc);
      }
    } catch (e) {
      // a fault of the emulated machine (bounce into a hole, the kernel oopsing) stops the guest;
      // a refused argument is the guest's mistake and comes back as -EINVAL
      if (e instanceof FaultError) throw e;
      if (e instanceof DmalabError) return this.done(cpu, frame, op, nr, -EINVAL, 4, pc);
      throw e;
    }
  }
}
