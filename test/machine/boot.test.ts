import { describe, expect, it } from "vitest";
import { FaultError, InputError, UsageError } from "../../src/errors.js";
import { bootMachine, type BootHooks } from "../../src/machine/boot.js";
import { Machine } from "../../src/machine/machine.js";
import { parseMachine, presetNames, resolveMachine, totalRam } from "../../src/machine/preset.js";
import { KERNEL_VERSIONS, kernelProfile } from "../../src/swiotlb/profile.js";
import type { DmaMapOps } from "../../src/dma/ops.js";

const MiB = 2 ** 20;
const boot = (preset: string, kernel: string, opts: Parameters<typeof bootMachine>[1] = {}, hooks?: BootHooks) => {
  const m = new Machine(resolveMachine(preset), kernelProfile(kernel));
  return { m, r: bootMachine(m, opts, hooks) };
};

describe("native mem_init decision, every preset x profile, from the rules", () => {
  for (const preset of presetNames())
    for (const kernel of KERNEL_VERSIONS) {
      it(`${preset} / ${kernel}`, () => {
        const { m, r } = boot(preset, kernel);
        expect(r.outcome).toBe("ok");
        const z = m.zones;
        const pool = m.swiotlb.defaultMem;
        if (m.profile.memInitSetsNoForce) {
          // 5.x: a pool iff RAM exists above the DMA zone, else SWIOTLB_NO_FORCE
          expect(pool !== null).toBe(z.ramAboveDmaLimit);
          expect(r.swiotlb.force).toBe(z.ramAboveDmaLimit ? "SWIOTLB_NORMAL" : "SWIOTLB_NO_FORCE");
          if (pool) expect(pool.nslabs).toBe(32768);
        } else {
          // 6.x: always a pool (DMA_BOUNCE_UNALIGNED_KMALLOC); 1 MiB per GiB when ZONE_DMA needs none
          expect(pool).not.toBeNull();
          const want = z.ramAboveDmaLimit ? 64 * MiB : Math.min(64 * MiB, Math.ceil(totalRam(m.desc) / 1024));
          const slots = Math.ceil(Math.ceil(want / 2048) / 128) * 128;
          // the later area round-up makes it a power of two, at least 128 per area
          const nareas = 2 ** Math.ceil(Math.log2(m.cpus));
          const rounded = slots < 128 * nareas ? 128 * nareas : 2 ** Math.ceil(Math.log2(slots));
          expect(pool!.nslabs).toBe(rounded);
          expect(r.swiotlb.force).toBe("SWIOTLB_NORMAL");
        }
        if (pool) {
          // memblock_alloc_low: below ARCH_LOW_ADDRESS_LIMIT, as high as possible
          expect(pool.end).toBeLessThanOrEqual(Number(z.dmaPhysLimit));
          expect(r.kernelLog.some((l) => l.startsWith("software IO TLB: mapped [mem "))).toBe(true);
        }
        expect(r.devices.every((d) => d.probed)).toBe(true);
      });
    }
});

describe("hand-computed pools", () => {
  it("qemu-virt-8g: 64 MiB right under 4 GiB (both eras)", () => {
    for (const k of ["5.13", "6.x"]) {
      const { r } = boot("qemu-virt-8g", k);
      expect(r.swiotlb.pool).toMatchObject({ start: "0xfc000000", end: "0xffffffff", nslabs: 32768 });
    }
    expect(boot("qemu-virt-8g", "6.x").r.swiotlb.pool!.nareas).toBe(4);
    expect(boot("qemu-virt-8g", "5.13").r.swiotlb.pool!.nareas).toBe(1);
  });
  it("rpi4-8g: pool under the 1 GiB ZONE_DMA, at the top of bank 0", () => {
    expect(boot("rpi4-8g", "5.13").r.swiotlb.pool).toMatchObject({ start: "0x37400000", end: "0x3b3fffff" });
  });
  it("qemu-virt-2g 6.x: kmalloc-bounce pool of 2 MiB (1 MiB per GiB)", () => {
    const { r } = boot("qemu-virt-2g", "6.x");
    expect(r.swiotlb.pool).toMatchObject({ start: "0xbfe00000", nslabs: 1024 });
    expect(r.kernelLog).toContain("software IO TLB: SWIOTLB bounce buffer size adjusted to 2MB");
  });
  it("6.x without DMA_BOUNCE_UNALIGNED_KMALLOC: no pool where RAM fits", () => {
    const { r } = boot("qemu-virt-2g", "6.x", { kmallocBounce: false });
    expect(r.swiotlb.pool).toBeNull();
  });
  it("swiotlb=force makes 5.13 allocate on a board that fits", () => {
    const { r } = boot("qemu-virt-2g", "5.13", { swiotlbCmdline: "force" });
    expect(r.swiotlb.force).toBe("SWIOTLB_FORCE");
    expect(r.swiotlb.pool).not.toBeNull();
  });
  it("swiotlb=noforce disables the 6.x pool", () => {
    const { r } = boot("qemu-virt-8g", "6.x", { swiotlbCmdline: "noforce" });
    expect(r.swiotlb.pool).toBeNull();
  });
  it("swiotlb=8192 sets the 5.13 pool size", () => {
    expect(boot("qemu-virt-8g", "5.13", { swiotlbCmdline: "swiotlb=8192" }).r.swiotlb.pool!.nslabs).toBe(8192);
  });
  it("logs the zone ranges like free_area_init", () => {
    const { r } = boot("rpi4-8g", "6.x");
    const i = r.kernelLog.indexOf("Zone ranges:");
    expect(r.kernelLog.slice(i, i + 4)).toEqual([
      "Zone ranges:",
      "  DMA      [mem 0x0000000000000000-0x000000003fffffff]",
      "  DMA32    [mem 0x0000000040000000-0x00000000ffffffff]",
      "  Normal   [mem 0x0000000100000000-0x00000001ffffffff]",
    ]);
    const q = boot("qemu-virt-2g", "5.13").r.kernelLog;
    expect(q.slice(q.indexOf("Zone ranges:") + 1, q.indexOf("Zone ranges:") + 4)).toEqual([
      "  DMA      [mem 0x0000000040000000-0x00000000bfffffff]",
      "  DMA32    empty",
      "  Normal   empty",
    ]);
  });
});

describe("device probe", () => {
  const raw = (mask: number) => ({
    name: "t",
    ram: [{ base: "0x4000_0000", size: "8GiB" }],
    devices: [
      { name: "a", driver: "ok64", dmaMask: 64 },
      { name: "b", driver: "isa24", dmaMask: mask },
    ],
  });
  it("a mask dma_direct_supported refuses fails the probe with -EIO; the mask stays as the bus set it", () => {
    const m = new Machine(parseMachine(raw(24), "t"), kernelProfile("6.x"));
    const r = bootMachine(m);
    expect(r.outcome).toBe("probe-failed");
    const b = r.devices.find((d) => d.driver === "isa24")!;
    expect(b.probed).toBe(false);
    expect(b.error).toBe(-5);
    expect(b.errno).toBe("EIO");
    expect(b.dma_mask).toBe("0xffffffff");
    expect(r.kernelLog).toContain("isa24: probe of b failed with error -5");
    expect(r.devices.find((d) => d.driver === "ok64")!.probed).toBe(true);
  });
  it("dma-ranges: of_dma_configure sets bus_dma_limit from the last DMA address", () => {
    const { m } = boot("rpi4-1g", "5.13");
    const emmc = m.device("sdhci-iproc");
    expect(emmc.dev.busDmaLimit).toBe(0xffff_ffffn);
    expect(emmc.dev.physToDma(0x1000)).toBe(0xc000_1000);
  });
});

describe("bad boot options leave the machine untouched", () => {
  it("strict swiotlb= with ignored text: InputError before anything happens", () => {
    const m = new Machine(resolveMachine("qemu-virt-8g"), kernelProfile("6.x"));
    expect(() => bootMachine(m, { swiotlbCmdline: "1024,4,forcee", strict: true })).toThrow(InputError);
    expect(m.booted).toBe(false);
    expect(m.swiotlb.defaultMem).toBeNull();
    expect(m.log.lines).toEqual([]);
    // non-strict: a warning, then the boot goes on
    const r = bootMachine(m, { swiotlbCmdline: "1024,4,forcee" });
    expect(r.warnings).toEqual(["swiotlb=1024,4,forcee: kernel 6.x ignores 'forcee'"]);
    expect(r.outcome).toBe("ok");
  });
  it("unknown or unavailable Xen roles are usage errors", () => {
    const m = new Machine(resolveMachine("qemu-virt-2g"), kernelProfile("5.13"));
    expect(() => bootMachine(m, { xen: "dom1" as "dom0" })).toThrow(UsageError);
    expect(() => bootMachine(m, { xen: "dom0" })).toThrow(/not available yet/);
    expect(m.booted).toBe(false);
  });
  it("a machine boots once", () => {
    const { m } = boot("qemu-virt-2g", "5.13");
    expect(() => bootMachine(m)).toThrow(/already booted/);
  });
});

describe("the hypervisor seam", () => {
  // what the Xen guest side will plug in: detect + dma_ops whose dma_supported reads a NULL pool
  class NullDeref extends FaultError {
    readonly function = "xen_swiotlb_dma_supported";
    readonly pointer = "io_tlb_default_mem";
    readonly address = 0x8;
    constructor() {
      super("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008");
    }
  }
  const hooks = (detect: boolean): BootHooks => ({
    swiotlbDetect: () => detect,
    afterMemInit: (m, b) => {
      b.decide("xen_mm_init: stub");
      const ops: DmaMapOps = {
        name: "xen-swiotlb",
        mapPage: () => -1,
        mapSg: () => 0,
        dmaSupported: () => {
          if (m.swiotlb.defaultMem === null) throw new NullDeref();
          return true;
        },
      };
      for (const d of m.devices) d.dev.dmaOps = ops;
    },
  });
  it("5.13: xen_swiotlb_detect() keeps mem_init from setting NO_FORCE", () => {
    const { r } = boot("qemu-virt-2g", "5.13", { xen: "dom0" }, hooks(true));
    expect(r.swiotlb.force).toBe("SWIOTLB_NORMAL");
    expect(r.decisions[0]).toMatch(/xen_swiotlb_detect\(\)/);
  });
  it("5.13-rc1 sets NO_FORCE anyway; a probe fault is reported like an oops", () => {
    const { r } = boot("rpi4-1g", "5.13-rc1", { xen: "dom0" }, hooks(true));
    expect(r.swiotlb.force).toBe("SWIOTLB_NO_FORCE");
    expect(r.outcome).toBe("fault");
    const f = r.fault!;
    expect(f.function).toBe("xen_swiotlb_dma_supported");
    expect(f.pointer).toBe("io_tlb_default_mem");
    expect(f.address).toBe("0x8");
    // a platform driver's probe from its initcall (drivers/base/dd.c, platform.c; sdhci-iproc.c)
    expect(f.callChain.slice(f.callChain.indexOf("really_probe"))).toEqual([
      "really_probe",
      "platform_probe",
      "sdhci_iproc_probe",
      "dma_set_mask_and_coherent",
      "dma_set_mask",
      "dma_supported",
      "xen_swiotlb_dma_supported",
    ]);
    expect(f.callChain.slice(0, 5)).toEqual(["ret_from_fork", "kernel_init", "kernel_init_freeable", "do_one_initcall", "sdhci_iproc_driver_init"]);
    expect(f.causes.some((c) => /SWIOTLB_NO_FORCE/.test(c))).toBe(true);
    // a fault that is not a modelled KernelOops keeps the full account, call chain included
    expect(f.lines.join("\n")).toMatch(/NULL io_tlb_default_mem dereferenced at address 0x8 in xen_swiotlb_dma_supported/);
  });
});

describe("kernel log order", () => {
  // arm64 setup_arch → bootmem_init → zone_sizes_init prints "Zone ranges:"; start_kernel prints
  // "Kernel command line:" only after setup_arch returns (init/main.c)
  it("Zone ranges: comes before Kernel command line:", () => {
    for (const kernel of ["5.13", "6.x"]) {
      const { r } = boot("qemu-virt-2g", kernel, { swiotlbCmdline: "force" });
      const zones = r.kernelLog.indexOf("Zone ranges:");
      const cmd = r.kernelLog.indexOf("Kernel command line: swiotlb=force");
      expect(zones).toBeGreaterThanOrEqual(0);
      expect(cmd).toBeGreaterThan(zones);
    }
  });
});

describe("6.x: kmalloc bouncing through the pool mem_init made for it", () => {
  // arm64 mem_init (v6.11) always asks for a pool with DMA_BOUNCE_UNALIGNED_KMALLOC; kmem_cache_init
  // then lowers kmalloc's minimum alignment (mm/slab_common.c), and dma_direct_map_page bounces
  // small unaligned FROM_DEVICE buffers of non-coherent devices (dma_kmalloc_needs_bounce)
  it("rpi4-1g: bcmgenet (non-coherent) bounces a 32-byte receive buffer; not with the option off", () => {
    for (const kmallocBounce of [true, false]) {
      const { m, r } = boot("rpi4-1g", "6.x", { kmallocBounce });
      expect(r.outcome).toBe("ok");
      const md = m.device("bcmgenet");
      expect(md.dev.coherent).toBe(false);
      const buf = m.memblock.allocTopDown(4096, 4096, 0x2000_0000, "rx");
      const dma = m.api.dmaMapSingleAttrs(md.dev, buf, 32, 2 /* DMA_FROM_DEVICE */);
      const pool = m.swiotlb.defaultMem;
      const bounced = pool !== null && dma >= pool.start && dma < pool.end;
      expect(bounced).toBe(kmallocBounce);
      expect(r.decisions.some((d) => d.startsWith("kmem_cache_init: kmalloc minimum alignment 8"))).toBe(kmallocBounce);
    }
  });
  it("5.13: no kmalloc bouncing", () => {
    const { m } = boot("rpi4-1g", "5.13");
    expect(m.direct.kmallocBounce).toBe(false);
  });
});
