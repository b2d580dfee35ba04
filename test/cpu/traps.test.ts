import { describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { Arm64Cpu } from "../../src/cpu/arm64-cpu.js";
import { TrapRouter, decodeTrapInsn, type DmaServices, type HypercallHandler } from "../../src/cpu/traps.js";
import { UnicornEngine, REG, unicornAvailable } from "../../src/cpu/unicorn.js";
import { XenHypervisor } from "../../src/xen/hypervisor/index.js";
import { B_SELF, NOP, UDF, brk, hvc, image, mov64, movz, svc } from "./asm.js";

const RAM = 0x4000_0000;
const ENTRY = RAM + 0x80000;
const mem = (): PhysicalMemory => new PhysicalMemory({ banks: [{ base: RAM, size: 32 * 1024 * 1024 }] });

describe("decodeTrapInsn", () => {
  it("decodes HVC/SVC/BRK immediates", () => {
    expect(decodeTrapInsn(0xd401d422)).toEqual({ kind: "hvc", imm: 0xea1 });
    expect(decodeTrapInsn(svc(5))).toEqual({ kind: "svc", imm: 5 });
    expect(decodeTrapInsn(brk(0xffff))).toEqual({ kind: "brk", imm: 0xffff });
    expect(decodeTrapInsn(NOP)).toEqual({ kind: "other" });
  });
});

describe.skipIf(!unicornAvailable())("how Unicorn 2.0.1 reports traps (measured)", () => {
  it.each([
    ["HVC", hvc(0xea1), 1, 0],
    ["UDF", UDF, 1, 0],
    ["SVC", svc(0), 2, 4],
    ["BRK", brk(3), 7, 0],
  ])("%s arrives with its intno and PC", (_n, word, intno, pcDelta) => {
    const uc = new UnicornEngine();
    const page = new Uint8Array(4096);
    new DataView(page.buffer).setUint32(8, word, true);
    new DataView(page.buffer).setUint32(12, B_SELF, true);
    uc.mapPtr(0x10000, page);
    const seen: [number, bigint][] = [];
    uc.hookIntr((n) => {
      seen.push([n, uc.regRead(REG.PC)]);
      uc.stop();
    });
    uc.start(0x10008, 0n, 0, 100);
    expect(seen).toEqual([[intno, BigInt(0x10008 + pcDelta)]]);
    uc.close();
  });
});

function run(words: number[], traps: TrapRouter, regs: Record<number, bigint> = {}) {
  const cpu = new Arm64Cpu({ memory: mem(), traps });
  cpu.load(ENTRY, image(words));
  const r = cpu.run({ entry: ENTRY, regs, maxInsns: 10_000 });
  cpu.close();
  return r;
}

describe.skipIf(!unicornAvailable())("HVC", () => {
  it("HVC #0xEA1 goes to the hypercall handler, result in x0, other registers written back, PC advances", () => {
    const calls: bigint[][] = [];
    const handler: HypercallHandler = {
      dispatch(regs) {
        calls.push([regs.x[16]!, regs.x[0]!, regs.x[1]!]);
        regs.x[0] = BigInt.asUintN(64, -22n);
        regs.x[1] = 0xdeadbeefn;
        return { op: "memory_op", nr: Number(regs.x[16]), args: [regs.x[0]], ret: -22n };
      },
    };
    const r = run([...mov64(16, 12), movz(0, 11), movz(1, 0x1234), hvc(0xea1), movz(2, 7), brk(0)], new TrapRouter({ hypercalls: handler }));
    expect(calls).toEqual([[12n, 11n, 0x1234n]]);
    expect(r.exit).toEqual({ kind: "brk", imm: 0 });
    expect(r.regs.x[0]).toBe(0xffff_ffff_ffff_ffean);
    expect(r.regs.x[1]).toBe(0xdeadbeefn);
    expect(r.regs.x[2]).toBe(7n); // execution resumed after the HVC
    expect(r.log[0]).toMatchObject({ kind: "hypercall", op: "memory_op", nr: 12, ret: -22n });
  });

  it("HVC #0xEA1 reaches the stub Xen: xen_version and an unknown hypercall", () => {
    const m = mem();
    const hv = new XenHypervisor(m);
    const d = hv.createDomain({ role: "dom0", ramRanges: [{ base: RAM, size: 32 * 1024 * 1024 }] });
    const cpu = new Arm64Cpu({ memory: m, traps: new TrapRouter({ hypercalls: { dispatch: (regs) => hv.dispatch(d, regs) } }) });
    cpu.load(ENTRY, image([movz(16, 17), movz(0, 0), movz(1, 0), hvc(0xea1), movz(19, 0), 0xaa0003f3 /* mov x19, x0 */, movz(16, 99), hvc(0xea1), brk(0)]));
    const r = cpu.run({ entry: ENTRY });
    cpu.close();
    expect(r.exit.kind).toBe("brk");
    expect(r.regs.x[19]).toBe(0x4000fn); // Xen 4.15
    expect(r.regs.x[0]).toBe(BigInt.asUintN(64, -38n)); // -ENOSYS
    expect(r.log.map((l) => l.ret)).toEqual([0x4000fn, -38n]);
  });

  it("HVC #0 is SMCCC: PSCI_VERSION, SMCCC_VERSION, unknown function → -1", () => {
    const h: HypercallHandler = { dispatch: () => ({ op: "x", nr: 0, args: [], ret: 0 }) };
    const r = run([...mov64(0, 0x8400_0000), hvc(0), 0xaa0003f3, ...mov64(0, 0x8000_0000), hvc(0), 0xaa0003f4 /* mov x20, x0 */, ...mov64(0, 0xc600_1234), hvc(0), brk(0)], new TrapRouter({ hypercalls: h }));
    expect(r.exit.kind).toBe("brk");
    expect(r.regs.x[19]).toBe(0x10001n);
    expect(r.regs.x[20]).toBe(0x10002n);
    expect(r.regs.x[0]).toBe(0xffff_ffff_ffff_ffffn);
  });

  it("HVC with another immediate is an undefined-instruction fault; without a hypervisor every HVC is", () => {
    const h: HypercallHandler = { dispatch: () => ({ op: "x", nr: 0, args: [], ret: 0 }) };
    const r = run([NOP, hvc(1), brk(0)], new TrapRouter({ hypercalls: h }));
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind === "fault") expect(r.exit.fault).toMatchObject({ kind: "undefined-instruction", pc: ENTRY + 4, insn: hvc(1) });
    const r2 = run([hvc(0xea1), brk(0)], new TrapRouter());
    expect(r2.exit.kind).toBe("fault");
  });

  it("an undefined instruction faults with its word", () => {
    const r = run([NOP, UDF], new TrapRouter());
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind === "fault") expect(r.exit.fault).toMatchObject({ kind: "undefined-instruction", pc: ENTRY + 4, insn: 0 });
  });
});

describe.skipIf(!unicornAvailable())("SVC services", () => {
  const sys = (nr: number, args: number[]): number[] => [...args.flatMap((a, i) => mov64(i, a)), ...mov64(8, nr), svc(0)];

  it("write to the console; bad fd → -EBADF; pointer outside RAM → -EFAULT; exit code", () => {
    const msg = RAM + 0x100;
    const cpu = new Arm64Cpu({ memory: mem(), traps: new TrapRouter() });
    cpu.load(msg, new TextEncoder().encode("hello\n"));
    cpu.load(
      ENTRY,
      image([
        ...sys(64, [1, msg, 6]),
        0xaa0003f3, // mov x19, x0
        ...sys(64, [7, msg, 6]),
        0xaa0003f4, // mov x20, x0
        ...sys(64, [1, 0x7000_0000, 6]),
        0xaa0003f5, // mov x21, x0
        ...sys(64, [2, RAM + 32 * 1024 * 1024 - 2, 6]), // runs off the end of RAM
        0xaa0003f6, // mov x22, x0
        ...sys(0x777, []),
        0xaa0003f7, // mov x23, x0
        ...sys(93, [3]),
        brk(9),
      ]),
    );
    const r = cpu.run({ entry: ENTRY });
    cpu.close();
    expect(r.console).toBe("hello\n");
    expect(r.regs.x[19]).toBe(6n);
    expect(BigInt.asIntN(64, r.regs.x[20]!)).toBe(-9n);
    expect(BigInt.asIntN(64, r.regs.x[21]!)).toBe(-14n);
    expect(BigInt.asIntN(64, r.regs.x[22]!)).toBe(-14n);
    expect(BigInt.asIntN(64, r.regs.x[23]!)).toBe(-38n);
    expect(r.exit).toEqual({ kind: "exit", code: 3, service: "exit" });
  });

  it("dma services go through DmaServices; unknown device → -ENODEV; a refused unmap → -EINVAL", () => {
    const seen: string[] = [];
    const dma: DmaServices = {
      hasDevice: (n) => n === 0,
      map: (n, p, s, d) => (seen.push(`map ${n} ${p.toString(16)} ${s} ${d}`), p + 0x1000),
      unmap: () => {
        throw new (class extends Error {})("not ours");
      },
      syncForCpu: (n, a, s, d) => void seen.push(`sync_cpu ${n} ${a.toString(16)} ${s} ${d}`),
      syncForDevice: () => {},
    };
    const r = run([...sys(0x1000, [0, RAM, 64, 1]), 0xaa0003f3, ...sys(0x1000, [5, RAM, 64, 1]), 0xaa0003f4, ...sys(0x1002, [0, RAM, 64, 2]), ...sys(0x1000, [0, RAM, 64, 7]), 0xaa0003f5, brk(0)], new TrapRouter({ dma }));
    expect(r.exit.kind).toBe("brk");
    expect(r.regs.x[19]).toBe(BigInt(RAM + 0x1000));
    expect(BigInt.asIntN(64, r.regs.x[20]!)).toBe(-19n);
    expect(BigInt.asIntN(64, r.regs.x[21]!)).toBe(-22n);
    expect(seen).toEqual([`map 0 ${RAM.toString(16)} 64 1`, `sync_cpu 0 ${RAM.toString(16)} 64 2`]);
  });

  it("SVC with a non-zero immediate is a guest fault", () => {
    const r = run([svc(1), brk(0)], new TrapRouter());
    expect(r.exit.kind).toBe("fault");
  });

  it("a host error inside a service stops the guest instead of hanging it", () => {
    const dma: DmaServices = {
      hasDevice: () => true,
      map: () => {
        throw new TypeError("bug in the host");
      },
      unmap: () => {},
      syncForCpu: () => {},
      syncForDevice: () => {},
    };
    const cpu = new Arm64Cpu({ memory: mem(), traps: new TrapRouter({ dma }) });
    cpu.load(ENTRY, image([...sys(0x1000, [0, RAM, 64, 1]), B_SELF]));
    expect(() => cpu.run({ entry: ENTRY, maxInsns: 1_000_000 })).toThrow(/bug in the host/);
    cpu.close();
  });
});
