// Guest-reachable state stays bounded, and what a guest does is reported as what it is
// (issue 13): consoles, the call log, a doorbell's run time, wide MMIO loads, a branch to the
// top of the address space, WFI, and the cost of a CPU in host memory.

import { describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { Arm64Cpu, CONSOLE_CAP, simdAccessBytes, type RunResult } from "../../src/cpu/arm64-cpu.js";
import { buildGuestContext, type GuestContext } from "../../src/cpu/guest-context.js";
import { CallLog, RECENT_CALLS, TrapRouter } from "../../src/cpu/traps.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { XenHypervisor } from "../../src/xen/hypervisor/index.js";
import { B_SELF, brk, hvc, image, mov64, movz, strw, strx, svc } from "./asm.js";

const RAM = 0x4000_0000;
const ENTRY = RAM + 0x80000;

const subs1 = (rd: number): number => (0xf1000400 | (rd << 5) | rd) >>> 0; // subs xd, xd, #1
const bne = (back: number): number => (0x54000001 | (((-back) & 0x7ffff) << 5)) >>> 0; // b.ne .-4*back
const addx = (rd: number, rn: number, imm: number): number => (0x91000000 | ((imm & 0xfff) << 10) | (rn << 5) | rd) >>> 0;

function onContext<T>(xen: string, f: (ctx: GuestContext) => T): T {
  const ctx = buildGuestContext({ machine: "qemu-virt-2g", xen });
  try {
    return f(ctx);
  } finally {
    ctx.cpu.close();
  }
}

function runOn(ctx: GuestContext, words: number[], opts: { timeLimitMs?: number; maxInsns?: number } = {}): RunResult {
  ctx.cpu.load(ENTRY, image(words));
  return ctx.cpu.run({ entry: ENTRY, stack: ENTRY, maxInsns: opts.maxInsns ?? 50_000_000, timeLimitMs: opts.timeLimitMs ?? 60_000, regs: { 0: BigInt(RAM), 2: BigInt(ctx.engineBase), 3: BigInt(ctx.engineDevice) } });
}

describe("simdAccessBytes: the width of SIMD&FP loads and stores Unicorn splits", () => {
  it.each([
    ["ldr q0, [x2]", 0x3dc00040, 16],
    ["str q1, [x2, #16]", 0x3d800441, 16],
    ["ldur q0, [x2, #-16]", 0x3cdf0040, 16],
    ["ldr q0, [x2], #16 (post-index)", 0x3cc10440, 16],
    ["ldr q0, literal", 0x9c000040, 16],
    ["ldp q0, q1, [x2]", 0xad400440, 32],
    ["ldp d0, d1, [x2]", 0x6d400440, 16],
    ["ld1 {v0.16b}, [x2]", 0x4c407040, 16],
  ])("%s", (_n, insn, bytes) => {
    expect(simdAccessBytes(insn)).toBe(bytes);
  });
  it.each([
    ["ldr x0, [x2]", 0xf9400040],
    ["ldr d0, [x2]", 0xfd400040],
    ["ldp x0, x1, [x2]", 0xa9400440],
    ["ld1 {v0.8b}, [x2]", 0x0c407040],
    ["nop", 0xd503201f],
  ])("%s: not wider than 8 bytes", (_n, insn) => {
    expect(simdAccessBytes(insn)).toBeUndefined();
  });
});

describe("CallLog", () => {
  it("keeps counts per op and the last RECENT_CALLS calls, whatever the number of calls", () => {
    const log = new CallLog();
    log.reset();
    for (let i = 0; i < 10_000; i++) log.record("service", i % 2 === 0 ? "dma_map" : "dma_unmap", 0x1000 + (i % 2), [0n, BigInt(i), 4096n, 0n], 4, 0n, 0x4008_0000);
    const s = log.summary();
    expect(s).toMatchObject({ total: 10_000, logged: "recent", kept: RECENT_CALLS, dropped: 10_000 - RECENT_CALLS });
    expect(s.byOp).toEqual([
      { kind: "service", op: "dma_map", nr: 0x1000, count: 5000 },
      { kind: "service", op: "dma_unmap", nr: 0x1001, count: 5000 },
    ]);
    const recs = log.records();
    expect(recs).toHaveLength(RECENT_CALLS);
    expect(recs.at(-1)!.args).toEqual([0n, 9999n, 4096n, 0n]);
    expect(recs[0]!.args[1]).toBe(BigInt(10_000 - RECENT_CALLS));
  });
  it("with logAll keeps every call up to the cap; invented op names are capped too", () => {
    const log = new CallLog();
    log.reset(100);
    for (let i = 0; i < 1000; i++) log.record("service", `svc 0x${i.toString(16)}`, i, [], 0, -38n, 0);
    const s = log.summary();
    expect(s).toMatchObject({ total: 1000, logged: "all", kept: 100, dropped: 900 });
    expect(s.byOp).toHaveLength(257);
    expect(s.byOp.at(-1)).toMatchObject({ op: "other", count: 1000 - 256 });
  });
});

describe.skipIf(!unicornAvailable())("hostile guests: bounded state", () => {
  it("a flood of 1 MiB console writes keeps the first CONSOLE_CAP bytes and counts the rest", () => {
    const r = onContext("none", (ctx) =>
      // x19 = 2000; loop: write(1, RAM, 1 MiB)
      runOn(ctx, [movz(19, 2000), movz(0, 1), ...mov64(1, RAM), movz(2, 0x10, 1), movz(8, 64), svc(0), subs1(19), bne(7), brk(0)]),
    );
    expect(r.exit).toEqual({ kind: "brk", imm: 0 });
    expect(r.console.length).toBe(CONSOLE_CAP);
    expect(r.consoleDropped).toBe(2000 * 0x100000 - CONSOLE_CAP);
    expect(r.calls).toMatchObject({ total: 2000, logged: "recent", kept: RECENT_CALLS });
    expect(r.log.every((l) => l.op === "write" && l.ret === 0x100000n)).toBe(true);
  });

  it("a Xen console_io write of 0xffffffff bytes: the hypervisor keeps its cap, the rest of RAM is checked, EFAULT past it", () => {
    const { r, text, dropped } = onContext("dom0", (ctx) => {
      // console_io(CONSOLEIO_write, 0xffffffff, RAM base): dom0 has less than 4 GiB
      const res = runOn(ctx, [movz(0, 0), ...mov64(1, 0xffff_ffff), ...mov64(2, RAM), movz(16, 18), hvc(0xea1), brk(0)]);
      return { r: res, text: ctx.hypervisor!.console(ctx.domain!.id), dropped: ctx.hypervisor!.consoleDroppedBytes(ctx.domain!.id) };
    });
    expect(r.exit).toEqual({ kind: "brk", imm: 0 });
    expect(r.log[0]).toMatchObject({ op: "console_io", ret: -14n });
    expect(text.length).toBeLessThanOrEqual(XenHypervisor.CONSOLE_CAP);
    expect(dropped).toBeGreaterThan(0);
  });

  it("a DMA-engine doorbell with a ring of 65,536 × 16 MiB descriptors ends at the run's time limit (limit, not a hang)", () => {
    const RING = RAM + 0x40_0000;
    const words = [
      ...mov64(9, RING),
      ...mov64(10, RAM + 0x1000_0000), // src
      ...mov64(11, RAM + 0x2000_0000), // dst
      ...mov64(12, 0x100_0000), // 16 MiB
      ...mov64(13, 65536),
      addx(14, 9, 0),
      // loop: one descriptor {src, dst, len, flags 0, status 0}
      strx(10, 14, 0),
      strx(11, 14, 8),
      strw(12, 14, 16),
      strw(31, 14, 20),
      strx(31, 14, 24),
      addx(14, 14, 32),
      subs1(13),
      bne(7),
      strx(9, 2, 0x30), // RING_BASE
      ...mov64(15, 65536),
      strw(15, 2, 0x38), // RING_COUNT
      strw(31, 2, 0x3c), // RING_HEAD 0
      ...mov64(15, 65535),
      strw(15, 2, 0x40), // RING_TAIL
      movz(15, 3),
      strw(15, 2, 0x08), // CTRL = RING
      brk(0),
    ];
    const { r, head, status } = onContext("none", (ctx) => {
      const res = runOn(ctx, words, { timeLimitMs: 300 });
      return { r: res, head: ctx.engine.ringHead, status: ctx.engine.status };
    });
    expect(r.exit).toEqual({ kind: "limit", limit: "time" });
    expect(head).toBeGreaterThan(0);
    expect(head).toBeLessThan(65535);
    expect(status).toBe(1); // BUSY: the doorbell did not complete
  });
});

describe.skipIf(!unicornAvailable())("hostile guests: reported as what they are", () => {
  it("a 16-byte MMIO load (ldr q0, [x2]) is a data abort: an mmio fault", () => {
    const r = onContext("none", (ctx) => runOn(ctx, [0x3dc00040, brk(0)]));
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind !== "fault") return;
    expect(r.exit.fault).toMatchObject({ kind: "mmio", pc: ENTRY, insn: 0x3dc00040 });
    expect(r.exit.fault.message).toMatch(/16 bytes/);
  });

  it("an 8-byte MMIO load through a D register is still an 8-byte access (the engine's 64-bit SRC register)", () => {
    const r = onContext("none", (ctx) => runOn(ctx, [0xfd400840 /* ldr d0, [x2, #16] */, brk(0)]));
    expect(r.exit).toEqual({ kind: "brk", imm: 0 });
  });

  it("a branch to 0xffff_ffff_ffff_fffc is an instruction fetch abort, not the instruction limit", () => {
    const r = onContext("none", (ctx) => runOn(ctx, [0x92800069 /* movn x9, #3 */, 0xd61f0120 /* br x9 */]));
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind !== "fault") return;
    expect(r.exit.fault.kind).toBe("unmapped");
    expect(r.exit.fault.pcHex).toBe("0xfffffffffffffffc");
    expect(r.exit.fault.message).toMatch(/instruction fetch at 0xfffffffffffffffc/);
    expect(r.regs.pc).toBe(0xffff_ffff_ffff_fffcn);
  });

  it("WFI with no interrupt source: the guest would sleep forever, reported as such", () => {
    const r = onContext("none", (ctx) => runOn(ctx, [0xd503201f, 0xd503207f /* wfi */, B_SELF]));
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind !== "fault") return;
    expect(r.exit.fault).toMatchObject({ kind: "wfi", pc: ENTRY + 4, insn: 0xd503207f });
    expect(r.exit.fault.message).toMatch(/sleep forever/);
  });

  it("the instruction limit is still the instruction limit", () => {
    const r = onContext("none", (ctx) => runOn(ctx, [B_SELF], { maxInsns: 1000 }));
    expect(r.exit).toEqual({ kind: "limit", limit: "insns" });
  });
});

describe.skipIf(!unicornAvailable())("host memory of a CPU", () => {
  it("loading a second program does not flush Unicorn's translation cache (which would touch its 1 GiB buffer), and runs the new code", () => {
    const memory = new PhysicalMemory({ banks: [{ base: RAM, size: 16 << 20 }] });
    const cpu = new Arm64Cpu({ memory, traps: new TrapRouter() });
    const rss0 = process.memoryUsage().rss;
    const x5: bigint[] = [];
    for (let v = 1; v <= 3; v++) {
      cpu.load(ENTRY, image([movz(5, v), brk(0)]));
      x5.push(cpu.run({ entry: ENTRY, maxInsns: 100 }).regs.x[5]!);
    }
    const grew = process.memoryUsage().rss - rss0;
    cpu.close();
    expect(x5).toEqual([1n, 2n, 3n]);
    expect(grew).toBeLessThan(256 << 20);
  });
});
