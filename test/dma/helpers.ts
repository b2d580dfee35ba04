// A small emulated board for the dma/ tests: RAM at 0x4000_0000 (4 GiB by default, so the top
// is above 4 GiB and a 32-bit device bounces), the real swiotlb of the chosen profile with a
// small default pool in low memory, dma-direct and the mapping API over them.

import { EventSink, KernelLog } from "../../src/events.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { Swiotlb } from "../../src/swiotlb/swiotlb.js";
import { kernelProfile, type KernelVersion } from "../../src/swiotlb/profile.js";
import { DmaDirect } from "../../src/dma/direct.js";
import { DmaApi } from "../../src/dma/mapping.js";
import { DmaDebug, type DmaDebugErrorKind } from "../../src/dma/debug.js";
import { Device, type DeviceOptions } from "../../src/dma/device.js";
import { DeviceBus } from "../../src/dma/bus.js";
import { dmaBitMask } from "../../src/kernel/dma-mapping.js";

export const RAM_BASE = 0x4000_0000;
export const FOUR_GIB = 0x1_0000_0000;

export interface BoardOptions {
  kernel?: KernelVersion;
  ramSize?: number;
  /** default pool slots (0 = no pool) */
  nslabs?: number;
  possibleCpus?: number;
  /** cmdline-like force: "force" | "noforce" */
  force?: "force" | "noforce";
  debug?: boolean | "strict" | readonly DmaDebugErrorKind[];
}

export interface Board {
  mem: PhysicalMemory;
  log: KernelLog;
  events: EventSink;
  swiotlb: Swiotlb;
  direct: DmaDirect;
  api: DmaApi;
  debug: DmaDebug | null;
  device(opts: Partial<DeviceOptions> & { device: string }): Device;
  bus(dev: Device): DeviceBus;
}

export function makeBoard(o: BoardOptions = {}): Board {
  const profile = kernelProfile(o.kernel ?? "6.x");
  const mem = new PhysicalMemory({ banks: [{ base: RAM_BASE, size: o.ramSize ?? 4 * 2 ** 30 }] });
  const log = new KernelLog();
  const events = new EventSink();
  const swiotlb = new Swiotlb(mem, profile, log, events, { possibleCpus: o.possibleCpus ?? 1 });
  if (o.force) swiotlb.applyCmdline({ force: o.force });
  const nslabs = o.nslabs ?? 1024;
  if (nslabs > 0) {
    swiotlb.defaultNslabs = nslabs;
    if (profile.era === "5.13") swiotlb.swiotlbInit(false, FOUR_GIB);
    else swiotlb.swiotlbInitRemap(true, 0, FOUR_GIB);
  }
  // start the tests with an empty dmesg (the pool's boot lines are swiotlb's business)
  log.clear();
  const direct = new DmaDirect({ memory: mem, swiotlb, profile, log, events });
  const debug =
    o.debug === undefined || o.debug === false
      ? null
      : new DmaDebug({ log, events, strict: o.debug === "strict" ? true : o.debug === true ? false : o.debug });
  const api = new DmaApi({ direct, memory: mem, log, events, debug });
  return {
    mem,
    log,
    events,
    swiotlb,
    direct,
    api,
    debug,
    device: (d) => new Device({ driver: "testdrv", ...d }),
    bus: (dev) => new DeviceBus(dev, mem),
  };
}

/** a 32-bit-DMA device (bounces above 4 GiB) */
export const NIC32 = { driver: "e1000e", device: "0000:00:02.0", dmaMask: dmaBitMask(32) };
/** a 64-bit device (maps directly) */
export const NVME64 = { driver: "nvme", device: "0000:00:03.0", dmaMask: dmaBitMask(64), minAlignMask: 0xfff };

/** deterministic bytes for a buffer */
export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** a copy of every mutable array of the default pool (to prove an error changed nothing) */
export function poolSnapshot(sw: Swiotlb): Uint8Array {
  const m = sw.defaultMem;
  if (!m) return new Uint8Array(0);
  return new Uint8Array(m.pool.buffer).slice();
}

/** the pool state that must return to its initial value once everything is unmapped (not the search hints) */
export function poolFreeState(sw: Swiotlb): { list: number[]; orig: number[]; alloc: number[]; pad: number[]; mapped: number[]; used: number } {
  const p = sw.defaultMem!.pool;
  return {
    list: Array.from(p.listSnapshot()),
    orig: Array.from(p.origAddr),
    alloc: Array.from(p.allocSize),
    pad: Array.from(p.padSlots),
    mapped: Array.from(p.mapped),
    used: p.used,
  };
}

export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
