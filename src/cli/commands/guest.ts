// dmalab guest PROGRAM [--machine PRESET] [--kernel VERSION] [--xen none|dom0|domU]
//   [--feature direct_mapped|not_direct_mapped ...] [--xen-version V] [--swiotlb STR]
//   [--device N|NAME] [--load ADDR] [--max-insns N] [--trace-insns N] [--gdb PORT] [--json]
//
// Boots the machine as `dmalab boot` does (same kernel profile, Xen role and features), then
// loads the program (a path, or the name of a shipped program in fixtures/guest/) in that
// kernel's guest-physical space, runs it and reports the console, the exit reason, the
// instruction count and the hypercall/service log. A static AArch64 ELF (by its magic) is
// loaded by its program headers at p_paddr, .bss zeroed, entered at e_entry, and its symbols
// name addresses in fault reports and traces; any other file is a raw binary loaded at ADDR
// (default: guest RAM base + 0x80000) and entered there.
// Exit status: 0 for exit(0) or BRK #0, 1 for exit(n != 0) or another BRK immediate, 3 for a
// fault (of the guest, or of the boot before it), 4 for a limit.
//
// Entry registers (dmalab guest ABI): x0 = base of the guest RAM bank holding the load
// address (the first bank by default), x1 = that bank's size, x2 = DMA engine MMIO base,
// x3 = the engine's device number; sp = load address (the stack grows down below the image).
// For an ELF the load address is its lowest segment's.

import { closeSync, existsSync, readdirSync, readFileSync, readSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { EXIT_FAULT, EXIT_GUEST, EXIT_LIMIT, EXIT_OK, InputError, UsageError, hex } from "../../errors.js";
import { bankOf, BootFaultError, buildGuestContext, type GuestContext } from "../../cpu/guest-context.js";
import { CONSOLE_CAP, type ExitReason, type GuestFault, type RunOptions, type RunResult } from "../../cpu/arm64-cpu.js";
import { DEFAULT_LOG_CALLS_CAP, RECENT_CALLS } from "../../cpu/traps.js";
import { isElf, parseElf, type ElfImage } from "../../cpu/elf.js";
import { SymbolTable } from "../../cpu/symbols.js";
import { disassemble } from "../../cpu/disasm.js";
import { serveGdb } from "../../cpu/gdb-stub.js";
import { machineSpec, type MachineSpec } from "../../machine/builder.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { formatDmaDebug, releaseDrivers } from "../dma-debug-report.js";
import type { DmaDebugSummary } from "../../dma/debug.js";
import { checkWritable, parseIntArg } from "../parse.js";
import { openInputFile } from "../input-file.js";
import { openTrace } from "../../trace/trace.js";
import type { TraceValue } from "../../events.js";
import type { Machine } from "../../machine/machine.js";
import type { BootReport } from "../../machine/boot.js";
import { errnoName } from "../../kernel/errno.js";

/** the kernel's MAX_ERRNO: results in [-4095, -1] are errors */
const MAX_ERRNO = 4095n;
import type { Device } from "../../dma/device.js";
import type { Domain } from "../../xen/hypervisor/domain.js";
import type { XenHypervisor } from "../../xen/hypervisor/hypervisor.js";
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

/** Guest programs larger than this are refused before reading (guest RAM holds them whole). */
export const MAX_PROGRAM_BYTES = 64 * 1024 * 1024;

/** The built-in programs of fixtures/guest/ (NAME.elf or NAME.bin), with their sources' first comment line. */
export function builtinPrograms(): { name: string; file: string; about: string }[] {
  const dir = guestDir();
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const out = new Map<string, { name: string; file: string; about: string }>();
  for (const f of files.sort()) {
    const m = /^(.*)\.(elf|bin)$/.exec(f);
    if (!m || out.has(m[1]!)) continue;
    const name = m[1]!;
    let about = "";
    for (const src of [`${name}.c`, `${name}.S`]) {
      if (!existsSync(join(dir, src))) continue;
      const first = /^\s*\/\/\s*(.*)$/m.exec(readFileSync(join(dir, src), "utf8"));
      about = (first?.[1] ?? "").replace(new RegExp(`^${name}:\\s*`), "");
      break;
    }
    out.set(name, { name, file: f, about });
  }
  return [...out.values()];
}

/** The file a program argument names: a path, or a built-in program's name. */
export function programPath(arg: string): string {
  if (existsSync(arg)) return arg;
  for (const f of [arg, `${arg}.elf`, `${arg}.bin`]) {
    if (f.includes("/")) break;
    const shipped = join(guestDir(), f);
    if (existsSync(shipped) && /\.(elf|bin)$/.test(f)) return shipped;
  }
  throw new UsageError(`guest program '${arg}' not found (neither a file nor a built-in program: ${builtinPrograms().map((p) => p.name).join(", ")}; see dmalab guest --help)`);
}

/**
 * Reads a guest program, refusing by type what is no program before opening it (a FIFO would
 * block the open, /dev/zero never ends) and what guest RAM could not hold.
 */
export function readProgram(arg: string): Uint8Array {
  const path = programPath(arg);
  const { fd, size } = openInputFile(path, { what: "guest program" });
  try {
    if (size > MAX_PROGRAM_BYTES) throw new UsageError(`guest program '${arg}' is ${size} bytes, over the ${MAX_PROGRAM_BYTES / 1024 / 1024} MiB limit`);
    if (size === 0) throw new UsageError(`guest program '${arg}' is empty`);
    // read at most the limit + 1 bytes: a file that grew since the check is caught, not read whole
    const b = Buffer.alloc(size + 1);
    let n = 0;
    for (;;) {
      const k = readSync(fd, b, n, b.length - n, null);
      if (k === 0) break;
      n += k;
      if (n === b.length) break;
    }
    if (n > MAX_PROGRAM_BYTES) throw new UsageError(`guest program '${arg}' is over the ${MAX_PROGRAM_BYTES / 1024 / 1024} MiB limit`);
    if (n === 0) throw new UsageError(`guest program '${arg}' is empty`);
    return new Uint8Array(b.buffer, b.byteOffset, n);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new InputError(`cannot read guest program: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, arg);
  } finally {
    closeSync(fd);
  }
}

/** A program as the loader sees it: an ELF (by its magic) or a raw binary. */
export interface GuestProgram {
  bytes: Uint8Array;
  elf?: ElfImage;
  symbols: SymbolTable;
}

export function parseProgram(arg: string, bytes: Uint8Array): GuestProgram {
  if (!isElf(bytes)) return { bytes, symbols: SymbolTable.EMPTY };
  const elf = parseElf(bytes, arg);
  return { bytes, elf, symbols: new SymbolTable(elf) };
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

/**
 * One hypercall or service as JSON: arguments and result as the registers hold them
 * ("0x…", unsigned 64-bit); a result that is an error also names it — "errno" for a
 * negative errno, "error": "DMA_MAPPING_ERROR" for a failed dma_map.
 */
function callJson(l: RunResult["log"][number]): Record<string, unknown> {
  const ret = BigInt(l.ret);
  const o: Record<string, unknown> = { kind: l.kind, op: l.op, nr: l.nr, args: l.args.map(u64hex), ret: u64hex(ret) };
  if (l.kind === "service" && l.op === "dma_map") {
    if (ret === -1n) o.error = "DMA_MAPPING_ERROR";
  } else if (ret < 0n && ret >= -MAX_ERRNO) o.errno = errnoName(Number(-ret));
  return o;
}

function faultExtras(f: GuestFault, symbols: SymbolTable | undefined): Record<string, string> {
  const o: Record<string, string> = {};
  const sym = symbols?.describe(f.pc) ?? "";
  if (sym !== "") o.symbol = sym.slice(1, -1);
  const d = faultDisasm(f);
  if (d !== undefined) o.disasm = d;
  return o;
}

function traceJson(t: TraceEntry, symbols: SymbolTable | undefined): Record<string, string> {
  const o: Record<string, string> = { pc: hex(t.pc) };
  const sym = symbols?.describe(t.pc) ?? "";
  if (sym !== "") o.symbol = sym.slice(1, -1);
  if (t.insn !== undefined) o.insn = "0x" + t.insn.toString(16).padStart(8, "0");
  return o;
}

/** The `--json` document. */
/** One traced instruction in `--json`. */
export interface TraceEntry {
  pc: number;
  insn?: number;
}

export function guestJson(
  r: RunResult,
  boot: BootReport,
  symbols?: SymbolTable,
  trace?: readonly TraceEntry[],
  debug?: { dmaDebug: DmaDebugSummary; kernelLog: string[] },
): string {
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
              pc: r.exit.fault.pcHex ?? hex(r.exit.fault.pc),
              ...(r.exit.fault.address !== undefined ? { address: r.exit.fault.pcHex !== undefined && r.exit.fault.address === r.exit.fault.pc ? r.exit.fault.pcHex : hex(r.exit.fault.address) } : {}),
              ...(r.exit.fault.insn !== undefined ? { insn: "0x" + r.exit.fault.insn.toString(16).padStart(8, "0") } : {}),
              ...faultExtras(r.exit.fault, symbols),
              message: r.exit.fault.message,
            };
  const regs: Record<string, string> = {};
  for (let i = 0; i < 31; i++) regs[`x${i}`] = u64hex(r.regs.x[i]!);
  regs.sp = u64hex(r.regs.sp);
  regs.pc = u64hex(r.regs.pc);
  const doc = {
    schema: "dmalab/guest@1",
    machine: boot.machine,
    kernel: boot.kernel,
    xen: boot.xen,
    exit,
    regs,
    insns: r.insns,
    console: r.console,
    hypercalls: r.log.map(callJson),
    kernelLog: debug?.kernelLog ?? boot.kernelLog,
    ...(debug ? { dmaDebug: debug.dmaDebug } : {}),
    ...callLogJson(r),
    ...(trace !== undefined ? { trace: trace.map((t) => traceJson(t, symbols)) } : {}),
  };
  return JSON.stringify(doc, null, 2);
}

// ---- bounded call log and console (--log-calls), a boot that faults under --json -----------

/** What the bounded log kept, and the console bytes beyond its cap. */
function callLogJson(r: RunResult): Record<string, unknown> {
  const c = r.calls;
  return { calls: { total: c.total, logged: c.logged, kept: c.kept, dropped: c.dropped, byOp: c.byOp }, consoleDropped: r.consoleDropped };
}

/** The text report's lines for the console cap and the call log. */
function callLogLines(r: RunResult): string[] {
  const lines: string[] = [];
  if (r.consoleDropped > 0) lines.push(`[console: ${r.consoleDropped} more bytes dropped: only the first ${CONSOLE_CAP} bytes are kept]`);
  const c = r.calls;
  if (c.total === 0) return lines;
  if (c.dropped === 0) {
    lines.push("hypercalls and services:");
  } else {
    lines.push(`hypercalls and services: ${c.total} calls (${c.byOp.map((o) => `${o.op} ${o.count}`).join(", ")})`);
    lines.push(c.logged === "recent" ? `the last ${c.kept} (every call: --log-calls):` : `the first ${c.kept} (the --log-calls cap):`);
  }
  for (const l of r.log) lines.push(`  ${l.kind} ${l.op}(${l.args.map(u64hex).join(", ")}) = ${l.ret}`);
  return lines;
}

/** `--json` when the boot faulted before the program could run: still one document. */
export function bootFaultJson(e: BootFaultError): string {
  const br = e.report;
  return JSON.stringify(
    {
      schema: "dmalab/guest@1",
      machine: br.machine,
      kernel: br.kernel,
      xen: br.xen,
      exit: { reason: "fault", kind: "boot", message: e.message },
      insns: 0,
      console: "",
      hypercalls: [],
      kernelLog: br.kernelLog,
    },
    null,
    2,
  );
}

/** --log-calls [N]: every call up to N (default DEFAULT_LOG_CALLS_CAP, at most 10 million). */
function parseLogCalls(v: string | boolean | undefined): number | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return DEFAULT_LOG_CALLS_CAP;
  return parseIntArg("--log-calls", v, 1, 10_000_000);
}

const insnHex = (w: number): string => "0x" + w.toString(16).padStart(8, "0");

/** ` <sym+0x40>` or nothing. */
const symAt = (symbols: SymbolTable | undefined, addr: number): string => {
  const d = symbols?.describe(addr) ?? "";
  return d === "" ? "" : ` ${d}`;
};

export function describeExit(e: ExitReason, symbols?: SymbolTable): string {
  switch (e.kind) {
    case "exit":
      return `exit: ${e.service}(${e.code})`;
    case "brk":
      return `exit: brk #${hex(e.imm)}`;
    case "limit":
      return `exit: limit (${e.limit === "insns" ? "instruction limit" : e.limit === "time" ? "wall-time limit" : "killed from the debugger"})`;
    case "fault": {
      const f = e.fault;
      return `exit: fault (${f.kind}) at pc ${f.pcHex ?? hex(f.pc)}${symAt(symbols, f.pc)}${f.insn !== undefined ? ` [insn ${insnHex(f.insn)}]` : ""}: ${f.message}`;
    }
  }
}

/** The faulting instruction as assembly when libcapstone is there, else undefined. */
function faultDisasm(f: GuestFault): string | undefined {
  return f.insn === undefined ? undefined : disassemble(f.insn, f.pc)?.replace(/\t/g, " ");
}

/** The lines a fault adds to the text report: where, the instruction, every register. */
export function faultReport(f: GuestFault, regs: RunResult["regs"], symbols?: SymbolTable): string[] {
  const lines: string[] = [];
  const d = faultDisasm(f);
  lines.push(`  pc ${hex(f.pc)}${symAt(symbols, f.pc)}: ${f.insn === undefined ? "(instruction not readable)" : `${insnHex(f.insn)}${d !== undefined ? `  ${d}` : ""}`}`);
  if (f.address !== undefined) lines.push(`  address ${hex(f.address)}${symAt(symbols, f.address)}`);
  const r = (v: bigint): string => "0x" + BigInt.asUintN(64, v).toString(16).padStart(16, "0");
  for (let i = 0; i < 31; i += 4) {
    const row: string[] = [];
    for (let k = i; k < Math.min(i + 4, 31); k++) row.push(`${`x${k}`.padStart(3)} ${r(regs.x[k]!)}`);
    if (i + 4 > 31) row.push(` sp ${r(regs.sp)}`);
    lines.push("  " + row.join("  "));
  }
  lines.push(`  lr ${hex(regs.x[30]!)}${symAt(symbols, Number(regs.x[30]!))}`);
  return lines;
}

/** `--trace-insns`: the last instructions, oldest first. */
export function traceReport(trace: readonly TraceEntry[], symbols: SymbolTable | undefined): string[] {
  const lines = [`last ${trace.length} instructions:`];
  for (const { pc, insn } of trace) {
    const d = insn === undefined ? undefined : disassemble(insn, pc)?.replace(/\t/g, " ");
    lines.push(`  ${hex(pc)}${symAt(symbols, pc)}${insn !== undefined ? `  ${insnHex(insn)}` : ""}${d !== undefined ? `  ${d}` : ""}`);
  }
  return lines;
}

export interface GuestArgs {
  program: string;
  /** the program's bytes, when the command line already read them */
  image?: Uint8Array;
  /** the machine to boot, checked */
  spec: MachineSpec;
  /** the DMA engine's device (index, name or driver); default the first probed device */
  device?: string | number;
  load?: number;
  maxInsns: number;
  /** wall-clock limit of the run (default: the CPU's 30 s) */
  timeLimitMs?: number;
  json: boolean;
  /** keep every hypercall/service call, up to this many (default: counts per op and the last few) */
  logCalls?: number;
  /** write the run's events (DMA API, swiotlb, hypercalls, services) as Chrome trace-event JSON */
  trace?: string;
  /** keep and report the PCs of the last N instructions */
  traceInsns?: number;
  /** serve the GDB remote protocol on 127.0.0.1:PORT (0: any free port) and run under the debugger */
  gdb?: number;
  /** with gdb: told the port once the server listens */
  gdbListening?: (port: number) => void;
}

/** What the run went through, besides the guest's own result (for tests and the text report). */
export interface GuestRunInfo {
  /** the kernel's DMA ops on the engine's device */
  dmaOps: "xen_swiotlb_dma_ops" | "dma-direct";
  /** the kernel's default swiotlb pool [start, end) (guest-physical), if any */
  pool: { start: number; end: number } | null;
  /** the engine's device (its dma-ranges turn a DMA address back into a physical one) */
  device: Device;
  engineDevice: number;
  load: number;
  /** the entry point (the load address of a raw binary, e_entry of an ELF) */
  entry: number;
  /** the domain and its hypervisor, with Xen */
  domain?: Domain;
  hypervisor?: XenHypervisor;
}

const ramList = (ctx: GuestContext): string => ctx.ram.map((r) => `${hex(r.base)}-${hex(r.base + r.size - 1)}`).join(", ");

/**
 * Puts the program in guest memory: an ELF's segments at p_paddr (refused when one leaves
 * guest RAM or touches an MMIO window), a raw binary at `load`. Returns where it starts.
 */
export function placeProgram(ctx: GuestContext, prog: GuestProgram, load: number | undefined, name: string): { load: number; entry: number } {
  if (prog.elf !== undefined) {
    if (load !== undefined) throw new UsageError(`--load ${hex(load)}: ${name} is an ELF, loaded where its program headers say (--load is for raw binaries)`);
    const elf = prog.elf;
    for (const seg of elf.segments) {
      const end = seg.paddr + seg.memsz;
      const what = `${name}: segment ${hex(seg.paddr)}-${hex(end - 1)}`;
      const w = ctx.cpu.memory.mmio.find((m) => seg.paddr < m.base + m.size && m.base < end);
      if (w !== undefined) throw new UsageError(`${what} overlaps the MMIO window ${w.name} at ${hex(w.base)}-${hex(w.base + w.size - 1)}`);
      const bank = bankOf(ctx, seg.paddr);
      if (bank === undefined || end > bank.base + bank.size) throw new UsageError(`${what} is outside the guest's RAM (${ramList(ctx)}); link it for this machine (scripts/build-guest.sh --load ADDR)`);
    }
    if (elf.entry % 4 !== 0) throw new UsageError(`${name}: entry point ${hex(elf.entry)} is not 4-byte aligned`);
    const zeros = new Uint8Array(Math.min(1 << 20, Math.max(...elf.segments.map((g) => g.memsz - g.data.length))));
    for (const seg of elf.segments) {
      if (seg.data.length > 0) ctx.cpu.load(seg.paddr, seg.data);
      // p_memsz past p_filesz (.bss) reads as zero
      for (let a = seg.paddr + seg.data.length; a < seg.paddr + seg.memsz; a += zeros.length) ctx.cpu.load(a, zeros.subarray(0, Math.min(zeros.length, seg.paddr + seg.memsz - a)));
    }
    return { load: Math.min(...elf.segments.map((g) => g.paddr)), entry: elf.entry };
  }
  const at = load ?? ctx.ramBase + DEFAULT_LOAD_OFFSET;
  const bank = bankOf(ctx, at);
  if (bank === undefined) throw new UsageError(`--load ${hex(at)}: not in the guest's RAM (${ramList(ctx)})`);
  if (at % 4 !== 0) throw new UsageError(`--load ${hex(at)}: instructions are 4-byte aligned`);
  if (at + prog.bytes.length > bank.base + bank.size) throw new UsageError(`--load ${hex(at)}: ${prog.bytes.length} bytes do not fit in the RAM bank ending at ${hex(bank.base + bank.size - 1)}`);
  ctx.cpu.load(at, prog.bytes);
  return { load: at, entry: at };
}

interface Prepared {
  ctx: GuestContext;
  prog: GuestProgram;
  load: number;
  entry: number;
  regs: Record<number, bigint>;
}

function prepare(a: GuestArgs, observe?: (m: Machine) => void): Prepared {
  const prog = parseProgram(a.program, a.image ?? readProgram(a.program));
  const ctx = buildGuestContext(a.spec, { ...(a.device !== undefined ? { engineDevice: a.device } : {}), ...(observe !== undefined ? { observe } : {}) });
  try {
    const { load, entry } = placeProgram(ctx, prog, a.load, a.program);
    const bank = bankOf(ctx, load)!;
    return { ctx, prog, load, entry, regs: { 0: BigInt(bank.base), 1: BigInt(bank.size), 2: BigInt(ctx.engineBase), 3: BigInt(ctx.engineDevice) } };
  } catch (e) {
    ctx.cpu.close();
    throw e;
  }
}

function report(a: GuestArgs, p: Prepared, result: RunResult): { result: RunResult; text: string; status: number; info: GuestRunInfo } {
  const { ctx, load } = p;
  const desc = a.spec.desc;
  // the program is over: its driver is unbound (dma-debug reports what it left mapped)
  const dmaDebug = releaseDrivers(ctx.machine);
  const md = ctx.machine.devices[ctx.engineDevice]!;
  const xs = ctx.xen?.xenSwiotlb ?? null;
  const mem = ctx.machine.swiotlb.defaultMem;
  const info: GuestRunInfo = {
    dmaOps: xs !== null && md.dev.dmaOps === xs ? "xen_swiotlb_dma_ops" : "dma-direct",
    pool: mem === null ? null : { start: mem.start, end: mem.end },
    device: md.dev,
    engineDevice: ctx.engineDevice,
    load,
    entry: p.entry,
  };
  if (ctx.domain) info.domain = ctx.domain;
  if (ctx.hypervisor) info.hypervisor = ctx.hypervisor;
  const symbols = p.prog.symbols;
  const trace = result.trace?.map((pc): TraceEntry => {
    const insn = ctx.cpu.insnAt(pc);
    return insn === undefined ? { pc } : { pc, insn };
  });
  let text: string;
  if (a.json) text = guestJson(result, ctx.boot, symbols, trace, dmaDebug === null ? undefined : { dmaDebug, kernelLog: [...ctx.machine.log.lines] });
  else {
    const lines: string[] = [];
    const d = ctx.domain;
    lines.push(
      `dmalab guest: ${desc.name}, kernel ${ctx.boot.kernel}, xen ${a.spec.xen}${d ? ` (d${d.id}, ${d.directMapped ? "direct-mapped" : "not direct-mapped"}, Xen ${ctx.hypervisor!.version})` : ""}, ` +
        `DMA engine at ${hex(ctx.engineBase)} as ${md.name} (${info.dmaOps}${mem ? `, swiotlb pool ${hex(mem.start)}-${hex(mem.end - 1)}` : ""}), ` +
        (p.prog.elf ? `ELF loaded at ${hex(load)}, entry ${hex(p.entry)}${symAt(symbols, p.entry)}` : `loaded at ${hex(load)}`),
    );
    if (result.console.length > 0) lines.push(result.console.replace(/\n$/, ""));
    lines.push(describeExit(result.exit, symbols));
    if (result.exit.kind === "fault") lines.push(...faultReport(result.exit.fault, result.regs, symbols));
    lines.push(`instructions: ${result.insns}`);
    if (trace !== undefined) lines.push(...traceReport(trace, symbols));
    if (dmaDebug !== null) lines.push(...formatDmaDebug(dmaDebug, ctx.machine.log.lines.slice(ctx.boot.kernelLog.length)));
    lines.push(...callLogLines(result));
    text = lines.join("\n");
  }
  return { result, text, status: exitStatus(result.exit), info };
}

export function runGuest(a: GuestArgs): { result: RunResult; text: string; status: number; info: GuestRunInfo } {
  const trace = a.trace !== undefined ? openTrace(a.trace, "chrome") : null;
  const p = prepare(a, trace === null ? undefined : (m) => trace.attach(m));
  if (trace !== null) {
    // the guest's hypercalls and services join the DMA layer's events, in the order they ran
    const events = p.ctx.machine.events;
    const domid = p.ctx.domain?.id ?? 0;
    p.ctx.cpu.calls.listener = (kind, op, nr, args, nargs, ret, pc) => {
      const f: Record<string, TraceValue> = { op, nr, ret: Number(ret), pc: hex(pc) };
      for (let i = 0; i < Math.min(nargs, 6); i++) f[`x${i}`] = "0x" + BigInt.asUintN(64, BigInt(args[i]!)).toString(16);
      if (kind === "hypercall") events.emit("hypercall", { ...f, domid });
      else events.emit("svc", { ...f, kind });
    };
    trace.start();
  }
  try {
    const opts: RunOptions = { entry: p.entry, stack: p.load - (p.load % 16), maxInsns: a.maxInsns, regs: p.regs };
    if (a.traceInsns !== undefined) opts.traceInsns = a.traceInsns;
    if (a.timeLimitMs !== undefined) opts.timeLimitMs = a.timeLimitMs;
    if (a.logCalls !== undefined) opts.logCalls = a.logCalls;
    const result = p.ctx.cpu.run(opts);
    const r = report(a, p, result);
    if (trace !== null) for (const w of trace.finish()) process.stderr.write(`dmalab: warning: ${w}\n`);
    return r;
  } finally {
    p.ctx.cpu.close();
  }
}

/** The run under a debugger: serves GDB's remote protocol until the guest ends, gdb kills it or detaches. */
export async function runGuestGdb(a: GuestArgs & { gdb: number }): Promise<{ result: RunResult; text: string; status: number; info: GuestRunInfo }> {
  const p = prepare(a);
  try {
    p.ctx.cpu.debugStart({ entry: p.entry, stack: p.load - (p.load % 16), regs: p.regs });
    const result = await serveGdb(p.ctx.cpu, { port: a.gdb, maxInsns: a.maxInsns, listening: a.gdbListening ?? (() => undefined) });
    return report(a, p, result);
  } finally {
    p.ctx.cpu.close();
  }
}

export interface GuestFlags extends MachineFlags {
  device?: string;
  load?: string;
  maxInsns: string;
  traceInsns?: string;
  gdb?: string;
  json?: boolean;
  logCalls?: string | boolean;
  trace?: string;
}

/** Checks the command line and the program before anything boots (bad values are usage errors, exit 2). */
export function parseGuestArgs(prog: string, o: GuestFlags): GuestArgs {
  const maxInsns = parseIntArg("--max-insns", o.maxInsns, 1, Number.MAX_SAFE_INTEGER);
  const args: GuestArgs = { program: prog, spec: machineSpec(machineConfig(o)), maxInsns, json: o.json === true, image: readProgram(prog) };
  // an ELF's headers are checked here too, before the boot
  parseProgram(prog, args.image!);
  if (o.device !== undefined) args.device = o.device;
  if (o.load !== undefined) args.load = parseIntArg("--load", o.load, 0, Number.MAX_SAFE_INTEGER);
  if (o.traceInsns !== undefined) args.traceInsns = parseIntArg("--trace-insns", o.traceInsns, 1, 1_000_000);
  if (o.gdb !== undefined) args.gdb = parseIntArg("--gdb", o.gdb, 0, 65535);
  if (o.trace !== undefined) {
    checkWritable("--trace", o.trace);
    args.trace = o.trace;
  }
  if (args.gdb !== undefined && args.trace !== undefined) throw new UsageError("--trace and --gdb: trace a run, or debug it, not both");
  const logCalls = parseLogCalls(o.logCalls);
  if (logCalls !== undefined) args.logCalls = logCalls;
  if (args.gdb !== undefined && args.traceInsns !== undefined) throw new UsageError("--trace-insns and --gdb: trace a run, or debug it, not both");
  return args;
}

/** What `dmalab guest` without a program, and `--help`, say about programs. */
export function programsHelp(): string {
  const progs = builtinPrograms();
  const w = Math.max(0, ...progs.map((p) => p.name.length));
  return [
    "Built-in programs (fixtures/guest/, run by name):",
    ...progs.map((p) => `  ${p.name.padEnd(w)}  ${p.about}`),
    "",
    "Your own program: a static AArch64 ELF (or a raw binary with --load), built from C or",
    "assembly with the guest SDK (guest/include/dmalab.h, guest/crt0.S, guest/guest.ld;",
    "guest/build-guest.sh in the npm package, scripts/build-guest.sh in the repository):",
    "  scripts/build-guest.sh prog.c          # → prog.elf (needs gcc-aarch64-linux-gnu)",
    "  dmalab guest prog.elf --xen dom0",
  ].join("\n");
}

export function registerGuest(program: Command): void {
  const c = program
    .command("guest")
    .description("run an arm64 guest program (static ELF or raw binary) on the Unicorn CPU (Xen hypercalls, DMA services, the DMA engine)")
    .argument("[program]", "static AArch64 ELF or raw binary file, or the name of a built-in program (listed below)");
  addMachineOptions(c, { contig: true, xenDebug: true })
    .option("--device <n|name>", "the device the DMA engine masters as (default: the first probed one)")
    .option("--load <addr>", "load (and entry) address of a raw binary; default guest RAM base + 0x80000")
    .option("--max-insns <n>", "instruction limit", String(DEFAULT_MAX_INSNS))
    .option("--trace-insns <n>", "report the last N instructions (PCs with symbols)")
    .option("--gdb <port>", "serve the GDB remote protocol on 127.0.0.1:PORT and wait for gdb-multiarch to attach")
    .option("--json", "machine-readable output")
    .option("--trace <file.json>", "write the run's events (DMA API, swiotlb, hypercalls, guest services) as Chrome trace-event JSON for ui.perfetto.dev")
    .option("--log-calls [n]", `log every hypercall and service, up to n (default ${DEFAULT_LOG_CALLS_CAP}); otherwise counts per op and the last ${RECENT_CALLS}`)
    .addHelpText("after", () => "\n" + programsHelp())
    .action(async (prog: string | undefined, o: GuestFlags) => {
      if (prog === undefined)
        throw new UsageError(
          `no guest program: give a static AArch64 ELF (build one from C or assembly with scripts/build-guest.sh prog.c), a raw binary with --load, or a built-in program (${builtinPrograms()
            .map((b) => b.name)
            .join(", ")}); dmalab guest --help says more`,
        );
      const args = parseGuestArgs(prog, o);
      let r: Awaited<ReturnType<typeof runGuestGdb>>;
      try {
        if (args.gdb !== undefined) {
          const port = args.gdb;
          r = await runGuestGdb({
            ...args,
            gdb: port,
            gdbListening: (p) => process.stderr.write(`dmalab guest: gdb server on 127.0.0.1:${p}; attach with: gdb-multiarch -ex 'target remote 127.0.0.1:${p}'\n`),
          });
        } else r = runGuest(args);
      } catch (e) {
        // under --json a boot that faulted is still one document
        if (!(args.json && e instanceof BootFaultError)) throw e;
        out(bootFaultJson(e));
        return flushAndExit(EXIT_FAULT);
      }
      out(r.text);
      flushAndExit(r.status);
    });
}
