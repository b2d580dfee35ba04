import { it } from "vitest";
import { resolveMachine, presetNames } from "../../../src/machine/preset.js";
import { kernelProfile, KERNEL_VERSIONS } from "../../../src/swiotlb/profile.js";
import { bootWithXen } from "../../../src/xen/guest/boot-xen.js";
it("matrix timing", () => {
  for (const m of presetNames()) for (const k of KERNEL_VERSIONS) for (const x of ["dom0", "domU"] as const) {
    if (m.startsWith("server")) continue;
    const t = performance.now();
    let r; try { r = bootWithXen(resolveMachine(m), kernelProfile(k), x).report; } catch (e) { console.log(m,k,x,"THROW",(e as Error).message); continue; }
    console.log(m, k, x, r.outcome, r.fault?.message.slice(0, 40) ?? r.devices.filter(d=>!d.probed).map(d=>d.name+":"+d.error).join(","), r.swiotlb.pool?.start, r.zones.max_pfn, (performance.now() - t).toFixed(0) + "ms");
  }
});
