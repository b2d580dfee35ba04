// What a report shows of a run, collected from the machine's event sink and sampled from the
// default pool's slot bitmap. Samples are taken every `every` pool operations; when twice the
// target count is reached, neighbours are merged and `every` doubles, so a run of any length
// ends with between `target` and 2 × `target` samples (a 1M-op run stays a few hundred KB).

import type { TraceEvent } from "../events.js";
import { IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { Machine } from "../machine/machine.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import { Log2Histogram, shortBytes, type PoolTimeline, type RunSection } from "./model.js";

/** heat-map rows the pool is cut into (whole areas grouped when there are more areas) */
const ROWS = 64;
const MAX_FULL_MARKS = 1000;
/** per-area series kept in a report (the busiest areas past that) */
const MAX_AREA_SERIES = 16;

interface Row {
  area: number;
  firstSlot: number;
  slots: number;
}

function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Allocated slots in [first, first + n) of a busy bitmap. */
export function busyCount(busy: Int32Array, first: number, n: number): number {
  let c = 0;
  let i = first;
  const end = first + n;
  while (i < end) {
    const b = i & 31;
    const k = Math.min(end - i, 32 - b);
    const mask = k === 32 ? -1 : ((1 << k) - 1) << b;
    c += popcount32(busy[i >>> 5]! & mask);
    i += k;
  }
  return c;
}

/** Slot ranges of the heat map: each area cut into rows, or whole areas grouped. */
export function heatRows(nareas: number, areaNslabs: number): Row[] {
  const rows: Row[] = [];
  if (nareas <= ROWS) {
    const per = Math.max(1, Math.min(Math.floor(ROWS / nareas), areaNslabs));
    for (let a = 0; a < nareas; a++)
      for (let r = 0; r < per; r++) {
        const lo = Math.floor((r * areaNslabs) / per);
        const hi = Math.floor(((r + 1) * areaNslabs) / per);
        rows.push({ area: a, firstSlot: a * areaNslabs + lo, slots: hi - lo });
      }
  } else {
    const k = Math.ceil(nareas / ROWS);
    for (let a = 0; a < nareas; a += k) rows.push({ area: a, firstSlot: a * areaNslabs, slots: Math.min(k, nareas - a) * areaNslabs });
  }
  return rows;
}

export class PoolRecorder {
  private m: Machine | null = null;
  private pool: IoTlbPool | null = null;
  private poolName = "default";
  private stopListening: (() => void) | null = null;
  private rows: Row[] = [];
  private every = 1;
  private ops = 0;
  private sinceSample = 0;
  private windowPeak = 0;
  private readonly x: number[] = [];
  private occ: Uint8Array[] = [];
  private used: number[] = [];
  private usedPeak: number[] = [];
  private hiwater: number[] = [];
  private areaUsed: number[][] = [];
  private areaHiwater: number[][] = [];
  private areaMax: number[] = [];
  private readonly full: number[] = [];
  private fullCount = 0;
  private readonly sizes = new Log2Histogram(64, 256 * 1024);
  private readonly slots = new Log2Histogram(1, 128);
  private readonly hypercalls = new Map<string, number>();

  constructor(private readonly target = 400) {}

  /** Listens to the machine's events (call before its boot so the boot's hypercalls count). */
  attach(m: Machine): void {
    this.m = m;
    this.stopListening = m.events.on((e) => this.onEvent(e));
  }

  /** After the boot: the default pool is known; the first sample is taken. */
  start(): void {
    const mem = this.m?.swiotlb.defaultMem ?? null;
    if (mem === null) return;
    this.pool = mem.pool;
    this.poolName = mem.name;
    this.rows = heatRows(mem.pool.nareas, mem.pool.areaNslabs);
    this.areaMax = mem.pool.areaUsedList();
    this.areaUsed = this.areaMax.map(() => []);
    this.areaHiwater = this.areaMax.map(() => []);
    this.sample();
  }

  private onEvent(e: TraceEvent): void {
    switch (e.name) {
      case "hypercall": {
        const k = `${String(e.fields["op"])}\u0000${String(e.fields["ret"])}`;
        this.hypercalls.set(k, (this.hypercalls.get(k) ?? 0) + 1);
        return;
      }
      case "swiotlb_map":
      case "swiotlb_unmap": {
        const p = this.pool;
        if (p === null || !p.contains(Number(e.fields["tlb_addr"]))) return;
        const tlb = Number(e.fields["tlb_addr"]);
        if (e.name === "swiotlb_map") {
          const size = Number(e.fields["size"]);
          this.sizes.add(size);
          this.slots.add(Math.ceil(((tlb - p.start) % IO_TLB_SIZE + size) / IO_TLB_SIZE));
          const a = Math.min(p.nareas - 1, Math.floor(p.slotOf(tlb) / p.areaNslabs));
          const u = p.areaUsedOf(a);
          if (u > this.areaMax[a]!) this.areaMax[a] = u;
          const used = p.used;
          if (used > this.windowPeak) this.windowPeak = used;
        }
        this.ops++;
        if (++this.sinceSample >= this.every) this.sample();
        return;
      }
      case "swiotlb_full":
        this.fullCount++;
        if (this.full.length < MAX_FULL_MARKS) this.full.push(this.ops);
        return;
      default:
        return;
    }
  }

  private sample(): void {
    const p = this.pool!;
    this.sinceSample = 0;
    const row = new Uint8Array(this.rows.length);
    this.rows.forEach((r, i) => {
      row[i] = Math.round((busyCount(p.busy, r.firstSlot, r.slots) / r.slots) * 255);
    });
    const used = p.used;
    this.x.push(this.ops);
    this.occ.push(row);
    this.used.push(used);
    this.usedPeak.push(Math.max(used, this.windowPeak));
    this.windowPeak = used;
    this.hiwater.push(this.m!.swiotlb.stats(this.m!.swiotlb.defaultMem)?.io_tlb_used_hiwater ?? Math.max(used, this.hiwater.at(-1) ?? 0));
    for (let a = 0; a < p.nareas; a++) {
      const u = p.areaUsedOf(a);
      if (u > this.areaMax[a]!) this.areaMax[a] = u;
      this.areaUsed[a]!.push(u);
      this.areaHiwater[a]!.push(this.areaMax[a]!);
    }
    if (this.x.length >= 2 * this.target) this.halve();
  }

  /** Keeps every other sample (occupancy and peaks merged with their neighbour), doubles `every`. */
  private halve(): void {
    const keep = <T>(xs: T[]): T[] => xs.filter((_, i) => i % 2 === 1);
    const peak = (xs: number[]): number[] => xs.filter((_, i) => i % 2 === 1).map((v, j) => Math.max(v, xs[2 * j]!));
    this.occ = this.occ.filter((_, i) => i % 2 === 1).map((r, j) => r.map((v, k) => Math.max(v, this.occ[2 * j]![k]!)));
    const x = keep(this.x);
    this.x.length = 0;
    this.x.push(...x);
    this.used = keep(this.used);
    this.usedPeak = peak(this.usedPeak);
    this.hiwater = keep(this.hiwater);
    this.areaUsed = this.areaUsed.map(keep);
    this.areaHiwater = this.areaHiwater.map(keep);
    this.every *= 2;
  }

  /** Stops listening; returns what the page shows of the run (the final state is sampled). */
  finish(devices: RunSection["devices"], kernelLog: readonly string[], summary: RunSection["summary"]): RunSection {
    if (this.pool !== null && this.sinceSample > 0) this.sample();
    this.stopListening?.();
    this.stopListening = null;
    const p = this.pool;
    let pool: PoolTimeline | null = null;
    if (p !== null) {
      let areas = this.areaMax.map((_, a) => a);
      if (areas.length > MAX_AREA_SERIES) areas = areas.sort((a, b) => this.areaMax[b]! - this.areaMax[a]! || a - b).slice(0, MAX_AREA_SERIES).sort((a, b) => a - b);
      const flat = new Uint8Array(this.occ.length * this.rows.length);
      this.occ.forEach((r, i) => flat.set(r, i * this.rows.length));
      pool = {
        pool: this.poolName,
        nslabs: p.nslabs,
        nareas: p.nareas,
        areaNslabs: p.areaNslabs,
        x: [...this.x],
        rows: this.rows,
        occupancy: Buffer.from(flat).toString("base64"),
        used: this.used,
        usedPeak: this.usedPeak,
        hiwater: this.hiwater,
        areas,
        areaUsed: areas.map((a) => this.areaUsed[a]!),
        areaHiwater: areas.map((a) => this.areaHiwater[a]!),
        full: [...this.full],
        fullCount: this.fullCount,
      };
    }
    const hypercalls = [...this.hypercalls].map(([k, count]) => {
      const [op = "", ret = ""] = k.split("\u0000");
      return { op, ret, count };
    });
    hypercalls.sort((a, b) => b.count - a.count);
    return {
      summary,
      pool,
      mapSizes: this.sizes.histogram(shortBytes),
      slotsPerMapping: this.slots.histogram(String, true),
      devices,
      hypercalls,
      kernelLog: kernelLog.slice(0, 300),
    };
  }
}
