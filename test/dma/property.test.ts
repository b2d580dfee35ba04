// Random map / CPU write / device write / sync / unmap sequences over the real swiotlb, for both
// eras, against a byte-level model of what the CPU and the device must see. Every byte of every
// live buffer is compared after every step; at the end the pool must be back to its free state.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type DmaDirection,
} from "../../src/kernel/dma-mapping.js";
import type { Device } from "../../src/dma/device.js";
import { NIC32, NVME64, makeBoard, pattern, poolFreeState } from "./helpers.js";

const HIGH = 0x1_2000_0000;
const LOW = 0x8000_0000;
const SLOTS = 6;
const STRIDE = 0x40000;

type Action =
  | { t: "map"; slot: number; dev: number; dir: DmaDirection; off: number; size: number; cpu: number }
  | { t: "cpuWrite" | "devWrite"; slot: number; at: number; len: number; seed: number }
  | { t: "devRead" | "syncCpu" | "syncDev" | "unmap"; slot: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({
    t: fc.constant("map" as const),
    slot: fc.nat(SLOTS - 1),
    dev: fc.nat(1),
    dir: fc.constantFrom<DmaDirection>(DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE),
    off: fc.nat(3000),
    size: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 20000 })),
    cpu: fc.nat(3),
  }),
  fc.record({ t: fc.constantFrom("cpuWrite" as const, "devWrite" as const), slot: fc.nat(SLOTS - 1), at: fc.nat(20000), len: fc.integer({ min: 1, max: 5000 }), seed: fc.nat() }),
  fc.record({ t: fc.constantFrom("devRead" as const, "syncCpu" as const, "syncDev" as const, "unmap" as const), slot: fc.nat(SLOTS - 1) }),
);

interface Live {
  dev: Device;
  dir: DmaDirection;
  phys: number;
  size: number;
  dma: number;
  bounced: boolean;
  /** expected CPU bytes of the buffer; -1 = unknown */
  cpu: Int16Array;
  /** expected device-visible bytes (the same array as cpu when mapped directly) */
  devView: Int16Array;
}

function run(kernel: "5.13" | "6.x", actions: Action[]): void {
  const b = makeBoard({ kernel, possibleCpus: 4, debug: "strict" });
  const devs = [b.device(NIC32), b.device(NVME64)];
  const buses = devs.map((d) => b.bus(d));
  const initial = poolFreeState(b.swiotlb);
  const live: (Live | undefined)[] = new Array<Live | undefined>(SLOTS).fill(undefined);
  // even slots are above 4 GiB (bounce for the NIC), odd ones low
  const base = (s: number) => (s % 2 === 0 ? HIGH : LOW) + s * STRIDE;

  const check = () => {
    for (const l of live) {
      if (!l) continue;
      const got = b.mem.read(l.phys, l.size);
      for (let i = 0; i < l.size; i++) if (l.cpu[i]! >= 0 && got[i] !== l.cpu[i]) throw new Error(`CPU byte ${i} of ${l.phys.toString(16)}: ${got[i]} != ${l.cpu[i]}`);
    }
  };
  const devRead = (l: Live) => {
    const got = buses[devs.indexOf(l.dev)]!.read(l.dma, l.size);
    for (let i = 0; i < l.size; i++)
      if (l.devView[i]! >= 0 && got[i] !== l.devView[i]) throw new Error(`device byte ${i} at dma ${l.dma.toString(16)}: ${got[i]} != ${l.devView[i]}`);
  };

  for (const a of actions) {
    const l = live[a.slot];
    switch (a.t) {
      case "map": {
        if (l) break;
        const dev = devs[a.dev]!;
        const phys = base(a.slot) + a.off;
        const cur = b.mem.read(phys, a.size);
        const dma = b.api.dmaMapSingleAttrs(dev, phys, a.size, a.dir, 0, a.cpu);
        if (b.api.dmaMappingError(dev, dma) !== 0) throw new Error(`map failed: ${b.log.lines.at(-1)}`);
        expect(dma).not.toBe(DMA_MAPPING_ERROR);
        const bounced = b.swiotlb.isSwiotlbBuffer(dev, dev.dmaToPhys(dma));
        // the NIC bounces exactly the high buffers, the NVMe device never
        expect(bounced).toBe(a.dev === 0 && a.slot % 2 === 0);
        const cpu = Int16Array.from(cur);
        let devView = cpu;
        if (bounced) {
          const copies = a.dir !== DMA_FROM_DEVICE || b.direct.profile.mapAlwaysCopies;
          devView = copies ? Int16Array.from(cur) : new Int16Array(a.size).fill(-1);
        }
        live[a.slot] = { dev, dir: a.dir, phys, size: a.size, dma, bounced, cpu, devView };
        break;
      }
      case "cpuWrite": {
        if (!l || a.at >= l.size) break;
        const len = Math.min(a.len, l.size - a.at);
        const data = pattern(len, a.seed);
        b.mem.write(l.phys + a.at, data);
        l.cpu.set(data, a.at);
        break;
      }
      case "devWrite": {
        if (!l || l.dir === DMA_TO_DEVICE || a.at >= l.size) break;
        const len = Math.min(a.len, l.size - a.at);
        const data = pattern(len, a.seed ^ 0x5555);
        buses[devs.indexOf(l.dev)]!.write(l.dma + a.at, data);
        l.devView.set(data, a.at);
        break;
      }
      case "devRead":
        if (l) devRead(l);
        break;
      case "syncCpu":
        if (!l) break;
        b.api.dmaSyncSingleForCpu(l.dev, l.dma, l.size, l.dir);
        if (l.bounced && l.dir !== DMA_TO_DEVICE) l.cpu.set(l.devView);
        break;
      case "syncDev":
        if (!l) break;
        b.api.dmaSyncSingleForDevice(l.dev, l.dma, l.size, l.dir);
        if (l.bounced && l.dir !== DMA_FROM_DEVICE) l.devView.set(l.cpu);
        break;
      case "unmap":
        if (!l) break;
        devRead(l);
        b.api.dmaUnmapSingleAttrs(l.dev, l.dma, l.size, l.dir);
        if (l.bounced && l.dir !== DMA_TO_DEVICE) l.cpu.set(l.devView);
        check();
        live[a.slot] = undefined;
        break;
    }
    check();
  }
  for (let s = 0; s < SLOTS; s++) {
    const l = live[s];
    if (!l) continue;
    b.api.dmaUnmapSingleAttrs(l.dev, l.dma, l.size, l.dir);
    if (l.bounced && l.dir !== DMA_TO_DEVICE) l.cpu.set(l.devView);
    check();
    live[s] = undefined;
  }
  expect(poolFreeState(b.swiotlb)).toEqual(initial);
  expect(b.debug!.errorCount).toBe(0);
  expect(b.debug!.entryCount()).toBe(0);
}

describe.each(["5.13", "6.x"] as const)("property (%s): random map/sync/unmap sequences keep every byte right", (kernel) => {
  it("CPU and device views match the model after every step; the pool returns to free", () => {
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 40 }), (actions) => {
        run(kernel, actions);
      }),
      { numRuns: 60 },
    );
  });
});
