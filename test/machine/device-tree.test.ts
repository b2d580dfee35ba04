// Expectations are written from the kernel's rules (see the comments), not from the output.
import { describe, expect, it } from "vitest";
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError, UsageError } from "../../src/errors.js";
import { dtJson, dtModel, dtModelOf, dtbXenRole, machineFromDtb, readDtb, swiotlbFromBootargs } from "../../src/machine/device-tree.js";
import { parseMachine, resolveMachine } from "../../src/machine/preset.js";
import { buildMachine } from "../../src/machine/builder.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "dt");
const fx = (n: string): string => join(dir, `${n}.dtb`);
const json = (n: string, opts: { mem?: number; kernel?: string } = {}) => dtJson(dtModel(readDtb(fx(n)), opts, fx(n))) as Record<string, unknown> & { devices: Dev[] };
interface Dev {
  path: string;
  name: string;
  dmaRanges: { cpu: string; dma: string; size: string }[];
  busDmaLimit: string;
  coherent: boolean;
  restrictedPool: string | null;
}
const dev = (j: { devices: Dev[] }, path: string): Dev => {
  const d = j.devices.find((x) => x.path === path);
  if (!d) throw new Error(`no device ${path}`);
  return d;
};
const GiB = 2 ** 30;

describe("rpi4: offset dma-ranges (DMA 0xc000_0000 <-> phys 0, 1 GiB)", () => {
  const j = json("rpi4");
  it("memory, reservation block, model", () => {
    expect(j.schema).toBe("dmalab/dt@1");
    expect(j.model).toBe("Raspberry Pi 4 Model B (dmalab)");
    expect(j.compatible).toEqual(["raspberrypi,4-model-b", "brcm,bcm2711"]);
    // root: 2 address cells, 1 size cell: <0x0 0x0 0x3b400000>
    expect(j.banks).toEqual([{ base: "0x0", size: "0x3b400000" }]);
    expect(j.needsMem).toBe(false);
    expect(j.reserved).toEqual([{ name: "memreserve0", base: "0x0", size: "0x1000", noMap: false }]);
    expect(j.xen).toBe(false);
    expect(j.swiotlb).toBeNull();
  });
  it("emmc2: emmc2bus dma-ranges <0x0 0xc0000000  0x0 0x0  0x40000000>; bus_dma_limit = 0xc000_0000 + 1 GiB - 1", () => {
    const d = dev(j, "/emmc2bus/mmc@7e340000");
    // reg <0x0 0x7e340000 0x100> through ranges 0x7e000000 -> 0xfe000000
    expect(d.name).toBe("fe340000.mmc");
    expect(d.dmaRanges).toEqual([{ cpu: "0x0", dma: "0xc0000000", size: "0x40000000" }]);
    expect(d.busDmaLimit).toBe("0xffffffff");
    // no dma-coherent anywhere: arm64 default
    expect(d.coherent).toBe(false);
  });
  it("soc devices: soc's 1-cell child / 2-cell parent dma-ranges; scb's 1:1 window below 0xfc00_0000", () => {
    expect(dev(j, "/soc/dma@7e007000").dmaRanges).toEqual([{ cpu: "0x0", dma: "0xc0000000", size: "0x40000000" }]);
    expect(dev(j, "/soc/dma@7e007000").name).toBe("fe007000.dma");
    const g = dev(j, "/scb/ethernet@7d580000");
    expect(g.name).toBe("fd580000.ethernet");
    expect(g.dmaRanges).toEqual([{ cpu: "0x0", dma: "0x0", size: "0xfc000000" }]);
    expect(g.busDmaLimit).toBe("0xfbffffff");
  });
  it("the DMA engine page is outside RAM and every reg", () => {
    // 0x0a00_0000 is inside RAM [0, 0x3b40_0000): the first free page after it
    expect(j.dmaEngine).toBe("0x3b400000");
  });
  it("builds a MachineDesc equivalent to the rpi4-1g preset's emmc2, and boots", () => {
    const m = machineFromDtb(fx("rpi4"));
    expect(m.name).toBe("rpi4");
    expect(m.ram).toEqual([{ name: "memory0", base: 0, size: 0x3b40_0000 }]);
    expect(m.reserved).toEqual([{ name: "memreserve0", base: 0, size: 0x1000, noMap: false }]);
    const mmc = m.devices.find((d) => d.name === "fe340000.mmc")!;
    expect(mmc).toMatchObject({ driver: "bcm2711-emmc2", dmaMask: 0xffff_ffffn, busDmaLimit: 0xffff_ffffn, coherent: false, buffers: "high" });
    expect(mmc.dmaRanges).toEqual([{ cpuStart: 0, dmaStart: 0xc000_0000, size: GiB }]);
    // dmalab,dma-bits = <40> on genet
    expect(m.devices.find((d) => d.name === "fd580000.ethernet")!.dmaMask).toBe((1n << 40n) - 1n);
    // of_dma_get_max_cpu_address: the smallest last CPU address of any dma-ranges = 1 GiB - 1
    expect(m.dmaZone.dtMaxCpuAddress).toBe(0x3fff_ffffn);
    expect(m.mmio).toEqual([{ name: "dma-engine", base: 0x3b40_0000, size: 0x1000, model: "dma-engine" }]);
    const r = buildMachine({ machine: m, kernel: "6.x", xen: "none" }).report;
    expect(r.outcome).toBe("ok");
    expect(r.zones.zone_dma_bits).toBe(30);
    expect(r.devices.every((d) => d.probed)).toBe(true);
  });
});

describe("nested buses with different cell sizes", () => {
  const j = json("nested-buses");
  it("two memory banks with 2+2 cells", () => {
    expect(j.banks).toEqual([
      { base: "0x40000000", size: "0x40000000" },
      { base: "0x100000000", size: "0x40000000" },
    ]);
  });
  it("a device on /soc: soc's window, CPU side read with the root's 2 cells", () => {
    const d = dev(j, "/soc/dma-controller@1000");
    expect(d.name).toBe("f0001000.dma-controller");
    expect(d.dmaRanges).toEqual([{ cpu: "0x40000000", dma: "0x80000000", size: "0x40000000" }]);
    expect(d.busDmaLimit).toBe("0xbfffffff");
    expect(d.coherent).toBe(true); // dma-coherent on /soc
  });
  it("/soc/inner: its DMA 0 is soc-bus 0x8000_0000, translated through soc's dma-ranges to CPU 0x4000_0000", () => {
    const d = dev(j, "/soc/inner@100000/nic@2000");
    // reg <0 0x2000 0x1000>: inner ranges child 0 -> soc 0x200000 -> CPU 0xf000_0000 + 0x202000
    expect(d.name).toBe("f0202000.nic");
    expect(d.dmaRanges).toEqual([{ cpu: "0x40000000", dma: "0x0", size: "0x20000000" }]);
    expect(d.busDmaLimit).toBe("0x1fffffff");
    expect(d.coherent).toBe(false); // its own dma-noncoherent wins over /soc's dma-coherent
  });
  it("/soc/plain has no dma-ranges: the first bus may lack it, so /soc's map applies", () => {
    const d = dev(j, "/soc/plain@300000/disk@4000");
    expect(d.dmaRanges).toEqual([{ cpu: "0x40000000", dma: "0x80000000", size: "0x40000000" }]);
    expect(d.busDmaLimit).toBe("0xbfffffff");
  });
  it("/apb and /apb/sub have none: no map, no limit", () => {
    expect(dev(j, "/apb/uart@0")).toMatchObject({ name: "9000000.uart", dmaRanges: [], busDmaLimit: "0x0", coherent: false });
    expect(dev(j, "/apb/sub/usb@10000")).toMatchObject({ dmaRanges: [], busDmaLimit: "0x0", coherent: true });
  });
  it("the machine takes the DMA masters (not buses, not the uart without DMA properties), and boots", () => {
    const m = machineFromDtb(fx("nested-buses"));
    expect(m.devices.map((d) => d.name).sort()).toEqual(["9010000.usb", "f0001000.dma-controller", "f0202000.nic", "f0304000.disk"]);
    expect(m.devices.find((d) => d.name === "f0304000.disk")!.dmaMask).toBe((1n << 64n) - 1n);
    // smallest last CPU address: inner's 0x4000_0000 + 512 MiB - 1
    expect(m.dmaZone.dtMaxCpuAddress).toBe(0x5fff_ffffn);
    expect(m.mmio[0]!.base).toBe(0x0a00_0000);
    for (const k of ["6.x", "5.13"]) expect(buildMachine({ machine: m, kernel: k, xen: "none" }).report.outcome).toBe("ok");
  });
});

describe("empty dma-ranges", () => {
  const j = json("empty-dma-ranges");
  it("an empty one is skipped and the window above applies", () => {
    expect(dev(j, "/axi/sub/gpu@10000000")).toMatchObject({ dmaRanges: [{ cpu: "0x40000000", dma: "0x0", size: "0x80000000" }], busDmaLimit: "0x7fffffff" });
  });
  it("an empty one with nothing above (the root has none): no map", () => {
    expect(dev(j, "/plain/nvme@20000000")).toMatchObject({ dmaRanges: [], busDmaLimit: "0x0", coherent: true });
  });
  it("machine", () => {
    const m = machineFromDtb(fx("empty-dma-ranges"), { name: "edr" });
    expect(m.name).toBe("edr");
    expect(m.devices.map((d) => [d.name, d.busDmaLimit])).toEqual([
      ["10000000.gpu", 0x7fff_ffffn],
      ["20000000.nvme", 0n],
    ]);
  });
});

describe("restricted-dma-pool", () => {
  const j = json("restricted-dma");
  it("the pool, its devices, reserved-memory with no-map", () => {
    expect(j.restrictedPools).toEqual([{ name: "restricted-dma-pool@50000000", base: "0x50000000", size: "0x400000", devices: ["/wifi@a000000", "/bt@a100000"] }]);
    expect(j.reserved).toEqual([
      { name: "firmware@4e000000", base: "0x4e000000", size: "0x200000", noMap: true },
      { name: "trace@4f000000", base: "0x4f000000", size: "0x100000", noMap: false },
    ]);
    expect(dev(j, "/wifi@a000000").restrictedPool).toBe("restricted-dma-pool@50000000");
    // memory-region = <&fw_mem &wifi_pool>: the first restricted-dma-pool phandle counts
    expect(dev(j, "/bt@a100000").restrictedPool).toBe("restricted-dma-pool@50000000");
    // iommus: of_iommu_configure succeeds, so no restricted buffer
    expect(dev(j, "/gpu@a200000").restrictedPool).toBeNull();
    // wifi's reg occupies 0x0a00_0000-0x0a00_ffff
    expect(j.dmaEngine).toBe("0xa010000");
  });
  it("6.x: the devices bounce through the pool", () => {
    const m = machineFromDtb(fx("restricted-dma"), { kernel: "6.x" });
    expect(m.devices.map((d) => d.name)).toEqual(["a000000.wifi", "a100000.bt"]);
    expect(m.devices[0]!.restrictedPool).toEqual({ name: "restricted-dma-pool@50000000", base: 0x5000_0000, size: 0x40_0000 });
    const res = buildMachine({ machine: m, kernel: "6.x", xen: "none" });
    expect(res.report.outcome).toBe("ok");
    expect(res.machine.swiotlb.restrictedMems.has("restricted-dma-pool@50000000")).toBe(true);
  });
  it("5.13 had no restricted pools: refused with a clear message", () => {
    expect(() => machineFromDtb(fx("restricted-dma"), { kernel: "5.13" })).toThrow(UsageError);
    expect(() => machineFromDtb(fx("restricted-dma"), { kernel: "5.13" })).toThrow(/kernel 5\.13 has no restricted DMA pools.*--kernel 6\.x/);
  });
});

describe("Xen dom0 tree", () => {
  it("xen,xen makes it a Xen guest; bootargs' swiotlb= feeds the command line", () => {
    const j = json("xen-dom0");
    expect(j.xen).toBe(true);
    expect(j.bootargs).toBe("console=hvc0 earlycon=xen swiotlb=65536,force root=/dev/xvda rw");
    expect(j.swiotlb).toBe("65536,force");
    // /hypervisor and /chosen are not devices
    expect(j.devices.map((d) => d.path)).toEqual(["/pcie@3f000000", "/virtio@a000000"]);
    const m = machineFromDtb(fx("xen-dom0"));
    expect(m.swiotlbCmdline).toBe("65536,force");
    expect(m.xen).toEqual({ version: "4.16" });
    expect(dtModelOf(m)?.xen).toBe(true);
    const role = dtbXenRole(m);
    expect(role.role).toBe("dom0");
    expect(role.note).toMatch(/dom0/);
    expect(dtbXenRole(m, "domU").role).toBe("domU");
    expect(() => dtbXenRole(m, "dom2")).toThrow(UsageError);
    expect(dtbXenRole(machineFromDtb(fx("rpi4"))).role).toBe("none");
    const r = buildMachine({ machine: m, kernel: "6.x", xen: role.role }).report;
    expect(r.outcome).toBe("ok");
    expect(r.swiotlb.cmdline).toBe("65536,force");
  });
  it("swiotlb= extraction: the last one wins, none is null", () => {
    expect(swiotlbFromBootargs("a swiotlb=1024 b swiotlb=force")).toBe("force");
    expect(swiotlbFromBootargs("console=ttyS0")).toBeNull();
  });
});

describe("firmware-filled memory (size 0)", () => {
  it("needsMem; --mem gives the size from the node's base", () => {
    const j = json("firmware-mem");
    expect(j.needsMem).toBe(true);
    expect(j.banks).toEqual([{ base: "0x0", size: "0x0" }]);
    const k = json("firmware-mem", { mem: GiB });
    expect(k.needsMem).toBe(true);
    expect(k.banks).toEqual([{ base: "0x0", size: "0x40000000" }]);
  });
  it("no --mem: a usage error saying so; with --mem a bootable machine", () => {
    expect(() => machineFromDtb(fx("firmware-mem"))).toThrow(/give --mem SIZE/);
    const m = machineFromDtb(fx("firmware-mem"), { mem: 2 * GiB });
    expect(m.ram).toEqual([{ name: "memory0", base: 0, size: 2 * GiB }]);
    expect(buildMachine({ machine: m, kernel: "6.x", xen: "none" }).report.outcome).toBe("ok");
  });
});

describe("resolveMachine and the JSON presets", () => {
  it("a .dtb path, or any file with the FDT magic, becomes a machine", () => {
    expect(resolveMachine(fx("rpi4")).devices.length).toBe(4);
    expect(resolveMachine(fx("firmware-mem"), { mem: GiB }).ram[0]!.size).toBe(GiB);
    const t = mkdtempSync(join(tmpdir(), "dmalab-dt-"));
    copyFileSync(fx("nested-buses"), join(t, "board"));
    expect(resolveMachine(join(t, "board")).name).toBe("board");
    expect(() => resolveMachine(join(t, "missing.dtb"))).toThrow(UsageError);
    expect(() => resolveMachine(fx("truncated"))).toThrow(InputError);
    // presets still resolve
    expect(resolveMachine("rpi4-1g").name).toBe("rpi4-1g");
  });
  it("`dma-ranges` (or a misspelt dmaRanges) in a JSON preset names the right key", () => {
    const raw = (dev: Record<string, unknown>) => ({ name: "t", ram: [{ base: "0x4000_0000", size: "2GiB" }], devices: [{ name: "n", driver: "d", dmaMask: 32, ...dev }] });
    const msg = (r: unknown): string => {
      try {
        parseMachine(r, "t.json");
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as Error).message;
      }
      throw new Error("expected an error");
    };
    expect(msg(raw({ "dma-ranges": [] }))).toContain("devices[0]: unknown field(s) dma-ranges (devices[0].dma-ranges: did you mean devices[0].dmaRanges?)");
    expect(msg(raw({ dma_ranges: [] }))).toContain("did you mean devices[0].dmaRanges?");
    expect(msg(raw({ dmaRange: [] }))).toContain("did you mean devices[0].dmaRanges?");
    expect(msg(raw({ dmaRanges: [{ cpuStart: 0, dma: 0, size: 1 }] }))).toContain("did you mean devices[0].dmaRanges[0].cpu?");
    expect(msg({ name: "t", ram: [{ base: 0, size: "1GiB" }], "dma-ranges": [] })).toContain("did you mean devices[i].dmaRanges?");
  });
});
