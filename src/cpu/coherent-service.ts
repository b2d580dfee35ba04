// The guest's coherent-allocation services (SVC #0, number in x8):
//   0x1004 dma_alloc_coherent(dev, size) → x0 DMA address or all ones (allocation failed),
//          x1 the buffer's guest-physical address (0 on failure)
//   0x1005 dma_free_coherent(dev, size, phys, dma) → 0
// dma_alloc_attrs / dma_free_attrs of the booted kernel (GFP_KERNEL, no attrs). No device →
// -ENODEV; a size that is not a positive integer, or a free that names no live buffer (or
// the wrong size / address) → -EINVAL with nothing changed. XENMEM_exchange calls the kernel
// made on the guest's behalf (x86-PV contiguous regions) join the hypercall log; they change
// the stage-2 mapping, so the CPU drops its cached mappings.

import { DmalabError, FaultError } from "../errors.js";
import { EINVAL, ENODEV } from "../kernel/errno.js";
import type { Arm64Cpu } from "./arm64-cpu.js";
import type { DmaServices } from "./traps.js";

export const SVC_DMA_ALLOC_COHERENT = 0x1004;
export const SVC_DMA_FREE_COHERENT = 0x1005;

/** What the machine provides for the two services (DmaServices' optional coherent part). */
export interface CoherentServices {
  alloc(dev: number, size: number): { phys: number; dma: number } | null;
  free(dev: number, size: number, phys: number, dma: number): void;
  /** hypercalls the kernel issued during the last call (XENMEM_exchange), for the log */
  takeHypercalls?(): { op: string; nr: number; args: bigint[]; ret: bigint }[];
}

const safe = (v: bigint): number | undefined => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined);

/** Runs service `nr` (0x1004 / 0x1005) with arguments `a`; `done` writes x0 and logs, `setX1` the second result. */
export function coherentService(
  cpu: Arm64Cpu,
  dma: DmaServices | undefined,
  nr: number,
  a: readonly bigint[],
  pc: number,
  done: (op: string, ret: bigint | number, nargs: number) => void,
  setX1: (v: bigint) => void,
): void {
  const alloc = nr === SVC_DMA_ALLOC_COHERENT;
  const op = alloc ? "dma_alloc_coherent" : "dma_free_coherent";
  const nargs = alloc ? 2 : 4;
  const c = dma?.coherent;
  const dev = safe(a[0]!);
  if (dma === undefined || c === undefined || dev === undefined || !dma.hasDevice(dev)) return done(op, -ENODEV, nargs);
  const size = safe(a[1]!);
  if (size === undefined || size <= 0) return done(op, -EINVAL, nargs);
  const flush = (): void => {
    const hcs = c.takeHypercalls?.() ?? [];
    for (const h of hcs) cpu.calls.record("hypercall", h.op, h.nr, h.args, h.args.length, BigInt(h.ret), pc);
    if (hcs.length > 0) cpu.invalidateMappings();
  };
  try {
    if (alloc) {
      const b = c.alloc(dev, size);
      flush();
      setX1(b === null ? 0n : BigInt(b.phys));
      return done(op, b === null ? -1n : BigInt(b.dma), nargs);
    }
    const phys = safe(a[2]!);
    const addr = safe(a[3]!);
    if (phys === undefined || addr === undefined) return done(op, -EINVAL, nargs);
    c.free(dev, size, phys, addr);
    flush();
    return done(op, 0, nargs);
  } catch (e) {
    flush();
    if (e instanceof FaultError) throw e;
    if (e instanceof DmalabError) return done(op, -EINVAL, nargs);
    throw e;
  }
}
