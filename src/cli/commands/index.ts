import type { Command } from "commander";
import { registerReplay } from "./replay.js";
import { registerRun } from "./run.js";
import { registerBoot } from "./boot.js";
import { registerGuest } from "./guest.js";
import { registerBench } from "./bench.js";
import { registerMachines } from "./machines.js";
import { registerDt } from "./dt.js";
import { registerFuzzGuest } from "./fuzz-guest.js";
import { registerSoak } from "./soak.js";
import { registerMerge } from "./merge.js";

export function registerCommands(program: Command): void {
  registerReplay(program);
  registerRun(program);
  registerBoot(program);
  registerGuest(program);
  registerBench(program);
  registerMachines(program);
  registerDt(program);
  registerFuzzGuest(program);
  registerSoak(program);
  registerMerge(program);
}
