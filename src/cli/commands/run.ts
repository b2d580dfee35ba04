// `dmalab run` and `dmalab demo`: boot a machine with a kernel profile, run a seeded DMA
// workload on its devices, and report mappings, bounces, pool pressure, throughput and the
// integrity check. Corrupt bytes make the command fail with a fault (exit 3).

import type { Command } from "commander";
import { FaultError, UsageError, hex } from "../../errors.js";
import {
  DIRECT_MAP_FEATURES,
  bootMachine,
  bootWithXen,
  formatBootReport,
  XEN_ROLES,
  type BootReport,
  type DirectMapFeature,
  type XenBootConfig,
  type XenRole,
} from "../../machine/boot.js";

/** what `run --xen` passes on to the Xen guest boot */
export type XenRunConfig = Omit<XenBootConfig, "role" | "contiguousRegion">;
import { demoMachine } from "../../machine/demo.js";
import { MachineDmaTarget } from "../../machine/dma-target.js";
import { Machine } from "../../machine/machine.js";
import { resolveMachine, type MachineDesc } from "../../machine/preset.js";
import { formatSize } from "../../machine/units.js";
import { KERNEL_VERSIONS, isKernelVersion, kernelProfile } from "../../swiotlb/profile.js";
import { WORKLOADS, isWorkloadName, runWorkload, type WorkloadName, type WorkloadStats } from "../../workload/index.js";
import { out, printJson } from "../output.js";

export const DEFAULT_OPS = 4096;
export const DEFAULT_SEED = 1;

/** Raw flag values as commander hands them over (strings), validated by parseRunArgs. */
export interface RunFlags {
  machine?: string;
  kernel?: string;
  workload?: string;
  ops?: string;
  seed?: string;
  swiotlb?: string;
  xen?: string;
  /** with --xen: direct_mapped / not_direct_mapped (repeatable) */
  feature?: string[];
  xenVersion?: string;
  device?: string;
  strict?: boolean;
  json?: boolean;
}

export interface RunArgs {
  /** undefined = the embedded demo machine */
  machine: MachineDesc;
  kernel: string;
  workload: WorkloadName;
  ops: number;
  seed: number;
  swiotlb?: string;
  xen: XenRole;
  /** Xen boot settings (--feature, --xen-version), with --xen dom0|domU */
  xenConfig?: XenRunConfig;
  devices?: string[];
  strict: boolean;
  json: boolean;
}

function parseIntFlag(flag: string, v: string, min: number, max: number): number {
  const s = v.trim().replace(/_/g, "");
  const n = /^0x[0-9a-f]+$/i.test(s) ? Number.parseInt(s.slice(2), 16) : /^[0-9]+$/.test(s) ? Number(s) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag} '${v}': must be an integer ${min}..${max}`);
  return n;
}

export function parseRunArgs(f: RunFlags, defaultMachine?: () => MachineDesc): RunArgs {
  const kernel = f.kernel ?? "6.x";
  if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  const workload = f.workload ?? "ring";
  if (!isWorkloadName(workload)) throw new UsageError(`--workload '${workload}': expected one of ${WORKLOADS.join(", ")}`);
  const ops = f.ops === undefined ? DEFAULT_OPS : parseIntFlag("--ops", f.ops, 1, 100_000_000);
  const seed = f.seed === undefined ? DEFAULT_SEED : parseIntFlag("--seed", f.seed, 0, 0xffff_ffff);
  const xen = f.xen ?? "none";
  if (!(XEN_ROLES as readonly string[]).includes(xen)) throw new UsageError(`--xen '${xen}': expected one of ${XEN_ROLES.join(", ")}`);
  if (f.swiotlb !== undefined && /\s/.test(f.swiotlb.trim())) throw new UsageError(`--swiotlb '${f.swiotlb}': one swiotlb= value, without spaces`);
  const machine = f.machine !== undefined ? resolveMachine(f.machine) : (defaultMachine ?? demoMachine)();
  const a: RunArgs = { machine, kernel, workload, ops, seed, xen: xen as XenRole, strict: f.strict === true, json: f.json === true };
  if (f.swiotlb !== undefined) a.swiotlb = f.swiotlb.trim().replace(/^swiotlb=/, "");
  const features = (f.feature ?? []).map((v) => {
    if (!(DIRECT_MAP_FEATURES as readonly string[]).includes(v)) throw new UsageError(`--feature '${v}': expected ${DIRECT_MAP_FEATURES.join(" or ")}`);
    return v as DirectMapFeature;
  });
  if ((features.length > 0 || f.xenVersion !== undefined) && xen === "none") throw new UsageError("--feature and --xen-version need --xen dom0 or --xen domU");
  if (xen !== "none") {
    a.xenConfig = { features };
    if (f.xenVersion !== undefined) a.xenConfig.xenVersion = f.xenVersion;
  }
  if (f.device !== undefined) a.devices = f.device.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return a;
}

export interface RunReport extends Omit<WorkloadStats, "devices"> {
  machine: string;
  kernel: string;
  xen: XenRole;
  io_tlb_nslabs: number;
  /** host bytes backing emulated RAM (sparse: only touched 2 MiB chunks) */
  allocatedBytes: number;
  ramBytes: number;
  /** peak resident set size of this process, KiB (process.resourceUsage().maxRSS) */
  peakRssKiB: number;
  devices: WorkloadStats["devices"];
  boot: Pick<BootReport, "zones" | "swiotlb" | "decisions" | "devices">;
  kernelLog: string[];
  /** kernel-log lines printed while the workload ran ("swiotlb buffer is full", overflows...) */
  runLog: string[];
  warnings: string[];
}

/** The boot faulted before any workload ran; carries the oops-like report. */
export class BootFaultError extends FaultError {
  constructor(readonly bootReport: BootReport) {
    super(`boot of ${bootReport.machine} with kernel ${bootReport.kernel} faulted: ${bootReport.fault?.message ?? "unknown fault"}`);
  }
}

/**
 * Boots and runs; returns the report. Throws UsageError/InputError for bad arguments, and
 * FaultError when the boot faults (the oops is in the message).
 */
export function executeRun(a: RunArgs): { report: RunReport; bootReport: BootReport } {
  const bootOpts: Parameters<typeof bootMachine>[1] = { xen: a.xen, strict: a.strict };
  if (a.swiotlb !== undefined) bootOpts.swiotlbCmdline = a.swiotlb;
  let m: Machine;
  let br: BootReport;
  if (a.xen === "none") {
    m = new Machine(a.machine, kernelProfile(a.kernel));
    br = bootMachine(m, bootOpts);
  } else {
    // a Xen guest: the kernel's machine is the domain's view; dom0 and direct-mapped domUs map
    // through swiotlb-xen (bus address = machine address), other domUs through dma-direct
    // with their devices behind the domain's stage-2 table
    const { xen: _x, ...rest } = bootOpts;
    const r = bootWithXen(a.machine, kernelProfile(a.kernel), a.xen, a.xenConfig ?? {}, rest);
    m = r.machine;
    br = r.report;
  }
  if (br.outcome === "fault") throw new BootFaultError(br);
  let devs = m.devices.filter((d) => d.probed);
  if (a.devices) {
    const wanted = a.devices.map((n) => m.device(n));
    for (const w of wanted) if (!w.probed) throw new UsageError(`--device ${w.desc.name}: its driver failed to probe (error ${w.probeError})`);
    devs = wanted;
  }
  if (devs.length === 0) throw new UsageError(`machine ${m.desc.name}: no device probed, nothing to run on`);
  const bootLines = m.log.lines.length;
  const t = new MachineDmaTarget(m);
  let stats: WorkloadStats;
  try {
    stats = runWorkload(t, devs, { workload: a.workload, ops: a.ops, seed: a.seed });
  } finally {
    t.close();
  }
  const ramBytes = a.machine.ram.reduce((s, b) => s + b.size, 0);
  const report: RunReport = {
    machine: m.desc.name,
    kernel: a.kernel,
    xen: a.xen,
    ...stats,
    io_tlb_nslabs: m.swiotlb.defaultMem?.nslabs ?? 0,
    allocatedBytes: m.memory.allocatedBytes,
    ramBytes,
    peakRssKiB: process.resourceUsage().maxRSS,
    boot: { zones: br.zones, swiotlb: br.swiotlb, decisions: br.decisions, devices: br.devices },
    kernelLog: [...m.log.lines],
    runLog: m.log.lines.slice(bootLines),
    warnings: br.warnings,
  };
  return { report, bootReport: br };
}

const num = (n: number): string => Math.round(n).toLocaleString("en-US");

export function formatRunReport(r: RunReport, br: BootReport): string[] {
  const o: string[] = [];
  o.push(`dmalab run: workload ${r.workload}, ${num(r.ops)} ops, seed ${r.seed}`);
  o.push(...formatBootReport(br));
  o.push("");
  o.push(`mappings          ${num(r.mappings)} (bounced ${num(r.bounced)}, direct ${num(r.direct)}, failed ${num(r.mapErrors)})`);
  o.push(`bytes bounced     ${num(r.bouncedBytes)} (${formatSize(r.bouncedBytes)}); direct ${num(r.directBytes)} (${formatSize(r.directBytes)})`);
  o.push(`io_tlb_used_hiwater ${num(r.io_tlb_used_hiwater)} slots of ${num(r.io_tlb_nslabs)}; io_tlb_used after the run ${num(r.io_tlb_used_after)}`);
  o.push(`pool full         ${num(r.poolFull)}`);
  o.push(`throughput        ${num(r.mappingsPerSec)} mappings/s, ${(r.bytesPerSec / 1e6).toFixed(1)} MB/s mapped (${r.elapsedMs.toFixed(0)} ms)`);
  for (const d of r.devices)
    o.push(`  ${d.device.padEnd(28)} mappings ${num(d.mappings)}, bounced ${num(d.bounced)} (${formatSize(d.bouncedBytes)}), direct ${num(d.direct)}, failed ${num(d.mapErrors)}`);
  if (r.corruptBytes === 0)
    o.push(`integrity         OK: ${num(r.verifiedBytes)} bytes verified (${num(r.verifiedBouncedBytes)} through bounce buffers), 0 corrupt`);
  else {
    const c = r.firstCorruption;
    o.push(
      `integrity         FAILED: ${num(r.corruptBytes)} corrupt bytes of ${num(r.verifiedBytes)} verified` +
        (c ? `; first: ${c.device} ${c.direction} DMA ${hex(c.dma)}+${c.offset} expected ${hex(c.expected)} got ${hex(c.got)}${c.bounced ? " (bounced)" : ""}` : ""),
    );
  }
  if (r.runLog.length > 0) {
    o.push(`kernel log during the run (${r.runLog.length} line${r.runLog.length === 1 ? "" : "s"}${r.runLog.length > 10 ? ", first 10" : ""}):`);
    for (const l of r.runLog.slice(0, 10)) o.push(`  ${l}`);
  }
  o.push(`memory            ${formatSize(r.allocatedBytes)} of ${formatSize(r.ramBytes)} RAM backed; peak RSS ${formatSize(r.peakRssKiB * 1024)}`);
  return o;
}

/** The whole command: print, then fail with a fault when bytes were corrupted. */
export function runAndPrint(a: RunArgs): void {
  let res: ReturnType<typeof executeRun>;
  try {
    res = executeRun(a);
  } catch (e) {
    // the oops goes to stdout (the report), the one-line error to stderr (main.ts)
    if (e instanceof BootFaultError) {
      if (a.json) printJson(e.bootReport);
      else for (const l of formatBootReport(e.bootReport)) out(l);
    }
    throw e;
  }
  const { report, bootReport } = res;
  for (const w of report.warnings) process.stderr.write(`dmalab: warning: ${w}\n`);
  if (a.json) printJson(report);
  else for (const l of formatRunReport(report, bootReport)) out(l);
  checkIntegrity(report);
}

/** Corrupt bytes are a fault of the emulated DMA path: exit 3, naming the first bad byte. */
export function checkIntegrity(r: Pick<RunReport, "corruptBytes" | "verifiedBytes" | "firstCorruption">): void {
  if (r.corruptBytes === 0) return;
  const c = r.firstCorruption;
  throw new FaultError(
    `integrity check failed: ${r.corruptBytes} of ${r.verifiedBytes} verified bytes corrupt` +
      (c ? `; first at ${c.device} ${c.direction} DMA ${hex(c.dma)}+${c.offset}: expected ${hex(c.expected)}, got ${hex(c.got)}` : ""),
  );
}

function addRunOptions(c: Command, withMachine: boolean): Command {
  if (withMachine) c.option("--machine <preset|file>", "machine preset name or JSON file (default: the embedded demo board)");
  return c
    .option("--kernel <version>", `kernel profile: ${KERNEL_VERSIONS.join(", ")}`, "6.x")
    .option("--workload <name>", `workload: ${WORKLOADS.join(", ")}`, "ring")
    .option("--ops <n>", "operations to run", String(DEFAULT_OPS))
    .option("--seed <s>", "xorshift32 seed (decimal or 0x hex)", String(DEFAULT_SEED))
    .option("--swiotlb <str>", "kernel `swiotlb=` value (replaces the machine's)")
    .option("--xen <role>", `Xen role of the kernel: ${XEN_ROLES.join(", ")}`, "none")
    .option("--feature <name>", "with --xen: make the domain direct_mapped or not_direct_mapped (repeatable; the last wins)", (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option("--xen-version <v>", "with --xen: the Xen release (default: the machine's, else 4.15)")
    .option("--device <names>", "comma-separated devices to drive (default: every probed device)")
    .option("--strict", "text `swiotlb=` ignores is an error, not a warning")
    .option("--json", "one JSON object on stdout");
}

export function registerRun(program: Command): void {
  addRunOptions(program.command("run").description("run a DMA workload on an emulated machine and check every byte"), true).action(
    (flags: RunFlags) => {
      runAndPrint(parseRunArgs(flags));
    },
  );
  addRunOptions(
    program.command("demo").description("`run` on the embedded demo board: 8 GiB at 0x4000_0000, a 32-bit NIC that bounces and a 64-bit NVMe that does not"),
    false,
  ).action((flags: RunFlags) => {
    runAndPrint(parseRunArgs({ ...flags, machine: undefined }, demoMachine));
  });
}
