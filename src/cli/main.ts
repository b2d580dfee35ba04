// dmalab command line. Each command lives in its own module under commands/; this file only
// wires them up and owns the one exit-code table (see ../errors.ts).

import { Command, CommanderError } from "commander";
import { DmalabError, EXIT_USAGE, EXIT_FAULT } from "../errors.js";
import { registerCommands } from "./commands/index.js";
import { watchOutput } from "./output.js";

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("dmalab")
    .description("Emulated arm64 physical memory, a Linux-faithful swiotlb, dma-direct, a Xen stub and a Unicorn arm64 CPU")
    .version("0.1.0")
    .showHelpAfterError(false)
    // commander's own errors ("error: option … is invalid") get the one prefix every error has
    .configureOutput({
      writeErr: (s) =>
        process.stderr.write(
          s
            .replace(/^error: /, "dmalab: ")
            .split("\n")
            .map((l) => (l.length > MAX_ERROR_LINE ? oneLine(l) : l))
            .join("\n"),
        ),
    });
  registerCommands(program);
  // every (sub)command reports usage errors through one path, with our exit code 2
  const override = (c: Command): void => {
    c.exitOverride();
    for (const sub of c.commands) override(sub);
  };
  override(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  watchOutput();
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    return reportError(e);
  }
}

export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // help and version are not errors
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return 0;
    // commander has already printed its one-line message
    return EXIT_USAGE;
  }
  if (e instanceof DmalabError) {
    process.stderr.write(`dmalab: ${oneLine(e.message)}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`dmalab: internal error: ${oneLine(msg)}\n`);
  return EXIT_FAULT;
}

/** the longest error line printed: messages quote long values by their start, this is the backstop */
export const MAX_ERROR_LINE = 400;

/** The first line of a message, cut to MAX_ERROR_LINE characters (saying how long it was). */
export function oneLine(msg: string): string {
  const first = msg.split("\n", 1)[0] ?? "";
  if (first.length <= MAX_ERROR_LINE) return first;
  return `${first.slice(0, MAX_ERROR_LINE - 40)}… (${first.length} characters in all)`;
}
