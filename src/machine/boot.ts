// Booting a Machine the way an arm64 kernel of the chosen profile does, as far as DMA goes:
//   1. parse `swiotlb=` (each era's syntax);
//   2. zone_sizes_init: zone_dma_bits, arm64_dma_phys_limit (zones.ts), "Zone ranges:" log;
//   3. mem_init's swiotlb decision (spec 7.6):
//        5.12 / 5.13-rc1 / 5.13 (arch/arm64/mm/init.c 019bc1f6, same as v5.13):
//          swiotlb_force == SWIOTLB_FORCE || max_pfn > PFN_DOWN(arm64_dma_phys_limit)
//            → swiotlb_init(1); else, unless xen_swiotlb_detect() (5.13 only, 687842ec),
//            swiotlb_force = SWIOTLB_NO_FORCE;
//        6.x (= v6.11): swiotlb = max_pfn > PFN_DOWN(arm64_dma_phys_limit); arm64 selects
//          DMA_BOUNCE_UNALIGNED_KMALLOC, so when no ZONE_DMA bouncing is needed the pool is
//          shrunk to 1 MiB per GiB of RAM and created anyway; swiotlb_init(swiotlb, VERBOSE);
//   4. the hypervisor's guest set-up: the BootHooks seam; Xen's is XenGuestBoot (xen-boot.ts),
//      which also builds the hypervisor and the domain (builder.ts puts the two together);
//   5. every device's driver probe: dma_set_mask_and_coherent() with the driver's mask.
// The result is a kernel-log-like report, or the fault that stopped the boot.

import { describeFault, type BootFault } from "./fault.js";
import { FaultError, UsageError, hex } from "../errors.js";
import { EIO, errnoName } from "../kernel/errno.js";
import { initcallFrames, probeFrames } from "../kernel/driver-probe.js";
import { kmallocMinalign } from "../kernel/kmalloc.js";
import { padHex } from "../kernel/printk.js";
import { IO_TLB_SHIFT, IO_TLB_SIZE, SWIOTLB_FORCE, SWIOTLB_FORCE_NAMES, SWIOTLB_NO_FORCE, SWIOTLB_VERBOSE } from "../kernel/swiotlb.js";
import { parseSwiotlbCmdline } from "../swiotlb/cmdline.js";
import type { Machine, MachineDevice } from "./machine.js";
import { stripSwiotlbPrefix, totalRam } from "./preset.js";

export type XenRole = "none" | "dom0" | "domU";
export const XEN_ROLES: readonly XenRole[] = ["none", "dom0", "domU"];

export interface BootOptions {
  /** the Xen role of the kernel; dom0/domU need the Xen hooks (use bootWithXen) */
  xen?: XenRole;
  /** replaces the description's `swiotlb=` value */
  swiotlbCmdline?: string;
  /** text `swiotlb=` ignores is an error instead of a warning */
  strict?: boolean;
  /** 6.x: override CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC (default: the profile's arm64 config) */
  kmallocBounce?: boolean;
  /** probe only these devices (by name or driver); default all */
  probe?: readonly string[];
  /** dmalab's own sizing of the default pool (benchmarks), applied around the command line */
  pool?: PoolOverride;
}

/**
 * Benchmarks want the same pool on every board: a fixed size and area count, created even
 * where mem_init would go without one. Everything else about the boot stays the kernel's.
 */
export interface PoolOverride {
  /** default slots (as swiotlb_adjust_size would leave them); a `swiotlb=` size still wins */
  nslabs?: number;
  /** areas (6.x), over whatever the command line says */
  nareas?: number;
  /** areas (6.x) when the command line names none */
  nareasIfUnset?: number;
  /** create the default pool whatever mem_init decides */
  always?: boolean;
}

/**
 * What a hypervisor role adds to the boot. Native boots use NATIVE_HOOKS. The Xen guest side
 * plugs in here: `swiotlbDetect` is xen_swiotlb_detect() as mem_init sees it, `afterMemInit`
 * is xen_mm_init() & co (swiotlb-xen init, per-device dma_ops), run before the probes.
 */
export interface BootHooks {
  swiotlbDetect(m: Machine): boolean;
  afterMemInit(m: Machine, b: BootRecorder): void;
}

export const NATIVE_HOOKS: BootHooks = {
  swiotlbDetect: () => false,
  afterMemInit: () => {},
};

/** Collects what the boot decided, in order, for the report and for a fault's causes. */
export class BootRecorder {
  readonly decisions: string[] = [];
  /** the call chain of the step running now (outermost first), for an oops */
  readonly chain: string[] = [];
  decide(s: string): void {
    this.decisions.push(s);
  }
  /**
   * Runs fn with `frames` pushed on the call chain. They are popped only when fn returns: a
   * fault leaves the chain as it was at the fault, for the report.
   */
  within<T>(frames: readonly string[], fn: () => T): T {
    const n = this.chain.length;
    this.chain.push(...frames);
    const r = fn();
    this.chain.length = n;
    return r;
  }
}

export interface DeviceProbe {
  name: string;
  driver: string;
  probed: boolean;
  /** negative errno of a failed probe */
  error?: number;
  /** its name, e.g. "EIO" */
  errno?: string;
  dma_mask: string;
  coherent_dma_mask: string;
  bus_dma_limit: string;
}

export interface PoolInfo {
  start: string;
  end: string;
  nslabs: number;
  nareas: number;
  bytes: number;
}

export type BootOutcome = "ok" | "fault" | "probe-failed";

export interface BootReport {
  machine: string;
  kernel: string;
  xen: XenRole;
  /** "probe-failed": no fault, but some driver's probe failed (no working DMA setup for it) */
  outcome: BootOutcome;
  zones: {
    zone_dma_bits: number;
    arm64_dma_phys_limit: string;
    zone_dma32_end: string;
    max_pfn: string;
    ram_above_dma_limit: boolean;
  };
  swiotlb: {
    cmdline: string;
    /** 5.x: the global swiotlb_force; 6.x: derived from force/noforce */
    force: string;
    /** 6.x: io_tlb_default_mem.force_bounce */
    force_bounce: boolean;
    pool: PoolInfo | null;
  };
  devices: DeviceProbe[];
  decisions: string[];
  kernelLog: string[];
  fault?: BootFault;
  /** text `swiotlb=` ignored (already a kernel-log warning) */
  warnings: string[];
}

/** free_area_init's "Zone ranges:" lines (mm/page_alloc.c). */
function logZoneRanges(m: Machine): void {
  const z = m.zones;
  const shift = BigInt(z.pageShift);
  const minPfn = BigInt(z.minPfn);
  const maxPfn = BigInt(z.maxPfn);
  const dmaEnd = z.dmaPhysLimit >> shift;
  const dma32End = z.dma32PhysLimit >> shift;
  const clamp = (v: bigint): bigint => (v < minPfn ? minPfn : v > maxPfn ? maxPfn : v);
  const ranges: [string, bigint, bigint][] = [];
  let start = minPfn;
  for (const [name, end] of [
    ["DMA", dmaEnd],
    ["DMA32", dma32End],
    ["Normal", maxPfn],
  ] as const) {
    const e = clamp(end > start ? end : start);
    ranges.push([name, start, e]);
    start = e;
  }
  m.log.print("Zone ranges:");
  for (const [name, s, e] of ranges)
    m.log.print(`  ${name.padEnd(8)} ${s === e ? "empty" : `[mem ${padHex(s << shift)}-${padHex((e << shift) - 1n)}]`}`);
}

function poolInfo(m: Machine): PoolInfo | null {
  const mem = m.swiotlb.defaultMem;
  if (mem === null) return null;
  return { start: hex(mem.start), end: hex(mem.end - 1), nslabs: mem.nslabs, nareas: mem.pool.nareas, bytes: mem.nslabs * IO_TLB_SIZE };
}

/** arm64 mem_init(): the swiotlb decision of the profile's era. */
export function arm64MemInit(m: Machine, hooks: BootHooks, b: BootRecorder, opts: BootOptions = {}): void {
  const z = m.zones;
  const sw = m.swiotlb;
  const p = m.profile;
  const limitPfn = Number(z.dmaPhysLimit >> BigInt(z.pageShift));
  const cmp = `max_pfn ${hex(z.maxPfn)} ${z.ramAboveDmaLimit ? ">" : "<="} PFN_DOWN(arm64_dma_phys_limit ${hex(z.dmaPhysLimit)}) = ${hex(limitPfn)}`;
  // the default pool comes from memblock_alloc_low(): below ARCH_LOW_ADDRESS_LIMIT (inclusive)
  const lowLimit = Number(z.dmaPhysLimit);
  const always = opts.pool?.always === true;
  if (p.memInitSetsNoForce) {
    if (sw.forceState === SWIOTLB_FORCE || z.ramAboveDmaLimit || always) {
      const why = sw.forceState === SWIOTLB_FORCE ? "swiotlb_force == SWIOTLB_FORCE" : z.ramAboveDmaLimit ? cmp : `${cmp}, but dmalab's pool option wants a pool`;
      b.decide(`mem_init: ${why}: swiotlb_init(1)`);
      sw.swiotlbInit(true, lowLimit);
    } else if (p.noForceSkippedForXen && hooks.swiotlbDetect(m)) {
      b.decide(`mem_init: ${cmp}, but xen_swiotlb_detect(): swiotlb_force left at ${SWIOTLB_FORCE_NAMES[sw.forceState]} (687842ec)`);
    } else {
      sw.forceState = SWIOTLB_NO_FORCE;
      b.decide(`mem_init: ${cmp}: no pool; swiotlb_force = SWIOTLB_NO_FORCE`);
    }
    return;
  }
  // 6.x
  let need = z.ramAboveDmaLimit;
  b.decide(`mem_init: ${cmp}: ZONE_DMA bouncing ${need ? "needed" : "not needed"}`);
  const kmalloc = opts.kmallocBounce ?? p.memInitKmallocBounce;
  if (always && !need) {
    need = true;
    b.decide("mem_init: dmalab's pool option: the default pool is created at its full size");
  } else if (kmalloc && !need) {
    const size = Math.ceil(totalRam(m.desc) / 1024);
    const dflt = sw.defaultNslabs << IO_TLB_SHIFT;
    sw.adjustSize(Math.min(dflt, size));
    need = true;
    b.decide(`mem_init: DMA_BOUNCE_UNALIGNED_KMALLOC: pool for kmalloc() bouncing, swiotlb_adjust_size(min(${dflt}, ${size}))`);
  }
  sw.swiotlbInitRemap(need, SWIOTLB_VERBOSE, lowLimit);
  if (!need) b.decide("mem_init: swiotlb_init(false): no pool");
}

/**
 * mm_core_init → kmem_cache_init, right after mem_init: kmalloc's minimum alignment, which
 * dma-direct's kmalloc bounce check reads (6.5+: lowered to ARCH_KMALLOC_MINALIGN when
 * DMA_BOUNCE_UNALIGNED_KMALLOC is set and swiotlb has a pool, mm/slab_common.c).
 */
function kmemCacheInit(m: Machine, b: BootRecorder, opts: BootOptions): void {
  const p = m.profile;
  const enabled = p.era === "6.x" && (opts.kmallocBounce ?? p.memInitKmallocBounce);
  const allocated = m.swiotlb.defaultMem !== null;
  m.direct.kmallocBounce = enabled;
  m.direct.kmallocMinalign = kmallocMinalign(enabled, allocated);
  if (enabled)
    b.decide(
      `kmem_cache_init: kmalloc minimum alignment ${m.direct.kmallocMinalign}` +
        (allocated ? ": small unaligned FROM_DEVICE/BIDIRECTIONAL buffers of non-coherent devices bounce" : " (no swiotlb pool: nothing bounces for kmalloc)"),
    );
}

/** really_probe → the driver's probe → dma_set_mask_and_coherent (or the two calls). */
function probeDevice(m: Machine, md: MachineDevice, b: BootRecorder): void {
  const d = md.desc;
  const api = m.api;
  // a built-in driver probes from its initcall, through the bus glue, into its probe function
  const probe = [...initcallFrames(d.driver, d.name), ...probeFrames(d.driver, d.name)];
  let rc: number;
  if (d.dmaMask === d.coherentMask) {
    rc = b.within([...probe, "dma_set_mask_and_coherent", "dma_set_mask", "dma_supported"], () => api.dmaSetMaskAndCoherent(md.dev, d.dmaMask));
  } else {
    rc = b.within([...probe, "dma_set_mask", "dma_supported"], () => api.dmaSetMask(md.dev, d.dmaMask));
    if (rc === 0) rc = b.within([...probe, "dma_set_coherent_mask", "dma_supported"], () => api.dmaSetCoherentMask(md.dev, d.coherentMask));
  }
  if (rc !== 0) {
    md.probeError = rc;
    // drivers/base/dd.c really_probe (5.13 wording)
    m.log.print(`${d.driver}: probe of ${d.name} failed with error ${rc}`);
    b.decide(`${md.name}: dma_set_mask(${hex(d.dmaMask)}) = ${rc}${rc === -EIO ? " (-EIO: mask not supported)" : ""}; probe failed`);
    return;
  }
  md.probed = true;
}

/**
 * Boots the machine (once). Never throws for a kernel fault: the report's outcome says
 * "fault" and carries the oops. Bad options (an unknown Xen role, a bad `swiotlb=` under
 * strict) throw UsageError / InputError before anything changes.
 */
export function bootMachine(m: Machine, opts: BootOptions = {}, hooks?: BootHooks): BootReport {
  const xen = opts.xen ?? "none";
  if (!XEN_ROLES.includes(xen)) throw new UsageError(`--xen '${String(xen)}': expected one of ${XEN_ROLES.join(", ")}`);
  if (xen !== "none" && hooks === undefined)
    throw new UsageError(`--xen ${xen}: not available yet without the Xen hooks (boot it with bootWithXen)`);
  if (m.booted) throw new UsageError(`machine ${m.desc.name} is already booted`);
  const h = hooks ?? NATIVE_HOOKS;
  const cmdline = opts.swiotlbCmdline !== undefined ? stripSwiotlbPrefix(opts.swiotlbCmdline) : m.desc.swiotlbCmdline;
  // parse first: a strict failure leaves the machine untouched
  const parsed = cmdline === "" ? null : parseSwiotlbCmdline(cmdline, m.profile, { strict: opts.strict === true });
  m.booted = true;
  const b = new BootRecorder();
  const warnings: string[] = [];
  let fault: BootFault | undefined;
  try {
    const po = opts.pool;
    if (po?.nslabs !== undefined) m.swiotlb.defaultNslabs = po.nslabs;
    if (parsed !== null) {
      if (parsed.ignored !== undefined) {
        const w = `swiotlb=${cmdline}: kernel ${m.profile.version} ignores '${parsed.ignored}'`;
        warnings.push(w);
        b.decide(w);
      }
      m.swiotlb.applyCmdline(parsed);
    }
    if (po !== undefined && m.profile.areas) {
      if (po.nareas !== undefined) m.swiotlb.adjustNareas(po.nareas);
      else if (po.nareasIfUnset !== undefined && m.swiotlb.defaultNareas === 0) m.swiotlb.adjustNareas(po.nareasIfUnset);
    }
    // setup_arch parses early params and ends in bootmem_init → zone_sizes_init ("Zone
    // ranges:"); start_kernel prints the command line after setup_arch returns
    logZoneRanges(m);
    if (parsed !== null) m.log.print(`Kernel command line: swiotlb=${cmdline}`);
    b.within(["start_kernel", "mm_init", "mem_init"], () => arm64MemInit(m, h, b, opts));
    kmemCacheInit(m, b, opts);
    b.within(["start_kernel"], () => h.afterMemInit(m, b));
    for (const md of m.devices) {
      if (opts.probe && !opts.probe.some((n) => n === md.desc.name || n === md.desc.driver || n === md.name)) continue;
      if (md.desc.restrictedPool && m.profile.restrictedDmaPool) m.setUpRestrictedPool(md);
      probeDevice(m, md, b);
    }
  } catch (e) {
    if (!(e instanceof FaultError)) throw e;
    fault = describeFault(e, b);
  }
  const sw = m.swiotlb;
  const report: BootReport = {
    machine: m.desc.name,
    kernel: m.profile.version,
    xen,
    outcome: fault ? "fault" : m.devices.some((d) => d.probeError !== 0) ? "probe-failed" : "ok",
    zones: {
      zone_dma_bits: m.zones.zoneDmaBits,
      arm64_dma_phys_limit: hex(m.zones.dmaPhysLimit),
      zone_dma32_end: hex(m.zones.dma32PhysLimit),
      max_pfn: hex(m.zones.maxPfn),
      ram_above_dma_limit: m.zones.ramAboveDmaLimit,
    },
    swiotlb: {
      cmdline,
      force: SWIOTLB_FORCE_NAMES[sw.forceState],
      force_bounce: sw.defaultForceBounce,
      pool: poolInfo(m),
    },
    devices: m.devices.map((md) => {
      const r: DeviceProbe = {
        name: md.desc.name,
        driver: md.desc.driver,
        probed: md.probed,
        dma_mask: hex(md.dev.dmaMask),
        coherent_dma_mask: hex(md.dev.coherentDmaMask),
        bus_dma_limit: hex(md.dev.busDmaLimit),
      };
      if (md.probeError !== 0) {
        r.error = md.probeError;
        r.errno = errnoName(md.probeError) ?? String(md.probeError);
      }
      return r;
    }),
    decisions: b.decisions,
    kernelLog: [...m.log.lines],
    warnings,
  };
  if (fault) report.fault = fault;
  return report;
}

/** Human-readable lines of a boot report (used by `run` and `boot`). */
export function formatBootReport(r: BootReport): string[] {
  const out: string[] = [];
  out.push(`machine ${r.machine}, kernel ${r.kernel}, xen ${r.xen}`);
  out.push(
    `zones: zone_dma_bits ${r.zones.zone_dma_bits}, arm64_dma_phys_limit ${r.zones.arm64_dma_phys_limit}, ZONE_DMA32 end ${r.zones.zone_dma32_end}, max_pfn ${r.zones.max_pfn}`,
  );
  const pool = r.swiotlb.pool;
  out.push(
    `swiotlb: ${pool ? `pool [${pool.start}-${pool.end}] ${pool.nslabs} slots (${pool.bytes / 2 ** 20} MiB), ${pool.nareas} area${pool.nareas === 1 ? "" : "s"}` : "no pool"}, ${r.swiotlb.force}${r.swiotlb.force_bounce ? ", force_bounce" : ""}`,
  );
  for (const d of r.decisions) out.push(`  ${d}`);
  for (const d of r.devices) out.push(`device ${d.driver} ${d.name}: ${d.probed ? "probed" : d.error !== undefined ? `probe failed (${d.error})` : "not probed"}, dma_mask ${d.dma_mask}${d.bus_dma_limit !== "0x0" ? `, bus_dma_limit ${d.bus_dma_limit}` : ""}`);
  if (r.fault) {
    // a modelled oops is shown here, once, as the kernel log has it
    if (r.fault.oops) out.push(...r.fault.oops.map((l) => `[kernel] ${l}`));
    out.push(...r.fault.lines);
  }
  return out;
}
