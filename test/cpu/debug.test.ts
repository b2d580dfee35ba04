// Arm64Cpu's tracing and debugging hooks (installed only when asked), the disassembler and
// symbol lookup.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Arm64Cpu } from "../../src/cpu/arm64-cpu.js";
import { disassemble } from "../../src/cpu/disasm.js";
import { SymbolTable } from "../../src/cpu/symbols.js";
import { TrapRouter } from "../../src/cpu/traps.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { NOP, addi, brk, image, movz } from "./asm.js";

const RAM = 0x4000_0000;
const ENTRY = RAM + 0x80000;
const cpuWith = (words: number[]): Arm64Cpu => {
  const cpu = new Arm64Cpu({ memory: new PhysicalMemory({ banks: [{ base: RAM, size: 16 * 1024 * 1024 }] }), traps: new TrapRouter() });
  cpu.load(ENTRY, image(words));
  return cpu;
};
// x0 += 1, ten times, then BRK #0
const PROG = [movz(0, 0), ...Array.from({ length: 10 }, () => addi(0, 0, 1)), brk(0)];

describe.skipIf(!unicornAvailable())("Arm64Cpu: trace ring, breakpoints, steps", () => {
  it("--trace-insns: the last N PCs, oldest first, the last where it stopped; fewer when fewer ran", () => {
    const cpu = cpuWith(PROG);
    const r = cpu.run({ entry: ENTRY, traceInsns: 4 });
    expect(r.trace).toEqual([ENTRY + 8 * 4, ENTRY + 9 * 4, ENTRY + 10 * 4, ENTRY + 11 * 4]);
    const all = cpu.run({ entry: ENTRY, traceInsns: 100 });
    expect(all.trace).toEqual(Array.from({ length: 12 }, (_, i) => ENTRY + 4 * i));
    // no trace unless asked, and the hook is gone
    expect(cpu.run({ entry: ENTRY }).trace).toBeUndefined();
    cpu.close();
  });

  it("breakpoints stop before the instruction; resuming steps over them; steps run one instruction", () => {
    const cpu = cpuWith(PROG);
    cpu.debugStart({ entry: ENTRY });
    cpu.setBreakpoint(ENTRY + 5 * 4);
    expect(cpu.debugResume(1000)).toEqual({ kind: "stopped", breakpoint: true });
    expect(cpu.pc).toBe(ENTRY + 5 * 4);
    expect(cpu.readX(0)).toBe(4n); // the addi at the breakpoint has not run
    expect(cpu.debugInstructions).toBe(5);
    expect(cpu.debugResume(1)).toEqual({ kind: "stopped", breakpoint: false });
    expect(cpu.readX(0)).toBe(5n);
    cpu.clearBreakpoint(ENTRY + 5 * 4);
    expect(cpu.pc).toBe(ENTRY + 6 * 4);
    // a breakpoint at the PC a resume starts from is stepped over
    cpu.setBreakpoint(ENTRY + 6 * 4);
    cpu.setBreakpoint(ENTRY + 7 * 4);
    cpu.setBreakpoint(ENTRY + 9 * 4);
    expect(cpu.debugResume(1000)).toMatchObject({ kind: "stopped", breakpoint: true });
    expect(cpu.pc).toBe(ENTRY + 7 * 4);
    expect(cpu.debugResume(1000)).toMatchObject({ kind: "stopped", breakpoint: true });
    expect(cpu.pc).toBe(ENTRY + 9 * 4);
    expect(cpu.readX(0)).toBe(8n);
    for (const a of [6, 7, 9]) cpu.clearBreakpoint(ENTRY + a * 4);
    expect(cpu.debugResume(1000)).toEqual({ kind: "exit", exit: { kind: "brk", imm: 0 } });
    expect(cpu.readX(0)).toBe(10n);
    expect(cpu.debugEnd({ kind: "limit", limit: "debugger" }).exit).toEqual({ kind: "brk", imm: 0 });
    cpu.close();
  });

  it("debugWrite changes code already translated", () => {
    const cpu = cpuWith([NOP, NOP, movz(1, 1), brk(0)]);
    cpu.debugStart({ entry: ENTRY });
    expect(cpu.debugResume(1)).toMatchObject({ kind: "stopped" });
    expect(cpu.debugWrite(ENTRY + 8, image([movz(1, 99)]))).toBe(true);
    expect(cpu.debugResume(100)).toMatchObject({ kind: "exit" });
    expect(cpu.readX(1)).toBe(99n);
    cpu.close();
  });
});

const haveCapstone = spawnSync("sh", ["-c", "ldconfig -p | grep -q 'libcapstone.so.[45]'"]).status === 0;
describe.skipIf(!haveCapstone)("disassemble (libcapstone; skipped when it is not installed)", () => {
  it("decodes words at their address", () => {
    expect(disassemble(0xf9400020, 0)).toBe("ldr\tx0, [x1]");
    expect(disassemble(0xd4000001, 0)).toBe("svc\t#0");
    expect(disassemble(0x94000010, 0x4008_0000)).toBe("bl\t#0x40080040");
  });
});

describe("SymbolTable", () => {
  const t = new SymbolTable({
    segments: [{ paddr: 0x1000, vaddr: 0x1000, data: new Uint8Array(0), memsz: 0x100, flags: 5 }],
    symbols: [
      { name: "_start", value: 0x1000, size: 0, kind: "notype" },
      { name: "f", value: 0x1010, size: 0x10, kind: "func" },
      { name: "g", value: 0x1040, size: 0x8, kind: "func" },
      { name: "g_alias", value: 0x1040, size: 0, kind: "notype" },
    ],
  });
  it("names a sized symbol inside it, a label up to the next symbol in its segment, nothing past a sized end", () => {
    expect(t.describe(0x1000)).toBe("<_start>");
    expect(t.describe(0x100c)).toBe("<_start+0xc>");
    expect(t.describe(0x1014)).toBe("<f+0x4>");
    expect(t.describe(0x1020)).toBe(""); // past f's end, before g
    expect(t.describe(0x1040)).toBe("<g>"); // a function over a label at one address
    expect(t.describe(0x1048)).toBe("");
    expect(t.describe(0xfff)).toBe("");
    expect(t.address("g")).toBe(0x1040);
    expect(t.size).toBe(4);
  });
});
