import { describe, expect, it } from "vitest";
import { EventSink } from "../../../src/events.js";
import { DEADBEEF } from "../../../src/xen/hypervisor/dispatch.js";
import { CONSOLEIO, GNTTABOP, GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_SOURCE_GREF, HYPERCALL, SCHEDOP, XENMEM, XENVER, XEN_ERRNO, HVC_XEN_INSN } from "../../../src/xen/hypervisor/public.js";
import { writeCacheFlush, writeExchange, writeFeatureInfo } from "../../../src/xen/hypervisor/guest-structs.js";
import { hcall, machine, MiB } from "./helpers.js";

const E = (e: keyof typeof XEN_ERRNO): bigint => -BigInt(XEN_ERRNO[e]);

describe("register-level dispatch", () => {
  it("HVC #0xEA1 encodes as 0xD401D422", () => {
    expect(HVC_XEN_INSN >>> 0).toBe(0xd401d422);
  });

  it("release build: result in x0, every other register kept", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    const r = hcall(hv, dom0, HYPERCALL.xen_version, XENVER.pagesize, 0);
    expect(r.regs[0]).toBe(4096n);
    for (let i = 2; i < 31; i++) if (i !== 16) expect(r.regs[i]).toBe(0x1000n + BigInt(i));
    expect(r.regs[1]).toBe(0n); // x1 was the (NULL) argument, kept
    expect(r.regs[16]).toBe(BigInt(HYPERCALL.xen_version));
    expect(r.rec).toEqual({ domid: 0, nr: 17, op: "xen_version", args: [7n, 0n], ret: 4096n });
  });

  it("negative results are sign-extended 64-bit values", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    const r = hcall(hv, dom0, HYPERCALL.xen_version, XENVER.pagesize, 0x4000_0000);
    expect(r.regs[0]).toBe(0xffffffffffffffean);
    expect(r.rec.ret).toBe(-22n);
  });

  it("debug build: used argument registers after x0, and x16, become 0xDEADBEEF", () => {
    const { hv, dom0, mem } = machine({ debugClobber: true }, 16 * MiB);
    writeFeatureInfo(mem, 0x4000_0000, 0);
    const r = hcall(hv, dom0, HYPERCALL.xen_version, XENVER.get_features, 0x4000_0000);
    expect(r.regs[0]).toBe(0n);
    expect(mem.read32(0x4000_0004)).toBe(0x6805);
    expect(r.regs[1]).toBe(DEADBEEF);
    expect(r.regs[2]).toBe(0x1002n); // not an argument of xen_version
    expect(r.regs[16]).toBe(DEADBEEF);
    // three-argument hypercall: x1 and x2
    const g = hcall(hv, dom0, HYPERCALL.grant_table_op, GNTTABOP.cache_flush, 0x4000_0000, 0);
    expect(g.ret).toBe(0n);
    expect([g.regs[1], g.regs[2], g.regs[3]]).toEqual([DEADBEEF, DEADBEEF, 0x1003n]);
  });

  it("debug build and -ENOSYS: 4.15 still clobbers a known hypercall, 4.17 does not; unknown numbers never", () => {
    for (const [version, clobbered] of [["4.15", true], ["4.17", false]] as const) {
      const { hv, dom0 } = machine({ debugClobber: true, version }, 16 * MiB);
      const r = hcall(hv, dom0, HYPERCALL.xen_version, 99, 0x55);
      expect(r.ret).toBe(E("ENOSYS"));
      expect(r.regs[1]).toBe(clobbered ? DEADBEEF : 0x55n);
      expect(r.regs[16]).toBe(clobbered ? DEADBEEF : 17n);
      const u = hcall(hv, dom0, 200, 1, 2, 3);
      expect(u.ret).toBe(E("ENOSYS"));
      expect([u.regs[1], u.regs[2], u.regs[16]]).toEqual([2n, 3n, 200n]);
      expect(u.rec.args).toEqual([]);
    }
  });

  it("unknown, unassigned, x86-only and unmodelled hypercalls are -ENOSYS", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    for (const nr of [0, 1, 11, 26, 43, 48, 55, 1000, 0xffff_ffff_ffff_ffffn, HYPERCALL.event_channel_op, HYPERCALL.hvm_op, HYPERCALL.sched_op_compat])
      expect(hcall(hv, dom0, nr as number).ret).toBe(E("ENOSYS"));
  });

  it("memory_op records name the sub-op; events carry the result", () => {
    const sink = new EventSink();
    const { hv, dom0 } = machine({ events: sink }, 16 * MiB);
    const { events, stop } = sink.record();
    const r = hcall(hv, dom0, HYPERCALL.memory_op, XENMEM.exchange | (1 << 6), 0x4000_0000);
    stop();
    expect(r.rec.sub).toBe("XENMEM_exchange");
    expect(events[0]!.fields).toMatchObject({ domid: 0, op: "memory_op/XENMEM_exchange", ret: "-EINVAL" });
  });

  it("a guest pointer anywhere outside the domain's RAM is a failed copy, never a host exception", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    const u = hv.createDomain({ role: "domU", size: 2 * MiB });
    for (const p of [0n, 0x3fff_f000n, 0x4020_0000n, 0x8000_0000_0000n, 0xffff_ffff_ffff_fff8n]) {
      expect(hcall(hv, u, HYPERCALL.xen_version, XENVER.get_features, p).ret).toBe(E("EFAULT"));
      expect(hcall(hv, u, HYPERCALL.memory_op, XENMEM.exchange, p).ret).toBe(E("EFAULT"));
      expect(hcall(hv, u, HYPERCALL.memory_op, XENMEM.populate_physmap, p).ret).toBe(0n);
    }
    // u's RAM is 2 MiB at 1 GiB: a buffer running past its end fails, one inside works
    expect(hcall(hv, u, HYPERCALL.xen_version, XENVER.extraversion, 0x4020_0000n - 8n).ret).toBe(E("EFAULT"));
    expect(hcall(hv, u, HYPERCALL.xen_version, XENVER.extraversion, 0x4020_0000n - 16n).ret).toBe(0n);
    expect(hv.check()).toEqual([]);
    void dom0;
  });

  it("copies follow the P2M page by page across machine-discontiguous guest pages", () => {
    const { hv, mem } = machine({}, 32 * MiB);
    const u = hv.createDomain({ role: "domU", size: 4 * MiB });
    // swap the machine frames behind gfns 0x40001 and 0x40002
    const a = u.p2m.lookupMfn(0x40001);
    const b = u.p2m.lookupMfn(0x40002);
    u.p2m.insert(0x40001, b);
    u.p2m.insert(0x40002, a);
    const X = 0x4000_1000 + 4096 - 40; // the 72-byte struct straddles the two pages
    writeExchange(hv.guestMemory(u), X, { in: { extentStart: 0, nrExtents: 1, extentOrder: 0 }, out: { extentStart: 0, nrExtents: 2, extentOrder: 0 } });
    // the first 40 bytes landed in machine frame b, the rest at the start of frame a
    expect(mem.read64(b * 4096 + 4096 - 40 + 8)).toBe(1n);
    expect(mem.read64(a * 4096)).toBe(2n); // out.nr_extents at struct offset 40
    expect(hcall(hv, u, HYPERCALL.memory_op, XENMEM.exchange, X).ret).toBe(E("EINVAL"));
  });
});

describe("sched_op, console_io, vm_assist, grant_table_op cache_flush", () => {
  it("SCHEDOP_shutdown records the reason; a bad pointer is -EFAULT", () => {
    const { hv, dom0, mem } = machine({}, 16 * MiB);
    mem.write32(0x4000_0000, 3);
    expect(hcall(hv, dom0, HYPERCALL.sched_op, SCHEDOP.shutdown, 0x4000_0000).ret).toBe(0n);
    expect(dom0.shutdownReason).toBe(3);
    expect(hcall(hv, dom0, HYPERCALL.sched_op, SCHEDOP.shutdown, 0x10).ret).toBe(E("EFAULT"));
    expect(hcall(hv, dom0, HYPERCALL.sched_op, SCHEDOP.yield, 0).ret).toBe(0n);
    expect(hcall(hv, dom0, HYPERCALL.sched_op, 42, 0).ret).toBe(E("ENOSYS"));
  });

  it("CONSOLEIO_write: dom0 always, a domU only on a debug build", () => {
    for (const debug of [false, true]) {
      const { hv, dom0, mem } = machine({ debugClobber: debug }, 32 * MiB);
      const u = hv.createDomain({ role: "domU", size: 2 * MiB });
      mem.write(0x4000_0000, new TextEncoder().encode("hello"));
      expect(hcall(hv, dom0, HYPERCALL.console_io, CONSOLEIO.write, 5, 0x4000_0000).ret).toBe(0n);
      expect(hv.console(0)).toBe("hello");
      hv.guestMemory(u).write(0x4000_0000, new TextEncoder().encode("domU!"));
      expect(hcall(hv, u, HYPERCALL.console_io, CONSOLEIO.write, 5, 0x4000_0000).ret).toBe(debug ? 0n : E("EPERM"));
      expect(hv.console(u.id)).toBe(debug ? "domU!" : "");
      expect(hcall(hv, dom0, HYPERCALL.console_io, CONSOLEIO.write, 5, 0x10).ret).toBe(E("EFAULT"));
      expect(hcall(hv, u, HYPERCALL.console_io, CONSOLEIO.read, 5, 0x4000_0000).ret).toBe(E("EPERM"));
    }
  });

  it("vm_assist: only runstate_update_flag exists on arm", () => {
    const { hv, dom0 } = machine({}, 16 * MiB);
    expect(hcall(hv, dom0, HYPERCALL.vm_assist, 0, 5).ret).toBe(0n);
    expect(dom0.vmAssist).toBe(1 << 5);
    expect(hcall(hv, dom0, HYPERCALL.vm_assist, 0, 2).ret).toBe(E("EINVAL"));
    expect(hcall(hv, dom0, HYPERCALL.vm_assist, 7, 5).ret).toBe(E("ENOSYS"));
  });

  it("GNTTABOP_cache_flush: Linux's zero probe succeeds; each validation error", () => {
    const { hv, dom0, mem } = machine({}, 32 * MiB);
    const u = hv.createDomain({ role: "domU", size: 2 * MiB });
    const U = 0x4000_0000;
    const flush = (f: Parameters<typeof writeCacheFlush>[2], cmd: number = GNTTABOP.cache_flush, count = 1) => {
      writeCacheFlush(mem, U, f);
      return hcall(hv, dom0, HYPERCALL.grant_table_op, cmd, U, count).ret;
    };
    expect(flush({ devBusAddr: 0, offset: 0, length: 0, op: 0 })).toBe(0n);
    expect(flush({ devBusAddr: U, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN })).toBe(0n);
    expect(flush({ devBusAddr: U, offset: 4096, length: 0, op: 0 })).toBe(E("EINVAL"));
    expect(flush({ devBusAddr: U, offset: 4000, length: 200, op: GNTTAB_CACHE_CLEAN })).toBe(E("EINVAL"));
    expect(flush({ devBusAddr: U, offset: 0, length: 64, op: GNTTAB_CACHE_SOURCE_GREF })).toBe(E("EINVAL"));
    expect(flush({ devBusAddr: 0x10_0000, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN })).toBe(E("EINVAL")); // not RAM
    expect(flush({ devBusAddr: 0x4000_0000 + 20 * MiB, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN })).toBe(E("EPERM")); // free page
    const foreign = u.p2m.lookupMfn(0x40000) * 4096;
    expect(flush({ devBusAddr: foreign, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN })).toBe(E("EINVAL")); // no grant
    expect(flush({ devBusAddr: U, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN }, GNTTABOP.cache_flush, -1)).toBe(E("EINVAL"));
    expect(flush({ devBusAddr: U, offset: 0, length: 64, op: 1 }, GNTTABOP.setup_table | (1 << 12))).toBe(E("EINVAL"));
    expect(flush({ devBusAddr: U, offset: 0, length: 0, op: 0 }, GNTTABOP.cache_flush | (1 << 12))).toBe(E("EILSEQ"));
    expect(flush({ devBusAddr: U, offset: 0, length: 0, op: 0 }, 13)).toBe(E("ENOSYS"));
    expect(hcall(hv, dom0, HYPERCALL.grant_table_op, GNTTABOP.cache_flush, 0x10, 1).ret).toBe(E("EFAULT"));
  });
});
