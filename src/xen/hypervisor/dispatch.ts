// The arm64 hypercall trap (traps.c do_trap_hypercall): number in x16, arguments in
// x0..x4, result in x0 as a sign-extended long. The table lists the hypercalls an arm
// build of Xen has, with their argument counts — the debug build's clobber depends on
// them. Numbers outside the table answer -ENOSYS and leave every other register alone.

import { InvalidArgumentError } from "../../errors.js";
import type { Domain } from "./domain.js";
import type { XenHypervisor } from "./hypervisor.js";
import { doMemoryOp } from "./memory-op.js";
import { HYPERCALL, MEMOP_CMD_MASK, XEN_ERRNO, hypercallName, xenmemName } from "./public.js";
import { doConsoleIo, doGrantTableOp, doSchedOp, doVmAssist } from "./simple-ops.js";
import { doXenVersion } from "./xen-version.js";
import type { GuestMemory } from "./guest-memory.js";

/** Guest general-purpose registers: x0..x30 as unsigned 64-bit values. */
export interface GuestRegs {
  x: BigUint64Array;
}

/** One hypercall, for logs: `ret` is the signed 64-bit result. */
export interface HypercallRecord {
  domid: number;
  nr: number;
  op: string;
  /** sub-operation, when the first argument selects one (e.g. "XENMEM_exchange") */
  sub?: string;
  /** the argument registers this hypercall uses, unsigned */
  args: bigint[];
  ret: bigint;
}

export const DEADBEEF = 0xdeadbeefn;

type Handler = (hv: XenHypervisor, d: Domain, g: GuestMemory, a: readonly bigint[]) => bigint;

interface TableEntry {
  nargs: number;
  /** absent: Xen has it but the stub does not model it (answers -ENOSYS) */
  fn?: Handler;
  /** deprecated on arm: Xen answers -ENOSYS itself */
  deprecated?: boolean;
}

/** Xen/arm's hypercall table (4.15 traps.c; the generated 4.17+ table has the same entries). */
const TABLE = new Map<number, TableEntry>([
  [HYPERCALL.memory_op, { nargs: 2, fn: (hv, d, g, a) => doMemoryOp(hv, d, g, a[0]!, a[1]!) }],
  [HYPERCALL.domctl, { nargs: 1 }],
  [HYPERCALL.sched_op, { nargs: 2, fn: (_hv, d, g, a) => doSchedOp(d, g, a[0]!, a[1]!) }],
  [HYPERCALL.sched_op_compat, { nargs: 2, deprecated: true }],
  [HYPERCALL.console_io, { nargs: 3, fn: (hv, d, g, a) => doConsoleIo(hv, d, g, a[0]!, a[1]!, a[2]!) }],
  [HYPERCALL.xen_version, { nargs: 2, fn: (hv, d, g, a) => doXenVersion(hv.profile, hv.build, d, g, a[0]!, a[1]!) }],
  [HYPERCALL.xsm_op, { nargs: 1 }],
  [HYPERCALL.event_channel_op, { nargs: 2 }],
  [HYPERCALL.event_channel_op_compat, { nargs: 1, deprecated: true }],
  [HYPERCALL.physdev_op, { nargs: 2 }],
  [HYPERCALL.physdev_op_compat, { nargs: 1, deprecated: true }],
  [HYPERCALL.sysctl, { nargs: 2 }],
  [HYPERCALL.hvm_op, { nargs: 2 }],
  [HYPERCALL.grant_table_op, { nargs: 3, fn: (hv, d, g, a) => doGrantTableOp(hv, d, g, a[0]!, a[1]!, a[2]!) }],
  [HYPERCALL.multicall, { nargs: 2 }],
  [HYPERCALL.platform_op, { nargs: 1 }],
  [HYPERCALL.vcpu_op, { nargs: 3 }],
  [HYPERCALL.vm_assist, { nargs: 2, fn: (_hv, d, _g, a) => doVmAssist(d, a[0]!, a[1]!) }],
  [HYPERCALL.hypfs_op, { nargs: 5 }],
]);

const ENOSYS = -BigInt(XEN_ERRNO.ENOSYS);

export function dispatchHypercall(hv: XenHypervisor, d: Domain, regs: GuestRegs): HypercallRecord {
  const x = regs.x;
  if (x.length < 31) throw new InvalidArgumentError(`guest registers: need x0..x30, got ${x.length}`);
  const nrReg = x[16]!;
  const nr = nrReg <= 0xffffn ? Number(nrReg) : -1;
  const entry = nr >= 0 ? TABLE.get(nr) : undefined;
  if (entry === undefined) {
    x[0] = BigInt.asUintN(64, ENOSYS);
    return { domid: d.id, nr: nr >= 0 ? nr : Number(nrReg & 0xffff_ffffn), op: nr >= 0 ? hypercallName(nr) : `hypercall_${nrReg}`, args: [], ret: ENOSYS };
  }
  const args: bigint[] = [];
  for (let i = 0; i < entry.nargs; i++) args.push(x[i]!);
  let ret = ENOSYS;
  if (entry.fn !== undefined && !entry.deprecated) ret = entry.fn(hv, d, hv.guestMemory(d), args);
  x[0] = BigInt.asUintN(64, ret);
  if (hv.debugBuild && !(hv.profile.clobberSkipsEnosys && ret === ENOSYS)) {
    // a debug build corrupts the argument registers it consumed (not x0: the result) and x16
    for (let i = 1; i < entry.nargs; i++) x[i] = DEADBEEF;
    x[16] = DEADBEEF;
  }
  const rec: HypercallRecord = { domid: d.id, nr, op: hypercallName(nr), args, ret };
  if (nr === HYPERCALL.memory_op) rec.sub = `XENMEM_${xenmemName(Number(args[0]! & BigInt(MEMOP_CMD_MASK)))}`;
  return rec;
}
