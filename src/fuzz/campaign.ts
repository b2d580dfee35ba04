// A guest-fuzzing campaign: hostile programs run one after another, each on a freshly booted
// machine, each required to end in one of the defined outcomes (exit status 0..4 with one
// JSON document) within its instruction and wall-clock limits, while host memory stays
// bounded. Anything else — a host exception, an overrun of the time limit, output that is not
// one document, memory past the cap — is a failure, kept with what reproduces it.
//
// Program i's seed depends only on (campaign seed, i), so a campaign split into shards runs
// exactly the programs of the unsplit one, and `merge` adds their summaries up.

import { DmalabError } from "../errors.js";
import type { MachineConfig } from "../machine/builder.js";
import { machineSpec, type MachineSpec } from "../machine/builder.js";
import { runGuest } from "../cli/commands/guest.js";
import { image } from "../cpu/a64.js";
import { hostileProgram, programSeed, STEP_KINDS, type StepKind } from "./hostile-program.js";

/** The machines a campaign rotates through unless it is given one. */
export const DEFAULT_FUZZ_CONFIGS: readonly MachineConfig[] = [
  {},
  { xen: "dom0" },
  { xen: "domU", features: ["not_direct_mapped"] },
  { kernel: "5.13", xen: "domU" },
  { kernel: "5.13" },
];

export const OUTCOMES = ["exit0", "exit1", "exit2", "exit3", "exit4"] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const FAILURE_KINDS = ["crash", "hang", "output", "memory"] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface Shard {
  /** 0 .. n-1 */
  k: number;
  n: number;
}

export interface FuzzFailure {
  kind: FailureKind;
  index: number;
  seed: number;
  config: MachineConfig;
  message: string;
  elapsedMs: number;
}

export interface CampaignOptions {
  seed: number;
  /** programs in the whole campaign (before sharding) */
  programs: number;
  /** index of the campaign's first program */
  first?: number;
  shard?: Shard;
  configs: readonly MachineConfig[];
  maxInsns: number;
  timeLimitMs: number;
  /** beyond the time limit, how long a run may take (boot, teardown) before it is a hang */
  graceMs?: number;
  maxRssMb: number;
  /** called after each program (progress) */
  onProgram?: (done: number, total: number) => void;
  /** called with each failing program's image (to save it) */
  onFailure?: (f: FuzzFailure, image: Uint8Array) => void;
}

export interface CampaignSummary {
  schema: "dmalab/fuzz-guest@1";
  seed: number;
  first: number;
  programs: number;
  shard: Shard | null;
  /** programs this run executed */
  run: number;
  outcomes: Record<Outcome, number>;
  steps: Record<StepKind, number>;
  failures: FuzzFailure[];
  rssMb: { start: number; max: number };
  slowestMs: number;
  elapsedMs: number;
}

/** The program indices of one shard: round-robin, so every shard gets the same mix of machines. */
export function shardIndices(first: number, programs: number, shard: Shard | undefined): number[] {
  const out: number[] = [];
  for (let i = 0; i < programs; i++) if (shard === undefined || i % shard.n === shard.k) out.push(first + i);
  return out;
}

const rssMb = (): number => Math.round(process.memoryUsage.rss() / (1 << 20));

function zeroCounts<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

export function runCampaign(o: CampaignOptions): CampaignSummary {
  const first = o.first ?? 0;
  const indices = shardIndices(first, o.programs, o.shard);
  const specs: MachineSpec[] = o.configs.map((c) => machineSpec(c));
  const grace = o.graceMs ?? 10_000;
  const summary: CampaignSummary = {
    schema: "dmalab/fuzz-guest@1",
    seed: o.seed,
    first,
    programs: o.programs,
    shard: o.shard ?? null,
    run: 0,
    outcomes: zeroCounts(OUTCOMES),
    steps: zeroCounts(STEP_KINDS),
    failures: [],
    rssMb: { start: rssMb(), max: 0 },
    slowestMs: 0,
    elapsedMs: 0,
  };
  const t0 = performance.now();
  for (const index of indices) {
    const seed = programSeed(o.seed, index);
    const which = index % specs.length;
    const spec = specs[which]!;
    const prog = hostileProgram(seed, spec.xen !== "none");
    for (const k of STEP_KINDS) summary.steps[k] += prog.steps[k];
    const img = image(prog.words);
    const fail = (kind: FailureKind, message: string, elapsedMs: number): void => {
      const f: FuzzFailure = { kind, index, seed, config: o.configs[which]!, message: message.slice(0, 300), elapsedMs };
      summary.failures.push(f);
      o.onFailure?.(f, img);
    };
    const t = performance.now();
    let status: number;
    let text = "";
    try {
      const r = runGuest({ program: `fuzz-${o.seed}-${index}`, image: img, spec, maxInsns: o.maxInsns, timeLimitMs: o.timeLimitMs, json: true });
      status = r.status;
      text = r.text;
    } catch (e) {
      if (e instanceof DmalabError) status = e.exitCode;
      else {
        status = -1;
        fail("crash", e instanceof Error ? `${e.name}: ${e.message}` : String(e), performance.now() - t);
      }
    }
    const ms = performance.now() - t;
    summary.slowestMs = Math.max(summary.slowestMs, Math.round(ms));
    if (status >= 0) {
      summary.outcomes[OUTCOMES[status]!]++;
      if (text !== "" && !isOneGuestDocument(text)) fail("output", "the --json output is not one dmalab/guest@1 document", ms);
    }
    if (ms > o.timeLimitMs + grace) fail("hang", `took ${Math.round(ms)} ms, past the ${o.timeLimitMs} ms limit`, ms);
    const rss = rssMb();
    summary.rssMb.max = Math.max(summary.rssMb.max, rss);
    if (rss > o.maxRssMb) fail("memory", `host RSS ${rss} MiB, past the ${o.maxRssMb} MiB cap`, ms);
    summary.run++;
    o.onProgram?.(summary.run, indices.length);
  }
  summary.elapsedMs = Math.round(performance.now() - t0);
  return summary;
}

function isOneGuestDocument(text: string): boolean {
  try {
    const d = JSON.parse(text) as unknown;
    return typeof d === "object" && d !== null && (d as { schema?: unknown }).schema === "dmalab/guest@1";
  } catch {
    return false;
  }
}

/** Adds up the summaries of a campaign's shards (or of several campaigns). */
export function mergeCampaigns(docs: readonly CampaignSummary[]): CampaignSummary {
  const out: CampaignSummary = {
    schema: "dmalab/fuzz-guest@1",
    seed: docs[0]?.seed ?? 0,
    first: Math.min(...docs.map((d) => d.first)),
    programs: Math.max(...docs.map((d) => d.first + d.programs)) - Math.min(...docs.map((d) => d.first)),
    shard: null,
    run: 0,
    outcomes: zeroCounts(OUTCOMES),
    steps: zeroCounts(STEP_KINDS),
    failures: [],
    rssMb: { start: 0, max: 0 },
    slowestMs: 0,
    elapsedMs: 0,
  };
  for (const d of docs) {
    out.run += d.run;
    for (const k of OUTCOMES) out.outcomes[k] += d.outcomes[k];
    for (const k of STEP_KINDS) out.steps[k] += d.steps[k];
    out.failures.push(...d.failures);
    out.rssMb.start = Math.max(out.rssMb.start, d.rssMb.start);
    out.rssMb.max = Math.max(out.rssMb.max, d.rssMb.max);
    out.slowestMs = Math.max(out.slowestMs, d.slowestMs);
    out.elapsedMs += d.elapsedMs;
  }
  out.failures.sort((a, b) => a.index - b.index);
  return out;
}
