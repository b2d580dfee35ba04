// Bad input everywhere: every file input (trace, machine JSON, DTB) and every flag of every
// command ends in exit 2 with one short line, within seconds, touching nothing else; special
// files and directories are refused by type; a failed write of the output is an error.
// The bulk runs in-process (main(), the parsers); a handful of real CLI runs check the wiring.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeUtf8, inputLines, readInputFile } from "../../src/cli/input-file.js";
import { MAX_ERROR_LINE, main } from "../../src/cli/main.js";
import { DmalabError, InputError } from "../../src/errors.js";
import { parseFdt } from "../../src/machine/fdt.js";
import { dtModel, machineFromModel } from "../../src/machine/device-tree.js";
import { MAX_RAM_BANKS, loadMachineFile, parseMachine } from "../../src/machine/preset.js";
import { parseSwiotlbCmdline } from "../../src/swiotlb/cmdline.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";
import { TraceReplayer } from "../../src/swiotlb/replay.js";
import { cli, root, setUp } from "../helpers/cli.js";

/** the longest line an error may print: "dmalab: " and the capped message */
const LINE_MAX = MAX_ERROR_LINE + 60;

let dir: string;
beforeAll(() => {
  setUp();
  dir = mkdtempSync(join(tmpdir(), "dmalab-hostile-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** counts of bad inputs tried, by kind, printed at the end (the closing note wants them) */
const tried: Record<string, number> = {};
const count = (kind: string, n = 1): void => {
  tried[kind] = (tried[kind] ?? 0) + n;
};
afterAll(() => {
  process.stderr.write(`hostile inputs tried: ${JSON.stringify(tried)}\n`);
});

function oneShortLine(stderr: string): void {
  expect(stderr.endsWith("\n")).toBe(true);
  expect(stderr.split("\n").length).toBe(2);
  expect(stderr.length).toBeLessThanOrEqual(LINE_MAX);
}

/** main() in-process, stdout and stderr captured */
async function inProcess(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array): boolean => {
    out += String(s);
    return true;
  });
  process.stderr.write = ((s: string | Uint8Array): boolean => {
    err += String(s);
    return true;
  });
  let code: number;
  const before = process.exitCode;
  try {
    code = await main(argv);
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
    process.exitCode = before;
  }
  return { code, out, err };
}

/** a message that would fail the test if it echoed a long value */
function short(e: unknown): void {
  expect(e).toBeInstanceOf(DmalabError);
  const m = (e as Error).message;
  expect(m.includes("\n")).toBe(false);
  expect(m.length).toBeLessThanOrEqual(LINE_MAX);
}

// ---- special files and directories, refused by type before reading -----------------------------

describe("special files and directories", () => {
  it("replay /dev/zero, --machine /dev/zero, a FIFO, a directory: exit 2 at once (CLI)", () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const cases: [string[], RegExp][] = [
      [["replay", "/dev/zero"], /trace is a character device, not a regular file/],
      [["boot", "--machine", "/dev/zero"], /machine description is a character device/],
      [["replay", fifo], /trace is a FIFO, not a regular file/],
      [["run", "--machine", fifo], /is a FIFO/],
      [["replay", root], /trace is a directory/],
      [["bench", "--out", root], /--out: is a directory, not a file/],
    ];
    for (const [args, re] of cases) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(re);
      oneShortLine(r.stderr);
      count("special files (CLI)");
    }
  });

  it("in-process: every file flag and argument refuses devices, FIFOs and directories", async () => {
    const fifo = join(dir, "fifo2");
    execFileSync("mkfifo", [fifo]);
    const specials = ["/dev/zero", "/dev/null", "/dev/full", fifo, root, join(root, "test")];
    const uses = (p: string): string[][] => [
      ["replay", p],
      ["replay", "--json", p],
      ["boot", "--machine", p],
      ["run", "--machine", p],
      ["bench", "--machine", p],
      ["dt", p],
      ["bench", "--compare", p],
      ["bench", "--workload", "ring", "--out", p],
    ];
    for (const p of specials)
      for (const argv of uses(p)) {
        // /dev/null is writable: as --out it is refused as not a regular file, like /dev/full
        const r = await inProcess(argv);
        expect(r.code, argv.join(" ")).toBe(2);
        expect(r.out).toBe("");
        oneShortLine(r.err);
        count("special files", 1);
      }
  });

  it("readInputFile caps the size; decodeUtf8 refuses bytes that are not UTF-8", () => {
    const f = join(dir, "big.json");
    writeFileSync(f, Buffer.alloc(5000, 0x20));
    expect(() => readInputFile(f, { what: "thing", maxBytes: 4096 })).toThrow(/thing of 5000 bytes is larger than the 4 KiB dmalab reads/);
    expect(readInputFile(f, { what: "thing", maxBytes: 5000 }).length).toBe(5000);
    expect(() => decodeUtf8(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe]), "machine description", "m.json")).toThrow(/not UTF-8 text \(bad byte at offset 2\)/);
  });
});

// ---- traces ------------------------------------------------------------------------------------

describe("traces", () => {
  it("a 50 MB line is refused by its start and its length, never echoed (CLI)", () => {
    const f = join(dir, "huge-line.trace");
    writeFileSync(f, "pool slots=1024 areas=1 kernel=6.x\nmap " + "7".repeat(50 << 20) + "\n");
    const r = cli("replay", f);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`line 2: a line of ${(50 << 20) + 4} bytes (starts 'map 777`);
    expect(r.stderr).toContain("is longer than the 4096 bytes a line may have");
    oneShortLine(r.stderr);
    count("trace files (CLI)");
  });

  it("inputLines: any content split across chunks gives the lines of the text, or one short InputError", () => {
    const f = join(dir, "lines.trace");
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("", "\r", "map 1 0 0x0 1 0x0 0x0\r")), { maxLength: 30 }),
        fc.integer({ min: 1, max: 17 }),
        fc.boolean(),
        (parts, chunkBytes, bad) => {
          const text = parts.join("\n");
          const bytes = Buffer.from(text, "utf8");
          const content = bad ? Buffer.concat([bytes, Buffer.from([0xc3])]) : bytes;
          writeFileSync(f, content);
          // a final newline ends the last line; it does not start an empty one
          const want = text === "" ? [] : text.split("\n");
          if (text.endsWith("\n")) want.pop();
          const tooLong = want.some((l) => Buffer.byteLength(l) > 30);
          try {
            const got = [...inputLines(f, { what: "trace", maxLineBytes: 30, chunkBytes })];
            expect(bad || tooLong).toBe(false);
            expect(got).toEqual(want);
          } catch (e) {
            expect(e).toBeInstanceOf(InputError);
            short(e);
            expect(bad || tooLong).toBe(true);
          }
          count("trace files (chunked reader)");
        },
      ),
      { numRuns: 300 },
    );
  });

  it("any line after a valid header replays or ends in one short InputError", () => {
    const token = fc.oneof(
      fc.constantFrom("map", "unmap", "pool", "full", "0x0", "0xfff", "1", "0", "-1", "0x", "99999999999999999999", "slots=128", "kernel=6.x"),
      fc.string({ maxLength: 12 }),
      fc.nat({ max: 300 }).map((n) => "x".repeat(n * 20)),
    );
    const line = fc.oneof(
      fc.array(token, { maxLength: 8 }).map((t) => t.join(" ")),
      fc.tuple(fc.nat({ max: 9 }), fc.nat({ max: 0xffff }), fc.nat({ max: 100000 })).map(([id, a, s]) => `map ${id} 0 0x${a.toString(16)} ${s} 0xfff 0x0`),
      fc.nat({ max: 9 }).map((id) => `unmap ${id}`),
    );
    fc.assert(
      fc.property(fc.constantFrom("6.x", "5.13"), fc.array(line, { maxLength: 20 }), (kernel, lines) => {
        const r = new TraceReplayer("t.trace");
        try {
          r.line(`pool slots=1024 areas=1 kernel=${kernel}`);
          for (const l of lines) r.line(l);
          r.finish();
        } catch (e) {
          expect(e).toBeInstanceOf(InputError);
          short(e);
        }
        count("trace lines");
      }),
      { numRuns: 500 },
    );
  });

  it("random bytes as a trace file (in-process replay): exit 2 with one short line, or a replay", async () => {
    const f = join(dir, "random.trace");
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.boolean(), async (bytes, header) => {
        writeFileSync(f, header ? Buffer.concat([Buffer.from("pool slots=1024 areas=1 kernel=6.x\n"), bytes]) : bytes);
        const r = await inProcess(["replay", f]);
        if (r.code !== 0) {
          expect(r.code).toBe(2);
          expect(r.out).toBe("");
          oneShortLine(r.err);
        }
        count("trace files");
      }),
      { numRuns: 60 },
    );
  });
});

// ---- machine descriptions ------------------------------------------------------------------------

const preset = (): Record<string, unknown> => JSON.parse(readFileSync(join(root, "fixtures", "machines", "qemu-virt-2g.json"), "utf8")) as Record<string, unknown>;

describe("machine descriptions", () => {
  const big = (ram: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ ...preset(), paBits: 52, ram, ...extra });
  const cases: [string, unknown, RegExp][] = [
    ["200 TiB of RAM, paBits 52", big([{ base: "0x4000_0000", size: "200TiB" }]), /200 TiB\) of RAM is more than the 4 TiB dmalab models/],
    ["4 PiB of RAM", big([{ base: "0x4000_0000", size: "4096TiB" }]), /of RAM is more than the 4 TiB dmalab models|ends beyond the 52-bit/],
    ["4096 overlapping banks", big(Array.from({ length: 4096 }, () => ({ base: "0x4000_0000", size: "1GiB" }))), new RegExp(`ram: has more than ${MAX_RAM_BANKS} RAM banks`)],
    [
      "128 overlapping banks",
      big(Array.from({ length: 128 }, () => ({ base: "0x4000_0000", size: "1GiB" }))),
      /ram\[1\]: value "0x40000000\+0x40000000" overlaps RAM bank bank0 .*; and 8125 more$/,
    ],
    ["dom0Mem above RAM", big([{ base: "0x4000_0000", size: "1GiB" }], { xen: { dom0Mem: "16TiB" } }), /xen.dom0Mem: value "0x100000000000" is more than the machine's/],
    ["10000 devices", big([{ base: "0x4000_0000", size: "1GiB" }], { devices: Array.from({ length: 10000 }, (_, i) => ({ name: `d${i}`, driver: "x", dmaMask: 32 })) }), /devices: has more than the 256 devices/],
    ["a 200 KB name", { ...preset(), name: "n".repeat(200_000), ram: "x" }, /ram: value "x"/],
    ["a 200 KB swiotlb cmdline", { ...preset(), swiotlb: { cmdline: "1 " + "y".repeat(200_000) } }, /swiotlb.cmdline: value "1 yyyy/],
  ];
  for (const [what, raw, re] of cases)
    it(`${what}: refused quickly, the limit named, one short line`, () => {
      const t0 = Date.now();
      let err: unknown;
      try {
        parseMachine(raw, "m.json");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      short(err);
      expect((err as Error).message).toMatch(re);
      // generous: a hang would be minutes; this is not a speed goal
      expect(Date.now() - t0).toBeLessThan(20_000);
      count("machine descriptions");
    });

  it("a dom0 on 16 TiB (CLI), on 1 TiB: refused naming the limit", async () => {
    const f = join(dir, "dom0-16t.json");
    writeFileSync(f, JSON.stringify(big([{ base: "0x4000_0000", size: "16TiB" }])));
    const r = cli("boot", "--xen", "dom0", "--machine", f);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\(16 TiB\) of RAM is more than the 4 TiB dmalab models/);
    oneShortLine(r.stderr);
    const g = join(dir, "dom0-1t.json");
    writeFileSync(g, JSON.stringify(big([{ base: "0x4000_0000", size: "1TiB" }])));
    const x = await inProcess(["boot", "--xen", "dom0", "--machine", g]);
    expect(x.code).toBe(2);
    expect(x.err).toMatch(/\(1024 GiB\) of RAM is more than the 256 GiB dmalab models under Xen/);
    oneShortLine(x.err);
    count("machine descriptions (CLI)");
    count("machine descriptions");
  });

  it("deeply nested JSON, non-UTF-8, too large: exit-2 errors, not a stack overflow", () => {
    const deep = join(dir, "deep.json");
    writeFileSync(deep, `{"name":${"[".repeat(200_000)}${"]".repeat(200_000)}}`);
    expect(() => loadMachineFile(deep)).toThrow(/JSON nested deeper than 32 levels/);
    const deepValue: unknown = Array.from({ length: 100 }).reduce((a) => [a], 1);
    expect(() => parseMachine({ ...preset(), description: deepValue }, "m")).toThrow(/JSON nested deeper than 32 levels/);
    const latin = join(dir, "latin1.json");
    writeFileSync(latin, Buffer.concat([Buffer.from('{"name":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]));
    expect(() => loadMachineFile(latin)).toThrow(/not UTF-8 text \(bad byte at offset 13\)/);
    const huge = join(dir, "huge.json");
    writeFileSync(huge, Buffer.alloc(2 << 20, 0x20));
    expect(() => loadMachineFile(huge)).toThrow(/machine description of 2097152 bytes is larger than the 1 MiB dmalab reads/);
    count("machine descriptions", 4);
  });

  it("property: any value at any path of a preset parses or ends in one short InputError", () => {
    const hostile = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.constantFrom(-1, 2 ** 64, 1e308, "200TiB", "4PiB", "0x", "", "18446744073709551488", NaN),
      fc.nat({ max: 3000 }).map((n) => Array.from({ length: n }, (_, i) => ({ base: `0x${(0x4000_0000 + (i % 7) * 0x20_0000).toString(16)}`, size: "4MiB" }))),
      fc.nat({ max: 50 }).map((n) => "z".repeat(n * 1000)),
    );
    const paths: (string | number)[][] = [["name"], ["paBits"], ["ram"], ["ram", 0, "size"], ["ram", 0, "base"], ["devices"], ["devices", 0, "dmaMask"], ["devices", 0, "dmaRanges"], ["mmio"], ["reserved"], ["xen"], ["swiotlb", "cmdline"], ["cpus"], ["granule"], ["dmaZone"], ["junk"]];
    fc.assert(
      fc.property(fc.constantFrom(...paths), hostile, (path, v) => {
        const raw = preset();
        let o: Record<string | number, unknown> = raw;
        for (const p of path.slice(0, -1)) {
          if (o[p] === null || typeof o[p] !== "object") o[p] = typeof path[path.indexOf(p) + 1] === "number" ? [] : {};
          o = o[p] as Record<string | number, unknown>;
        }
        o[path[path.length - 1]!] = v;
        try {
          parseMachine(raw, "m.json");
        } catch (e) {
          expect(e).toBeInstanceOf(InputError);
          short(e);
        }
        count("machine descriptions");
      }),
      { numRuns: 400 },
    );
  });

  it("property: random bytes as a machine file: one short InputError", () => {
    const f = join(dir, "random.json");
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), fc.string({ maxLength: 2000 }).map((s) => Buffer.from(s))), (bytes) => {
        writeFileSync(f, bytes);
        try {
          loadMachineFile(f);
        } catch (e) {
          expect(e).toBeInstanceOf(InputError);
          short(e);
        }
        count("machine files");
      }),
      { numRuns: 300 },
    );
  });
});

// ---- device tree blobs ---------------------------------------------------------------------------

describe("device tree blobs", () => {
  it("property: any byte mutation of a fixture ends in a blob that boots or one short typed error", () => {
    const blobs = ["rpi4", "restricted-dma", "nested-buses", "xen-dom0"].map((n) => readFileSync(join(root, "fixtures", "dt", `${n}.dtb`)));
    fc.assert(
      fc.property(fc.nat({ max: blobs.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 8 }), fc.option(fc.nat()), (k, muts, cut) => {
        const b = Uint8Array.from(blobs[k]!);
        for (const [at, v] of muts) b[at % b.length] = v;
        const blob = cut === null ? b : b.subarray(0, cut % b.length);
        try {
          machineFromModel(dtModel(parseFdt(blob, "m.dtb"), { mem: 1 << 30 }, "m.dtb"), "m");
        } catch (e) {
          short(e);
        }
        count("device tree blobs");
      }),
      { numRuns: 400 },
    );
  });

  it("a blob over arm64's 2 MiB MAX_FDT_SIZE is refused before parsing", async () => {
    const f = join(dir, "big.dtb");
    const b = Buffer.alloc((2 << 20) + 1);
    b.writeUInt32BE(0xd00dfeed, 0);
    writeFileSync(f, b);
    const r = await inProcess(["dt", f]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/device tree blob of 2097153 bytes is larger than the 2 MiB dmalab reads/);
    oneShortLine(r.err);
    count("device tree blobs");
  });
});

// ---- flags -------------------------------------------------------------------------------------

/** integer-looking strings the flag parsers must refuse */
const badInt = fc.oneof(
  fc.constantFrom("", "-1", "1.5", "0x", "1e3", "NaN", "Infinity", "99999999999999999999999", "0x1_0000_0000_0000_0000", " ", "--", "１"),
  fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/^\s*(0x[0-9a-f_]+|[0-9_]+)\s*$/i.test(s) && !s.startsWith("-")),
  fc.nat({ max: 200 }).map((n) => "9".repeat(30 + n * 1000)),
);
const badChoice = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.startsWith("-")),
  fc.nat({ max: 200 }).map((n) => "q".repeat(1 + n * 1000)),
);
const badSize = fc.oneof(fc.constantFrom("0", "-1GiB", "1e999", "1 GiB GiB", "0x", "99999999999999999999999TiB", "1.5.5G"), fc.nat({ max: 200 }).map((n) => "8".repeat(30 + n * 1000) + "Q"));
const badSwiotlb = fc.oneof(
  fc.constantFrom("18446744073709551488", "0x8000000000000000", "99999999999999999999999999", "4503599627370496"),
  fc.nat({ max: 200 }).map((n) => "1," + "w".repeat(2100 + n * 1000)),
);
const badPath = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }).map((s) => `no-such-dir-${s.replace(/[^A-Za-z0-9]/g, "_")}/x`),
  fc.constantFrom("/dev/zero", "/dev/full", "."),
  fc.nat({ max: 100 }).map((n) => "p".repeat(300 + n * 1000)),
);

/** the kernel tool's flags read numbers with atoi (as the selftest does): out of range is what is bad */
const outside = (min: number, max: number): fc.Arbitrary<string> => fc.oneof(fc.integer({ min: -(2 ** 31), max: min - 1 }), fc.integer({ min: max + 1, max: 2 ** 31 - 1 })).map(String);

/** per command, per flag: values every one of which must be refused (and the rest of the argv) */
const FLAGS: Record<string, Record<string, fc.Arbitrary<string>>> = {
  boot: { "--machine": badPath, "--kernel": badChoice, "--mem": badSize, "--xen": badChoice, "--feature": badChoice, "--xen-version": badChoice, "--contig": badChoice, "--swiotlb": badSwiotlb },
  run: { "--machine": badPath, "--kernel": badChoice, "--xen": badChoice, "--workload": badChoice, "--ops": badInt, "--seed": badInt, "--swiotlb": badSwiotlb, "--mem": badSize },
  bench: { "--machine": badPath, "--kernel": badChoice, "--areas": badInt, "--workload": badChoice, "--size": badInt, "--runs": badInt, "--compare": badPath, "--out": badPath, "-t": outside(1, 1024), "-s": outside(1, 300), "-b": outside(20, 64), "-d": outside(0, 2), "-x": outside(0, 10_000_000), "-g": outside(1, 1024), "--swiotlb": badSwiotlb },
  dt: { "--mem": badSize, "--kernel": badChoice },
  guest: { "--kernel": badChoice, "--machine": badPath, "--load": badInt, "--max-insns": badInt, "--device": badChoice, "--xen": badChoice, "--swiotlb": badSwiotlb },
  demo: { "--kernel": badChoice, "--workload": badChoice, "--ops": badInt, "--seed": badInt, "--xen": badChoice, "--swiotlb": badSwiotlb },
};
const ARGS: Record<string, string[]> = {
  dt: [join(root, "fixtures", "dt", "rpi4.dtb")],
  guest: [join(root, "fixtures", "guest", "xen-probe.bin")],
};

describe("flags", () => {
  for (const [cmd, flags] of Object.entries(FLAGS))
    it(`dmalab ${cmd}: any bad value of any flag is exit 2 with one short line, nothing on stdout, no --out written`, async () => {
      const entries = Object.entries(flags);
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: entries.length - 1 }).chain((i) => entries[i]![1].map((v) => [entries[i]![0], v] as const)),
          fc.boolean(),
          async ([flag, value], json) => {
            const out = join(dir, `never-${cmd}.json`);
            // for bench, a result file that must not appear, and a short run should a value pass
            const extra = cmd === "bench" ? [...(flag !== "--out" ? ["--out", out] : []), ...(flag !== "-s" ? ["-s", "1"] : [])] : [];
            const argv = [cmd, ...(ARGS[cmd] ?? []), `${flag}=${value}`, ...(json ? ["--json"] : []), ...extra];
            // short flags (-t 5) take the value as the next word
            if (!flag.startsWith("--")) argv.splice(argv.indexOf(`${flag}=${value}`), 1, flag, value);
            const r = await inProcess(argv);
            expect(r.code, `${cmd} ${flag} ${value.slice(0, 40)}`).toBe(2);
            expect(r.out).toBe("");
            oneShortLine(r.err);
            expect(existsSync(out)).toBe(false);
            count("flags");
          },
        ),
        { numRuns: cmd === "guest" ? 25 : 60 },
      );
    }, 120_000);

  it("swiotlb= beyond 2^41 slabs or the command line's length names the limit", () => {
    const p = kernelProfile("6.x");
    expect(() => parseSwiotlbCmdline("18446744073709551488", p)).toThrow(
      /swiotlb=18446744073709551488: 18446744073709551488 slabs is more than the 2199023255552 \(a 4 PiB pool, the 52-bit physical address space\) dmalab models/,
    );
    expect(parseSwiotlbCmdline("2199023255552", p).nslabs).toBe(2 ** 41);
    expect(() => parseSwiotlbCmdline("1," + "y".repeat(200_000), p)).toThrow(/is longer than the kernel's command line \(COMMAND_LINE_SIZE 2048\)/);
    count("flags", 3);
  });
});

// ---- output that cannot be written ---------------------------------------------------------------

describe("a failed write of the output", () => {
  const guestBin = join(root, "fixtures", "guest", "xen-probe.bin");
  const cmds: string[][] = [
    ["boot"],
    ["boot", "--json"],
    ["boot", "--matrix"],
    ["run", "--ops", "64"],
    ["replay", join(root, "test", "swiotlb", "traces", "oracle-align-6x.trace")],
    ["replay", "--json", join(root, "test", "swiotlb", "traces", "oracle-align-6x.trace")],
    ["guest", "--xen", "dom0", guestBin],
    ["bench", "--workload", "ring", "-s", "1", "--json"],
  ];
  it("stdout on a full disk (/dev/full): one line on stderr, exit 2, for every command (CLI)", () => {
    for (const args of cmds) {
      const r = spawnFull(args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toBe("dmalab: cannot write the output: ENOSPC (no space left on device)\n");
      count("output failures");
    }
  }, 240_000);

  it("a reader that closes the pipe: one line (EPIPE), exit 2 (CLI)", async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [join(root, "bin", "dmalab.js"), "replay", join(root, "test", "swiotlb", "traces", "oracle-areas-6x.trace")], { cwd: root });
      let stderr = "";
      c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      c.stdout.destroy();
      c.on("close", (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("dmalab: cannot write the output: EPIPE (the reader closed the pipe)\n");
    count("output failures");
  });
});

function spawnFull(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync("sh", ["-c", 'exec "$0" "$@" >/dev/full', process.execPath, join(root, "bin", "dmalab.js"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

describe("a parser's message that quotes the input", () => {
  it("stays one line: a NUL and a newline as a machine file (a counterexample fast-check found)", () => {
    const d = mkdtempSync(join(tmpdir(), "dmalab-oneline-"));
    try {
      const f = join(d, "nul.json");
      writeFileSync(f, Uint8Array.from([0, 10]));
      let err: unknown;
      try {
        loadMachineFile(f);
      } catch (e) {
        err = e;
      }
      short(err);
      expect((err as Error).message).toMatch(/not valid JSON/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
