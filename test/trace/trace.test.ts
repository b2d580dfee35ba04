// --trace: the Chrome trace-event file holds one event per tracepoint hit (counted against the
// run's own counters), on per-device and per-area tracks, in emulated order; the replay format
// reproduces the run's slots when `dmalab replay` reads it back.

import { beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { executeRun, parseRunArgs } from "../../src/cli/commands/run.js";
import { buildMachine, machineSpec } from "../../src/machine/builder.js";
import { replayTrace } from "../../src/swiotlb/replay.js";
import { ChromeTraceWriter } from "../../src/trace/chrome.js";
import { cli, root, setUp } from "../helpers/cli.js";

const dir = join(root, "test-output", "trace");

beforeAll(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
});

interface TraceFile {
  traceEvents: { name: string; cat?: string; ph: string; ts?: number; pid: number; tid: number; args?: Record<string, unknown> }[];
  otherData: { counts: string };
}

function load(file: string): TraceFile {
  return JSON.parse(readFileSync(file, "utf8")) as TraceFile;
}

function countByKind(t: TraceFile): Record<string, number> {
  const c: Record<string, number> = {};
  for (const e of t.traceEvents) if (e.ph === "i") c[e.cat!] = (c[e.cat!] ?? 0) + 1;
  return c;
}

function threadNames(t: TraceFile): string[] {
  return t.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => String(e.args!["name"]));
}

describe("--trace (Chrome trace events)", () => {
  it("5.13, a small pool that runs full: event counts equal the run's counters", () => {
    const file = join(dir, "ring-513.json");
    const { report } = executeRun(parseRunArgs({ ops: "2000", kernel: "5.13", swiotlb: "128", trace: file }));
    expect(report.poolFull).toBeGreaterThan(0);
    const t = load(file);
    const c = countByKind(t);
    // dma_map_page_attrs is traced whatever it returns; only granted mappings are unmapped
    expect(report.mapErrors).toBeGreaterThan(0);
    expect(c["dma_map"]).toBe(report.mappings + report.mapErrors);
    expect(c["dma_unmap"]).toBe(report.mappings);
    expect(c["swiotlb_map"]).toBe(report.bounced);
    expect(c["swiotlb_unmap"]).toBe(report.bounced);
    expect(c["swiotlb_full"]).toBe(report.poolFull);
    // every bounce decision, granted or refused as full
    expect(c["swiotlb_bounced"]).toBe(report.bounced + report.poolFull);
    expect(JSON.parse(t.otherData.counts)).toEqual(c);
    // the tracepoint's fields, 5.13 flavour (the global swiotlb_force)
    const b = t.traceEvents.find((e) => e.cat === "swiotlb_bounced")!;
    expect(Object.keys(b.args!).sort()).toEqual(["dev_addr", "dev_name", "dma_mask", "size", "swiotlb_force"]);
    expect(b.args!["dma_mask"]).toBe("0xffffffff");
    // emulated order: strictly increasing timestamps in file order
    const ts = t.traceEvents.filter((e) => e.ph === "i").map((e) => e.ts!);
    expect(ts.every((v, i) => i === 0 || v > ts[i - 1]!)).toBe(true);
    expect(threadNames(t)).toEqual(expect.arrayContaining(["8139too 0000:00:01.0", "nvme 0000:00:02.0", "io_tlb_default_mem"]));
  });

  it("6.x with areas: one track per area, the bool force field", () => {
    const file = join(dir, "ring-6x.json");
    const { report } = executeRun(parseRunArgs({ ops: "1000", trace: file }));
    const t = load(file);
    const c = countByKind(t);
    expect(c["swiotlb_map"]).toBe(report.bounced);
    expect(c["dma_map"]).toBe(report.mappings);
    expect(threadNames(t)).toEqual(expect.arrayContaining(["area 0", "area 2"]));
    const b = t.traceEvents.find((e) => e.cat === "swiotlb_bounced")!;
    expect(Object.keys(b.args!).sort()).toEqual(["dev_addr", "dev_name", "dma_mask", "force", "size"]);
    expect(b.args!["force"]).toBe(false);
    // the io_tlb_used counter follows every map and unmap
    expect(t.traceEvents.filter((e) => e.ph === "C").length).toBe(2 * report.bounced);
  });

  it("a Xen dom0 boot: every hypercall the kernel made is an event on the domain's track", () => {
    const file = join(dir, "xen.json");
    const w = new ChromeTraceWriter(file);
    const built = buildMachine(machineSpec({ machine: "qemu-virt-8g", xen: "dom0" }), (m) => w.attach(m));
    const counts = w.finish();
    const made = [...built.xen!.hypercalls.counts.values()].reduce((a, b) => a + b, 0);
    expect(made).toBeGreaterThan(0);
    expect(counts["hypercall"]).toBe(made);
    const t = load(file);
    expect(threadNames(t)).toContain(`d${built.xen!.domain.id}`);
    expect(t.traceEvents.filter((e) => e.cat === "hypercall").every((e) => typeof e.args!["ret"] === "string" && typeof e.args!["op"] === "string")).toBe(true);
  });
});

/** what the run got, from the "# => id slot offset" lines */
function expected(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("# => ")).map((l) => l.slice(5));
}

describe("--trace-format replay", () => {
  for (const [name, flags] of [
    ["5.13, pool full", { ops: "2000", kernel: "5.13", swiotlb: "128" }],
    ["6.x, 4 areas", { ops: "3000" }],
    ["6.x, scatter-gather", { ops: "500", workload: "sg" }],
  ] as const) {
    it(`replaying the trace reproduces the run's slots (${name})`, () => {
      const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, "-")}.trace`);
      const { report } = executeRun(parseRunArgs({ ...flags, trace: file, traceFormat: "replay" }));
      expect(report.warnings).toEqual([]);
      const text = readFileSync(file, "utf8");
      const want = expected(text);
      expect(want.length).toBe(report.bounced + report.poolFull);
      expect(want.filter((l) => l.endsWith(" full")).length).toBe(report.poolFull);
      expect(replayTrace(text, file).lines).toEqual(want);
    });
  }

  it("the CLI writes it and `dmalab replay` reads it back", () => {
    setUp();
    const file = join(dir, "cli.trace");
    const r = cli("run", "--ops", "800", "--trace", file, "--trace-format", "replay");
    expect(r.status, r.stderr).toBe(0);
    const rp = cli("replay", file);
    expect(rp.status, rp.stderr).toBe(0);
    expect(rp.stdout.trim().split("\n")).toEqual(expected(readFileSync(file, "utf8")));
  }, 120_000);
});
