// `dmalab merge FILES…`: soak shards' --json documents into one summary (dmalab/merge@1).
// Exit 3 when a shard found a violation or lost bytes, 2 for an unreadable or foreign file.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { InputError, UsageError } from "../../errors.js";
import { mergeSoaks, type MergeDoc, type ShardDoc } from "../../soak/merge.js";
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

function readDoc(path: string): ShardDoc {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new InputError(`cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, path);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError("not a regular file", path);
    if (st.size > MAX_DOC_BYTES) throw new InputError(`${st.size} bytes: a soak document is at most ${MAX_DOC_BYTES}`, path);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw new InputError("not UTF-8 text", path);
    }
  } finally {
    closeSync(fd);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`not JSON: ${(e as Error).message.slice(0, 120)}`, path);
  }
  const r = Doc.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new InputError(`not a dmalab soak --json document: ${i.path.join(".") || "(top level)"}: ${i.message.slice(0, 160)}`, path);
  }
  return r.data;
}

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
    .description("combine `dmalab soak --json` documents (e.g. a sharded campaign's) into one summary")
    .argument("<files...>", "soak --json documents")
    .option("--json", "one JSON document on stdout (dmalab/merge@1)")
    .action((files: string[], o: { json?: boolean }) => {
      if (files.length > MAX_FILES) throw new UsageError(`${files.length} files: at most ${MAX_FILES}`);
      const m = mergeSoaks(files.map((f) => ({ source: f, doc: readDoc(f) })));
      if (o.json) printJson(m);
      else for (const l of text(m)) out(l);
      flushAndExit(m.violations.length > 0 || m.lostBytes > 0 ? 3 : 0);
    });
}
