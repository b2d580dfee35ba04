// The seam between a booted machine and a CPU run: the guest program runs in the kernel of
// the same boot `dmalab boot` / `dmalab run` make (machine/builder.ts), so its hypercalls,
// DMA services and DMA engine see exactly that boot's Xen, swiotlb(-xen) and device buses.
//
//   --xen none : bare metal. The CPU's physical space is the machine's; HVC is undefined;
//                dma_map goes through the booted kernel's DMA API (dma-direct / swiotlb).
//   --xen dom0 / domU : the CPU's guest-physical space is the domain's IPA space over machine
//                RAM, translated by the domain's P2M (identity for a direct-mapped domain);
//                HVC #0xEA1 goes to that hypervisor's dispatch for that domain. dma_map goes
//                through the DMA API of the domain's kernel as it booted: swiotlb-xen (bus
//                address = machine address from the P2M) for dom0 and direct-mapped domUs
//                whose kernel detects it, dma-direct for a domU that is not direct-mapped —
//                its device then sees guest-physical addresses through the stage-2 table
//                (as behind an SMMU) and a DMA to a frame the domain does not own is a bus
//                fault. The DMA engine masters through the boot's own DeviceBus of its device.

import { FaultError, UsageError, hex } from "../errors.js";
import { DmaEngine, DMA_ENGINE_BASE_DEFAULT, DMA_ENGINE_BASE_LOW_RAM, DMA_ENGINE_WINDOW } from "../dma/engine.js";
import type { Machine, MachineDevice } from "../machine/machine.js";
import type { BootReport } from "../machine/boot.js";
import { buildMachine, type BuiltMachine, type MachineConfig, type MachineSpec } from "../machine/builder.js";
import { XENMEM_exchange, __HYPERVISOR_memory_op } from "../xen/guest/hypercall.js";
import type { CoherentServices } from "./coherent-service.js";
import type { MachineDesc } from "../machine/preset.js";
import type { XenGuestBoot } from "../machine/xen-boot.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { Domain, XenHypervisor } from "../xen/hypervisor/index.js";
import { Arm64Cpu, IDENTITY_PHYS_MAP, type GuestPhysMap } from "./arm64-cpu.js";
import { TrapRouter, type DmaServices, type HypercallHandler } from "./traps.js";

export interface GuestContextOptions {
  /** the device the DMA engine masters as: index, name or driver; default the first probed one */
  engineDevice?: number | string;
  /** a listener on the machine's events before it boots (`guest --trace`) */
  observe?: (m: Machine) => void;
}

export interface RamRange {
  base: number;
  size: number;
}

export interface GuestContext {
  /** the booted kernel's machine (for a Xen guest: the domain's view, guest-physical RAM) */
  machine: Machine;
  boot: BootReport;
  cpu: Arm64Cpu;
  engine: DmaEngine;
  engineBase: number;
  engineDevice: number;
  /** the guest's RAM banks (guest-physical), ascending */
  ram: RamRange[];
  /** guest RAM base (IPA) and size of the first bank */
  ramBase: number;
  ramSize: number;
  xen?: XenGuestBoot;
  hypervisor?: XenHypervisor;
  domain?: Domain;
}

const PAGE = 4096;
const BLOCK_PAGES = 512; // 2 MiB

/**
 * The domain's stage 2 as the CPU maps it, per 2 MiB block: a block whose RAM entries all sit
 * at their place in one naturally aligned 2 MiB machine block maps onto that block. Pages the
 * domain gave back (decrease_reservation) leave holes the CPU cannot express at this
 * granularity: they stay reachable from the CPU (Xen would stage-2-fault them) so that code
 * and data on the other pages of the block go on running. Xen's own copies to and from guest
 * memory, and the device's stage-2 walk, are exact per page.
 */
export function domainPhysMap(d: Domain): GuestPhysMap {
  return {
    ipaToMachine: (ipa: number): number => {
      const g0 = Math.floor(ipa / PAGE / BLOCK_PAGES) * BLOCK_PAGES;
      const fast = d.p2m.contiguousChunk(g0);
      if (fast !== undefined) return fast * PAGE;
      let base = -1;
      for (let i = 0; i < BLOCK_PAGES; i++) {
        const e = d.p2m.lookup(g0 + i);
        if (e === undefined) continue;
        if (e.type !== "ram_rw" && e.type !== "ram_ro") return -1;
        const b = e.mfn - i;
        if (b % BLOCK_PAGES !== 0 || (base >= 0 && b !== base)) return -1;
        base = b;
      }
      return base < 0 ? -1 : base * PAGE;
    },
  };
}

const MEMORY_OPS_CHANGING_P2M = new Set(["XENMEM_increase_reservation", "XENMEM_decrease_reservation", "XENMEM_populate_physmap", "XENMEM_exchange"]);

/** HVC #0xEA1 → the hypervisor's register-level dispatch for `d`. */
function hypercallsFor(hv: XenHypervisor, d: Domain): HypercallHandler {
  let changed = false;
  return {
    dispatch: (regs) => {
      const rec = hv.dispatch(d, regs);
      changed = rec.sub !== undefined && MEMORY_OPS_CHANGING_P2M.has(rec.sub);
      return rec;
    },
    p2mChanged: () => changed,
  };
}

const overlaps = (a: number, n: number, rs: readonly RamRange[]): boolean => rs.some((r) => a < r.base + r.size && r.base < a + n);

/** The engine's window: the description's, unless it collides with RAM on either side of stage 2. */
function engineBaseFor(desc: MachineDesc, guestRam: readonly RamRange[], hostRam: readonly RamRange[]): number {
  const all = [...guestRam, ...hostRam];
  const fromDesc = desc.mmio.find((w) => w.model === "dma-engine")?.base;
  for (const b of [fromDesc, DMA_ENGINE_BASE_DEFAULT, DMA_ENGINE_BASE_LOW_RAM]) if (b !== undefined && !overlaps(b, DMA_ENGINE_WINDOW, all)) return b;
  throw new FaultError(`machine ${desc.name}: no free MMIO window for the DMA engine`);
}

function pickDevice(m: Machine, want: number | string | undefined): number {
  const ds = m.devices;
  if (ds.length === 0) throw new UsageError(`machine ${m.desc.name} has no DMA-capable device for the DMA engine`);
  let i: number;
  if (want === undefined) {
    i = ds.findIndex((d) => d.probed);
    if (i < 0) throw new UsageError(`machine ${m.desc.name}: no device probed (${probeErrors(ds)}): nothing for the DMA engine to master as`);
    return i;
  }
  if (typeof want === "number") i = Number.isInteger(want) && want >= 0 && want < ds.length ? want : -1;
  else {
    i = /^[0-9]+$/.test(want) ? Number(want) : ds.findIndex((d) => d.desc.name === want || d.name === want || d.desc.driver === want);
    if (i >= ds.length) i = -1;
  }
  if (i < 0) throw new UsageError(`--device '${String(want)}': machine ${m.desc.name} has devices ${ds.map((d, k) => `${k} ${d.desc.name} (${d.desc.driver})`).join(", ")}`);
  const md = ds[i]!;
  if (!md.probed) throw new UsageError(`--device '${String(want)}': ${md.name} failed to probe (error ${md.probeError}); its DMA setup does not work`);
  return i;
}

function probeErrors(ds: readonly MachineDevice[]): string {
  return ds.map((d) => `${d.name}: ${d.probeError}`).join(", ");
}

/**
 * Builds and boots the machine (machine/builder.ts, as every command does) and puts the CPU
 * on top. A boot that faults throws FaultError with the boot's fault line; bad options throw
 * UsageError.
 */
export function buildGuestContext(config: MachineConfig | MachineSpec, opts: GuestContextOptions = {}): GuestContext {
  const res = buildMachine(config, opts.observe);
  const br = res.report;
  if (br.outcome === "fault") throw new BootFaultError(br);
  const desc = res.spec.desc;
  const m = res.machine;
  const engineDevice = pickDevice(m, opts.engineDevice);
  const md = m.devices[engineDevice]!;
  const ram: RamRange[] = m.memory.banks.map((b) => ({ base: b.base, size: b.size })).sort((a, b) => a.base - b.base);

  const xb = res.xen;
  // the CPU's memory: machine RAM, reached through the domain's stage 2 when there is Xen
  const cpuMemory: PhysicalMemory = xb ? xb.host : m.memory;
  const physMap: GuestPhysMap = xb ? domainPhysMap(xb.domain) : IDENTITY_PHYS_MAP;
  const hostRam: RamRange[] = cpuMemory.banks.map((b) => ({ base: b.base, size: b.size }));
  const engineBase = engineBaseFor(desc, ram, hostRam);
  // the boot's bus view of the device: dma-ranges, or the domain's stage-2 walk over machine RAM
  const engine = new DmaEngine(md.bus, `dma-engine (${md.name})`);
  const w = cpuMemory.mmioAt(engineBase);
  if (w === undefined) cpuMemory.addMmio(engineBase, DMA_ENGINE_WINDOW, "dma-engine", engine);
  else throw new FaultError(`MMIO window at ${hex(engineBase)} is taken by ${w.name}`);

  const api = m.api;
  const g = m.memory.granule;
  const dma: DmaServices = {
    hasDevice: (n) => Number.isInteger(n) && n >= 0 && n < m.devices.length,
    // the kernel's dma_map_page_attrs: dev->dma_ops (swiotlb-xen) when the boot installed them
    map: (n, phys, size, dir) => {
      const page = phys - (phys % g);
      const dev = m.devices[n]!.dev;
      const r = api.dmaMapPageAttrs(dev, page, phys - page, size, dir, 0, 0);
      // the service answers DMA_MAPPING_ERROR itself: it is the caller's dma_mapping_error check
      api.dmaMappingError(dev, r);
      return r;
    },
    unmap: (n, addr, size, dir) => api.dmaUnmapPageAttrs(m.devices[n]!.dev, addr, size, dir, 0),
    syncForCpu: (n, addr, size, dir) => api.dmaSyncSingleForCpu(m.devices[n]!.dev, addr, size, dir),
    syncForDevice: (n, addr, size, dir) => api.dmaSyncSingleForDevice(m.devices[n]!.dev, addr, size, dir),
  };
  dma.coherent = coherentServicesFor(res, m);
  const hypercalls = xb ? hypercallsFor(xb.hv, xb.domain) : undefined;
  const traps = new TrapRouter(hypercalls ? { hypercalls, dma } : { dma });
  const cpu = new Arm64Cpu({ memory: cpuMemory, physMap, traps });
  engine.overLimit = () => Date.now() > cpu.runDeadline;
  const ctx: GuestContext = { machine: m, boot: br, cpu, engine, engineBase, engineDevice, ram, ramBase: ram[0]!.base, ramSize: ram[0]!.size };
  if (xb) {
    ctx.xen = xb;
    ctx.hypervisor = xb.hv;
    ctx.domain = xb.domain;
  }
  return ctx;
}

/** The boot faulted before any guest code ran: the report (kernel log, the oops) travels with it. */
export class BootFaultError extends FaultError {
  constructor(readonly report: BootReport) {
    super(`boot of ${report.machine} (kernel ${report.kernel}, xen ${report.xen}) faulted: ${report.fault?.message ?? "unknown fault"}`);
  }
}

/** The RAM bank holding `ipa` (the entry ABI hands the program the bank it is loaded in). */
export function bankOf(ctx: Pick<GuestContext, "ram">, ipa: number): RamRange | undefined {
  return ctx.ram.find((r) => ipa >= r.base && ipa < r.base + r.size);
}

/** dma_alloc_coherent / dma_free_coherent for the guest, through the boot's CoherentApi. */
function coherentServicesFor(res: BuiltMachine, m: Machine): CoherentServices {
  const xb = res.xen;
  let seen = xb?.contig.exchanges.length ?? 0;
  return {
    alloc: (n, size) => res.coherent.dmaAllocAttrs(m.devices[n]!.dev, size),
    free: (n, size, phys, dma) => res.coherent.dmaFreeAttrs(m.devices[n]!.dev, size, phys, dma),
    takeHypercalls: () => {
      if (!xb) return [];
      const ex = xb.contig.exchanges;
      const out = ex.slice(seen).map((e) => ({
        op: "memory_op",
        nr: __HYPERVISOR_memory_op,
        args: [BigInt(XENMEM_exchange), BigInt(xb.contig.exchangeStructGpa), BigInt(e.nrExchanged)],
        ret: BigInt(e.rc),
      }));
      seen = ex.length;
      return out;
    },
  };
}
