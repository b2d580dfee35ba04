import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { registerReplay } from "../../src/cli/commands/replay.js";
import { replayTrace } from "../../src/swiotlb/replay.js";
import { ModelPool } from "./model.js";

// the kernel's own outputs, copied byte for byte into the repository (test/fixtures/samples/README.md)
const samples = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "samples", "kernel");

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

// Longer traces whose outputs came from the kernel's own allocator (swiotlb.c of the commit named
// in each header, built natively with userspace stubs, kept outside this repository).
const oracle = join(dirname(fileURLToPath(import.meta.url)), "traces");

describe("replay: long traces checked against the kernel's allocator", () => {
  const traces = readdirSync(oracle).filter((f) => f.endsWith(".trace")).sort();
  it("has the oracle traces (both eras, several areas, pools under pressure)", () => {
    expect(traces.length).toBeGreaterThanOrEqual(4);
  });
  for (const t of traces) {
    it(`${t} matches the kernel's output byte for byte`, () => {
      const r = replayTrace(readFileSync(join(oracle, t), "utf8"), t);
      const expected = readFileSync(join(oracle, t.replace(/\.trace$/, ".expected")), "utf8");
      const got = r.lines.join("\n") + "\n";
      if (got !== expected) {
        const a = got.split("\n"), b = expected.split("\n");
        const i = a.findIndex((l, k) => l !== b[k]);
        expect(`line ${i + 1}: ${a[i]}`).toBe(`line ${i + 1}: ${b[i]}`);
      }
      expect(got.length).toBe(expected.length);
    });
  }
});

describe("replay: the README's worked example (spec 3.5 B and C)", () => {
  const body = "map 1 0 0x40000a00 8192 0xfff 0x0\nmap 2 0 0x40000a00 8192 0xfff 0x0\n";
  it("5.13: slot 1 then slot 9", () => {
    expect(replayTrace(`pool slots=32768 areas=1 kernel=5.13\n${body}`).lines).toEqual(["1 1 0xa00", "2 9 0x4a00"]);
  });
  it("6.x: slot 1 then slot 7", () => {
    expect(replayTrace(`pool slots=32768 areas=1 kernel=6.x\n${body}`).lines).toEqual(["1 1 0xa00", "2 7 0x3a00"]);
  });
  it("first_slot_index counts pad slots; tlb offset is past them (spec 3.5 D)", () => {
    const r = replayTrace("pool slots=1024 areas=1 kernel=6.x\nmap a 0 0x40000a00 1000 0xfff 0xfff\nunmap a\nmap b 0 0x40000a00 1000 0xfff 0xfff\n");
    expect(r.lines).toEqual(["a 0 0xa00", "b 2 0x1a00"]);
  });
  it("an id can be mapped again after its unmap; a 'full' id is free to map again", () => {
    const r = replayTrace("pool slots=128 areas=1 kernel=6.x\nmap x 0 0x0 262144 0x0 0x0\nmap y 0 0x0 1 0x0 0x0\nmap y 0 0x0 1 0x0 0x0\nunmap x\nmap y 0 0x0 1 0x0 0x0\n");
    expect(r.lines).toEqual(["x 0 0x0", "y full", "y full", "y 0 0x0"]);
  });
});

describe("replay: random traces against the walking model", () => {
  it("6.x with areas and masks, and 5.13, filling small pools", () => {
    const masks = ["0x0", "0x3ff", "0x7ff", "0xfff", "0xffff"];
    const op = fc.oneof(
      fc.record({ cpu: fc.nat(7), orig: fc.nat(2 ** 34), size: fc.integer({ min: 1, max: 70000 }), min: fc.constantFrom(...masks), al: fc.constantFrom("0x0", "0x0", "0xfff", "0xffff") }),
      fc.nat(),
    );
    fc.assert(
      fc.property(fc.constantFrom("5.13", "6.x"), fc.constantFrom(1, 2, 4), fc.array(op, { maxLength: 150 }), (kernel, areas0, ops) => {
        const areas = kernel === "5.13" ? 1 : areas0;
        const slots = 256 * areas;
        const m = new ModelPool({ start: 0x8000_0000n, nslabs: slots, nareas: areas, era: kernel, pageSize: 4096 });
        const text = [`pool slots=${slots} areas=${areas} kernel=${kernel}`];
        const want: string[] = [];
        const live: { id: number; tlb: bigint; min: bigint }[] = [];
        let next = 0;
        for (const o of ops) {
          if (typeof o === "number") {
            if (live.length === 0) continue;
            const [e] = live.splice(o % live.length, 1);
            text.push(`unmap ${e!.id}`);
            m.release(e!.tlb, e!.min);
          } else {
            const id = next++;
            const al = kernel === "5.13" ? "0x0" : o.al;
            text.push(`map ${id} ${o.cpu} 0x${o.orig.toString(16)} ${o.size} ${o.min} ${al}`);
            const r =
              kernel === "5.13"
                ? m.map513(BigInt(o.orig), BigInt(o.size), BigInt(o.min))
                : m.map6x(o.cpu, BigInt(o.orig), BigInt(o.size), BigInt(al), BigInt(o.min));
            if (r === null) want.push(`${id} full`);
            else {
              want.push(`${id} ${r.first} 0x${r.tlb.toString(16)}`);
              live.push({ id, tlb: r.tlb, min: BigInt(o.min) });
            }
          }
        }
        expect(replayTrace(text.join("\n")).lines).toEqual(want);
      }),
      { numRuns: 40 },
    );
  });
});

describe("replay: malformed input is an InputError naming the line (exit code 2)", () => {
  const H = "pool slots=1024 areas=1 kernel=6.x";
  const bad: [string, string, RegExp][] = [
    ["no header", "# only a comment\n", /no 'pool slots=N areas=A kernel=K' header/],
    ["map before header", "map 1 0 0x0 1 0x0 0x0\n", /line 1: an op before/],
    ["slots not a multiple of 128", "pool slots=1000 areas=1 kernel=6.x\n", /line 1: slots=1000 must be a multiple of 128/],
    ["slots below 128 x areas", "pool slots=256 areas=4 kernel=6.x\n", /line 1: slots=256/],
    ["areas not a power of two", "pool slots=1536 areas=3 kernel=6.x\n", /line 1: areas=3 is not a power of two/],
    ["5.13 with areas", "pool slots=1024 areas=2 kernel=5.13\n", /line 1: areas=2: kernel=5.13 has one area/],
    ["unknown kernel", "pool slots=1024 areas=1 kernel=5.4\n", /line 1: kernel '5.4'/],
    ["missing field", "pool slots=1024 kernel=6.x\n", /line 1: malformed header/],
    ["second header", `${H}\n${H}\n`, /line 2: a second pool header/],
    ["short map", `${H}\nmap 1 0 0x0 1 0x0\n`, /line 2: malformed map/],
    ["decimal orig", `${H}\nmap 1 0 4096 1 0x0 0x0\n`, /line 2: orig_phys '4096'/],
    ["zero size", `${H}\nmap 1 0 0x0 0 0x0 0x0\n`, /line 2: size '0'/],
    ["hex size", `${H}\nmap 1 0 0x0 0x10 0x0 0x0\n`, /line 2: size '0x10'/],
    ["mask too wide", `${H}\nmap 1 0 0x0 1 0x100000000 0x0\n`, /line 2: min_align_mask/],
    ["5.13 alloc_align", "pool slots=1024 areas=1 kernel=5.13\nmap 1 0 0x0 1 0x0 0xfff\n", /line 2: alloc_align_mask must be 0x0/],
    ["unknown op", `${H}\nsync 1\n`, /line 2: unknown op 'sync'/],
    ["map of a live id", `${H}\nmap 1 0 0x0 1 0x0 0x0\n\n# c\nmap 1 0 0x0 1 0x0 0x0\n`, /line 5: map of id 1, which is still live/],
    ["unmap of an unknown id", `${H}\nunmap 7\n`, /line 2: unmap of id 7, which is not live/],
    ["double unmap", `${H}\nmap 1 0 0x0 1 0x0 0x0\nunmap 1\nunmap 1\n`, /line 4: unmap of id 1/],
    ["unmap of a full id", `pool slots=128 areas=1 kernel=6.x\nmap 1 0 0x0 262145 0x0 0x0\nunmap 1\n`, /line 3: unmap of id 1, which is not live/],
    ["unmap with extra field", `${H}\nmap 1 0 0x0 1 0x0 0x0\nunmap 1 2\n`, /line 3: malformed unmap/],
  ];
  for (const [what, text, re] of bad)
    it(what, () => {
      let err: unknown;
      try {
        replayTrace(text, "t.trace");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).exitCode).toBe(2);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message.startsWith("t.trace")).toBe(true);
    });
});

describe("dmalab replay (command)", () => {
  async function run(text: string | null): Promise<{ out: string; err: unknown }> {
    const dir = mkdtempSync(join(tmpdir(), "dmalab-replay-"));
    const file = join(dir, "t.trace");
    if (text !== null) writeFileSync(file, text);
    const program = new Command().exitOverride();
    registerReplay(program);
    let out = "";
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = (s: string | Uint8Array): boolean => {
      out += String(s);
      return true;
    };
    let err: unknown;
    try {
      await program.parseAsync(["replay", file], { from: "user" });
    } catch (e) {
      err = e;
    } finally {
      process.stdout.write = orig;
      rmSync(dir, { recursive: true, force: true });
    }
    return { out, err };
  }
  it("prints one line per map", async () => {
    const r = await run("pool slots=32768 areas=1 kernel=6.x\nmap 1 0 0x40000a00 8192 0xfff 0x0\nmap 2 0 0x40000a00 8192 0xfff 0x0\n");
    expect(r.err).toBeUndefined();
    expect(r.out).toBe("1 1 0xa00\n2 7 0x3a00\n");
  });
  it("a missing file and a bad line are InputErrors (exit 2)", async () => {
    const a = await run(null);
    expect(a.err).toBeInstanceOf(InputError);
    expect((a.err as Error).message).toMatch(/t\.trace: trace does not exist/);
    const b = await run("pool slots=1024 areas=1 kernel=6.x\nunmap 3\n");
    expect(b.err).toBeInstanceOf(InputError);
    expect((b.err as Error).message).toMatch(/t\.trace line 2: unmap of id 3/);
    expect(b.out).toBe("");
  });
});
