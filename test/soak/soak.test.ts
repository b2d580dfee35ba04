import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.js";
import { machineSpec } from "../../src/machine/builder.js";
import { parseInject } from "../../src/soak/inject.js";
import { SoakMachine } from "../../src/soak/machine.js";
import { mergeSoaks, type ShardDoc } from "../../src/soak/merge.js";
import { faultPlanOff } from "../../src/soak/ops.js";
import { shardSeed } from "../../src/soak/rng.js";
import { PLANTS, selfTest } from "../../src/soak/self-test.js";
import { replayOps, runSoak } from "../../src/soak/soak.js";

const native = machineSpec({});
const dom0 = machineSpec({ xen: "dom0" });
const plan = { poolFull: 0.05, exchangeEnomemAt: 0, deviceError: 0.05, hypercallFail: 0.2 };

describe("soak: a clean machine", () => {
  it.each([
    ["natively, kernel 6.x", native],
    ["natively, kernel 5.13", machineSpec({ kernel: "5.13" })],
    ["as a Xen dom0", dom0],
    ["as a Xen domU", machineSpec({ xen: "domU" })],
    ["with dma-debug", machineSpec({ dmaDebug: true })],
  ])("%s: no violation, nothing lost, everything drained", (_n, spec) => {
    const r = runSoak({ spec, ops: 3000, seed: 11, plan });
    expect(r.violations).toEqual([]);
    expect(r.lostBytes).toBe(0);
    expect(r.opsRun).toBe(3000);
    expect(r.invariantChecks).toBeGreaterThan(3000);
  });

  it("injected faults are counted by kind; the same seed gives the same run", () => {
    const a = runSoak({ spec: native, ops: 3000, seed: 5, plan });
    const b = runSoak({ spec: native, ops: 3000, seed: 5, plan });
    expect(a.faultsInjected["pool-full"]).toBeGreaterThan(0);
    expect(a.faultsInjected["device-error"]).toBeGreaterThan(0);
    expect({ ...a, elapsedMs: 0 }).toEqual({ ...b, elapsedMs: 0 });
    const x = runSoak({ spec: machineSpec({ xen: "domU" }), ops: 3000, seed: 5, plan });
    expect(x.faultsInjected["hypercall-fail"]).toBeGreaterThan(0);
    expect(x.invalidInputs["memory_op-bad-cmd"]).toBeGreaterThan(0);
    expect(x.violations).toEqual([]);
  });
});

describe("soak: a planted bug is caught, shrunk and replayed", () => {
  it("release one slot short: a short reproduction that fails on the planted machine only", () => {
    const plant = PLANTS.find((p) => p.name === "release-one-slot-short")!;
    const r = runSoak({ spec: native, ops: 5000, seed: 3, plan: faultPlanOff(), make: plant.make, shrinkBudgetMs: 5000 });
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]!.invariant).toBe("slots");
    expect(r.repro!.fails).toBe(true);
    expect(r.repro!.ops.length).toBeLessThanOrEqual(5);
    expect(replayOps(native, r.repro!.ops, plant.make)).not.toBeNull();
    expect(replayOps(native, r.repro!.ops, (s) => new SoakMachine(s))).toBeNull();
  });

  it("--self-test: every planted bug class is caught within the default ops", () => {
    const rows = selfTest({ native, dom0, "domU-exchange": machineSpec({ xen: "domU", contig: "x86-pv" }) }, 100_000, 1, faultPlanOff());
    expect(rows.map((r) => [r.bug, r.caught])).toEqual(PLANTS.map((p) => [p.name, true]));
  }, 120_000);
});

describe("soak: inject specs, shard seeds, merge", () => {
  it("parses the four kinds and refuses the rest with a usage error", () => {
    expect(parseInject("pool-full@0.5,exchange-enomem@3,device-error@1,hypercall-fail@0")).toEqual({ poolFull: 0.5, exchangeEnomemAt: 3, deviceError: 1, hypercallFail: 0 });
    for (const bad of ["pool-full", "pool-full@2", "pool-full@-1", "x@0.1", "pool-full@0.1,pool-full@0.2", "exchange-enomem@0", "device-error@1e-3", "a".repeat(300)])
      expect(() => parseInject(bad), bad).toThrow(UsageError);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          parseInject(s);
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
          expect((e as Error).message.length).toBeLessThan(200);
        }
      }),
    );
  });

  it("shard seeds: deterministic, shard 0 is the campaign seed, 1000 shards all distinct", () => {
    expect(shardSeed(42, 0)).toBe(42);
    expect(shardSeed(42, 7)).toBe(shardSeed(42, 7));
    expect(new Set(Array.from({ length: 1000 }, (_, k) => shardSeed(42, k))).size).toBe(1000);
  });

  it("merge: totals, violations with their shard, missing and repeated shards", () => {
    const doc = (k: number, extra: Partial<ShardDoc> = {}): ShardDoc => ({
      schema: "dmalab/soak@1",
      machine: "demo-8g",
      kernel: "6.x",
      xen: "none",
      seed: 1,
      shard: { k, n: 4 },
      shardSeed: shardSeed(1, k),
      ops: 10,
      invariantChecks: 30,
      violations: [],
      lostBytes: 0,
      faultsInjected: { "pool-full": 1 },
      invalidInputs: {},
      elapsedMs: 5,
      ...extra,
    });
    const m = mergeSoaks([
      { source: "a", doc: doc(0) },
      { source: "b", doc: doc(1, { violations: [{ invariant: "bytes", message: "x", op: 3 }] }) },
      { source: "c", doc: doc(1) },
    ]);
    expect(m).toMatchObject({ documents: 3, ops: 30, invariantChecks: 90, faultsInjected: { "pool-full": 3 }, shards: { n: 4, present: 2, missing: [2, 3], duplicates: [1] } });
    expect(m.violations).toEqual([{ source: "b", shard: "1/4", shardSeed: shardSeed(1, 1), invariant: "bytes", message: "x", op: 3, reproFile: null }]);
  });
});
