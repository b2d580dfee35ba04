import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { replayTrace } from "../../src/swiotlb/replay.js";

// the kernel's own outputs sit next to the repository: <repo>/../shared/samples/kernel
const samples = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "shared", "samples", "kernel");

describe("replay: reference traces from the kernel's swiotlb.c", () => {
  const traces = readdirSync(samples).filter((f) => f.endsWith(".trace")).sort();
  it("finds the four samples", () => {
    expect(traces).toEqual(["align-513.trace", "align-6x.trace", "areas-6x.trace", "full-6x.trace"]);
  });
  for (const t of traces) {
    it(`${t} matches its .expected byte for byte`, () => {
      const r = replayTrace(readFileSync(join(samples, t), "utf8"), t);
      const expected = readFileSync(join(samples, t.replace(/\.trace$/, ".expected")), "utf8");
      expect(r.lines.join("\n") + "\n").toBe(expected);
      expect(r.warnings).toEqual([]);
    });
  }
});
