import { describe, expect, it, vi } from "vitest";
import { Swiotlb } from "../../src/swiotlb/swiotlb.js";
import { ENOMEM } from "../../src/kernel/errno.js";
import { UsageError } from "../../src/errors.js";
import { BusFault } from "../../src/dma/bus.js";
import { buildMachine, type MachineConfig } from "../../src/machine/builder.js";
import { kernelView, lowestRam, type XenBootConfig } from "../../src/machine/xen-boot.js";
import type { BootOptions } from "../../src/machine/boot.js";
import { presetNames, resolveMachine } from "../../src/machine/preset.js";
import { arm64Zones } from "../../src/machine/zones.js";
import { KernelOops } from "../../src/kernel/oops.js";

const boot = (
  machine: string,
  kernel: string,
  role: "none" | "dom0" | "domU",
  cfg: Omit<XenBootConfig, "role"> = {},
  opts: Pick<BootOptions, "swiotlbCmdline" | "strict" | "kmallocBounce"> = {},
) => {
  const c: MachineConfig = { machine, kernel, xen: role };
  if (cfg.features) c.features = cfg.features;
  if (cfg.xenVersion !== undefined) c.xenVersion = cfg.xenVersion;
  if (cfg.contiguousRegion !== undefined) c.contig = cfg.contiguousRegion;
  if (opts.swiotlbCmdline !== undefined) c.swiotlb = opts.swiotlbCmdline;
  if (opts.strict !== undefined) c.strict = opts.strict;
  if (opts.kmallocBounce !== undefined) c.kmallocBounce = opts.kmallocBounce;
  return buildMachine(c);
};

describe("the 2021 arm64 dom0 regression (5.13-rc1) and its fix (5.13)", () => {
  for (const machine of ["rpi4-1g", "qemu-virt-2g"]) {
    it(`${machine}: 5.13-rc1 dom0 faults in xen_swiotlb_dma_supported on the NULL io_tlb_default_mem`, () => {
      const { report: r, xen } = boot(machine, "5.13-rc1", "dom0");
      expect(r.outcome).toBe("fault");
      expect(r.swiotlb.pool).toBeNull();
      expect(r.swiotlb.force).toBe("SWIOTLB_NO_FORCE");
      const f = r.fault!;
      expect(f.function).toBe("xen_swiotlb_dma_supported");
      expect(f.pointer).toBe("io_tlb_default_mem");
      expect(f.address).toBe("0x8");
      // initcall → driver_register → … → really_probe → bus glue → the driver's probe →
      // dma_set_mask → dma_supported → xen_swiotlb_dma_supported
      const chain = f.callChain;
      expect(chain[0]).toBe("ret_from_fork");
      expect(chain).toContain("really_probe");
      expect(chain.indexOf("dma_set_mask")).toBeGreaterThan(chain.findIndex((c) => c.endsWith("_probe") && c !== "really_probe"));
      expect(chain.indexOf("dma_supported")).toBeGreaterThan(chain.indexOf("dma_set_mask"));
      expect(chain.at(-1)).toBe("xen_swiotlb_dma_supported");
      // the decisions that set it up, in boot order
      const nf = f.causes.findIndex((c) => c.startsWith("mem_init:") && c.includes("swiotlb_force = SWIOTLB_NO_FORCE"));
      const late = f.causes.findIndex((c) => c.startsWith("xen_mm_init: xen_swiotlb_init() = 0") && c.includes("late init skipped"));
      expect(nf).toBeGreaterThanOrEqual(0);
      expect(late).toBeGreaterThan(nf);
      // the oops object itself: a FaultError (exit 3) naming the same facts
      const oops = xen!.lastOops!;
      expect(oops).toBeInstanceOf(KernelOops);
      expect(oops.exitCode).toBe(3);
      expect(oops.details.member).toBe("end");
      expect(oops.callChain).toEqual(chain);
      expect(xen!.xenSwiotlbInitRc).toBe(0);
      // the first probe faulted: nothing probed
      expect(r.devices.every((d) => !d.probed)).toBe(true);
    });

    it(`${machine}: 5.13 dom0 keeps swiotlb_force, xen_swiotlb_init makes the pool, every device probes`, () => {
      const { report: r, xen, machine: m } = boot(machine, "5.13", "dom0");
      expect(r.outcome).toBe("ok");
      expect(r.devices.every((d) => d.probed)).toBe(true);
      expect(r.swiotlb.force).toBe("SWIOTLB_NORMAL");
      expect(r.decisions.some((d) => d.includes("but xen_swiotlb_detect()") && d.includes("687842ec"))).toBe(true);
      expect(xen!.xenSwiotlbInitRc).toBe(0);
      const mem = m.swiotlb.defaultMem!;
      expect(xen!.xenSwiotlb!.ownPool!.start).toBe(mem.start);
      // GFP_DMA32: the pool lies in the kernel's RAM below the ZONE_DMA32 end
      expect(m.memory.isRam(mem.start, mem.end - mem.start)).toBe(true);
      expect(BigInt(mem.end)).toBeLessThanOrEqual(m.zones.dma32PhysLimit);
      for (const md of m.devices) expect(md.dev.dmaOps?.name).toBe("xen-swiotlb");
      expect(xen!.hv.check()).toEqual([]);
    });
  }

  it("which boards fault follows from the zone rules: 5.13-rc1 dom0 faults exactly when dom0's RAM fits under arm64_dma_phys_limit", () => {
    for (const machine of presetNames()) {
      const { report: r, xen } = boot(machine, "5.13-rc1", "dom0");
      const z = arm64Zones(kernelView(resolveMachine(machine), xen!.domain, "dom0"));
      expect(r.outcome, machine).toBe(z.ramAboveDmaLimit ? "ok" : "fault");
      expect(r.zones.ram_above_dma_limit).toBe(z.ramAboveDmaLimit);
    }
  });

  it("native boots and domUs that are not direct-mapped never reach swiotlb-xen", () => {
    for (const role of ["none", "domU"] as const) {
      const { report: r, xen } = boot("rpi4-1g", "5.13-rc1", role);
      expect(r.outcome).toBe("ok");
      expect(xen?.xenSwiotlb ?? null).toBeNull();
    }
  });
});

describe("5.12", () => {
  it("dom0 on a board under the DMA limit: NO_FORCE, yet xen_swiotlb_init still creates the pool", () => {
    const { report: r, xen, machine: m } = boot("qemu-virt-2g", "5.12", "dom0");
    expect(r.outcome).toBe("ok");
    expect(r.swiotlb.force).toBe("SWIOTLB_NO_FORCE");
    expect(m.swiotlb.defaultMem).not.toBeNull();
    expect(xen!.xenSwiotlbInitRc).toBe(0);
    expect(r.decisions.some((d) => d.includes("arch_setup_dma_ops: xen_initial_domain()"))).toBe(true);
  });

  it("a domU never uses swiotlb-xen, whatever Xen reports (dom0 only)", () => {
    const { xen } = boot("qemu-virt-8g", "5.12", "domU", { features: ["direct_mapped"], xenVersion: "4.16" });
    expect(xen!.swiotlbDetect()).toBe(false);
    expect(xen!.xenSwiotlb).toBeNull();
  });
});

describe("double initialisation (a pool from mem_init already exists)", () => {
  // rpi4-8g: dom0's 1 GiB goes past the 30-bit ZONE_DMA, so mem_init makes the pool itself
  it("5.13: xen_swiotlb_init says -EEXIST, xen_mm_init tolerates it, the pool stays mem_init's", () => {
    const { report: r, xen, machine: m } = boot("rpi4-8g", "5.13", "dom0");
    expect(r.zones.ram_above_dma_limit).toBe(true);
    expect(xen!.xenSwiotlbInitRc).toBe(-17);
    expect(m.log.lines).toContain("xen:swiotlb_xen: swiotlb buffer already initialized");
    expect(xen!.xenSwiotlb!.ownPool).toBeNull();
    expect(r.outcome).toBe("ok");
    expect(r.devices.every((d) => d.probed)).toBe(true);
  });

  it("5.13-rc1: no check of its own; swiotlb_late_init_with_tbl refuses with a warning and -ENOMEM, which xen_mm_init ignores", () => {
    const { report: r, xen, machine: m } = boot("rpi4-8g", "5.13-rc1", "dom0");
    expect(xen!.xenSwiotlbInitRc).toBe(-12);
    expect(m.log.lines.some((l) => l.startsWith("WARNING") && l.includes("swiotlb_late_init_with_tbl"))).toBe(true);
    expect(xen!.xenSwiotlb!.initAttempts.at(-1)!.lateInitRc).toBe(-12);
    expect(r.outcome).toBe("ok");
  });

  it("5.12: \"already allocated, just use it\": -ENOMEM, nothing allocated, the mem_init pool serves swiotlb-xen", () => {
    const { report: r, xen } = boot("rpi4-8g", "5.12", "dom0");
    expect(xen!.xenSwiotlbInitRc).toBe(-12);
    expect(xen!.xenSwiotlb!.initAttempts).toEqual([]);
    expect(r.outcome).toBe("ok");
  });
});

describe("6.x (v5.19+): no xen_swiotlb_init", () => {
  it("xen_mm_init calls swiotlb_init_late when mem_init made no pool", () => {
    const { report: r, xen, machine: m } = boot("rpi4-1g", "6.x", "dom0", {}, { kmallocBounce: false });
    expect(r.decisions.some((d) => d.startsWith("xen_mm_init: no default pool: swiotlb_init_late(64 MiB) = 0"))).toBe(true);
    expect(m.swiotlb.defaultMem!.nslabs).toBe(32768);
    expect(xen!.xenSwiotlbInitRc).toBeUndefined();
    expect(r.outcome).toBe("ok");
  });
  it("and leaves an existing pool alone", () => {
    const { report: r } = boot("rpi4-1g", "6.x", "dom0");
    expect(r.decisions).toContain("xen_mm_init: the default pool exists: swiotlb_init_late not needed");
    expect(r.outcome).toBe("ok");
  });
});

describe("direct-mapped or not", () => {
  it("a direct-mapped domU uses swiotlb-xen only when Xen reports XENFEAT_direct_mapped (4.16+)", () => {
    expect(boot("qemu-virt-8g", "6.x", "domU", { features: ["direct_mapped"] }).xen!.xenSwiotlb).toBeNull();
    const { report: r, xen } = boot("qemu-virt-8g", "6.x", "domU", { features: ["direct_mapped"], xenVersion: "4.16" });
    expect(xen!.domain.directMapped).toBe(true);
    expect(xen!.xenSwiotlb).not.toBeNull();
    expect(r.outcome).toBe("ok");
  });

  it("5.13, direct-mapped domU: arm's xen_create_contiguous_region refuses non-dom0 (-EINVAL), the fixup and init fail, the probe faults", () => {
    const { report: r, xen, machine: m } = boot("qemu-virt-8g", "5.13", "domU", { features: ["direct_mapped"], xenVersion: "4.16" });
    expect(xen!.xenSwiotlbInitRc).toBe(-22);
    // 4 attempts (3 retries), each with 15 address widths on the first chunk
    expect(xen!.xenSwiotlb!.fixupCalls).toHaveLength(4 * 15);
    expect(m.log.lines.some((l) => l.startsWith("xen:swiotlb_xen: You either") && l.endsWith("(rc:-22)"))).toBe(true);
    expect(r.decisions).toContain("xen_mm_init: error other than -EEXIST: returns it");
    expect(r.outcome).toBe("fault");
    expect(r.fault!.pointer).toBe("io_tlb_default_mem");
  });

  it("a dom0 that is not direct-mapped on Xen 4.16 reports XENFEAT_not_direct_mapped: no swiotlb-xen", () => {
    const { xen } = boot("qemu-virt-8g", "5.13", "dom0", { features: ["not_direct_mapped"], xenVersion: "4.16" });
    expect(xen!.xen.features.submap() & (1 << 16)).not.toBe(0);
    expect(xen!.xenSwiotlb).toBeNull();
  });
});

describe("the domain's memory and devices", () => {
  it("dom0's RAM is the lowest RAM of the machine, 1:1, shared byte for byte with machine memory", () => {
    const desc = resolveMachine("qemu-virt-8g");
    const { xen, machine: m } = boot("qemu-virt-8g", "5.13", "dom0");
    expect(xen!.domain.ram).toEqual(lowestRam(desc, 2 ** 31));
    expect(m.memory.ramStart).toBe(0x4000_0000);
    m.memory.write32(0x5000_0000, 0xfeedf00d);
    expect(xen!.host.read32(0x5000_0000)).toBe(0xfeedf00d);
  });

  it("a domU's devices reach only its RAM, through stage 2; anything else is a bus fault", () => {
    const { xen, machine: m } = boot("qemu-virt-8g", "5.13", "domU");
    const md = m.devices[0]!;
    // guest-physical 0x4000_1000 is the domU's; the device reaches the same bytes the kernel wrote
    m.memory.write32(0x4000_1000, 0x12345678);
    expect(md.bus.read32(0x4000_1000)).toBe(0x12345678);
    const mfn = xen!.domain.p2m.lookupMfn(0x4000_1000 / 4096);
    expect(xen!.host.read32(mfn * 4096)).toBe(0x12345678);
    // a machine frame of dom0 is not mapped in the domU's stage 2
    expect(() => md.bus.read32(0x4000_1000 + m.memory.ramSize)).toThrow(BusFault);
    expect(() => md.bus.write32(0x8000_0000, 1)).toThrow(BusFault);
  });

  it("every hypercall goes through the register-level dispatch", () => {
    const { xen } = boot("rpi4-1g", "5.13", "dom0");
    // XENVER_get_features (xen_version) and the GNTTABOP_cache_flush probe
    expect(xen!.hypercalls.counts.get(17)).toBe(1);
    expect(xen!.hypercalls.counts.get(20)).toBe(1);
    expect(xen!.xenSwiotlb!.hypercallCflush).toBe(true);
  });
});

describe("bad options", () => {
  it("are usage errors naming the value", () => {
    expect(() => boot("rpi4-1g", "5.13", "dom0", { xenVersion: "4.14" })).toThrow(/4\.14/);
    expect(() => boot("rpi4-1g", "5.13", "dom0", { features: ["1to1" as "direct_mapped"] })).toThrow(UsageError);
    expect(() => boot("rpi4-1g", "5.13", "none", { features: ["direct_mapped"] })).toThrow(/--feature needs/);
    expect(() => boot("rpi4-1g", "5.13", "dom0", { contiguousRegion: "x86-pv" })).toThrow(/not_direct_mapped/);
  });
});

describe("dma_get_required_mask under swiotlb-xen", () => {
  // kernel/dma/mapping.c (v5.7 … v6.11): DMA ops without ->get_required_mask answer
  // DMA_BIT_MASK(32); xen_swiotlb_dma_ops has none, so RAM size does not matter
  for (const kernel of ["5.13", "6.x"]) {
    it(`${kernel} dom0 on 16 GiB: every swiotlb-xen device reports 0xffffffff; natively dma-direct derives it from RAM`, () => {
      const { machine: m } = boot("qemu-virt-16g", kernel, "dom0");
      for (const md of m.devices) {
        expect(md.dev.dmaOps?.name).toBe("xen-swiotlb");
        expect(m.api.dmaGetRequiredMask(md.dev)).toBe(0xffff_ffffn);
      }
      const { machine: n } = boot("qemu-virt-16g", kernel, "none");
      for (const md of n.devices) expect(n.api.dmaGetRequiredMask(md.dev)).toBeGreaterThan(0xffff_ffffn);
    });
  }
});

describe("6.x xen_mm_init when swiotlb_init_late fails", () => {
  // arch/arm/xen/mm.c xen_mm_init (v6.11): swiotlb_init_late's negative result is returned
  // at once, before the GNTTABOP_cache_flush probe that sets hypercall_cflush
  it("returns it: no cache-flush probe, hypercall_cflush stays false", () => {
    const spy = vi.spyOn(Swiotlb.prototype, "swiotlbInitLate").mockReturnValue(-ENOMEM);
    try {
      const { report: r, xen } = boot("rpi4-1g", "6.x", "dom0", {}, { kmallocBounce: false });
      expect(spy).toHaveBeenCalledTimes(1);
      expect(r.decisions).toContain("xen_mm_init: swiotlb_init_late failed: returns it, GNTTABOP_cache_flush not probed");
      expect(xen!.hypercalls.counts.get(20) ?? 0).toBe(0); // __HYPERVISOR_grant_table_op
      expect(xen!.xenSwiotlb!.hypercallCflush).toBe(false);
    } finally {
      spy.mockRestore();
    }
    // and when it succeeds the probe runs
    const { xen } = boot("rpi4-1g", "6.x", "dom0", {}, { kmallocBounce: false });
    expect(xen!.hypercalls.counts.get(20)).toBe(1);
  });
});

describe("the arm64 oops of the 2021 regression, as the kernel log prints it", () => {
  // arch/arm64/mm/fault.c (mem_abort_decode, data_abort_decode, show_pte), traps.c die(),
  // process.c __show_regs (two registers a line in the 5.12/5.13 era), as in the arm64 oops
  // osstest reported for this regression (xen-devel, May 2021)
  it("rpi4-1g 5.13-rc1 dom0: header, decoded ESR, registers, the trace through the real probe, the init panic", () => {
    const { report: r } = boot("rpi4-1g", "5.13-rc1", "dom0");
    const o = r.fault!.oops!;
    expect(o.slice(0, 20)).toEqual([
      "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
      "Mem abort info:",
      "  ESR = 0x96000004",
      "  EC = 0x25: DABT (current EL), IL = 32 bits",
      "  SET = 0, FnV = 0",
      "  EA = 0, S1PTW = 0",
      "Data abort info:",
      "  ISV = 0, ISS = 0x00000004",
      "  CM = 0, WnR = 0",
      "[0000000000000008] user address but active_mm is swapper",
      "Internal error: Oops: 96000004 [#1] PREEMPT SMP",
      "Modules linked in:",
      "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 5.13.0-rc1 #1",
      "Hardware name: Raspberry Pi 4 Model B (DT)",
      "pstate: 60000005 (nZCv daif -PAN -UAO -TCO BTYPE=--)",
      "pc : xen_swiotlb_dma_supported+0x30/0xc8",
      "lr : dma_supported+0x38/0x68",
      expect.stringMatching(/^sp : ffff8000[0-9a-f]{8}$/),
      expect.stringMatching(/^x29: ffff8000[0-9a-f]{8} x28: [0-9a-f]{16}$/),
      expect.stringMatching(/^x27: [0-9a-f]{16} x26: [0-9a-f]{16}$/),
    ]);
    // x0 … x29 in pairs, x%-2d; the mask dma_supported was asked about in x20/x21, NULL in x1
    const regs = o.filter((l) => /^x\d/.test(l));
    expect(regs).toHaveLength(15);
    expect(regs.at(-1)).toMatch(/^x1 : 0000000000000000 x0 : ffff[0-9a-f]{12}$/);
    expect(regs).toContain("x21: 00000000ffffffff x20: 00000000ffffffff");
    const trace = o.slice(o.indexOf("Call trace:") + 1, o.findIndex((l) => l.startsWith("---[ end trace ")));
    expect(trace.slice(0, 5)).toEqual([
      " xen_swiotlb_dma_supported+0x30/0xc8",
      " dma_supported+0x38/0x68",
      " dma_set_mask+0x30/0x58",
      expect.stringMatching(/^ sdhci_iproc_probe\+0x[0-9a-f]+\/0x[0-9a-f]+$/),
      " platform_probe+0x6c/0x108",
    ]);
    // every frame a C identifier with an offset inside its function; no inline frame
    for (const t of trace) {
      const m = /^ ([A-Za-z_][A-Za-z0-9_]*)\+0x([0-9a-f]+)\/0x([0-9a-f]+)$/.exec(t)!;
      expect(m).not.toBeNull();
      expect(parseInt(m[2]!, 16)).toBeLessThan(parseInt(m[3]!, 16));
    }
    expect(trace.join()).not.toContain("dma_set_mask_and_coherent");
    expect(trace.at(-1)).toBe(" ret_from_fork+0x10/0x18");
    expect(o.at(-3)).toBe("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b");
    expect(o.at(-1)).toBe("---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b ]---");
    // printed once: the boot report's fault lines do not repeat it
    expect(r.fault!.lines.join("\n")).not.toContain("Call trace");
  });
  it("a PCI driver: its real probe function under local_pci_probe / pci_device_probe", () => {
    const { report: r } = boot("qemu-virt-2g", "5.13-rc1", "dom0");
    const o = r.fault!.oops!;
    expect(o).toContain("Hardware name: linux,dummy-virt (DT)");
    const i = o.findIndex((l) => l.startsWith(" rtl8139_init_one+"));
    expect(i).toBeGreaterThan(0);
    expect(o[i + 1]).toMatch(/^ local_pci_probe\+/);
    expect(o[i + 2]).toMatch(/^ pci_device_probe\+/);
    expect(o.some((l) => l.startsWith(" rtl8139_init_module+"))).toBe(true);
    expect(o.join("\n")).not.toContain("8139too_probe");
  });
});
