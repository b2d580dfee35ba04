import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
} from "../../src/kernel/dma-mapping.js";
import { sgInitTable } from "../../src/dma/scatterlist.js";
import { NIC32, NVME64, firstDiff, makeBoard, pattern, poolSnapshot } from "./helpers.js";
import { padHex } from "../../src/kernel/printk.js";

const HIGH = 0x1_2000_0000;
const LOW = 0x8000_0000;
const P = "DMA-API: e1000e 0000:00:02.0: ";

function board(strict = false, kernel: "5.13" | "6.x" = "6.x") {
  const b = makeBoard({ kernel, debug: strict ? "strict" : true });
  const dbg = b.debug!;
  dbg.allErrors = true;
  return { ...b, dbg, dev: b.device(NIC32) };
}

describe("dma-debug: reports in the kernel's wording", () => {
  it("unmap of an address never mapped", () => {
    const { api, dev, log, dbg } = board();
    api.dmaUnmapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE);
    expect(log.lines).toEqual([`${P}device driver tries to free DMA memory it has not allocated [device address=0x0000000080000000] [size=64 bytes]`]);
    expect(dbg.errorCount).toBe(1);
    expect(dbg.errors[0]!.kind).toBe("free-not-allocated");
  });

  it("unmap of DMA_MAPPING_ERROR is 'an invalid DMA memory address'", () => {
    const { api, dev, log } = board();
    api.dmaUnmapSingleAttrs(dev, DMA_MAPPING_ERROR, 64, DMA_TO_DEVICE);
    expect(log.lines).toEqual([`${P}device driver tries to free an invalid DMA memory address`]);
  });

  it("double unmap: the second one has not been allocated", () => {
    const { api, dev, log } = board();
    const dma = api.dmaMapSingleAttrs(dev, LOW, 128, DMA_TO_DEVICE);
    api.dmaMappingError(dev, dma);
    api.dmaUnmapSingleAttrs(dev, dma, 128, DMA_TO_DEVICE);
    expect(log.lines).toEqual([]);
    api.dmaUnmapSingleAttrs(dev, dma, 128, DMA_TO_DEVICE);
    expect(log.lines).toEqual([`${P}device driver tries to free DMA memory it has not allocated [device address=0x0000000080000000] [size=128 bytes]`]);
  });

  it("size and direction mismatches, and the missing dma_mapping_error check", () => {
    const { api, dev, log, dbg } = board();
    const dma = api.dmaMapSingleAttrs(dev, LOW, 128, DMA_TO_DEVICE);
    api.dmaUnmapSingleAttrs(dev, dma, 64, DMA_FROM_DEVICE);
    expect(log.lines).toEqual([
      `${P}device driver frees DMA memory with different size [device address=0x0000000080000000] [map size=128 bytes] [unmap size=64 bytes]`,
      `${P}device driver frees DMA memory with different direction [device address=0x0000000080000000] [size=64 bytes] [mapped with DMA_TO_DEVICE] [unmapped with DMA_FROM_DEVICE]`,
      `${P}device driver failed to check map error[device address=0x0000000080000000] [size=64 bytes] [mapped as single]`,
    ]);
    expect(dbg.entryCount()).toBe(0);
  });

  it("only the first num_errors reports print unless all_errors; every one counts", () => {
    const b = makeBoard({ debug: true });
    const dev = b.device(NIC32);
    for (let i = 0; i < 3; i++) b.api.dmaUnmapSingleAttrs(dev, LOW + i * 0x10000, 8, DMA_TO_DEVICE);
    expect(b.log.lines).toHaveLength(1);
    expect(b.debug!.counters()).toMatchObject({ error_count: 3, num_errors: 0 });
  });

  it("the driver filter prints only that driver's errors", () => {
    const b = makeBoard({ debug: true });
    b.debug!.allErrors = true;
    b.debug!.driverFilter = "nvme";
    b.api.dmaUnmapSingleAttrs(b.device(NIC32), LOW, 8, DMA_TO_DEVICE);
    b.api.dmaUnmapSingleAttrs(b.device(NVME64), LOW, 8, DMA_TO_DEVICE);
    expect(b.log.lines).toEqual([
      "DMA-API: nvme 0000:00:03.0: device driver tries to free DMA memory it has not allocated [device address=0x0000000080000000] [size=8 bytes]",
    ]);
    expect(b.debug!.errorCount).toBe(2);
  });

  it("sync of a range that was never mapped, or that runs past the mapping", () => {
    const { api, dev, log } = board();
    api.dmaSyncSingleForCpu(dev, LOW, 32, DMA_FROM_DEVICE);
    const dma = api.dmaMapSingleAttrs(dev, LOW + 0x1000, 256, DMA_FROM_DEVICE);
    api.dmaSyncSingleForCpu(dev, dma + 128, 128, DMA_FROM_DEVICE); // inside: fine
    api.dmaSyncSingleForCpu(dev, dma + 200, 100, DMA_FROM_DEVICE); // past the end
    expect(log.lines).toEqual([
      `${P}device driver tries to sync DMA memory it has not allocated [device address=0x0000000080000000] [size=32 bytes]`,
      `${P}device driver tries to sync DMA memory it has not allocated [device address=0x00000000800010c8] [size=100 bytes]`,
    ]);
  });

  it("sync direction checks (BIDIRECTIONAL mappings are exempt)", () => {
    const { api, dev, log } = board();
    const t = api.dmaMapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE);
    api.dmaSyncSingleForCpu(dev, t, 64, DMA_FROM_DEVICE);
    const f = api.dmaMapSingleAttrs(dev, LOW + 0x4000, 64, DMA_FROM_DEVICE);
    api.dmaSyncSingleForDevice(dev, f, 64, DMA_TO_DEVICE);
    const bi = api.dmaMapSingleAttrs(dev, LOW + 0x8000, 64, DMA_BIDIRECTIONAL);
    api.dmaSyncSingleForDevice(dev, bi, 64, DMA_TO_DEVICE);
    expect(log.lines).toEqual([
      `${P}device driver syncs DMA memory with different direction [device address=0x0000000080000000] [size=64 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]`,
      `${P}device driver syncs device read-only DMA memory for cpu [device address=0x0000000080000000] [size=64 bytes] [mapped with DMA_TO_DEVICE] [synced with DMA_FROM_DEVICE]`,
      `${P}device driver syncs DMA memory with different direction [device address=0x0000000080004000] [size=64 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]`,
      `${P}device driver syncs device write-only DMA memory to device [device address=0x0000000080004000] [size=64 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]`,
    ]);
  });

  it("pending mappings at driver unbind", () => {
    const { api, dev, log, dbg } = board();
    api.dmaMapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE);
    api.dmaMapSingleAttrs(dev, LOW + 0x2000, 4096, DMA_FROM_DEVICE);
    expect(dbg.deviceUnbound(dev)).toBe(2);
    expect(log.lines).toEqual([
      `${P}device driver has pending DMA allocations while released from device [count=2]`,
      "One of leaked entries details: [device address=0x0000000080002000] [size=4096 bytes] [mapped with DMA_FROM_DEVICE] [mapped as single]",
    ]);
    expect(dbg.deviceUnbound(makeBoard().device(NVME64))).toBe(0);
  });

  it("scatter-gather: entry count mismatch and the DEBUG_SG segment checks", () => {
    const { api, log, device } = board();
    const dev = device(NVME64);
    const sg = sgInitTable([
      { phys: LOW, length: 4096 },
      { phys: LOW + 0x10000, length: 0x20000 },
      { phys: LOW + 0x40000, length: 512 },
    ]);
    expect(api.dmaMapSgAttrs(dev, sg, 3, DMA_TO_DEVICE)).toBe(3);
    expect(log.lines).toEqual([
      "DMA-API: nvme 0000:00:03.0: mapping sg segment longer than device claims to support [len=131072] [max=65536]",
    ]);
    api.dmaUnmapSgAttrs(dev, sg, 2, DMA_TO_DEVICE);
    expect(log.lines.slice(1)).toEqual([
      "DMA-API: nvme 0000:00:03.0: device driver frees DMA sg list with different entry count [map count=3] [unmap count=2]",
      "DMA-API: nvme 0000:00:03.0: device driver frees DMA sg list with different entry count [map count=3] [unmap count=2]",
    ]);
    const b2 = makeBoard({ debug: true });
    const d2 = b2.device({ ...NVME64, segBoundaryMask: 0xffffn });
    b2.api.dmaMapSgAttrs(d2, sgInitTable([{ phys: LOW + 0xff00, length: 0x200 }]), 1, DMA_TO_DEVICE);
    expect(b2.log.lines).toEqual([
      "DMA-API: nvme 0000:00:03.0: mapping sg segment across boundary [start=0x000000008000ff00] [end=0x00000000800100ff] [boundary=0x000000000000ffff]",
    ]);
  });

  it("overlapping mappings the device may write share a cacheline: pr_err EEXIST", () => {
    const { api, dev, log } = board();
    api.dmaMapSingleAttrs(dev, LOW, 64, DMA_FROM_DEVICE);
    api.dmaMapSingleAttrs(dev, LOW + 8, 8, DMA_FROM_DEVICE);
    api.dmaMapSingleAttrs(dev, LOW + 8, 8, DMA_TO_DEVICE); // TO_DEVICE is not tracked
    expect(log.lines).toEqual(["DMA-API: cacheline tracking EEXIST, overlapping mappings aren't supported"]);
  });

  it("the debugfs dump and counters", () => {
    const { api, dev, dbg } = board();
    const dma = api.dmaMapSingleAttrs(dev, LOW + 0x10, 64, DMA_TO_DEVICE);
    api.dmaMappingError(dev, dma);
    expect(dbg.dump()).toEqual(["0000:00:02.0 e1000e single idx 0 P=80000010 N=80000 D=80000010 L=40 DMA_TO_DEVICE dma map error checked"]);
    const c = dbg.counters();
    expect(c["nr_total_entries"]).toBe(65536);
    expect(c["num_free_entries"]).toBe(65535);
  });
});

describe.each(["5.13", "6.x"] as const)("dma-debug strict mode (%s): misuse throws before any state changes", (kernel) => {
  function bounced() {
    const b = board(true, kernel);
    const data = pattern(3000, 50);
    b.mem.write(HIGH, data);
    const dma = b.api.dmaMapSingleAttrs(b.dev, HIGH, 3000, DMA_BIDIRECTIONAL);
    expect(b.api.dmaMappingError(b.dev, dma)).toBe(0);
    b.bus(b.dev).write(dma, pattern(3000, 51)); // the device has written: a copy back would show
    return { ...b, dma, data };
  }

  it("unmap of an address that is not mapped", () => {
    const b = bounced();
    const pool = poolSnapshot(b.swiotlb);
    expect(() => b.api.dmaUnmapSingleAttrs(b.dev, b.dma + 0x800, 64, DMA_BIDIRECTIONAL)).toThrow(InvalidArgumentError);
    expect(() => b.api.dmaUnmapSingleAttrs(b.dev, b.dma + 0x800, 64, DMA_BIDIRECTIONAL)).toThrow(/tries to free DMA memory it has not allocated/);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
    expect(firstDiff(b.mem.read(HIGH, 3000), b.data)).toBe(-1);
    expect(b.dbg.errorCount).toBe(0);
    expect(b.dbg.entryCount()).toBe(1);
  });

  it("double unmap", () => {
    const b = bounced();
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL);
    expect(firstDiff(b.mem.read(HIGH, 3000), pattern(3000, 51))).toBe(-1);
    // someone else now holds the slots: a second unmap would free their mapping
    const other = b.device({ ...NIC32, device: "0000:00:04.0" });
    b.mem.write(HIGH + 0x10000, pattern(3000, 52));
    const o = b.api.dmaMapSingleAttrs(other, HIGH + 0x10000, 3000, DMA_TO_DEVICE);
    b.api.dmaMappingError(other, o);
    const pool = poolSnapshot(b.swiotlb);
    const orig = b.mem.read(HIGH, 3000);
    expect(() => b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL)).toThrow(/has not allocated/);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
    expect(firstDiff(b.mem.read(HIGH, 3000), orig)).toBe(-1);
    expect(firstDiff(b.bus(other).read(o, 3000), pattern(3000, 52))).toBe(-1);
  });

  it("sync outside the mapping, and sync with the wrong direction", () => {
    const b = bounced();
    const pool = poolSnapshot(b.swiotlb);
    expect(() => b.api.dmaSyncSingleForCpu(b.dev, b.dma + 2900, 200, DMA_BIDIRECTIONAL)).toThrow(/tries to sync DMA memory it has not allocated/);
    expect(() => b.api.dmaSyncSingleForCpu(b.dev, b.dma - 16, 32, DMA_BIDIRECTIONAL)).toThrow(InvalidArgumentError);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
    expect(firstDiff(b.mem.read(HIGH, 3000), b.data)).toBe(-1);
    const t = b.api.dmaMapSingleAttrs(b.dev, HIGH + 0x20000, 100, DMA_TO_DEVICE);
    b.api.dmaMappingError(b.dev, t);
    const before = b.mem.read(HIGH + 0x20000, 100);
    expect(() => b.api.dmaSyncSingleForCpu(b.dev, t, 100, DMA_FROM_DEVICE)).toThrow(/different direction/);
    expect(firstDiff(b.mem.read(HIGH + 0x20000, 100), before)).toBe(-1);
  });

  it("unmap without the dma_mapping_error check, then with it", () => {
    const b = board(true, kernel);
    const dma = b.api.dmaMapSingleAttrs(b.dev, HIGH, 100, DMA_TO_DEVICE);
    const pool = poolSnapshot(b.swiotlb);
    expect(() => b.api.dmaUnmapSingleAttrs(b.dev, dma, 100, DMA_TO_DEVICE)).toThrow(/failed to check map error/);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
    b.api.dmaMappingError(b.dev, dma);
    b.api.dmaUnmapSingleAttrs(b.dev, dma, 100, DMA_TO_DEVICE);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
  });

  it("unmap_sg of a list that was not mapped", () => {
    const b = board(true, kernel);
    const sg = sgInitTable([{ phys: HIGH, length: 100 }]);
    sg[0]!.dmaAddress = 0xff00_0000;
    sg[0]!.dmaLength = 100;
    const pool = poolSnapshot(b.swiotlb);
    expect(() => b.api.dmaUnmapSgAttrs(b.dev, sg, 1, DMA_TO_DEVICE)).toThrow(/has not allocated/);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
  });

  it("correct use passes untouched", () => {
    const b = board(true, kernel);
    const sg = sgInitTable([
      { phys: HIGH, length: 100 },
      { phys: LOW, length: 200 },
    ]);
    expect(b.api.dmaMapSgAttrs(b.dev, sg, 2, DMA_FROM_DEVICE)).toBe(2);
    b.api.dmaSyncSgForCpu(b.dev, sg, 2, DMA_FROM_DEVICE);
    b.api.dmaSyncSgForDevice(b.dev, sg, 2, DMA_FROM_DEVICE);
    b.api.dmaUnmapSgAttrs(b.dev, sg, 2, DMA_FROM_DEVICE);
    expect(b.dbg.errorCount).toBe(0);
    expect(b.dbg.entryCount()).toBe(0);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
  });
});

describe.each(["5.13", "6.x"] as const)("dma-debug report-and-continue (%s): reported, then the kernel's semantics", (kernel) => {
  function bounced(size = 3000) {
    const b = board(false, kernel);
    b.mem.write(HIGH, pattern(size, 60));
    const dma = b.api.dmaMapSingleAttrs(b.dev, HIGH, size, DMA_BIDIRECTIONAL);
    expect(b.api.dmaMappingError(b.dev, dma)).toBe(0);
    expect(dma).toBeLessThan(2 ** 32); // bounced
    b.bus(b.dev).write(dma, pattern(size, 61));
    return { ...b, dma };
  }

  it("an unmap with the wrong size copies back that many bytes and still releases every slot", () => {
    const b = bounced();
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 1000, DMA_BIDIRECTIONAL);
    expect(b.dbg.errors.map((e) => e.kind)).toEqual(["free-different-size"]);
    expect(b.log.lines[0]).toBe(`${P}device driver frees DMA memory with different size [device address=${padHex(b.dma)}] [map size=3000 bytes] [unmap size=1000 bytes]`);
    const got = b.mem.read(HIGH, 3000);
    expect(firstDiff(got.subarray(0, 1000), pattern(3000, 61).subarray(0, 1000))).toBe(-1);
    expect(firstDiff(got.subarray(1000), pattern(3000, 60).subarray(1000))).toBe(-1);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
    expect(b.dbg.entryCount()).toBe(0);
  });

  it("an unmap with the wrong direction copies back as that direction says (TO_DEVICE: nothing)", () => {
    const b = bounced();
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_TO_DEVICE);
    expect(b.dbg.errors.map((e) => e.kind)).toEqual(["free-different-direction"]);
    expect(firstDiff(b.mem.read(HIGH, 3000), pattern(3000, 60))).toBe(-1);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
  });

  it("a double unmap of slots nobody holds changes nothing (alloc_size 0: no slot released)", () => {
    const b = bounced();
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL);
    const pool = poolSnapshot(b.swiotlb);
    const orig = b.mem.read(HIGH, 3000);
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL);
    expect(b.dbg.errors.map((e) => e.kind)).toEqual(["free-not-allocated"]);
    expect(firstDiff(poolSnapshot(b.swiotlb), pool)).toBe(-1);
    expect(firstDiff(b.mem.read(HIGH, 3000), orig)).toBe(-1);
  });

  it("a double unmap after the slots went to another mapping frees that mapping, as the kernel does", () => {
    const b = bounced();
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL);
    const other = b.device({ ...NIC32, device: "0000:00:04.0" });
    b.mem.write(HIGH + 0x10000, pattern(3000, 62));
    // the search is next-fit: map until a mapping lands on the freed slots, keep only that one
    let o = -1;
    for (let i = 0; i < 1024 && o !== b.dma; i++) {
      o = b.api.dmaMapSingleAttrs(other, HIGH + 0x10000, 3000, DMA_TO_DEVICE);
      b.api.dmaMappingError(other, o);
      if (o !== b.dma) b.api.dmaUnmapSingleAttrs(other, o, 3000, DMA_TO_DEVICE);
    }
    expect(o).toBe(b.dma);
    expect(b.swiotlb.defaultMem!.used).toBe(2);
    b.api.dmaUnmapSingleAttrs(b.dev, b.dma, 3000, DMA_BIDIRECTIONAL);
    expect(b.dbg.errors.map((e) => e.kind)).toEqual(["free-not-allocated"]);
    expect(b.swiotlb.defaultMem!.used).toBe(0);
    // the other driver's unmap now finds its entry (dma-debug keys on the device) but no slots
    b.api.dmaUnmapSingleAttrs(other, o, 3000, DMA_TO_DEVICE);
    expect(b.dbg.errorCount).toBe(1);
  });

  it("unmap_sg with a segment that was never mapped goes on with the others", () => {
    const b = board(false, kernel);
    const sg = sgInitTable([
      { phys: HIGH, length: 100 },
      { phys: HIGH + 0x4000, length: 200 },
    ]);
    expect(b.api.dmaMapSgAttrs(b.dev, sg, 2, DMA_TO_DEVICE)).toBe(2);
    const bad = sgInitTable([
      { phys: HIGH, length: 100 },
      { phys: HIGH + 0x4000, length: 200 },
    ]);
    bad[0]!.dmaAddress = sg[0]!.dmaAddress;
    bad[0]!.dmaLength = 100;
    bad[1]!.dmaAddress = sg[1]!.dmaAddress + 0x10_0000;
    bad[1]!.dmaLength = 200;
    b.api.dmaUnmapSgAttrs(b.dev, bad, 2, DMA_TO_DEVICE);
    expect(b.dbg.errors.map((e) => e.kind)).toContain("free-not-allocated");
    expect(b.swiotlb.defaultMem!.used).toBe(Math.ceil(200 / 2048));
  });

  it("num_errors: the first report prints, all are listed with printed false after it; summary and unbind", () => {
    const b = makeBoard({ kernel, debug: true });
    const dev = b.device(NIC32);
    b.api.dmaUnmapSingleAttrs(dev, LOW, 8, DMA_TO_DEVICE);
    b.api.dmaMapSingleAttrs(dev, LOW + 0x3000, 64, DMA_FROM_DEVICE);
    expect(b.debug!.releaseDevices([dev, b.device(NVME64)])).toBe(1);
    const s = b.debug!.summary();
    expect(s).toMatchObject({ mode: "report", errorCount: 2 });
    expect(s.reports.map((r) => [r.kind, r.printed])).toEqual([
      ["free-not-allocated", true],
      ["pending-at-unbind", false],
    ]);
    expect(s.reports[1]!.message).toBe(
      "DMA-API: e1000e 0000:00:02.0: device driver has pending DMA allocations while released from device [count=1]\n" +
        "One of leaked entries details: [device address=0x0000000080003000] [size=64 bytes] [mapped with DMA_FROM_DEVICE] [mapped as single]",
    );
    expect(b.log.lines).toHaveLength(1);
  });
});
