// The options that say which machine to build, shared by every command that boots one, with
// one set of defaults and one set of checks (the builder's): --machine, --kernel, --xen,
// --feature, --xen-version, --contig, --xen-debug, --swiotlb, --strict.

import { Option, type Command } from "commander";
import { CONTIG_MODES, DEFAULT_KERNEL, DEFAULT_MACHINE, type MachineConfig } from "../machine/builder.js";
import { XEN_ROLES } from "../machine/boot.js";
import { DIRECT_MAP_FEATURES } from "../machine/xen-boot.js";
import { KERNEL_VERSIONS } from "../swiotlb/profile.js";
import { XEN_VERSIONS } from "../xen/hypervisor/version.js";
import { parseMemFlag } from "./parse.js";

/** Raw flag values as commander hands them over. */
export interface MachineFlags {
  machine?: string;
  mem?: string;
  kernel?: string;
  xen?: string;
  feature?: string[];
  xenVersion?: string;
  contig?: string;
  xenDebug?: boolean;
  swiotlb?: string;
  strict?: boolean;
  /** --dma-debug (true) or --dma-debug=strict|report */
  dmaDebug?: boolean | string;
}

export interface MachineOptionSet {
  /** --machine (demo takes none: it is the demo board) */
  machine?: boolean;
  /** --contig (boot and guest: the Xen guest calls xen_create_contiguous_region) */
  contig?: boolean;
  /** --xen-debug (guest: the register clobbering is visible only to guest code) */
  xenDebug?: boolean;
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

export function addMachineOptions(c: Command, set: MachineOptionSet = {}): Command {
  if (set.machine !== false)
    c.addOption(new Option("--machine <name|file>", "machine: a name from `dmalab machines` or a JSON file").default(DEFAULT_MACHINE));
  c.addOption(new Option("--kernel <version>", "kernel profile").choices(KERNEL_VERSIONS).default(DEFAULT_KERNEL));
  if (set.machine !== false) c.option("--mem <size>", "with a device tree whose firmware fills in the memory node: the RAM size (e.g. 1GiB, 0x4000_0000)");
  // no default value: a device tree with Xen's node implies dom0, anything else none
  c.addOption(new Option("--xen <role>", "Xen role of the booting kernel (default: none; dom0 for a device tree with a xen,xen node)").choices(XEN_ROLES));
  c.addOption(new Option("--feature <name>", "with --xen: make the domain direct-mapped or not (repeatable; the last wins)").choices(DIRECT_MAP_FEATURES).argParser(collect));
  c.addOption(new Option("--xen-version <v>", "with --xen: the Xen release (default: the machine's, else 4.15)").choices(XEN_VERSIONS));
  if (set.contig === true)
    c.addOption(new Option("--contig <mode>", "with --xen: xen_create_contiguous_region as on arm (the era's stub) or as x86 PV (XENMEM_exchange)").choices(CONTIG_MODES));
  if (set.xenDebug === true) c.option("--xen-debug", "with --xen: a debug build of Xen, which clobbers the used argument registers and x16 with 0xDEADBEEF");
  c.option("--swiotlb <value>", "the kernel's `swiotlb=` value (replaces the machine's)");
  c.option("--strict", "text `swiotlb=` ignores is an error, not a warning");
  addDmaDebugOption(c);
  return c;
}

/** --dma-debug[=strict]: CONFIG_DMA_API_DEBUG (the value must follow '=' or come after the positional arguments) */
export function addDmaDebugOption(c: Command): Command {
  return c.addOption(
    new Option("--dma-debug [mode]", "CONFIG_DMA_API_DEBUG: report misuse in the kernel's words and go on (report, the default), or refuse it (strict)").choices(DMA_DEBUG_MODES),
  );
}

const DMA_DEBUG_MODES = ["report", "strict"] as const;

/** The builder's dmaDebug from --dma-debug's raw value. */
export function dmaDebugConfig(v: boolean | string | undefined): MachineConfig["dmaDebug"] {
  if (v === undefined) return undefined;
  return v === "strict" ? "strict" : true;
}

/** The builder's configuration from the flags (the builder checks the combinations). */
export function machineConfig(f: MachineFlags): MachineConfig {
  const c: MachineConfig = { strict: f.strict === true };
  if (f.machine !== undefined) c.machine = f.machine;
  if (f.mem !== undefined) c.mem = parseMemFlag(f.mem);
  if (f.kernel !== undefined) c.kernel = f.kernel;
  if (f.xen !== undefined) c.xen = f.xen;
  if (f.feature !== undefined) c.features = f.feature;
  if (f.xenVersion !== undefined) c.xenVersion = f.xenVersion;
  if (f.contig !== undefined) c.contig = f.contig;
  if (f.xenDebug === true) c.xenDebug = true;
  if (f.swiotlb !== undefined) c.swiotlb = f.swiotlb;
  const dd = dmaDebugConfig(f.dmaDebug);
  if (dd !== undefined) c.dmaDebug = dd;
  return c;
}
