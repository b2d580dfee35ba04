// dmalab command line. Each command lives in its own module under commands/; this file only
// wires them up and owns the one exit-code table (see ../errors.ts).

import { Command, CommanderError } from "commander";
import { DmalabError, EXIT_USAGE, EXIT_FAULT } from "../errors.js";
import { registerCommands } from "./commands/index.js";
import { quietOnClosedPipe } from "./output.js";

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("dmalab")
    .description("Emulated arm64 physical memory, a Linux-faithful swiotlb, dma-direct, a Xen stub and a Unicorn arm64 CPU")
    .version("0.1.0")
    .showHelpAfterError(false)
    // commander's own errors ("error: option … is invalid") get the one prefix every error has
    .configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/^error: /, "dmalab: ")) });
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
  quietOnClosedPipe();
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
    process.stderr.write(`dmalab: ${e.message.split("\n")[0]}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`dmalab: internal error: ${msg.split("\n")[0]}\n`);
  return EXIT_FAULT;
}
