// dmalab replay TRACE: the swiotlb slot choices of a trace (format: test/fixtures/samples/README.md).
// The trace is streamed line by line, so a trace of any length replays in bounded memory;
// the output is held until it passes HOLD_BYTES (an error in a short trace prints nothing on
// stdout), then streamed.

import type { Command } from "commander";
import { TraceReplayer } from "../../swiotlb/replay.js";
import { inputLines } from "../input-file.js";
import { StreamedOutput } from "../output.js";

/** One map of the trace: the slot and offset the pool chose, or full. */
export type ReplayMap = { id: string; slot: number; tlb_offset: string } | { id: string; full: true };

/** the longest trace line read (real lines are under 100 bytes) */
export const MAX_TRACE_LINE_BYTES = 4096;
/** output held back before it streams */
const HOLD_BYTES = 4 << 20;

function mapOf(line: string): ReplayMap {
  const [id = "", a = "", b = ""] = line.split(" ");
  return a === "full" ? { id, full: true } : { id, slot: Number(a), tlb_offset: b };
}

/** printJson's layout for one element of "maps" (two levels in) */
function jsonMap(line: string): string {
  return "    " + JSON.stringify(mapOf(line), null, 2).replace(/\n/g, "\n    ");
}

async function replayCommand(trace: string, json: boolean): Promise<void> {
  const r = new TraceReplayer(trace);
  const o = new StreamedOutput(HOLD_BYTES);
  let maps = 0;
  const warn = (w: string): void => {
    if (r.warningCount <= 100) process.stderr.write(`dmalab: warning: ${w}\n`);
  };
  for (const raw of inputLines(trace, { what: "trace", maxLineBytes: MAX_TRACE_LINE_BYTES })) {
    const line = r.line(raw, warn);
    if (line === null) continue;
    const h = r.header!;
    const text = !json ? line + "\n" : (maps === 0 ? jsonHead(trace, h.pool.nslabs, h.pool.nareas, h.profile.version) + "\n" : ",\n") + jsonMap(line);
    maps++;
    if (o.write(text)) await o.drain();
  }
  const { pool, profile } = r.finish();
  if (r.warningCount > 100) process.stderr.write(`dmalab: warning: and ${r.warningCount - 100} more warnings like these\n`);
  if (json) {
    const warnings = r.warningCount > r.warnings.length ? [...r.warnings, `and ${r.warningCount - r.warnings.length} more warnings`] : r.warnings;
    const tail = JSON.stringify(warnings, null, 2).replace(/\n/g, "\n  ");
    o.write((maps === 0 ? jsonHead(trace, pool.nslabs, pool.nareas, profile.version) + "]" : "\n  ]") + `,\n  "warnings": ${tail}\n}\n`);
  }
  await o.end();
}

/** printJson's layout up to the opening of "maps" */
function jsonHead(trace: string, nslabs: number, nareas: number, kernel: string): string {
  const head = JSON.stringify({ schema: "dmalab/replay@1", trace, pool: { nslabs, nareas, kernel } }, null, 2);
  return head.slice(0, -2) + `,\n  "maps": [`;
}

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description("replay a swiotlb trace through the pool; prints '<id> <first_slot> <tlb_offset>' or '<id> full' per map")
    .argument("<trace>", "trace file ('pool slots=N areas=A kernel=6.x|5.13', then map/unmap lines)")
    .option("--json", "one JSON document on stdout")
    .action((trace: string, o: { json?: boolean }) => replayCommand(trace, o.json === true));
}
