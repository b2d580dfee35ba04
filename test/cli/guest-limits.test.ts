// `dmalab guest` against hostile guests (issue 13): every run ends with a defined outcome and
// exit code, one JSON document under --json, and host memory of tens of MB.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { cli as dmalab, root, setUp } from "../helpers/cli.js";
import { brk, hvc, image, mov64, movz, svc } from "../cpu/asm.js";

const tmp = mkdtempSync(join(tmpdir(), "dmalab-guest-limits-"));
const prog = (name: string, words: number[]): string => {
  const p = join(tmp, `${name}.bin`);
  writeFileSync(p, image(words));
  return p;
};
const RAM = 0x4000_0000; // qemu-virt-2g
const subs1 = (rd: number): number => (0xf1000400 | (rd << 5) | rd) >>> 0;
const bne = (back: number): number => (0x54000001 | ((-back & 0x7ffff) << 5)) >>> 0;

const BRK0 = prog("brk0", [brk(0)]);
// 5000 × write(1, RAM base, 1 MiB)
const WRITE_FLOOD = prog("write-flood", [...mov64(19, 5000), movz(0, 1), ...mov64(1, RAM), movz(2, 0x10, 1), movz(8, 64), svc(0), subs1(19), bne(7), brk(0)]);
// console_io(CONSOLEIO_write, 0xffffffff, RAM base)
const CONSOLE_IO = prog("console-io", [movz(0, 0), ...mov64(1, 0xffff_ffff), ...mov64(2, RAM), movz(16, 18), hvc(0xea1), brk(0)]);
const LDR_Q = prog("ldr-q", [0x3dc00040 /* ldr q0, [x2]: the DMA engine's window */, brk(0)]);
const BR_TOP = prog("br-top", [0x92800069 /* movn x9, #3 */, 0xd61f0120 /* br x9 */]);
const WFI = prog("wfi", [0xd503207f, brk(0)]);
// a preload that prints the process's peak RSS when it exits
const RSS_PRELOAD = join(tmp, "rss.cjs");
writeFileSync(RSS_PRELOAD, `process.on("exit", () => process.stderr.write("maxrss-kb " + process.resourceUsage().maxRSS + "\\n"));\n`);

const cli = (...args: string[]) => dmalab("guest", ...args);
const json = (args: string[], status: number): Record<string, unknown> => {
  const r = cli(...args, "--json");
  expect(r.status, r.stderr).toBe(status);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

beforeAll(() => setUp(), 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!unicornAvailable())("dmalab guest: bounded", () => {
  it("a lone `brk #0` costs tens of MB, not a GiB (no flush of Unicorn's 1 GiB translation buffer)", () => {
    const r = spawnSync(process.execPath, ["--require", RSS_PRELOAD, join(root, "bin", "dmalab.js"), "guest", BRK0, "--machine", "qemu-virt-2g"], { cwd: root, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const kb = Number(/maxrss-kb (\d+)/.exec(r.stderr)?.[1]);
    expect(kb).toBeGreaterThan(0);
    expect(kb).toBeLessThan(300 * 1024);
  });

  it("a flood of 1 MiB writes: the console keeps its first 64 KiB and says how much it dropped", () => {
    const doc = json([WRITE_FLOOD, "--machine", "qemu-virt-2g"], 0);
    expect((doc.console as string).length).toBe(64 * 1024);
    expect(doc.consoleDropped).toBe(5000 * 0x100000 - 64 * 1024);
    expect(doc.calls).toMatchObject({ total: 5000, logged: "recent", kept: 32, dropped: 5000 - 32 });
    const text = cli(WRITE_FLOOD, "--machine", "qemu-virt-2g");
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`[console: ${5000 * 0x100000 - 64 * 1024} more bytes dropped: only the first 65536 bytes are kept]`);
    expect(text.stdout).toContain("hypercalls and services: 5000 calls (write 5000)");
  });

  it("100,000 dma_map + dma_unmap services under --json: one document, counts per op and the last 32 calls", () => {
    const doc = json(["loop-dma-map", "--machine", "qemu-virt-2g"], 0);
    expect(doc.exit).toEqual({ reason: "exit", code: 0 });
    expect(doc.calls).toMatchObject({ total: 200_001, logged: "recent", kept: 32 });
    expect((doc.calls as { byOp: unknown[] }).byOp).toEqual([
      { kind: "service", op: "dma_map", nr: 0x1000, count: 100_000 },
      { kind: "service", op: "dma_unmap", nr: 0x1001, count: 100_000 },
      { kind: "service", op: "exit", nr: 93, count: 1 },
    ]);
    expect(doc.hypercalls).toHaveLength(32);
  }, 300_000);

  it("--log-calls N keeps every call up to N", () => {
    const doc = json(["loop-hypercall", "--machine", "qemu-virt-2g", "--xen", "dom0", "--log-calls", "1000"], 0);
    expect(doc.calls).toMatchObject({ total: 100_001, logged: "all", kept: 1000, dropped: 99_001 });
    expect(doc.hypercalls).toHaveLength(1000);
    expect(cli("loop-plain", "--log-calls", "0").status).toBe(2);
  }, 300_000);

  it("a Xen console_io write of 0xffffffff bytes ends (EFAULT past dom0's RAM) with one document", () => {
    const doc = json([CONSOLE_IO, "--machine", "qemu-virt-2g", "--xen", "dom0"], 0);
    expect(doc.hypercalls).toContainEqual(expect.objectContaining({ op: "console_io", errno: "EFAULT" }));
  });
});

describe.skipIf(!unicornAvailable())("dmalab guest: reported as what it is", () => {
  it("a 16-byte MMIO load is a data abort (exit 3)", () => {
    const doc = json([LDR_Q, "--machine", "qemu-virt-2g"], 3);
    expect(doc.exit).toMatchObject({ reason: "fault", kind: "mmio", insn: "0x3dc00040" });
  });
  it("a branch to 0xffff…fffc is an instruction fetch abort (exit 3)", () => {
    const doc = json([BR_TOP, "--machine", "qemu-virt-2g"], 3);
    expect(doc.exit).toMatchObject({ reason: "fault", kind: "unmapped", pc: "0xfffffffffffffffc" });
    const text = cli(BR_TOP, "--machine", "qemu-virt-2g");
    expect(text.stdout).toContain("exit: fault (unmapped) at pc 0xfffffffffffffffc");
  });
  it("WFI with nothing to wake it: the guest sleeps forever (exit 3), not the instruction limit", () => {
    const doc = json([WFI, "--machine", "qemu-virt-2g"], 3);
    expect(doc.exit).toMatchObject({ reason: "fault", kind: "wfi", pc: "0x40080000" });
  });
  it("a boot that faults before the program runs still prints one JSON document (exit 3)", () => {
    const doc = json([BRK0, "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0"], 3);
    expect(doc.exit).toMatchObject({ reason: "fault", kind: "boot" });
    expect(doc.schema).toBe("dmalab/guest@1");
    expect((doc.kernelLog as string[]).length).toBeGreaterThan(0);
  });
});
