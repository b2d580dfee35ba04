// dmalab guest PROGRAM [--machine PRESET] [--xen none|dom0|domU] [--load ADDR] [--max-insns N] [--json]
//
// Loads a raw arm64 binary (a path, or the name of a shipped program in fixtures/guest/) at
// ADDR (default: guest RAM base + 0x80000), runs it and reports the console, the exit reason,
// the instruction count and the hypercall/service log. Exit status: 0 for exit(0) or BRK #0,
// 1 for exit(n != 0) or another BRK immediate, 3 for a fault, 4 for a limit.
//
// Entry registers (dmalab guest ABI): x0 = guest RAM base, x1 = its size, x2 = DMA engine
// MMIO base, x3 = the engine's device number; sp = load address (the stack grows down below
// the image).

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { EXIT_FAULT, EXIT_GUEST, EXIT_LIMIT, EXIT_OK, UsageError, hex } from "../../errors.js";
import { buildGuestContext, type GuestXenRole } from "../../cpu/guest-context.js";
import type { ExitReason, RunResult } from "../../cpu/arm64-cpu.js";
import { resolveMachine } from "../../machine/preset.js";
import { flushAndExit, out } from "../output.js";

export const DEFAULT_LOAD_OFFSET = 0x80000;
export const DEFAULT_MAX_INSNS = 100_000_000;

export function guestDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const c = join(d, "fixtures", "guest");
    if (existsSync(c)) return c;
    d = dirname(d);
  }
  return join(process.cwd(), "fixtures", "guest");
}

export function readProgram(arg: string): Uint8Array {
  let path = arg;
  if (!existsSync(path)) {
    const shipped = join(guestDir(), arg.endsWith(".bin") ? arg : `${arg}.bin`);
    if (existsSync(shipped)) path = shipped;
    else throw new UsageError(`guest program '${arg}' not found (neither a file nor a program in fixtures/guest/)`);
  }
  const b = readFileSync(path);
  if (b.length === 0) throw new UsageError(`guest program '${arg}' is empty`);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

function parseAddr(s: string, what: string): number {
  const t = s.replace(/_/g, "");
  const v = /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t.slice(2), 16) : /^[0-9]+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`${what} '${s}': expected a non-negative integer (decimal or 0x hex)`);
  return v;
}

export function exitStatus(e: ExitReason): number {
  switch (e.kind) {
    case "exit":
      return e.code === 0 ? EXIT_OK : EXIT_GUEST;
    case "brk":
      return e.imm === 0 ? EXIT_OK : EXIT_GUEST;
    case "fault":
      return EXIT_FAULT;
    case "limit":
      return EXIT_LIMIT;
  }
}

const u64hex = (v: bigint): string => "0x" + BigInt.asUintN(64, v).toString(16);

/** The `--json` document. Signed results are exact decimal numbers (bigints stay exact). */
export function guestJson(r: RunResult): string {
  const exit: Record<string, unknown> =
    r.exit.kind === "exit"
      ? { reason: "exit", code: r.exit.code }
      : r.exit.kind === "brk"
        ? { reason: "brk", imm: r.exit.imm }
        : r.exit.kind === "limit"
          ? { reason: "limit", limit: r.exit.limit }
          : {
              reason: "fault",
              kind: r.exit.fault.kind,
              pc: hex(r.exit.fault.pc),
              ...(r.exit.fault.address !== undefined ? { address: hex(r.exit.fault.address) } : {}),
              ...(r.exit.fault.insn !== undefined ? { insn: "0x" + r.exit.fault.insn.toString(16).padStart(8, "0") } : {}),
              message: r.exit.fault.message,
            };
  const regs: Record<string, string> = {};
  for (let i = 0; i < 31; i++) regs[`x${i}`] = u64hex(r.regs.x[i]!);
  regs.sp = u64hex(r.regs.sp);
  regs.pc = u64hex(r.regs.pc);
  const doc = {
    exit,
    regs,
    insns: r.insns,
    console: r.console,
    hypercalls: r.log.map((l) => ({ kind: l.kind, op: l.op, nr: l.nr, args: l.args.map(u64hex), ret: l.ret })),
  };
  // bigints as exact JSON numbers
  const marker = "\u0000big:";
  const text = JSON.stringify(doc, (_k, v: unknown) => (typeof v === "bigint" ? marker + v.toString() : v), 2);
  return text.replace(/"\\u0000big:(-?\d+)"/g, "$1");
}

export function describeExit(e: ExitReason): string {
  switch (e.kind) {
    case "exit":
      return `exit: ${e.service}(${e.code})`;
    case "brk":
      return `exit: brk #${hex(e.imm)}`;
    case "limit":
      return `exit: limit (${e.limit === "insns" ? "instruction limit" : "wall-time limit"})`;
    case "fault": {
      const f = e.fault;
      return `exit: fault (${f.kind}) at pc ${hex(f.pc)}${f.insn !== undefined ? ` [insn 0x${f.insn.toString(16).padStart(8, "0")}]` : ""}: ${f.message}`;
    }
  }
}

export interface GuestArgs {
  program: string;
  machine: string;
  xen: GuestXenRole;
  load?: number;
  maxInsns: number;
  json: boolean;
}

export function runGuest(a: GuestArgs): { result: RunResult; text: string; status: number } {
  const image = readProgram(a.program);
  const desc = resolveMachine(a.machine);
  const ctx = buildGuestContext(desc, { xen: a.xen });
  try {
    const load = a.load ?? ctx.ramBase + DEFAULT_LOAD_OFFSET;
    ctx.cpu.load(load, image);
    const result = ctx.cpu.run({
      entry: load,
      stack: load,
      maxInsns: a.maxInsns,
      regs: { 0: BigInt(ctx.ramBase), 1: BigInt(ctx.ramSize), 2: BigInt(ctx.engineBase), 3: BigInt(ctx.engineDevice) },
    });
    let text: string;
    if (a.json) text = guestJson(result);
    else {
      const lines: string[] = [];
      if (result.console.length > 0) lines.push(result.console.replace(/\n$/, ""));
      lines.push(describeExit(result.exit));
      lines.push(`instructions: ${result.insns}`);
      if (result.log.length > 0) {
        lines.push("hypercalls and services:");
        for (const l of result.log) lines.push(`  ${l.kind} ${l.op}(${l.args.map(u64hex).join(", ")}) = ${l.ret}`);
      }
      text = lines.join("\n");
    }
    return { result, text, status: exitStatus(result.exit) };
  } finally {
    ctx.cpu.close();
  }
}

export function registerGuest(program: Command): void {
  program
    .command("guest")
    .description("run a raw arm64 guest program on the Unicorn CPU (Xen hypercalls, DMA services, the DMA engine)")
    .argument("<program>", "raw binary file, or the name of a program in fixtures/guest (xen-probe, dma-ring)")
    .option("--machine <preset>", "machine preset or JSON file", "qemu-virt-2g")
    .option("--xen <role>", "none | dom0 | domU", "none")
    .option("--load <addr>", "load (and entry) address; default guest RAM base + 0x80000")
    .option("--max-insns <n>", "instruction limit", String(DEFAULT_MAX_INSNS))
    .option("--json", "machine-readable output")
    .action((prog: string, o: { machine: string; xen: string; load?: string; maxInsns: string; json?: boolean }) => {
      if (o.xen !== "none" && o.xen !== "dom0" && o.xen !== "domU") throw new UsageError(`--xen '${o.xen}': expected none, dom0 or domU`);
      const maxInsns = parseAddr(o.maxInsns, "--max-insns");
      if (maxInsns < 1) throw new UsageError(`--max-insns '${o.maxInsns}': must be at least 1`);
      const args: GuestArgs = { program: prog, machine: o.machine, xen: o.xen, maxInsns, json: o.json === true };
      if (o.load !== undefined) args.load = parseAddr(o.load, "--load");
      const r = runGuest(args);
      out(r.text);
      flushAndExit(r.status);
    });
}
