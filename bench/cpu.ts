// CPU benchmark: guest instructions per second on Unicorn, and the cost of one hypercall
// round trip (HVC trap → TypeScript dispatch → registers written back → resume).
// Run: node scripts/setup.mjs && node dist/bench/cpu.js

import { FaultError } from "../src/errors.js";
import { PhysicalMemory } from "../src/memory/physical-memory.js";
import { Arm64Cpu } from "../src/cpu/arm64-cpu.js";
import { TrapRouter, type HypercallHandler } from "../src/cpu/traps.js";
import { XenHypervisor } from "../src/xen/hypervisor/index.js";

const RAM = 0x4000_0000;
const ENTRY = RAM + 0x80000;

function words(ws: number[]): Uint8Array {
  const b = new Uint8Array(ws.length * 4);
  const dv = new DataView(b.buffer);
  ws.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return b;
}
const movz = (rd: number, imm: number, hw = 0): number => (0xd2800000 | (hw << 21) | (imm << 5) | rd) >>> 0;

function mips(): { insns: number; seconds: number; mips: number } {
  const memory = new PhysicalMemory({ banks: [{ base: RAM, size: 16 << 20 }] });
  const cpu = new Arm64Cpu({ memory, traps: new TrapRouter() });
  // x12 = 0x98_0000 iterations of: add x1,x1,x12; eor x2,x2,x1; subs x12,x12,#1; b.ne
  cpu.load(ENTRY, words([movz(12, 0x98, 1), 0x8b0c0021, 0xca010042, 0xf100058c, 0x54ffffa1, 0xd4200000]));
  const t = process.hrtime.bigint();
  const r = cpu.run({ entry: ENTRY, maxInsns: 1e9 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  cpu.close();
  return { insns: r.insns, seconds: s, mips: r.insns / s / 1e6 };
}

function roundTrip(name: string, handler: (m: PhysicalMemory) => HypercallHandler, n = 20000): { name: string; n: number; usPerCall: number } {
  const memory = new PhysicalMemory({ banks: [{ base: RAM, size: 16 << 20 }] });
  const cpu = new Arm64Cpu({ memory, traps: new TrapRouter({ hypercalls: handler(memory) }) });
  // x19 = n; loop: x16 = 17; x0 = 0; x1 = 0; hvc #0xea1; subs x19,x19,#1; b.ne loop; brk #0
  cpu.load(ENTRY, words([movz(19, n & 0xffff), movz(16, 17), movz(0, 0), movz(1, 0), 0xd401d422, 0xf1000673, 0x54ffff61, 0xd4200000]));
  const t = process.hrtime.bigint();
  const r = cpu.run({ entry: ENTRY, maxInsns: 1e9 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  cpu.close();
  if (r.exit.kind !== "brk" || r.calls.total !== n) throw new FaultError(`${name}: unexpected end ${JSON.stringify(r.exit)}`);
  return { name, n, usPerCall: (s / n) * 1e6 };
}

const m = mips();
console.log(`guest code: ${m.insns} instructions in ${m.seconds.toFixed(3)} s = ${m.mips.toFixed(1)} MIPS`);
const a = roundTrip("trivial handler", () => ({ dispatch: (regs) => ((regs.x[0] = 0n), { op: "nop", nr: 17, args: [], ret: 0n }) }));
console.log(`hypercall round trip (${a.name}): ${a.usPerCall.toFixed(2)} µs per HVC (${a.n} calls)`);
const b = roundTrip("stub Xen xen_version", (mem) => {
  const hv = new XenHypervisor(mem);
  const d = hv.createDomain({ role: "dom0", ramRanges: [{ base: RAM, size: 16 << 20 }] });
  return { dispatch: (regs) => hv.dispatch(d, regs) };
});
console.log(`hypercall round trip (${b.name}): ${b.usPerCall.toFixed(2)} µs per HVC (${b.n} calls)`);
