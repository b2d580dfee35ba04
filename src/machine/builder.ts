// The one place a machine is built and booted. Every command (`run`, `boot`, `guest`,
// `bench`) and the library hand it the same configuration — machine description, kernel
// profile, Xen role and release, `swiotlb=`, options — and get back the booted kernel's
// Machine, the boot report and, for a Xen guest, the hypervisor side. Nobody downstream
// decides again what the boot decided: they read it from the result.
//
// Checks come first (machineSpec): a bad value is a usage error naming it, before anything
// is allocated. Then buildMachine: memory and memblock (Machine), zones, mem_init's swiotlb
// decision, Xen's early init and xen_mm_init when there is Xen (xen-boot.ts), the DMA ops,
// the driver probes (boot.ts).

import { DmaDebug, type DmaDebugMode } from "../dma/debug.js";
import { UsageError } from "../errors.js";
import { CoherentApi, DmaDirectAlloc } from "../dma/coherent.js";
import { PageAllocator, zoneSpans } from "../memory/page-alloc.js";
import { XEN_PAGE_SIZE, xenPhysToBus } from "../xen/guest/p2m.js";
import { parseSwiotlbCmdline } from "../swiotlb/cmdline.js";
import { KERNEL_VERSIONS, isKernelVersion, kernelProfile, type KernelProfile } from "../swiotlb/profile.js";
import type { ContiguousRegionMode } from "../xen/guest/contiguous-region.js";
import { XEN_ROLES, bootMachine, type BootOptions, type BootReport, type PoolOverride, type XenRole } from "./boot.js";
import { DEMO_MACHINE_NAME, demoMachine } from "./demo.js";
import { oopsContext } from "./fault.js";
import { Machine } from "./machine.js";
import { dtbXenRole } from "./device-tree.js";
import { checkXenRamLimit, presetNames, resolveMachine, stripSwiotlbPrefix, type MachineDesc } from "./preset.js";
import { XenGuestBoot, checkXenBootConfig, type DirectMapFeature, type XenBootConfig } from "./xen-boot.js";

/** The machine every command boots unless told otherwise: the embedded demo board. */
export const DEFAULT_MACHINE = DEMO_MACHINE_NAME;
/** The kernel profile every command boots unless told otherwise. */
export const DEFAULT_KERNEL = "6.x";
export const CONTIG_MODES: readonly ContiguousRegionMode[] = ["arm", "x86-pv"];
/** --areas: the kernel's limit on swiotlb areas (one per possible CPU, at most) */
const MAX_AREAS = 1024;

/** What a machine is built from; plain data (a worker thread rebuilds the same machine from it). */
export interface MachineConfig {
  /** a name from machineNames(), a JSON file, a device tree blob, or a description; default DEFAULT_MACHINE */
  machine?: string | MachineDesc;
  /** RAM size for a device tree whose memory node the firmware fills in (size 0 or none) */
  mem?: number;
  /** kernel profile; default DEFAULT_KERNEL */
  kernel?: string;
  /** Xen role of the booting kernel; default "none" (dom0 for a device tree with a /hypervisor xen,xen node) */
  xen?: string;
  /** with Xen: the release (default: the machine's, else 4.15) */
  xenVersion?: string;
  /** with Xen: direct_mapped / not_direct_mapped, the last one wins */
  features?: readonly string[];
  /** with Xen: xen_create_contiguous_region as on arm (default) or as x86 PV's XENMEM_exchange */
  contig?: string;
  /** with Xen: a debug build of Xen (clobbers argument registers on return) */
  xenDebug?: boolean;
  /** the kernel's `swiotlb=` value (replaces the machine's); "swiotlb=" prefix optional */
  swiotlb?: string;
  /** text `swiotlb=` ignores is an error instead of a warning */
  strict?: boolean;
  /** probe only these devices; default all */
  probe?: readonly string[];
  /** dmalab's own pool sizing (benchmarks) */
  pool?: PoolOverride;
  /** 6.x: CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC; default the profile's arm64 config */
  kmallocBounce?: boolean;
  /** CONFIG_DMA_API_DEBUG: true reports misuse and goes on (the kernel's way); "strict" refuses it; default the description's, else off */
  dmaDebug?: boolean | "strict";
}

/** A checked configuration: everything resolved, nothing built yet. */
export interface MachineSpec {
  desc: MachineDesc;
  profile: KernelProfile;
  xen: XenRole;
  xenConfig: Omit<XenBootConfig, "role">;
  boot: Omit<BootOptions, "xen">;
  /** what the builder chose on its own (e.g. the Xen role a device tree implies), for the boot's account */
  notes: string[];
  /** CONFIG_DMA_API_DEBUG: off, the kernel's report-and-continue, or strict */
  dmaDebug?: DmaDebugMode;
}

export interface BuiltMachine {
  spec: MachineSpec;
  /** the booted kernel's machine (for a Xen guest: the domain's view of its RAM) */
  machine: Machine;
  report: BootReport;
  /** the hypervisor, the domain and what xen_mm_init did; null for a native boot */
  xen: XenGuestBoot | null;
  /** dma_alloc_attrs / dma_free_attrs over the booted kernel's page allocator */
  coherent: CoherentApi;
}

/** The machine names `--machine` takes besides file paths: the demo board and the presets. */
export function machineNames(): string[] {
  return [DEFAULT_MACHINE, ...presetNames()];
}

/** `--machine`: the demo board, a preset, a JSON file or a device tree blob (errors name the value and the choices). */
export function resolveMachineArg(arg: string | MachineDesc | undefined, opts: { mem?: number; kernel?: string } = {}): MachineDesc {
  if (arg === undefined || arg === DEFAULT_MACHINE) return demoMachine();
  if (typeof arg !== "string") return arg;
  return resolveMachine(arg, opts);
}

function oneOf<T extends string>(flag: string, v: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`${flag} '${v}': expected one of ${choices.join(", ")}`);
  return v as T;
}

/** Checks a configuration and resolves its machine and kernel; builds nothing. */
export function machineSpec(c: MachineConfig): MachineSpec {
  const kernel = c.kernel ?? DEFAULT_KERNEL;
  if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  const profile = kernelProfile(kernel);
  if (c.mem !== undefined && (!Number.isSafeInteger(c.mem) || c.mem <= 0)) throw new UsageError(`--mem ${c.mem}: must be a positive size`);
  const found = resolveMachineArg(c.machine, { kernel, ...(c.mem !== undefined ? { mem: c.mem } : {}) });
  // a device tree with Xen's /hypervisor node boots as dom0 unless --xen says otherwise
  const dt = dtbXenRole(found, c.xen);
  const notes = dt.note !== undefined ? [dt.note] : [];
  const xen = oneOf("--xen", c.xen ?? dt.role, XEN_ROLES);
  const features = (c.features ?? []) as DirectMapFeature[];
  if (xen === "none") {
    const extra = [
      features.length > 0 ? "--feature" : "",
      c.xenVersion !== undefined ? "--xen-version" : "",
      c.contig !== undefined ? "--contig" : "",
      c.xenDebug === true ? "--xen-debug" : "",
    ].filter((s) => s !== "");
    if (extra.length > 0) throw new UsageError(`${extra.join(", ")} need${extra.length === 1 ? "s" : ""} --xen dom0 or --xen domU`);
  }
  const po = c.pool;
  for (const [k, v] of [["nareas", po?.nareas], ["nareasIfUnset", po?.nareasIfUnset]] as const) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1 || v > MAX_AREAS) throw new UsageError(`--areas ${v}: must be 1..${MAX_AREAS}`);
    if (!profile.areas && v !== 1 && k === "nareas") throw new UsageError(`--areas ${v}: kernel ${profile.version} has a single lock and index (areas came in 6.0)`);
  }
  if (po?.nslabs !== undefined && (!Number.isInteger(po.nslabs) || po.nslabs < 1)) throw new UsageError(`pool size ${po.nslabs} slots: must be a positive integer`);

  const boot: Omit<BootOptions, "xen"> = { strict: c.strict === true };
  if (c.swiotlb !== undefined) {
    const v = stripSwiotlbPrefix(c.swiotlb);
    if (/\s/.test(v)) throw new UsageError(`--swiotlb '${c.swiotlb}': one swiotlb= value, without spaces`);
    // a malformed value (or ignored text under --strict) is refused now, before anything is built
    if (v !== "") parseSwiotlbCmdline(v, profile, { strict: c.strict === true });
    boot.swiotlbCmdline = v;
  }
  if (c.probe !== undefined) boot.probe = c.probe;
  if (po !== undefined) boot.pool = po;
  if (c.kmallocBounce !== undefined) boot.kmallocBounce = c.kmallocBounce;

  let desc = found;
  if (c.xenDebug === true) desc = { ...desc, xen: { ...desc.xen, debugBuild: true } };
  const xenConfig: Omit<XenBootConfig, "role"> = { features };
  if (c.xenVersion !== undefined) xenConfig.xenVersion = c.xenVersion;
  if (c.contig !== undefined) xenConfig.contiguousRegion = c.contig as ContiguousRegionMode;
  // Xen's own rules (release, features, contig flavour and their combinations), checked now
  if (xen !== "none") checkXenBootConfig(desc, { ...xenConfig, role: xen });
  if (xen !== "none") checkXenRamLimit(desc);
  const spec: MachineSpec = { desc, profile, xen, xenConfig, boot, notes };
  const dd = c.dmaDebug ?? desc.dmaDebug ?? false;
  if (dd !== false && dd !== true && dd !== "strict") throw new UsageError(`--dma-debug '${String(dd)}': expected strict (or no value)`);
  if (dd !== false) spec.dmaDebug = dd === "strict" ? "strict" : "report";
  return spec;
}

/** CONFIG_DMA_API_DEBUG on a machine before its boot: dma_debug_init, with the kernel's defaults */
function enableDmaDebug(m: Machine, mode: DmaDebugMode | undefined): void {
  if (mode === undefined) return;
  m.api.debug = new DmaDebug({ log: m.log, events: m.events, pageSize: m.memory.granule, strict: mode === "strict" });
}

function isSpec(c: MachineConfig | MachineSpec): c is MachineSpec {
  return "profile" in c && "notes" in c;
}

/**
 * Builds and boots. A kernel fault during the boot is not an exception: the report's
 * outcome says "fault" and carries the oops. Bad configuration throws UsageError/InputError
 * before anything is built.
 */
export function buildMachine(c: MachineConfig | MachineSpec, observe?: (m: Machine) => void): BuiltMachine {
  const spec = isSpec(c) ? c : machineSpec(c);
  if (spec.xen === "none") {
    const machine = new Machine(spec.desc, spec.profile);
    enableDmaDebug(machine, spec.dmaDebug);
    // `observe`: a listener on the machine's events before it boots (reports, traces)
    observe?.(machine);
    const report = bootMachine(machine, { ...spec.boot, xen: "none" });
    report.decisions.unshift(...spec.notes);
    return { spec, machine, report, xen: null, coherent: setUpCoherent(machine, null) };
  }
  const xb = new XenGuestBoot(spec.desc, spec.profile, { ...spec.xenConfig, role: spec.xen });
  enableDmaDebug(xb.machine, spec.dmaDebug);
  observe?.(xb.machine);
  xb.earlyInit();
  const report = bootMachine(xb.machine, { ...spec.boot, xen: spec.xen }, xb);
  report.decisions.unshift(...spec.notes);
  // a modelled kernel oops (xen_swiotlb_dma_supported's NULL read) travels with the fault
  const oops = xb.lastOops;
  if (report.fault && oops) report.fault.oops = oops.report(false, oopsContext(xb.machine));
  return { spec, machine: xb.machine, report, xen: xb, coherent: setUpCoherent(xb.machine, xb) };
}

/**
 * memblock_free_all: the RAM memblock has not handed out goes to the buddy allocator, which
 * dma-direct's coherent path (and swiotlb-xen's) allocates from.
 */
function setUpCoherent(m: Machine, xb: XenGuestBoot | null): CoherentApi {
  const pages = new PageAllocator({ memblock: m.memblock, banks: m.memory.banks, zones: zoneSpans(m.zones), pageShift: m.zones.pageShift, log: m.log });
  const direct = new DmaDirectAlloc({ memory: m.memory, pages, profile: m.profile, swiotlb: m.swiotlb, zoneDmaBits: m.zones.zoneDmaBits, log: m.log });
  const xs = xb?.xenSwiotlb;
  if (xb && xs) {
    xs.attachCoherent({
      flavour: xb.contig.mode === "x86-pv" ? "x86" : "arm",
      direct,
      pages,
      // memset through the kernel's linear map: arm's is the guest's own RAM; x86 PV's was
      // remapped onto the frames the exchange gave back
      zero: (phys, size) => {
        if (xb.contig.mode !== "x86-pv") return m.memory.fill(phys, size, 0);
        for (let a = phys; a < phys + size; ) {
          const n = Math.min(phys + size - a, XEN_PAGE_SIZE - (a % XEN_PAGE_SIZE));
          xb.host.fill(xenPhysToBus(xs.p2m, a), n, 0);
          a += n;
        }
      },
    });
  }
  return new CoherentApi(direct, m.log, () => m.api.debug);
}
