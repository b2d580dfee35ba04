// --report FILE.html, --trace FILE.json, --trace-format and --quiet: the options that make a
// long command show its work. Paths are checked before any work starts.
//
// Plug-in API for a command:
//   addReportOptions(cmd, { trace: true });            // when declaring it
//   const ro = parseReportFlags(flags);                 // with the other flag checks, before work
//   ro.report / ro.trace / ro.traceFormat / ro.quiet    // then: createProgress, writeReport, attachTrace

import { resolve } from "node:path";
import { Option, type Command } from "commander";
import { UsageError } from "../errors.js";
import type { BuiltMachine, MachineSpec } from "../machine/builder.js";
import type { ReportConfig } from "../report/model.js";
import { commandLine } from "../report/model.js";
import { checkWritable } from "./parse.js";

export const TRACE_FORMATS = ["chrome", "replay"] as const;
export type TraceFormat = (typeof TRACE_FORMATS)[number];

export interface ReportFlags {
  report?: string;
  trace?: string;
  traceFormat?: string;
  quiet?: boolean;
}

export interface ReportArgs {
  report?: string;
  trace?: string;
  traceFormat: TraceFormat;
  quiet: boolean;
}

export function addReportOptions(c: Command, o: { trace?: boolean } = {}): Command {
  c.option("--report <file.html>", "write a self-contained HTML report (charts of the pool, mappings, hypercalls…)");
  if (o.trace === true) {
    c.option("--trace <file>", "write the run's events: Chrome trace-event JSON for ui.perfetto.dev, or a replay trace");
    c.addOption(new Option("--trace-format <format>", "chrome (trace-event JSON) or replay (`dmalab replay`'s format)").choices(TRACE_FORMATS).default("chrome"));
  }
  c.option("--quiet", "no progress bar on the terminal");
  return c;
}

/** Checks the paths (creatable or writable, not a directory) before anything runs. */
export function parseReportFlags(f: ReportFlags): ReportArgs {
  const a: ReportArgs = { traceFormat: f.traceFormat === "replay" ? "replay" : "chrome", quiet: f.quiet === true };
  if (f.report !== undefined) {
    checkWritable("--report", f.report);
    a.report = f.report;
  }
  if (f.trace !== undefined) {
    checkWritable("--trace", f.trace);
    if (a.report !== undefined && resolve(a.report) === resolve(f.trace)) throw new UsageError("--report and --trace name the same file");
    a.trace = f.trace;
  }
  return a;
}

/** The configuration block of a report from a built machine (or, before one is built, its spec). */
export function reportConfig(spec: MachineSpec, built: BuiltMachine | null, extra: [string, string][], seed?: number): ReportConfig {
  const xen: ReportConfig["xen"] = { role: spec.xen };
  if (built?.xen) xen.version = built.xen.hv.version;
  else if (spec.xen !== "none") xen.version = spec.xenConfig.xenVersion ?? spec.desc.xen?.version ?? "4.15";
  const c: ReportConfig = {
    command: commandLine(),
    machine: spec.desc.name,
    kernel: spec.profile.version,
    swiotlb: spec.boot.swiotlbCmdline ?? spec.desc.swiotlbCmdline,
    xen,
    extra: [["page size", `${spec.desc.granule / 1024} KiB`], ...extra],
    generated: new Date().toISOString(),
  };
  if (seed !== undefined) c.seed = seed;
  return c;
}
