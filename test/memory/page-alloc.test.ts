import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { Memblock } from "../../src/memory/memblock.js";
import { GFP_DMA, GFP_DMA32, GFP_KERNEL, PageAllocator, __GFP_NOWARN, gfpZone, zoneSpans } from "../../src/memory/page-alloc.js";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { KernelLog } from "../../src/events.js";
import { arm64Zones } from "../../src/machine/zones.js";
import { resolveMachine } from "../../src/machine/preset.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";

const MiB = 2 ** 20;
const PAGE = 4096;

/** 64 MiB of RAM: ZONE_DMA 16 MiB, ZONE_DMA32 16 MiB, ZONE_NORMAL 32 MiB (small zones exhaust fast). */
function small(reserve?: [number, number]) {
  const mem = new PhysicalMemory({ banks: [{ base: 0, size: 64 * MiB }] });
  const mb = new Memblock(mem);
  if (reserve) mb.reserve(reserve[0], reserve[1], "kernel");
  const log = new KernelLog();
  const pa = new PageAllocator({
    memblock: mb,
    banks: mem.banks,
    pageShift: 12,
    log,
    zones: [
      { name: "DMA", start: 0, end: 16 * MiB },
      { name: "DMA32", start: 16 * MiB, end: 32 * MiB },
      { name: "Normal", start: 32 * MiB, end: 64 * MiB },
    ],
  });
  return { mem, mb, pa, log };
}

const total = (pa: PageAllocator) => pa.stats().reduce((s, z) => s + z.managed, 0);

describe("page allocator (buddy, zones)", () => {
  it("blocks are naturally aligned 2^order pages in the zone gfp asks for", () => {
    const { pa } = small();
    const a = pa.allocPages(GFP_DMA, 3);
    expect(a % (8 * PAGE)).toBe(0);
    expect(a).toBeLessThan(16 * MiB);
    const b = pa.allocPages(GFP_DMA32, 0);
    expect(b).toBeGreaterThanOrEqual(16 * MiB);
    expect(b).toBeLessThan(32 * MiB);
    const c = pa.allocPages(GFP_KERNEL, 10);
    expect(c).toBeGreaterThanOrEqual(32 * MiB);
    expect(c % (4 * MiB)).toBe(0);
    expect(pa.check()).toEqual([]);
  });

  it("gfp_zone and the zonelist: NORMAL falls back to DMA32 then DMA; GFP_DMA32 never gets NORMAL", () => {
    expect(gfpZone(GFP_KERNEL)).toBe(2);
    expect(gfpZone(GFP_DMA32)).toBe(1);
    expect(gfpZone(GFP_DMA)).toBe(0);
    const { pa, log } = small();
    const got: number[] = [];
    for (;;) {
      const a = pa.allocPages(GFP_DMA32, 10);
      if (a < 0) break;
      got.push(a);
    }
    // 4 blocks of 4 MiB in DMA32, then 4 in DMA, none in NORMAL
    expect(got.filter((a) => a >= 16 * MiB && a < 32 * MiB)).toHaveLength(4);
    expect(got.filter((a) => a < 16 * MiB)).toHaveLength(4);
    expect(got.filter((a) => a >= 32 * MiB)).toHaveLength(0);
    // the kernel's warn_alloc line for the failure
    expect(log.lines.at(-1)).toBe("swapper/0: page allocation failure: order:10, mode:0x4(GFP_DMA32), nodemask=(null)");
    // GFP_KERNEL still finds NORMAL memory
    expect(pa.allocPages(GFP_KERNEL | __GFP_NOWARN, 10)).toBeGreaterThanOrEqual(32 * MiB);
    expect(pa.check()).toEqual([]);
  });

  it("order above MAX_ORDER fails with the kernel's warning; a bad free is refused with nothing changed", () => {
    const { pa, log } = small();
    expect(pa.allocPages(GFP_KERNEL, 11)).toBe(-1);
    expect(log.lines[0]).toMatch(/order 11 > MAX_ORDER 10/);
    const a = pa.allocPages(GFP_KERNEL, 2);
    expect(() => pa.freePages(a, 1)).toThrow(InvalidArgumentError);
    expect(() => pa.freePages(a + PAGE, 2)).toThrow(/not an allocated block/);
    pa.freePages(a, 2);
    expect(() => pa.freePages(a, 2)).toThrow(InvalidArgumentError);
    expect(pa.check()).toEqual([]);
  });

  it("manages only what memblock did not reserve, and gives whole blocks back to memblock", () => {
    const { pa, mb } = small([60 * MiB, 4 * MiB]);
    const before = total(pa);
    expect(before).toBe((60 * MiB) / PAGE);
    const blocks: number[] = [];
    for (;;) {
      const a = pa.allocPages(GFP_KERNEL | __GFP_NOWARN, 0);
      if (a < 0) break;
      expect(a < 60 * MiB).toBe(true);
      blocks.push(a);
    }
    expect(blocks).toHaveLength((60 * MiB) / PAGE);
    expect(pa.stats().every((z) => z.free === 0)).toBe(true);
    for (const b of blocks) pa.freePages(b, 0);
    expect(pa.usedPages).toBe(0);
    expect(pa.check()).toEqual([]);
    // nothing of the allocator's stays in memblock
    expect(mb.regions.map((r) => r.name)).toEqual(["kernel"]);
    expect(total(pa)).toBe(before);
  });

  it("property: free + used = managed per zone at every step, no overlap, and all is free at the end", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("alloc" as const), zone: fc.constantFrom(GFP_DMA, GFP_DMA32, GFP_KERNEL), order: fc.integer({ min: 0, max: 11 }) }),
            fc.record({ op: fc.constant("free" as const), pick: fc.nat() }),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const { pa } = small([1 * MiB, 1 * MiB]);
          const managed = pa.stats().map((z) => z.managed);
          const live: [number, number][] = [];
          for (const o of ops) {
            if (o.op === "alloc") {
              const a = pa.allocPages(o.zone | __GFP_NOWARN, o.order);
              if (a >= 0) live.push([a, o.order]);
            } else if (live.length > 0) {
              const [a, order] = live.splice(o.pick % live.length, 1)[0]!;
              pa.freePages(a, order);
            }
            const st = pa.stats();
            st.forEach((z, i) => {
              expect(z.free + z.used).toBe(managed[i]);
            });
            expect(st.reduce((s, z) => s + z.used, 0)).toBe(live.reduce((s, [, o]) => s + 2 ** o, 0));
            expect(pa.check()).toEqual([]);
          }
          for (const [a, order] of live) pa.freePages(a, order);
          expect(pa.usedPages).toBe(0);
          expect(pa.stats().map((z) => z.free)).toEqual(managed);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a 64 GiB board costs nothing to set up: no memory is touched, zones come from the boot's", () => {
    const desc = resolveMachine("server-64g");
    const z = arm64Zones(desc, kernelProfile("6.x"));
    const mem = new PhysicalMemory({ banks: desc.ram.map((b) => ({ base: b.base, size: b.size, name: b.name })) });
    const pa = new PageAllocator({ memblock: new Memblock(mem), banks: mem.banks, zones: zoneSpans(z), pageShift: 12 });
    const a = pa.allocPages(GFP_KERNEL, 10);
    expect(a).toBeGreaterThan(0);
    expect(mem.allocatedBytes).toBe(0);
    expect(pa.stats().reduce((s, x) => s + x.managed, 0) * PAGE).toBe(desc.ram.reduce((s, b) => s + b.size, 0));
    pa.freePages(a, 10);
    expect(pa.check()).toEqual([]);
  });
});
