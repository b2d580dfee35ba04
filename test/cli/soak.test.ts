// `dmalab soak` and `dmalab merge` as a user runs them: flags and files refused with exit 2 and
// one short line before anything boots; a reproduction file written by a failing soak replays.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { machineSpec } from "../../src/machine/builder.js";
import { REPRO_SCHEMA } from "../../src/soak/repro.js";
import { faultPlanOff } from "../../src/soak/ops.js";
import { PLANTS } from "../../src/soak/self-test.js";
import { runSoak } from "../../src/soak/soak.js";
import { cli, setUp } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "dmalab-soak-"));
beforeAll(() => setUp(), 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function usage(args: string[], pattern: RegExp): void {
  const r = cli(...args);
  expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(2);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  expect(lines).toHaveLength(1);
  expect(lines[0]!.length).toBeLessThan(400);
  expect(lines[0]).toMatch(pattern);
}

describe("dmalab soak: bad flags", () => {
  it("--ops, --seed, --shard, --inject, --dma-debug", () => {
    usage(["soak", "--ops", "0"], /--ops/);
    usage(["soak", "--ops", "99999999999999"], /--ops/);
    usage(["soak", "--seed", "-1"], /--seed/);
    usage(["soak", "--shard", "5/5"], /--shard/);
    usage(["soak", "--shard", "x"], /--shard/);
    usage(["soak", "--inject", "pool-full@7"], /pool-full/);
    usage(["soak", "--inject", "disk-on-fire@0.1"], /--inject/);
    usage(["soak", "--dma-debug=loud"], /dma-debug/);
    usage(["soak", "--replay", "x.json", "--self-test"], /--replay/);
  });
});

describe("dmalab soak --replay: bad files are exit 2", () => {
  const f = (name: string, body: string | Buffer): string => {
    const p = join(tmp, name);
    writeFileSync(p, body);
    return p;
  };
  it.each([
    ["a directory", () => (mkdirSync(join(tmp, "dir"), { recursive: true }), join(tmp, "dir")), /not a regular file/],
    ["a missing file", () => join(tmp, "nope.json"), /cannot open/],
    ["a FIFO (refused by type, the open does not wait for a writer)", () => (spawnSync("mkfifo", [join(tmp, "fifo")]), join(tmp, "fifo")), /not a regular file/],
    ["not JSON", () => f("text.json", "hello"), /not JSON/],
    ["deeply nested JSON", () => f("deep.json", "[".repeat(200_000) + "]".repeat(200_000)), /not JSON|not a dmalab/],
    ["not UTF-8", () => f("latin1.json", Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), /UTF-8/],
    ["another document", () => f("other.json", JSON.stringify({ schema: "dmalab/run@1" })), /not a dmalab\/soak-repro@1 file/],
    ["a bad op", () => f("badop.json", JSON.stringify({ schema: REPRO_SCHEMA, config: {}, seed: 1, op: 0, violation: { invariant: "x", message: "y" }, ops: [{ index: 0, op: { k: "format-disk" } }] })), /ops/],
    ["too large", () => f("big.json", Buffer.alloc(17 * 1024 * 1024, 0x20)), /at most/],
    ["a bad machine in it", () => f("badmachine.json", JSON.stringify({ schema: REPRO_SCHEMA, config: { kernel: "9.9" }, seed: 1, op: 0, violation: { invariant: "x", message: "y" }, ops: [] })), /--kernel/],
  ])("%s", (_n, make, pattern) => {
    usage(["soak", "--replay", make()], pattern);
  });
});

describe("a reproduction round trip", () => {
  it("a planted bug's shrunk ops, written as a file: the real machine runs them clean (exit 0), --json validates its shape", () => {
    const spec = machineSpec({});
    const plant = PLANTS.find((p) => p.name === "skipped-copy-back")!;
    const r = runSoak({ spec, ops: 5000, seed: 2, plan: faultPlanOff(), make: plant.make, shrinkBudgetMs: 5000 });
    expect(r.repro?.fails).toBe(true);
    const v = r.violations[0]!;
    const file = join(tmp, "repro.json");
    writeFileSync(file, JSON.stringify({ schema: REPRO_SCHEMA, config: {}, seed: 2, op: v.op, violation: { invariant: v.invariant, message: v.message }, ops: r.repro!.ops }));
    const out = cli("soak", "--replay", file, "--json");
    expect(out.status, out.stderr).toBe(0);
    const doc = JSON.parse(out.stdout) as { ops: number; violations: unknown[]; recorded: { invariant: string } };
    expect(doc).toMatchObject({ ops: r.repro!.ops.length, violations: [], recorded: { invariant: "bytes" } });
  });
});

describe("dmalab merge: bad files", () => {
  it("a file that is not a soak document, and no file at all", () => {
    const p = join(tmp, "run.json");
    writeFileSync(p, JSON.stringify({ schema: "dmalab/run@1" }));
    usage(["merge", p], /not a dmalab soak --json document/);
    expect(cli("merge").status).toBe(2);
  });
});

describe("dmalab soak --report", () => {
  it("writes a self-contained page of the soak's pool; refuses --report with --self-test", () => {
    const f = join(tmp, "soak.html");
    const r = cli("soak", "--ops", "3000", "--seed", "4", "--report", f, "--json");
    expect(r.status, r.stderr).toBe(0);
    const html = readFileSync(f, "utf8");
    expect(html).toContain("dmalab soak on demo-8g");
    expect(html).toContain("invariant checks");
    expect(html).toContain("dmalab soak --ops 3000 --seed 4");
    expect(html).not.toMatch(/<script[^>]+src=/);
    usage(["soak", "--self-test", "--report", f], /--report/);
  }, 120_000);
});
