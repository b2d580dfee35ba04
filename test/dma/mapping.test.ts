import { describe, expect, it } from "vitest";
import { FaultError, InvalidArgumentError } from "../../src/errors.js";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  dmaBitMask,
} from "../../src/kernel/dma-mapping.js";
import { EIO, ENOMEM } from "../../src/kernel/errno.js";
import { InvalidDirectionError } from "../../src/dma/mapping.js";
import { SIZE_MAX_NUMBER, type DmaMapOps } from "../../src/dma/ops.js";
import { sgInitTable } from "../../src/dma/scatterlist.js";
import type { Device } from "../../src/dma/device.js";
import { NIC32, NVME64, firstDiff, makeBoard, pattern, poolSnapshot } from "./helpers.js";

const HIGH = 0x1_2000_0000;
const LOW = 0x8000_0000;

describe("mapping API: bad input is refused before anything changes", () => {
  it("an invalid direction is a typed error (the kernel BUGs), for every entry point", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    const dma = b.api.dmaMapSingleAttrs(dev, HIGH, 64, DMA_TO_DEVICE);
    const before = poolSnapshot(b.swiotlb);
    const sg = sgInitTable([{ phys: HIGH, length: 64 }]);
    const calls: (() => unknown)[] = [
      () => b.api.dmaMapSingleAttrs(dev, HIGH, 64, 3),
      () => b.api.dmaMapPageAttrs(dev, HIGH, 0, 64, -1),
      () => b.api.dmaUnmapPageAttrs(dev, dma, 64, 7),
      () => b.api.dmaSyncSingleForCpu(dev, dma, 64, 3),
      () => b.api.dmaSyncSingleForDevice(dev, dma, 64, 3),
      () => b.api.dmaMapSgAttrs(dev, sg, 1, 3),
      () => b.api.dmaUnmapSgAttrs(dev, sg, 1, 3),
      () => b.api.dmaSyncSgForCpu(dev, sg, 1, 3),
      () => b.api.dmaSyncSgForDevice(dev, sg, 1, 3),
    ];
    for (const c of calls) {
      expect(c).toThrow(InvalidDirectionError);
      expect(firstDiff(poolSnapshot(b.swiotlb), before)).toBe(-1);
    }
    expect(() => b.api.dmaMapSingleAttrs(dev, HIGH, 64, 3)).toThrow(/invalid DMA direction 3/);
  });

  it("zero, negative or fractional sizes and non-RAM buffers are typed errors naming the value", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    const before = poolSnapshot(b.swiotlb);
    expect(() => b.api.dmaMapSingleAttrs(dev, HIGH, 0, DMA_TO_DEVICE)).toThrow(/size 0 must be a positive integer/);
    expect(() => b.api.dmaMapSingleAttrs(dev, HIGH, -5, DMA_TO_DEVICE)).toThrow(/size -5/);
    expect(() => b.api.dmaMapSingleAttrs(dev, HIGH, 1.5, DMA_TO_DEVICE)).toThrow(/size 1.5/);
    expect(() => b.api.dmaMapSingleAttrs(dev, 0x1000, 64, DMA_TO_DEVICE)).toThrow(/\[0x1000\+64\] is not RAM/);
    expect(() => b.api.dmaMapSingleAttrs(dev, 0x1_3fff_fff0, 64, DMA_TO_DEVICE)).toThrow(/is not RAM/);
    expect(() => b.api.dmaMapPageAttrs(dev, HIGH + 1, 0, 64, DMA_TO_DEVICE)).toThrow(/not 4096-aligned/);
    expect(() => b.api.dmaMapSingleAttrs(dev, HIGH, 64, DMA_TO_DEVICE, 0, -1)).toThrow(/CPU -1/);
    expect(() => b.api.dmaUnmapPageAttrs(dev, 0.5, 64, DMA_TO_DEVICE)).toThrow(InvalidArgumentError);
    expect(() => b.api.dmaMapSgAttrs(dev, sgInitTable([{ phys: HIGH, length: 8 }]), 2, DMA_TO_DEVICE)).toThrow(/nents 2/);
    expect(() => sgInitTable([{ phys: HIGH, length: 0 }])).toThrow(/length 0/);
    expect(firstDiff(poolSnapshot(b.swiotlb), before)).toBe(-1);
    expect(b.direct.stats.mapped + b.direct.stats.failed).toBe(0);
  });

  it("a device without a dma_mask: one warning and DMA_MAPPING_ERROR (map_sg: 0)", () => {
    const b = makeBoard();
    const dev = b.device({ ...NIC32, dmaMask: null });
    expect(b.api.dmaMapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(b.api.dmaMapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(b.log.lines.filter((l) => l.includes("WARN_ON_ONCE(!dev->dma_mask)"))).toHaveLength(1);
    expect(b.api.dmaMapSgAttrs(dev, sgInitTable([{ phys: LOW, length: 64 }]), 1, DMA_TO_DEVICE)).toBe(0);
    expect(b.direct.stats.mapped).toBe(0);
  });
});

describe("mapping API: results", () => {
  it("dma_mapping_error is -ENOMEM exactly for DMA_MAPPING_ERROR", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    expect(b.api.dmaMappingError(dev, DMA_MAPPING_ERROR)).toBe(-ENOMEM);
    expect(b.api.dmaMappingError(dev, 0)).toBe(0);
    expect(b.api.dmaMappingError(dev, 0xffff_f000)).toBe(0);
  });

  it("map_single / sync / unmap round trip through the API, every byte", () => {
    for (const kernel of ["5.13", "6.x"] as const) {
      const b = makeBoard({ kernel });
      const dev = b.device(NIC32);
      const out = pattern(6000, 40);
      b.mem.write(HIGH, out);
      const dma = b.api.dmaMapSingleAttrs(dev, HIGH, out.length, DMA_BIDIRECTIONAL);
      expect(b.api.dmaMappingError(dev, dma)).toBe(0);
      const bus = b.bus(dev);
      expect(firstDiff(bus.read(dma, out.length), out)).toBe(-1);
      const back = pattern(6000, 41);
      bus.write(dma, back);
      b.api.dmaSyncSingleForCpu(dev, dma, out.length, DMA_BIDIRECTIONAL);
      expect(firstDiff(b.mem.read(HIGH, out.length), back)).toBe(-1);
      b.api.dmaUnmapSingleAttrs(dev, dma, out.length, DMA_BIDIRECTIONAL);
      expect(b.swiotlb.defaultMem!.used).toBe(0);
    }
  });

  it("dma_sync_single_range_for_cpu syncs at dma + offset (6.x copies the right bytes)", () => {
    const b = makeBoard({ kernel: "6.x" });
    const dev = b.device(NIC32);
    b.mem.fill(HIGH, 4096, 0);
    const dma = b.api.dmaMapSingleAttrs(dev, HIGH, 4096, DMA_FROM_DEVICE);
    const part = pattern(100, 42);
    b.bus(dev).write(dma + 100, part);
    b.api.dmaSyncSingleRangeForCpu(dev, dma, 100, 100, DMA_FROM_DEVICE);
    expect(firstDiff(b.mem.read(HIGH + 100, 100), part)).toBe(-1);
    expect(b.mem.read8(HIGH + 99)).toBe(0);
    expect(b.mem.read8(HIGH + 200)).toBe(0);
  });

  it("emits dma_map / dma_unmap events when someone listens", () => {
    const b = makeBoard();
    const dev = b.device(NVME64);
    const rec = b.events.record((e) => e.name === "dma_map" || e.name === "dma_unmap");
    const dma = b.api.dmaMapSingleAttrs(dev, LOW, 64, DMA_TO_DEVICE);
    b.api.dmaUnmapSingleAttrs(dev, dma, 64, DMA_TO_DEVICE);
    rec.stop();
    expect(rec.events.map((e) => e.name)).toEqual(["dma_map", "dma_unmap"]);
    expect(rec.events[0]!.fields["dma"]).toBe(LOW);
  });
});

describe("mapping API: masks", () => {
  it("dma_set_mask: -EIO for an unsupported mask or no dma_mask pointer, mask unchanged", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    expect(b.api.dmaSetMask(dev, dmaBitMask(24))).toBe(-EIO);
    expect(dev.dmaMask).toBe(dmaBitMask(32));
    expect(b.api.dmaSetMask(dev, dmaBitMask(64))).toBe(0);
    expect(dev.dmaMask).toBe(dmaBitMask(64));
    // the new mask takes effect on the hot path: this buffer no longer bounces
    expect(b.api.dmaMapSingleAttrs(dev, HIGH, 64, DMA_TO_DEVICE)).toBe(HIGH);
    const nomask = b.device({ ...NIC32, dmaMask: null });
    expect(b.api.dmaSetMask(nomask, dmaBitMask(64))).toBe(-EIO);
    expect(nomask.hasDmaMask).toBe(false);
    expect(() => b.api.dmaSetMask(dev, -1n)).toThrow(InvalidArgumentError);
  });

  it("dma_set_mask_and_coherent sets both; dma_set_coherent_mask alone sets only the coherent one", () => {
    const b = makeBoard();
    const dev = b.device(NIC32);
    expect(b.api.dmaSetMaskAndCoherent(dev, dmaBitMask(40))).toBe(0);
    expect(dev.dmaMask).toBe(dmaBitMask(40));
    expect(dev.coherentDmaMask).toBe(dmaBitMask(40));
    expect(b.api.dmaSetCoherentMask(dev, dmaBitMask(36))).toBe(0);
    expect(dev.dmaMask).toBe(dmaBitMask(40));
    expect(dev.coherentDmaMask).toBe(dmaBitMask(36));
  });

  it("dma_set_mask goes through dev->dma_ops->dma_supported (the Xen seed path), and a fault propagates", () => {
    const b = makeBoard();
    const seen: bigint[] = [];
    const faulty: DmaMapOps = {
      name: "xen-swiotlb",
      mapPage: () => DMA_MAPPING_ERROR,
      mapSg: () => 0,
      dmaSupported: (_d: Device, mask: bigint) => {
        seen.push(mask);
        throw new FaultError("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000010 (xen_swiotlb_dma_supported)");
      },
    };
    const dev = b.device({ ...NIC32, dmaOps: faulty });
    expect(() => b.api.dmaSetMask(dev, dmaBitMask(64))).toThrow(/NULL pointer dereference/);
    expect(seen).toEqual([dmaBitMask(64)]);
    expect(dev.dmaMask).toBe(dmaBitMask(32));
  });

  it("ops without dma_supported / max_mapping_size: supported, SIZE_MAX", () => {
    const b = makeBoard();
    const dev = b.device({ ...NIC32, dmaOps: { name: "bare", mapPage: () => 0, mapSg: () => 0 } });
    expect(b.api.dmaSupported(dev, dmaBitMask(8))).toBe(true);
    expect(b.api.dmaMaxMappingSize(dev)).toBe(SIZE_MAX_NUMBER);
    // no unmap/sync members: nothing happens, no throw
    b.api.dmaUnmapPageAttrs(dev, 0x1000, 8, DMA_TO_DEVICE);
    b.api.dmaSyncSingleForCpu(dev, 0x1000, 8, DMA_TO_DEVICE);
  });

  it("the API dispatches to dev->dma_ops when set", () => {
    const b = makeBoard();
    const calls: string[] = [];
    const ops: DmaMapOps = {
      name: "fake",
      mapPage: (_d, phys) => {
        calls.push(`map ${phys.toString(16)}`);
        return 0x1234;
      },
      unmapPage: (_d, dma) => void calls.push(`unmap ${dma.toString(16)}`),
      syncSingleForCpu: () => void calls.push("sync-cpu"),
      syncSingleForDevice: () => void calls.push("sync-dev"),
      mapSg: (_d, sg, n) => {
        calls.push(`map_sg ${n}`);
        return -1;
      },
      maxMappingSize: () => 4096,
    };
    const dev = b.device({ ...NIC32, dmaOps: ops });
    expect(b.api.dmaMapSingleAttrs(dev, LOW, 8, DMA_TO_DEVICE)).toBe(0x1234);
    b.api.dmaSyncSingleForDevice(dev, 0x1234, 8, DMA_TO_DEVICE);
    b.api.dmaSyncSingleForCpu(dev, 0x1234, 8, DMA_TO_DEVICE);
    b.api.dmaUnmapSingleAttrs(dev, 0x1234, 8, DMA_TO_DEVICE);
    expect(b.api.dmaMaxMappingSize(dev)).toBe(4096);
    // BUG_ON(ents < 0)
    expect(() => b.api.dmaMapSgAttrs(dev, sgInitTable([{ phys: LOW, length: 8 }]), 1, DMA_TO_DEVICE)).toThrow(/map_sg returned -1/);
    expect(calls).toEqual(["map 80000000", "sync-dev", "sync-cpu", "unmap 1234", "map_sg 1"]);
    expect(b.direct.stats.mapped).toBe(0);
  });

  it("required mask and addressing limits through the API", () => {
    const b = makeBoard();
    expect(b.api.dmaGetRequiredMask(b.device(NIC32))).toBe(0x1_ffff_ffffn);
    expect(b.api.dmaAddressingLimited(b.device(NIC32))).toBe(true);
    // kernel/dma/mapping.c dma_get_required_mask (v5.7 … v6.11): DMA ops without their own
    // ->get_required_mask answer DMA_BIT_MASK(32), whatever RAM holds; this board's RAM ends
    // above 4 GiB, where dma-direct's answer is 0x1_ffff_ffff
    const noReq: DmaMapOps = { name: "no-get-required-mask", mapPage: () => DMA_MAPPING_ERROR, mapSg: () => 0 };
    const opsDev = b.device({ ...NIC32, dmaOps: noReq });
    expect(b.api.dmaGetRequiredMask(opsDev)).toBe(0xffff_ffffn);
    expect(b.api.dmaAddressingLimited(opsDev)).toBe(false);
    const withReq: DmaMapOps = { ...noReq, name: "own", getRequiredMask: () => 0xff_ffff_ffffn };
    expect(b.api.dmaGetRequiredMask(b.device({ ...NIC32, dmaOps: withReq }))).toBe(0xff_ffff_ffffn);
  });
});
