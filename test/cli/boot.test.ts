import { beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../../src/errors.js";
import { bootFailure, executeBoot } from "../../src/cli/commands/boot.js";
import { machineConfig } from "../../src/cli/machine-options.js";
import { machineSpec } from "../../src/machine/builder.js";
import { executeRun, parseRunArgs } from "../../src/cli/commands/run.js";
import { presetNames } from "../../src/machine/preset.js";
import { KERNEL_VERSIONS } from "../../src/swiotlb/profile.js";
import { cli, root, setUp } from "../helpers/cli.js";


beforeAll(() => {
  setUp();
  expect(existsSync(join(root, "dist", "src", "cli", "commands", "boot.js"))).toBe(true);
}, 120_000);

describe("dmalab boot", () => {
  it("the 2021 regression: exit 3, one stderr line naming the NULL default pool; the oops on stdout", () => {
    const r = cli("boot", "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0");
    expect(r.status).toBe(3);
    const err = r.stderr.trim().split("\n");
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^dmalab: .*NULL pointer dereference at virtual address 0000000000000008 in xen_swiotlb_dma_supported: read of io_tlb_default_mem->end/);
    expect(r.stdout).toContain("[kernel] pc : xen_swiotlb_dma_supported+0x30/0xc8\n[kernel] lr : dma_supported+0x38/0x68\n");
    expect(r.stdout).toContain("[kernel] Call trace:\n[kernel]  xen_swiotlb_dma_supported+0x30/0xc8\n[kernel]  dma_supported+0x38/0x68\n[kernel]  dma_set_mask+0x30/0x58\n[kernel]  sdhci_iproc_probe+");
    // printed once: the call trace appears in the kernel log only
    expect(r.stdout.split("Call trace").length).toBe(2);
    expect(r.stdout.split("Unable to handle kernel NULL pointer dereference").length).toBe(2);
    expect(r.stdout).toMatch(/mem_init: .*swiotlb_force = SWIOTLB_NO_FORCE/);
    expect(r.stdout).toContain("late init skipped");
    expect(r.stdout).toContain("result: fault");
  });

  it("the README's oops example is the real output, line for line", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const start = readme.indexOf("The first command above prints:\n\n```text\n");
    expect(start).toBeGreaterThan(0);
    const body = readme.slice(readme.indexOf("```text\n", start) + 8);
    const shown = body.slice(0, body.indexOf("```")).trimEnd().split("\n");
    const r = cli("boot", "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0");
    const out = r.stdout.split("\n");
    const from = out.findIndex((l) => l.includes("Unable to handle kernel NULL pointer dereference"));
    expect(out.slice(from, from + shown.length)).toEqual(shown);
    expect(shown.at(-1)).toContain("---[ end Kernel panic");
  });

  it("the fixed kernel: exit 0, a pool, every device probed", () => {
    const r = cli("boot", "--machine", "rpi4-1g", "--kernel", "5.13", "--xen", "dom0");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\[kernel\] software IO TLB: mapped \[mem 0x[0-9a-f]{16}-0x[0-9a-f]{16}\] \(64MB\)/);
    expect(r.stdout).toContain("result: ok");
    expect(r.stdout).not.toContain("not probed");
  });

  it("--json carries the oops fields and still exits 3", () => {
    const r = cli("boot", "--machine", "qemu-virt-2g", "--kernel", "5.13-rc1", "--xen", "dom0", "--json");
    expect(r.status).toBe(3);
    const j = JSON.parse(r.stdout) as { schema: string; outcome: string; fault: { pointer: string; address: string; function: string; oops: string[] }; xenInfo: { xen_swiotlb_init: number } };
    expect(j.schema).toBe("dmalab/boot@1");
    expect(j.outcome).toBe("fault");
    expect(j.fault).toMatchObject({ pointer: "io_tlb_default_mem", address: "0x8", function: "xen_swiotlb_dma_supported" });
    expect(j.xenInfo.xen_swiotlb_init).toBe(0);
    expect(j.fault.oops[0]).toBe("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008");
  });

  it("bad arguments: exit 2, one line, no stack trace", () => {
    for (const args of [
      ["boot", "--machine", "rpi4-1g", "--xen", "dom2"],
      ["boot", "--machine", "rpi4-1g", "--kernel", "5.11"],
      ["boot", "--machine", "rpi4-1g", "--xen", "dom0", "--feature", "one_to_one"],
      ["boot", "--machine", "rpi4-1g", "--feature", "direct_mapped"],
      ["boot", "--machine", "rpi4-1g", "--xen", "dom0", "--xen-version", "4.2"],
      ["boot", "--matrix", "--feature", "direct_mapped"],
      ["boot", "--matrix", "--machine", "no-such-board"],
      ["boot", "--machine", "rpi4-1g", "--contig", "x86-pv"],
    ]) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it("--matrix --json: every preset × profile × role, end to end", () => {
    const r = cli("boot", "--matrix", "--json");
    expect(r.status).toBe(0);
    const { rows } = JSON.parse(r.stdout) as { rows: { machine: string; kernel: string; xen: string; outcome: string; fault?: string }[] };
    const presets = presetNames();
    expect(rows).toHaveLength(presets.length * KERNEL_VERSIONS.length * 3);
    for (const p of presets) for (const k of KERNEL_VERSIONS) for (const x of ["none", "dom0", "domU"]) expect(rows.filter((w) => w.machine === p && w.kernel === k && w.xen === x)).toHaveLength(1);
    for (const w of rows) {
      expect(["ok", "fault"]).toContain(w.outcome);
      expect(w.fault === undefined).toBe(w.outcome === "ok");
    }
    // the regression is a 5.13-rc1 dom0 affair: no other profile or role faults
    const faults = rows.filter((w) => w.outcome === "fault");
    expect(faults.length).toBeGreaterThan(0);
    for (const f of faults) {
      expect([f.kernel, f.xen]).toEqual(["5.13-rc1", "dom0"]);
      expect(f.fault).toContain("io_tlb_default_mem");
    }
    expect(rows.find((w) => w.machine === "rpi4-1g" && w.kernel === "5.13-rc1" && w.xen === "dom0")!.outcome).toBe("fault");
    expect(rows.find((w) => w.machine === "rpi4-1g" && w.kernel === "5.13" && w.xen === "dom0")!.outcome).toBe("ok");
  }, 60_000);
});

describe("boot arguments and outcome", () => {
  it("parses and validates", () => {
    const s = machineSpec(machineConfig({ machine: "rpi4-1g", xen: "dom0", feature: ["not_direct_mapped", "direct_mapped"], xenVersion: "4.16" }));
    expect(s.profile.version).toBe("6.x");
    expect(s.xen).toBe("dom0");
    expect(s.xenConfig).toMatchObject({ features: ["not_direct_mapped", "direct_mapped"], xenVersion: "4.16" });
    expect(machineSpec({}).desc.name).toBe("demo-8g");
    expect(() => machineSpec({ machine: "rpi4-1g", xen: "dom0", contig: "x86" })).toThrow(/--contig 'x86'/);
    expect(() => machineSpec({ machine: "rpi4-1g", contig: "arm" })).toThrow(UsageError);
  });

  it("--matrix narrowed by --kernel and --xen boots only those", () => {
    const r = cli("boot", "--matrix", "--kernel", "6.x", "--xen", "dom0", "--json");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { schema: string; rows: { kernel: string; xen: string }[] };
    expect(j.schema).toBe("dmalab/boot-matrix@1");
    expect(j.rows).toHaveLength(presetNames().length);
    for (const w of j.rows) expect([w.kernel, w.xen]).toEqual(["6.x", "dom0"]);
  });

  it("a failed probe is no working DMA setup: outcome probe-failed, exit 3", () => {
    const { report } = executeBoot({ machine: "rpi4-1g", kernel: "5.13", xen: "dom0" });
    expect(report.outcome).toBe("ok");
    expect(bootFailure(report)).toBeUndefined();
    const failed = { ...report, devices: report.devices.map((d, i) => (i === 0 ? { ...d, probed: false, error: -5 } : d)) };
    const e = bootFailure({ ...failed, outcome: "probe-failed" })!;
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain("probe failed for sdhci-iproc fe340000.mmc (error -5)");
  });
});

describe("dmalab run --xen", () => {
  const run = (machine: string, kernel: string, xen: string, extra: Parameters<typeof parseRunArgs>[0] = {}) =>
    executeRun(parseRunArgs({ machine, kernel, xen, ops: "400", ...extra })).report;

  it("dom0 maps through swiotlb-xen, bounces where the device cannot reach, and every byte checks out", () => {
    const r = run("rpi4-8g", "5.13", "dom0");
    expect(r.boot.decisions.some((d) => d.startsWith("arch_setup_dma_ops: xen_swiotlb_detect(): xen_swiotlb_dma_ops"))).toBe(true);
    expect(r.bounced).toBeGreaterThan(0);
    expect(r.bouncedBytes).toBeGreaterThan(0);
    expect(r.corruptBytes).toBe(0);
    expect(r.verifiedBytes).toBeGreaterThan(0);
  });

  it("swiotlb=force on dom0: everything bounces through the pool swiotlb-xen uses", () => {
    const r = run("rpi4-1g", "5.13", "dom0", { swiotlb: "force", workload: "sg" });
    expect(r.bounced).toBe(r.mappings);
    expect(r.corruptBytes).toBe(0);
  });

  it("a direct-mapped domU on Xen 4.16 (6.x) maps through swiotlb-xen", () => {
    const r = run("qemu-virt-8g", "6.x", "domU", { feature: ["direct_mapped"], xenVersion: "4.16" });
    expect(r.boot.decisions.some((d) => d.includes("xen_swiotlb_dma_ops"))).toBe(true);
    expect(r.corruptBytes).toBe(0);
    expect(r.mappings).toBeGreaterThan(0);
  });

  it("a domU that is not direct-mapped: dma-direct with guest-physical addresses through stage 2", () => {
    const r = run("qemu-virt-8g", "5.13", "domU", { workload: "pingpong" });
    expect(r.boot.decisions.some((d) => d.includes("devices keep dma-direct"))).toBe(true);
    expect(r.corruptBytes).toBe(0);
    expect(r.verifiedBytes).toBeGreaterThan(0);
  });

  it("the regression stops run too (a fault, exit 3)", () => {
    expect(() => run("qemu-virt-2g", "5.13-rc1", "dom0")).toThrow(/io_tlb_default_mem/);
    const r = cli("run", "--machine", "qemu-virt-2g", "--kernel", "5.13-rc1", "--xen", "dom0", "--ops", "10");
    expect(r.status).toBe(3);
  });

  it("--feature without --xen is a usage error", () => {
    expect(() => parseRunArgs({ feature: ["direct_mapped"] })).toThrow(UsageError);
  });
});
