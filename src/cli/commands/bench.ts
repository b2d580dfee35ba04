// `dmalab bench`: the kernel's dma_map_benchmark emulated (same letters, ranges and report),
// the throughput workloads (--workload pingpong|ring), the regression suite (--suite, what
// `npm run bench` runs) and --compare against a saved summary.

import { writeFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { UsageError } from "../../errors.js";
import { DEFAULT_KERNEL, DEFAULT_MACHINE, machineSpec } from "../../machine/builder.js";
import { KERNEL_VERSIONS } from "../../swiotlb/profile.js";
import { checkInputFile } from "../input-file.js";
import { checkWritable, parseIntArg, parseMemFlag } from "../parse.js";
import { checkToolArgs, parseToolArgs, type RawToolArgs } from "../../bench/kernel-tool.js";
import {
  compareResults,
  formatCompare,
  fmtBytesRate,
  fmtRate,
  loadSummary,
  medianRun,
  workloadKey,
  workloadLines,
  type CompareRow,
  type WorkloadName,
  type WorkloadResult,
} from "../../bench/result.js";
import { entriesOf, runSuite } from "../../bench/suite.js";
import { guestBench, guestWorkloadLines } from "../../bench/guest-workload.js";
import { runKernelBench, runWorkload } from "../../bench/threads.js";
import { out, printJson } from "../output.js";
import { onBenchTick } from "../../bench/job.js";
import { BenchCollector } from "../../report/bench.js";
import { writeReport } from "../../report/html.js";
import { REPORT_SCHEMA } from "../../report/model.js";
import { createProgress } from "../progress.js";
import { addReportOptions, parseReportFlags, reportConfig, type ReportArgs, type ReportFlags } from "../report-options.js";
import { addDmaDebugOption, dmaDebugConfig } from "../machine-options.js";
import { formatDmaDebug } from "../dma-debug-report.js";

interface BenchOpts extends ReportFlags {
  t?: string;
  s?: string;
  n?: string;
  b?: string;
  d?: string;
  x?: string;
  g?: string;
  m?: string;
  machine: string;
  mem?: string;
  kernel: string;
  swiotlb?: string;
  areas?: string;
  json?: boolean;
  workload?: string;
  size?: string;
  compare?: string;
  suite?: boolean;
  out?: string;
  runs?: string;
  dmaDebug?: boolean | string;
}

/** runs --compare takes at least (and by default): its noise band is their spread */
const MIN_COMPARE_RUNS = 3;

function intOpt(name: string, v: string | undefined, min: number, max: number): number | undefined {
  return v === undefined ? undefined : parseIntArg(name, v, min, max);
}

export function registerBench(program: Command): void {
  const c = program
    .command("bench")
    .description(
      "map/unmap benchmark: the kernel's dma_map_benchmark emulated (-t -s -n -b -d -x -g), or a throughput workload (--workload), or the suite",
    )
    .option("-t <threads>", "threads, 1-1024 (thread i is CPU i)")
    .option("-s <seconds>", "seconds, 1-300 (kernel benchmark default 20; workloads default 2, suite 1 per run)")
    .option("-n <node>", "NUMA node: -1 or 0 (one node)")
    .option("-b <bits>", "DMA mask bits, 20-64 (default 32)")
    .option("-d <dir>", "direction: 0 BIDIRECTIONAL, 1 TO_DEVICE, 2 FROM_DEVICE")
    .option("-x <ns>", "transfer delay in ns, 0-10000000")
    .option("-g <pages>", "granule in pages, 1-1024 (SG_MODE: scatterlist entries of one page)")
    .option("-m <mode>", "map mode of newer kernels' tool: 0 SINGLE_MODE, 1 SG_MODE (dma_map_sg)")
    .option("--machine <name|file>", "machine: a name from `dmalab machines` or a JSON file", DEFAULT_MACHINE)
    .option("--mem <size>", "with a device tree whose firmware fills in the memory node: the RAM size")
    .addOption(new Option("--kernel <version>", "kernel profile").choices(KERNEL_VERSIONS).default(DEFAULT_KERNEL))
    .option("--swiotlb <value>", "the swiotlb= kernel parameter")
    .option("--areas <n>", "swiotlb areas (6.x)")
    .option("--json", "print JSON")
    .addOption(new Option("--workload <name>", "throughput workload; guest: trap costs from guest loops on the CPU").choices(["pingpong", "ring", "guest"]))
    .option("--size <bytes>", "pingpong buffer size: 1 up to the pool's swiotlb_max_mapping_size (256 KiB)", "64")
    .option("--compare <file>", "compare with a saved summary (bench/baseline.json): ratio and noise band per workload; exit 1 on a regression outside the band")
    .option("--suite", "run the whole regression set (medians of --runs runs)")
    .option("--out <file>", "write the JSON summary (or result) to this file")
    .option("--runs <n>", "runs per workload for --suite / --compare (medians; --compare: 3 or more, the noise band is their spread)");
  addDmaDebugOption(addReportOptions(c)).action(async (o: BenchOpts) => {
    await withBenchReport(o, (collector) => bench(o, collector));
  });
}

/**
 * --report and the progress bar around one bench command: the paths are checked first, the
 * bar follows the seconds measured (redrawn from the timed loops and a timer), the report is
 * written when the command's own output is done.
 */
async function withBenchReport(o: BenchOpts, body: (c: BenchCollector | null) => Promise<void>): Promise<void> {
  const show: ReportArgs = parseReportFlags(o);
  const collector = show.report !== undefined ? new BenchCollector() : null;
  const secs = o.s === undefined ? undefined : Number(o.s);
  const workloadMode = o.workload !== undefined || o.suite === true || o.compare !== undefined;
  // a guess of the measured seconds (copy ceiling, run, latency sample); the bar never passes it
  const total = o.suite === true || (o.compare !== undefined && o.workload === undefined) ? 0 : workloadMode ? (secs ?? 2) * 1.25 + 0.5 : (secs ?? 20);
  const progress = createProgress({ total: Math.ceil(total), label: "bench", unit: "s", quiet: show.quiet, json: o.json });
  const t0 = performance.now();
  const tick = (): void => progress.update(Math.min(total * 0.99, (performance.now() - t0) / 1000));
  let timer: NodeJS.Timeout | undefined;
  if (progress.shown) {
    onBenchTick(tick);
    timer = setInterval(tick, 200);
    timer.unref();
  }
  try {
    await body(collector);
  } finally {
    onBenchTick(null);
    if (timer !== undefined) clearInterval(timer);
    progress.stop();
  }
  if (collector !== null && show.report !== undefined) {
    const spec = machineSpec({ machine: o.machine, kernel: o.kernel, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}), ...(o.mem !== undefined ? { mem: parseMemFlag(o.mem) } : {}) });
    const extra: [string, string][] = [["mode", o.suite ? "suite" : o.workload !== undefined ? `workload ${o.workload}${o.workload === "pingpong" ? ` ${o.size ?? 64} B` : ""}` : "dma_map_benchmark"]];
    if (o.t !== undefined) extra.push(["threads", o.t]);
    if (o.areas !== undefined) extra.push(["areas", o.areas]);
    writeReport(show.report, {
      schema: REPORT_SCHEMA,
      kind: "bench",
      title: `dmalab bench on ${spec.desc.name}, kernel ${spec.profile.version}`,
      config: reportConfig(spec, null, extra),
      bench: collector.finish(),
      notes: [],
    });
  }
}

async function bench(o: BenchOpts, collector: BenchCollector | null): Promise<void> {
  const raw: RawToolArgs = { threads: o.t, seconds: o.s, node: o.n, bits: o.b, dir: o.d, xdelay: o.x, granule: o.g, mode: o.m };
  const args = parseToolArgs(raw);
  const areas = intOpt("--areas", o.areas, 1, 1024);
  // integer flags are checked even in a mode that ignores them
  // (its range, 1 to swiotlb_max_mapping_size, is checked on the machine)
  if (o.size !== undefined && !/^[0-9]{1,15}$/.test(o.size.trim())) throw new UsageError(`--size '${o.size.slice(0, 40)}': not a whole number of bytes`);
  intOpt("--runs", o.runs, 1, 100);
  const workloadMode = o.workload !== undefined || o.suite === true || o.compare !== undefined;
  // everything that can be refused is refused before the first measurement
  if (o.out !== undefined) checkWritable("--out", o.out);
  const mem = o.mem === undefined ? undefined : parseMemFlag(o.mem);
  const machineName = machineSpec({ machine: o.machine, kernel: o.kernel, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}), ...(mem !== undefined ? { mem } : {}) }).desc.name;
  if (o.compare !== undefined) checkInputFile(o.compare, { what: "benchmark summary", maxBytes: 16 << 20 });
  const base = o.compare !== undefined ? loadSummary(o.compare) : undefined;

  const dmaDebug = dmaDebugConfig(o.dmaDebug);
  if (workloadMode && dmaDebug !== undefined) throw new UsageError("--dma-debug applies to the kernel benchmark (its map/unmap go through the DMA API), not to --workload/--suite/--compare");
  if (!workloadMode) {
    checkToolArgs(args);
    const config = { machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, areas, mem, mode: "kernel" as const, ...(dmaDebug !== undefined ? { dmaDebug } : {}) };
    const r = await runKernelBench(config, args);
    collector?.addKernel(r.lines, r.pairsPerSec, r.bouncedBytesPerSec);
    if (r.error !== null) {
      for (const l of r.dmesg) out(`[dmesg] ${l}`);
      throw r.error;
    }
    if (o.json) {
      // struct map_benchmark's field names
      printJson({
        schema: "dmalab/bench@1",
        tool: "dma_map_benchmark",
        machine: machineName,
        kernel: o.kernel,
        threads: args.threads,
        seconds: args.seconds,
        node: args.node,
        dma_bits: args.bits,
        dma_dir: args.dir,
        dma_trans_ns: args.xdelay,
        granule: args.granule,
        ...(args.mode !== null ? { map_mode: args.mode } : {}),
        avg_map_100ns: Number(r.result.avgMap100ns),
        map_stddev: Number(r.result.mapStddev),
        avg_unmap_100ns: Number(r.result.avgUnmap100ns),
        unmap_stddev: Number(r.result.unmapStddev),
        loops: r.loops,
        pairsPerSec: r.pairsPerSec,
        bouncedBytesPerSec: r.bouncedBytesPerSec,
        bouncedFraction: r.bouncedFraction,
        kernelLog: r.dmesg,
        ...(r.dmaDebug !== undefined ? { dmaDebug: r.dmaDebug } : {}),
      });
      return;
    }
    for (const l of r.lines) out(l);
    out(`map+unmap pairs per second: ${Math.round(r.pairsPerSec)} (${fmtRate(r.pairsPerSec)}; ${(r.bouncedFraction * 100).toFixed(1)}% bounced)`);
    out(`bytes bounced per second: ${Math.round(r.bouncedBytesPerSec)} (${fmtBytesRate(r.bouncedBytesPerSec)})`);
    for (const l of r.dmesg) out(`[dmesg] ${l}`);
    if (r.dmaDebug !== undefined) for (const l of formatDmaDebug(r.dmaDebug, [])) out(l);
    return;
  }

  // workload modes: the kernel tool's letters that have no meaning here are refused
  for (const [k, v] of [["-n", o.n], ["-b", o.b], ["-d", o.d], ["-x", o.x], ["-g", o.g], ["-m", o.m]] as const)
    if (v !== undefined) throw new UsageError(`${k} applies to the kernel benchmark, not to --workload/--suite/--compare`);
  // -t and -s keep the tool's ranges
  checkToolArgs({ ...args, seconds: o.s === undefined ? 1 : args.seconds });
  const runs = intOpt("--runs", o.runs, 1, 100);
  // the noise band is the spread of repeated runs: one or two runs have none to speak of
  if (base !== undefined && runs !== undefined && runs < MIN_COMPARE_RUNS)
    throw new UsageError(`--runs ${runs}: --compare needs ${MIN_COMPARE_RUNS} runs or more (its noise band is their spread)`);

  if (o.suite || (o.compare !== undefined && o.workload === undefined)) {
    const progress = (l: string): void => {
      process.stderr.write(`bench: ${l}\n`);
    };
    const summary = await runSuite({
      machine: o.machine,
      kernel: o.kernel,
      swiotlb: o.swiotlb,
      runs: runs ?? (o.suite ? 5 : MIN_COMPARE_RUNS),
      seconds: o.s === undefined ? 1 : args.seconds,
      entries: base !== undefined && !o.suite ? entriesOf(base) : undefined,
      guest: o.suite === true,
      progress,
    });
    for (const [k, r] of Object.entries(summary.workloads)) collector?.addWorkload(k, r);
    if (o.out !== undefined) writeFileSync(o.out, JSON.stringify(summary, null, 2) + "\n");
    const rows = base !== undefined ? compareResults(summary.workloads, base) : undefined;
    if (o.json) printJson({ schema: "dmalab/bench@1", ...summary, ...(rows !== undefined ? { compare: rows } : {}) });
    else {
      for (const [k, r] of Object.entries(summary.workloads))
        out(`${k.padEnd(20)} ${fmtRate(r.pairsPerSec).padStart(10)} pairs/s  ${fmtBytesRate(r.bouncedBytesPerSec).padStart(11)} bounced  per CPU-s ${fmtBytesRate(r.bouncedBytesPerCpuSec)} of copy limit ${fmtBytesRate(r.copyBytesPerSec)}  fraction ${r.fractionOfCopyLimit.toFixed(3)}  p50 ${r.p50Ns.toFixed(0)} ns  p99 ${r.p99Ns.toFixed(0)} ns  heap/pair ${r.heapBytesPerPair.toFixed(2)}`);
      if (summary.ringScaling2x2 !== undefined) out(`ring scaling, 2 threads 2 areas vs 1 thread: ${summary.ringScaling2x2.toFixed(2)}x`);
      if (summary.copyScaling2x2 !== undefined) out(`copy limit scaling, same runs (the memory system's own): ${summary.copyScaling2x2.toFixed(2)}x`);
      if (summary.guest !== undefined) for (const l of guestWorkloadLines(summary.guest)) out(l);
    }
    if (rows !== undefined) {
      if (!o.json) for (const l of formatCompare(rows)) out(l);
      flagRegression(rows);
    }
    return;
  }

  if (o.workload === "guest") return guestBench({ machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, json: o.json === true, out: o.out });
  const workload = o.workload as WorkloadName;
  if (workload !== "pingpong" && workload !== "ring") throw new UsageError(`--workload '${o.workload}': must be pingpong or ring`);
  let size = 0;
  if (workload === "pingpong") {
    // the range (1 to swiotlb_max_mapping_size) is checked on the machine, before any measurement
    const v = (o.size ?? "64").trim();
    size = Number(v);
  }
  const threads = args.threads;
  const config = { machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, areas, mem, mode: "workload" as const };
  const seconds = o.s === undefined ? 2 : args.seconds;
  // with --compare, repeated runs give the median and the noise band
  const n = base !== undefined ? (runs ?? MIN_COMPARE_RUNS) : (runs ?? 1);
  const all: WorkloadResult[] = [];
  for (let i = 0; i < n; i++) all.push(await runWorkload({ config, workload, size, threads, seconds }));
  const r: WorkloadResult & { runs?: number[] } = n === 1 ? all[0]! : medianRun(all);
  collector?.addWorkload(workloadKey(r), r);
  const rows = base !== undefined ? compareResults({ [workloadKey(r)]: r }, base) : undefined;
  if (o.out !== undefined) writeFileSync(o.out, JSON.stringify({ schema: "dmalab/bench@1", ...r }, null, 2) + "\n");
  if (o.json) printJson({ schema: "dmalab/bench@1", machine: machineName, ...r, ...(rows !== undefined ? { compare: rows } : {}) });
  else for (const l of workloadLines(r)) out(l);
  if (rows !== undefined) {
    if (!o.json) for (const l of formatCompare(rows)) out(l);
    flagRegression(rows);
  }
}

/** --compare's verdict: exit 1 when a workload is slower than the baseline by more than the noise band. */
function flagRegression(rows: readonly CompareRow[]): void {
  if (rows.some((r) => r.verdict === "slower")) process.exitCode = 1;
}
