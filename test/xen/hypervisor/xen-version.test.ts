import { describe, expect, it } from "vitest";
import { HYPERCALL, XENVER, XEN_ERRNO } from "../../../src/xen/hypervisor/public.js";
import { readCString, readFeatureInfo, writeFeatureInfo } from "../../../src/xen/hypervisor/guest-structs.js";
import { XEN_VERSIONS, type XenVersion } from "../../../src/xen/hypervisor/version.js";
import { hcall, machine, MiB } from "./helpers.js";

const V = HYPERCALL.xen_version;
const E = (e: keyof typeof XEN_ERRNO): bigint => -BigInt(XEN_ERRNO[e]);

describe("xen_version", () => {
  it("XENVER_version encodes major << 16 | minor for every release", () => {
    for (const v of XEN_VERSIONS) {
      const { hv, dom0 } = machine({ version: v }, 16 * MiB);
      const minor = Number(v.split(".")[1]);
      expect(hcall(hv, dom0, V, XENVER.version, 0).ret).toBe(BigInt(0x40000 + minor));
    }
    const { hv, dom0 } = machine({}, 16 * MiB);
    expect(hcall(hv, dom0, V, XENVER.version, 0).ret).toBe(0x0004000fn);
  });

  const table: [XenVersion, "dom0" | "domU", number][] = [
    ["4.15", "dom0", 0x00006805],
    ["4.16", "dom0", 0x00026805],
    ["4.17", "dom0", 0x00026805],
    ["4.18", "dom0", 0x00066805],
    ["4.19", "dom0", 0x00066805],
    ["4.16", "domU", 0x00016005],
    ["4.17", "domU", 0x00016005],
    ["4.18", "domU", 0x00056005],
    ["4.19", "domU", 0x00056005],
    ["4.15", "domU", 0x00006005],
  ];
  for (const [v, role, want] of table)
    it(`XENVER_get_features on Xen ${v}, ${role}: ${want.toString(16)}`, () => {
      const { hv, dom0 } = machine({ version: v }, 64 * MiB);
      const d = role === "dom0" ? dom0 : hv.createDomain({ role: "domU", size: 8 * MiB });
      const g = hv.guestMemory(d);
      const buf = role === "dom0" ? 0x4000_1000 : 0x4000_2000;
      writeFeatureInfo(g, buf, 0, 0xffffffff);
      expect(hcall(hv, d, V, XENVER.get_features, buf).ret).toBe(0n);
      expect(readFeatureInfo(g, buf)).toEqual({ submapIdx: 0, submap: want });
    });

  it("XENVER_get_features: a direct-mapped domU reports direct_mapped (4.16+)", () => {
    const { hv, mem } = machine({ version: "4.16" }, 64 * MiB);
    const d = hv.createDomain({ role: "domU", directMapped: true, ramRanges: [{ base: 0x4000_0000 + 40 * MiB, size: 4 * MiB }] });
    const buf = 0x4000_0000 + 40 * MiB;
    writeFeatureInfo(mem, buf, 0);
    expect(hcall(hv, d, V, XENVER.get_features, buf).ret).toBe(0n);
    expect(readFeatureInfo(mem, buf).submap).toBe(0x00026005);
  });

  it("XENVER_get_features: submap_idx != 0 is -EINVAL and writes nothing; bad pointer is -EFAULT", () => {
    const { hv, dom0, mem } = machine({}, 16 * MiB);
    writeFeatureInfo(mem, 0x4000_0100, 1, 0x1234);
    expect(hcall(hv, dom0, V, XENVER.get_features, 0x4000_0100).ret).toBe(E("EINVAL"));
    expect(readFeatureInfo(mem, 0x4000_0100)).toEqual({ submapIdx: 1, submap: 0x1234 });
    // beyond dom0's RAM (dom0 has the first 8 MiB of the 16 MiB bank)
    expect(hcall(hv, dom0, V, XENVER.get_features, 0x4000_0000 + 8 * MiB).ret).toBe(E("EFAULT"));
    expect(hcall(hv, dom0, V, XENVER.get_features, 0).ret).toBe(E("EFAULT"));
    // straddling the end of RAM
    expect(hcall(hv, dom0, V, XENVER.get_features, 0x4000_0000 + 8 * MiB - 4).ret).toBe(E("EFAULT"));
  });

  it("string sub-ops copy zero-padded buffers; failed copies are -EFAULT", () => {
    const { hv, dom0, mem } = machine({}, 16 * MiB);
    mem.fill(0x4000_0000, 2048, 0xaa);
    expect(hcall(hv, dom0, V, XENVER.extraversion, 0x4000_0000).ret).toBe(0n);
    expect(readCString(mem, 0x4000_0000, 16)).toBe(".0");
    expect(mem.read8(0x4000_000f)).toBe(0);
    expect(mem.read8(0x4000_0010)).toBe(0xaa); // exactly 16 bytes written
    expect(hcall(hv, dom0, V, XENVER.capabilities, 0x4000_0000).ret).toBe(0n);
    expect(readCString(mem, 0x4000_0000, 1024)).toBe("xen-3.0-aarch64 xen-3.0-armv7l ");
    expect(hcall(hv, dom0, V, XENVER.compile_info, 0x4000_0000).ret).toBe(0n);
    expect(readCString(mem, 0x4000_0000 + 64, 16)).toBe("dmalab");
    expect(hcall(hv, dom0, V, XENVER.changeset, 0x4000_0000).ret).toBe(0n);
    expect(hcall(hv, dom0, V, XENVER.platform_parameters, 0x4000_0000).ret).toBe(0n);
    expect(mem.read64(0x4000_0000)).toBe(0n);
    expect(hcall(hv, dom0, V, XENVER.guest_handle, 0x4000_0000).ret).toBe(0n);
    for (const cmd of [XENVER.extraversion, XENVER.compile_info, XENVER.capabilities, XENVER.changeset, XENVER.platform_parameters, XENVER.guest_handle, XENVER.commandline])
      expect(hcall(hv, dom0, V, cmd, 0x1000).ret).toBe(E("EFAULT"));
  });

  it("XENVER_pagesize: 4096 with a NULL argument, -EINVAL otherwise", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    expect(hcall(hv, dom0, V, XENVER.pagesize, 0).ret).toBe(4096n);
    expect(hcall(hv, dom0, V, XENVER.pagesize, 0x4000_0000).ret).toBe(E("EINVAL"));
  });

  it("privileged sub-ops: a domU reads <denied> for the command line and gets -EPERM for build_id", () => {
    const { hv, dom0, mem } = machine({ build: { commandline: "dom0_mem=128M loglvl=all" } }, 64 * MiB);
    const u = hv.createDomain({ role: "domU", size: 4 * MiB });
    const g = hv.guestMemory(u);
    expect(hcall(hv, u, V, XENVER.commandline, 0x4000_0000).ret).toBe(0n);
    expect(readCString(g, 0x4000_0000, 64)).toBe("<denied>");
    expect(hcall(hv, dom0, V, XENVER.commandline, 0x4000_0000).ret).toBe(0n);
    expect(readCString(mem, 0x4000_0000, 1024)).toBe("dom0_mem=128M loglvl=all");
    expect(hcall(hv, u, V, XENVER.build_id, 0).ret).toBe(E("EPERM"));
    expect(hcall(hv, dom0, V, XENVER.build_id, 0).ret).toBe(20n);
    mem.write32(0x4000_0000, 0);
    expect(hcall(hv, dom0, V, XENVER.build_id, 0x4000_0000).ret).toBe(E("EINVAL"));
    mem.write32(0x4000_0000, 8);
    expect(hcall(hv, dom0, V, XENVER.build_id, 0x4000_0000).ret).toBe(-105n);
    mem.write32(0x4000_0000, 64);
    expect(hcall(hv, dom0, V, XENVER.build_id, 0x4000_0000).ret).toBe(20n);
  });

  it("unknown sub-ops (including later releases' *2 variants and negative ints) are -ENOSYS", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    for (const cmd of [11, 12, 13, 14, 99, 0xffffffff])
      expect(hcall(hv, dom0, V, cmd, 0).ret).toBe(E("ENOSYS"));
    // cmd is a C int: the upper 32 bits of x0 are ignored
    expect(hcall(hv, dom0, V, 0x1_0000_0000n, 0).ret).toBe(0x4000fn);
  });
});

describe("XENFEAT_direct_mapped for a non-translated domain", () => {
  // xen/common/kernel.c XENVER_get_features (4.16+, d66bf122c0ab): direct_mapped is reported
  // when the domain is not paging_mode_translate or is direct-mapped; not_direct_mapped otherwise
  it("a non-translated domU gets direct_mapped (17), not not_direct_mapped (16); 4.15 reports neither", () => {
    for (const v of ["4.15", "4.16", "4.19"] as const) {
      const { hv } = machine({ version: v }, 64 * MiB);
      const d = hv.createDomain({ role: "domU", size: 8 * MiB, exchange: "x86-pv", autoTranslated: false });
      const g = hv.guestMemory(d);
      writeFeatureInfo(g, 0x4000_2000, 0);
      expect(hcall(hv, d, V, XENVER.get_features, 0x4000_2000).ret).toBe(0n);
      const submap = readFeatureInfo(g, 0x4000_2000).submap;
      expect((submap >>> 17) & 1).toBe(v === "4.15" ? 0 : 1);
      expect((submap >>> 16) & 1).toBe(0);
      // no auto_translated_physmap / writable_page_tables for it
      expect(submap & 0b101).toBe(0);
    }
  });
});
