// The pool recorder: exact slot counts from the busy bitmap, rows that cover every area, samples
// bounded whatever the run's length, and what the report page receives.

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DMA_TO_DEVICE } from "../../src/kernel/dma-mapping.js";
import { buildMachine, machineSpec } from "../../src/machine/builder.js";
import { Log2Histogram } from "../../src/report/model.js";
import { PoolRecorder, busyCount, heatRows } from "../../src/report/recorder.js";

describe("busyCount and heatRows", () => {
  it("busyCount equals a bit-by-bit count over any range", () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { minLength: 1, maxLength: 8 }), fc.nat(), fc.nat(), (words, a, b) => {
        const busy = Int32Array.from(words);
        const bits = busy.length * 32;
        const first = a % bits;
        const n = b % (bits - first + 1);
        let want = 0;
        for (let i = first; i < first + n; i++) if ((busy[i >>> 5]! >>> (i & 31)) & 1) want++;
        expect(busyCount(busy, first, n)).toBe(want);
      }),
    );
  });

  it("rows tile every area's slots in order, at most 64 rows (areas grouped past that)", () => {
    for (const [nareas, per] of [[1, 32768], [4, 8192], [16, 128], [64, 128], [128, 128], [1024, 128]] as const) {
      const rows = heatRows(nareas, per);
      expect(rows.length).toBeLessThanOrEqual(64);
      let next = 0;
      for (const r of rows) {
        expect(r.firstSlot).toBe(next);
        expect(r.area).toBe(Math.floor(r.firstSlot / per));
        next += r.slots;
      }
      expect(next).toBe(nareas * per);
    }
  });

  it("log-2 histogram buckets", () => {
    const h = new Log2Histogram(1, 8);
    for (const v of [1, 2, 3, 4, 5, 8, 9, 100]) h.add(v);
    expect(h.histogram(String, true)).toEqual({ labels: ["1", "2", "3-4", "5-8"], counts: [1, 1, 2, 4] });
    expect(h.histogram().labels).toEqual(["≤1", "≤2", "≤4", "≤8"]);
  });
});

describe("PoolRecorder on a machine", () => {
  it("samples stay between target and twice the target; the last sample is the pool as it is", () => {
    const rec = new PoolRecorder(20);
    const { machine: m } = buildMachine(machineSpec({ kernel: "6.x" }), (mm) => rec.attach(mm));
    rec.start();
    const nic = m.devices.find((d) => d.desc.driver === "8139too")!;
    const pool = m.swiotlb.defaultMem!.pool;
    const base = 0x1_4000_0000; // above 4 GiB: the 32-bit NIC bounces it
    const live: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const dma = m.api.dmaMapPageAttrs(nic.dev, base + (i % 64) * 0x10000, 0, 100 + (i % 7) * 1000, DMA_TO_DEVICE, 0, i % 4);
      live.push(dma);
      if (live.length > 40) m.api.dmaUnmapPageAttrs(nic.dev, live.shift()!, 100 + ((i - 40) % 7) * 1000, DMA_TO_DEVICE, 0);
    }
    const run = rec.finish([], ["a log line"], [["k", "v"]]);
    const P = run.pool!;
    expect(P.x.length).toBeGreaterThanOrEqual(20);
    expect(P.x.length).toBeLessThan(40);
    expect(P.x.every((v, i) => i === 0 || v > P.x[i - 1]!)).toBe(true);
    expect(P.x.at(-1)).toBe(5000 + 5000 - 40);
    expect(Buffer.from(P.occupancy, "base64").length).toBe(P.x.length * P.rows.length);
    expect(P.used.at(-1)).toBe(pool.used);
    expect(P.used.at(-1)).toBeGreaterThan(0);
    expect(P.hiwater.at(-1)).toBe(pool.counters[1]);
    // the heat map's last column holds exactly the slots in use
    const last = Buffer.from(P.occupancy, "base64").subarray((P.x.length - 1) * P.rows.length);
    const approx = P.rows.reduce((s, r, i) => s + (last[i]! / 255) * r.slots, 0);
    expect(Math.abs(approx - pool.used)).toBeLessThan(P.rows.length);
    // peaks: never below the instantaneous value; per-area high-water never decreasing
    P.usedPeak.forEach((v, i) => expect(v).toBeGreaterThanOrEqual(P.used[i]!));
    for (const a of P.areaHiwater) expect(a.every((v, i) => i === 0 || v >= a[i - 1]!)).toBe(true);
    expect(run.mapSizes.counts.reduce((s, c) => s + c, 0)).toBe(5000);
    expect(run.kernelLog).toEqual(["a log line"]);
  });
});
