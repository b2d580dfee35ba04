import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { cli as dmalab, root, setUp } from "../helpers/cli.js";

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
