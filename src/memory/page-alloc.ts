// The buddy page allocator (mm/page_alloc.c) as far as DMA allocations see it: zones
// ZONE_DMA / ZONE_DMA32 / ZONE_NORMAL with the bounds arm64's zone_sizes_init gave them
// (machine/zones.ts), naturally aligned blocks of 2^order pages, per-zone free lists with
// buddy merging, free-page accounting per zone, and the zonelist fallback of a node
// (NORMAL → DMA32 → DMA): a GFP_DMA32 request never gets ZONE_NORMAL memory, a GFP_KERNEL
// one falls back to the lower zones when its own is exhausted.
//
// It manages the RAM memblock did not hand out (memblock_free_all), lazily: a zone's memory
// is carved out of memblock one MAX_ORDER block at a time (top-down, memblock's direction)
// when its free lists cannot serve a request, and a carved block that is whole and free
// again goes back to memblock. So a 64 GiB board costs nothing until pages are used, and
// memblock and the page allocator never own the same byte: later memblock users (workload
// buffers) and the allocator share RAM without overlap.
//
// Not modelled: watermarks and lowmem_reserve (a zone is usable down to its last page),
// per-CPU page lists, migrate types, compaction, CMA, NUMA nodes (one node).

import { InvalidArgumentError, hex } from "../errors.js";
import type { KernelLog } from "../events.js";
import type { Memblock } from "./memblock.js";

// gfp bits, with the values of include/linux/gfp.h in v5.13 (6.x numbers them from an enum;
// only the meaning is used here)
export const __GFP_DMA = 0x01;
export const __GFP_HIGHMEM = 0x02;
export const __GFP_DMA32 = 0x04;
export const __GFP_HIGH = 0x20;
export const __GFP_IO = 0x40;
export const __GFP_FS = 0x80;
export const __GFP_ZERO = 0x100;
export const __GFP_ATOMIC = 0x200;
export const __GFP_DIRECT_RECLAIM = 0x400;
export const __GFP_KSWAPD_RECLAIM = 0x800;
export const __GFP_NOWARN = 0x2000;
export const __GFP_COMP = 0x40000;
export const GFP_KERNEL = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
/** GFP_DMA / GFP_DMA32 are the zone bits themselves */
export const GFP_DMA = 0x01;
export const GFP_DMA32 = 0x04;

/** %pGg of the flags dmalab uses, as warn_alloc prints them */
export function gfpNames(gfp: number): string {
  const out: string[] = [];
  let rest = gfp;
  if ((rest & GFP_KERNEL) === GFP_KERNEL) {
    out.push("GFP_KERNEL");
    rest &= ~GFP_KERNEL;
  } else if ((rest & GFP_ATOMIC) === GFP_ATOMIC) {
    out.push("GFP_ATOMIC");
    rest &= ~GFP_ATOMIC;
  }
  for (const [bit, name] of [
    [__GFP_DMA, "GFP_DMA"],
    [__GFP_DMA32, "GFP_DMA32"],
    [__GFP_ZERO, "__GFP_ZERO"],
    [__GFP_NOWARN, "__GFP_NOWARN"],
    [__GFP_COMP, "__GFP_COMP"],
  ] as const)
    if (rest & bit) {
      out.push(name);
      rest &= ~bit;
    }
  if (rest !== 0) out.push(hex(rest));
  return out.join("|") || "0";
}

export type ZoneName = "DMA" | "DMA32" | "Normal";
/** enum zone_type order: the zonelist falls back from a zone to the ones before it */
export const ZONE_NAMES: readonly ZoneName[] = ["DMA", "DMA32", "Normal"];
export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;

/** gfp_zone(): the highest zone a request may use */
export function gfpZone(gfp: number): number {
  if (gfp & __GFP_DMA) return ZONE_DMA;
  if (gfp & __GFP_DMA32) return ZONE_DMA32;
  return ZONE_NORMAL;
}

/**
 * MAX_ORDER - 1 of arm64 (5.13: MAX_ORDER 11, FORCE_MAX_ZONEORDER 14 for 64K pages, 12 for
 * 16K) = MAX_PAGE_ORDER of 6.x (10, 13, 11): the largest block the allocator hands out.
 */
export function maxPageOrder(pageShift: number): number {
  return pageShift === 16 ? 13 : pageShift === 14 ? 11 : 10;
}

export interface ZoneSpan {
  name: ZoneName;
  /** first byte (inclusive) and end (exclusive); start === end for an empty zone */
  start: number;
  end: number;
}

export interface ZoneStats {
  name: ZoneName;
  start: number;
  end: number;
  /** pages the zone owns: carved blocks plus what memblock still has free in its span */
  managed: number;
  /** free pages (on the free lists or not carved yet) */
  free: number;
  /** pages handed out */
  used: number;
  /** allocations that failed in this zone (before any fallback) */
  failed: number;
}

interface Zone {
  readonly name: ZoneName;
  readonly start: number;
  readonly end: number;
  /** free blocks by order: base addresses */
  readonly freeLists: Set<number>[];
  /** pages on the free lists */
  freeListPages: number;
  used: number;
  failed: number;
}

const OWNER = "page_alloc";

export interface PageAllocOptions {
  memblock: Memblock;
  /** the RAM banks (what memblock.memory lists) */
  banks: readonly { base: number; end: number }[];
  zones: readonly ZoneSpan[];
  pageShift: number;
  log?: KernelLog;
  /** the task name warn_alloc prints */
  comm?: string;
}

export class PageAllocator {
  readonly pageSize: number;
  readonly pageShift: number;
  readonly maxOrder: number;
  private readonly zones: Zone[];
  private readonly memblock: Memblock;
  private readonly banks: readonly { base: number; end: number }[];
  private readonly log: KernelLog | undefined;
  comm: string;
  /** carved blocks (owned by the allocator, reserved in memblock): base → order */
  private readonly carved = new Map<number, number>();
  /** handed-out blocks: base → order (what __free_pages must be given back) */
  private readonly allocated = new Map<number, number>();

  constructor(o: PageAllocOptions) {
    if (![12, 14, 16].includes(o.pageShift)) throw new InvalidArgumentError(`page shift ${o.pageShift}: arm64 pages are 4K, 16K or 64K`);
    this.pageShift = o.pageShift;
    this.pageSize = 2 ** o.pageShift;
    this.maxOrder = maxPageOrder(o.pageShift);
    this.memblock = o.memblock;
    this.banks = o.banks.map((b) => ({ base: b.base, end: b.end }));
    this.log = o.log;
    this.comm = o.comm ?? "swapper/0";
    this.zones = ZONE_NAMES.map((name) => {
      const z = o.zones.find((s) => s.name === name);
      const start = z?.start ?? 0;
      return { name, start, end: z?.end ?? start, freeLists: Array.from({ length: this.maxOrder + 1 }, () => new Set<number>()), freeListPages: 0, used: 0, failed: 0 };
    });
  }

  /** get_order(size) */
  getOrder(size: number): number {
    let order = 0;
    while (2 ** (order + this.pageShift) < size) order++;
    return order;
  }

  /** The zone a physical address belongs to, or -1. */
  zoneOf(phys: number): number {
    return this.zones.findIndex((z) => phys >= z.start && phys < z.end);
  }

  /**
   * alloc_pages(gfp, order): a naturally aligned block of 2^order pages from the highest zone
   * gfp allows, falling back to lower zones; -1 when none has one. order > MAX_ORDER fails
   * with the kernel's WARN unless __GFP_NOWARN.
   */
  allocPages(gfp: number, order: number): number {
    if (!Number.isInteger(order) || order < 0) throw new InvalidArgumentError(`alloc_pages: order ${String(order)} must be a non-negative integer`);
    if (order > this.maxOrder) {
      // WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp)
      if ((gfp & __GFP_NOWARN) === 0) this.log?.printOnce("page_alloc:max-order", `WARNING: at mm/page_alloc.c __alloc_pages: order ${order} > MAX_ORDER ${this.maxOrder}`);
      return -1;
    }
    for (let zi = gfpZone(gfp); zi >= 0; zi--) {
      const z = this.zones[zi]!;
      if (z.end <= z.start) continue;
      const a = this.allocFromZone(z, order);
      if (a >= 0) return a;
      z.failed++;
    }
    if ((gfp & __GFP_NOWARN) === 0)
      this.log?.print(`${this.comm}: page allocation failure: order:${order}, mode:${hex(gfp)}(${gfpNames(gfp)}), nodemask=(null)`);
    return -1;
  }

  private allocFromZone(z: Zone, order: number): number {
    for (;;) {
      for (let o = order; o <= this.maxOrder; o++) {
        const list = z.freeLists[o]!;
        if (list.size === 0) continue;
        // the lowest free block: deterministic runs
        let base = Infinity;
        for (const b of list) if (b < base) base = b;
        list.delete(base);
        z.freeListPages -= 2 ** o;
        // expand(): split, the upper halves go back on the lower lists
        for (let k = o; k > order; k--) {
          const half = base + this.pageSize * 2 ** (k - 1);
          z.freeLists[k - 1]!.add(half);
          z.freeListPages += 2 ** (k - 1);
        }
        this.allocated.set(base, order);
        z.used += 2 ** order;
        return base;
      }
      if (!this.carve(z, order)) return -1;
    }
  }

  /** Takes the highest free block memblock has in the zone, largest order first. */
  private carve(z: Zone, minOrder: number): boolean {
    for (let o = this.maxOrder; o >= minOrder; o--) {
      const size = this.pageSize * 2 ** o;
      if (size > z.end - z.start) continue;
      const base = this.memblock.allocTopDown(size, size, z.end, OWNER);
      if (base < 0) continue;
      if (base < z.start) {
        this.memblock.free(base);
        continue;
      }
      this.carved.set(base, o);
      z.freeLists[o]!.add(base);
      z.freeListPages += 2 ** o;
      return true;
    }
    return false;
  }

  /** The carved block holding [base, base + 2^order pages), as [base, order]. */
  private carvedBlockOf(base: number, order: number): [number, number] | undefined {
    for (let o = order; o <= this.maxOrder; o++) {
      const size = this.pageSize * 2 ** o;
      const b = Math.floor(base / size) * size;
      if (this.carved.get(b) === o) return [b, o];
    }
    return undefined;
  }

  /** __free_pages(page, order): the block must be one allocPages handed out, with its order. */
  freePages(base: number, order: number): void {
    const got = this.allocated.get(base);
    if (got === undefined) throw new InvalidArgumentError(`__free_pages: ${hex(base)} is not an allocated block`);
    if (got !== order) throw new InvalidArgumentError(`__free_pages: ${hex(base)} was allocated with order ${got}, freed with order ${order}`);
    const zi = this.zoneOf(base);
    const z = this.zones[zi]!;
    const [cBase, cOrder] = this.carvedBlockOf(base, order)!;
    this.allocated.delete(base);
    z.used -= 2 ** order;
    // merge with free buddies, never past the carved block
    let b = base;
    let o = order;
    while (o < cOrder) {
      const size = this.pageSize * 2 ** o;
      const buddy = (b / size) % 2 === 0 ? b + size : b - size;
      const list = z.freeLists[o]!;
      if (!list.has(buddy)) break;
      list.delete(buddy);
      z.freeListPages -= 2 ** o;
      b = Math.min(b, buddy);
      o++;
    }
    if (b === cBase && o === cOrder) {
      // the whole carved block is free: back to memblock
      this.carved.delete(cBase);
      this.memblock.free(cBase);
      return;
    }
    z.freeLists[o]!.add(b);
    z.freeListPages += 2 ** o;
  }

  /** Size in bytes of the live block at base, or undefined. */
  allocatedOrder(base: number): number | undefined {
    return this.allocated.get(base);
  }

  /** Pages handed out, over all zones. */
  get usedPages(): number {
    return this.zones.reduce((s, z) => s + z.used, 0);
  }

  /** Pages of zone z memblock still has free (not carved): counted as the zone's free pages. */
  private uncarvedPages(z: Zone): number {
    if (z.end <= z.start) return 0;
    let bytes = 0;
    let cursor = z.start;
    for (const r of this.memblock.regions) {
      const s = Math.max(r.base, z.start);
      const e = Math.min(r.end, z.end);
      if (e <= s) continue;
      if (s > cursor) bytes += this.ramIn(cursor, s);
      cursor = Math.max(cursor, e);
    }
    if (z.end > cursor) bytes += this.ramIn(cursor, z.end);
    return Math.floor(bytes / this.pageSize);
  }

  private ramIn(s: number, e: number): number {
    let n = 0;
    for (const b of this.banks) n += Math.max(0, Math.min(e, b.end) - Math.max(s, b.base));
    return n;
  }

  /** Per-zone counters (what /proc/zoneinfo's nr_free_pages and managed say). */
  stats(): ZoneStats[] {
    return this.zones.map((z) => {
      const free = z.freeListPages + this.uncarvedPages(z);
      return { name: z.name, start: z.start, end: z.end, managed: free + z.used, free, used: z.used, failed: z.failed };
    });
  }

  /**
   * Consistency: every carved block is exactly tiled by free and allocated blocks (no overlap,
   * no gap), counters match the lists, blocks are naturally aligned and inside their zone.
   * Returns the violations (empty when consistent).
   */
  check(): string[] {
    const bad: string[] = [];
    const blocks: [number, number, string][] = [];
    for (const [b, o] of this.allocated) blocks.push([b, o, "allocated"]);
    const perZoneFree = this.zones.map(() => 0);
    const perZoneUsed = this.zones.map(() => 0);
    this.zones.forEach((z, zi) =>
      z.freeLists.forEach((l, o) => {
        for (const b of l) {
          blocks.push([b, o, "free"]);
          perZoneFree[zi]! += 2 ** o;
        }
      }),
    );
    for (const [b, o] of this.allocated) {
      const zi = this.zoneOf(b);
      if (zi < 0) bad.push(`allocated block ${hex(b)} is in no zone`);
      else perZoneUsed[zi]! += 2 ** o;
    }
    blocks.sort((a, c) => a[0] - c[0]);
    for (let i = 0; i < blocks.length; i++) {
      const [b, o, what] = blocks[i]!;
      const size = this.pageSize * 2 ** o;
      if (b % size !== 0) bad.push(`${what} block ${hex(b)} of order ${o} is not naturally aligned`);
      const zi = this.zoneOf(b);
      if (zi < 0 || b + size > this.zones[zi]!.end) bad.push(`${what} block ${hex(b)} of order ${o} is not inside one zone`);
      const next = blocks[i + 1];
      if (next && next[0] < b + size) bad.push(`${what} block ${hex(b)} of order ${o} overlaps ${next[2]} block ${hex(next[0])}`);
      if (!this.carvedBlockOf(b, o)) bad.push(`${what} block ${hex(b)} of order ${o} is in no carved block`);
    }
    let carvedPages = 0;
    for (const [b, o] of this.carved) {
      carvedPages += 2 ** o;
      if (!this.memblock.regions.some((r) => r.base === b && r.end === b + this.pageSize * 2 ** o && r.name === OWNER))
        bad.push(`carved block ${hex(b)} of order ${o} is not reserved in memblock`);
    }
    const tiled = blocks.reduce((s, [, o]) => s + 2 ** o, 0);
    if (tiled !== carvedPages) bad.push(`free and allocated blocks cover ${tiled} pages, the carved blocks ${carvedPages}`);
    this.zones.forEach((z, zi) => {
      if (z.freeListPages !== perZoneFree[zi]) bad.push(`zone ${z.name}: free-list counter ${z.freeListPages}, lists hold ${perZoneFree[zi]}`);
      if (z.used !== perZoneUsed[zi]) bad.push(`zone ${z.name}: used counter ${z.used}, allocated blocks hold ${perZoneUsed[zi]}`);
    });
    return bad;
  }
}

/** The zones of an arm64 boot as the allocator's spans (bytes, clamped to DRAM). */
export function zoneSpans(z: { dram: { start: bigint; end: bigint }; dmaPhysLimit: bigint; dma32PhysLimit: bigint }): ZoneSpan[] {
  const clamp = (v: bigint): number => Number(v < z.dram.start ? z.dram.start : v > z.dram.end ? z.dram.end : v);
  const s = clamp(z.dram.start);
  const dma = clamp(z.dmaPhysLimit);
  const dma32 = Math.max(dma, clamp(z.dma32PhysLimit));
  const end = clamp(z.dram.end);
  return [
    { name: "DMA", start: s, end: dma },
    { name: "DMA32", start: dma, end: dma32 },
    { name: "Normal", start: dma32, end: Math.max(dma32, end) },
  ];
}
