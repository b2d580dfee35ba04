import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script with no type declarations
import { assemble } from "../../scripts/wat.mjs";
import { PLAIN_PATH_WASM } from "../../src/swiotlb/plain-path-wasm.js";

// The committed bytes of the hot path's module are plain-path.wat assembled: an edit of the
// .wat without `node scripts/build-wasm.mjs` fails here.
describe("plain-path-wasm.ts", () => {
  it("is plain-path.wat, assembled", async () => {
    const wat = readFileSync(new URL("../../src/swiotlb/plain-path.wat", import.meta.url), "utf8");
    const bytes = (await assemble(wat, "plain-path.wat")) as Uint8Array;
    expect(Buffer.from(bytes).toString("base64")).toBe(PLAIN_PATH_WASM);
  });

  it("exports map, unmap and copy, and imports one shared memory", () => {
    // the ES2022 lib this project compiles against has no WebAssembly types
    type Desc = { module?: string; name: string; kind: string };
    const W = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; exports(m: object): Desc[]; imports(m: object): Desc[] } } }).WebAssembly;
    const mod = new W.Module(Buffer.from(PLAIN_PATH_WASM, "base64"));
    expect(W.Module.exports(mod).map((e) => e.name)).toEqual(expect.arrayContaining(["map", "unmap", "copy"]));
    const mems = W.Module.imports(mod).filter((i) => i.kind === "memory");
    expect(mems).toEqual([{ module: "e", name: "m", kind: "memory" }]);
  });
});
