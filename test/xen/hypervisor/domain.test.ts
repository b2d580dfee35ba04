import { describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { XenHypervisor, guestLayout } from "../../../src/xen/hypervisor/hypervisor.js";
import { P2M } from "../../../src/xen/hypervisor/p2m.js";
import { InvalidArgumentError, LimitError, UsageError } from "../../../src/errors.js";
import { GiB, MiB, machine } from "./helpers.js";

describe("P2M", () => {
  it("maps, looks up, removes, and remembers the highest gfn ever mapped", () => {
    const p = new P2M(40);
    expect(p.insert(0x1000, 0x80000, 3)).toBe(true);
    expect(p.lookup(0x1002)).toEqual({ mfn: 0x80002, type: "ram_rw" });
    expect(p.lookupMfn(0x1003)).toBe(-1);
    expect(p.remove(0x1001, 5)).toBe(2);
    expect(p.size).toBe(1);
    expect(p.maxMappedGfn).toBe(0x1002);
    expect(p.insert(2 ** 28 - 1, 5)).toBe(true);
    expect(p.insert(2 ** 28, 5)).toBe(false); // beyond a 40-bit IPA space
    expect(p.snapshot()).toBe(`0x1000+1->0x80000:ram_rw 0xfffffff+1->0x5:ram_rw`);
  });
  it("reports 2 MiB chunks backed by one aligned machine block", () => {
    const p = new P2M();
    p.insert(0x40000, 0x90000, 512);
    expect(p.contiguousChunk(0x401ff)).toBe(0x90000);
    p.insert(0x40200, 0x90201, 512);
    expect(p.contiguousChunk(0x40200)).toBeUndefined(); // not 2 MiB aligned in machine space
    p.remove(0x40005);
    expect(p.contiguousChunk(0x40000)).toBeUndefined();
  });
});

describe("domains", () => {
  it("dom0 is direct-mapped, hardware + control, max order 18; a domU 9, with passthrough 10", () => {
    const { hv, dom0 } = machine({}, 64 * MiB);
    expect([dom0.id, dom0.isHardware, dom0.isControl, dom0.directMapped, dom0.maxOrder]).toEqual([0, true, true, true, 18]);
    const u = hv.createDomain({ role: "domU", size: 2 * MiB });
    const p = hv.createDomain({ role: "domU", size: 2 * MiB, passthrough: true });
    expect([u.id, u.maxOrder, p.id, p.maxOrder]).toEqual([1, 9, 2, 10]);
    expect(dom0.p2m.lookup(0x40123)).toEqual({ mfn: 0x40123, type: "ram_rw" });
    expect(dom0.totPages).toBe((32 * MiB) / 4096);
    expect(hv.check()).toEqual([]);
  });

  it("a domU beyond 3 GiB spills into GUEST_RAM1", () => {
    expect(guestLayout(4 * GiB)).toEqual([
      { base: 0x4000_0000, size: 3 * GiB },
      { base: 0x2_0000_0000, size: GiB },
    ]);
    const mem = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 5 * GiB }] });
    const hv = new XenHypervisor(mem);
    const u = hv.createDomain({ role: "domU", size: 4 * GiB });
    expect(u.ram).toEqual(guestLayout(4 * GiB));
    expect(u.p2m.contiguousChunk(0x2_0000_0000 / 4096)).toBeDefined();
    expect(u.p2m.lookup(0x1_0000_0000 / 4096)).toBeUndefined();
  });

  it("a direct-mapped domain placed by size gets 1:1 blocks, low memory first", () => {
    const mem = new PhysicalMemory({ banks: [{ base: 0x8000_0000, size: 256 * MiB }, { base: 0x8_0000_0000, size: 256 * MiB }] });
    const hv = new XenHypervisor(mem);
    const d = hv.createDomain({ role: "dom0", size: 64 * MiB });
    const bad = [...d.p2m].filter(([g, e]) => e.mfn !== g || e.mfn * 4096 >= 2 ** 32);
    expect(bad).toEqual([]);
    expect(d.p2m.size).toBe(16384);
    expect(d.totPages).toBe(16384);
    expect(hv.check()).toEqual([]);
  });

  it("bad requests are typed errors that leave the heap untouched", () => {
    const { hv } = machine({}, 64 * MiB);
    const snap = hv.snapshot();
    expect(() => hv.createDomain({ role: "dom0", size: 2 * MiB })).toThrow(/dom0 already exists/);
    expect(() => hv.createDomain({ role: "domU", size: 2 * MiB, directMapped: true, exchange: "x86-pv" })).toThrow(InvalidArgumentError);
    expect(() => hv.createDomain({ role: "domU", directMapped: true, ramRanges: [{ base: 0x4000_0000, size: 4096 }] })).toThrow(/not free RAM/);
    expect(() => hv.createDomain({ role: "domU", size: 1000 })).toThrow(InvalidArgumentError);
    expect(() => hv.createDomain({ role: "domU", size: 64 * MiB })).toThrow(LimitError);
    expect(() => hv.createDomain({ role: "domU", size: 4096, id: 0x7ff0 })).toThrow(/domU id/);
    expect(hv.snapshot()).toBe(snap);
    expect(hv.check()).toEqual([]);
    expect(() => new XenHypervisor(hv.mem, { version: "4.14" as "4.15" })).toThrow(UsageError);
  });

  it("destroying a domain returns all its pages", () => {
    const { hv } = machine({}, 64 * MiB);
    const free = hv.frames.freeFrames;
    const u = hv.createDomain({ role: "domU", size: 8 * MiB });
    expect(hv.frames.freeFrames).toBe(free - 2048);
    hv.destroyDomain(u);
    expect(hv.frames.freeFrames).toBe(free);
    expect(hv.check()).toEqual([]);
    expect(() => hv.dispatch(u, { x: new BigUint64Array(31) })).toThrow(/unknown domain/);
  });
});
