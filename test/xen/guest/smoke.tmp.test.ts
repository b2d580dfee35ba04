import { it } from "vitest";
import { resolveMachine } from "../../../src/machine/preset.js";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { XenHypervisor } from "../../../src/xen/hypervisor/hypervisor.js";
import { kernelProfile } from "../../../src/swiotlb/profile.js";
import { bootWithXen } from "../../../src/xen/guest/boot-xen.js";
it("prof", () => {
  const d = resolveMachine("server-64g");
  let t = performance.now();
  const host = new PhysicalMemory({ banks: d.ram.map(b => ({ base: b.base, size: b.size })) });
  const hv = new XenHypervisor(host, {});
  console.log("hv", performance.now() - t); t = performance.now();
  hv.createDomain({ role: "dom0", size: 4 * 2 ** 30 });
  console.log("dom0", performance.now() - t); t = performance.now();
  bootWithXen(d, kernelProfile("5.13"), "dom0");
  console.log("boot", performance.now() - t); t = performance.now();
});
