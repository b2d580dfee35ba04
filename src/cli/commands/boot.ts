// `dmalab boot`: boot one machine with one kernel profile — natively or as a Xen dom0/domU —
// through mem_init, the Xen guest set-up and every device's driver probe, and print a
// kernel-log-like account. Exit 0 when the boot reaches a working DMA setup with every device
// probed; 3 when it faults (the oops is printed) or a probe fails (no working DMA setup).
// `dmalab boot --matrix` runs every preset × kernel profile × Xen role.

import type { Command } from "commander";
import { FaultError, UsageError, hex } from "../../errors.js";
import { XEN_ROLES, formatBootReport, type BootReport, type XenRole } from "../../machine/boot.js";
import { presetNames, resolveMachine } from "../../machine/preset.js";
import { KERNEL_VERSIONS, isKernelVersion, kernelProfile } from "../../swiotlb/profile.js";
import { DIRECT_MAP_FEATURES, bootWithXen, type DirectMapFeature, type XenBootResult } from "../../machine/boot.js";
import type { ContiguousRegionMode } from "../../xen/guest/contiguous-region.js";
import { describeXenErrno } from "../../xen/guest/hypercall.js";
import { KernelOops } from "../../xen/guest/oops.js";
import { out, printJson } from "../output.js";

export interface BootFlags {
  machine?: string;
  kernel?: string;
  xen?: string;
  feature?: string[];
  xenVersion?: string;
  contig?: string;
  swiotlb?: string;
  strict?: boolean;
  matrix?: boolean;
  json?: boolean;
}

export type BootOutcome = "ok" | "fault" | "probe-failed";

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

export interface BootCommandReport extends BootReport {
  /** "ok" also needs every device probed */
  result: BootOutcome;
  xenInfo?: XenBootInfo;
  oops?: string[];
}

export function outcomeOf(r: BootReport): BootOutcome {
  if (r.outcome === "fault") return "fault";
  return r.devices.every((d) => d.probed) ? "ok" : "probe-failed";
}

function xenInfo(res: XenBootResult): XenBootInfo | undefined {
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

export interface BootArgs {
  machine: string;
  kernel: string;
  xen: XenRole;
  features: DirectMapFeature[];
  xenVersion?: string;
  contig?: ContiguousRegionMode;
  swiotlb?: string;
  strict: boolean;
}

export function parseBootArgs(f: BootFlags): BootArgs {
  if (f.machine === undefined) throw new UsageError("boot: --machine PRESET is required (or --matrix)");
  const kernel = f.kernel ?? "5.13";
  if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  const xen = f.xen ?? "none";
  if (!(XEN_ROLES as readonly string[]).includes(xen)) throw new UsageError(`--xen '${xen}': expected one of ${XEN_ROLES.join(", ")}`);
  const features = (f.feature ?? []).map((s) => {
    if (!(DIRECT_MAP_FEATURES as readonly string[]).includes(s)) throw new UsageError(`--feature '${s}': expected ${DIRECT_MAP_FEATURES.join(" or ")}`);
    return s as DirectMapFeature;
  });
  if (features.length > 0 && xen === "none") throw new UsageError("--feature needs --xen dom0 or --xen domU");
  if (f.xenVersion !== undefined && xen === "none") throw new UsageError("--xen-version needs --xen dom0 or --xen domU");
  if (f.contig !== undefined && f.contig !== "arm" && f.contig !== "x86-pv") throw new UsageError(`--contig '${f.contig}': expected arm or x86-pv`);
  const a: BootArgs = { machine: f.machine, kernel, xen: xen as XenRole, features, strict: f.strict === true };
  if (f.xenVersion !== undefined) a.xenVersion = f.xenVersion;
  if (f.contig !== undefined) a.contig = f.contig as ContiguousRegionMode;
  if (f.swiotlb !== undefined) a.swiotlb = f.swiotlb.trim().replace(/^swiotlb=/, "");
  return a;
}

/** Boots once; never throws for a kernel fault (see `result`). */
export function executeBoot(a: BootArgs): { report: BootCommandReport; result: XenBootResult } {
  const desc = resolveMachine(a.machine);
  const cfg: Parameters<typeof bootWithXen>[3] = { features: a.features };
  if (a.xenVersion !== undefined) cfg.xenVersion = a.xenVersion;
  if (a.contig !== undefined) cfg.contiguousRegion = a.contig;
  const opts: Parameters<typeof bootWithXen>[4] = { strict: a.strict };
  if (a.swiotlb !== undefined) opts.swiotlbCmdline = a.swiotlb;
  const res = bootWithXen(desc, kernelProfile(a.kernel), a.xen, cfg, opts);
  const report: BootCommandReport = { ...res.report, result: outcomeOf(res.report) };
  const xi = xenInfo(res);
  if (xi) report.xenInfo = xi;
  return { report, result: res };
}

export function formatBoot(r: BootCommandReport, oops: KernelOops | undefined): string[] {
  const o: string[] = [];
  o.push(...r.log.map((l) => `[kernel] ${l}`));
  if (oops) o.push(...oops.report(false).map((l) => `[kernel] ${l}`));
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
  o.push(`result: ${r.result}`);
  return o;
}

/** The error that makes the command exit 3, or undefined for a working boot. */
export function bootFailure(r: BootCommandReport): FaultError | undefined {
  if (r.result === "ok") return undefined;
  if (r.result === "fault") return new FaultError(`boot of ${r.machine} (kernel ${r.kernel}, xen ${r.xen}) faulted: ${r.fault?.message ?? "unknown fault"}`);
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

/** Every preset × kernel profile × Xen role. A failed probe counts as "fault" (no working DMA setup). */
export function bootMatrix(): MatrixRow[] {
  const rows: MatrixRow[] = [];
  for (const machine of presetNames())
    for (const kernel of KERNEL_VERSIONS)
      for (const xen of XEN_ROLES) {
        const { report } = executeBoot({ machine, kernel, xen, features: [], strict: false });
        const row: MatrixRow = { machine, kernel, xen, outcome: report.result === "ok" ? "ok" : "fault" };
        const f = bootFailure(report);
        if (f) row.fault = report.fault?.message ?? f.message;
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

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

export function registerBoot(program: Command): void {
  program
    .command("boot")
    .description("boot a machine with a kernel profile, natively or as a Xen dom0/domU, and probe its devices")
    .option("--machine <preset|file>", "machine preset name or JSON file")
    .option("--kernel <version>", `kernel profile: ${KERNEL_VERSIONS.join(", ")}`, "5.13")
    .option("--xen <role>", `Xen role of the kernel: ${XEN_ROLES.join(", ")}`, "none")
    .option("--feature <name>", "make the domain direct_mapped or not_direct_mapped (repeatable; the last wins)", collect)
    .option("--xen-version <v>", "Xen release (default: the machine's, else 4.15)")
    .option("--contig <mode>", "xen_create_contiguous_region flavour: arm (the era's stub) or x86-pv (XENMEM_exchange)")
    .option("--swiotlb <str>", "kernel `swiotlb=` value (replaces the machine's)")
    .option("--strict", "text `swiotlb=` ignores is an error, not a warning")
    .option("--matrix", "boot every preset × kernel profile × Xen role and print the outcomes")
    .option("--json", "JSON on stdout")
    .action((flags: BootFlags) => {
      if (flags.matrix) {
        if (flags.machine !== undefined || (flags.feature?.length ?? 0) > 0 || flags.xenVersion !== undefined || flags.contig !== undefined)
          throw new UsageError("--matrix runs every preset, profile and role: it takes no --machine, --feature, --xen-version or --contig");
        const rows = bootMatrix();
        if (flags.json) printJson({ rows });
        else for (const l of formatMatrix(rows)) out(l);
        return;
      }
      const a = parseBootArgs(flags);
      const { report, result } = executeBoot(a);
      const oops = result.xen !== null && report.fault ? findOops(result) : undefined;
      if (oops) report.oops = oops.report();
      for (const w of report.warnings) process.stderr.write(`dmalab: warning: ${w}\n`);
      if (flags.json) printJson(report);
      else for (const l of formatBoot(report, oops)) out(l);
      const f = bootFailure(report);
      if (f) throw f;
    });
}

function findOops(res: XenBootResult): KernelOops | undefined {
  return res.xen?.lastOops ?? undefined;
}
