import { describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { Hypercalls, type HypercallRegs } from "../../../src/xen/guest/hypercall.js";
import { XENFEAT_direct_mapped, XENFEAT_dom0, XENFEAT_not_direct_mapped } from "../../../src/xen/guest/features.js";
import { XenGuest, xenDtCompatible } from "../../../src/xen/guest/xen.js";
import { xenSwiotlbDetect } from "../../../src/xen/guest/swiotlb-xen-detect.js";
import { kernelProfile } from "../../../src/swiotlb/profile.js";

const MiB = 1 << 20;

/** A register-level fake of xen_version(XENVER_get_features) that reads/writes guest memory. */
function fakeXen(mem: PhysicalMemory, submap: number, seen: bigint[][] = []): (r: HypercallRegs) => void {
  return (r) => {
    seen.push([r.x[16]!, r.x[0]!, r.x[1]!]);
    if (r.x[16] !== 17n) return void (r.x[0] = BigInt.asUintN(64, -38n));
    if (r.x[0] !== 6n) return void (r.x[0] = BigInt.asUintN(64, -38n));
    const p = Number(r.x[1]);
    if (mem.read32(p) !== 0) return void (r.x[0] = BigInt.asUintN(64, -22n));
    mem.write32(p + 4, submap);
    r.x[0] = 0n;
  };
}

function guest(submap: number, seen?: bigint[][]): { xen: XenGuest; mem: PhysicalMemory } {
  const mem = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 4 * MiB }] });
  const xen = new XenGuest(new Hypercalls(fakeXen(mem, submap, seen), mem), 0x4000_1000);
  return { xen, mem };
}

describe("xen_setup_features / xen_early_init", () => {
  it("fills xen_features[] from XENVER_get_features through a struct in guest memory", () => {
    const seen: bigint[][] = [];
    const { xen, mem } = guest(0x00026805, seen);
    xen.earlyInit(xenDtCompatible("4.16"));
    expect(seen).toEqual([[17n, 6n, 0x4000_1000n]]);
    expect(mem.read32(0x4000_1000)).toBe(0); // submap_idx written by the guest
    expect(xen.features.submap()).toBe(0x00026805);
    expect(xen.xenFeature(XENFEAT_dom0)).toBe(true);
    expect(xen.xenFeature(XENFEAT_direct_mapped)).toBe(true);
    expect(xen.xenFeature(XENFEAT_not_direct_mapped)).toBe(false);
    expect(xen.xenDomain()).toBe(true);
    expect(xen.xenInitialDomain()).toBe(true);
  });

  it("a domU (no XENFEAT_dom0) is a Xen domain but not the initial domain", () => {
    const { xen } = guest(0x00016005);
    xen.earlyInit(xenDtCompatible("4.17"));
    expect(xen.xenDomain()).toBe(true);
    expect(xen.xenInitialDomain()).toBe(false);
  });

  it("stays native without a usable hypervisor DT node, and makes no hypercall", () => {
    for (const compat of [undefined, ["xen,xen"], ["xen,xen-", "xen,xen"], ["foo,bar-4.15", "xen,xen"], ["xen,xen-4.15"]]) {
      const seen: bigint[][] = [];
      const { xen } = guest(0x00006805, seen);
      xen.earlyInit(compat);
      expect(xen.xenDomain(), JSON.stringify(compat)).toBe(false);
      expect(xen.xenInitialDomain()).toBe(false);
      expect(seen).toHaveLength(0);
    }
  });

  it("a failing XENVER_get_features leaves every feature clear", () => {
    const mem = new PhysicalMemory({ banks: [{ base: 0, size: 4 * MiB }] });
    const xen = new XenGuest(new Hypercalls((r) => void (r.x[0] = BigInt.asUintN(64, -38n)), mem), 0x1000);
    xen.earlyInit(xenDtCompatible("4.15"));
    expect(xen.xenDomain()).toBe(true);
    expect(xen.features.submap()).toBe(0);
    expect(xen.xenInitialDomain()).toBe(false);
  });

  it("without CONFIG_XEN_DOM0 xen_initial_domain() is constant false", () => {
    const mem = new PhysicalMemory({ banks: [{ base: 0, size: 4 * MiB }] });
    const xen = new XenGuest(new Hypercalls(fakeXen(mem, 0x00006805), mem), 0x1000, false);
    xen.earlyInit(xenDtCompatible("4.15"));
    expect(xen.xenInitialDomain()).toBe(false);
  });
});

describe("xen_swiotlb_detect", () => {
  // [submap, dom0?] → expected per profile
  const cases: { what: string; submap: number; native?: boolean; v512: boolean; v513: boolean }[] = [
    { what: "4.15 dom0 (no direct-map bits: legacy rule)", submap: 0x00006805, v512: true, v513: true },
    { what: "4.16 dom0 direct-mapped", submap: 0x00026805, v512: true, v513: true },
    { what: "4.16 domU not direct-mapped", submap: 0x00016005, v512: false, v513: false },
    { what: "4.16 dom0less domU direct-mapped", submap: 0x00026005, v512: false, v513: true },
    { what: "4.15 domU (neither bit, not dom0)", submap: 0x00006005, v512: false, v513: false },
    { what: "dom0 that reports not_direct_mapped", submap: 0x00016805, v512: true, v513: false },
    { what: "native", submap: 0, native: true, v512: false, v513: false },
  ];
  for (const c of cases)
    it(c.what, () => {
      const { xen } = guest(c.submap);
      if (!c.native) xen.earlyInit(xenDtCompatible("4.16"));
      expect(xenSwiotlbDetect(xen, kernelProfile("5.12"))).toBe(c.v512);
      for (const v of ["5.13-rc1", "5.13", "6.x"]) expect(xenSwiotlbDetect(xen, kernelProfile(v)), v).toBe(c.v513);
    });
});
