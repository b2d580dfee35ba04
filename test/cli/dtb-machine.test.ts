// `--machine board.dtb` wherever a machine is built: run, boot, guest, bench and the library
// take a device tree blob like a preset (issue: real boards from a DTB).

import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildMachine } from "../../src/machine/builder.js";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { cli, root, setUp } from "../helpers/cli.js";

const rpi4 = "fixtures/dt/rpi4.dtb";

beforeAll(() => {
  setUp();
}, 120_000);

describe("--machine FILE.dtb", () => {
  it("the library boots it; emmc2 gets its dma-ranges from the tree", () => {
    const b = buildMachine({ machine: join(root, rpi4) });
    expect(b.report.outcome).toBe("ok");
    const mmc = b.report.devices.find((d) => d.name === "fe340000.mmc");
    expect(mmc?.bus_dma_limit).toBe("0xffffffff");
  });

  it("run, boot and bench take it", () => {
    const r = cli("run", "--machine", rpi4, "--ops", "300", "--json");
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { corruptBytes: number }).corruptBytes).toBe(0);
    expect(cli("boot", "--machine", rpi4).status).toBe(0);
    const k = cli("bench", "--machine", rpi4, "-s", "1", "-b", "64", "--json");
    expect(k.status, k.stderr).toBe(0);
    expect((JSON.parse(k.stdout) as { machine: string }).machine).toBe("rpi4");
  });

  it("a tree whose firmware fills in the memory needs --mem, before any work (exit 2)", () => {
    const r = cli("run", "--machine", "fixtures/dt/firmware-mem.dtb");
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--mem");
  });

  it.skipIf(!unicornAvailable())("guest runs on it, the DMA engine at the address `dt` states", () => {
    const dt = JSON.parse(cli("dt", rpi4, "--json").stdout) as { dmaEngine: string };
    const g = cli("guest", "dma-ring", "--machine", rpi4, "--device", "fe340000.mmc");
    expect(g.status, g.stderr).toBe(0);
    expect(g.stdout).toContain(`DMA engine at ${dt.dmaEngine}`);
  });
});
