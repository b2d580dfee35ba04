// The seam between a machine and a CPU run: builds the memory, the DMA engine, the DMA
// services and the hypervisor binding a guest program runs against.
//
//   --xen none : bare metal. HVC is undefined; dma_map goes through the kernel's DMA API
//                (dma-direct / swiotlb) of the booted machine.
//   --xen dom0 : a direct-mapped dom0 (gfn == mfn); hypercalls go to the stub Xen's dispatch.
//                DMA mapping: the native DMA API of the machine (swiotlb-xen is the Xen
//                guest engineer's and is plugged in here once it exists).
//   --xen domU : a domU that is not direct-mapped: guest RAM at Xen's guest layout
//                (0x4000_0000), IPAs translated through its P2M; the device sits behind a
//                stage-2 (SMMU-like) translation, so a DMA address is the guest-physical
//                address itself (no swiotlb-xen), checked against the device's mask.

import { FaultError, UsageError, hex } from "../errors.js";
import { DeviceBus } from "../dma/bus.js";
import { DmaEngine, DMA_ENGINE_WINDOW, dmaEngineBaseFor } from "../dma/engine.js";
import { Machine } from "../machine/machine.js";
import { bootMachine } from "../machine/boot.js";
import type { MachineDesc } from "../machine/preset.js";
import { kernelProfile } from "../swiotlb/profile.js";
import { XenHypervisor, type Domain } from "../xen/hypervisor/index.js";
import { Arm64Cpu, IDENTITY_PHYS_MAP, type GuestPhysMap } from "./arm64-cpu.js";
import { TrapRouter, type DmaServices, type HypercallHandler } from "./traps.js";

export type GuestXenRole = "none" | "dom0" | "domU";

export interface GuestContextOptions {
  xen: GuestXenRole;
  /** kernel profile for the DMA layer; "6.x" by default */
  kernel?: string;
  /** the device number the DMA engine masters as (index in the machine's device list) */
  engineDevice?: number;
  /** a debug build of Xen (clobbers argument registers) */
  xenDebug?: boolean;
}

export interface GuestContext {
  machine: Machine;
  cpu: Arm64Cpu;
  engine: DmaEngine;
  engineBase: number;
  engineDevice: number;
  /** guest RAM base (IPA) and size */
  ramBase: number;
  ramSize: number;
  hypervisor?: XenHypervisor;
  domain?: Domain;
}

const MIB = 1024 * 1024;

function domainPhysMap(d: Domain): GuestPhysMap {
  return {
    ipaToMachine: (ipa: number): number => {
      const mfn = d.p2m.contiguousChunk(Math.floor(ipa / 4096));
      return mfn === undefined ? -1 : mfn * 4096;
    },
  };
}

export function buildGuestContext(desc: MachineDesc, opts: GuestContextOptions): GuestContext {
  const m = new Machine(desc, kernelProfile(opts.kernel ?? "6.x"));
  // the DMA layer as the native kernel boots it (pool, masks, probes)
  const report = bootMachine(m, { xen: "none" });
  if (report.fault) throw new FaultError(`machine ${desc.name} did not boot: ${report.fault.message}`);
  const engineDevice = opts.engineDevice ?? 0;
  const md = m.devices[engineDevice];
  if (md === undefined) throw new UsageError(`machine ${desc.name} has no device number ${engineDevice} (it has ${m.devices.length})`);
  const engineBase = desc.mmio.find((w) => w.model === "dma-engine")?.base ?? dmaEngineBaseFor(desc.ram);

  let physMap: GuestPhysMap = IDENTITY_PHYS_MAP;
  let hypercalls: HypercallHandler | undefined;
  let hv: XenHypervisor | undefined;
  let dom: Domain | undefined;
  let ramBase = m.memory.ramStart;
  let ramSize = m.memory.banks[0]!.size;
  let bus = md.bus;

  if (opts.xen !== "none") {
    // keep Xen's heap away from what the native boot already took (the swiotlb pool...)
    const reserved = m.memblock.regions.map((r) => ({ base: r.base, size: r.end - r.base }));
    hv = new XenHypervisor(m.memory, { version: "4.15", debugClobber: opts.xenDebug === true, reserved });
    const size = (opts.xen === "dom0" ? desc.xen?.dom0Mem : desc.xen?.domUMem) ?? (opts.xen === "dom0" ? 256 * MIB : 128 * MIB);
    dom = hv.createDomain({ role: opts.xen, size });
    const d = dom;
    const h = hv;
    hypercalls = { dispatch: (regs) => h.dispatch(d, regs) };
    ramBase = d.ram[0]!.base;
    ramSize = d.ram[0]!.size;
    if (opts.xen === "domU") {
      physMap = domainPhysMap(d);
      // behind a stage-2 translation the device sees guest-physical addresses
      bus = new DeviceBus(md.dev, m.memory, {
        name: `d${d.id} stage-2`,
        toPhys: (dma) => {
          const mfn = d.p2m.lookupMfn(Math.floor(dma / 4096));
          return mfn < 0 ? -1 : mfn * 4096 + (dma % 4096);
        },
        linearRun: (dma) => 4096 - (dma % 4096),
      });
    }
  }

  const engine = new DmaEngine(bus, `dma-engine (${md.name})`);
  if (!m.memory.mmioAt(engineBase)) m.memory.addMmio(engineBase, DMA_ENGINE_WINDOW, "dma-engine", engine);
  else {
    const w = m.memory.mmioAt(engineBase)!;
    if (w.name !== "dma-engine") throw new FaultError(`MMIO window at ${hex(engineBase)} is taken by ${w.name}`);
  }

  const direct = opts.xen !== "domU";
  const dma: DmaServices = {
    hasDevice: (n) => n >= 0 && n < m.devices.length,
    map: (n, phys, size, dir) => {
      const dv = m.devices[n]!;
      if (direct) {
        const g = m.memory.granule;
        const page = Math.floor(phys / g) * g;
        return m.api.dmaMapPageAttrs(dv.dev, page, phys - page, size, dir as 0 | 1 | 2, 0, 0);
      }
      // an SMMU-translated domU: the bus address is the IPA; only the mask limits it
      return phys + size - 1 <= dv.dev.dmaLimitNumber ? phys : -1;
    },
    unmap: (n, addr, size, dir) => {
      if (direct) m.api.dmaUnmapPageAttrs(m.devices[n]!.dev, addr, size, dir as 0 | 1 | 2, 0);
    },
    syncForCpu: (n, addr, size, dir) => {
      if (direct) m.api.dmaSyncSingleForCpu(m.devices[n]!.dev, addr, size, dir as 0 | 1 | 2);
    },
    syncForDevice: (n, addr, size, dir) => {
      if (direct) m.api.dmaSyncSingleForDevice(m.devices[n]!.dev, addr, size, dir as 0 | 1 | 2);
    },
  };

  const cpu = new Arm64Cpu({ memory: m.memory, physMap, traps: new TrapRouter({ hypercalls, dma }) });
  const ctx: GuestContext = { machine: m, cpu, engine, engineBase, engineDevice, ramBase, ramSize };
  if (hv) ctx.hypervisor = hv;
  if (dom) ctx.domain = dom;
  return ctx;
}
