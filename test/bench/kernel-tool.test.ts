import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  TOOL_DEFAULTS,
  atoi,
  benchmarkResult,
  checkToolArgs,
  intSqrt64,
  moduleCheck,
  parseToolArgs,
  reportLines,
  us1,
  type LatencySums,
  type ToolArgs,
} from "../../src/bench/kernel-tool.js";
import { InvalidArgumentError, UsageError } from "../../src/errors.js";

const args = (o: Partial<ToolArgs>): ToolArgs => ({ ...TOOL_DEFAULTS, ...o });

function refusal(a: ToolArgs): string | null {
  try {
    checkToolArgs(a);
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitCode).toBe(2);
    return (e as Error).message;
  }
}

describe("atoi, as glibc's", () => {
  it("reads a leading decimal number and stops at the first non-digit", () => {
    expect(atoi("12")).toBe(12);
    expect(atoi("  -7x")).toBe(-7);
    expect(atoi("+5")).toBe(5);
    expect(atoi("0x10")).toBe(0);
    expect(atoi("abc")).toBe(0);
    expect(atoi("")).toBe(0);
    expect(atoi("3.9")).toBe(3);
  });
  it("saturates to LONG_MAX/LONG_MIN and truncates to int", () => {
    // LONG_MAX = 0x7fff_ffff_ffff_ffff: low 32 bits all ones -> -1
    expect(atoi("99999999999999999999999")).toBe(-1);
    expect(atoi("-99999999999999999999999")).toBe(0);
    // 2^32 + 5 fits in a long: truncated to 5
    expect(atoi(String(2 ** 32 + 5))).toBe(5);
  });
  it("agrees with Number() on every in-range integer", () => {
    fc.assert(fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (n) => atoi(String(n)) === n));
  });
});

describe("the selftest CLI's checks", () => {
  it("takes the tool's defaults", () => {
    expect(parseToolArgs({})).toEqual({ threads: 1, seconds: 20, node: -1, bits: 32, dir: 0, xdelay: 0, granule: 1, mode: null });
    expect(refusal(parseToolArgs({}))).toBeNull();
  });
  it("refuses out-of-range values with the tool's wording", () => {
    expect(refusal(args({ threads: 0 }))).toBe("invalid number of threads, must be in 1-1024");
    expect(refusal(args({ threads: 1025 }))).toBe("invalid number of threads, must be in 1-1024");
    expect(refusal(args({ seconds: 0 }))).toBe("invalid number of seconds, must be in 1-300");
    expect(refusal(args({ seconds: 301 }))).toBe("invalid number of seconds, must be in 1-300");
    expect(refusal(args({ xdelay: -1 }))).toBe("invalid transmit delay, must be in 0-10000000");
    expect(refusal(args({ xdelay: 10_000_001 }))).toBe("invalid transmit delay, must be in 0-10000000");
    expect(refusal(args({ bits: 19 }))).toBe("invalid dma mask bit, must be in 20-64");
    expect(refusal(args({ bits: 65 }))).toBe("invalid dma mask bit, must be in 20-64");
    expect(refusal(args({ dir: 3 }))).toBe("invalid dma direction");
    expect(refusal(args({ dir: -1 }))).toBe("invalid dma direction");
    expect(refusal(args({ granule: 0 }))).toBe("invalid granule size");
    expect(refusal(args({ granule: 1025 }))).toBe("invalid granule size");
  });
  it("accepts the range ends", () => {
    for (const a of [{ threads: 1024 }, { seconds: 300 }, { xdelay: 10_000_000 }, { bits: 20 }, { bits: 64 }, { dir: 2 }, { granule: 1024 }])
      expect(refusal(args(a))).toBeNull();
  });
  it("checks in the tool's order (threads before seconds before delay before bits ...)", () => {
    expect(refusal(args({ threads: 0, seconds: 0, bits: 1 }))).toMatch(/threads/);
    expect(refusal(args({ seconds: 0, xdelay: -1 }))).toMatch(/seconds/);
    expect(refusal(args({ xdelay: -1, bits: 1 }))).toMatch(/transmit delay/);
    expect(refusal(args({ bits: 1, dir: 7 }))).toMatch(/mask bit/);
    expect(refusal(args({ dir: 7, granule: 0 }))).toMatch(/direction/);
  });
  it("leaves the node to the module: -1 and 0 are possible, nothing else", () => {
    expect(refusal(args({ node: 5 }))).toBeNull();
    expect(moduleCheck(args({ node: -1 }))).toBeNull();
    expect(moduleCheck(args({ node: 0 }))).toBeNull();
    expect(moduleCheck(args({ node: 1 }))).toBe("invalid numa node");
    expect(moduleCheck(args({ node: -2 }))).toBe("invalid numa node");
  });
});

describe("the result arithmetic of map_benchmark.c", () => {
  it("int_sqrt64 is the floor square root over all u64", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (x) => {
        const r = intSqrt64(x);
        return r * r <= x && (r + 1n) * (r + 1n) > x;
      }),
    );
    expect(() => intSqrt64(1n << 64n)).toThrow(InvalidArgumentError);
  });

  it("means and deviations follow integer division, as the kernel computes them", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(5000), fc.nat(5000)), { minLength: 1, maxLength: 200 }), (xs) => {
        const s: LatencySums = { sumMap: 0n, sumUnmap: 0n, sumSqMap: 0n, sumSqUnmap: 0n, loops: BigInt(xs.length) };
        for (const [m, u] of xs) {
          s.sumMap += BigInt(m);
          s.sumUnmap += BigInt(u);
          s.sumSqMap += BigInt(m * m);
          s.sumSqUnmap += BigInt(u * u);
        }
        const r = benchmarkResult(s);
        // the kernel's mean is floor(sum / loops); its variance uses that floored mean
        const n = BigInt(xs.length);
        const mean = s.sumMap / n;
        const v = s.sumSqMap / n - mean * mean;
        return r.avgMap100ns === mean && r.mapStddev * r.mapStddev <= v && (r.mapStddev + 1n) ** 2n > v;
      }),
    );
  });

  it("a constant latency has no deviation", () => {
    const r = benchmarkResult({ sumMap: 70n, sumUnmap: 30n, sumSqMap: 490n, sumSqUnmap: 90n, loops: 10n });
    expect(r).toEqual({ avgMap100ns: 7n, mapStddev: 0n, avgUnmap100ns: 3n, unmapStddev: 0n });
  });

  it("no loops leaves the zeroed struct the tool passed", () => {
    expect(benchmarkResult({ sumMap: 0n, sumUnmap: 0n, sumSqMap: 0n, sumSqUnmap: 0n, loops: 0n })).toEqual({
      avgMap100ns: 0n,
      mapStddev: 0n,
      avgUnmap100ns: 0n,
      unmapStddev: 0n,
    });
  });

  it("prints 100 ns units as %.1f microseconds", () => {
    fc.assert(fc.property(fc.nat(10_000_000), (v) => us1(BigInt(v)) === (v / 10).toFixed(1)));
    expect(us1(0n)).toBe("0.0");
    expect(us1(12345n)).toBe("1234.5");
  });

  it("reports in the tool's three lines", () => {
    const lines = reportLines(args({ threads: 2, seconds: 3, node: 0, dir: 2, granule: 4 }), {
      avgMap100ns: 12n,
      mapStddev: 5n,
      avgUnmap100ns: 7n,
      unmapStddev: 101n,
    });
    expect(lines).toEqual([
      "dma mapping benchmark: threads:2 seconds:3 node:0 dir:FROM_DEVICE granule: 4",
      "average map latency(us):1.2 standard deviation:0.5",
      "average unmap latency(us):0.7 standard deviation:10.1",
    ]);
  });

  it("with -m, prints the newer tool's first line: the mode named, no space after granule:", () => {
    const r = { avgMap100ns: 12n, mapStddev: 5n, avgUnmap100ns: 7n, unmapStddev: 101n };
    expect(reportLines(args({ threads: 2, seconds: 3, node: 0, dir: 2, granule: 4, mode: 0 }), r)[0]).toBe(
      "dma mapping benchmark(SINGLE_MODE): threads:2 seconds:3 node:0 dir:FROM_DEVICE granule:4",
    );
    expect(reportLines(args({ granule: 8, mode: 1 }), r)[0]).toBe("dma mapping benchmark(SG_MODE): threads:1 seconds:20 node:-1 dir:BIDIRECTIONAL granule:8");
  });

  it("parses -m with atoi and checks it before anything else", () => {
    expect(parseToolArgs({}).mode).toBeNull();
    expect(parseToolArgs({ mode: "1x" }).mode).toBe(1);
    expect(parseToolArgs({ mode: "abc" }).mode).toBe(0);
    expect(refusal(args({ mode: 2, threads: 0 }))).toBe("invalid map mode, SINGLE_MODE:0, SG_MODE: 1");
    expect(refusal(args({ mode: -1 }))).toBe("invalid map mode, SINGLE_MODE:0, SG_MODE: 1");
    expect(refusal(args({ mode: 1 }))).toBeNull();
  });
});
