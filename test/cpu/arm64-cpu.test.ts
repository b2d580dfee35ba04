import { describe, expect, it } from "vitest";
import { PhysicalMemory, type AccessSize } from "../../src/memory/physical-memory.js";
import { Arm64Cpu } from "../../src/cpu/arm64-cpu.js";
import { TrapRouter } from "../../src/cpu/traps.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { FaultError } from "../../src/errors.js";
import { B_SELF, NOP, addi, brk, image, ldrb, ldrw, ldrx, ldurx, mov64, strw, strx } from "./asm.js";

const RAM = 0x4000_0000;
const ENTRY = RAM + 0x80000;
const MMIO = 0x0a00_0000;

function machine(): PhysicalMemory {
  return new PhysicalMemory({ banks: [{ base: RAM, size: 64 * 1024 * 1024 }] });
}

describe.skipIf(!unicornAvailable())("Arm64Cpu", () => {
  it("runs code, counts instructions and stops at BRK with its immediate", () => {
    const mem = machine();
    const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter() });
    cpu.load(ENTRY, image([...mov64(1, 0x1234_5678_9abc_def0n), addi(2, 1, 1), NOP, brk(0x42)]));
    const r = cpu.run({ entry: ENTRY, stack: RAM + 0x8_0000 });
    expect(r.exit).toEqual({ kind: "brk", imm: 0x42 });
    expect(r.regs.x[1]).toBe(0x1234_5678_9abc_def0n);
    expect(r.regs.x[2]).toBe(0x1234_5678_9abc_def1n);
    expect(r.regs.pc).toBe(BigInt(ENTRY + 4 * 6));
    expect(r.regs.sp).toBe(BigInt(RAM + 0x8_0000));
    expect(r.insns).toBe(7);
    cpu.close();
  });

  it("maps RAM chunks lazily, zero-copy, through the translation", () => {
    const mem = machine();
    const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter() });
    const far = RAM + 40 * 1024 * 1024 + 0x100;
    expect(mem.allocatedBytes).toBe(0);
    cpu.load(ENTRY, image([...mov64(3, far), ...mov64(4, 0xfeed_beefn), strx(4, 3), ldrx(5, 3), brk(0)]));
    const before = mem.allocatedBytes;
    const r = cpu.run({ entry: ENTRY });
    expect(r.exit.kind).toBe("brk");
    expect(r.regs.x[5]).toBe(0xfeed_beefn);
    // the store landed in the machine's memory itself
    expect(mem.read32(far)).toBe(0xfeed_beef);
    expect(mem.allocatedBytes).toBe(before + mem.chunkSize);
    // host writes are seen by the guest without copies: load only
    const LOADER = ENTRY + 0x1000;
    cpu.load(LOADER, image([...mov64(3, far), ldrx(5, 3), brk(0)]));
    mem.write64(far, 0x55n);
    const r2 = cpu.run({ entry: LOADER });
    expect(r2.regs.x[5]).toBe(0x55n);
    cpu.close();
  });

  it("translates IPAs of a domU that is not direct-mapped", () => {
    const mem = machine();
    // guest RAM at IPA 0x8000_0000 lives at machine RAM + 8 MiB
    const IPA = 0x8000_0000;
    const physMap = { ipaToMachine: (ipa: number) => (ipa >= IPA && ipa < IPA + 16 * 1024 * 1024 ? ipa - IPA + RAM + 8 * 1024 * 1024 : -1) };
    const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter(), physMap });
    cpu.load(IPA + 0x80000, image([...mov64(3, IPA + 0x200000), ...mov64(4, 0xabcdn), strx(4, 3), brk(0)]));
    const r = cpu.run({ entry: IPA + 0x80000 });
    expect(r.exit.kind).toBe("brk");
    expect(mem.read64(RAM + 8 * 1024 * 1024 + 0x200000)).toBe(0xabcdn);
    // an IPA outside the guest's stage-2 map faults, naming the address
    cpu.load(IPA + 0x80000, image([...mov64(3, RAM), ldrx(4, 3), brk(0)]));
    const r2 = cpu.run({ entry: IPA + 0x80000 });
    expect(r2.exit.kind).toBe("fault");
    if (r2.exit.kind === "fault") {
      expect(r2.exit.fault.kind).toBe("unmapped");
      expect(r2.exit.fault.address).toBe(RAM);
      expect(r2.exit.fault.message).toMatch(/no stage-2 mapping/);
    }
    cpu.close();
  });

  it("faults precisely on an access outside RAM, with pc, address and instruction word", () => {
    const mem = machine();
    const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter() });
    const prog = [...mov64(3, 0x7000_0000), addi(6, 6, 1), ldrx(4, 3, 8), addi(7, 7, 1), brk(0)];
    cpu.load(ENTRY, image(prog));
    const r = cpu.run({ entry: ENTRY });
    const faultPc = ENTRY + 4 * (prog.length - 3);
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind !== "fault") return;
    expect(r.exit.fault).toMatchObject({ kind: "unmapped", pc: faultPc, address: 0x7000_0008, insn: ldrx(4, 3, 8) });
    expect(r.regs.x[6]).toBe(1n);
    expect(r.regs.x[7]).toBe(0n); // nothing after the faulting instruction ran
    cpu.close();
  });

  it("faults on a fetch outside RAM", () => {
    const cpu = new Arm64Cpu({ memory: machine(), traps: new TrapRouter() });
    const r = cpu.run({ entry: 0x1000 });
    expect(r.exit.kind).toBe("fault");
    if (r.exit.kind === "fault") expect(r.exit.fault).toMatchObject({ kind: "unmapped", pc: 0x1000, address: 0x1000 });
    cpu.close();
  });

  it("stops at the instruction limit with exactly that many instructions", () => {
    const cpu = new Arm64Cpu({ memory: machine(), traps: new TrapRouter() });
    cpu.load(ENTRY, image([NOP, NOP, B_SELF]));
    const r = cpu.run({ entry: ENTRY, maxInsns: 1000 });
    expect(r.exit).toEqual({ kind: "limit", limit: "insns" });
    expect(r.insns).toBe(1000);
    expect(r.regs.pc).toBe(BigInt(ENTRY + 8));
    cpu.close();
  });

  it("stops at the wall-time limit", () => {
    const cpu = new Arm64Cpu({ memory: machine(), traps: new TrapRouter() });
    cpu.load(ENTRY, image([B_SELF]));
    const r = cpu.run({ entry: ENTRY, maxInsns: Number.MAX_SAFE_INTEGER, timeLimitMs: 50 });
    expect(r.exit).toEqual({ kind: "limit", limit: "time" });
    expect(r.insns).toBeGreaterThan(0);
    cpu.close();
  });

  describe("MMIO", () => {
    function mmioMachine() {
      const mem = machine();
      const regs = new Map<number, bigint>([[0, 0x1111_2222_3333_4444n], [8, 0x55n]]);
      const writes: [number, number, bigint][] = [];
      mem.addMmio(MMIO, 0x1000, "dev", {
        read(off: number, size: AccessSize) {
          if (off === 0 && size !== 8) throw new FaultError(`register 0 is 64-bit, not ${size}-byte`);
          return regs.get(off) ?? 0n;
        },
        write(off: number, size: AccessSize, v: bigint) {
          writes.push([off, size, v]);
        },
      });
      return { mem, writes };
    }

    it("routes loads and stores to the device with their true width", () => {
      const { mem, writes } = mmioMachine();
      const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter() });
      cpu.load(ENTRY, image([...mov64(9, MMIO), ldrx(1, 9, 0), ldrw(2, 9, 8), ...mov64(3, 0xdead_beef_0bad_f00dn), strx(3, 9, 16), strw(3, 9, 24), ldrx(1, 9, 0), brk(0)]));
      const r = cpu.run({ entry: ENTRY });
      expect(r.exit.kind).toBe("brk");
      expect(r.regs.x[1]).toBe(0x1111_2222_3333_4444n);
      expect(r.regs.x[2]).toBe(0x55n);
      expect(writes).toEqual([
        [16, 8, 0xdead_beef_0bad_f00dn],
        [24, 4, 0x0bad_f00dn],
      ]);
      cpu.close();
    });

    it("faults on an unaligned access and on a width the device refuses", () => {
      const { mem } = mmioMachine();
      const cpu = new Arm64Cpu({ memory: mem, traps: new TrapRouter() });
      cpu.load(ENTRY, image([...mov64(9, MMIO), ldurx(1, 9, 4), addi(7, 7, 1), brk(0)]));
      const r = cpu.run({ entry: ENTRY });
      expect(r.exit.kind).toBe("fault");
      if (r.exit.kind === "fault") {
        expect(r.exit.fault).toMatchObject({ kind: "mmio", address: MMIO + 4, insn: ldurx(1, 9, 4) });
        expect(r.exit.fault.message).toMatch(/unaligned/);
      }
      expect(r.regs.x[7]).toBe(0n);
      cpu.load(ENTRY, image([...mov64(9, MMIO), ldrb(1, 9, 0), brk(0)]));
      const r2 = cpu.run({ entry: ENTRY });
      expect(r2.exit.kind).toBe("fault");
      if (r2.exit.kind === "fault") expect(r2.exit.fault.message).toMatch(/64-bit, not 1-byte/);
      cpu.close();
    });
  });
});
