// The GDB remote stub driven at the protocol level (as gdb-multiarch speaks it), and by a
// scripted gdb-multiarch session when Debian's gdb-multiarch is installed.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runGuest, runGuestGdb, type GuestArgs } from "../../src/cli/commands/guest.js";
import { parseElf } from "../../src/cpu/elf.js";
import { SymbolTable } from "../../src/cpu/symbols.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { machineSpec } from "../../src/machine/builder.js";
import { image, movz, svc, UDF } from "./asm.js";

const HELLO = join(__dirname, "..", "..", "fixtures", "guest", "hello.elf");
const syms = new SymbolTable(parseElf(new Uint8Array(readFileSync(HELLO)), "hello.elf"));
const MAIN = syms.address("main")!;
const COUNTER = syms.address("counter")!;

const checksum = (s: string): string => ([...s].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0)).toString(16).padStart(2, "0");
const le64 = (v: number | bigint): string => Buffer.from(new BigUint64Array([BigInt(v)]).buffer).toString("hex");
const fromLe64 = (h: string): bigint => Buffer.from(h, "hex").readBigUInt64LE(0);

/** A minimal GDB remote client: one request, one reply, acks as gdb sends them. */
class Client {
  private buf = "";
  private waiting: ((p: string) => void) | undefined;
  constructor(private readonly s: Socket) {
    s.on("data", (d: Buffer) => {
      this.buf += d.toString("latin1");
      this.pump();
    });
  }
  private pump(): void {
    this.buf = this.buf.replace(/^\+*/, "");
    const m = /^\$([^#]*)#([0-9a-f]{2})/.exec(this.buf);
    if (!m || !this.waiting) return;
    expect(checksum(m[1]!)).toBe(m[2]);
    this.buf = this.buf.slice(m[0].length);
    this.s.write("+");
    const w = this.waiting;
    this.waiting = undefined;
    w(m[1]!);
  }
  req(p: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.s.write(`$${p}#${checksum(p)}`);
      this.pump();
    });
  }
  send(p: string): void {
    this.s.write(`$${p}#${checksum(p)}`);
  }
}

function args(program: string, extra: Partial<GuestArgs> = {}): GuestArgs {
  return { program, spec: machineSpec({ machine: "qemu-virt-2g", xen: "none" }), maxInsns: 10_000_000, json: false, ...extra };
}

/** Runs `program` under the stub and hands a connected client to `drive`. */
async function debug(program: string, drive: (c: Client) => Promise<void>, extra: Partial<GuestArgs> = {}): Promise<Awaited<ReturnType<typeof runGuestGdb>>> {
  let client: Promise<void> | undefined;
  const run = runGuestGdb({
    ...args(program, extra),
    gdb: 0,
    gdbListening: (port) => {
      client = new Promise<void>((resolve, reject) => {
        const s = connect(port, "127.0.0.1", () => {
          drive(new Client(s)).then(resolve, reject);
        });
        s.on("error", reject);
      });
    },
  });
  const r = await run;
  await client;
  return r;
}

describe.skipIf(!unicornAvailable())("guest --gdb: the remote protocol", () => {
  it("registers, a breakpoint, a step, memory read and write, continue to the exit", async () => {
    const r = await debug(HELLO, async (c) => {
      expect(await c.req("qSupported:multiprocess+;swbreak+;xmlRegisters=aarch64")).toContain("qXfer:features:read+");
      const xml = await c.req("qXfer:features:read:target.xml:0,fff");
      expect(xml[0]).toBe("l");
      expect(xml).toContain("org.gnu.gdb.aarch64.core");
      expect(await c.req("?")).toBe("S05");
      const g = await c.req("g");
      expect(g.length).toBe(33 * 16 + 8);
      expect(fromLe64(g.slice(32 * 16, 33 * 16))).toBe(0x4008_0000n); // pc = e_entry
      expect(fromLe64(g.slice(0, 16))).toBe(0x4000_0000n); // x0 = RAM base (entry ABI)
      expect(await c.req(`Z0,${MAIN.toString(16)},4`)).toBe("OK");
      expect(await c.req("c")).toBe("S05");
      expect(fromLe64(await c.req("p20"))).toBe(BigInt(MAIN));
      expect(await c.req("s")).toBe("S05");
      expect(fromLe64(await c.req("p20"))).toBe(BigInt(MAIN + 4));
      // .data as loaded; then changed, so that main's check fails and it exits 1
      expect(await c.req(`m${COUNTER.toString(16)},8`)).toBe(le64(41));
      expect(await c.req(`M${COUNTER.toString(16)},8:${le64(5)}`)).toBe("OK");
      expect(await c.req(`m${COUNTER.toString(16)},8`)).toBe(le64(5));
      expect(await c.req("m8,4")).toMatch(/^E/); // not guest RAM
      expect(await c.req(`P1=${le64(0x1234)}`)).toBe("OK");
      expect(fromLe64(await c.req("p1"))).toBe(0x1234n);
      expect(await c.req(`z0,${MAIN.toString(16)},4`)).toBe("OK");
      expect(await c.req("vCont?")).toBe("");
      expect(await c.req("c")).toBe("W01");
    });
    expect(r.result.exit).toEqual({ kind: "exit", code: 1, service: "exit" });
    expect(r.status).toBe(1);
  });

  it("detach: the guest runs on to its end, with the instruction count of a plain run", async () => {
    const plain = runGuest(args(HELLO));
    const r = await debug(HELLO, async (c) => {
      expect(await c.req("D")).toBe("OK");
    });
    expect(r.result.console).toBe(plain.result.console);
    expect(r.status).toBe(0);
    expect(r.result.insns).toBe(plain.result.insns);
  });

  it("kill ends the run as a debugger limit (exit 4)", async () => {
    const r = await debug(HELLO, async (c) => {
      expect(await c.req("s")).toBe("S05");
      c.send("k");
    });
    expect(r.result.exit).toEqual({ kind: "limit", limit: "debugger" });
    expect(r.status).toBe(4);
    expect(r.text).toContain("killed from the debugger");
  });

  it("a fault stops with its signal first (registers can be read), then the run ends", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "dmalab-gdb-"));
    const prog = join(dir, "udf.bin");
    writeFileSync(prog, image([movz(0, 7), UDF, movz(8, 93), svc(0)]));
    try {
      const r = await debug(prog, async (c) => {
        expect(await c.req("c")).toBe("S04"); // SIGILL
        expect(fromLe64(await c.req("p20"))).toBe(0x4008_0004n);
        expect(fromLe64(await c.req("p0"))).toBe(7n);
        expect(await c.req("c")).toBe("X04");
      });
      expect(r.status).toBe(3);
      expect(r.result.exit.kind).toBe("fault");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const haveGdb = spawnSync("sh", ["-c", "command -v gdb-multiarch"]).status === 0;

describe.skipIf(!unicornAvailable() || !haveGdb)("guest --gdb with gdb-multiarch (skipped when Debian's gdb-multiarch is not installed)", () => {
  it("breaks at main, steps, reads a variable, sets one, detaches", async () => {
    let out = "";
    let gdbDone: Promise<number | null> | undefined;
    const run = runGuestGdb({
      ...args(HELLO),
      gdb: 0,
      gdbListening: (port) => {
        const g = spawn("gdb-multiarch", ["-nx", "-batch", "-ex", "set architecture aarch64", "-ex", `file ${HELLO}`, "-ex", `target remote 127.0.0.1:${port}`, "-ex", "break main", "-ex", "continue", "-ex", "info registers pc", "-ex", "stepi", "-ex", "print counter", "-ex", "set var counter = 5", "-ex", "detach"], { stdio: ["ignore", "pipe", "pipe"] });
        g.stdout.on("data", (d: Buffer) => (out += d.toString()));
        g.stderr.on("data", (d: Buffer) => (out += d.toString()));
        gdbDone = new Promise((resolve) => g.on("close", resolve));
      },
    });
    const r = await run;
    await gdbDone;
    expect(out).toMatch(/Breakpoint 1, main \(ram_base=1073741824/);
    expect(out).toMatch(/pc\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <main>/);
    expect(out).toContain("$1 = 41");
    expect(out).toContain("detached");
    // counter 5: main's check fails, so the guest exits 1
    expect(r.result.exit).toEqual({ kind: "exit", code: 1, service: "exit" });
  }, 120_000);
});
