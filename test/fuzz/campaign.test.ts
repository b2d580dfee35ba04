import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, setUp } from "../helpers/cli.js";
import { DEFAULT_FUZZ_CONFIGS, mergeCampaigns, runCampaign, shardIndices, type CampaignOptions } from "../../src/fuzz/campaign.js";
import { hostileProgram, programSeed, STEP_KINDS } from "../../src/fuzz/hostile-program.js";
import { parseShard } from "../../src/cli/parse.js";
import { UsageError } from "../../src/errors.js";

const base: CampaignOptions = { seed: 11, programs: 10, configs: DEFAULT_FUZZ_CONFIGS, maxInsns: 1_000_000, timeLimitMs: 10_000, maxRssMb: 4096 };

describe("hostile programs", () => {
  it("are a function of their seed, and differ between seeds", () => {
    expect(hostileProgram(5, true).words).toEqual(hostileProgram(5, true).words);
    expect(hostileProgram(5, true).words).not.toEqual(hostileProgram(6, true).words);
    const p = hostileProgram(5, true);
    expect(p.words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff_ffff)).toBe(true);
  });
  it("a program's seed depends on the campaign seed and its index only", () => {
    const seeds = new Set(Array.from({ length: 1000 }, (_, i) => programSeed(1, i)));
    expect(seeds.size).toBe(1000);
    expect(programSeed(1, 7)).not.toBe(programSeed(2, 7));
  });
  it("bare-metal programs rarely issue HVC, which is undefined there", () => {
    let hyp = 0;
    let svc = 0;
    for (let s = 0; s < 200; s++) {
      const p = hostileProgram(programSeed(3, s), false);
      hyp += p.steps.hypercall + p.steps.smccc;
      svc += p.steps.service;
    }
    expect(hyp).toBeGreaterThan(0);
    expect(hyp * 5).toBeLessThan(svc);
  });
});

describe("shards", () => {
  it("partition the campaign, round-robin", () => {
    const all = shardIndices(100, 50, undefined);
    const parts = [0, 1, 2].map((k) => shardIndices(100, 50, { k, n: 3 }));
    expect(parts.flat().sort((a, b) => a - b)).toEqual(all);
    expect(parts[0]!.slice(0, 3)).toEqual([100, 103, 106]);
  });
  it("--shard K/N: bad values are usage errors naming the value", () => {
    expect(parseShard("0/1000")).toEqual({ k: 0, n: 1000 });
    expect(parseShard("999/1000")).toEqual({ k: 999, n: 1000 });
    for (const bad of ["3/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/2/3", `${"9".repeat(500)}/1`]) {
      expect(() => parseShard(bad), bad).toThrow(UsageError);
      try {
        parseShard(bad);
      } catch (e) {
        expect((e as Error).message.length).toBeLessThan(120);
      }
    }
  });
});

describe("a bounded campaign", () => {
  it("every hostile program ends in a defined outcome; two shards merge into the same counts", () => {
    const whole = runCampaign(base);
    expect(whole.failures).toEqual([]);
    expect(whole.run).toBe(10);
    expect(Object.values(whole.outcomes).reduce((a, b) => a + b, 0)).toBe(10);
    expect(whole.outcomes.exit0 + whole.outcomes.exit3).toBeGreaterThan(0);
    const a = runCampaign({ ...base, shard: { k: 0, n: 2 } });
    const b = runCampaign({ ...base, shard: { k: 1, n: 2 } });
    expect(a.run + b.run).toBe(10);
    const m = mergeCampaigns([a, b]);
    expect(m.outcomes).toEqual(whole.outcomes);
    expect(m.steps).toEqual(whole.steps);
    for (const k of STEP_KINDS) expect(m.steps[k]).toBe(a.steps[k] + b.steps[k]);
  }, 120_000);
  it("can fail: a run past its time limit is a hang, host memory past the cap is a failure", () => {
    const saved: number[] = [];
    const hang = runCampaign({ ...base, programs: 2, timeLimitMs: 1, graceMs: 0, onFailure: (f, img) => saved.push(f.index, img.length) });
    expect(hang.failures.map((f) => f.kind)).toEqual(["hang", "hang"]);
    expect(saved[0]).toBe(0);
    expect(saved[1]).toBeGreaterThan(0);
    const mem = runCampaign({ ...base, programs: 1, maxRssMb: 1 });
    expect(mem.failures.map((f) => f.kind)).toEqual(["memory"]);
  }, 120_000);
});

describe("dmalab merge of fuzz-guest shards", () => {
  beforeAll(() => setUp(), 120_000);
  it("adds the shards up to the whole campaign; refuses a shard twice or another campaign", () => {
    const dir = mkdtempSync(join(tmpdir(), "dmalab-fuzz-"));
    try {
      const run = (...a: string[]) => cli("fuzz-guest", "--programs", "4", "--seed", "5", "--xen", "dom0", "--json", ...a);
      const whole = run();
      expect(whole.status, whole.stderr).toBe(0);
      for (const k of [0, 1]) {
        const r = run("--shard", `${k}/2`);
        expect(r.status, r.stderr).toBe(0);
        writeFileSync(join(dir, `s${k}.json`), r.stdout);
      }
      const m = cli("merge", join(dir, "s0.json"), join(dir, "s1.json"), "--json");
      expect(m.status, m.stderr).toBe(0);
      const merged = JSON.parse(m.stdout) as Record<string, unknown>;
      const w = JSON.parse(whole.stdout) as Record<string, unknown>;
      expect(merged.outcomes).toEqual(w.outcomes);
      expect(merged.steps).toEqual(w.steps);
      expect(merged.run).toBe(4);
      const twice = cli("merge", join(dir, "s0.json"), join(dir, "s0.json"));
      expect(twice.status).toBe(2);
      expect(twice.stderr).toMatch(/shard 0\/2 given twice/);
      writeFileSync(join(dir, "other.json"), JSON.stringify({ ...merged, seed: 6 }));
      const other = cli("merge", join(dir, "s0.json"), join(dir, "other.json"));
      expect(other.status).toBe(2);
      expect(other.stderr.trim().split("\n")).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
