// A GDB remote serial protocol server for one guest run (`dmalab guest --gdb PORT`), so that
// gdb-multiarch can attach over TCP on 127.0.0.1: registers (g/G, p/P), memory (m/M),
// software breakpoints (Z0/z0), single step (s), continue (c), kill (k), detach (D), and the
// aarch64 target description through qXfer:features:read.
//
// Unicorn runs the guest synchronously, so the stub never blocks in the CPU for long: the
// guest runs between socket reads, in slices of instructions. A continue runs slice after
// slice, yielding to the event loop in between, so a Ctrl-C from gdb (0x03) is seen and
// stops the guest with SIGINT; a step runs one instruction; breakpoints are per-address
// Unicorn code hooks (Arm64Cpu.setBreakpoint), so a guest under gdb runs at full speed
// between them. Everything stays in one thread: no worker, no shared-memory handoff.

import { createServer, type Server, type Socket } from "node:net";
import { UsageError } from "../errors.js";
import type { Arm64Cpu, ExitReason, RunResult } from "./arm64-cpu.js";

const SIGINT = 2;
const SIGILL = 4;
const SIGTRAP = 5;
const SIGSEGV = 11;
const SIGXCPU = 24;
/** instructions per slice of a continue: long enough to run fast, short enough for Ctrl-C */
const SLICE = 1_000_000;
const MAX_MEM_PACKET = 0x2000;
/** gdb's aarch64 register numbers of the core feature: x0..x30, sp, pc, cpsr */
const REG_SP = 31;
const REG_PC = 32;
const REG_CPSR = 33;
/** PSTATE mode bits reported with NZCV: EL1 with SP_EL1 (EL1h), where guest code runs */
const PSTATE_EL1H = 0x5;

const TARGET_XML =
  '<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>aarch64</architecture>' +
  '<feature name="org.gnu.gdb.aarch64.core">' +
  Array.from({ length: 31 }, (_, i) => `<reg name="x${i}" bitsize="64"/>`).join("") +
  '<reg name="sp" bitsize="64" type="data_ptr"/><reg name="pc" bitsize="64" type="code_ptr"/><reg name="cpsr" bitsize="32"/>' +
  "</feature></target>";

export interface GdbOptions {
  port: number;
  /** the run's instruction limit (a continue stops with SIGXCPU there) */
  maxInsns: number;
  /** called once the server listens (with the port, useful when 0 asked for any) */
  listening?: (port: number) => void;
}

const le64 = (v: bigint): string => {
  let s = "";
  for (let i = 0; i < 8; i++) s += Number((v >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, "0");
  return s;
};
const le32 = (v: number): string => le64(BigInt(v >>> 0)).slice(0, 8);
const fromLe = (hexs: string): bigint => {
  let v = 0n;
  for (let i = hexs.length - 2; i >= 0; i -= 2) v = (v << 8n) | BigInt(parseInt(hexs.slice(i, i + 2), 16));
  return v;
};
const checksum = (s: string): string => {
  let c = 0;
  for (let i = 0; i < s.length; i++) c = (c + s.charCodeAt(i)) & 0xff;
  return c.toString(16).padStart(2, "0");
};
const hexBytes = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The signal gdb shows for a stop at the end of the run (a fault, BRK, a limit). */
function signalOf(e: ExitReason): number {
  if (e.kind === "brk") return SIGTRAP;
  if (e.kind === "limit") return SIGXCPU;
  if (e.kind === "fault") return e.fault.kind === "undefined-instruction" ? SIGILL : e.fault.kind === "unmapped" || e.fault.kind === "mmio" ? SIGSEGV : SIGTRAP;
  return 0;
}

/**
 * Serves one debugger connection for `cpu` (already set up with debugStart). Resolves with
 * the run's result when the guest exits, gdb kills it (k: a "debugger" limit) or detaches
 * (D, or the connection closes: the guest then runs on to its end, within the limit).
 */
export function serveGdb(cpu: Arm64Cpu, opts: GdbOptions): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const server: Server = createServer();
    let conn: Socket | undefined;
    let buf = "";
    let noAck = false;
    let running = false;
    let interrupt = false;
    let finished = false;
    /** the run ended (exit, fault, BRK, limit); a fault or BRK is shown to gdb once as a stop */
    let ended: ExitReason | undefined;
    let endShown = false;

    const finish = (r: RunResult): void => {
      if (finished) return;
      finished = true;
      server.close();
      if (conn && !conn.destroyed) conn.end();
      resolve(r);
    };
    const send = (data: string): void => {
      if (conn && !conn.destroyed) conn.write(`$${data}#${checksum(data)}`);
    };
    const remaining = (): number => opts.maxInsns - cpu.debugInstructions;

    /** After the guest ran: what gdb is told, and whether the session is over. */
    const stopReply = (r: ReturnType<Arm64Cpu["debugResume"]> | { kind: "interrupted" }): void => {
      if (r.kind === "interrupted") return send(`S${SIGINT.toString(16).padStart(2, "0")}`);
      if (r.kind === "stopped") return send(`S${SIGTRAP.toString(16).padStart(2, "0")}`);
      ended = r.exit;
      if (r.exit.kind === "exit") {
        send(`W${(r.exit.code & 0xff).toString(16).padStart(2, "0")}`);
        return finish(cpu.debugEnd(r.exit));
      }
      if (!endShown) {
        // let the developer look at the registers where it stopped
        endShown = true;
        return send(`S${signalOf(r.exit).toString(16).padStart(2, "0")}`);
      }
      send(`X${signalOf(r.exit).toString(16).padStart(2, "0")}`);
      finish(cpu.debugEnd(r.exit));
    };

    const limitReached = (): ReturnType<Arm64Cpu["debugResume"]> => ({ kind: "exit", exit: { kind: "limit", limit: "insns" } });

    /** detached: the guest runs to its end, breakpoints and Ctrl-C no longer apply */
    let detached = false;
    const resume = (step: boolean): void => {
      if (ended !== undefined) return stopReply({ kind: "exit", exit: ended });
      if (step) {
        if (remaining() <= 0) return stopReply(limitReached());
        return stopReply(cpu.debugResume(1));
      }
      running = true;
      interrupt = false;
      const slice = (): void => {
        try {
          if (remaining() <= 0) {
            running = false;
            return detached ? finish(cpu.debugEnd({ kind: "limit", limit: "insns" })) : stopReply(limitReached());
          }
          const r = cpu.debugResume(Math.min(SLICE, remaining()));
          if (r.kind === "exit" || (r.kind === "stopped" && r.breakpoint && !detached)) {
            running = false;
            return r.kind === "exit" && detached ? finish(cpu.debugEnd(r.exit)) : stopReply(r);
          }
          if (interrupt && !detached) {
            running = false;
            return stopReply({ kind: "interrupted" });
          }
          setImmediate(slice);
        } catch (e) {
          running = false;
          finished = true;
          server.close();
          conn?.destroy();
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      };
      slice();
    };

    const detach = (): void => {
      // the breakpoints go with the debugger; the guest runs on to its end
      for (const a of breakpoints) cpu.clearBreakpoint(a);
      breakpoints.clear();
      detached = true;
      if (ended !== undefined) return finish(cpu.debugEnd(ended));
      if (!running) resume(false);
    };

    const breakpoints = new Set<number>();

    const regsHex = (): string => {
      const r = cpu.readRegs();
      let s = "";
      for (let i = 0; i < 31; i++) s += le64(r.x[i]!);
      return s + le64(r.sp) + le64(r.pc) + le32(cpu.nzcv | PSTATE_EL1H);
    };
    const readReg = (n: number): string | undefined => {
      const r = cpu.readRegs();
      if (n < 31) return le64(r.x[n]!);
      if (n === REG_SP) return le64(r.sp);
      if (n === REG_PC) return le64(r.pc);
      if (n === REG_CPSR) return le32(cpu.nzcv | PSTATE_EL1H);
      return undefined;
    };
    const writeReg = (n: number, v: bigint): boolean => {
      const r = cpu.readRegs();
      const x = new BigUint64Array(r.x);
      if (n < 31) x[n] = v;
      else if (n === REG_SP) r.sp = v;
      else if (n === REG_PC) r.pc = v;
      else if (n === REG_CPSR) {
        cpu.nzcv = Number(v & 0xf000_0000n);
        return true;
      } else return false;
      cpu.writeRegs({ x, sp: r.sp, pc: r.pc });
      return true;
    };

    const handle = (p: string): void => {
      const cmd = p[0];
      if (p.startsWith("qSupported")) return send(`PacketSize=${(MAX_MEM_PACKET * 2 + 64).toString(16)};qXfer:features:read+;QStartNoAckMode+`);
      if (p === "QStartNoAckMode") {
        send("OK");
        noAck = true;
        return;
      }
      if (p.startsWith("qXfer:features:read:target.xml:")) {
        const [o, l] = p.slice("qXfer:features:read:target.xml:".length).split(",").map((v) => parseInt(v, 16));
        const off = o ?? 0;
        const chunk = TARGET_XML.slice(off, off + (l ?? 0));
        return send((off + chunk.length >= TARGET_XML.length ? "l" : "m") + chunk);
      }
      if (p.startsWith("qXfer:")) return send("E00");
      if (p === "qAttached") return send("1");
      if (p === "qC") return send("QC1");
      if (p === "qfThreadInfo") return send("m1");
      if (p === "qsThreadInfo") return send("l");
      if (p.startsWith("qSymbol")) return send("OK");
      if (cmd === "H" || cmd === "T") return send("OK");
      if (p === "?") return send(ended !== undefined ? `S${signalOf(ended).toString(16).padStart(2, "0")}` : `S${SIGTRAP.toString(16).padStart(2, "0")}`);
      if (p === "g") return send(regsHex());
      if (cmd === "G") {
        const h = p.slice(1);
        if (h.length < 33 * 16) return send("E01");
        const x = new BigUint64Array(31);
        for (let i = 0; i < 31; i++) x[i] = fromLe(h.slice(i * 16, i * 16 + 16));
        cpu.writeRegs({ x, sp: fromLe(h.slice(31 * 16, 32 * 16)), pc: fromLe(h.slice(32 * 16, 33 * 16)) });
        if (h.length >= 33 * 16 + 8) cpu.nzcv = Number(fromLe(h.slice(33 * 16, 33 * 16 + 8)) & 0xf000_0000n);
        return send("OK");
      }
      if (cmd === "p") {
        const v = readReg(parseInt(p.slice(1), 16));
        return send(v ?? "E01");
      }
      if (cmd === "P") {
        const [n, v] = p.slice(1).split("=");
        return send(n !== undefined && v !== undefined && writeReg(parseInt(n, 16), fromLe(v)) ? "OK" : "E01");
      }
      if (cmd === "m") {
        const [a, l] = p.slice(1).split(",").map((v) => parseInt(v, 16));
        if (a === undefined || l === undefined || !Number.isSafeInteger(a) || !Number.isSafeInteger(l)) return send("E01");
        const bytes = cpu.readGuest(a, Math.min(l, MAX_MEM_PACKET));
        return send(bytes === undefined ? "E14" : hexBytes(bytes));
      }
      if (cmd === "M") {
        const [head, data = ""] = p.slice(1).split(":");
        const [a, l] = (head ?? "").split(",").map((v) => parseInt(v, 16));
        if (a === undefined || l === undefined || data.length !== l * 2) return send("E01");
        return send(cpu.debugWrite(a, Uint8Array.from(Buffer.from(data, "hex"))) ? "OK" : "E14");
      }
      if (cmd === "Z" || cmd === "z") {
        const [type, a] = p.slice(1).split(",");
        if (type !== "0" || a === undefined) return send(""); // only software breakpoints
        const addr = parseInt(a, 16);
        if (cmd === "Z") {
          cpu.setBreakpoint(addr);
          breakpoints.add(addr);
        } else {
          cpu.clearBreakpoint(addr);
          breakpoints.delete(addr);
        }
        return send("OK");
      }
      if (cmd === "s" || cmd === "c") {
        if (p.length > 1) cpu.pc = parseInt(p.slice(1), 16);
        return resume(cmd === "s");
      }
      if (p === "k") return finish(cpu.debugEnd({ kind: "limit", limit: "debugger" }));
      if (cmd === "D") {
        send("OK");
        return detach();
      }
      send(""); // not supported: gdb falls back (vCont → s/c, X → M, …)
    };

    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      for (;;) {
        if (buf.length === 0) return;
        const c = buf[0];
        if (c === "+" || c === "-") {
          buf = buf.slice(1);
          continue;
        }
        if (c === "\x03") {
          buf = buf.slice(1);
          interrupt = true;
          continue;
        }
        if (c !== "$") {
          buf = buf.slice(1);
          continue;
        }
        const hash = buf.indexOf("#");
        if (hash < 0 || buf.length < hash + 3) return;
        const body = buf.slice(1, hash);
        const sum = buf.slice(hash + 1, hash + 3);
        buf = buf.slice(hash + 3);
        if (!noAck) {
          if (checksum(body) !== sum.toLowerCase()) {
            conn?.write("-");
            continue;
          }
          conn?.write("+");
        }
        if (running) continue; // gdb sends nothing but 0x03 while the guest runs
        handle(body);
        if (finished) return;
      }
    };

    server.on("connection", (s) => {
      if (conn !== undefined) {
        s.destroy(); // one debugger per run
        return;
      }
      conn = s;
      s.setNoDelay(true);
      s.on("data", (d: Buffer) => {
        try {
          onData(d);
        } catch (e) {
          finished = true;
          server.close();
          s.destroy();
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      s.on("close", () => {
        if (!finished) detach();
      });
      s.on("error", () => undefined);
    });
    server.on("error", (e: NodeJS.ErrnoException) => reject(new UsageError(`--gdb ${opts.port}: cannot listen on 127.0.0.1:${opts.port}: ${e.code ?? e.message}`)));
    server.listen(opts.port, "127.0.0.1", () => {
      const a = server.address();
      opts.listening?.(typeof a === "object" && a !== null ? a.port : opts.port);
    });
  });
}
