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
const S64 = (v: bigint | number): bigint => BigInt.asIntN(64, BigInt(v));

function safeNumber(v: bigint): number | undefined {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

export class TrapRouter {
  hypercalls: HypercallHandler | undefined;
  dma: DmaServices | undefined;

  constructor(opts: TrapRouterOptions = {}) {
    this.hypercalls = opts.hypercalls;
    this.dma = opts.dma;
  }

  hvc(cpu: Arm64Cpu, imm: number, pc: number, insn: number): void {
    if (this.hypercalls === undefined) {
      cpu.fault({ kind: "undefined-instruction", pc, insn, message: `HVC #${hex(imm)} with no hypervisor: undefined instruction` });
      return;
    }
    if (imm === XEN_HYPERCALL_TAG) {
      const regs = cpu.readRegs();
      const rec = this.hypercalls.dispatch({ x: regs.x });
      cpu.writeAllX(regs.x);
      if (!rec.continuation) cpu.pc = pc + 4;
      cpu.log.push({ kind: "hypercall", op: rec.op, nr: rec.nr, args: rec.args.map((a) => U64(BigInt(a))), ret: S64(rec.ret), pc });
      if (this.hypercalls.p2mChanged?.()) cpu.invalidateMappings();
      return;
    }
    if (imm === 0) {
      const x0 = cpu.readX(0);
      const x1 = cpu.readX(1);
      const fid = Number(BigInt.asUintN(32, x0));
      const [op, ret] = smcccCall(fid, x1);
      cpu.writeX(0, U64(ret));
      cpu.pc = pc + 4;
      cpu.log.push({ kind: "smccc", op, nr: fid, args: [x0, x1], ret: S64(ret), pc });
      return;
    }
    // Xen: "unknown HVC" → inject UNDEF into the guest
    cpu.fault({ kind: "undefined-instruction", pc, insn, message: `HVC #${hex(imm)}: not a Xen hypercall (#0xea1) or SMCCC (#0); Xen injects an undefined-instruction exception` });
  }

  svc(cpu: Arm64Cpu, imm: number, pc: number, insn: number): void {
    if (imm !== 0) {
      cpu.fault({ kind: "exception", pc, insn, intno: INTNO_SWI, message: `SVC #${hex(imm)}: dmalab services use SVC #0` });
      return;
    }
    const nr = cpu.readX(8);
    const a = [cpu.readX(0), cpu.readX(1), cpu.readX(2), cpu.readX(3)];
    const done = (op: string, ret: bigint | number, nargs: number): void => {
      const r = S64(ret);
      cpu.writeX(0, U64(r));
      cpu.log.push({ kind: "service", op, nr: Number(nr), args: a.slice(0, nargs), ret: r, pc });
    };
    switch (nr) {
      case BigInt(SVC_EXIT):
      case BigInt(SVC_EXIT_GROUP): {
        const op = nr === BigInt(SVC_EXIT) ? "exit" : "exit_group";
        cpu.log.push({ kind: "service", op, nr: Number(nr), args: [a[0]!], ret: 0n, pc });
        cpu.requestStop({ kind: "exit", code: Number(a[0]! & 0xffn), service: op });
        return;
      }
      case BigInt(SVC_WRITE): {
        const fd = BigInt.asIntN(32, a[0]!);
        const len = safeNumber(a[2]!);
        if (fd !== 1n && fd !== 2n) return done("write", -EBADF, 3);
        if (len === undefined || len > 1 << 30) return done("write", -EFAULT, 3);
        if (len === 0) return done("write", 0, 3);
        const ptr = safeNumber(a[1]!);
        const bytes = ptr === undefined ? undefined : cpu.readGuest(ptr, len);
        if (bytes === undefined) return done("write", -EFAULT, 3);
        cpu.appendConsole(bytes);
        return done("write", len, 3);
      }
      case BigInt(SVC_DMA_MAP):
      case BigInt(SVC_DMA_UNMAP):
      case BigInt(SVC_DMA_SYNC_FOR_CPU):
      case BigInt(SVC_DMA_SYNC_FOR_DEVICE):
        return this.dmaService(cpu, Number(nr), a, done);
      case BigInt(SVC_DMA_ALLOC_COHERENT):
      case BigInt(SVC_DMA_FREE_COHERENT):
        return coherentService(cpu, this.dma, Number(nr), a, pc, done);
      default:
        return done(`svc ${hex(nr)}`, -ENOSYS, 4);
    }
  }

  private dmaService(cpu: Arm64Cpu, nr: number, a: bigint[], done: (op: string, ret: bigint | number, nargs: number) => void): void {
    const op = nr === SVC_DMA_MAP ? "dma_map" : nr === SVC_DMA_UNMAP ? "dma_unmap" : nr === SVC_DMA_SYNC_FOR_CPU ? "dma_sync_for_cpu" : "dma_sync_for_device";
    const dma = this.dma;
    const dev = safeNumber(a[0]!);
    if (dma === undefined || dev === undefined || !dma.hasDevice(dev)) return done(op, -ENODEV, 4);
    const addr = safeNumber(a[1]!);
    const size = safeNumber(a[2]!);
    const dir = Number(BigInt.asUintN(32, a[3]!));
    if (addr === undefined || size === undefined || dir > 2) return done(op, -EINVAL, 4);
    try {
      switch (nr) {
        case SVC_DMA_MAP: {
          const r = dma.map(dev, addr, size, dir);
          return done(op, r === -1 ? -1n : BigInt(r), 4);
        }
        case SVC_DMA_UNMAP:
          dma.unmap(dev, addr, size, dir);
          return done(op, 0, 4);
        case SVC_DMA_SYNC_FOR_CPU:
          dma.syncForCpu(dev, addr, size, dir);
          return done(op, 0, 4);
        default:
          dma.syncForDevice(dev, addr, size, dir);
          return done(op, 0, 4);
      }
    } catch (e) {
      // a fault of the emulated machine (bounce into a hole, the kernel oopsing) stops the guest;
      // a refused argument is the guest's mistake and comes back as -EINVAL
      if (e instanceof FaultError) throw e;
      if (e instanceof DmalabError) return done(op, -EINVAL, 4);
      throw e;
    }
  }
}
