import { beforeEach, describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../../src/memory/physical-memory.js";
import { XenHypervisor } from "../../../src/xen/hypervisor/hypervisor.js";
import type { Domain } from "../../../src/xen/hypervisor/domain.js";
import { DOMID_SELF, HYPERCALL, MEMOP_EXTENT_SHIFT, XENMEM, XEN_ERRNO } from "../../../src/xen/hypervisor/public.js";
import { FRAME_FREE } from "../../../src/xen/hypervisor/frame-allocator.js";
import { memFlags, readExchange, readPfnList, writeExchange, writeMemoryDomain, writePfnList, writeReservation } from "../../../src/xen/hypervisor/guest-structs.js";
import { hcall, machine, MiB } from "./helpers.js";

const M = HYPERCALL.memory_op;
const E = (e: keyof typeof XEN_ERRNO): bigint => -BigInt(XEN_ERRNO[e]);
const cmd = (op: number, start = 0n): bigint => BigInt(op) | (start << BigInt(MEMOP_EXTENT_SHIFT));

/** Every error path must leave the heap and the P2Ms consistent. */
function consistent(hv: XenHypervisor): void {
  expect(hv.check()).toEqual([]);
}

describe("memory_op reservation ops on a direct-mapped dom0", () => {
  const RES = 0x4010_0000; // reservation struct, dom0 RAM
  const LIST = 0x4010_1000;
  it("decrease keeps the frames, populate maps them back 1:1", () => {
    const { hv, dom0, mem } = machine();
    const gfns = [0x40200, 0x40201, 0x40300, 0x40301];
    writePfnList(mem, LIST, gfns);
    writeReservation(mem, RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0 });
    const tot = dom0.totPages;
    const free = hv.frames.freeFrames;
    expect(hcall(hv, dom0, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(4n);
    for (const g of gfns) {
      expect(dom0.p2m.lookup(g)).toBeUndefined();
      expect(hv.frames.ownerOf(g)).toBe(0);
    }
    expect(dom0.totPages).toBe(tot);
    expect(hv.frames.freeFrames).toBe(free);
    consistent(hv);
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(4n);
    for (const g of gfns) expect(dom0.p2m.lookup(g)).toEqual({ mfn: g, type: "ram_rw" });
    consistent(hv);
  });

  it("populate stops at a frame dom0 does not own; decrease stops at an unmapped gfn", () => {
    const { hv, dom0, mem } = machine();
    // 0x48000 is the first frame past dom0's 128 MiB: free heap
    writePfnList(mem, LIST, [0x40400, 0x48000, 0x40401]);
    writeReservation(mem, RES, { extentStart: LIST, nrExtents: 3, extentOrder: 0 });
    expect(hcall(hv, dom0, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(1n); // 0x48000 is not mapped: -EINVAL inside, stop
    const snap = hv.snapshot();
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(1n); // 0x40400 back, 0x48000 refused
    expect(dom0.p2m.lookup(0x48000)).toBeUndefined();
    expect(hv.frames.ownerOf(0x48000)).toBe(FRAME_FREE);
    expect(hv.snapshot()).not.toBe(snap);
    consistent(hv);
  });

  it("decrease of a foreign (grant-mapped) page stops with nothing removed from that extent", () => {
    const { hv, dom0, mem } = machine();
    const u = hv.createDomain({ role: "domU", size: 4 * MiB });
    const foreign = u.p2m.lookupMfn(0x40000);
    dom0.p2m.insert(0x3f000, foreign, 1, "grant_map_rw");
    writePfnList(mem, LIST, [0x3f000]);
    writeReservation(mem, RES, { extentStart: LIST, nrExtents: 1, extentOrder: 0 });
    const snap = hv.snapshot();
    expect(hcall(hv, dom0, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(0n);
    expect(hv.snapshot()).toBe(snap);
    dom0.p2m.remove(0x3f000);
    consistent(hv);
  });
});

describe("memory_op reservation ops on a domU (not direct-mapped)", () => {
  let hv: XenHypervisor;
  let dom0: Domain;
  let u: Domain;
  let mem: PhysicalMemory;
  const RES = 0x40f0_0000; // guest addresses inside the domU's 16 MiB at 1 GiB
  const LIST = 0x40f0_1000;
  beforeEach(() => {
    ({ hv, dom0, mem } = machine());
    u = hv.createDomain({ role: "domU", size: 16 * MiB });
  });
  const g = () => hv.guestMemory(u);

  it("gets its RAM at GUEST_RAM0_BASE in naturally aligned 2 MiB machine blocks", () => {
    expect(u.ram).toEqual([{ base: 0x4000_0000, size: 16 * MiB }]);
    expect(u.totPages).toBe(4096);
    expect(u.maxPages).toBe(4096);
    for (let c = 0; c < 8; c++) expect(u.p2m.contiguousChunk(0x40000 + c * 512)).toBeDefined();
    consistent(hv);
  });

  it("decrease frees to the heap, populate allocates anew, max_pages caps it", () => {
    writePfnList(g(), LIST, [0x40000, 0x40001]);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 2, extentOrder: 0 });
    const free = hv.frames.freeFrames;
    expect(hcall(hv, u, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(2n);
    expect(u.totPages).toBe(4094);
    expect(hv.frames.freeFrames).toBe(free + 2);
    consistent(hv);
    // three new gfns, but only two pages of headroom under max_pages
    writePfnList(g(), LIST, [0x50000, 0x50001, 0x50002]);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 3, extentOrder: 0 });
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(2n);
    expect(u.p2m.lookup(0x50001)?.type).toBe("ram_rw");
    expect(u.p2m.lookup(0x50002)).toBeUndefined();
    expect(u.totPages).toBe(4096);
    consistent(hv);
  });

  it("extent order above the caller's max order (9 for a domU) does nothing", () => {
    u.maxPages = 8192;
    writePfnList(g(), LIST, [0x60000]);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 1, extentOrder: 10 });
    const snap = hv.snapshot();
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(0n);
    expect(hcall(hv, u, M, cmd(XENMEM.increase_reservation), RES).ret).toBe(0n);
    expect(hcall(hv, u, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(0n);
    expect(hv.snapshot()).toBe(snap);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 1, extentOrder: 9 });
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(1n);
    expect(u.p2m.contiguousChunk(0x60000)).toBeDefined();
    // dom0 (control domain, max order 18) may populate order 10 for the domU
    writePfnList(mem, 0x4010_1000, [0x70000]);
    writeReservation(mem, 0x4010_0000, { extentStart: 0x4010_1000, nrExtents: 1, extentOrder: 10, domid: u.id });
    u.maxPages = 8192 + 1024;
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), 0x4010_0000).ret).toBe(1n);
    consistent(hv);
  });

  it("every front-end failure is a count, never an errno", () => {
    u.maxPages = 8192;
    writePfnList(g(), LIST, [0x60000, 0x60001, 0x60002, 0x60003]);
    const snap = hv.snapshot();
    const pop = (start: bigint, arg: number | bigint, dom: Domain = u) => hcall(hv, dom, M, cmd(XENMEM.populate_physmap, start), arg).ret;
    // the struct cannot be read
    expect(pop(0n, 0x1000)).toBe(0n);
    expect(pop(3n, 0x1000)).toBe(3n);
    // too many extents to encode a continuation
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 0x4000000, extentOrder: 0 });
    expect(pop(0n, RES)).toBe(0n);
    // start_extent >= nr_extents
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0 });
    expect(pop(4n, RES)).toBe(4n);
    expect(pop(7n, RES)).toBe(7n);
    // unknown domain, and a domU acting on dom0 (XSM target check)
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, domid: 77 });
    expect(pop(0n, RES)).toBe(0n);
    writePfnList(g(), LIST + 0x800, [0x40000, 0x40001, 0x40002, 0x40003]); // dom0's own gfns
    writeReservation(g(), RES, { extentStart: LIST + 0x800, nrExtents: 4, extentOrder: 0, domid: 0 });
    expect(hcall(hv, u, M, cmd(XENMEM.decrease_reservation, 1n), RES).ret).toBe(1n);
    expect(pop(0n, RES)).toBe(0n);
    // address_bits <= 12 while smaller than the host's address width
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ addressBits: 12 }) });
    expect(pop(0n, RES)).toBe(0n);
    // a domU's exact node request
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ node: 0, exactNode: true }) });
    expect(pop(0n, RES)).toBe(0n);
    // address_bits 30 on a machine whose RAM starts at 1 GiB: allocation fails at once
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ addressBits: 30 }) });
    expect(pop(0n, RES)).toBe(0n);
    // the extent list is not guest RAM
    writeReservation(g(), RES, { extentStart: 0x10_0000, nrExtents: 4, extentOrder: 0 });
    expect(pop(0n, RES)).toBe(0n);
    // populate-on-demand on oneself
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ populateOnDemand: true }) });
    expect(pop(0n, RES)).toBe(0n);
    expect(hv.snapshot()).toBe(snap);
    consistent(hv);
  });

  it("accepted flags: a node request without 'exact' is ignored for a domU; a too-wide address_bits is ignored", () => {
    u.maxPages = 8192;
    writePfnList(g(), LIST, [0x60000, 0x60001, 0x60002, 0x60003]);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 2, extentOrder: 0, memFlags: memFlags({ node: 3 }) });
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(2n);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ addressBits: 40 }) });
    // resume at extent 2 (start_extent in cmd >> 6)
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap, 2n), RES).ret).toBe(4n);
    writeReservation(g(), RES, { extentStart: LIST, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ addressBits: 31 }) });
    expect(hcall(hv, u, M, cmd(XENMEM.decrease_reservation), RES).ret).toBe(4n);
    // address_bits 31 is below the host width (RAM ends at 0x5000_0000, 31 bits): honoured
    expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(4n);
    for (const gfn of [0x60000, 0x60003]) expect(u.p2m.lookupMfn(gfn) * 4096).toBeLessThan(2 ** 31);
    consistent(hv);
  });

  it("dom0 node requests: node 0 accepted, node >= MAX_NUMNODES refused", () => {
    writePfnList(mem, 0x4010_1000, [0x40500]);
    writeReservation(mem, 0x4010_0000, { extentStart: 0x4010_1000, nrExtents: 1, extentOrder: 0 });
    expect(hcall(hv, dom0, M, cmd(XENMEM.decrease_reservation), 0x4010_0000).ret).toBe(1n);
    writeReservation(mem, 0x4010_0000, { extentStart: 0x4010_1000, nrExtents: 1, extentOrder: 0, memFlags: memFlags({ node: 1 }) });
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), 0x4010_0000).ret).toBe(0n);
    writeReservation(mem, 0x4010_0000, { extentStart: 0x4010_1000, nrExtents: 1, extentOrder: 0, memFlags: memFlags({ node: 0, exactNode: true }) });
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), 0x4010_0000).ret).toBe(1n);
    consistent(hv);
  });

  it("increase_reservation on arm counts pages against the domain but maps nothing", () => {
    u.maxPages = 4096 + 8;
    writeReservation(g(), RES, { extentStart: 0, nrExtents: 3, extentOrder: 2 });
    const size = u.p2m.size;
    expect(hcall(hv, u, M, cmd(XENMEM.increase_reservation), RES).ret).toBe(2n); // the third exceeds max_pages
    expect(u.totPages).toBe(4096 + 8);
    expect(u.p2m.size).toBe(size);
    consistent(hv);
  });

  it("maximum_ram_page, current/maximum_reservation, maximum_gpfn and their errors", () => {
    expect(hcall(hv, u, M, cmd(XENMEM.maximum_ram_page), 0).ret).toBe(0x50000n);
    expect(hcall(hv, u, M, cmd(XENMEM.maximum_ram_page, 1n), 0).ret).toBe(E("EINVAL"));
    writeMemoryDomain(g(), RES, DOMID_SELF);
    expect(hcall(hv, u, M, cmd(XENMEM.current_reservation), RES).ret).toBe(4096n);
    expect(hcall(hv, u, M, cmd(XENMEM.maximum_reservation), RES).ret).toBe(4096n);
    expect(hcall(hv, u, M, cmd(XENMEM.maximum_gpfn), RES).ret).toBe(BigInt(0x40000 + 4095));
    expect(hcall(hv, u, M, cmd(XENMEM.current_reservation, 1n), RES).ret).toBe(E("EINVAL"));
    expect(hcall(hv, u, M, cmd(XENMEM.current_reservation), 0x2000).ret).toBe(E("EFAULT"));
    writeMemoryDomain(g(), RES, 99);
    expect(hcall(hv, u, M, cmd(XENMEM.current_reservation), RES).ret).toBe(E("ESRCH"));
    writeMemoryDomain(g(), RES, 0);
    expect(hcall(hv, u, M, cmd(XENMEM.current_reservation), RES).ret).toBe(E("EPERM"));
    writeMemoryDomain(mem, 0x4010_0000, u.id);
    expect(hcall(hv, dom0, M, cmd(XENMEM.current_reservation), 0x4010_0000).ret).toBe(4096n);
    // sharing counters answer 0 on arm; other ops are not there
    expect(hcall(hv, u, M, cmd(XENMEM.get_sharing_freed_pages), 0).ret).toBe(0n);
    expect(hcall(hv, u, M, cmd(XENMEM.machphys_mfn_list), 0).ret).toBe(E("ENOSYS"));
    expect(hcall(hv, u, M, 63, 0).ret).toBe(E("ENOSYS"));
  });
});

describe("XENMEM_exchange, Xen/arm mode: validation, then -EOPNOTSUPP", () => {
  let hv: XenHypervisor;
  let u: Domain;
  const X = 0x40f0_0000; // struct
  const IN = 0x40f0_1000;
  const OUT = 0x40f0_2000;
  beforeEach(() => {
    ({ hv } = machine());
    u = hv.createDomain({ role: "domU", size: 16 * MiB });
    writePfnList(hv.guestMemory(u), IN, Array.from({ length: 8 }, (_, i) => 0x40010 + i));
    writePfnList(hv.guestMemory(u), OUT, [0x40010, 0x40014]);
  });
  const g = () => hv.guestMemory(u);
  const base = () => ({
    in: { extentStart: IN, nrExtents: 8, extentOrder: 0 },
    out: { extentStart: OUT, nrExtents: 2, extentOrder: 2 },
    nrExchanged: 0,
  });
  /** issue, and check that nothing but nr_exchanged may have changed */
  function exch(x: Parameters<typeof writeExchange>[2], start = 0n): { ret: bigint; nrExchanged: bigint } {
    writeExchange(g(), X, x);
    const before = g().read(X, 64);
    const snap = hv.snapshot();
    const ret = hcall(hv, u, M, cmd(XENMEM.exchange, start), X).ret;
    expect(g().read(X, 64)).toEqual(before);
    expect(hv.snapshot()).toBe(snap);
    consistent(hv);
    return { ret, nrExchanged: readExchange(g(), X).nrExchanged };
  }

  it("start_extent != 0 → -EINVAL", () => {
    expect(exch(base(), 1n).ret).toBe(E("EINVAL"));
  });
  it("unreadable struct → -EFAULT", () => {
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), 0x3000_0000).ret).toBe(E("EFAULT"));
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), 0x4000_0000 + 16 * MiB - 40).ret).toBe(E("EFAULT"));
  });
  it("an extent order above the caller's max order → -EPERM (checked before the counts)", () => {
    expect(exch({ ...base(), out: { extentStart: OUT, nrExtents: 1, extentOrder: 10 } }).ret).toBe(E("EPERM"));
    expect(exch({ ...base(), in: { extentStart: IN, nrExtents: 1, extentOrder: 0xffffffff } }).ret).toBe(E("EPERM"));
  });
  it("in/out frame totals that differ → -EINVAL", () => {
    expect(exch({ ...base(), out: { extentStart: OUT, nrExtents: 3, extentOrder: 2 } }).ret).toBe(E("EINVAL"));
  });
  it("frame totals that overflow 64 bits → -EINVAL, even when they wrap to equal values", () => {
    // 2^62 extents of order 2 wrap to 0 frames, as do 0 extents of order 0
    const r = exch({ in: { extentStart: IN, nrExtents: 1n << 62n, extentOrder: 2 }, out: { extentStart: OUT, nrExtents: 0, extentOrder: 0 }, nrExchanged: 0 });
    expect(r.ret).toBe(E("EINVAL"));
    const r2 = exch({ in: { extentStart: IN, nrExtents: 4, extentOrder: 0 }, out: { extentStart: OUT, nrExtents: (1n << 63n) + 1n, extentOrder: 1 }, nrExchanged: 0 });
    expect(r2.ret).toBe(E("EINVAL"));
  });
  it("nr_exchanged > in.nr_extents, or in.domid != out.domid → -EINVAL", () => {
    expect(exch({ ...base(), nrExchanged: 9 }).ret).toBe(E("EINVAL"));
    expect(exch({ ...base(), out: { extentStart: OUT, nrExtents: 2, extentOrder: 2, domid: u.id } }).ret).toBe(E("EINVAL"));
  });
  it("nr_exchanged == in.nr_extents → 0", () => {
    expect(exch({ ...base(), nrExchanged: 8 }).ret).toBe(0n);
  });
  it("an exact node request from a domU → -EINVAL", () => {
    expect(exch({ ...base(), out: { extentStart: OUT, nrExtents: 2, extentOrder: 2, memFlags: memFlags({ node: 0, exactNode: true }) } }).ret).toBe(E("EINVAL"));
  });
  it("unknown domain → -ESRCH; a domU exchanging dom0's memory → -EPERM", () => {
    const b = base();
    expect(exch({ ...b, in: { ...b.in, domid: 55 }, out: { ...b.out, domid: 55 } }).ret).toBe(E("ESRCH"));
    expect(exch({ ...b, in: { ...b.in, domid: 0 }, out: { ...b.out, domid: 0 } }).ret).toBe(E("EPERM"));
  });
  it("an input list outside guest RAM → -EFAULT", () => {
    const b = base();
    expect(exch({ ...b, in: { ...b.in, extentStart: 0x2000_0000 } }).ret).toBe(E("EFAULT"));
  });
  it("a frame the domain does not have (nothing mapped) → -EINVAL", () => {
    writePfnList(g(), IN, [0x7777]);
    expect(exch(base()).ret).toBe(E("EINVAL"));
  });
  it("a valid request reaches steal_page → -EOPNOTSUPP, nr_exchanged rounded down to a chunk", () => {
    expect(exch(base()).ret).toBe(E("EOPNOTSUPP"));
    // chunks of 4 inputs: progress 5 is reported back as 4
    writeExchange(g(), X, { ...base(), nrExchanged: 5 });
    const snap = hv.snapshot();
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("EOPNOTSUPP"));
    expect(readExchange(g(), X).nrExchanged).toBe(4n);
    expect(hv.snapshot()).toBe(snap);
  });
  it("fail_early writes nr_exchanged back: a read-only struct turns -EPERM into -EFAULT", () => {
    writeExchange(g(), X, { ...base(), out: { extentStart: OUT, nrExtents: 1, extentOrder: 10 } });
    const e = u.p2m.lookup(X / 4096)!;
    u.p2m.insert(X / 4096, e.mfn, 1, "ram_ro");
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("EFAULT"));
    // checks that return before fail_early are unaffected
    writeExchange(hv.mem, e.mfn * 4096, { ...base(), nrExchanged: 8 });
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(0n);
    u.p2m.insert(X / 4096, e.mfn, 1, "ram_rw");
    consistent(hv);
  });
});

describe("XENMEM_exchange, x86-PV mode", () => {
  // low bank at 1 GiB (dom0 takes half), high bank at 4 GiB: domU RAM comes from the high bank
  let hv: XenHypervisor;
  let u: Domain;
  const X = 0x40f0_0000;
  const IN = 0x40f0_1000;
  const OUT = 0x40f0_2000;
  beforeEach(() => {
    const mem = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 64 * MiB }, { base: 0x1_0000_0000, size: 64 * MiB }] });
    hv = new XenHypervisor(mem);
    hv.createDomain({ role: "dom0", ramRanges: [{ base: 0x4000_0000, size: 32 * MiB }] });
    u = hv.createDomain({ role: "domU", size: 16 * MiB, exchange: "x86-pv" });
  });
  const g = () => hv.guestMemory(u);

  it("makes a 2 MiB machine-contiguous region below address_bits out of 512 scattered frames", () => {
    const gfns = Array.from({ length: 512 }, (_, i) => 0x40200 + i);
    expect(u.p2m.lookupMfn(0x40200) * 4096).toBeGreaterThanOrEqual(2 ** 32);
    writePfnList(g(), IN, gfns);
    writePfnList(g(), OUT, [0x40200]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 512, extentOrder: 0 }, out: { extentStart: OUT, nrExtents: 1, extentOrder: 9, memFlags: memFlags({ addressBits: 32 }) } });
    const old = gfns.map((gf) => u.p2m.lookupMfn(gf));
    const tot = u.totPages;
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(0n);
    expect(readExchange(g(), X).nrExchanged).toBe(512n);
    const first = u.p2m.lookupMfn(0x40200);
    expect(first % 512).toBe(0);
    expect((first + 512) * 4096).toBeLessThanOrEqual(2 ** 32);
    gfns.forEach((gf, i) => expect(u.p2m.lookupMfn(gf)).toBe(first + i));
    for (const m of old) expect(hv.frames.ownerOf(m)).toBe(FRAME_FREE);
    expect(u.totPages).toBe(tot);
    // translated guest: the out list still holds the GFN, no MFN leaks back
    expect(readPfnList(g(), OUT, 1)).toEqual([0x40200n]);
    consistent(hv);
  });

  it("a request the allocator cannot satisfy under address_bits → -ENOMEM, everything given back", () => {
    writePfnList(g(), IN, [0x40000, 0x40001, 0x40002, 0x40003]);
    writePfnList(g(), OUT, [0x40000]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 4, extentOrder: 0 }, out: { extentStart: OUT, nrExtents: 1, extentOrder: 2, memFlags: memFlags({ addressBits: 30 }) } });
    const snap = hv.snapshot();
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("ENOMEM"));
    expect(readExchange(g(), X).nrExchanged).toBe(0n);
    expect(hv.snapshot()).toBe(snap);
    consistent(hv);
  });

  it("partial progress: the failing chunk is undone, earlier chunks stay, nr_exchanged says how many; then resume", () => {
    // two chunks of 4 inputs; the 7th input names an unmapped gfn
    writePfnList(g(), IN, [0x40000, 0x40001, 0x40002, 0x40003, 0x40004, 0x40005, 0x7000, 0x40007]);
    writePfnList(g(), OUT, [0x40000, 0x40004]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 8, extentOrder: 0 }, out: { extentStart: OUT, nrExtents: 2, extentOrder: 2, memFlags: memFlags({ addressBits: 32 }) } });
    const second = [0x40004, 0x40005, 0x40006, 0x40007].map((gf) => u.p2m.lookupMfn(gf));
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("EINVAL"));
    expect(readExchange(g(), X).nrExchanged).toBe(4n);
    expect(u.p2m.lookupMfn(0x40000) * 4096).toBeLessThan(2 ** 32);
    expect([0x40004, 0x40005, 0x40006, 0x40007].map((gf) => u.p2m.lookupMfn(gf))).toEqual(second);
    for (const m of second) expect(hv.frames.ownerOf(m)).toBe(u.id);
    consistent(hv);
    // fix the list and continue from nr_exchanged = 4
    writePfnList(g(), IN + 6 * 8, [0x40006]);
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(0n);
    expect(readExchange(g(), X).nrExchanged).toBe(8n);
    expect(u.p2m.lookupMfn(0x40004) * 4096).toBeLessThan(2 ** 32);
    consistent(hv);
  });

  it("an input frame listed twice cannot be stolen twice → -EINVAL, nothing lost", () => {
    writePfnList(g(), IN, [0x40000, 0x40000]);
    writePfnList(g(), OUT, [0x40000]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 2, extentOrder: 0 }, out: { extentStart: OUT, nrExtents: 1, extentOrder: 1 } });
    const snap = hv.snapshot();
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("EINVAL"));
    expect(hv.snapshot()).toBe(snap);
    consistent(hv);
  });

  it("one large input extent into several small ones (out_chunk_order > 0)", () => {
    writePfnList(g(), IN, [0x40400]);
    writePfnList(g(), OUT, [0x40400, 0x40401, 0x40402, 0x40403]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 1, extentOrder: 2 }, out: { extentStart: OUT, nrExtents: 4, extentOrder: 0, memFlags: memFlags({ addressBits: 32 }) } });
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(0n);
    expect(readExchange(g(), X).nrExchanged).toBe(1n);
    for (let k = 0; k < 4; k++) expect(u.p2m.lookupMfn(0x40400 + k) * 4096).toBeLessThan(2 ** 32);
    consistent(hv);
  });

  it("an unreadable output list: the chunk's pages move but the chunk does not count → -EFAULT", () => {
    writePfnList(g(), IN, [0x40000, 0x40001]);
    writeExchange(g(), X, { in: { extentStart: IN, nrExtents: 2, extentOrder: 0 }, out: { extentStart: 0x1000, nrExtents: 1, extentOrder: 1 } });
    const tot = u.totPages;
    expect(hcall(hv, u, M, cmd(XENMEM.exchange), X).ret).toBe(E("EFAULT"));
    expect(readExchange(g(), X).nrExchanged).toBe(0n);
    // as in Xen: the inputs are gone, the new extent is assigned but unmapped
    expect(u.p2m.lookup(0x40000)).toBeUndefined();
    expect(u.totPages).toBe(tot);
    consistent(hv);
  });

  it("a non-translated domain is told the new MFN in the output list", () => {
    const pv = hv.createDomain({ role: "domU", size: 4 * MiB, exchange: "x86-pv", autoTranslated: false });
    const gp = hv.guestMemory(pv);
    writePfnList(gp, 0x4030_1000, [0x40000, 0x40001]);
    writePfnList(gp, 0x4030_2000, [0x40000]);
    writeExchange(gp, 0x4030_0000, { in: { extentStart: 0x4030_1000, nrExtents: 2, extentOrder: 0 }, out: { extentStart: 0x4030_2000, nrExtents: 1, extentOrder: 1 } });
    expect(hcall(hv, pv, M, cmd(XENMEM.exchange), 0x4030_0000).ret).toBe(0n);
    expect(readPfnList(gp, 0x4030_2000, 1)).toEqual([BigInt(pv.p2m.lookupMfn(0x40000))]);
    consistent(hv);
  });
});

describe("populate_physmap: PoD on arm and a failed p2m insert, per release", () => {
  const RES = 0x40f0_0000;
  const LIST = 0x40f0_1000;
  // arch/arm/p2m.c guest_physmap_mark_populate_on_demand returns -ENOSYS; common/memory.c
  // populate_physmap jumps to out when it is negative, so nothing is counted
  it("a PoD request for another domain stops at the first extent (-ENOSYS inside), nothing changes", () => {
    const { hv, dom0, mem } = machine();
    const u = hv.createDomain({ role: "domU", size: 16 * MiB });
    writePfnList(hv.guestMemory(u), LIST, [0x50000, 0x50001]);
    writeReservation(mem, 0x4010_0000, { extentStart: LIST, nrExtents: 2, extentOrder: 0, domid: u.id, memFlags: memFlags({ populateOnDemand: true }) });
    // the list is read from the caller's memory: put it in dom0's
    writePfnList(mem, LIST, [0x50000, 0x50001]);
    const snap = hv.snapshot();
    expect(hcall(hv, dom0, M, cmd(XENMEM.populate_physmap), 0x4010_0000).ret).toBe(0n);
    expect(hv.snapshot()).toBe(snap);
    consistent(hv);
  });

  // common/memory.c populate_physmap: up to 4.15 guest_physmap_add_page's result is ignored and
  // the extent counts; "common: guest_physmap_add_page()'s return value needs checking" (Jan
  // Beulich, Sep 2021, Xen 4.16) makes a failure end the loop
  for (const [version, want] of [["4.15", 2n], ["4.16", 0n], ["4.19", 0n]] as const)
    it(`Xen ${version}: a gfn beyond the stage-2 size ${want === 0n ? "stops the loop" : "is counted anyway"}`, () => {
      const { hv } = machine({ version });
      const u = hv.createDomain({ role: "domU", size: 16 * MiB });
      u.maxPages = u.totPages + 2;
      const g = hv.guestMemory(u);
      const huge = 2 ** 40; // far beyond any IPA size
      writePfnList(g, LIST, [huge, huge + 1]);
      writeReservation(g, RES, { extentStart: LIST, nrExtents: 2, extentOrder: 0 });
      const tot = u.totPages;
      expect(hcall(hv, u, M, cmd(XENMEM.populate_physmap), RES).ret).toBe(want);
      expect(u.p2m.lookup(huge)).toBeUndefined();
      // the page of a failed insert stays assigned in every release (only the count differs)
      expect(u.totPages).toBe(tot + (want === 0n ? 1 : 2));
    });
});
