// `dmalab boot`: boot one machine with one kernel profile — natively or as a Xen dom0/domU —
// through mem_init, the Xen guest set-up and every device's driver probe, and print a
// kernel-log-like account. Exit 0 when the boot reaches a working DMA setup with every device
// probed; 3 when it faults (the oops is printed) or a probe fails (no working DMA setup).
// `dmalab boot --matrix` runs every preset × kernel profile × Xen role.

import type { Command } from "commander";
import { FaultError, UsageError, hex } from "../../errors.js";
import { XEN_ROLES, formatBootReport, type BootReport, type XenRole } from "../../machine/boot.js";
import { buildMachine, machineSpec, type BuiltMachine, type MachineConfig } from "../../machine/builder.js";
import { presetNames } from "../../machine/preset.js";
import { KERNEL_VERSIONS } from "../../swiotlb/profile.js";
import { describeXenErrno } from "../../xen/guest/hypercall.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { out, printJson } from "../output.js";
import { createProgress } from "../progress.js";
import { addReportOptions, parseReportFlags, type ReportFlags } from "../report-options.js";
import { writeReport } from "../../report/html.js";
import { REPORT_SCHEMA, commandLine } from "../../report/model.js";

export interface BootFlags extends MachineFlags, ReportFlags {
  matrix?: boolean;
  json?: boolean;
}

/** What `boot` adds to the machine's boot report when Xen is involved. */
export interface XenBootInfo {
  version: string;
  domid: number;
  role: "dom0" | "domU";
  directMapped: boolean;
  /** XENVER_get_features submap 0 as the kernel read it */
  features: string;
  xen_domain: boolean;
  xen_initial_domain: boolean;
  xen_swiotlb_detect: boolean;
  /** xen_swiotlb_init()'s result; absent when it did not run */
  xen_swiotlb_init?: number;
  dma_ops: string;
  hypercalls: number;
}

/** `dmalab boot --json` */
export interface BootCommandReport extends BootReport {
  schema: "dmalab/boot@1";
  xenInfo?: XenBootInfo;
}

function xenInfo(res: BuiltMachine): XenBootInfo | undefined {
  const x = res.xen;
  if (x === null) return undefined;
  const info: XenBootInfo = {
    version: x.hv.version,
    domid: x.domain.id,
    role: x.config.role,
    directMapped: x.domain.directMapped,
    features: hex(x.xen.features.submap()),
    xen_domain: x.xen.xenDomain(),
    xen_initial_domain: x.xen.xenInitialDomain(),
    xen_swiotlb_detect: x.swiotlbDetect(),
    dma_ops: x.xenSwiotlb !== null ? "xen_swiotlb_dma_ops" : "dma-direct",
    hypercalls: [...x.hypercalls.counts.values()].reduce((a, b) => a + b, 0),
  };
  if (x.xenSwiotlbInitRc !== undefined) info.xen_swiotlb_init = x.xenSwiotlbInitRc;
  return info;
}

/** Boots once; never throws for a kernel fault (see `outcome`). */
export function executeBoot(c: MachineConfig): { report: BootCommandReport; result: BuiltMachine } {
  const res = buildMachine(c);
  const report: BootCommandReport = { schema: "dmalab/boot@1", ...res.report };
  const xi = xenInfo(res);
  if (xi) report.xenInfo = xi;
  return { report, result: res };
}

export function formatBoot(r: BootCommandReport): string[] {
  const o: string[] = [];
  o.push(...r.kernelLog.map((l) => `[kernel] ${l}`));
  o.push("");
  o.push(...formatBootReport(r));
  const x = r.xenInfo;
  if (x)
    o.push(
      `xen ${x.version}: d${x.domid} (${x.role}, ${x.directMapped ? "direct-mapped" : "not direct-mapped"}), features ${x.features}, ` +
        `xen_initial_domain() ${x.xen_initial_domain ? 1 : 0}, xen_swiotlb_detect() ${x.xen_swiotlb_detect ? 1 : 0}, ` +
        `xen_swiotlb_init ${x.xen_swiotlb_init === undefined ? "not run" : x.xen_swiotlb_init === 0 ? "0" : `${x.xen_swiotlb_init} (${describeXenErrno(x.xen_swiotlb_init)})`}, ` +
        `dma ops ${x.dma_ops}, ${x.hypercalls} hypercall(s)`,
    );
  o.push(`result: ${r.outcome}`);
  return o;
}

/** The error that makes the command exit 3, or undefined for a working boot. */
export function bootFailure(r: BootCommandReport): FaultError | undefined {
  if (r.outcome === "ok") return undefined;
  if (r.outcome === "fault") return new FaultError(`boot of ${r.machine} (kernel ${r.kernel}, xen ${r.xen}) faulted: ${r.fault?.message ?? "unknown fault"}`);
  const bad = r.devices.filter((d) => !d.probed).map((d) => `${d.driver} ${d.name} (error ${d.error ?? "none"})`);
  return new FaultError(`boot of ${r.machine} (kernel ${r.kernel}, xen ${r.xen}) reached no working DMA setup: probe failed for ${bad.join(", ")}`);
}

export interface MatrixRow {
  machine: string;
  kernel: string;
  xen: XenRole;
  outcome: "ok" | "fault";
  fault?: string;
}

export interface MatrixFilter {
  machines?: readonly string[];
  kernels?: readonly string[];
  roles?: readonly XenRole[];
}

/** Every preset × kernel profile × Xen role (or the axes the filter narrows). A failed probe counts as "fault". */
export function bootMatrix(f: MatrixFilter = {}, each?: (done: number, total: number) => void): MatrixRow[] {
  const rows: MatrixRow[] = [];
  const total = (f.machines ?? presetNames()).length * (f.kernels ?? KERNEL_VERSIONS).length * (f.roles ?? XEN_ROLES).length;
  for (const machine of f.machines ?? presetNames())
    for (const kernel of f.kernels ?? KERNEL_VERSIONS)
      for (const xen of f.roles ?? XEN_ROLES) {
        each?.(rows.length, total);
        const { report } = executeBoot({ machine, kernel, xen });
        const row: MatrixRow = { machine, kernel, xen, outcome: report.outcome === "ok" ? "ok" : "fault" };
        const fl = bootFailure(report);
        if (fl) row.fault = report.fault?.message ?? fl.message;
        rows.push(row);
      }
  return rows;
}

export function formatMatrix(rows: readonly MatrixRow[]): string[] {
  const w = Math.max(7, ...rows.map((r) => r.machine.length));
  const o = [`${"machine".padEnd(w)}  kernel    xen   outcome  fault`];
  for (const r of rows) o.push(`${r.machine.padEnd(w)}  ${r.kernel.padEnd(8)}  ${r.xen.padEnd(4)}  ${r.outcome.padEnd(7)}  ${r.fault ?? ""}`);
  const faults = rows.filter((r) => r.outcome === "fault").length;
  o.push(`${rows.length} boots: ${rows.length - faults} ok, ${faults} fault`);
  return o;
}

export function registerBoot(program: Command): void {
  const c = program
    .command("boot")
    .description("boot a machine with a kernel profile, natively or as a Xen dom0/domU, and probe its devices");
  addReportOptions(addMachineOptions(c, { contig: true }))
    .option("--matrix", "boot every preset × kernel profile × Xen role (--machine, --kernel, --xen narrow it) and print the outcomes")
    .option("--json", "one JSON document on stdout")
    .action((flags: BootFlags, cmd: Command) => {
      const show = parseReportFlags(flags);
      if (!flags.matrix && show.report !== undefined) throw new UsageError("--report: boot writes a report with --matrix (a single boot's account is what `dmalab boot` prints)");
      if (flags.matrix) {
        const given = (k: string): boolean => cmd.getOptionValueSource(k) === "cli";
        const refused = (
          [
            ["feature", "--feature"],
            ["xenVersion", "--xen-version"],
            ["contig", "--contig"],
            ["swiotlb", "--swiotlb"],
            ["strict", "--strict"],
            ["mem", "--mem"],
          ] as const
        ).filter(([k]) => given(k));
        if (refused.length > 0)
          throw new UsageError(`--matrix boots each machine as its preset says: it takes --machine, --kernel and --xen to narrow it, not ${refused.map(([, flag]) => flag).join(", ")}`);
        const filter: MatrixFilter = {};
        if (given("machine") && flags.machine !== undefined) {
          machineSpec({ machine: flags.machine });
          filter.machines = [flags.machine];
        }
        if (given("kernel")) filter.kernels = [flags.kernel!];
        if (given("xen")) filter.roles = [flags.xen as XenRole];
        const progress = createProgress({ total: 1, label: "boot --matrix", unit: "boots", quiet: show.quiet, json: flags.json });
        let rows: MatrixRow[];
        try {
          rows = bootMatrix(filter, (done, total) => {
            if (done === 0) progress.setTotal(total);
            progress.update(done);
          });
        } finally {
          progress.stop();
        }
        if (show.report !== undefined)
          writeReport(show.report, {
            schema: REPORT_SCHEMA,
            kind: "boot-matrix",
            title: "dmalab boot --matrix",
            config: {
              command: commandLine(),
              machine: filter.machines?.join(", ") ?? "every preset",
              kernel: filter.kernels?.join(", ") ?? KERNEL_VERSIONS.join(", "),
              swiotlb: "(each preset's own)",
              xen: { role: (filter.roles ?? XEN_ROLES).join(", ") },
              extra: [["boots", String(rows.length)]],
              generated: new Date().toISOString(),
            },
            matrix: { rows },
            notes: [],
          });
        if (flags.json) printJson({ schema: "dmalab/boot-matrix@1", rows });
        else for (const l of formatMatrix(rows)) out(l);
        return;
      }
      const { report } = executeBoot(machineConfig(flags));
      for (const w of report.warnings) process.stderr.write(`dmalab: warning: ${w}\n`);
      if (flags.json) printJson(report);
      else for (const l of formatBoot(report)) out(l);
      const f = bootFailure(report);
      if (f) throw f;
    });
}
