import { describe, expect, it } from "vitest";
import { buildMachine } from "../../src/machine/builder.js";
import { MachineDmaTarget } from "../../src/machine/dma-target.js";
import type { MachineDevice } from "../../src/machine/machine.js";
import { FaultError, UsageError } from "../../src/errors.js";
import { runWorkload } from "../../src/workload/index.js";
import type { CoherentTarget } from "../../src/workload/coherent.js";

function setUp(machine: string) {
  const b = buildMachine({ machine });
  const devs = b.machine.devices.filter((d) => d.probed);
  const c = b.coherent;
  const ct: CoherentTarget<MachineDevice> = {
    alloc: (d, size) => c.dmaAllocAttrs(d.dev, size),
    free: (d, size, phys, dma) => c.dmaFreeAttrs(d.dev, size, phys, dma),
    usedPages: () => c.direct.pages.usedPages,
  };
  return { b, devs, ct, t: new MachineDmaTarget(b.machine) };
}

describe("coherent workload: descriptor rings in coherent memory, streaming buffers against them", () => {
  it("verifies every descriptor and buffer and gives all coherent memory back", () => {
    const { b, devs, ct, t } = setUp("rpi4-8g");
    const s = runWorkload(t, devs, { workload: "coherent", ops: 600, seed: 3 }, { coherent: ct });
    t.close();
    expect(s.corruptBytes).toBe(0);
    expect(s.mappings).toBe(600);
    expect(s.verifiedBytes).toBeGreaterThan(600 * 16);
    expect(b.coherent.stats.allocs).toBe(devs.length);
    expect(b.coherent.stats.live).toBe(0);
    expect(b.coherent.direct.pages.usedPages).toBe(0);
    expect(s.io_tlb_used_after).toBe(0);
  });

  it("a ring the device sees elsewhere than the CPU: it reads a descriptor that is not there and faults on its address", () => {
    const { devs, ct, t } = setUp("qemu-virt-2g");
    const skewed: CoherentTarget<MachineDevice> = {
      ...ct,
      alloc: (d, size) => {
        const x = ct.alloc(d, size);
        return x && { phys: x.phys, dma: x.dma + 4096 };
      },
      free: (d, size, phys, dma) => ct.free(d, size, phys, dma - 4096),
    };
    expect(() => runWorkload(t, devs, { workload: "coherent", ops: 50, seed: 1 }, { coherent: skewed })).toThrow(/DMA bus fault: .* at DMA address 0x0/);
    t.close();
  });

  it("a leaked coherent page is a fault; no coherent allocator is a usage error", () => {
    const { devs, ct, t } = setUp("qemu-virt-2g");
    const leaky: CoherentTarget<MachineDevice> = { ...ct, free: () => {} };
    expect(() => runWorkload(t, devs, { workload: "coherent", ops: 10, seed: 1 }, { coherent: leaky })).toThrow(FaultError);
    expect(() => runWorkload(t, devs, { workload: "coherent", ops: 10, seed: 1 })).toThrow(UsageError);
    t.close();
  });
});
