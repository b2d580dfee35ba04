// `dmalab soak`: a seeded random mix of DMA-API operations, device transfers, CPU writes and
// Xen memory_ops on a booted machine, each checked against an independent model right after
// it runs, the whole machine checked every FULL_CHECK_EVERY operations, and everything drained
// back at the end. The first violation stops the run; the op list up to it is shrunk and
// written as a reproduction that `soak --replay` runs again.

import type { MachineSpec } from "../machine/builder.js";
import { checkAll, checkDrained } from "./invariants.js";
import { SoakMachine, SoakViolation, type FaultCounts, type InvalidCounts } from "./machine.js";
import { genOp, type FaultPlan, type SoakOp } from "./ops.js";
import { Rng } from "./rng.js";
import { shrinkOps } from "./shrink.js";

export const FULL_CHECK_EVERY = 2048;

export interface SoakOptions {
  spec: MachineSpec;
  ops: number;
  seed: number;
  plan: FaultPlan;
  /** builds the machine: the real one, or one with a planted bug (self-test) */
  make?: (spec: MachineSpec) => SoakMachine;
  /** time for shrinking a failure; default 20 s */
  shrinkBudgetMs?: number;
  /** report progress every so many ops */
  progress?: (done: number) => void;
}

export interface SoakViolationReport {
  invariant: string;
  message: string;
  /** the op (its index in the seeded stream) after which it showed; -1 = at the drain */
  op: number;
}

export interface SoakResult {
  opsRun: number;
  invariantChecks: number;
  violations: SoakViolationReport[];
  lostBytes: number;
  faultsInjected: FaultCounts;
  invalidInputs: InvalidCounts;
  mapFailures: number;
  elapsedMs: number;
  /** the failing ops, shrunk (indices and the ops themselves), when there was a violation */
  repro?: { ops: { index: number; op: SoakOp }[]; fails: boolean };
}

function violationOf(e: unknown, op: number): SoakViolationReport {
  if (e instanceof SoakViolation) return { invariant: e.invariant, message: e.message, op };
  // anything else thrown by the machine is a dmalab bug the soak found
  return { invariant: "exception", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e), op };
}

/** Runs `ops` (by index) on a fresh machine; the violation they end in, or null. */
export function replayOps(spec: MachineSpec, list: readonly { index: number; op: SoakOp }[], make: (s: MachineSpec) => SoakMachine): SoakViolationReport | null {
  const sm = make(spec);
  let at = -1;
  try {
    for (const { index, op } of list) {
      at = index;
      sm.exec(index, op);
    }
    at = -1;
    checkAll(sm);
    sm.drain();
    checkDrained(sm);
    return null;
  } catch (e) {
    return violationOf(e, at);
  } finally {
    sm.close();
  }
}

export function runSoak(o: SoakOptions): SoakResult {
  const make = o.make ?? ((s: MachineSpec) => new SoakMachine(s));
  const t0 = performance.now();
  const sm = make(o.spec);
  const rng = new Rng(o.seed);
  let i = 0;
  let violation: SoakViolationReport | null = null;
  try {
    for (; i < o.ops; i++) {
      const op = genOp(rng, sm.genState(), o.plan);
      sm.exec(i, op);
      if ((i + 1) % FULL_CHECK_EVERY === 0) {
        checkAll(sm);
        o.progress?.(i + 1);
      }
    }
    const end = i;
    i = -1;
    checkAll(sm);
    sm.drain();
    checkDrained(sm);
    i = end;
  } catch (e) {
    violation = violationOf(e, i);
  } finally {
    sm.close();
  }
  const res: SoakResult = {
    opsRun: violation === null ? o.ops : violation.op < 0 ? o.ops : violation.op + 1,
    invariantChecks: sm.checks,
    violations: violation === null ? [] : [violation],
    lostBytes: sm.lostBytes,
    faultsInjected: { ...sm.faults },
    invalidInputs: { ...sm.invalid },
    mapFailures: sm.mapFailures,
    elapsedMs: 0,
  };
  if (violation !== null) res.repro = reproduce(o, make, violation);
  res.elapsedMs = performance.now() - t0;
  return res;
}

/** Regenerates the op stream up to the violation, then shrinks it. */
function reproduce(o: SoakOptions, make: (s: MachineSpec) => SoakMachine, v: SoakViolationReport): SoakResult["repro"] {
  const sm = make(o.spec);
  const rng = new Rng(o.seed);
  const last = v.op < 0 ? o.ops - 1 : v.op;
  const all: { index: number; op: SoakOp }[] = [];
  try {
    for (let i = 0; i <= last; i++) {
      const op = genOp(rng, sm.genState(), o.plan);
      all.push({ index: i, op });
      sm.exec(i, op);
    }
  } catch {
    // the same violation again: the stream up to it is complete
  } finally {
    sm.close();
  }
  const byIndex = new Map(all.map((x) => [x.index, x]));
  const sameKind = (idx: readonly number[]): boolean => {
    const r = replayOps(o.spec, idx.map((k) => byIndex.get(k)!), make);
    return r !== null && r.invariant === v.invariant;
  };
  const shrunk = shrinkOps(all.map((x) => x.index), sameKind, o.shrinkBudgetMs ?? 20_000);
  const ops = shrunk.map((k) => byIndex.get(k)!);
  return { ops, fails: replayOps(o.spec, ops, make) !== null };
}
