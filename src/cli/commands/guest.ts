// dmalab guest PROGRAM [--machine PRESET] [--kernel VERSION] [--xen none|dom0|domU]
//   [--feature direct_mapped|not_direct_mapped ...] [--xen-version V] [--swiotlb STR]
//   [--device N|NAME] [--load ADDR] [--max-insns N] [--json]
//
// Boots the machine as `dmalab boot` does (same kernel profile, Xen role and features), then
// loads a raw arm64 binary (a path, or the name of a shipped program in fixtures/guest/) at
// ADDR (default: guest RAM base + 0x80000) in that kernel's guest-physical space, runs it and
// reports the console, the exit reason, the instruction count and the hypercall/service log.
// Exit status: 0 for exit(0) or BRK #0, 1 for exit(n != 0) or another BRK immediate, 3 for a
// fault (of the guest, or of the boot before it), 4 for a limit.
//
// Entry registers (dmalab guest ABI): x0 = base of the guest RAM bank holding the load
// address (the first bank by default), x1 = that bank's size, x2 = DMA engine MMIO base,
// x3 = the engine's device number; sp = load address (the stack grows down below the image).

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { EXIT_FAULT, EXIT_GUEST, EXIT_LIMIT, EXIT_OK, InputError, UsageError, hex } from "../../errors.js";
import { bankOf, BootFaultError, buildGuestContext } from "../../cpu/guest-context.js";
import { CONSOLE_CAP, type ExitReason, type RunResult } from "../../cpu/arm64-cpu.js";
import { DEFAULT_LOG_CALLS_CAP, RECENT_CALLS } from "../../cpu/traps.js";
import { machineSpec, type MachineSpec } from "../../machine/builder.js";
import { addMachineOptions, machineConfig, type MachineFlags } from "../machine-options.js";
import { formatDmaDebug, releaseDrivers } from "../dma-debug-report.js";
import type { DmaDebugSummary } from "../../dma/debug.js";
import { parseIntArg } from "../parse.js";
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

export function readProgram(arg: string): Uint8Array {
  let path = arg;
  if (!existsSync(path)) {
    const shipped = join(guestDir(), arg.endsWith(".bin") ? arg : `${arg}.bin`);
    if (existsSync(shipped)) path = shipped;
    else throw new UsageError(`guest program '${arg}' not found (neither a file nor a program in fixtures/guest/)`);
  }
  if (statSync(path).isDirectory()) throw new UsageError(`guest program '${arg}' is a directory, not a binary`);
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch (e) {
    throw new InputError(`cannot read guest program: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, arg);
  }
  if (b.length === 0) throw new UsageError(`guest program '${arg}' is empty`);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
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

/** The `--json` document. */
export function guestJson(r: RunResult, boot: BootReport, debug?: { dmaDebug: DmaDebugSummary; kernelLog: string[] }): string {
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
      return `exit: fault (${f.kind}) at pc ${f.pcHex ?? hex(f.pc)}${f.insn !== undefined ? ` [insn 0x${f.insn.toString(16).padStart(8, "0")}]` : ""}: ${f.message}`;
    }
  }
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
  /** the domain and its hypervisor, with Xen */
  domain?: Domain;
  hypervisor?: XenHypervisor;
}

export function runGuest(a: GuestArgs): { result: RunResult; text: string; status: number; info: GuestRunInfo } {
  const image = a.image ?? readProgram(a.program);
  const desc = a.spec.desc;
  const ctx = buildGuestContext(a.spec, a.device !== undefined ? { engineDevice: a.device } : {});
  try {
    const load = a.load ?? ctx.ramBase + DEFAULT_LOAD_OFFSET;
    const bank = bankOf(ctx, load);
    if (bank === undefined)
      throw new UsageError(`--load ${hex(load)}: not in the guest's RAM (${ctx.ram.map((r) => `${hex(r.base)}-${hex(r.base + r.size - 1)}`).join(", ")})`);
    if (load % 4 !== 0) throw new UsageError(`--load ${hex(load)}: instructions are 4-byte aligned`);
    if (load + image.length > bank.base + bank.size) throw new UsageError(`--load ${hex(load)}: ${image.length} bytes do not fit in the RAM bank ending at ${hex(bank.base + bank.size - 1)}`);
    ctx.cpu.load(load, image);
    const result = ctx.cpu.run({
      entry: load,
      stack: load - (load % 16),
      maxInsns: a.maxInsns,
      ...(a.timeLimitMs !== undefined ? { timeLimitMs: a.timeLimitMs } : {}),
      ...(a.logCalls !== undefined ? { logCalls: a.logCalls } : {}),
      regs: { 0: BigInt(bank.base), 1: BigInt(bank.size), 2: BigInt(ctx.engineBase), 3: BigInt(ctx.engineDevice) },
    });
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
    };
    if (ctx.domain) info.domain = ctx.domain;
    if (ctx.hypervisor) info.hypervisor = ctx.hypervisor;
    let text: string;
    if (a.json) text = guestJson(result, ctx.boot, dmaDebug === null ? undefined : { dmaDebug, kernelLog: [...ctx.machine.log.lines] });
    else {
      const lines: string[] = [];
      const d = ctx.domain;
      lines.push(
        `dmalab guest: ${desc.name}, kernel ${ctx.boot.kernel}, xen ${a.spec.xen}${d ? ` (d${d.id}, ${d.directMapped ? "direct-mapped" : "not direct-mapped"}, Xen ${ctx.hypervisor!.version})` : ""}, ` +
          `DMA engine at ${hex(ctx.engineBase)} as ${md.name} (${info.dmaOps}${mem ? `, swiotlb pool ${hex(mem.start)}-${hex(mem.end - 1)}` : ""}), loaded at ${hex(load)}`,
      );
      if (result.console.length > 0) lines.push(result.console.replace(/\n$/, ""));
      lines.push(describeExit(result.exit));
      lines.push(`instructions: ${result.insns}`);
      if (dmaDebug !== null) lines.push(...formatDmaDebug(dmaDebug, ctx.machine.log.lines.slice(ctx.boot.kernelLog.length)));
      lines.push(...callLogLines(result));
      text = lines.join("\n");
    }
    return { result, text, status: exitStatus(result.exit), info };
  } finally {
    ctx.cpu.close();
  }
}

export interface GuestFlags extends MachineFlags {
  device?: string;
  load?: string;
  maxInsns: string;
  json?: boolean;
  logCalls?: string | boolean;
}

/** Checks the command line and the program before anything boots (bad values are usage errors, exit 2). */
export function parseGuestArgs(prog: string, o: GuestFlags): GuestArgs {
  const maxInsns = parseIntArg("--max-insns", o.maxInsns, 1, Number.MAX_SAFE_INTEGER);
  const args: GuestArgs = { program: prog, spec: machineSpec(machineConfig(o)), maxInsns, json: o.json === true, image: readProgram(prog) };
  if (o.device !== undefined) args.device = o.device;
  if (o.load !== undefined) args.load = parseIntArg("--load", o.load, 0, Number.MAX_SAFE_INTEGER);
  const logCalls = parseLogCalls(o.logCalls);
  if (logCalls !== undefined) args.logCalls = logCalls;
  return args;
}

export function registerGuest(program: Command): void {
  const c = program
    .command("guest")
    .description("run a raw arm64 guest program on the Unicorn CPU (Xen hypercalls, DMA services, the DMA engine)")
    .argument("<program>", "raw binary file, or the name of a program in fixtures/guest (xen-probe, dma-ring, xen-errors, xen-memop, xen-regs)");
  addMachineOptions(c, { contig: true, xenDebug: true })
    .option("--device <n|name>", "the device the DMA engine masters as (default: the first probed one)")
    .option("--load <addr>", "load (and entry) address; default guest RAM base + 0x80000")
    .option("--max-insns <n>", "instruction limit", String(DEFAULT_MAX_INSNS))
    .option("--json", "machine-readable output")
    .option("--log-calls [n]", `log every hypercall and service, up to n (default ${DEFAULT_LOG_CALLS_CAP}); otherwise counts per op and the last ${RECENT_CALLS}`)
    .action((prog: string, o: GuestFlags) => {
      const args = parseGuestArgs(prog, o);
      let r: ReturnType<typeof runGuest>;
      try {
        r = runGuest(args);
      } catch (e) {
        if (!(args.json && e instanceof BootFaultError)) throw e;
        out(bootFaultJson(e));
        return flushAndExit(EXIT_FAULT);
      }
      out(r.text);
      flushAndExit(r.status);
    });
}
