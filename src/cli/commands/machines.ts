// dmalab machines: the names `--machine` takes, one line each (RAM, CPUs, devices, what it is).

import type { Command } from "commander";
import { hex } from "../../errors.js";
import { DEFAULT_MACHINE, machineNames, resolveMachineArg } from "../../machine/builder.js";
import { formatSize } from "../../machine/units.js";
import { totalRam } from "../../machine/preset.js";
import { out, printJson } from "../output.js";

export function registerMachines(program: Command): void {
  program
    .command("machines")
    .description("list the machines --machine takes by name (presets and the embedded demo board)")
    .option("--json", "one JSON document on stdout")
    .action((o: { json?: boolean }) => {
      const rows = machineNames().map((name) => {
        const d = resolveMachineArg(name);
        return {
          name,
          default: name === DEFAULT_MACHINE,
          ramBytes: totalRam(d),
          banks: d.ram.map((b) => ({ base: hex(b.base), size: hex(b.size) })),
          cpus: d.cpus,
          devices: d.devices.map((x) => `${x.driver} ${x.name}`),
          description: d.description,
        };
      });
      if (o.json) {
        printJson({ schema: "dmalab/machines@1", machines: rows });
        return;
      }
      const w = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows)
        out(`${r.name.padEnd(w)}  ${formatSize(r.ramBytes).padStart(8)}  ${r.cpus} CPU${r.cpus === 1 ? "" : "s"}  ${r.description || r.devices.join(", ")}${r.default ? " (default)" : ""}`);
    });
}
