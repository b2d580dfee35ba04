// dmalab replay TRACE: the swiotlb slot choices of a trace (format: test/fixtures/samples/README.md).

import { readFileSync, statSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../../errors.js";
import { replayTrace } from "../../swiotlb/replay.js";
import { printJson } from "../output.js";

/** One map of the trace: the slot and offset the pool chose, or full. */
export type ReplayMap = { id: string; slot: number; tlb_offset: string } | { id: string; full: true };

function mapOf(line: string): ReplayMap {
  const [id = "", a = "", b = ""] = line.split(" ");
  return a === "full" ? { id, full: true } : { id, slot: Number(a), tlb_offset: b };
}

function readTrace(trace: string): string {
  try {
    if (statSync(trace).isDirectory()) throw new InputError("is a directory, not a trace file", trace);
    return readFileSync(trace, "utf8");
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot read trace (${(e as NodeJS.ErrnoException).code ?? "error"})`, trace);
  }
}

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description("replay a swiotlb trace through the pool; prints '<id> <first_slot> <tlb_offset>' or '<id> full' per map")
    .argument("<trace>", "trace file ('pool slots=N areas=A kernel=6.x|5.13', then map/unmap lines)")
    .option("--json", "one JSON document on stdout")
    .action((trace: string, o: { json?: boolean }) => {
      const r = replayTrace(readTrace(trace), trace);
      for (const w of r.warnings) process.stderr.write(`dmalab: warning: ${w}\n`);
      if (o.json)
        printJson({
          schema: "dmalab/replay@1",
          trace,
          pool: { nslabs: r.pool.nslabs, nareas: r.pool.nareas, kernel: r.profile.version },
          maps: r.lines.map(mapOf),
          warnings: r.warnings,
        });
      else process.stdout.write(r.lines.length ? r.lines.join("\n") + "\n" : "");
    });
}
