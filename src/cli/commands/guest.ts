import type { Command } from "commander";

// placeholder: filled in by the module that owns this command
export function registerGuest(_program: Command): void {}
