import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError, UsageError } from "../../src/errors.js";
import { parseMachine, presetNames, resolveMachine, totalRam } from "../../src/machine/preset.js";
import { parseMask, parseUnsigned } from "../../src/machine/units.js";

const base = () => ({
  name: "t",
  ram: [{ base: "0x4000_0000", size: "2GiB" }],
  devices: [{ name: "nic", driver: "8139too", dmaMask: 32 }],
});

function err(raw: unknown): InputError {
  try {
    parseMachine(raw, "t.json");
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error("expected an InputError");
}

describe("number formats", () => {
  it("hex with underscores, decimal, units", () => {
    expect(parseUnsigned("0x4000_0000")).toEqual({ ok: true, value: 0x4000_0000n });
    expect(parseUnsigned("8GiB")).toEqual({ ok: true, value: 8n << 30n });
    expect(parseUnsigned("512M")).toEqual({ ok: true, value: 512n << 20n });
    expect(parseUnsigned(4096)).toEqual({ ok: true, value: 4096n });
    expect(parseUnsigned("12 parsecs").ok).toBe(false);
    expect(parseUnsigned(-1).ok).toBe(false);
    expect(parseMask(64)).toEqual({ ok: true, value: 0xffff_ffff_ffff_ffffn });
    expect(parseMask(30)).toEqual({ ok: true, value: 0x3fff_ffffn });
    expect(parseMask(65).ok).toBe(false);
    expect(parseMask("0x1_0000_0000_0000_0000").ok).toBe(false);
  });
});

describe("presets", () => {
  it("every preset in fixtures/machines validates", () => {
    const names = presetNames();
    for (const n of ["qemu-virt-2g", "qemu-virt-8g", "qemu-virt-16g", "rpi4-1g", "rpi4-8g", "server-64g"]) expect(names).toContain(n);
    for (const n of names) {
      const m = resolveMachine(n);
      expect(m.name).toBe(n);
      expect(m.devices.length).toBeGreaterThan(0);
    }
  });
  it("sizes come out right", () => {
    expect(totalRam(resolveMachine("qemu-virt-8g"))).toBe(8 * 2 ** 30);
    expect(totalRam(resolveMachine("qemu-virt-16g"))).toBe(16 * 2 ** 30);
    const rpi = resolveMachine("rpi4-8g");
    expect(rpi.ram.map((b) => b.base)).toEqual([0, 0x4000_0000, 0x1_0000_0000]);
    // dma-ranges: bus limit derived from the last DMA address of the window
    const emmc = rpi.devices.find((d) => d.driver === "sdhci-iproc")!;
    expect(emmc.busDmaLimit).toBe(0xffff_ffffn);
    expect(emmc.dmaRanges).toEqual([{ cpuStart: 0, dmaStart: 0xc000_0000, size: 0x4000_0000 }]);
    const nvme = resolveMachine("qemu-virt-8g").devices.find((d) => d.driver === "nvme")!;
    expect(nvme.minAlignMask).toBe(0xfff);
    expect(nvme.dmaMask).toBe(0xffff_ffff_ffff_ffffn);
    expect(nvme.coherentMask).toBe(nvme.dmaMask);
  });
  it("--machine takes a JSON file path too", () => {
    const dir = mkdtempSync(join(tmpdir(), "dmalab-preset-"));
    const f = join(dir, "board.json");
    writeFileSync(f, JSON.stringify(base()));
    expect(resolveMachine(f).name).toBe("t");
    writeFileSync(f, "{ not json");
    expect(() => resolveMachine(f)).toThrow(/board\.json: not valid JSON/);
  });
  it("an unknown preset name is a usage error listing the presets", () => {
    expect(() => resolveMachine("no-such-board")).toThrow(UsageError);
    expect(() => resolveMachine("no-such-board")).toThrow(/unknown machine 'no-such-board'.*qemu-virt-8g/);
  });
});

describe("validation errors name field, value and reason", () => {
  it("bad field type", () => {
    const e = err({ ...base(), cpus: "four" });
    expect(e.message).toMatch(/^t\.json: cpus: value "four"/);
  });
  it("unknown field", () => {
    const e = err({ ...base(), ramm: [] });
    expect(e.message).toMatch(/unknown field\(s\) ramm/);
  });
  it("bad number value", () => {
    const e = err({ ...base(), ram: [{ base: "0x4000_zzzz", size: "2GiB" }] });
    expect(e.message).toMatch(/ram\[0\]\.base: value "0x4000_zzzz" is not a number/);
  });
  it("bad unit", () => {
    const e = err({ ...base(), ram: [{ base: 0, size: "2XB" }] });
    expect(e.message).toMatch(/ram\[0\]\.size: value "2XB" has an unknown unit 'XB'/);
  });
  it("bad mask", () => {
    const e = err({ ...base(), devices: [{ name: "n", driver: "d", dmaMask: 65 }] });
    expect(e.message).toMatch(/devices\[0\]\.dmaMask: value 65 as a bit count must be an integer 0\.\.64/);
  });
  it("missing required field", () => {
    const e = err({ ...base(), devices: [{ name: "n", dmaMask: 32 }] });
    expect(e.message).toMatch(/devices\[0\]\.driver: value \(missing\)/);
  });
  it("overlapping banks", () => {
    const e = err({ ...base(), ram: [{ base: "0x4000_0000", size: "2GiB" }, { base: "0x8000_0000", size: "1GiB" }] });
    expect(e.message).toMatch(/ram\[1\]: value "0x80000000\+0x40000000" overlaps RAM bank bank0 \[0x40000000-0xbfffffff\]/);
  });
  it("unaligned bank base", () => {
    const e = err({ ...base(), ram: [{ base: "0x4000_1000", size: "2GiB" }] });
    expect(e.message).toMatch(/ram\[0\]\.base: value "0x40001000" must be 2 MiB aligned/);
  });
  it("bank beyond the PA width", () => {
    const e = err({ ...base(), paBits: 36, ram: [{ base: "0x10_0000_0000", size: "1GiB" }] });
    expect(e.message).toMatch(/beyond the 36-bit physical address space/);
  });
  it("bad granule", () => {
    expect(err({ ...base(), granule: "8K" }).message).toMatch(/granule: value "8K" must be 4K, 16K or 64K/);
  });
  it("reserved region outside RAM, MMIO overlapping RAM, duplicate device names", () => {
    expect(err({ ...base(), reserved: [{ name: "fw", base: 0, size: 4096 }] }).message).toMatch(/reserved\[0\].*is not inside one RAM bank/);
    expect(err({ ...base(), mmio: [{ name: "e", base: "0x4000_0000", size: 4096, model: "dma-engine" }] }).message).toMatch(/mmio\[0\].*overlaps RAM bank/);
    const dup = base();
    dup.devices.push({ name: "nic", driver: "x", dmaMask: 64 });
    expect(err(dup).message).toMatch(/devices\[1\]\.name: value "nic" is used by another device/);
  });
  it("min_align_mask must be 2^n - 1", () => {
    const e = err({ ...base(), devices: [{ name: "n", driver: "d", dmaMask: 64, minAlignMask: "0x1000" }] });
    expect(e.message).toMatch(/devices\[0\]\.minAlignMask: value "0x1000" must be of the form 2\^n - 1/);
  });
  it("swiotlb cmdline: prefix stripped", () => {
    expect(parseMachine({ ...base(), swiotlb: { cmdline: "swiotlb=65536,force" } }, "t").swiotlbCmdline).toBe("65536,force");
    expect(parseMachine(base(), "t").swiotlbCmdline).toBe("");
  });
  it("the input object is not modified", () => {
    const raw = base();
    const before = JSON.stringify(raw);
    parseMachine(raw, "t");
    expect(JSON.stringify(raw)).toBe(before);
  });
});
