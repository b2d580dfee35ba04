// dmalab fuzz-guest [--programs N] [--seed S] [--first I] [--shard K/N] [--max-insns N]
//   [--time-limit MS] [--max-rss MIB] [--save DIR] [--machine …] [--kernel …] [--xen …] [--json]
//
// Runs hostile guest programs (src/fuzz/hostile-program.ts) and checks that each ends in a
// defined outcome. Without machine flags the programs rotate over native, dom0 and domU
// machines of both kernel eras; with any of --machine/--kernel/--xen/--feature, all run on
// that one machine. Exit status: 0 when every program ended cleanly, 3 when one did not
// (the failures are listed with the flags that rerun them), 2 for bad flags.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { EXIT_FAULT, EXIT_OK, InputError } from "../../errors.js";
import { DEFAULT_FUZZ_CONFIGS, FAILURE_KINDS, runCampaign, shardIndices, type CampaignSummary, type FuzzFailure } from "../../fuzz/campaign.js";
import { createProgress } from "../progress.js";
import { STEP_KINDS } from "../../fuzz/hostile-program.js";
import type { MachineConfig } from "../../machine/builder.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { parseIntArg, parseShard } from "../parse.js";
import { flushAndExit, out } from "../output.js";

interface FuzzFlags extends MachineFlags {
  quiet?: boolean;
  programs: string;
  seed: string;
  first: string;
  shard?: string;
  maxInsns: string;
  timeLimit: string;
  maxRss: string;
  save?: string;
  json?: boolean;
}

/** The flags that rerun one program of a campaign alone. */
export function reproduceFlags(seed: number, f: FuzzFailure): string {
  const c = f.config;
  const parts = [`dmalab fuzz-guest --seed ${seed} --first ${f.index} --programs 1`];
  if (c.machine !== undefined && typeof c.machine === "string") parts.push(`--machine ${c.machine}`);
  parts.push(`--kernel ${c.kernel ?? "6.x"}`, `--xen ${c.xen ?? "none"}`);
  for (const ft of c.features ?? []) parts.push(`--feature ${ft}`);
  return parts.join(" ");
}

export function fuzzText(s: CampaignSummary): string {
  const lines: string[] = [];
  lines.push(
    `dmalab fuzz-guest: seed ${s.seed}, programs ${s.first}..${s.first + s.programs - 1}${s.shard ? `, shard ${s.shard.k}/${s.shard.n}` : ""}: ${s.run} run in ${(s.elapsedMs / 1000).toFixed(1)} s (slowest ${s.slowestMs} ms)`,
  );
  lines.push(`outcomes: ${Object.entries(s.outcomes).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  lines.push(`steps: ${STEP_KINDS.map((k) => `${k} ${s.steps[k]}`).join(", ")}`);
  lines.push(`host RSS: ${s.rssMb.start} MiB at start, ${s.rssMb.max} MiB at most`);
  if (s.failures.length === 0) lines.push("failures: 0");
  else {
    lines.push(`failures: ${s.failures.length} (${FAILURE_KINDS.map((k) => `${k} ${s.failures.filter((f) => f.kind === k).length}`).join(", ")})`);
    for (const f of s.failures.slice(0, 20)) lines.push(`  program ${f.index} (${f.kind}): ${f.message}\n    rerun: ${reproduceFlags(s.seed, f)}`);
    if (s.failures.length > 20) lines.push(`  … and ${s.failures.length - 20} more (--json lists them all)`);
  }
  return lines.join("\n");
}

export function registerFuzzGuest(program: Command): void {
  const c = program.command("fuzz-guest").description("run hostile guest programs (random hypercalls, DMA services, engine registers, random words) and check each ends cleanly");
  addMachineOptions(c)
    .option("--programs <n>", "programs in the campaign (before --shard)", "200")
    .option("--seed <s>", "campaign seed", "1")
    .option("--first <i>", "index of the first program (with --programs 1: rerun one program)", "0")
    .option("--shard <k/n>", "run only shard K of N (round-robin over the programs); merge the JSON with `dmalab merge`")
    .option("--max-insns <n>", "instruction limit per program", "1000000")
    .option("--time-limit <ms>", "wall-clock limit per program, in milliseconds", "10000")
    .option("--max-rss <mib>", "host memory cap: past it a program is a failure", "2048")
    .option("--save <dir>", "write each failing program there as a raw binary (for `dmalab guest`)")
    .option("--json", "machine-readable output (schema dmalab/fuzz-guest@1)")
    .option("--quiet", "no progress bar on the terminal")
    .action((o: FuzzFlags, cmd: Command) => {
      const programs = parseIntArg("--programs", o.programs, 1, 100_000_000);
      const seed = parseIntArg("--seed", o.seed, 0, 0xffff_ffff);
      const first = parseIntArg("--first", o.first, 0, Number.MAX_SAFE_INTEGER - programs);
      const maxInsns = parseIntArg("--max-insns", o.maxInsns, 1, 1_000_000_000);
      const timeLimitMs = parseIntArg("--time-limit", o.timeLimit, 1, 3_600_000);
      const maxRssMb = parseIntArg("--max-rss", o.maxRss, 64, 1 << 20);
      const shard = o.shard !== undefined ? parseShard(o.shard) : undefined;
      const given = ["machine", "kernel", "xen", "feature", "xenVersion", "swiotlb", "mem", "strict"].some((k) => cmd.getOptionValueSource(k) === "cli");
      const configs: readonly MachineConfig[] = given ? [machineConfig(o)] : DEFAULT_FUZZ_CONFIGS;
      if (o.save !== undefined) {
        try {
          mkdirSync(o.save, { recursive: true });
        } catch (e) {
          throw new InputError(`--save: cannot create the directory: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, o.save);
        }
      }
      const save = o.save;
      const progress = createProgress({ total: shardIndices(first, programs, shard).length, label: "fuzz-guest", unit: "programs", quiet: o.quiet, json: o.json });
      let s: CampaignSummary;
      try {
        s = runCampaign({
        seed,
        programs,
        first,
        ...(shard !== undefined ? { shard } : {}),
        configs,
        maxInsns,
        timeLimitMs,
        maxRssMb,
          ...(save !== undefined ? { onFailure: (f: FuzzFailure, img: Uint8Array) => writeFileSync(join(save, `fuzz-${seed}-${f.index}.bin`), img) } : {}),
          ...(progress.shown ? { onProgram: (done: number) => progress.update(done) } : {}),
        });
      } finally {
        progress.stop();
      }
      out(o.json === true ? JSON.stringify(s, null, 2) : fuzzText(s));
      flushAndExit(s.failures.length === 0 ? EXIT_OK : EXIT_FAULT);
    });
}
