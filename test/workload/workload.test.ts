import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { bootMachine } from "../../src/machine/boot.js";
import { demoMachine } from "../../src/machine/demo.js";
import { MachineDmaTarget } from "../../src/machine/dma-target.js";
import { Machine, type MachineDevice } from "../../src/machine/machine.js";
import { resolveMachine } from "../../src/machine/preset.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";
import { DMA_ATTR_SKIP_CPU_SYNC, type DmaDirection } from "../../src/kernel/dma-mapping.js";
import { WORKLOADS, runWorkload, type WorkloadName } from "../../src/workload/index.js";
import { XorShift32, fillPattern } from "../../src/workload/rng.js";

function booted(kernel: string, swiotlb?: string, preset?: string) {
  const m = new Machine(preset ? resolveMachine(preset) : demoMachine(), kernelProfile(kernel));
  bootMachine(m, swiotlb ? { swiotlbCmdline: swiotlb } : {});
  return m;
}

function run(m: Machine, workload: WorkloadName, ops: number, seed = 7, t = new MachineDmaTarget(m)) {
  try {
    return runWorkload(t, m.devices, { workload, ops, seed });
  } finally {
    t.close();
  }
}

const stable = (s: ReturnType<typeof run>) => {
  const { elapsedMs: _e, mappingsPerSec: _m, bytesPerSec: _b, ...rest } = s;
  return rest;
};

describe("xorshift32", () => {
  it("is the Marsaglia generator (13, 17, 5) and never sticks at 0", () => {
    const r = new XorShift32(1);
    // x=1: x^=x<<13 -> 0x2001; x^=x>>>17 -> 0x2001; x^=x<<5 -> 0x42021
    expect(r.next()).toBe(0x42021);
    expect(new XorShift32(0).next()).not.toBe(0);
  });
  it("fillPattern is a pure function of (seed, length) and its prefixes agree", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), (seed, a, b) => {
        const x = new Uint8Array(Math.max(a, b));
        const y = new Uint8Array(Math.max(a, b));
        fillPattern(x, a, seed);
        fillPattern(y, b, seed);
        const n = Math.min(a, b) & ~3; // whole words are shared by both lengths
        expect(x.subarray(0, n)).toEqual(y.subarray(0, n));
      }),
    );
  });
});

describe("workloads on the demo board: every byte checked, both eras", () => {
  for (const k of ["5.13", "6.x"])
    // coherent needs dma_alloc_coherent from a built machine: test/workload/coherent.test.ts
    for (const w of WORKLOADS.filter((x) => x !== "coherent")) {
      it(`${w} / ${k}`, () => {
        const m = booted(k);
        const s = run(m, w, 600);
        expect(s.corruptBytes).toBe(0);
        expect(s.mapErrors).toBe(0);
        expect(s.bounced).toBeGreaterThan(0);
        expect(s.direct).toBeGreaterThan(0);
        expect(s.bouncedBytes).toBeGreaterThan(0);
        expect(s.verifiedBouncedBytes).toBeGreaterThan(0);
        expect(s.io_tlb_used_hiwater).toBeGreaterThan(0);
        // every mapping was undone: no slot leaked
        expect(s.io_tlb_used_after).toBe(0);
        expect(m.swiotlb.defaultMem!.used).toBe(0);
        // the 32-bit NIC bounces everything (buffers above 4 GiB), the NVMe nothing
        const [nic, nvme] = s.devices;
        expect(nic!.direct).toBe(0);
        expect(nvme!.bounced).toBe(0);
        if (w === "sg") expect(s.verifiedBytes).toBe(s.bouncedBytes + s.directBytes);
        if (w === "pingpong") expect(s.verifiedBytes).toBeGreaterThan(s.bouncedBytes + s.directBytes);
      });
    }

  it("is deterministic for a seed and changes with it", () => {
    const a = stable(run(booted("6.x"), "ring", 400, 42));
    const b = stable(run(booted("6.x"), "ring", 400, 42));
    const c = stable(run(booted("6.x"), "ring", 400, 43));
    expect(a).toEqual(b);
    expect(c.bouncedBytes).not.toBe(a.bouncedBytes);
  });

  it("counts pool-full events exactly (not the rate-limited log lines) and stays intact", () => {
    const m = booted("5.13", "128"); // 128 slots = 256 KiB
    const s = run(m, "ring", 3000);
    expect(s.poolFull).toBeGreaterThan(10); // more than the 10 lines the rate limit lets through
    expect(s.mapErrors).toBe(s.poolFull);
    expect(s.corruptBytes).toBe(0);
    expect(s.io_tlb_used_hiwater).toBeLessThanOrEqual(128);
    expect(m.log.lines.filter((l) => l.includes("swiotlb buffer is full")).length).toBeLessThanOrEqual(10);
  });

  it("rpi4-8g: the 30-bit emmc2 bounces through the pool under 1 GiB", () => {
    const m = booted("5.13", undefined, "rpi4-8g");
    const s = run(m, "ring", 300);
    const emmc = s.devices.find((d) => d.device.startsWith("sdhci-iproc"))!;
    expect(emmc.bounced).toBe(emmc.mappings);
    expect(s.corruptBytes).toBe(0);
  });
});

describe("the integrity check can fail", () => {
  it("a device that reads one wrong byte is caught, with where and what", () => {
    const m = booted("6.x");
    const t = new MachineDmaTarget(m);
    let flipped = false;
    const orig = t.busRead.bind(t);
    t.busRead = (dev: MachineDevice, dma: number, dst: Uint8Array) => {
      orig(dev, dma, dst);
      if (!flipped && dst.length > 10) {
        dst[5] = dst[5]! ^ 0xff;
        flipped = true;
      }
    };
    const s = run(m, "ring", 200, 7, t);
    expect(s.corruptBytes).toBe(1);
    expect(s.firstCorruption).toMatchObject({ direction: "to-device", offset: 5 });
    expect(s.firstCorruption!.got).toBe(s.firstCorruption!.expected ^ 0xff);
  });
  it("an unmap that skips the copy-back (a lost bounce) corrupts received data", () => {
    const m = booted("6.x");
    const t = new MachineDmaTarget(m);
    t.unmap = (dev: MachineDevice, dma: number, size: number, dir: DmaDirection) =>
      m.api.dmaUnmapPageAttrs(dev.dev, dma, size, dir, DMA_ATTR_SKIP_CPU_SYNC);
    const s = run(m, "ring", 200, 7, t);
    expect(s.corruptBytes).toBeGreaterThan(0);
    expect(s.firstCorruption).toMatchObject({ direction: "from-device", bounced: true, got: 0xa5 });
    // direct mappings were unaffected: the NVMe's bytes are not in the count
    expect(s.io_tlb_used_after).toBe(0);
  });
});
