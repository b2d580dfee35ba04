import type { Command } from "commander";

// placeholder: filled in by the module that owns this command
export function registerBoot(_program: Command): void {}
