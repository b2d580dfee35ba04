// CONFIG_DMA_API_DEBUG (kernel/dma/debug.c as of 46466ae3, the 5.10–5.14 era; spec §9): every
// mapping becomes an entry in a 16384-bucket hash keyed by (dev_addr >> 13); unmaps and syncs
// are checked against it and misuse is reported as a WARN in the kernel's wording:
//   "DMA-API: <driver> <device>: device driver tries to free DMA memory it has not allocated
//    [device address=0x...] [size=N bytes]"
// Only the first `num_errors` (default 1) reports are printed unless all_errors is set; every
// one counts in error_count. The WARN banner and the "Mapped at:" stack trace are not modelled.
//
// Without strict, misuse is reported and the call goes on as the kernel's would (mapping.ts).
// dmalab's strict mode: a check that finds misuse throws an InvalidArgumentError *before* the
// caller touches any state (mapping.ts runs the check first), so an unmap of an address that
// is not mapped, a double unmap or a sync outside a mapping leaves the pool exactly as it was.

import { InvalidArgumentError } from "../errors.js";
import type { EventSink, KernelLog } from "../events.js";
import {
  DMA_BIDIRECTIONAL,
  DMA_DIRECTION_NAMES,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
} from "../kernel/dma-mapping.js";
import type { Device } from "./device.js";
import { fmtPa, padHex } from "../kernel/printk.js";
import type { ScatterlistEntry } from "./scatterlist.js";

const HASH_SIZE = 16384;
const HASH_FN_SHIFT = 13;
const HASH_STEP = 1 << HASH_FN_SHIFT;
const PREALLOC_DMA_DEBUG_ENTRIES = 1 << 16;
/** sizeof(struct dma_debug_entry) on arm64 with CONFIG_STACKTRACE, cacheline aligned */
const DMA_DEBUG_ENTRY_SIZE = 128;
/** L1_CACHE_SHIFT on arm64 */
const L1_CACHE_SHIFT = 6;
/** (1 << RADIX_TREE_MAX_TAGS) - 1 with 3 tags */
const ACTIVE_CACHELINE_MAX_OVERLAP = 7;

/** entry types, named as type2name[] spells them (sic) */
export const DMA_DEBUG_SINGLE = 0;
export const DMA_DEBUG_SG = 1;
export const DMA_DEBUG_COHERENT = 2;
/** @public: the rest of the table, unused here */
export const DMA_DEBUG_RESOURCE = 3;
const TYPE_NAMES = ["single", "scather-gather", "coherent", "resource"] as const;

const MAP_ERR_CHECK_NOT_APPLICABLE = 0;
const MAP_ERR_NOT_CHECKED = 1;
const MAP_ERR_CHECKED = 2;
const MAPERR_NAMES = ["dma map error check not applicable", "dma map error not checked", "dma map error checked"] as const;

export type DmaDebugErrorKind =
  | "free-invalid-address"
  | "free-not-allocated"
  | "free-different-size"
  | "free-wrong-function"
  | "free-different-cpu-address"
  | "free-sg-different-count"
  | "free-different-direction"
  | "map-error-not-checked"
  | "sync-not-allocated"
  | "sync-outside-range"
  | "sync-different-direction"
  | "sync-read-only-for-cpu"
  | "sync-write-only-to-device"
  | "sync-sg-different-count"
  | "sg-segment-too-long"
  | "sg-segment-across-boundary"
  | "pending-at-unbind";

/** the kinds strict mode refuses (all misuse found at unmap and sync) */
export const STRICT_DEFAULT_KINDS: readonly DmaDebugErrorKind[] = [
  "free-invalid-address",
  "free-not-allocated",
  "free-different-size",
  "free-wrong-function",
  "free-different-cpu-address",
  "free-sg-different-count",
  "free-different-direction",
  "map-error-not-checked",
  "sync-not-allocated",
  "sync-outside-range",
  "sync-different-direction",
  "sync-read-only-for-cpu",
  "sync-write-only-to-device",
  "sync-sg-different-count",
];

export interface DmaDebugError {
  readonly kind: DmaDebugErrorKind;
  readonly device: string;
  /** the full line as printed, "DMA-API: <driver> <dev>: ..." */
  readonly message: string;
  /** it went to the kernel log (driver filter, num_errors / all_errors) */
  readonly printed: boolean;
}

/** `--dma-debug` / `"dmaDebug"`: the kernel's report-and-continue, or refuse-before-touching */
export type DmaDebugMode = "report" | "strict";

/** What a command's JSON carries: every report, printed or not */
export interface DmaDebugSummary {
  mode: DmaDebugMode;
  errorCount: number;
  reports: DmaDebugError[];
}

interface Entry {
  dev: Device | null;
  devAddr: number;
  size: number;
  type: number;
  direction: number;
  sgCallEnts: number;
  sgMappedEnts: number;
  pfn: number;
  offset: number;
  mapErrType: number;
}

interface Finding {
  kind: DmaDebugErrorKind;
  text: string;
}

export interface DmaDebugOptions {
  log: KernelLog;
  events?: EventSink;
  /** PAGE_SIZE, for pfn/offset and the cacheline numbers; default 4096 */
  pageSize?: number;
  /** throw on misuse before any state changes (see STRICT_DEFAULT_KINDS) */
  strict?: boolean | readonly DmaDebugErrorKind[];
  /** debugfs all_errors */
  allErrors?: boolean;
  /** debugfs num_errors (default 1) */
  numErrors?: number;
  /** dma_debug_driver= / debugfs driver_filter */
  driverFilter?: string;
  /** dma_debug_entries= (default 65536) */
  entries?: number;
  /** CONFIG_DMA_API_DEBUG_SG (segment length / boundary checks); default true */
  debugSg?: boolean;
}

const dirName = (d: number): string => DMA_DIRECTION_NAMES[d] ?? `DMA_DIR_${d}`;

export class DmaDebug {
  private readonly log: KernelLog;
  private readonly events: EventSink | undefined;
  private readonly pageSize: number;
  private readonly cachelinePerPageShift: number;
  private readonly strictKinds: ReadonlySet<DmaDebugErrorKind>;
  private readonly debugSg: boolean;
  private readonly buckets: (Entry[] | undefined)[] = new Array<Entry[] | undefined>(HASH_SIZE).fill(undefined);
  /** cacheline number -> overlap count (0 = one mapping), for non-TO_DEVICE mappings */
  private readonly activeCachelines = new Map<number, number>();
  private readonly freeObjects: Entry[] = [];
  private readonly nrPrealloc: number;
  private readonly dynamicEntries: number;

  /** debugfs dma-api/ */
  disabled = false;
  errorCount = 0;
  allErrors: boolean;
  numErrors: number;
  driverFilter: string;
  numFreeEntries: number;
  minFreeEntries: number;
  nrTotalEntries: number;
  /** every reported misuse, printed or not */
  readonly errors: DmaDebugError[] = [];

  constructor(opts: DmaDebugOptions) {
    this.log = opts.log;
    this.events = opts.events;
    this.pageSize = opts.pageSize ?? 4096;
    this.cachelinePerPageShift = Math.log2(this.pageSize) - L1_CACHE_SHIFT;
    const s = opts.strict ?? false;
    this.strictKinds = new Set(s === true ? STRICT_DEFAULT_KINDS : s === false ? [] : s);
    this.debugSg = opts.debugSg ?? true;
    this.allErrors = opts.allErrors ?? false;
    this.numErrors = opts.numErrors ?? 1;
    this.driverFilter = opts.driverFilter ?? "";
    const n = opts.entries ?? PREALLOC_DMA_DEBUG_ENTRIES;
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`dma_debug_entries=${n}: must be a positive count`);
    this.nrPrealloc = n;
    this.dynamicEntries = this.pageSize / DMA_DEBUG_ENTRY_SIZE;
    // dma_debug_init allocates whole pages of entries
    this.nrTotalEntries = Math.ceil(n / this.dynamicEntries) * this.dynamicEntries;
    this.numFreeEntries = this.nrTotalEntries;
    this.minFreeEntries = this.numFreeEntries;
  }

  get strict(): boolean {
    return this.strictKinds.size > 0;
  }

  /** live entries (all devices, or one) */
  entryCount(dev?: Device): number {
    let c = 0;
    for (const b of this.buckets) if (b) for (const e of b) if (!dev || e.dev === dev) c++;
    return c;
  }

  // ---- hash ---------------------------------------------------------------------------------

  private static hashFn(devAddr: number): number {
    if (devAddr >= 0) return Math.floor(devAddr / HASH_STEP) % HASH_SIZE;
    // a negative number stands for a wrapped u64 (DMA_MAPPING_ERROR, or a search that stepped below 0)
    return Number((BigInt.asUintN(64, BigInt(devAddr)) >> BigInt(HASH_FN_SHIFT)) & BigInt(HASH_SIZE - 1));
  }

  private bucket(devAddr: number): Entry[] {
    const i = DmaDebug.hashFn(devAddr);
    let b = this.buckets[i];
    if (!b) {
      b = [];
      this.buckets[i] = b;
    }
    return b;
  }

  /** __hash_bucket_find: best fit on size, type, direction, sg count; ambiguity gives null */
  private static bucketFind(bucket: readonly Entry[], ref: Entry, containing: boolean): Entry | null {
    let ret: Entry | null = null;
    let matches = 0;
    let lastLvl = -1;
    for (const e of bucket) {
      if (e.dev !== ref.dev) continue;
      if (containing) {
        if (!(e.devAddr <= ref.devAddr && e.devAddr + e.size >= ref.devAddr + ref.size)) continue;
      } else if (e.devAddr !== ref.devAddr) continue;
      matches++;
      let lvl = 0;
      if (e.size === ref.size) lvl++;
      if (e.type === ref.type) lvl++;
      if (e.direction === ref.direction) lvl++;
      if (e.sgCallEnts === ref.sgCallEnts) lvl++;
      if (lvl === 4) return e;
      if (lvl > lastLvl) {
        lastLvl = lvl;
        ret = e;
      }
    }
    return matches === 1 ? ret : null;
  }

  private findExact(ref: Entry): Entry | null {
    const b = this.buckets[DmaDebug.hashFn(ref.devAddr)];
    return b ? DmaDebug.bucketFind(b, ref, false) : null;
  }

  /** bucket_find_contain (46466ae3): walk back one hash step at a time up to max_seg_size */
  private findContaining(ref: Entry): Entry | null {
    const maxRange = ref.dev ? ref.dev.maxSegSize : 0x10000;
    let addr = ref.devAddr;
    for (let range = 0; range <= maxRange; range += HASH_STEP) {
      const b = this.buckets[DmaDebug.hashFn(addr)];
      if (b) {
        const e = DmaDebug.bucketFind(b, ref, true);
        if (e) return e;
      }
      addr -= HASH_STEP;
    }
    return null;
  }

  // ---- entry allocation ---------------------------------------------------------------------

  private entryAlloc(): Entry {
    if (this.numFreeEntries === 0) {
      this.numFreeEntries += this.dynamicEntries;
      this.nrTotalEntries += this.dynamicEntries;
      if (this.nrTotalEntries % this.nrPrealloc < this.dynamicEntries)
        this.log.print(`DMA-API: dma_debug_entry pool grown to ${this.nrTotalEntries} (${Math.floor(this.nrTotalEntries / this.nrPrealloc)}00%)`);
    }
    this.numFreeEntries--;
    if (this.numFreeEntries < this.minFreeEntries) this.minFreeEntries = this.numFreeEntries;
    const e = this.freeObjects.pop();
    if (e) return e;
    return { dev: null, devAddr: 0, size: 0, type: 0, direction: 0, sgCallEnts: 0, sgMappedEnts: 0, pfn: 0, offset: 0, mapErrType: 0 };
  }

  private entryFree(e: Entry): void {
    this.activeCachelineRemove(e);
    e.dev = null;
    this.freeObjects.push(e);
    this.numFreeEntries++;
  }

  private cachelineOf(e: Entry): number {
    return e.pfn * 2 ** this.cachelinePerPageShift + Math.floor(e.offset / (1 << L1_CACHE_SHIFT));
  }

  private addEntry(e: Entry): void {
    this.bucket(e.devAddr).push(e);
    // overlapping mappings the device may write: counted per cacheline in radix-tree tags
    if (e.direction === DMA_TO_DEVICE) return;
    const cln = this.cachelineOf(e);
    const ov = this.activeCachelines.get(cln);
    if (ov === undefined) {
      this.activeCachelines.set(cln, 0);
      return;
    }
    const next = ov + 1;
    if (next <= ACTIVE_CACHELINE_MAX_OVERLAP) this.activeCachelines.set(cln, next);
    else this.log.printOnce("dma-debug:overlap", `DMA-API: exceeded ${ACTIVE_CACHELINE_MAX_OVERLAP} overlapping mappings of cacheline ${padHex(cln)}`);
    this.log.print("DMA-API: cacheline tracking EEXIST, overlapping mappings aren't supported");
  }

  private activeCachelineRemove(e: Entry): void {
    if (e.direction === DMA_TO_DEVICE) return;
    const cln = this.cachelineOf(e);
    const ov = this.activeCachelines.get(cln);
    if (ov === undefined) return;
    if (ov - 1 < 0) this.activeCachelines.delete(cln);
    else this.activeCachelines.set(cln, ov - 1);
  }

  // ---- reporting ----------------------------------------------------------------------------

  private filterPasses(dev: Device | null): boolean {
    if (this.driverFilter === "") return true;
    return dev !== null && dev.driver === this.driverFilter;
  }

  /** err_printk */
  private report(dev: Device | null, f: Finding): void {
    this.errorCount++;
    const prefix = `DMA-API: ${dev ? dev.driver : "NULL"} ${dev ? dev.device : "NULL"}: `;
    const message = prefix + f.text;
    const printed = this.filterPasses(dev) && (this.allErrors || this.numErrors > 0);
    this.errors.push({ kind: f.kind, device: dev ? dev.name : "NULL", message, printed });
    if (printed) {
      for (const line of message.split("\n")) if (line !== "") this.log.print(line);
    }
    if (!this.allErrors && this.numErrors > 0) this.numErrors--;
    if (this.events?.active) this.events.emit("dma_debug", { kind: f.kind, device: dev ? dev.name : "NULL", message });
  }

  private strictCheck(dev: Device, findings: readonly Finding[]): void {
    for (const f of findings)
      if (this.strictKinds.has(f.kind)) throw new InvalidArgumentError(`DMA-API: ${dev.driver} ${dev.device}: ${f.text.split("\n")[0]!}`);
  }

  private ref(dev: Device, type: number, devAddr: number, size: number, direction: number, sgCallEnts = 0): Entry {
    return { dev, devAddr, size, type, direction, sgCallEnts, sgMappedEnts: 0, pfn: 0, offset: 0, mapErrType: 0 };
  }

  // ---- map ----------------------------------------------------------------------------------

  /** debug_dma_map_page: records a successful single/page mapping as "not checked" */
  mapPage(dev: Device, phys: number, size: number, dir: number, dma: number, _attrs = 0): void {
    if (this.disabled || dma === DMA_MAPPING_ERROR) return;
    this.addMapping(dev, DMA_DEBUG_SINGLE, phys, size, dir, dma, MAP_ERR_NOT_CHECKED);
  }

  /** a single or coherent entry for [phys, phys + size) at `dma` */
  private addMapping(dev: Device, type: number, phys: number, size: number, dir: number, dma: number, mapErrType: number): void {
    const e = this.entryAlloc();
    e.dev = dev;
    e.type = type;
    e.pfn = Math.floor(phys / this.pageSize);
    e.offset = phys - e.pfn * this.pageSize;
    e.devAddr = dma;
    e.size = size;
    e.direction = dir;
    e.sgCallEnts = 0;
    e.sgMappedEnts = 0;
    e.mapErrType = mapErrType;
    this.addEntry(e);
  }

  /** debug_dma_mapping_error: marks the first unchecked exact match as checked */
  mappingError(dev: Device, dma: number): void {
    if (this.disabled) return;
    const b = this.buckets[DmaDebug.hashFn(dma)];
    if (!b) return;
    for (const e of b) {
      if (e.dev !== dev || e.devAddr !== dma) continue;
      if (e.mapErrType === MAP_ERR_NOT_CHECKED) {
        e.mapErrType = MAP_ERR_CHECKED;
        break;
      }
    }
  }

  /** debug_dma_map_sg: one entry per mapped segment */
  mapSg(dev: Device, sg: readonly ScatterlistEntry[], nents: number, mappedEnts: number, dir: number, _attrs = 0): void {
    if (this.disabled) return;
    for (let i = 0; i < mappedEnts; i++) {
      const s = sg[i]!;
      const e = this.entryAlloc();
      e.dev = dev;
      e.type = DMA_DEBUG_SG;
      e.pfn = Math.floor(s.phys / this.pageSize);
      e.offset = s.phys - e.pfn * this.pageSize;
      e.size = s.dmaLength;
      e.devAddr = s.dmaAddress;
      e.direction = dir;
      e.sgCallEnts = nents;
      e.sgMappedEnts = mappedEnts;
      e.mapErrType = MAP_ERR_CHECK_NOT_APPLICABLE;
      if (this.debugSg) this.checkSgSegment(dev, s);
      this.addEntry(e);
    }
  }

  /** check_sg_segment (CONFIG_DMA_API_DEBUG_SG) */
  private checkSgSegment(dev: Device, s: ScatterlistEntry): void {
    if (s.length > dev.maxSegSize)
      this.report(dev, {
        kind: "sg-segment-too-long",
        text: `mapping sg segment longer than device claims to support [len=${s.length}] [max=${dev.maxSegSize}]`,
      });
    const start = BigInt(s.dmaAddress);
    const end = BigInt.asUintN(64, start + BigInt(s.dmaLength) - 1n);
    const boundary = dev.segBoundary;
    if (((start ^ end) & BigInt.asUintN(64, ~boundary)) !== 0n)
      this.report(dev, {
        kind: "sg-segment-across-boundary",
        text: `mapping sg segment across boundary [start=${padHex(start)}] [end=${padHex(end)}] [boundary=${padHex(boundary)}]`,
      });
  }

  // ---- coherent -----------------------------------------------------------------------------

  /** debug_dma_alloc_coherent: the buffer is tracked as a "coherent" entry, DMA_BIDIRECTIONAL */
  allocCoherent(dev: Device, size: number, dma: number, phys: number, _attrs = 0): void {
    if (this.disabled || dma === DMA_MAPPING_ERROR) return;
    this.addMapping(dev, DMA_DEBUG_COHERENT, phys, size, DMA_BIDIRECTIONAL, dma, MAP_ERR_CHECK_NOT_APPLICABLE);
  }

  /** debug_dma_free_coherent: check_unmap with a coherent reference (size, function, CPU address) */
  freeCoherent(dev: Device, size: number, phys: number, dma: number): void {
    if (this.disabled) return;
    const ref = this.ref(dev, DMA_DEBUG_COHERENT, dma, size, DMA_BIDIRECTIONAL);
    ref.pfn = Math.floor(phys / this.pageSize);
    ref.offset = phys - ref.pfn * this.pageSize;
    this.checkUnmap(ref);
  }

  // ---- unmap --------------------------------------------------------------------------------

  /** check_unmap without side effects: the entry it would free and what it would report */
  private collectUnmap(ref: Entry): { entry: Entry | null; findings: Finding[] } {
    const findings: Finding[] = [];
    const entry = this.findExact(ref);
    const a = padHex(ref.devAddr);
    if (!entry) {
      if (ref.devAddr === DMA_MAPPING_ERROR) findings.push({ kind: "free-invalid-address", text: "device driver tries to free an invalid DMA memory address" });
      else
        findings.push({
          kind: "free-not-allocated",
          text: `device driver tries to free DMA memory it has not allocated [device address=${a}] [size=${ref.size} bytes]`,
        });
      return { entry, findings };
    }
    if (ref.size !== entry.size)
      findings.push({
        kind: "free-different-size",
        text: `device driver frees DMA memory with different size [device address=${a}] [map size=${entry.size} bytes] [unmap size=${ref.size} bytes]`,
      });
    if (ref.type !== entry.type)
      findings.push({
        kind: "free-wrong-function",
        text: `device driver frees DMA memory with wrong function [device address=${a}] [size=${ref.size} bytes] [mapped as ${TYPE_NAMES[entry.type]}] [unmapped as ${TYPE_NAMES[ref.type]}]`,
      });
    else if (entry.type === DMA_DEBUG_COHERENT && (ref.pfn !== entry.pfn || ref.offset !== entry.offset))
      findings.push({
        kind: "free-different-cpu-address",
        // (sic) "0x%pa": %pa prints its own 0x, so the kernel's line reads "0x0x…"
        text: `device driver frees DMA memory with different CPU address [device address=${a}] [size=${ref.size} bytes] [cpu alloc address=0x${fmtPa(entry.pfn * this.pageSize + entry.offset)}] [cpu free address=0x${fmtPa(ref.pfn * this.pageSize + ref.offset)}]`,
      });
    if (ref.sgCallEnts && ref.type === DMA_DEBUG_SG && ref.sgCallEnts !== entry.sgCallEnts)
      findings.push({
        kind: "free-sg-different-count",
        text: `device driver frees DMA sg list with different entry count [map count=${entry.sgCallEnts}] [unmap count=${ref.sgCallEnts}]`,
      });
    if (ref.direction !== entry.direction)
      findings.push({
        kind: "free-different-direction",
        text: `device driver frees DMA memory with different direction [device address=${a}] [size=${ref.size} bytes] [mapped with ${dirName(entry.direction)}] [unmapped with ${dirName(ref.direction)}]`,
      });
    if (entry.mapErrType === MAP_ERR_NOT_CHECKED)
      findings.push({
        kind: "map-error-not-checked",
        // (sic) no space before the first bracket, as the kernel prints it
        text: `device driver failed to check map error[device address=${a}] [size=${ref.size} bytes] [mapped as ${TYPE_NAMES[entry.type]}]`,
      });
    return { entry, findings };
  }

  private checkUnmap(ref: Entry): void {
    const { entry, findings } = this.collectUnmap(ref);
    for (const f of findings) this.report(ref.dev, f);
    if (entry) {
      const b = this.buckets[DmaDebug.hashFn(entry.devAddr)]!;
      b.splice(b.indexOf(entry), 1);
      this.entryFree(entry);
    }
  }

  /** strict mode: throws if unmapping (dev, dma, size, dir) is misuse; changes nothing */
  validateUnmapPage(dev: Device, dma: number, size: number, dir: number): void {
    if (this.disabled || !this.strict) return;
    this.strictCheck(dev, this.collectUnmap(this.ref(dev, DMA_DEBUG_SINGLE, dma, size, dir)).findings);
  }

  /** debug_dma_unmap_page */
  unmapPage(dev: Device, dma: number, size: number, dir: number): void {
    if (this.disabled) return;
    this.checkUnmap(this.ref(dev, DMA_DEBUG_SINGLE, dma, size, dir));
  }

  private sgRefs(dev: Device, sg: readonly ScatterlistEntry[], nelems: number, dir: number, unmap: boolean): Entry[] {
    const refs: Entry[] = [];
    let mappedEnts = 0;
    for (let i = 0; i < nelems; i++) {
      const s = sg[i]!;
      const r = this.ref(dev, DMA_DEBUG_SG, s.dmaAddress, s.dmaLength, dir, nelems);
      if (unmap) {
        if (mappedEnts && i >= mappedEnts) break;
        if (i === 0) mappedEnts = this.findExact(r)?.sgMappedEnts ?? 0;
      } else {
        if (i === 0) mappedEnts = this.findExact(r)?.sgMappedEnts ?? 0;
        if (i >= mappedEnts) break;
      }
      refs.push(r);
    }
    return refs;
  }

  validateUnmapSg(dev: Device, sg: readonly ScatterlistEntry[], nelems: number, dir: number): void {
    if (this.disabled || !this.strict) return;
    for (const r of this.sgRefs(dev, sg, nelems, dir, true)) this.strictCheck(dev, this.collectUnmap(r).findings);
  }

  /** debug_dma_unmap_sg (runs before the unmap itself, as dma_unmap_sg_attrs does) */
  unmapSg(dev: Device, sg: readonly ScatterlistEntry[], nelems: number, dir: number): void {
    if (this.disabled) return;
    let mappedEnts = 0;
    for (let i = 0; i < nelems; i++) {
      const s = sg[i]!;
      const r = this.ref(dev, DMA_DEBUG_SG, s.dmaAddress, s.dmaLength, dir, nelems);
      if (mappedEnts && i >= mappedEnts) break;
      if (i === 0) mappedEnts = this.findExact(r)?.sgMappedEnts ?? 0;
      this.checkUnmap(r);
    }
  }

  // ---- sync ---------------------------------------------------------------------------------

  private collectSync(ref: Entry, toCpu: boolean): Finding[] {
    const out: Finding[] = [];
    const entry = this.findContaining(ref);
    const a = padHex(ref.devAddr);
    if (!entry) {
      out.push({
        kind: "sync-not-allocated",
        text: `device driver tries to sync DMA memory it has not allocated [device address=${a}] [size=${ref.size} bytes]`,
      });
      return out;
    }
    if (ref.size > entry.size)
      out.push({
        kind: "sync-outside-range",
        text: `device driver syncs DMA memory outside allocated range [device address=${padHex(entry.devAddr)}] [allocation size=${entry.size} bytes] [sync offset+size=${ref.size}]`,
      });
    if (entry.direction === DMA_BIDIRECTIONAL) return out;
    const names = `[mapped with ${dirName(entry.direction)}] [synced with ${dirName(ref.direction)}]`;
    if (ref.direction !== entry.direction)
      out.push({
        kind: "sync-different-direction",
        text: `device driver syncs DMA memory with different direction [device address=${a}] [size=${entry.size} bytes] ${names}`,
      });
    if (toCpu && entry.direction !== DMA_FROM_DEVICE && ref.direction !== DMA_TO_DEVICE)
      out.push({
        kind: "sync-read-only-for-cpu",
        text: `device driver syncs device read-only DMA memory for cpu [device address=${a}] [size=${entry.size} bytes] ${names}`,
      });
    if (!toCpu && entry.direction !== DMA_TO_DEVICE && ref.direction !== DMA_FROM_DEVICE)
      out.push({
        kind: "sync-write-only-to-device",
        text: `device driver syncs device write-only DMA memory to device [device address=${a}] [size=${entry.size} bytes] ${names}`,
      });
    if (ref.sgCallEnts && ref.type === DMA_DEBUG_SG && ref.sgCallEnts !== entry.sgCallEnts)
      out.push({
        kind: "sync-sg-different-count",
        text: `device driver syncs DMA sg list with different entry count [map count=${entry.sgCallEnts}] [sync count=${ref.sgCallEnts}]`,
      });
    return out;
  }

  validateSyncSingle(dev: Device, dma: number, size: number, dir: number, toCpu: boolean): void {
    if (this.disabled || !this.strict) return;
    this.strictCheck(dev, this.collectSync(this.ref(dev, DMA_DEBUG_SINGLE, dma, size, dir), toCpu));
  }

  /** debug_dma_sync_single_for_cpu / _for_device */
  syncSingle(dev: Device, dma: number, size: number, dir: number, toCpu: boolean): void {
    if (this.disabled) return;
    for (const f of this.collectSync(this.ref(dev, DMA_DEBUG_SINGLE, dma, size, dir), toCpu)) this.report(dev, f);
  }

  validateSyncSg(dev: Device, sg: readonly ScatterlistEntry[], nelems: number, dir: number, toCpu: boolean): void {
    if (this.disabled || !this.strict) return;
    for (const r of this.sgRefs(dev, sg, nelems, dir, false)) this.strictCheck(dev, this.collectSync(r, toCpu));
  }

  /** debug_dma_sync_sg_for_cpu / _for_device: only the segments map_sg mapped */
  syncSg(dev: Device, sg: readonly ScatterlistEntry[], nelems: number, dir: number, toCpu: boolean): void {
    if (this.disabled) return;
    for (const r of this.sgRefs(dev, sg, nelems, dir, false)) for (const f of this.collectSync(r, toCpu)) this.report(dev, f);
  }

  // ---- driver unbind, dump ------------------------------------------------------------------

  /** BUS_NOTIFY_UNBOUND_DRIVER: reports mappings the driver left behind; returns their count */
  deviceUnbound(dev: Device): number {
    if (this.disabled) return 0;
    let count = 0;
    let last: Entry | null = null;
    for (const b of this.buckets)
      if (b)
        for (const e of b)
          if (e.dev === dev) {
            count++;
            last = e;
          }
    if (count === 0 || !last) return 0;
    this.report(dev, {
      kind: "pending-at-unbind",
      text:
        `device driver has pending DMA allocations while released from device [count=${count}]\n` +
        `One of leaked entries details: [device address=${padHex(last.devAddr)}] [size=${last.size} bytes] ` +
        `[mapped with ${dirName(last.direction)}] [mapped as ${TYPE_NAMES[last.type]}]`,
    });
    return count;
  }

  /**
   * The devices' drivers are unbound in order (a run or guest program ending): each reports
   * the mappings it left behind; returns the total count.
   */
  releaseDevices(devs: readonly Device[]): number {
    let n = 0;
    for (const d of devs) n += this.deviceUnbound(d);
    return n;
  }

  summary(): DmaDebugSummary {
    return { mode: this.strict ? "strict" : "report", errorCount: this.errorCount, reports: [...this.errors] };
  }

  /** debugfs dma-api/dump: "<dev> <driver> <type> idx <n> P=.. N=.. D=.. L=.. <dir> <map-err state>" */
  dump(): string[] {
    const out: string[] = [];
    for (let idx = 0; idx < HASH_SIZE; idx++) {
      const b = this.buckets[idx];
      if (!b) continue;
      for (const e of b) {
        const phys = e.pfn * this.pageSize + e.offset;
        out.push(
          `${e.dev?.device ?? "NULL"} ${e.dev?.driver ?? "NULL"} ${TYPE_NAMES[e.type]} idx ${idx} P=${phys.toString(16)} N=${e.pfn.toString(16)} ` +
            `D=${BigInt.asUintN(64, BigInt(e.devAddr)).toString(16)} L=${e.size.toString(16)} ${dirName(e.direction)} ${MAPERR_NAMES[e.mapErrType]}`,
        );
      }
    }
    return out;
  }

  /** the debugfs counters by their names */
  counters(): Record<string, number | boolean> {
    return {
      disabled: this.disabled,
      error_count: this.errorCount,
      all_errors: this.allErrors ? 1 : 0,
      num_errors: this.numErrors,
      num_free_entries: this.numFreeEntries,
      min_free_entries: this.minFreeEntries,
      nr_total_entries: this.nrTotalEntries,
    };
  }
}
