import type { Command } from "commander";

// placeholder: filled in by the module that owns this command
export function registerRun(_program: Command): void {}
