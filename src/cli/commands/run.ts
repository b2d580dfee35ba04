// `dmalab run` and `dmalab demo`: boot a machine with a kernel profile, run a seeded DMA
// workload on its devices, and report mappings, bounces, pool pressure, throughput and the
// integrity check. Corrupt bytes make the command fail with a fault (exit 3).

import { Option, type Command } from "commander";
import { FaultError, UsageError, hex } from "../../errors.js";
import { formatBootReport, type BootReport, type XenRole } from "../../machine/boot.js";
import { buildMachine, machineSpec, type BuiltMachine, type MachineSpec } from "../../machine/builder.js";
import type { MachineDevice } from "../../machine/machine.js";
import type { CoherentTarget } from "../../workload/coherent.js";
import { MachineDmaTarget } from "../../machine/dma-target.js";
import { formatSize } from "../../machine/units.js";
import { WORKLOADS, isWorkloadName, runWorkload, type WorkloadName, type WorkloadStats } from "../../workload/index.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { out, printJson } from "../output.js";
import { formatDmaDebug, releaseDrivers } from "../dma-debug-report.js";
import type { DmaDebugSummary } from "../../dma/debug.js";
import { parseIntArg } from "../parse.js";
import { createProgress } from "../progress.js";
import { addReportOptions, parseReportFlags, reportConfig, type ReportArgs, type ReportFlags } from "../report-options.js";
import { writeReport } from "../../report/html.js";
import { REPORT_SCHEMA, type ReportData, type RunSection } from "../../report/model.js";
import { PoolRecorder } from "../../report/recorder.js";
import { openTrace } from "../../trace/trace.js";

export const DEFAULT_OPS = 4096;
export const DEFAULT_SEED = 1;

/** Raw flag values as commander hands them over (strings), validated by parseRunArgs. */
export interface RunFlags extends MachineFlags, ReportFlags {
  workload?: string;
  ops?: string;
  seed?: string;
  device?: string;
  json?: boolean;
}

export interface RunArgs {
  /** the machine to build, checked */
  spec: MachineSpec;
  workload: WorkloadName;
  ops: number;
  seed: number;
  devices?: string[];
  json: boolean;
  /** --report, --trace, --quiet (absent: none of them) */
  show?: ReportArgs;
}

/** Checks every flag and resolves the machine before anything is built. */
export function parseRunArgs(f: RunFlags): RunArgs {
  const workload = f.workload ?? "ring";
  if (!isWorkloadName(workload)) throw new UsageError(`--workload '${workload}': expected one of ${WORKLOADS.join(", ")}`);
  const ops = f.ops === undefined ? DEFAULT_OPS : parseIntArg("--ops", f.ops, 1, 100_000_000);
  const seed = f.seed === undefined ? DEFAULT_SEED : parseIntArg("--seed", f.seed, 0, 0xffff_ffff);
  const a: RunArgs = { spec: machineSpec(machineConfig(f)), workload, ops, seed, json: f.json === true, show: parseReportFlags(f) };
  if (f.device !== undefined) a.devices = f.device.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return a;
}

export interface RunReport extends Omit<WorkloadStats, "devices" | "firstCorruption"> {
  schema: "dmalab/run@1";
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
  /** the first corrupt byte, its DMA address as "0x…" */
  firstCorruption: (Omit<Corruption, "dma"> & { dma: string }) | null;
  boot: Pick<BootReport, "outcome" | "zones" | "swiotlb" | "decisions" | "devices">;
  /** the whole kernel log: the boot's lines, then those the workload printed */
  kernelLog: string[];
  /** how many of kernelLog's lines the boot printed (the rest came during the run) */
  bootLogLines: number;
  warnings: string[];
  /** with --dma-debug: every report, printed or not */
  dmaDebug?: DmaDebugSummary;
}

type Corruption = NonNullable<WorkloadStats["firstCorruption"]>;

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
  const show = a.show;
  const rec = show?.report !== undefined ? new PoolRecorder() : null;
  const trace = show?.trace !== undefined ? openTrace(show.trace, show.traceFormat) : null;
  // report and trace listen from before the boot: its hypercalls and kernel log are theirs too
  const built = buildMachine(a.spec, rec === null && trace === null ? undefined : (mm) => {
    rec?.attach(mm);
    trace?.attach(mm);
  });
  const br = built.report;
  const m = built.machine;
  const traceWarnings: string[] = [];
  if (br.outcome === "fault") {
    if (trace) traceWarnings.push(...trace.finish());
    if (rec && show?.report !== undefined) {
      const run = rec.finish([], [...br.kernelLog, ...(br.fault?.oops ?? [])], [["outcome", `boot fault: ${br.fault?.message ?? "unknown"}`]]);
      writeReport(show.report, runReportData(a, built, run));
    }
    throw new BootFaultError(br);
  }
  rec?.start();
  trace?.start();
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
  const progress = createProgress({ total: a.ops, label: "run", unit: "ops", quiet: show?.quiet, json: a.json });
  try {
    stats = runWorkload(
      t,
      devs,
      { workload: a.workload, ops: a.ops, seed: a.seed, ...(progress.shown ? { progress: (d: number) => progress.update(d) } : {}) },
      { coherent: coherentTarget(built) },
    );
  } finally {
    progress.stop();
    t.close();
    if (trace) traceWarnings.push(...trace.finish());
  }
  const dmaDebug = releaseDrivers(m);
  const ramBytes = a.spec.desc.ram.reduce((s, b) => s + b.size, 0);
  const fc = stats.firstCorruption;
  const report: RunReport = {
    schema: "dmalab/run@1",
    machine: m.desc.name,
    kernel: br.kernel,
    xen: br.xen,
    ...stats,
    firstCorruption: fc === null ? null : { ...fc, dma: hex(fc.dma) },
    io_tlb_nslabs: m.swiotlb.defaultMem?.nslabs ?? 0,
    allocatedBytes: m.memory.allocatedBytes,
    ramBytes,
    peakRssKiB: process.resourceUsage().maxRSS,
    boot: bootSummary(br),
    kernelLog: [...m.log.lines],
    bootLogLines: bootLines,
    warnings: [...br.warnings, ...traceWarnings],
  };
  if (dmaDebug !== null) report.dmaDebug = dmaDebug;
  if (rec && show?.report !== undefined) {
    const summary: [string, string][] = [
      ["workload", `${a.workload}, ${num(a.ops)} ops, seed ${a.seed}`],
      ["mappings", `${num(report.mappings)} (bounced ${num(report.bounced)}, direct ${num(report.direct)}, failed ${num(report.mapErrors)})`],
      ["bytes bounced", `${num(report.bouncedBytes)} (${formatSize(report.bouncedBytes)})`],
      ["io_tlb_used_hiwater", `${num(report.io_tlb_used_hiwater)} of ${num(report.io_tlb_nslabs)} slots`],
      ["pool full", num(report.poolFull)],
      ["integrity", report.corruptBytes === 0 ? `OK, ${num(report.verifiedBytes)} bytes verified` : `FAILED: ${num(report.corruptBytes)} corrupt bytes`],
      ["throughput", `${num(report.mappingsPerSec)} mappings/s (${report.elapsedMs.toFixed(0)} ms)`],
    ];
    const devices = report.devices.map((d) => ({ name: d.device, bounced: d.bounced, direct: d.direct, failed: d.mapErrors }));
    writeReport(show.report, runReportData(a, built, rec.finish(devices, report.kernelLog, summary)));
  }
  return { report, bootReport: br };
}

/** dma_alloc_coherent / dma_free_coherent of the booted kernel, for the coherent workload. */
function coherentTarget(b: BuiltMachine): CoherentTarget<MachineDevice> {
  const c = b.coherent;
  return {
    alloc: (d, size) => c.dmaAllocAttrs(d.dev, size),
    free: (d, size, phys, dma) => c.dmaFreeAttrs(d.dev, size, phys, dma),
    usedPages: () => c.direct.pages.usedPages,
  };
}

function runReportData(a: RunArgs, built: ReturnType<typeof buildMachine>, run: RunSection): ReportData {
  const m = built.machine;
  const extra: [string, string][] = [
    ["workload", `${a.workload}, ${a.ops} ops`],
    ["CPUs", String(m.cpus)],
  ];
  return {
    schema: REPORT_SCHEMA,
    kind: "run",
    title: `dmalab run: ${a.workload} on ${m.desc.name}, kernel ${m.profile.version}${built.spec.xen !== "none" ? `, Xen ${built.spec.xen}` : ""}`,
    config: reportConfig(built.spec, built, extra, a.seed),
    run,
    notes: [],
  };
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
        (c ? `; first: ${c.device} ${c.direction} DMA ${c.dma}+${c.offset} expected ${hex(c.expected)} got ${hex(c.got)}${c.bounced ? " (bounced)" : ""}` : ""),
    );
  }
  const runLog = r.kernelLog.slice(r.bootLogLines);
  if (runLog.length > 0) {
    o.push(`kernel log during the run (${runLog.length} line${runLog.length === 1 ? "" : "s"}${runLog.length > 10 ? ", first 10" : ""}):`);
    for (const l of runLog.slice(0, 10)) o.push(`  ${l}`);
  }
  if (r.dmaDebug) o.push(...formatDmaDebug(r.dmaDebug, []));
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
      if (a.json) printJson(bootFaultJson(e.bootReport));
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

/** What a run document carries of its boot (the rest of the boot report is its own keys). */
function bootSummary(br: BootReport): RunReport["boot"] {
  return { outcome: br.outcome, zones: br.zones, swiotlb: br.swiotlb, decisions: br.decisions, devices: br.devices };
}

/** `run --json` when the boot faulted: no workload ran; the boot's account and its fault. */
export function bootFaultJson(br: BootReport): object {
  return {
    schema: "dmalab/run@1",
    machine: br.machine,
    kernel: br.kernel,
    xen: br.xen,
    boot: bootSummary(br),
    fault: br.fault,
    kernelLog: br.kernelLog,
    warnings: br.warnings,
  };
}

/** Corrupt bytes are a fault of the emulated DMA path: exit 3, naming the first bad byte. */
export function checkIntegrity(r: Pick<RunReport, "corruptBytes" | "verifiedBytes" | "firstCorruption">): void {
  if (r.corruptBytes === 0) return;
  const c = r.firstCorruption;
  throw new FaultError(
    `integrity check failed: ${r.corruptBytes} of ${r.verifiedBytes} verified bytes corrupt` +
      (c ? `; first at ${c.device} ${c.direction} DMA ${c.dma}+${c.offset}: expected ${hex(c.expected)}, got ${hex(c.got)}` : ""),
  );
}

function addRunOptions(c: Command, withMachine: boolean): Command {
  return addMachineOptions(c, { machine: withMachine })
    .addOption(new Option("--workload <name>", "workload").choices(WORKLOADS).default("ring"))
    .option("--ops <n>", "operations to run", String(DEFAULT_OPS))
    .option("--seed <s>", "xorshift32 seed (decimal or 0x hex)", String(DEFAULT_SEED))
    .option("--device <names>", "comma-separated devices to drive (default: every probed device)")
    .option("--json", "one JSON document on stdout");
}

function addRunShowOptions(c: Command): Command {
  return addReportOptions(c, { trace: true });
}

export function registerRun(program: Command): void {
  addRunShowOptions(addRunOptions(program.command("run").description("run a DMA workload on an emulated machine and check every byte"), true)).action((flags: RunFlags) => {
    runAndPrint(parseRunArgs(flags));
  });
  addRunShowOptions(addRunOptions(
    program.command("demo").description("`run` on the embedded demo board (demo-8g): 8 GiB at 0x4000_0000, a 32-bit NIC that bounces and a 64-bit NVMe that does not"),
    false,
  )).action((flags: RunFlags) => {
    runAndPrint(parseRunArgs({ ...flags, machine: undefined }));
  });
}
