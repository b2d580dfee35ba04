// dmalab replay TRACE: the swiotlb slot choices of a trace (format: samples/README.md).

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../../errors.js";
import { replayTrace } from "../../swiotlb/replay.js";

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description("replay a swiotlb trace through the pool; prints '<id> <first_slot> <tlb_offset>' or '<id> full' per map")
    .argument("<trace>", "trace file ('pool slots=N areas=A kernel=6.x|5.13', then map/unmap lines)")
    .action((trace: string) => {
      let text: string;
      try {
        text = readFileSync(trace, "utf8");
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? "error";
        throw new InputError(`cannot read trace '${trace}' (${code})`);
      }
      const r = replayTrace(text, trace);
      for (const w of r.warnings) process.stderr.write(`dmalab: warning: ${w}\n`);
      process.stdout.write(r.lines.length ? r.lines.join("\n") + "\n" : "");
    });
}
