import { spawnSync } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { cli as dmalab, root, setUp } from "../helpers/cli.js";
import { tinyElf } from "../cpu/asm.js";

const cli = (...args: string[]) => dmalab("guest", ...args);

// tiny raw programs: exit(7) through the service ABI, and BRK #5
const tmp = mkdtempSync(join(tmpdir(), "dmalab-guest-cli-"));
const words = (ws: number[]): Buffer => {
  const b = Buffer.alloc(ws.length * 4);
  ws.forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
  return b;
};
const EXIT7 = join(tmp, "exit7.bin");
const BRK5 = join(tmp, "brk5.bin");
writeFileSync(EXIT7, words([0xd28000e0 /* mov x0,#7 */, 0xd2800ba8 /* mov x8,#93 */, 0xd4000001 /* svc #0 */]));
writeFileSync(BRK5, words([0xd42000a0 /* brk #5 */]));

beforeAll(() => {
  setUp();
  expect(existsSync(join(root, "dist", "src", "cli", "commands", "guest.js"))).toBe(true);
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface GuestJson {
  exit: Record<string, unknown>;
  regs: Record<string, string> & { pc: string; sp: string };
  insns: number;
  console: string;
  schema: string;
  hypercalls: { op: string; args: string[]; ret: string; errno?: string }[];
}

describe.skipIf(!unicornAvailable())("dmalab guest", () => {
  it("--xen-debug: a debug build of Xen clobbers the used argument registers and x16; a release build keeps them", () => {
    const rel = JSON.parse(cli("xen-regs", "--xen", "dom0", "--json").stdout) as GuestJson;
    const dbg = JSON.parse(cli("xen-regs", "--xen", "dom0", "--xen-debug", "--json").stdout) as GuestJson;
    expect(rel.regs.x0).toBe("0x4000f");
    expect(dbg.regs.x0).toBe("0x4000f");
    // xen_version(cmd, arg) uses two arguments: x1 and x16 are clobbered, x2.. are not
    expect(rel.regs.x1).not.toBe("0xdeadbeef");
    expect(rel.regs.x16).toBe("0x11");
    expect(dbg.regs.x1).toBe("0xdeadbeef");
    expect(dbg.regs.x16).toBe("0xdeadbeef");
    expect(dbg.regs.x2).toBe(rel.regs.x2);
    expect(cli("xen-regs", "--xen-debug").status).toBe(2);
  });

  it("--json: exactly the documented keys; regs, args and results as unsigned hex, errors named", () => {
    const r = cli("xen-errors", "--xen", "dom0", "--json");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as GuestJson;
    expect(Object.keys(j).sort()).toEqual(["calls", "console", "consoleDropped", "exit", "hypercalls", "insns", "kernel", "kernelLog", "machine", "regs", "schema", "xen"]);
    expect(j.schema).toBe("dmalab/guest@1");
    expect(j.exit).toEqual({ reason: "brk", imm: 0 });
    const names = [...Array.from({ length: 31 }, (_, i) => `x${i}`), "sp", "pc"];
    expect(Object.keys(j.regs).sort()).toEqual([...names].sort());
    for (const n of names) expect(j.regs[n]).toMatch(/^0x[0-9a-f]{1,16}$/);
    // -EPERM, -EFAULT in registers: two's complement, unsigned
    expect(j.regs.x19).toBe("0xffffffffffffffff");
    expect(j.regs.x20).toBe("0xfffffffffffffff2");
    expect(j.regs.x22).toBe("0xffffffffffffffda");
    // ... and in the log as the register holds them, with the errno named beside an error
    const u64 = (n: number): string => "0x" + BigInt.asUintN(64, BigInt(n)).toString(16);
    expect(j.hypercalls.map((h) => h.ret)).toEqual([-1, -14, 1, -38, -22, -14, 5, -22, 4096].map(u64));
    expect(j.hypercalls.map((h) => h.errno ?? null)).toEqual(["EPERM", "EFAULT", null, "ENOSYS", "EINVAL", "EFAULT", null, "EINVAL", null]);
    expect(j.hypercalls[0]!.op).toBe("memory_op");
    expect(j.hypercalls.every((h) => Array.isArray(h.args))).toBe(true);
    expect(Number.isInteger(j.insns) && j.insns > 0).toBe(true);
    // stopped at the program's BRK #0, loaded at qemu-virt's RAM base + 0x80000
    const bin = readFileSync(join(root, "fixtures", "guest", "xen-errors.bin"));
    let brkAt = -1;
    for (let o = 0; o < bin.length; o += 4) if (bin.readUInt32LE(o) === 0xd4200000) brkAt = brkAt < 0 ? o : brkAt;
    expect(BigInt(j.regs.pc)).toBe(0x4008_0000n + BigInt(brkAt));
    expect(j.regs.sp).toBe("0x40080000");
  });

  it("exit 0 for exit(0), with the console and the boot line in the text output", () => {
    const r = cli("dma-ring", "--machine", "rpi4-8g", "--xen", "dom0", "--load", "0x4008_0000");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("dma-ring: all bytes verified");
    expect(r.stdout).toMatch(/kernel 6\.x, xen dom0 \(d0, direct-mapped, Xen 4\.15\).*xen_swiotlb_dma_ops/);
    expect(r.stdout).toContain("exit: exit(0)");
  });

  it("exit 1 for exit(n != 0) and for BRK with another immediate; --load places the program", () => {
    const a = cli(EXIT7, "--json");
    expect(a.status).toBe(1);
    expect((JSON.parse(a.stdout) as GuestJson).exit).toEqual({ reason: "exit", code: 7 });
    const b = cli(BRK5, "--load", "0x5000_0000", "--json");
    expect(b.status).toBe(1);
    const j = JSON.parse(b.stdout) as GuestJson;
    expect(j.exit).toEqual({ reason: "brk", imm: 5 });
    expect(j.regs.pc).toBe("0x50000000");
    expect(j.regs.x0).toBe("0x40000000"); // the bank holding the load address
  });

  it("exit 3 for a guest fault and for a boot fault (one stderr line)", () => {
    const f = cli("xen-probe", "--json");
    expect(f.status).toBe(3);
    expect((JSON.parse(f.stdout) as GuestJson).exit).toMatchObject({ reason: "fault", kind: "undefined-instruction" });
    const b = cli("dma-ring", "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0");
    expect(b.status).toBe(3);
    const err = b.stderr.trim().split("\n");
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^dmalab: boot of rpi4-1g \(kernel 5\.13-rc1, xen dom0\) faulted: .*NULL pointer dereference.*xen_swiotlb_dma_supported/);
  });

  it("exit 4 at the instruction limit", () => {
    const r = cli("dma-ring", "--max-insns", "1000", "--json");
    expect(r.status).toBe(4);
    const j = JSON.parse(r.stdout) as GuestJson;
    expect(j.exit).toEqual({ reason: "limit", limit: "insns" });
    expect(j.insns).toBe(1000);
  });

  it("bad arguments: exit 2, one line naming the value", () => {
    for (const [args, what] of [
      [["dma-ring", "--xen", "dom2"], "dom2"],
      [["dma-ring", "--kernel", "5.11"], "5.11"],
      [["dma-ring", "--feature", "direct_mapped"], "--feature"],
      [["no-such-program"], "no-such-program"],
      [["dma-ring", "--load", "0x1000"], "0x1000"],
    ] as const) {
      const r = cli(...args);
      expect(r.status, `${args.join(" ")}: signal ${r.signal} ${r.stderr}`).toBe(2);
      const err = r.stderr.trim().split("\n");
      expect(err).toHaveLength(1);
      expect(err[0]).toContain(what);
    }
  });
});

// ---- ELF programs, the SDK, fault reports, traces, program files ------------------------------

const ccAvailable = (): boolean => spawnSync("sh", ["-c", "command -v aarch64-linux-gnu-gcc"]).status === 0;
/** scripts/build-guest.sh SRC -o OUT (the SDK's build, as a user runs it) */
function buildC(name: string, source: string): string {
  const src = join(tmp, `${name}.c`);
  const out = join(tmp, `${name}.elf`);
  writeFileSync(src, source);
  const r = spawnSync(join(root, "scripts", "build-guest.sh"), ["-o", out, src], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return out;
}
const NO_CC = "gcc-aarch64-linux-gnu is not installed and scripts/setup.mjs could not install it (not root?)";

const STATUS_C = `#include <dmalab.h>
static const char msg[] = "status program: ";   /* .rodata */
u64 seed = 3;                                   /* .data */
u64 scratch[32];                                /* .bss */
int main(u64 ram_base, u64 ram_size, volatile void *dma_engine, u64 dev)
{
	char b[24];
	(void)ram_base; (void)ram_size; (void)dma_engine; (void)dev;
	for (int i = 0; i < 32; i++) if (scratch[i]) return 100;
	scratch[5] = seed * 2;
	puts_dmalab(msg); puts_dmalab(utodec(b, scratch[5])); puts_dmalab("\\n");
	return (int)seed;
}
`;

const FAULT_C = `#include <dmalab.h>
__attribute__((noinline)) u64 poke(volatile u64 *p) { *p = 1; return 0; }
int main(u64 a, u64 b, volatile void *c, u64 d)
{
	(void)a; (void)b; (void)c; (void)d;
	return (int)poke((volatile u64 *)0x10);
}
`;

describe.skipIf(!unicornAvailable())("dmalab guest: ELF programs", () => {
  it("the C fixture prints its line and exits 0, natively and as dom0", () => {
    for (const xen of ["none", "dom0"]) {
      const r = cli("hello", "--xen", xen);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("hello from a C guest: counter=42 ram=0x40000000 engine=0xa000000");
      expect(r.stdout).toContain("ELF loaded at 0x40080000, entry 0x40080000 <_start>");
      expect(r.stdout).toContain("exit: exit(0)");
    }
  });

  it("a C program built by scripts/build-guest.sh (.text .rodata .data .bss) exits with its status, natively and as dom0", (ctx) => {
    if (!ccAvailable()) return ctx.skip(NO_CC);
    const prog = buildC("status", STATUS_C);
    for (const xen of ["none", "dom0"]) {
      const r = cli(prog, "--xen", xen, "--machine", "qemu-virt-2g");
      expect(r.status, r.stderr).toBe(1);
      expect(r.stdout).toContain("status program: 6\n");
      expect(r.stdout).toContain("exit: exit(3)");
    }
  });

  it("the README's C guest builds with scripts/build-guest.sh and copies its buffer with the DMA engine, natively and as dom0", (ctx) => {
    if (!ccAvailable()) return ctx.skip(NO_CC);
    const blocks = [...readFileSync(join(root, "README.md"), "utf8").matchAll(/```c\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(1);
    const prog = buildC("readme-copy", blocks[0]!);
    for (const xen of ["none", "dom0"]) {
      const r = cli(prog, "--xen", xen);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain("copied: bytes the DMA engine copies\n");
    }
  });

  it("a fault names the symbol, shows the instruction and every register (text), symbol and insn (JSON)", (ctx) => {
    if (!ccAvailable()) return ctx.skip(NO_CC);
    const prog = buildC("fault", FAULT_C);
    const r = cli(prog);
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/exit: fault \(unmapped\) at pc 0x4008[0-9a-f]+ <poke(\+0x[0-9a-f]+)?>/);
    expect(r.stdout).toMatch(/ {2}pc 0x4008[0-9a-f]+ <poke(\+0x[0-9a-f]+)?>: 0x[0-9a-f]{8}/);
    expect(r.stdout).toMatch(/ {2}address 0x10\n/);
    for (const reg of ["x0", "x15", "x30", "sp"]) expect(r.stdout).toMatch(new RegExp(`\\b${reg} 0x[0-9a-f]{16}`));
    const j = JSON.parse(cli(prog, "--json").stdout) as GuestJson;
    expect(j.exit).toMatchObject({ reason: "fault", kind: "unmapped", address: "0x10" });
    expect(String(j.exit.symbol)).toMatch(/^poke/);
  });

  it("--trace-insns N: the last N instructions with their symbols, the last where it stopped", () => {
    const r = cli("hello", "--trace-insns", "4");
    expect(r.status).toBe(0);
    const at = r.stdout.split("\n").indexOf("last 4 instructions:");
    expect(at).toBeGreaterThan(0);
    const lines = r.stdout.split("\n").slice(at + 1, at + 5);
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(/^ {2}0x4008[0-9a-f]+ <[a-z_]+(\+0x[0-9a-f]+)?> {2}0x[0-9a-f]{8}/);
    expect(lines[3]).toMatch(/<_start\+0x[0-9a-f]+> {2}0xd4000001/); // crt0's svc #0 (exit)
    expect(cli("hello", "--trace-insns", "0").status).toBe(2);
  });

  it("ELF segments outside guest RAM or over MMIO, and --load with an ELF: exit 2 with the reason", () => {
    const code = new Uint8Array([0xa0, 0x00, 0x20, 0xd4]); // brk #5
    const low = join(tmp, "low.elf");
    const mmio = join(tmp, "mmio.elf");
    const trunc = join(tmp, "trunc.elf");
    writeFileSync(low, tinyElf(code, 0x1000));
    writeFileSync(mmio, tinyElf(code, 0x0a00_0000));
    writeFileSync(trunc, tinyElf(code).subarray(0, 100));
    for (const [args, re] of [
      [[low], /segment 0x1000-0x1003 is outside the guest's RAM \(0x40000000-/],
      [[mmio], /segment 0xa000000-0xa000003 overlaps the MMIO window dma-engine at 0xa000000-0xa000fff/],
      [[trunc], /truncated: program headers/],
      [["hello", "--load", "0x40100000"], /is an ELF, loaded where its program headers say/],
    ] as const) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      const err = r.stderr.trim().split("\n");
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(re);
    }
    // a hand-made ELF in RAM runs: BRK #5 at its entry
    const ok = join(tmp, "ok.elf");
    writeFileSync(ok, tinyElf(code, 0x4010_0000, 64));
    const r = cli(ok);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("exit: brk #0x5");
  });

  it("program files that are no program are refused by type, before reading (no hang on /dev/zero or a FIFO)", () => {
    const fifo = join(tmp, "fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const big = join(tmp, "big.bin");
    const fd = openSync(big, "w");
    ftruncateSync(fd, 64 * 1024 * 1024 + 1); // sparse
    closeSync(fd);
    const empty = join(tmp, "empty.bin");
    writeFileSync(empty, "");
    for (const [arg, what] of [
      ["/dev/zero", "is a character device, not a regular file"],
      [fifo, "is a FIFO, not a regular file"],
      [tmp, "is a directory"],
      [big, "over the 64 MiB limit"],
      [empty, "is empty"],
    ] as const) {
      const r = cli(arg);
      expect(r.status, arg).toBe(2);
      const err = r.stderr.trim().split("\n");
      expect(err).toHaveLength(1);
      expect(err[0]).toContain(what);
    }
  });
});

describe("dmalab guest: built-in programs and how to build one", () => {
  it("--help lists every built-in program; no program says how to build one (exit 2)", () => {
    const shipped = readdirSync(join(root, "fixtures", "guest")).filter((f) => /\.(elf|bin)$/.test(f)).map((f) => f.replace(/\.(elf|bin)$/, ""));
    expect(shipped).toContain("hello");
    const h = cli("--help");
    expect(h.status).toBe(0);
    for (const p of shipped) expect(h.stdout).toMatch(new RegExp(`^  ${p} +\\S`, "m"));
    expect(h.stdout).toContain("scripts/build-guest.sh prog.c");
    const r = cli();
    expect(r.status).toBe(2);
    const err = r.stderr.trim().split("\n");
    expect(err).toHaveLength(1);
    expect(err[0]).toContain("scripts/build-guest.sh prog.c");
    for (const p of shipped) expect(err[0]).toContain(p);
  });
});
