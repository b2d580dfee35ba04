import { beforeAll, describe, expect, it } from "vitest";
import { cli, setUp } from "../helpers/cli.js";
import { runGuest } from "../../src/cli/commands/guest.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { machineSpec, type MachineConfig } from "../../src/machine/builder.js";
import { image, mov64, movz, svc } from "./asm.js";

const run = (program: string, c: MachineConfig, extra: { device?: string; image?: Uint8Array } = {}) =>
  runGuest({ program, spec: machineSpec(c), maxInsns: 100_000_000, json: true, ...extra });

const services = (r: ReturnType<typeof run>, op: string) => r.result.log.filter((l) => l.kind === "service" && l.op === op);

describe.skipIf(!unicornAvailable())("guest program coherent: dma_alloc_coherent for a 32-bit device, CPU fill, engine copy, CPU check", () => {
  it.each<[string, MachineConfig]>([
    ["native, 2 GiB board", { machine: "qemu-virt-2g" }],
    ["native, 16 GiB board", { machine: "qemu-virt-16g" }],
    ["native, offset dma-ranges (rpi4, DMA = phys + 0xc0000000)", { machine: "rpi4-8g" }],
    ["native, 5.13", { machine: "qemu-virt-16g", kernel: "5.13" }],
    ["dom0 5.13", { machine: "qemu-virt-2g", xen: "dom0", kernel: "5.13" }],
    ["dom0 6.x", { machine: "qemu-virt-16g", xen: "dom0", kernel: "6.x" }],
    ["domU not direct-mapped (stage 2)", { machine: "qemu-virt-2g", xen: "domU", kernel: "6.x" }],
  ])("%s", (_label, c) => {
    const r = run("coherent", c);
    expect(r.result.console).toContain("coherent: all bytes verified");
    expect(r.result.exit).toEqual({ kind: "exit", code: 0, service: "exit" });
    const allocs = services(r, "dma_alloc_coherent");
    expect(allocs).toHaveLength(8);
    for (const a of allocs) expect(a.ret > 0n && a.ret < 2n ** 32n).toBe(true);
    expect(services(r, "dma_free_coherent").every((f) => f.ret === 0n)).toBe(true);
  });

  it("offset dma-ranges: the DMA address is phys + 0xc0000000 (x1 holds phys)", () => {
    const r = run("coherent", { machine: "rpi4-8g" });
    const frees = services(r, "dma_free_coherent");
    for (const f of frees) expect(f.args[3]! - f.args[2]!).toBe(0xc000_0000n);
  });

  it("x86-PV exchange (5.13 dom0, 16 GiB): XENMEM_exchange in the hypercall log, data intact, frames given back on free", () => {
    const r = run("coherent-2m", { machine: "qemu-virt-16g", xen: "dom0", kernel: "5.13", features: ["not_direct_mapped"], contig: "x86-pv" });
    expect(r.result.console).toContain("coherent: all bytes verified");
    expect(r.result.exit).toEqual({ kind: "exit", code: 0, service: "exit" });
    const ex = r.result.log.filter((l) => l.kind === "hypercall" && l.op === "memory_op");
    // two creates (512 frames in each), then two destroys (one extent in each)
    expect(ex.map((e) => [e.args[0], e.args[2], e.ret])).toEqual([
      [11n, 512n, 0n],
      [11n, 512n, 0n],
      [11n, 1n, 0n],
      [11n, 1n, 0n],
    ]);
  });

  it("x86-PV mode with RAM below 4 GiB (6.x dom0, 2 GiB): no exchange needed, data intact", () => {
    const r = run("coherent", { machine: "qemu-virt-2g", xen: "dom0", kernel: "6.x", features: ["not_direct_mapped"], contig: "x86-pv" });
    expect(r.result.exit).toEqual({ kind: "exit", code: 0, service: "exit" });
    expect(r.result.log.filter((l) => l.kind === "hypercall" && l.op === "memory_op")).toEqual([]);
  });

  it("bad arguments: no device -ENODEV, size 0 -EINVAL, a free of nothing -EINVAL", () => {
    const prog = image([
      ...mov64(0, 99), ...mov64(1, 4096), movz(8, 0x1004), svc(0), ...mov64(19, 0), 0xaa0003f3, // mov x19, x0
      ...mov64(0, 0), ...mov64(1, 0), movz(8, 0x1004), svc(0), 0xaa0003f4, // mov x20, x0
      ...mov64(0, 0), ...mov64(1, 4096), ...mov64(2, 0x4000_0000), ...mov64(3, 0x4000_0000), movz(8, 0x1005), svc(0), 0xaa0003f5, // mov x21, x0
      ...mov64(0, 0), movz(8, 93), svc(0),
    ]);
    const r = run("inline", { machine: "qemu-virt-2g" }, { image: prog });
    const x = (n: number) => BigInt.asIntN(64, r.result.regs.x[n]!);
    expect([x(19), x(20), x(21)]).toEqual([-19n, -22n, -22n]);
  });
});

describe.skipIf(!unicornAvailable())("dmalab guest coherent (CLI)", () => {
  beforeAll(setUp);
  it("--contig x86-pv with a not-direct-mapped dom0: exit 0; --contig without --xen: exit 2, one line", () => {
    const ok = cli("guest", "coherent", "--machine", "qemu-virt-2g", "--xen", "dom0", "--feature", "not_direct_mapped", "--contig", "x86-pv", "--json");
    expect(ok.status).toBe(0);
    const doc = JSON.parse(ok.stdout) as { console: string };
    expect(doc.console).toContain("coherent: all bytes verified");
    const bad = cli("guest", "coherent", "--contig", "x86-pv");
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
  });
});
