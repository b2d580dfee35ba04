import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runGuest, type GuestArgs } from "../../src/cli/commands/guest.js";
import { buildGuestContext } from "../../src/cpu/guest-context.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { CMD_COPY, ERR_DST_FAULT, REG_CTRL, REG_DST, REG_ERROR, REG_LEN, REG_SRC, REG_STATUS, STATUS_DONE, STATUS_ERROR } from "../../src/dma/engine.js";
import { FaultError, UsageError } from "../../src/errors.js";
import { machineSpec, type MachineConfig } from "../../src/machine/builder.js";
import type { RunResult } from "../../src/cpu/arm64-cpu.js";

const ENOSYS = -38n;
const EINVAL = -22n;
const EFAULT = -14n;
const EPERM = -1n;

type Role = { xen: "none" | "dom0" | "domU"; features?: ("direct_mapped" | "not_direct_mapped")[]; xenVersion?: string; label: string };
const ROLES: Role[] = [
  { xen: "none", label: "bare metal" },
  { xen: "dom0", label: "dom0" },
  { xen: "domU", features: ["direct_mapped"], xenVersion: "4.16", label: "direct-mapped domU (Xen 4.16)" },
  { xen: "domU", label: "domU, not direct-mapped" },
];

type Extra = Partial<Pick<GuestArgs, "load" | "device">> & { machine?: string; kernel?: string };
const run = (program: string, r: Role, extra: Extra = {}): ReturnType<typeof runGuest> => {
  const { machine = "qemu-virt-2g", kernel, ...rest } = extra;
  const c: MachineConfig = { machine, xen: r.xen };
  if (kernel !== undefined) c.kernel = kernel;
  if (r.features) c.features = r.features;
  if (r.xenVersion) c.xenVersion = r.xenVersion;
  return runGuest({ program, spec: machineSpec(c), maxInsns: 10_000_000, json: true, logCalls: 10_000, ...rest });
};

const x = (res: RunResult, n: number): bigint => BigInt.asIntN(64, res.regs.x[n]!);

/** Every dma_map of dma-ring succeeded and the program verified every byte. */
function expectRingOk(r: ReturnType<typeof runGuest>): bigint[] {
  expect(r.result.exit).toEqual({ kind: "exit", code: 0, service: "exit" });
  expect(r.status).toBe(0);
  expect(r.result.console).toContain("dma-ring: all bytes verified");
  const maps = r.result.log.filter((l) => l.op === "dma_map");
  expect(maps).toHaveLength(2 * 8 * 4);
  expect(maps.every((l) => l.ret !== -1n)).toBe(true);
  return maps.map((l) => l.ret);
}

const inPool = (r: ReturnType<typeof runGuest>, dma: bigint): boolean => {
  const p = r.info.pool!;
  const phys = r.info.device.dmaToPhys(Number(dma));
  return phys >= p.start && phys < p.end;
};

// a qemu-virt-8g variant whose 3 GiB domU cannot fit below 4 GiB: its second bank is above the
// 32-bit NIC's reach, so a direct-mapped domU's buffers there must bounce
const tmp = mkdtempSync(join(tmpdir(), "dmalab-guest-"));
const bigDomU = join(tmp, "qemu-virt-8g-bigdomu.json");
const base8g = JSON.parse(readFileSync(join(__dirname, "..", "..", "fixtures", "machines", "qemu-virt-8g.json"), "utf8")) as { name: string; xen: Record<string, string> };
writeFileSync(bigDomU, JSON.stringify({ ...base8g, name: "qemu-virt-8g-bigdomu", xen: { ...base8g.xen, domUMem: "3GiB" } }));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!unicornAvailable())("dma-ring on the Xen boot of `dmalab boot`", () => {
  it.each(ROLES)("no bouncing needed (qemu-virt-2g, NIC): $label", (role) => {
    const r = run("dma-ring", role);
    const dmas = expectRingOk(r);
    const tx = r.result.log.find((l) => l.op === "dma_map")!;
    if (role.xen === "none") expect(r.info.dmaOps).toBe("dma-direct");
    else if (role.xen === "dom0" || role.features?.includes("direct_mapped")) expect(r.info.dmaOps).toBe("xen_swiotlb_dma_ops");
    else expect(r.info.dmaOps).toBe("dma-direct");
    // nothing bounced: the bus address is the buffer's own (machine == guest-physical here,
    // or guest-physical behind the stage-2 table of a translated domU)
    expect(tx.ret).toBe(tx.args[1]);
    expect(dmas.some((d) => inPool(r, d))).toBe(false);
    const d = r.info.domain;
    if (d && !d.directMapped) {
      // the device saw a guest-physical address, which the P2M puts elsewhere in machine RAM
      expect(d.p2m.lookupMfn(Number(tx.ret) / 4096) * 4096).not.toBe(Number(tx.ret));
    }
    if (r.info.hypervisor) expect(r.info.hypervisor.check()).toEqual([]);
  });

  it.each([
    ["bare metal", { xen: "none", label: "" } satisfies Role, "dma-direct"],
    ["dom0", { xen: "dom0", label: "" } satisfies Role, "xen_swiotlb_dma_ops"],
  ] as const)("rpi4-8g, buffers above emmc2's 1 GiB window, %s: bounced through the pool", (_l, role, ops) => {
    const r = run("dma-ring", role, { machine: "rpi4-8g", load: 0x4008_0000 });
    const dmas = expectRingOk(r);
    expect(r.info.dmaOps).toBe(ops);
    expect(r.info.device.name).toContain("fe340000.mmc");
    // every mapping is a slot of the default pool (below 1 GiB), seen through dma-ranges
    expect(dmas.every((d) => inPool(r, d))).toBe(true);
    expect(dmas.every((d) => d >= 0xc000_0000n && d < 0x1_0000_0000n)).toBe(true);
    if (role.xen === "dom0") {
      // dom0 is direct-mapped: the pool's bus address is its machine address from the P2M
      const phys = r.info.device.dmaToPhys(Number(dmas[0]!));
      expect(r.info.domain!.p2m.lookupMfn(Math.floor(phys / 4096))).toBe(Math.floor(phys / 4096));
    }
  });

  it("direct-mapped domU (Xen 4.16) whose buffers are above the NIC's 32 bits: bounced through swiotlb-xen", () => {
    const r = run("dma-ring", ROLES[2]!, { machine: bigDomU, load: 0x1_c008_0000, device: "8139too" });
    const dmas = expectRingOk(r);
    expect(r.info.dmaOps).toBe("xen_swiotlb_dma_ops");
    expect(r.info.domain!.directMapped).toBe(true);
    expect(dmas.every((d) => inPool(r, d) && d < 0x1_0000_0000n)).toBe(true);
  });

  it("direct-mapped domU (Xen 4.16) on rpi4-1g, emmc2: swiotlb-xen without bouncing (bus = machine address + dma-ranges offset)", () => {
    const r = run("dma-ring", ROLES[2]!, { machine: "rpi4-1g" });
    const dmas = expectRingOk(r);
    expect(r.info.dmaOps).toBe("xen_swiotlb_dma_ops");
    const tx = r.result.log.find((l) => l.op === "dma_map")!;
    expect(tx.ret).toBe(tx.args[1]! + 0xc000_0000n);
    expect(dmas.some((d) => inPool(r, d))).toBe(false);
  });

  it("rpi4-8g direct-mapped domU: emmc2 cannot reach the domain's swiotlb-xen pool, its probe failed: --device 0 is refused", () => {
    expect(() => run("dma-ring", ROLES[2]!, { machine: "rpi4-8g", device: 0 })).toThrow(UsageError);
  });

  it("the 2021 regression: 5.13-rc1 dom0 on rpi4-1g faults at boot, before any guest code", () => {
    expect(() => run("dma-ring", { xen: "dom0", label: "" }, { machine: "rpi4-1g", kernel: "5.13-rc1" })).toThrow(FaultError);
    expect(() => run("dma-ring", { xen: "dom0", label: "" }, { machine: "rpi4-1g", kernel: "5.13-rc1" })).toThrow(/boot of rpi4-1g \(kernel 5.13-rc1, xen dom0\) faulted: .*io_tlb_default_mem/);
    // the fixed kernel boots and runs
    expectRingOk(run("dma-ring", { xen: "dom0", label: "" }, { machine: "rpi4-1g", kernel: "5.13" }));
  });
});

describe.skipIf(!unicornAvailable())("the engine behind a translated domU's stage-2 table", () => {
  it("a DMA to a frame the domain does not own is a bus fault; nothing is written", () => {
    const ctx = buildGuestContext({ machine: "qemu-virt-2g", xen: "domU" });
    try {
      const e = ctx.engine;
      const d = ctx.domain!;
      const src = ctx.ramBase + 0x20_0000;
      // an IPA below the guest's RAM: no stage-2 entry (it is machine RAM of dom0)
      const foreign = 0x4000_0000 - 0x10_0000;
      expect(d.p2m.lookup(foreign / 4096)).toBeUndefined();
      const dom0 = ctx.hypervisor!.dom0!;
      const before = ctx.xen!.host.read(dom0.p2m.lookupMfn(foreign / 4096) >= 0 ? foreign : ctx.xen!.host.ramStart, 64);
      e.write(REG_SRC, 8, BigInt(src));
      e.write(REG_DST, 8, BigInt(foreign));
      e.write(REG_LEN, 4, 64n);
      e.write(REG_CTRL, 4, BigInt(CMD_COPY));
      expect(Number(e.read(REG_STATUS, 4))).toBe(STATUS_ERROR);
      expect(Number(e.read(REG_ERROR, 4))).toBe(ERR_DST_FAULT);
      expect(ctx.xen!.host.read(dom0.p2m.lookupMfn(foreign / 4096) >= 0 ? foreign : ctx.xen!.host.ramStart, 64)).toEqual(before);
      // the same copy into the domain's own RAM works
      e.write(REG_DST, 8, BigInt(ctx.ramBase + 0x30_0000));
      e.write(REG_CTRL, 4, BigInt(CMD_COPY));
      expect(Number(e.read(REG_STATUS, 4))).toBe(STATUS_DONE);
    } finally {
      ctx.cpu.close();
    }
  });
});

// Hypercalls from guest code: the registers must hold what Xen returns to that domain.
describe.skipIf(!unicornAvailable())("hypercall results in registers", () => {
  const xenRoles = ROLES.filter((r) => r.xen !== "none");

  it.each(xenRoles)("xen-errors as $label: Xen's documented error codes", (role) => {
    const r = run("xen-errors", role);
    expect(r.result.exit).toEqual({ kind: "brk", imm: 0 });
    expect(r.status).toBe(0);
    const res = r.result;
    expect(x(res, 19)).toBe(EPERM); // exchange: extent order above max_order
    expect(x(res, 20)).toBe(EFAULT); // exchange: struct not in guest RAM
    expect(x(res, 21)).toBe(1n); // decrease_reservation: the first extent, then a GFN with no frame stops it
    expect(x(res, 22)).toBe(ENOSYS); // hypercall 99
    expect(x(res, 23)).toBe(EINVAL); // get_features submap_idx 1
    expect(res.regs.x[24]).toBe(0x5a5a_5a5an); // ... and nothing written
    expect(x(res, 25)).toBe(EFAULT);
    expect(x(res, 26)).toBe(5n); // populate_physmap start_extent 5 >= nr_extents 3 → start_extent
    expect(x(res, 27)).toBe(EINVAL); // exchange with a start_extent
    expect(x(res, 28)).toBe(4096n); // XENVER_pagesize
    // the log carries the same signed results
    expect(res.log.filter((l) => l.kind === "hypercall").map((l) => l.ret)).toEqual([EPERM, EFAULT, 1n, ENOSYS, EINVAL, EFAULT, 5n, EINVAL, 4096n]);
    expect(r.info.hypervisor!.check()).toEqual([]);
  });

  it.each([xenRoles[0]!, xenRoles[2]!])("xen-memop as $label: reservation counts and memory_op errors", (role) => {
    const r = run("xen-memop", role);
    expect(r.result.exit).toEqual({ kind: "brk", imm: 0 });
    const res = r.result;
    expect([19, 20, 21, 22, 23, 24, 25, 26].map((n) => x(res, n))).toEqual([1n, 0n, 1n, 0n, 0n, ENOSYS, EINVAL, 0n]);
    const hv = r.info.hypervisor!;
    expect(hv.check()).toEqual([]);
    // the frame is back in the P2M after populate_physmap
    const gfn = Math.floor((Number(res.regs.x[9]!) + 0x10_0000) / 4096);
    expect(r.info.domain!.p2m.lookupMfn(gfn)).toBeGreaterThanOrEqual(0);
  });

  it.each([
    ["4.15", 0x4_000fn],
    ["4.16", 0x4_0010n],
  ] as const)("xen-regs on Xen %s: x0 = version, every other register as the guest left it", (v, want) => {
    const r = run("xen-regs", { xen: "dom0", xenVersion: v, label: "" });
    const res = r.result;
    expect(res.regs.x[0]).toBe(want);
    for (let n = 1; n <= 30; n++) expect(res.regs.x[n]).toBe(n === 16 ? 17n : BigInt(0x1100 + n));
    expect(res.regs.pc).toBe(BigInt(r.info.load + 0x80));
  });

  it("bare metal: the first HVC of xen-probe is an undefined-instruction fault (status 3)", () => {
    const r = run("xen-probe", ROLES[0]!);
    expect(r.result.exit.kind).toBe("fault");
    expect(r.status).toBe(3);
  });

  it("xen-probe as a translated domU: features without XENFEAT_dom0, exchange -EOPNOTSUPP (arm)", () => {
    const r = run("xen-probe", ROLES[3]!);
    expect(r.result.exit).toEqual({ kind: "brk", imm: 0 });
    expect(r.result.regs.x[19]).toBe(0x4_000fn);
    expect(x(r.result, 20)).toBe(0n);
    expect(r.result.regs.x[21]! & (1n << 11n)).toBe(0n); // XENFEAT_dom0
    expect(x(r.result, 22)).toBe(-95n);
  });
});
