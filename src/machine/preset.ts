// A machine description: what the firmware (device tree / ACPI) tells the kernel about a
// board, plus the kernel command line's `swiotlb=`. Presets live in fixtures/machines/*.json
// and are validated here; every error names the JSON path, the value and why it is wrong.

import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { decodeUtf8, readInputFile } from "../cli/input-file.js";
import { InputError, UsageError, hex, oneLine } from "../errors.js";
import { DEFAULT_CHUNK_SIZE, type Granule } from "../memory/physical-memory.js";
import { parseMask, parseNumber, parseUnsigned } from "./units.js";
import { isDtbFile, machineFromDtb } from "./device-tree.js";

// ---- limits ---------------------------------------------------------------------------------
// What dmalab models, refused with the limit named (before any work) beyond it. Documented in
// README.md ("Limits").

/** total RAM: dmalab keeps state per 2 MiB chunk of RAM (backing is sparse, the tables are not) */
export const MAX_RAM_BYTES = 4 * 2 ** 40;
/** total RAM under Xen: the hypervisor's heap keeps state per 4 KiB machine frame */
export const MAX_XEN_RAM_BYTES = 256 * 2 ** 30;
/** RAM banks: memblock's static table (INIT_MEMBLOCK_MEMORY_REGIONS, mm/memblock.c) */
export const MAX_RAM_BANKS = 128;
/** reserved regions: MAX_RESERVED_REGIONS (drivers/of/of_reserved_mem.c) */
export const MAX_RESERVED_REGIONS = 64;
/** devices, MMIO windows and each device's dma-ranges entries: dmalab's own bounds */
export const MAX_DEVICES = 256;
export const MAX_MMIO_WINDOWS = 64;
export const MAX_DMA_RANGES = 64;
/** a machine description file, read whole */
export const MAX_MACHINE_FILE_BYTES = 1 << 20;
/** JSON nesting (a description needs 4 levels) */
export const MAX_JSON_DEPTH = 32;
/** errors listed in one message before "and N more" */
const MAX_LISTED_ERRORS = 3;

// ---- field types ---------------------------------------------------------------------------

const num = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const p = parseNumber(v);
  if (!p.ok) {
    ctx.addIssue({ code: "custom", message: p.why, input: v });
    return z.NEVER;
  }
  return p.value;
});

const u64 = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const p = parseUnsigned(v);
  if (!p.ok || p.value >= 1n << 64n) {
    ctx.addIssue({ code: "custom", message: p.ok ? "does not fit in 64 bits" : p.why, input: v });
    return z.NEVER;
  }
  return p.value;
});

const mask = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const p = parseMask(v);
  if (!p.ok) {
    ctx.addIssue({ code: "custom", message: p.why, input: v });
    return z.NEVER;
  }
  return p.value;
});

const granule = z.union([z.number(), z.string()]).transform((v, ctx): Granule => {
  const s = String(v).toUpperCase().replace(/I?B$/, "");
  const g = s === "4K" || s === "4096" ? 4096 : s === "16K" || s === "16384" ? 16384 : s === "64K" || s === "65536" ? 65536 : 0;
  if (g === 0) {
    ctx.addIssue({ code: "custom", message: "must be 4K, 16K or 64K", input: v });
    return z.NEVER;
  }
  return g;
});

const name = z.string().min(1, "must not be empty");

const RamBank = z.strictObject({ name: name.optional(), base: num, size: num });
const Reserved = z.strictObject({ name, base: num, size: num, noMap: z.boolean().optional() });
const DmaRange = z.strictObject({ cpu: num, dma: num, size: num });
const RestrictedPool = z.strictObject({ name: name.optional(), base: num, size: num });

const Device = z.strictObject({
  /** the device's name as dev_* messages print it, e.g. "0000:00:02.0" */
  name,
  driver: name,
  /** what the driver passes to dma_set_mask(): bits (32) or a hex mask */
  dmaMask: mask,
  /** what the driver passes to dma_set_coherent_mask(); defaults to dmaMask */
  coherentMask: mask.optional(),
  /** the interconnect's limit (dev->bus_dma_limit); derived from dmaRanges when absent */
  busDmaLimit: u64.optional(),
  /** DT `dma-ranges` of the device's bus: CPU physical ↔ DMA address windows */
  dmaRanges: z.array(DmaRange).max(MAX_DMA_RANGES, `has more than the ${MAX_DMA_RANGES} dma-ranges entries dmalab models`).optional(),
  minAlignMask: num.optional(),
  /** dma_parms->segment_boundary_mask; defaults to ULONG_MAX */
  segmentBoundary: u64.optional(),
  coherent: z.boolean().optional(),
  /** a `restricted-dma-pool` reserved-memory node assigned to this device */
  restrictedPool: RestrictedPool.optional(),
  /** where the driver's buffers come from: the top of RAM ("high") or the bottom ("low") */
  buffers: z.enum(["high", "low"]).optional(),
});

const Mmio = z.strictObject({ name, base: num, size: num, model: name });

const Xen = z.strictObject({
  version: z.string().optional(),
  dom0Mem: num.optional(),
  domUMem: num.optional(),
  features: z.array(z.string()).optional(),
  /** a debug build of Xen clobbers the used argument registers and x16 with 0xDEADBEEF */
  debugBuild: z.boolean().optional(),
});

const MachineSchema = z.strictObject({
  name,
  description: z.string().optional(),
  paBits: z.number().int().min(32, "must be 32..52").max(52, "must be 32..52").optional(),
  granule: granule.optional(),
  cpus: z.number().int().min(1, "must be 1..1024").max(1024, "must be 1..1024").optional(),
  ram: z.array(RamBank).min(1, "needs at least one RAM bank").max(MAX_RAM_BANKS, `has more than ${MAX_RAM_BANKS} RAM banks (memblock's INIT_MEMBLOCK_MEMORY_REGIONS)`),
  reserved: z.array(Reserved).max(MAX_RESERVED_REGIONS, `has more than ${MAX_RESERVED_REGIONS} reserved regions (MAX_RESERVED_REGIONS)`).optional(),
  /** what firmware says about the DMA zone (spec 7.6: zone_dma_bits) */
  dmaZone: z
    .strictObject({
      /** of_dma_get_max_cpu_address(NULL); default: derived from the devices' dma-ranges */
      dtMaxCpuAddress: u64.optional(),
      /** acpi_iort_dma_get_max_cpu_address(); default: no IORT limit */
      acpiMaxCpuAddress: u64.optional(),
    })
    .optional(),
  swiotlb: z
    .strictObject({
      /** the value of `swiotlb=` on the kernel command line */
      cmdline: z.string().optional(),
    })
    .optional(),
  devices: z.array(Device).max(MAX_DEVICES, `has more than the ${MAX_DEVICES} devices dmalab models`).optional(),
  mmio: z.array(Mmio).max(MAX_MMIO_WINDOWS, `has more than the ${MAX_MMIO_WINDOWS} MMIO windows dmalab models`).optional(),
  xen: Xen.optional(),
  /** CONFIG_DMA_API_DEBUG: true reports as the kernel does and goes on; "strict" refuses misuse */
  dmaDebug: z.union([z.boolean(), z.literal("strict")]).optional(),
});

// ---- the validated description --------------------------------------------------------------

export interface RamBankDesc {
  name: string;
  base: number;
  size: number;
}
export interface ReservedDesc {
  name: string;
  base: number;
  size: number;
  noMap: boolean;
}
export interface DmaRangeDesc {
  cpuStart: number;
  dmaStart: number;
  size: number;
}
export interface DeviceDesc {
  name: string;
  driver: string;
  dmaMask: bigint;
  coherentMask: bigint;
  /** 0n = no bus limit (min_not_zero) */
  busDmaLimit: bigint;
  dmaRanges: DmaRangeDesc[];
  minAlignMask: number;
  segmentBoundary: bigint;
  coherent: boolean;
  restrictedPool?: { name: string; base: number; size: number };
  buffers: "high" | "low";
}
export interface MmioDesc {
  name: string;
  base: number;
  size: number;
  model: string;
}
export interface XenDesc {
  version?: string;
  dom0Mem?: number;
  domUMem?: number;
  features?: string[];
  debugBuild?: boolean;
}
export interface MachineDesc {
  name: string;
  description: string;
  paBits: number;
  granule: Granule;
  cpus: number;
  ram: RamBankDesc[];
  reserved: ReservedDesc[];
  dmaZone: { dtMaxCpuAddress?: bigint; acpiMaxCpuAddress?: bigint };
  /** the `swiotlb=` value, without the "swiotlb=" prefix; "" when none */
  swiotlbCmdline: string;
  devices: DeviceDesc[];
  mmio: MmioDesc[];
  xen?: XenDesc;
  /** CONFIG_DMA_API_DEBUG from the description (false = off) */
  dmaDebug?: boolean | "strict";
}

const ULONG_MAX = (1n << 64n) - 1n;

function pathString(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? String(p) : `.${String(p)}`;
  return s || "(top level)";
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return "(missing)";
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? hex(x) : x));
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

class Problems {
  readonly list: { path: (string | number)[]; value: unknown; why: string }[] = [];
  add(path: (string | number)[], value: unknown, why: string): void {
    this.list.push({ path, value, why });
  }
}

/** The field names an object at `path` accepts (from the schema), for "did you mean". */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let t: z.ZodType = MachineSchema;
  for (const p of path) {
    while (t instanceof z.ZodOptional) t = t.unwrap() as z.ZodType;
    if (typeof p === "number" && t instanceof z.ZodArray) t = t.element as z.ZodType;
    else if (typeof p === "string" && t instanceof z.ZodObject) t = (t.shape as Record<string, z.ZodType>)[p] ?? z.never();
    else return [];
  }
  while (t instanceof z.ZodOptional) t = t.unwrap() as z.ZodType;
  return t instanceof z.ZodObject ? Object.keys(t.shape) : [];
}

/** Misspellings people make from the kernel's and DT's names. */
const KEY_ALIASES: Record<string, string> = { cpustart: "cpu", dmastart: "dma", cpuaddr: "cpu", dmaaddr: "dma", length: "size" };

function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s,]/g, "");
  const k = norm(key);
  const exact = known.find((x) => norm(x) === k) ?? known.find((x) => norm(x) === KEY_ALIASES[k]);
  if (exact) return exact;
  let best: string | undefined;
  let bestD = 3;
  for (const x of known) {
    const d = editDistance(k, norm(x));
    if (d < bestD) [best, bestD] = [x, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** "devices[0]: unknown field(s) dma-ranges (did you mean dmaRanges?)", naming the key meant. */
function unknownKeys(path: readonly PropertyKey[], keys: readonly string[]): string {
  const known = knownKeys(path);
  const hints = keys.flatMap((k) => {
    const guess = closestKey(k, known);
    if (guess) return [`${pathString([...path, k])}: did you mean ${pathString([...path, guess])}?`];
    // a per-device field written at the top level
    const dev = path.length === 0 ? closestKey(k, knownKeys(["devices", 0])) : undefined;
    return dev ? [`${k}: did you mean devices[i].${dev}? (it is a per-device field)`] : [];
  });
  const list = hints.length > 0 ? ` (${hints.join("; ")})` : known.length > 0 ? ` (expected: ${known.join(", ")})` : "";
  return `${pathString(path)}: unknown field(s) ${keys.join(", ")}${list}`;
}

/** "a; b; c; and 7 more" */
function listed(msgs: string[], total: number): string {
  return msgs.join("; ") + (total > msgs.length ? `; and ${total - msgs.length} more` : "");
}

/** Nesting depth of a parsed JSON value, without recursion (a hostile value may be deep). */
function jsonDepth(v: unknown): number {
  let max = 0;
  const todo: [unknown, number][] = [[v, 1]];
  while (todo.length > 0) {
    const [x, d] = todo.pop()!;
    if (x === null || typeof x !== "object") continue;
    if (d > max) max = d;
    if (max > MAX_JSON_DEPTH) return max;
    for (const c of Object.values(x)) if (c !== null && typeof c === "object") todo.push([c, d + 1]);
  }
  return max;
}

/** Nesting depth of JSON text, counted before parsing it (brackets outside strings). */
function jsonTextDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * Checks what only the Xen role adds: the hypervisor keeps per-frame state for all of the
 * machine's RAM, so a Xen boot has a lower RAM limit than a native one.
 */
export function checkXenRamLimit(m: MachineDesc): void {
  const total = totalRam(m);
  if (total > MAX_XEN_RAM_BYTES)
    throw new InputError(`${hex(total)} bytes (${(total / 2 ** 30).toFixed(0)} GiB) of RAM is more than the ${MAX_XEN_RAM_BYTES / 2 ** 30} GiB dmalab models under Xen`, m.name);
}

function overlaps(a: { base: number; size: number }, b: { base: number; size: number }): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/**
 * Validates a parsed JSON value as a machine description. `source` names the file (or
 * "preset NAME") in error messages. Throws InputError naming path, value and reason.
 */
export function parseMachine(raw: unknown, source: string): MachineDesc {
  if (jsonDepth(raw) > MAX_JSON_DEPTH) throw new InputError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`, source);
  const r = MachineSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues;
    const msgs = issues.slice(0, MAX_LISTED_ERRORS).map((i) => {
      if (i.code === "unrecognized_keys") return unknownKeys(i.path, i.keys);
      // an array over its limit: its length, not its content
      if (i.code === "too_big" && i.origin === "array") return `${pathString(i.path)}: ${i.message}`;
      return `${pathString(i.path)}: value ${show(valueAt(raw, i.path))} ${i.message}`;
    });
    throw new InputError(listed(msgs, issues.length), source);
  }
  const m = r.data;
  const paBits = m.paBits ?? 48;
  const gran: Granule = m.granule ?? 4096;
  const paLimit = 2 ** paBits;
  const P = new Problems();

  const ram: RamBankDesc[] = m.ram.map((b, i) => ({ name: b.name ?? `bank${i}`, base: b.base, size: b.size }));
  const totalBytes = ram.reduce((s, b) => s + b.size, 0);
  if (totalBytes > MAX_RAM_BYTES)
    throw new InputError(`ram: ${hex(totalBytes)} bytes (${totalBytes / 2 ** 40} TiB) of RAM is more than the ${MAX_RAM_BYTES / 2 ** 40} TiB dmalab models`, source);
  ram.forEach((b, i) => {
    if (b.base % DEFAULT_CHUNK_SIZE !== 0) P.add(["ram", i, "base"], hex(b.base), `must be 2 MiB aligned (RAM is backed in 2 MiB chunks)`);
    if (b.size === 0 || b.size % gran !== 0) P.add(["ram", i, "size"], hex(b.size), `must be a positive multiple of the ${gran}-byte page granule`);
    if (b.base + b.size > paLimit) P.add(["ram", i], `${hex(b.base)}+${hex(b.size)}`, `ends beyond the ${paBits}-bit physical address space`);
    for (let j = 0; j < i; j++)
      if (overlaps(b, ram[j]!)) P.add(["ram", i], `${hex(b.base)}+${hex(b.size)}`, `overlaps RAM bank ${ram[j]!.name} [${hex(ram[j]!.base)}-${hex(ram[j]!.base + ram[j]!.size - 1)}]`);
  });
  const inOneBank = (base: number, size: number): boolean => ram.some((b) => base >= b.base && base + size <= b.base + b.size);

  const reserved: ReservedDesc[] = (m.reserved ?? []).map((x) => ({ name: x.name, base: x.base, size: x.size, noMap: x.noMap ?? false }));
  reserved.forEach((x, i) => {
    if (x.size === 0 || !inOneBank(x.base, x.size)) P.add(["reserved", i], `${hex(x.base)}+${hex(x.size)}`, "is not inside one RAM bank");
  });

  const mmio: MmioDesc[] = (m.mmio ?? []).map((x) => ({ ...x }));
  mmio.forEach((w, i) => {
    if (w.base % 4096 !== 0 || w.size % 4096 !== 0 || w.size === 0) P.add(["mmio", i], `${hex(w.base)}+${hex(w.size)}`, "base and size must be 4 KiB aligned and non-zero");
    const bank = ram.find((b) => overlaps(w, b));
    if (bank) P.add(["mmio", i], `${hex(w.base)}+${hex(w.size)}`, `overlaps RAM bank ${bank.name}`);
    for (let j = 0; j < i; j++) if (overlaps(w, mmio[j]!)) P.add(["mmio", i], w.name, `overlaps MMIO window ${mmio[j]!.name}`);
  });

  const names = new Set<string>();
  const devices: DeviceDesc[] = (m.devices ?? []).map((d, i) => {
    if (names.has(d.name)) P.add(["devices", i, "name"], d.name, "is used by another device");
    names.add(d.name);
    const ranges = (d.dmaRanges ?? []).map((x) => ({ cpuStart: x.cpu, dmaStart: x.dma, size: x.size }));
    ranges.forEach((x, j) => {
      if (x.size === 0) P.add(["devices", i, "dmaRanges", j, "size"], 0, "must be non-zero");
      for (let k = 0; k < j; k++)
        if (overlaps({ base: x.cpuStart, size: x.size }, { base: ranges[k]!.cpuStart, size: ranges[k]!.size }))
          P.add(["devices", i, "dmaRanges", j], `cpu ${hex(x.cpuStart)}+${hex(x.size)}`, `overlaps dma-range ${k}`);
    });
    // of_dma_configure: bus_dma_limit is the last DMA address any range reaches
    let busDmaLimit = d.busDmaLimit ?? 0n;
    if (d.busDmaLimit === undefined && ranges.length > 0)
      busDmaLimit = ranges.reduce((mx, x) => (BigInt(x.dmaStart + x.size - 1) > mx ? BigInt(x.dmaStart + x.size - 1) : mx), 0n);
    const minAlignMask = d.minAlignMask ?? 0;
    if ((minAlignMask & (minAlignMask + 1)) !== 0 && minAlignMask !== 0)
      P.add(["devices", i, "minAlignMask"], hex(minAlignMask), "must be of the form 2^n - 1");
    if (minAlignMask >= 2 ** 31) P.add(["devices", i, "minAlignMask"], hex(minAlignMask), "must be below 2^31 (an unsigned int in the kernel)");
    const seg = d.segmentBoundary ?? ULONG_MAX;
    if ((seg & (seg + 1n)) !== 0n) P.add(["devices", i, "segmentBoundary"], hex(seg), "must be of the form 2^n - 1");
    let restrictedPool: DeviceDesc["restrictedPool"];
    if (d.restrictedPool) {
      const rp = d.restrictedPool;
      restrictedPool = { name: rp.name ?? `restricted-dma-pool@${rp.base.toString(16)}`, base: rp.base, size: rp.size };
      if (rp.size === 0 || !inOneBank(rp.base, rp.size)) P.add(["devices", i, "restrictedPool"], `${hex(rp.base)}+${hex(rp.size)}`, "is not inside one RAM bank");
      else if (rp.base % gran !== 0 || rp.size % 2048 !== 0)
        P.add(["devices", i, "restrictedPool"], `${hex(rp.base)}+${hex(rp.size)}`, `base must be page aligned and size a multiple of 2 KiB`);
    }
    const dev: DeviceDesc = {
      name: d.name,
      driver: d.driver,
      dmaMask: d.dmaMask,
      coherentMask: d.coherentMask ?? d.dmaMask,
      busDmaLimit,
      dmaRanges: ranges,
      minAlignMask,
      segmentBoundary: seg,
      coherent: d.coherent ?? true,
      buffers: d.buffers ?? "high",
    };
    if (restrictedPool) dev.restrictedPool = restrictedPool;
    return dev;
  });
  // restricted pools must not overlap one another or other reserved regions
  const pools = devices.flatMap((d, i) => (d.restrictedPool ? [{ i, ...d.restrictedPool }] : []));
  pools.forEach((p, k) => {
    for (let j = 0; j < k; j++) if (overlaps(p, pools[j]!) && p.name !== pools[j]!.name) P.add(["devices", p.i, "restrictedPool"], p.name, `overlaps ${pools[j]!.name}`);
    for (const rv of reserved) if (overlaps(p, rv)) P.add(["devices", p.i, "restrictedPool"], p.name, `overlaps reserved region ${rv.name}`);
  });

  if (m.swiotlb?.cmdline !== undefined && /\s/.test(m.swiotlb.cmdline.trim()))
    P.add(["swiotlb", "cmdline"], m.swiotlb.cmdline, "must be one `swiotlb=` value without spaces");

  if (m.xen?.dom0Mem !== undefined && m.xen.dom0Mem > totalBytes)
    P.add(["xen", "dom0Mem"], hex(m.xen.dom0Mem), `is more than the machine's ${hex(totalBytes)} bytes of RAM`);
  if (m.xen?.domUMem !== undefined && m.xen.domUMem > totalBytes)
    P.add(["xen", "domUMem"], hex(m.xen.domUMem), `is more than the machine's ${hex(totalBytes)} bytes of RAM`);

  if (P.list.length > 0)
    throw new InputError(listed(P.list.slice(0, MAX_LISTED_ERRORS).map((p) => `${pathString(p.path)}: value ${show(p.value)} ${p.why}`), P.list.length), source);

  const desc: MachineDesc = {
    name: m.name,
    description: m.description ?? "",
    paBits,
    granule: gran,
    cpus: m.cpus ?? 4,
    ram,
    reserved,
    dmaZone: {},
    swiotlbCmdline: stripSwiotlbPrefix(m.swiotlb?.cmdline ?? ""),
    devices,
    mmio,
  };
  if (m.dmaZone?.dtMaxCpuAddress !== undefined) desc.dmaZone.dtMaxCpuAddress = m.dmaZone.dtMaxCpuAddress;
  if (m.dmaZone?.acpiMaxCpuAddress !== undefined) desc.dmaZone.acpiMaxCpuAddress = m.dmaZone.acpiMaxCpuAddress;
  if (m.dmaDebug !== undefined) desc.dmaDebug = m.dmaDebug;
  if (m.xen) {
    const x: XenDesc = {};
    if (m.xen.version !== undefined) x.version = m.xen.version;
    if (m.xen.dom0Mem !== undefined) x.dom0Mem = m.xen.dom0Mem;
    if (m.xen.domUMem !== undefined) x.domUMem = m.xen.domUMem;
    if (m.xen.features !== undefined) x.features = m.xen.features;
    if (m.xen.debugBuild !== undefined) x.debugBuild = m.xen.debugBuild;
    desc.xen = x;
  }
  return desc;
}

/** "swiotlb=65536,force" and "65536,force" are the same setting. */
export function stripSwiotlbPrefix(s: string): string {
  const t = s.trim();
  return t.startsWith("swiotlb=") ? t.slice("swiotlb=".length) : t;
}

// ---- presets on disk -----------------------------------------------------------------------

/** fixtures/machines, found by walking up from this module (works from src/ and dist/src/). */
export function machinesDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const c = join(d, "fixtures", "machines");
    if (existsSync(c)) return c;
    d = dirname(d);
  }
  throw new InputError("cannot find the fixtures/machines directory");
}

export function presetNames(): string[] {
  return readdirSync(machinesDir())
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5))
    .sort();
}

/**
 * Reads and validates one JSON file: a regular file of at most MAX_MACHINE_FILE_BYTES of
 * UTF-8, nested at most MAX_JSON_DEPTH levels.
 */
export function loadMachineFile(path: string): MachineDesc {
  const what = "machine description";
  const text = decodeUtf8(readInputFile(path, { what, maxBytes: MAX_MACHINE_FILE_BYTES }), what, path);
  if (jsonTextDepth(text) > MAX_JSON_DEPTH) throw new InputError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`, path);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`not valid JSON: ${oneLine(e instanceof Error ? e.message : String(e), 200)}`, path);
  }
  return parseMachine(raw, path);
}

/**
 * `--machine` argument: a preset name (fixtures/machines/NAME.json), a path to a JSON file,
 * or a device tree blob (a path ending in .dtb, or any file starting with the FDT magic),
 * which machineFromDtb turns into a description (`opts.mem`: RAM size for a tree whose
 * memory the firmware fills in; `opts.kernel`: refuse what that kernel cannot do). An
 * unknown name is a usage error listing the presets.
 */
export function resolveMachine(arg: string, opts: { mem?: number; kernel?: string } = {}): MachineDesc {
  if (/\.dtb$/i.test(arg)) {
    if (!existsSync(arg)) throw new UsageError(`device tree blob '${arg}' does not exist`);
    return machineFromDtb(arg, opts);
  }
  if (/^[A-Za-z0-9._-]+$/.test(arg) && !arg.endsWith(".json")) {
    const f = join(machinesDir(), `${arg}.json`);
    if (existsSync(f)) return loadMachineFile(f);
    if (!existsSync(arg)) throw new UsageError(`unknown machine '${arg}': expected a preset (${presetNames().join(", ")}) or a JSON file`);
  }
  if (!existsSync(arg)) throw new UsageError(`machine file '${arg}' does not exist (presets: ${presetNames().join(", ")})`);
  if (isDtbFile(arg)) return machineFromDtb(arg, opts);
  return loadMachineFile(resolve(arg));
}

/** Total RAM (memblock_phys_mem_size). */
export function totalRam(m: MachineDesc): number {
  return m.ram.reduce((s, b) => s + b.size, 0);
}
