// guest --trace: the guest's hypercalls and services join the DMA layer's events in one Chrome
// trace, each kind counted as the run counted it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, setUp } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "dmalab-guest-trace-"));
beforeAll(() => setUp(), 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Calls {
  byOp: { kind: string; op: string; count: number }[];
}

function traced(prog: string, ...flags: string[]): { counts: Record<string, number>; calls: Calls; events: { cat?: string; ph: string; ts: number }[] } {
  const f = join(tmp, `${prog}.json`);
  const r = cli("guest", prog, "--trace", f, "--json", ...flags);
  expect(r.status, r.stderr).toBe(0);
  const t = JSON.parse(readFileSync(f, "utf8")) as { traceEvents: { cat?: string; ph: string; ts: number }[]; otherData: { counts: string } };
  return { counts: JSON.parse(t.otherData.counts) as Record<string, number>, calls: (JSON.parse(r.stdout) as { calls: Calls }).calls, events: t.traceEvents };
}

const sum = (c: Calls, pred: (o: Calls["byOp"][number]) => boolean): number => c.byOp.filter(pred).reduce((s, o) => s + o.count, 0);

describe("guest --trace", () => {
  it("dma-ring as dom0: every service an svc event, every dma_map/dma_unmap a DMA-API event, in emulated order", () => {
    const t = traced("dma-ring", "--xen", "dom0");
    expect(t.counts.svc).toBe(sum(t.calls, (o) => o.kind !== "hypercall"));
    expect(t.counts.dma_map).toBe(sum(t.calls, (o) => o.op === "dma_map"));
    expect(t.counts.dma_unmap).toBe(sum(t.calls, (o) => o.op === "dma_unmap"));
    const ts = t.events.filter((e) => e.ph === "i").map((e) => e.ts);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
  });
  it("xen-memop as dom0: the guest's hypercalls after the boot's", () => {
    const boot = traced("dma-ring", "--xen", "dom0").counts.hypercall ?? 0;
    const t = traced("xen-memop", "--xen", "dom0");
    const guestHypercalls = sum(t.calls, (o) => o.kind === "hypercall");
    expect(guestHypercalls).toBeGreaterThan(0);
    expect(t.counts.hypercall).toBe(boot + guestHypercalls);
  });
  it("--trace with --gdb, or to a directory, is refused before the boot", () => {
    for (const args of [["--trace", join(tmp, "x.json"), "--gdb", "0"], ["--trace", tmp]]) {
      const r = cli("guest", "dma-ring", ...args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});
