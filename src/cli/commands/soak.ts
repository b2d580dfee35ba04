// `dmalab soak`: the long randomized run that proves nothing is lost (src/soak/), its replay of
// a reproduction, and its self-test with planted bugs. Exit 0 clean, 3 on a violation (or a
// planted bug not caught), 2 for bad flags or a bad replay file.

import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { UsageError } from "../../errors.js";
import { machineSpec, type MachineConfig } from "../../machine/builder.js";
import { parseInject } from "../../soak/inject.js";
import { faultPlanOff, type FaultPlan } from "../../soak/ops.js";
import { REPRO_SCHEMA, readRepro } from "../../soak/repro.js";
import { shardSeed } from "../../soak/rng.js";
import { selfTest } from "../../soak/self-test.js";
import { replayOps, runSoak, type SoakResult } from "../../soak/soak.js";
import type { ShardDoc } from "../../soak/merge.js";
import type { BuiltMachine } from "../../machine/builder.js";
import { writeReport } from "../../report/html.js";
import { REPORT_SCHEMA } from "../../report/model.js";
import { PoolRecorder } from "../../report/recorder.js";
import { createProgress } from "../progress.js";
import { addReportOptions, parseReportFlags, reportConfig, type ReportFlags } from "../report-options.js";
import { SoakMachine } from "../../soak/machine.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { checkWritable, parseIntArg, parseShard } from "../parse.js";
import { flushAndExit, out, printJson } from "../output.js";

export const DEFAULT_SOAK_OPS = 100_000;
const MAX_SOAK_OPS = 1_000_000_000;

interface SoakFlags extends MachineFlags, ReportFlags {
  ops?: string;
  seed?: string;
  inject?: string;
  shard?: string;
  json?: boolean;
  replay?: string;
  repro?: string;
  selfTest?: boolean;
}

const num = (n: number): string => Math.round(n).toLocaleString("en-US");

function soakText(d: SoakDoc): string[] {
  const o: string[] = [];
  o.push(`dmalab soak: ${d.machine}, kernel ${d.kernel}, xen ${d.xen}, seed ${d.seed}${d.shard ? ` (shard ${d.shard.k}/${d.shard.n}, stream seed ${d.shardSeed})` : ""}${d.dmaDebug ? `, dma-debug ${d.dmaDebug}` : ""}`);
  o.push(`ops               ${num(d.ops)} of ${num(d.opsPlanned)} (${(d.elapsedMs / 1000).toFixed(1)} s, ${num(d.ops / Math.max(d.elapsedMs / 1000, 1e-9))} ops/s)`);
  o.push(`invariant checks  ${num(d.invariantChecks)}`);
  o.push(`faults injected   ${Object.entries(d.faultsInjected).map(([k, v]) => `${k} ${num(v)}`).join(", ")}`);
  o.push(`invalid inputs    ${Object.entries(d.invalidInputs).map(([k, v]) => `${k} ${num(v)}`).join(", ")}`);
  o.push(`maps the pool refused (not injected) ${num(d.mapFailures)}`);
  o.push(`lostBytes         ${num(d.lostBytes)}`);
  if (d.violations.length === 0) o.push("violations        none; drained back to the state after the boot");
  else {
    const v = d.violations[0]!;
    o.push(`VIOLATION (${v.invariant}) ${v.op >= 0 ? `after op ${v.op}` : "at the end"}: ${v.message}`);
    if (d.reproFile) o.push(`reproduction      ${d.reproOps} ops in ${d.reproFile}: dmalab soak --replay ${d.reproFile}`);
  }
  return o;
}

/** The --json document: what `dmalab merge` reads (ShardDoc), and what only a single run says. */
interface SoakDoc extends ShardDoc {
  violations: SoakResult["violations"];
  dmaDebug?: "report" | "strict";
  inject: FaultPlan;
  opsPlanned: number;
  mapFailures: number;
  reproOps?: number;
}

function configOf(f: SoakFlags): MachineConfig {
  return machineConfig(f);
}

function runMain(f: SoakFlags): number {
  const ops = f.ops === undefined ? DEFAULT_SOAK_OPS : parseIntArg("--ops", f.ops, 1, MAX_SOAK_OPS);
  const seed = f.seed === undefined ? 1 : parseIntArg("--seed", f.seed, 0, 0xffff_ffff);
  const plan = f.inject === undefined ? faultPlanOff() : parseInject(f.inject);
  const shard = f.shard === undefined ? undefined : parseShard(f.shard);
  const config = configOf(f);
  const spec = machineSpec(config);
  const stream = shard ? shardSeed(seed, shard.k) : seed;
  const reproPath = f.repro ?? `soak-repro-seed${stream}.json`;
  if (f.repro !== undefined) checkWritable("--repro", f.repro);
  const show = parseReportFlags(f);
  const rec = show.report !== undefined ? new PoolRecorder() : null;
  const progress = createProgress({ total: ops, label: "soak", unit: "ops", quiet: show.quiet, json: f.json });
  let built: BuiltMachine | null = null;
  let r: SoakResult;
  try {
    r = runSoak({
      spec,
      ops,
      seed: stream,
      plan,
      make: (s) => {
        const sm = new SoakMachine(s, rec === null ? undefined : (m) => rec.attach(m));
        built = sm.built;
        rec?.start();
        return sm;
      },
      ...(progress.shown ? { progress: (n: number) => progress.update(n) } : {}),
    });
  } finally {
    progress.stop();
  }
  const doc: SoakDoc = {
    schema: "dmalab/soak@1",
    machine: spec.desc.name,
    kernel: spec.profile.version,
    xen: spec.xen,
    seed,
    shardSeed: stream,
    inject: plan,
    opsPlanned: ops,
    ops: r.opsRun,
    invariantChecks: r.invariantChecks,
    violations: r.violations,
    lostBytes: r.lostBytes,
    faultsInjected: { ...r.faultsInjected },
    invalidInputs: { ...r.invalidInputs },
    mapFailures: r.mapFailures,
    elapsedMs: r.elapsedMs,
  };
  if (shard) doc.shard = shard;
  if (spec.dmaDebug) doc.dmaDebug = spec.dmaDebug;
  if (r.repro && r.violations[0]) {
    const v = r.violations[0];
    writeFileSync(reproPath, JSON.stringify({ schema: REPRO_SCHEMA, config, seed: stream, op: v.op, violation: { invariant: v.invariant, message: v.message }, ops: r.repro.ops }, null, 1) + "\n");
    doc.reproFile = reproPath;
    doc.reproOps = r.repro.ops.length;
  }
  if (rec !== null && show.report !== undefined && built !== null) {
    const b: BuiltMachine = built;
    const summary: [string, string][] = [
      ["ops", `${num(r.opsRun)} of ${num(ops)}, seed ${stream}${shard ? ` (shard ${shard.k}/${shard.n})` : ""}`],
      ["invariant checks", num(r.invariantChecks)],
      ["violations", r.violations.length === 0 ? "none" : `${r.violations[0]!.invariant}: ${r.violations[0]!.message}`],
      ["lostBytes", num(r.lostBytes)],
      ["faults injected", Object.entries(r.faultsInjected).map(([k, v]) => `${k} ${v}`).join(", ") || "none"],
    ];
    writeReport(show.report, {
      schema: REPORT_SCHEMA,
      kind: "soak",
      title: `dmalab soak on ${spec.desc.name}, kernel ${spec.profile.version}${spec.xen !== "none" ? `, Xen ${spec.xen}` : ""}`,
      config: reportConfig(spec, b, [["ops", num(ops)], ...(f.inject !== undefined ? ([["inject", f.inject]] as [string, string][]) : [])], stream),
      run: rec.finish([], [...b.machine.log.lines], summary),
      notes: [],
    });
  }
  if (f.json) printJson(doc);
  else for (const l of soakText(doc)) out(l);
  if (r.violations.length > 0) {
    process.stderr.write(`dmalab: soak violation (${r.violations[0]!.invariant}): ${r.violations[0]!.message}\n`);
    return 3;
  }
  return 0;
}

function replayMain(path: string, f: SoakFlags): number {
  const rep = readRepro(path);
  const spec = machineSpec(rep.config);
  const v = replayOps(spec, rep.ops, (s) => new SoakMachine(s));
  const doc = {
    schema: "dmalab/soak@1",
    replay: path,
    machine: spec.desc.name,
    kernel: spec.profile.version,
    xen: spec.xen,
    seed: rep.seed,
    ops: rep.ops.length,
    recorded: rep.violation,
    violations: v === null ? [] : [v],
  };
  if (f.json) printJson(doc);
  else {
    out(`dmalab soak --replay ${path}: ${rep.ops.length} ops on ${spec.desc.name}, kernel ${spec.profile.version}, xen ${spec.xen} (seed ${rep.seed}, recorded: ${rep.violation.invariant}: ${rep.violation.message})`);
    out(v === null ? "no violation: the replay ran clean" : `VIOLATION (${v.invariant}) ${v.op >= 0 ? `at op ${v.op}` : "at the end"}: ${v.message}`);
  }
  return v === null ? 0 : 3;
}

function selfTestMain(f: SoakFlags): number {
  const ops = f.ops === undefined ? DEFAULT_SOAK_OPS : parseIntArg("--ops", f.ops, 1, MAX_SOAK_OPS);
  const seed = f.seed === undefined ? 1 : parseIntArg("--seed", f.seed, 0, 0xffff_ffff);
  const config = configOf(f);
  const rows = selfTest(
    { native: machineSpec({ ...config, xen: "none" }), dom0: machineSpec({ ...config, xen: "dom0" }), "domU-exchange": machineSpec({ ...config, xen: "domU", contig: "x86-pv" }) },
    ops,
    seed,
    faultPlanOff(),
  );
  const caught = rows.filter((r) => r.caught).length;
  if (f.json) printJson({ schema: "dmalab/soak@1", selfTest: { planted: rows.length, caught, rows }, seed, opsPlanned: ops });
  else {
    for (const r of rows) out(`${r.caught ? "caught " : "MISSED "} ${r.bug.padEnd(24)} ${r.caught ? `after op ${r.atOp}, ${r.invariant}: ${r.message!.slice(0, 140)} (reproduction: ${r.reproOps} ops)` : r.what}`);
    out(`self-test: ${caught}/${rows.length} planted bugs caught within ${num(ops)} ops`);
  }
  return caught === rows.length ? 0 : 3;
}

export function registerSoak(program: Command): void {
  const c = program
    .command("soak")
    .description("a seeded random mix of DMA-API operations, device transfers, CPU writes and Xen memory_ops, each checked against an independent model");
  addMachineOptions(c, { contig: true })
    .option("--ops <n>", `operations (default ${DEFAULT_SOAK_OPS})`)
    .option("--seed <s>", "seed (decimal or 0x hex)", "1")
    .option("--inject <spec>", "faults: pool-full@P,exchange-enomem@K,device-error@P,hypercall-fail@P")
    .option("--shard <K/N>", "run shard K (0..N-1) of an N-shard campaign: its own seed stream")
    .option("--repro <file>", "where a violation's shrunk reproduction goes (default soak-repro-seed<S>.json)")
    .option("--replay <file>", "rerun a reproduction file")
    .option("--self-test", "plant each bug class in turn and show the soak catches it")
    .option("--json", "one JSON document on stdout (dmalab/soak@1)");
  addReportOptions(c).action((f: SoakFlags) => {
      if (f.replay !== undefined && (f.selfTest === true || f.shard !== undefined || f.inject !== undefined))
        throw new UsageError("--replay runs the file's own ops: it takes no --self-test, --shard or --inject");
      if (f.report !== undefined && (f.replay !== undefined || f.selfTest === true)) throw new UsageError("--report draws a soak run, not --replay or --self-test");
      const code = f.replay !== undefined ? replayMain(f.replay, f) : f.selfTest === true ? selfTestMain(f) : runMain(f);
      flushAndExit(code);
    });
}


