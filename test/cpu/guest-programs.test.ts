import { describe, expect, it } from "vitest";
import { runGuest, guestJson } from "../../src/cli/commands/guest.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";

// The shipped binaries, end to end, on boards where the device needs bouncing (rpi4: emmc2
// reaches only the first GiB through dma-ranges) and where it does not, bare metal, as Xen
// dom0 and as a domU that is not direct-mapped.
describe.skipIf(!unicornAvailable())("guest programs", () => {
  const cases: [string, "none" | "dom0" | "domU"][] = [];
  for (const m of ["qemu-virt-2g", "qemu-virt-16g", "rpi4-1g", "rpi4-8g"]) for (const x of ["none", "dom0", "domU"] as const) cases.push([m, x]);

  it.each(cases)("dma-ring on %s, --xen %s: exit(0), every byte verified", (machine, xen) => {
    const r = runGuest({ program: "dma-ring", machine, xen, maxInsns: 10_000_000, json: true });
    expect(r.result.exit).toEqual({ kind: "exit", code: 0, service: "exit" });
    expect(r.status).toBe(0);
    expect(r.result.console).toContain("all bytes verified");
    const maps = r.result.log.filter((l) => l.op === "dma_map");
    expect(maps).toHaveLength(2 * 8 * 4);
    expect(maps.every((l) => l.ret !== -1n)).toBe(true);
  });

  it("dma-ring bounces through swiotlb on rpi4-8g dom0 (buffers above the 1 GiB window)", () => {
    const r = runGuest({ program: "dma-ring", machine: "rpi4-8g", xen: "dom0", maxInsns: 10_000_000, json: true });
    const m = r.result.log.find((l) => l.op === "dma_map")!;
    // emmc2's dma-ranges put CPU 0 at bus 0xc000_0000: a direct mapping would be phys + 3 GiB
    expect(m.ret).not.toBe(m.args[1]! + 0xc000_0000n);
    expect(r.result.exit.kind).toBe("exit");
  });

  it.each(["dom0", "domU"] as const)("xen-probe as %s reports what the stub Xen returns", (xen) => {
    const r = runGuest({ program: "xen-probe", machine: "qemu-virt-2g", xen, maxInsns: 1_000_000, json: true });
    expect(r.result.exit).toEqual({ kind: "brk", imm: 0 });
    const hc = r.result.log.filter((l) => l.kind === "hypercall");
    expect(hc.map((l) => l.op)).toEqual(["xen_version", "xen_version", "memory_op"]);
    expect(r.result.regs.x[19]).toBe(hc[0]!.ret);
    expect(r.result.regs.x[22]).toBe(BigInt.asUintN(64, hc[2]!.ret));
    expect(r.result.console).toMatch(/^xen-probe\nxen_version=0x[0-9a-f]{16}\n/);
    const j = JSON.parse(guestJson(r.result)) as { regs: Record<string, string>; hypercalls: { op: string; ret: number }[] };
    expect(j.regs.x19).toBe("0x" + r.result.regs.x[19]!.toString(16));
    expect(j.hypercalls.find((h) => h.op === "memory_op")!.ret).toBe(Number(hc[2]!.ret));
  });

  it("bare metal: xen-probe's first HVC is an undefined-instruction fault (exit status 3)", () => {
    const r = runGuest({ program: "xen-probe", machine: "qemu-virt-2g", xen: "none", maxInsns: 1_000_000, json: true });
    expect(r.result.exit.kind).toBe("fault");
    expect(r.status).toBe(3);
  });

  it("an instruction limit ends the run with status 4", () => {
    const r = runGuest({ program: "dma-ring", machine: "qemu-virt-2g", xen: "none", maxInsns: 5000, json: true });
    expect(r.result.exit).toEqual({ kind: "limit", limit: "insns" });
    expect(r.result.insns).toBe(5000);
    expect(r.status).toBe(4);
  });
});
