// `dmalab merge FILES…`: soak shards' --json documents into one summary (dmalab/merge@1), or
// fuzz-guest shards' into one campaign summary (dmalab/fuzz-guest@1).
// Exit 3 when a shard found a violation or lost bytes, 2 for an unreadable or foreign file.

import type { Command } from "commander";
import { z } from "zod";
import { InputError, UsageError, oneLine } from "../../errors.js";
import { mergeSoaks, type MergeDoc } from "../../soak/merge.js";
import { FAILURE_KINDS, mergeCampaigns } from "../../fuzz/campaign.js";
import { STEP_KINDS, type StepKind } from "../../fuzz/hostile-program.js";
import { decodeUtf8, readInputFile } from "../input-file.js";
import { fuzzText } from "./fuzz-guest.js";
import { flushAndExit, out, printJson } from "../output.js";

const MAX_DOC_BYTES = 4 * 1024 * 1024;
const MAX_FILES = 100_000;

const count = z.number().int().min(0);
const Doc = z.looseObject({
  schema: z.literal("dmalab/soak@1"),
  machine: z.string().max(200),
  kernel: z.string().max(20),
  xen: z.string().max(20),
  seed: count,
  shard: z.strictObject({ k: count, n: z.number().int().min(1) }).optional(),
  shardSeed: count,
  ops: count,
  invariantChecks: count,
  violations: z.array(z.looseObject({ invariant: z.string().max(64), message: z.string().max(4096), op: z.number().int().min(-1) })).max(100),
  lostBytes: count,
  faultsInjected: z.record(z.string().max(40), count),
  invalidInputs: z.record(z.string().max(40), count),
  elapsedMs: z.number().min(0),
  reproFile: z.string().max(4096).optional(),
});

/** One --json document, read with the size cap and parsed (not yet checked against a shape). */
function readJson(path: string): unknown {
  const text = decodeUtf8(readInputFile(path, { what: "JSON document", maxBytes: MAX_DOC_BYTES }), "JSON document", path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`not JSON: ${oneLine((e as Error).message, 120)}`, path);
  }
}

function checked<T>(schema: z.ZodType<T>, raw: unknown, what: string, path: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new InputError(`not a dmalab ${what} --json document: ${i.path.join(".") || "(top level)"}: ${i.message.slice(0, 160)}`, path);
  }
  return r.data;
}

const outcomes = z.strictObject({ exit0: count, exit1: count, exit2: count, exit3: count, exit4: count });
const FuzzDoc = z.strictObject({
  schema: z.literal("dmalab/fuzz-guest@1"),
  seed: count,
  first: count,
  programs: z.number().int().min(1),
  shard: z.strictObject({ k: count, n: z.number().int().min(1) }).nullable(),
  run: count,
  outcomes,
  steps: z.strictObject(Object.fromEntries(STEP_KINDS.map((k) => [k, count])) as Record<StepKind, typeof count>),
  failures: z
    .array(
      z.strictObject({
        kind: z.enum(FAILURE_KINDS),
        index: count,
        seed: count,
        config: z.looseObject({}),
        message: z.string().max(300),
        elapsedMs: z.number().min(0),
      }),
    )
    .max(100_000),
  rssMb: z.strictObject({ start: count, max: count }),
  slowestMs: count,
  elapsedMs: count,
});

function text(m: MergeDoc): string[] {
  const o = [`dmalab merge: ${m.documents} soak documents (${m.configurations.join("; ")})`];
  o.push(`ops ${m.ops.toLocaleString("en-US")}, invariant checks ${m.invariantChecks.toLocaleString("en-US")}, lostBytes ${m.lostBytes}`);
  o.push(`faults injected: ${Object.entries(m.faultsInjected).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`);
  o.push(`invalid inputs: ${Object.entries(m.invalidInputs).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`);
  if (m.shards.n !== null) o.push(`shards: ${m.shards.present} of ${m.shards.n}${m.shards.missing.length ? `; missing ${m.shards.missing.slice(0, 20).join(", ")}${m.shards.missing.length > 20 ? ", …" : ""}` : ""}${m.shards.duplicates.length ? `; twice ${m.shards.duplicates.join(", ")}` : ""}`);
  o.push(m.violations.length === 0 ? "violations: none" : `violations: ${m.violations.length}`);
  for (const v of m.violations.slice(0, 20)) o.push(`  ${v.source}${v.shard ? ` (shard ${v.shard})` : ""}: ${v.invariant}: ${v.message}${v.reproFile ? ` [${v.reproFile}]` : ""}`);
  return o;
}

export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description("combine the --json documents of `dmalab soak` (or of `dmalab fuzz-guest`) shards into one summary")
    .argument("<files...>", "soak --json documents, or fuzz-guest --json documents")
    .option("--json", "one JSON document on stdout (dmalab/merge@1; for fuzz-guest documents dmalab/fuzz-guest@1)")
    .action((files: string[], o: { json?: boolean }) => {
      if (files.length > MAX_FILES) throw new UsageError(`${files.length} files: at most ${MAX_FILES}`);
      const raws = files.map((f) => ({ source: f, raw: readJson(f) }));
      const isFuzz = (r: unknown): boolean => (r as { schema?: unknown } | null)?.schema === "dmalab/fuzz-guest@1";
      if (raws.some((r) => isFuzz(r.raw))) {
        const other = raws.find((r) => !isFuzz(r.raw));
        if (other !== undefined) throw new InputError("not a fuzz-guest document, unlike the first fuzz-guest one: merge soak and fuzz-guest documents separately", other.source);
        const docs = raws.map((r) => ({ source: r.source, doc: checked(FuzzDoc, r.raw, "fuzz-guest", r.source) }));
        const first = docs[0]!.doc;
        const seen = new Set<string>();
        for (const { source, doc } of docs) {
          if (doc.seed !== first.seed || doc.first !== first.first || doc.programs !== first.programs)
            throw new InputError(`another campaign (seed ${doc.seed}, programs ${doc.first}+${doc.programs}) than the first document's (seed ${first.seed}, programs ${first.first}+${first.programs})`, source);
          const key = doc.shard === null ? "whole" : `${doc.shard.k}/${doc.shard.n}`;
          if (seen.has(key)) throw new InputError(`shard ${key} given twice`, source);
          seen.add(key);
        }
        const f = mergeCampaigns(docs.map((d) => d.doc));
        out(o.json === true ? JSON.stringify(f, null, 2) : fuzzText(f));
        flushAndExit(f.failures.length > 0 ? 3 : 0);
        return;
      }
      const m = mergeSoaks(raws.map((r) => ({ source: r.source, doc: checked(Doc, r.raw, "soak", r.source) })));
      if (o.json) printJson(m);
      else for (const l of text(m)) out(l);
      flushAndExit(m.violations.length > 0 || m.lostBytes > 0 ? 3 : 0);
    });
}
