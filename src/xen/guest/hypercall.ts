// The guest's side of the arm64 hypercall ABI (arch/arm64/xen/hypercall.S): the number goes
// in x16, up to five arguments in x0..x4, the result comes back in x0. Linux's C wrappers
// are declared `int`, so callers look at w0 sign-extended; `call` returns the full 64-bit
// signed value and the wrappers narrow it where Linux does.
//
// Everything Linux passes by pointer (xen_feature_info, xen_memory_exchange, extent lists)
// lives in guest memory: this module only ever hands Xen guest addresses, never host objects,
// so the stub hypervisor reads exactly the bytes real guest code would have written.

import { InvalidArgumentError, hex } from "../../errors.js";
import { EEXIST, EFAULT, EINVAL, ENOMEM, ENOSYS, EOPNOTSUPP, EPERM, errnoString } from "../../kernel/errno.js";

export const __HYPERVISOR_memory_op = 12;
export const __HYPERVISOR_xen_version = 17;
export const __HYPERVISOR_grant_table_op = 20;

/** @public: the rest of the table, unused here */
export const XENVER_version = 0;
export const XENVER_get_features = 6;

/** @public: the rest of the table, unused here */
export const XENMEM_increase_reservation = 0;
/** @public: the rest of the table, unused here */
export const XENMEM_decrease_reservation = 1;
/** @public: the rest of the table, unused here */
export const XENMEM_populate_physmap = 6;
export const XENMEM_exchange = 11;

export const DOMID_SELF = 0x7ff0;


/** The register file a trap hands to Xen: x0..x30 as the stub's `dispatch` expects them. */
export interface HypercallRegs {
  x: BigUint64Array;
}

/** One trap into the hypervisor for this guest: `hv.dispatch(domain, regs)` bound to a domain. */
export type HypercallTrap = (regs: HypercallRegs) => void;

/**
 * What the guest's own code needs of its memory to lay out hypercall arguments: little-endian
 * accesses at guest-physical addresses. The kernel runs with VA == IPA for these buffers in
 * dmalab (the linear map is not modelled), so a guest address is also the handle Xen gets.
 */
export interface GuestMemoryAccess {
  read32(addr: number): number;
  write32(addr: number, v: number): void;
  read64(addr: number): bigint;
  write64(addr: number, v: bigint | number): void;
  write16(addr: number, v: number): void;
  write(addr: number, src: Uint8Array): void;
}

/** memset(p, 0, len) through the accessor (a guest-memory view has no fill of its own). */
export function zeroGuest(mem: GuestMemoryAccess, addr: number, len: number): void {
  const page = new Uint8Array(Math.min(len, 4096));
  for (let done = 0; done < len; done += page.length) mem.write(addr + done, len - done >= page.length ? page : page.subarray(0, len - done));
}

export type HypercallArg = number | bigint;

export class Hypercalls {
  /** one register file reused for every call: a hypercall is not re-entrant per vCPU */
  private readonly regs: HypercallRegs = { x: new BigUint64Array(31) };
  /** calls issued, by hypercall number (for reports and tests) */
  readonly counts = new Map<number, number>();

  constructor(
    private readonly trap: HypercallTrap,
    /** the guest memory structures are written to */
    readonly mem: GuestMemoryAccess,
  ) {}

  /** HVC #0xEA1 with x16 = nr; returns x0 as a signed 64-bit value. */
  call(nr: number, ...args: HypercallArg[]): number {
    if (args.length > 5) throw new InvalidArgumentError(`hypercall ${nr}: ${args.length} arguments, the arm64 ABI carries at most 5`);
    const x = this.regs.x;
    x.fill(0n);
    x[16] = BigInt(nr);
    for (let i = 0; i < args.length; i++) x[i] = BigInt.asUintN(64, BigInt(args[i]!));
    this.counts.set(nr, (this.counts.get(nr) ?? 0) + 1);
    this.trap(this.regs);
    return Number(BigInt.asIntN(64, x[0]!));
  }

  /** HYPERVISOR_xen_version(int cmd, void *arg): an `int` result. */
  xenVersion(cmd: number, argGpa: number): number {
    return narrowInt(this.call(__HYPERVISOR_xen_version, cmd, argGpa));
  }

  /** HYPERVISOR_memory_op(unsigned int cmd, void *arg): an `int` result. */
  memoryOp(cmd: number, argGpa: number): number {
    return narrowInt(this.call(__HYPERVISOR_memory_op, cmd >>> 0, argGpa));
  }
}

/** What `int` keeps of a `long` result: w0, sign-extended. */
export function narrowInt(v: number): number {
  return Number(BigInt.asIntN(32, BigInt(v)));
}

/** the errno names a Xen return code is printed with (others print as numbers) */
const DESCRIBED = new Set<number>([EPERM, ENOMEM, EFAULT, EEXIST, EINVAL, ENOSYS, EOPNOTSUPP]);

export function describeXenErrno(rc: number): string {
  if (rc < 0 && DESCRIBED.has(-rc)) return errnoString(rc);
  return rc < 0 ? `${rc}` : hex(rc);
}
