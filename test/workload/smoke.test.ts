import { it } from "vitest";
import { Machine } from "../../src/machine/machine.js";
import { bootMachine, formatBootReport } from "../../src/machine/boot.js";
import { demoMachine } from "../../src/machine/demo.js";
import { resolveMachine } from "../../src/machine/preset.js";
import { MachineDmaTarget } from "../../src/machine/dma-target.js";
import { runWorkload } from "../../src/workload/index.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";
it("smoke", () => {
  for (const k of ["6.x", "5.13"]) for (const w of ["ring", "pingpong", "sg"] as const) {
    const m = new Machine(demoMachine(), kernelProfile(k));
    const r = bootMachine(m);
    if (w === "ring") console.log(formatBootReport(r).join("\n"), r.log.join("\n"));
    const t = new MachineDmaTarget(m);
    const s = runWorkload(t, m.devices.filter((d) => d.probed), { workload: w, ops: 2000, seed: 1 });
    const { devices, ...rest } = s;
    console.log(k, JSON.stringify(rest));
  }
  for (const n of ["rpi4-1g", "rpi4-8g", "server-64g", "qemu-virt-2g"]) for (const k of ["5.13-rc1", "6.x"]) {
    const m = new Machine(resolveMachine(n), kernelProfile(k));
    const r = bootMachine(m);
    console.log(formatBootReport(r).join("\n"));
    const t = new MachineDmaTarget(m);
    const s = runWorkload(t, m.devices.filter((d) => d.probed), { workload: "ring", ops: 2000, seed: 1 });
    const { devices, ...rest } = s;
    console.log(n, k, JSON.stringify(rest));
  }
});
