// `dmalab bench`: the kernel's dma_map_benchmark emulated (same letters, ranges and report),
// the throughput workloads (--workload pingpong|ring), the regression suite (--suite, what
// `npm run bench` runs) and --compare against a saved summary.

import { writeFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { UsageError } from "../../errors.js";
import { DEFAULT_KERNEL, DEFAULT_MACHINE, machineSpec } from "../../machine/builder.js";
import { KERNEL_VERSIONS } from "../../swiotlb/profile.js";
import { checkWritable, parseIntArg, parseMemFlag } from "../parse.js";
import { checkToolArgs, parseToolArgs, type RawToolArgs } from "../../bench/kernel-tool.js";
import {
  compareResults,
  formatCompare,
  fmtBytesRate,
  fmtRate,
  loadSummary,
  workloadKey,
  workloadLines,
  type WorkloadName,
  type WorkloadResult,
} from "../../bench/result.js";
import { entriesOf, runSuite } from "../../bench/suite.js";
import { guestBench, guestWorkloadLines } from "../../bench/guest-workload.js";
import { runKernelBench, runWorkload } from "../../bench/threads.js";
import { out, printJson } from "../output.js";

interface BenchOpts {
  t?: string;
  s?: string;
  n?: string;
  b?: string;
  d?: string;
  x?: string;
  g?: string;
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
}

const PINGPONG_SIZES = [64, 512, 4096, 65536];

function intOpt(name: string, v: string | undefined, min: number, max: number): number | undefined {
  return v === undefined ? undefined : parseIntArg(name, v, min, max);
}

export function registerBench(program: Command): void {
  program
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
    .option("-g <pages>", "granule in pages, 1-1024")
    .option("--machine <name|file>", "machine: a name from `dmalab machines` or a JSON file", DEFAULT_MACHINE)
    .option("--mem <size>", "with a device tree whose firmware fills in the memory node: the RAM size")
    .addOption(new Option("--kernel <version>", "kernel profile").choices(KERNEL_VERSIONS).default(DEFAULT_KERNEL))
    .option("--swiotlb <value>", "the swiotlb= kernel parameter")
    .option("--areas <n>", "swiotlb areas (6.x)")
    .option("--json", "print JSON")
    .addOption(new Option("--workload <name>", "throughput workload; guest: trap costs from guest loops on the CPU").choices(["pingpong", "ring", "guest"]))
    .option("--size <bytes>", "pingpong buffer size: 64, 512, 4096 or 65536", "64")
    .option("--compare <file>", "compare with a saved summary (bench/baseline.json): ratio per workload")
    .option("--suite", "run the whole regression set (medians of --runs runs)")
    .option("--out <file>", "write the JSON summary (or result) to this file")
    .option("--runs <n>", "runs per workload for --suite / --compare (medians)")
    .action(async (o: BenchOpts) => {
      await bench(o);
    });
}

async function bench(o: BenchOpts): Promise<void> {
  const raw: RawToolArgs = { threads: o.t, seconds: o.s, node: o.n, bits: o.b, dir: o.d, xdelay: o.x, granule: o.g };
  const args = parseToolArgs(raw);
  const areas = intOpt("--areas", o.areas, 1, 1024);
  const workloadMode = o.workload !== undefined || o.suite === true || o.compare !== undefined;
  // everything that can be refused is refused before the first measurement
  if (o.out !== undefined) checkWritable("--out", o.out);
  const mem = o.mem === undefined ? undefined : parseMemFlag(o.mem);
  const machineName = machineSpec({ machine: o.machine, kernel: o.kernel, ...(o.swiotlb !== undefined ? { swiotlb: o.swiotlb } : {}), ...(mem !== undefined ? { mem } : {}) }).desc.name;
  const base = o.compare !== undefined ? loadSummary(o.compare) : undefined;

  if (!workloadMode) {
    checkToolArgs(args);
    const config = { machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, areas, mem, mode: "kernel" as const };
    const r = await runKernelBench(config, args);
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
        avg_map_100ns: Number(r.result.avgMap100ns),
        map_stddev: Number(r.result.mapStddev),
        avg_unmap_100ns: Number(r.result.avgUnmap100ns),
        unmap_stddev: Number(r.result.unmapStddev),
        loops: r.loops,
        pairsPerSec: r.pairsPerSec,
        bouncedBytesPerSec: r.bouncedBytesPerSec,
        bouncedFraction: r.bouncedFraction,
        kernelLog: r.dmesg,
      });
      return;
    }
    for (const l of r.lines) out(l);
    out(`map+unmap pairs per second: ${Math.round(r.pairsPerSec)} (${fmtRate(r.pairsPerSec)}; ${(r.bouncedFraction * 100).toFixed(1)}% bounced)`);
    out(`bytes bounced per second: ${Math.round(r.bouncedBytesPerSec)} (${fmtBytesRate(r.bouncedBytesPerSec)})`);
    for (const l of r.dmesg) out(`[dmesg] ${l}`);
    return;
  }

  // workload modes: the kernel tool's letters that have no meaning here are refused
  for (const [k, v] of [["-n", o.n], ["-b", o.b], ["-d", o.d], ["-x", o.x], ["-g", o.g]] as const)
    if (v !== undefined) throw new UsageError(`${k} applies to the kernel benchmark, not to --workload/--suite/--compare`);
  // -t and -s keep the tool's ranges
  checkToolArgs({ ...args, seconds: o.s === undefined ? 1 : args.seconds });
  const runs = intOpt("--runs", o.runs, 1, 100);

  if (o.suite || (o.compare !== undefined && o.workload === undefined)) {
    const progress = (l: string): void => {
      process.stderr.write(`bench: ${l}\n`);
    };
    const summary = await runSuite({
      machine: o.machine,
      kernel: o.kernel,
      swiotlb: o.swiotlb,
      runs: runs ?? (o.suite ? 5 : 3),
      seconds: o.s === undefined ? 1 : args.seconds,
      entries: base !== undefined && !o.suite ? entriesOf(base) : undefined,
      guest: o.suite === true,
      progress,
    });
    if (o.out !== undefined) writeFileSync(o.out, JSON.stringify(summary, null, 2) + "\n");
    if (o.json) printJson({ schema: "dmalab/bench@1", ...summary });
    else {
      for (const [k, r] of Object.entries(summary.workloads))
        out(`${k.padEnd(20)} ${fmtRate(r.pairsPerSec).padStart(10)} pairs/s  ${fmtBytesRate(r.bouncedBytesPerSec).padStart(11)} bounced  copy limit ${fmtBytesRate(r.copyBytesPerSec)}  fraction ${r.fractionOfCopyLimit.toFixed(3)}  p50 ${r.p50Ns.toFixed(0)} ns  p99 ${r.p99Ns.toFixed(0)} ns  heap/pair ${r.heapBytesPerPair.toFixed(2)}`);
      if (summary.ringScaling2x2 !== undefined) out(`ring scaling, 2 threads 2 areas vs 1 thread: ${summary.ringScaling2x2.toFixed(2)}x`);
      if (summary.copyScaling2x2 !== undefined) out(`copy limit scaling, same runs (the memory system's own): ${summary.copyScaling2x2.toFixed(2)}x`);
      if (summary.guest !== undefined) for (const l of guestWorkloadLines(summary.guest)) out(l);
    }
    if (base !== undefined) for (const l of formatCompare(compareResults(summary.workloads, base))) out(l);
    return;
  }

  if (o.workload === "guest") return guestBench({ machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, json: o.json === true, out: o.out });
  const workload = o.workload as WorkloadName;
  if (workload !== "pingpong" && workload !== "ring") throw new UsageError(`--workload '${o.workload}': must be pingpong or ring`);
  let size = 0;
  if (workload === "pingpong") {
    size = intOpt("--size", o.size, 1, 262144) ?? 64;
    if (!PINGPONG_SIZES.includes(size)) throw new UsageError(`--size ${size}: the pingpong sizes are ${PINGPONG_SIZES.join(", ")}`);
  }
  const threads = args.threads;
  const config = { machine: o.machine, kernel: o.kernel, swiotlb: o.swiotlb, areas, mem, mode: "workload" as const };
  const r: WorkloadResult = await runWorkload({ config, workload, size, threads, seconds: o.s === undefined ? 2 : args.seconds });
  if (o.out !== undefined) writeFileSync(o.out, JSON.stringify({ schema: "dmalab/bench@1", ...r }, null, 2) + "\n");
  if (o.json) printJson({ schema: "dmalab/bench@1", machine: machineName, ...r });
  else for (const l of workloadLines(r)) out(l);
  if (base !== undefined) {
    for (const l of formatCompare(compareResults({ [workloadKey(r)]: r }, base))) out(l);
  }
}
