import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { XenHypervisor, type XenHypervisorOptions } from "../../../src/xen/hypervisor/hypervisor.js";
import type { Domain } from "../../../src/xen/hypervisor/domain.js";
import type { HypercallRecord } from "../../../src/xen/hypervisor/dispatch.js";

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** A QEMU-virt-like board: RAM at 1 GiB; dom0 direct-mapped over its first half. */
export function machine(opts: XenHypervisorOptions = {}, ramSize = 256 * MiB, base = 0x4000_0000) {
  const mem = new PhysicalMemory({ banks: [{ base, size: ramSize }] });
  const hv = new XenHypervisor(mem, opts);
  const dom0 = hv.createDomain({ role: "dom0", ramRanges: [{ base, size: ramSize / 2 }] });
  return { mem, hv, dom0 };
}

export interface CallResult {
  rec: HypercallRecord;
  ret: bigint;
  regs: BigUint64Array;
}

/** Issue a hypercall through the register-level entry point. */
export function hcall(hv: XenHypervisor, d: Domain, nr: number, ...args: (bigint | number)[]): CallResult {
  const x = new BigUint64Array(31);
  for (let i = 0; i < 31; i++) x[i] = 0x1000n + BigInt(i);
  args.forEach((a, i) => (x[i] = BigInt.asUintN(64, BigInt(a))));
  x[16] = BigInt(nr);
  const rec = hv.dispatch(d, { x });
  return { rec, ret: BigInt.asIntN(64, x[0]!), regs: x };
}
