// The HTML report is one self-contained file: uPlot and the page script inline, no URL to
// fetch, the data document intact even when it holds markup; a million pool operations still
// make a page of a few hundred KB.

import { describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { executeRun, parseRunArgs } from "../../src/cli/commands/run.js";
import { DMA_TO_DEVICE } from "../../src/kernel/dma-mapping.js";
import { buildMachine, machineSpec } from "../../src/machine/builder.js";
import { renderReport } from "../../src/report/html.js";
import { REPORT_SCHEMA, commandLine, type ReportData } from "../../src/report/model.js";
import { PoolRecorder } from "../../src/report/recorder.js";
import { root } from "../helpers/cli.js";

const dir = join(root, "test-output", "report");
mkdirSync(dir, { recursive: true });

function embedded(html: string): ReportData {
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  return JSON.parse(m![1]!) as ReportData;
}

function minimal(extra: Partial<ReportData> = {}): ReportData {
  return {
    schema: REPORT_SCHEMA,
    kind: "run",
    title: "t",
    config: { command: "dmalab run", machine: "m", kernel: "6.x", swiotlb: "", xen: { role: "none" }, extra: [], generated: "now" },
    notes: [],
    ...extra,
  };
}

describe("renderReport", () => {
  it("inlines everything: no src/href attribute, no url(), uPlot and the page script present", () => {
    const html = renderReport(minimal());
    expect(html).not.toMatch(/\s(src|href)\s*=/i);
    expect(html).not.toMatch(/url\(/i);
    // the one URL is in uPlot's licence comment (its project page), never fetched
    expect(html.match(/https?:\/\/[^\s"')]+/g)).toEqual(["https://github.com/leeoniya/uPlot"]);
    expect(html).toContain("uPlot");
    expect(html).toContain("Content-Security-Policy");
  });

  it("markup inside the data cannot close its element", () => {
    const evil = "</script><script>alert(1)</script><!--";
    const d = minimal({ title: evil, notes: [evil] });
    const html = renderReport(d);
    expect(html.match(/<\/script>/g)!.length).toBe(3); // data, uPlot, page
    expect(embedded(html)).toEqual(d);
    expect(html).toContain("<title>&lt;/script&gt;");
  });

  it("the command line is quoted for a shell", () => {
    expect(commandLine(["run", "--swiotlb", "65536,force", "--report", "a b.html", "--machine", "it's.json"])).toBe(
      `dmalab run --swiotlb 65536,force --report 'a b.html' --machine 'it'\\''s.json'`,
    );
  });
});

describe("report size", () => {
  it("a million pool operations over 64 areas: a few hundred KB", () => {
    const rec = new PoolRecorder();
    const { machine: m } = buildMachine(machineSpec({ kernel: "6.x", pool: { nareas: 64 } }), (mm) => rec.attach(mm));
    rec.start();
    const nic = m.devices.find((d) => d.desc.driver === "8139too")!;
    const base = 0x1_4000_0000;
    const ring: number[] = new Array<number>(64).fill(-1);
    const sizes = [64, 1500, 4096, 9000, 60000];
    for (let i = 0; i < 500_000; i++) {
      const k = i & 63;
      if (ring[k] !== -1) m.api.dmaUnmapPageAttrs(nic.dev, ring[k]!, sizes[(i - 64) % 5]!, DMA_TO_DEVICE, 0);
      ring[k] = m.api.dmaMapPageAttrs(nic.dev, base + k * 0x10000, 0, sizes[i % 5]!, DMA_TO_DEVICE, 0, i & 63);
    }
    expect(m.swiotlb.defaultMem!.pool.nareas).toBe(64);
    const run = rec.finish([{ name: nic.name, bounced: 500_000, direct: 0, failed: 0 }], m.log.lines, [["ops", "1,000,000"]]);
    expect(run.pool!.x.at(-1)).toBeGreaterThanOrEqual(999_936);
    // per-area series for the 16 busiest areas only; the heat map still has every area's rows
    expect(run.pool!.areas.length).toBe(16);
    expect(new Set(run.pool!.rows.map((r) => r.area)).size).toBe(64);
    const html = renderReport(minimal({ run }));
    expect(html.length).toBeLessThan(400 * 1024);
  }, 120_000);

  it("`run --report` writes the file and its data says what the run did", () => {
    const file = join(dir, "run-sg.html");
    const { report } = executeRun(parseRunArgs({ ops: "600", workload: "sg", seed: "7", report: file }));
    const d = embedded(readFileSync(file, "utf8"));
    expect(statSync(file).size).toBeLessThan(400 * 1024);
    expect(d.kind).toBe("run");
    expect(d.config).toMatchObject({ machine: "demo-8g", kernel: "6.x", seed: 7, xen: { role: "none" } });
    expect(d.run!.devices.map((x) => x.bounced)).toEqual(report.devices.map((x) => x.bounced));
    expect(d.run!.mapSizes.counts.reduce((a, b) => a + b, 0)).toBe(report.bounced);
    expect(d.run!.pool!.hiwater.at(-1)).toBe(report.io_tlb_used_hiwater);
  });

  it("a Xen run's report counts the kernel's hypercalls by op and result", () => {
    const file = join(dir, "run-xen.html");
    executeRun(parseRunArgs({ ops: "300", machine: "qemu-virt-8g", xen: "dom0", report: file }));
    const d = embedded(readFileSync(file, "utf8"));
    expect(d.config.xen.role).toBe("dom0");
    expect(d.config.xen.version).toMatch(/^4\./);
    expect(d.run!.hypercalls.length).toBeGreaterThan(0);
    expect(d.run!.hypercalls.every((h) => h.count > 0 && h.op !== "" && h.ret !== "")).toBe(true);
  });
});
