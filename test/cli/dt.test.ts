import { beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cli, root, setUp } from "../helpers/cli.js";

const fx = (n: string): string => join("fixtures", "dt", `${n}.dtb`);

beforeAll(() => {
  setUp();
  expect(existsSync(join(root, "dist", "src", "cli", "commands", "dt.js"))).toBe(true);
}, 120_000);

describe("dmalab dt", () => {
  it("--json: the dmalab/dt@1 document, hex strings for addresses and sizes", () => {
    const r = cli("dt", fx("rpi4"), "--json");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown> & { devices: { path: string; dmaRanges: unknown; busDmaLimit: string; coherent: boolean; restrictedPool: unknown }[] };
    expect(Object.keys(j)).toEqual(expect.arrayContaining(["schema", "model", "compatible", "banks", "needsMem", "reserved", "restrictedPools", "devices", "xen", "bootargs", "dmaEngine"]));
    expect(j.schema).toBe("dmalab/dt@1");
    expect(j.banks).toEqual([{ base: "0x0", size: "0x3b400000" }]);
    expect(j.devices.find((d) => d.path === "/emmc2bus/mmc@7e340000")).toMatchObject({
      dmaRanges: [{ cpu: "0x0", dma: "0xc0000000", size: "0x40000000" }],
      busDmaLimit: "0xffffffff",
      coherent: false,
      restrictedPool: null,
    });
    expect(j.bootargs).toBe("coherent_pool=1M 8250.nr_uarts=1 console=ttyS0,115200");
  });

  it("text: a readable summary", () => {
    const r = cli("dt", fx("xen-dom0"));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("memory: [0x40000000-0xbfffffff] 2 GiB");
    expect(r.stdout).toMatch(/xen: yes .*Xen 4\.16/);
    expect(r.stdout).toContain("-> swiotlb=65536,force");
    expect(r.stdout).toMatch(/dma engine: registers at 0x/);
  });

  it("--mem sizes a firmware-filled memory node", () => {
    const r = cli("dt", fx("firmware-mem"), "--mem", "1GiB", "--json");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { needsMem: boolean; banks: unknown };
    expect(j.needsMem).toBe(true);
    expect(j.banks).toEqual([{ base: "0x0", size: "0x40000000" }]);
    expect(JSON.parse(cli("dt", fx("firmware-mem"), "--mem", "0x8000_0000", "--json").stdout).banks).toEqual([{ base: "0x0", size: "0x80000000" }]);
  });

  it("a truncated or corrupt blob: exit 2, one stderr line naming the offset", () => {
    const t = cli("dt", fx("truncated"));
    expect(t.status).toBe(2);
    expect(t.stdout).toBe("");
    expect(t.stderr.trim().split("\n")).toHaveLength(1);
    expect(t.stderr).toMatch(/^dmalab: .*truncated\.dtb: dtb: truncated at offset 0xc8: /);
    const c = cli("dt", fx("corrupt"), "--json");
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/dtb: truncated at offset 0x50: property 'model' value \(0xffffff00 bytes\) runs past the structure block/);
  });

  it("bad arguments: exit 2 before any work", () => {
    for (const args of [
      ["dt", fx("rpi4"), "--mem", "12parsecs"],
      ["dt", fx("rpi4"), "--mem", "0"],
      ["dt", fx("rpi4"), "--kernel", "4.19"],
      ["dt", "no-such-file.dtb"],
      ["dt"],
    ]) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stdout).toBe("");
    }
  });

  it("a restricted pool on 5.13 is refused", () => {
    const r = cli("dt", fx("restricted-dma"), "--kernel", "5.13");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/kernel 5\.13 has no restricted DMA pools/);
    expect(cli("dt", fx("restricted-dma"), "--kernel", "6.x").status).toBe(0);
  });
});
