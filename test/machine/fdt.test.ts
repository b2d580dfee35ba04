import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { DmalabError, InputError } from "../../src/errors.js";
import { FdtError, parseFdt, propCells, propStrings } from "../../src/machine/fdt.js";
import { dtModel, machineFromModel } from "../../src/machine/device-tree.js";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "dt");
const blob = (name: string): Uint8Array => new Uint8Array(readFileSync(join(dir, `${name}.dtb`)));
const GOOD = ["rpi4", "firmware-mem", "nested-buses", "empty-dma-ranges", "restricted-dma", "xen-dom0"];

function fdtError(bytes: Uint8Array): FdtError {
  try {
    parseFdt(bytes, "t.dtb");
  } catch (e) {
    expect(e).toBeInstanceOf(FdtError);
    return e as FdtError;
  }
  throw new Error("expected an FdtError");
}

/** A minimal blob built by hand: header, empty reservation map, the given struct words, strings. */
function build(structWords: number[], strings: string, patch?: (v: DataView) => void): Uint8Array {
  const str = new TextEncoder().encode(strings);
  const offRsv = 40;
  const offStruct = offRsv + 16;
  const structLen = structWords.length * 4;
  const offStrings = offStruct + structLen;
  const total = offStrings + str.length;
  const b = new Uint8Array(total);
  const v = new DataView(b.buffer);
  [0xd00dfeed, total, offStruct, offStrings, offRsv, 17, 16, 0, str.length, structLen].forEach((w, i) => v.setUint32(i * 4, w));
  structWords.forEach((w, i) => v.setUint32(offStruct + i * 4, w));
  b.set(str, offStrings);
  patch?.(v);
  return b;
}
const BEGIN = 1, END_NODE = 2, PROP = 3, NOP = 4, END = 9;

describe("FDT header and blocks", () => {
  it("reads the rpi4 fixture: header fields, reservation block, nodes and properties", () => {
    const f = parseFdt(blob("rpi4"));
    expect(f.version).toBe(17);
    expect(f.lastCompVersion).toBe(16);
    expect(f.totalSize).toBe(blob("rpi4").length);
    // /memreserve/ 0x0 0x1000 in the source
    expect(f.reservations).toEqual([{ address: 0n, size: 0x1000n }]);
    expect(f.root.path).toBe("/");
    expect(f.root.children.map((c) => c.name)).toEqual(["memory@0", "chosen", "soc", "emmc2bus", "scb"]);
    const mmc = f.root.children.find((c) => c.name === "emmc2bus")!.children[0]!;
    expect(mmc.path).toBe("/emmc2bus/mmc@7e340000");
    expect(propStrings(mmc, "compatible")).toEqual(["brcm,bcm2711-emmc2"]);
    expect(propCells(mmc, "reg")).toEqual([0x0, 0x7e340000, 0x100]);
    expect(mmc.parent?.name).toBe("emmc2bus");
  });

  it("a hand-built minimal blob: NOPs are skipped, an empty property has an empty value", () => {
    const f = parseFdt(build([NOP, BEGIN, 0, PROP, 0, 0, BEGIN, 0x61626300, END_NODE, END_NODE, NOP, END], "ranges\0"));
    expect(f.root.props.get("ranges")!.value.length).toBe(0);
    expect(f.root.children[0]!.path).toBe("/abc");
  });
});

describe("malformed blobs: an FdtError (exit 2) naming the offset", () => {
  it("truncated.dtb (the first 200 bytes of rpi4.dtb): the header promises more", () => {
    const e = fdtError(blob("truncated"));
    expect(e.exitCode).toBe(2);
    expect(e.offset).toBe(200);
    expect(e.message).toBe(`t.dtb: dtb: truncated at offset 0xc8: the header says the blob is 0x${blob("rpi4").length.toString(16)} bytes but the file ends at 0xc8`);
  });

  it("corrupt.dtb (first property's length 0xffffff00): names the property token's offset and the property", () => {
    const b = blob("corrupt");
    const offStruct = new DataView(b.buffer, b.byteOffset).getUint32(8);
    const e = fdtError(b);
    // BEGIN_NODE + the root's empty name (8 bytes), then the FDT_PROP token of "model"
    expect(e.offset).toBe(offStruct + 8);
    expect(e.message).toContain(`offset 0x${(offStruct + 8).toString(16)}: property 'model' value (0xffffff00 bytes) runs past the structure block`);
  });

  it("every kind of damage is named", () => {
    const ok = [BEGIN, 0, END_NODE, END];
    expect(fdtError(new Uint8Array(10)).message).toContain("truncated at offset 0xa: the file ends inside the 40-byte header");
    expect(fdtError(build(ok, "", (v) => v.setUint32(0, 0x12345678))).message).toContain("corrupt at offset 0x0: bad magic 0x12345678");
    expect(fdtError(build(ok, "", (v) => v.setUint32(20, 16))).message).toContain("corrupt at offset 0x14: version 16 is too old");
    expect(fdtError(build(ok, "", (v) => v.setUint32(24, 18))).message).toContain("last_comp_version 18");
    expect(fdtError(build(ok, "", (v) => v.setUint32(36, 0x1000))).message).toMatch(/corrupt at offset 0x24: the structure block .* runs past the end of the blob/);
    expect(fdtError(build([BEGIN, 0, 7, END], "")).message).toContain("corrupt at offset 0x40: unknown structure token 0x7");
    expect(fdtError(build([BEGIN, 0, PROP, 0, 0x40, END_NODE, END], "x\0")).message).toContain("property name offset 0x40 is outside the strings block");
    expect(fdtError(build([BEGIN, 0, END_NODE, END_NODE, END], "")).message).toContain("FDT_END_NODE without an open node");
    expect(fdtError(build([BEGIN, 0, END], "")).message).toContain("FDT_END while / is still open");
    expect(fdtError(build([BEGIN, 0, END_NODE], "")).message).toContain("ends without an FDT_END token");
    expect(fdtError(build([BEGIN, 0x61000000, END_NODE, END], "")).message).toContain("the root node has a name ('a')");
    expect(fdtError(build([BEGIN, 0, PROP, 0, 0, PROP, 0, 0, END_NODE, END], "x\0")).message).toContain("property 'x' appears twice in /");
    expect(fdtError(build([BEGIN, 0, END_NODE, BEGIN, 0, END_NODE, END], "")).message).toContain("a second top-level node");
  });

  it("property-based: any truncation or byte mutation of any fixture throws nothing but a DmalabError", () => {
    const blobs = GOOD.map(blob);
    const mutation = fc.record({
      which: fc.nat({ max: blobs.length - 1 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      edits: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), word: fc.boolean() }), { maxLength: 8 }),
    });
    fc.assert(
      fc.property(mutation, ({ which, cut, edits }) => {
        let b = blobs[which]!.slice();
        for (const e of edits) {
          const at = e.at % b.length;
          if (e.word && at + 4 <= b.length) new DataView(b.buffer).setUint32(at, (e.value * 0x01010101) >>> 0 ^ new DataView(b.buffer).getUint32(at));
          else b[at] = e.value;
        }
        if (cut !== undefined) b = b.slice(0, cut % (b.length + 1));
        try {
          const f = parseFdt(b, "m.dtb");
          const m = dtModel(f, { mem: 1 << 30 }, "m.dtb");
          machineFromModel(m, "m");
        } catch (e) {
          if (!(e instanceof DmalabError)) throw e;
          expect(e.exitCode).toBe(2);
        }
      }),
      { numRuns: 1500, seed: 20250601 },
    );
  });

  it("structure-aware mutations (cells of property values) stay typed too", () => {
    const b = blob("nested-buses");
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.constantFrom(0, 1, 2, 3, 4, 5, 0xffffffff, 0x80000000)), { minLength: 1, maxLength: 6 }), (edits) => {
        const c = b.slice();
        const v = new DataView(c.buffer);
        const offStruct = v.getUint32(8);
        const size = v.getUint32(36);
        for (const [at, w] of edits) v.setUint32(offStruct + ((at * 4) % size), w);
        try {
          machineFromModel(dtModel(parseFdt(c), { mem: 1 << 30 }), "m");
        } catch (e) {
          expect(e).toBeInstanceOf(DmalabError);
          expect(e instanceof InputError || (e as DmalabError).exitCode === 2).toBe(true);
        }
      }),
      { numRuns: 1500, seed: 7 },
    );
  });
});
