// The kernel's dma_map_benchmark, the parts that are not the measurement itself: the selftest
// CLI's option parsing and range checks (tools/testing/selftests/dma/dma_map_benchmark.c at
// 2488655b), the module's ioctl checks (kernel/dma/map_benchmark.c at c771600c), the result
// arithmetic (sums in 100 ns units, integer mean, variance, int_sqrt64) and the three report
// lines. Spec linux-dma.md §8.
// Newer kernels' tool (tools/dma/dma_map_benchmark.c at a54302cc, the module's map_mode from
// the dma_map_sg series of 2025) adds `-m` (0 SINGLE_MODE, 1 SG_MODE: granule single-page
// scatterlist entries), checked first, and prints its first line as
// "dma mapping benchmark(SINGLE_MODE): ... granule:N". Given -m, dmalab is that tool and module;
// without it, the older one.

import { InvalidArgumentError, UsageError } from "../errors.js";

/** include/linux/map_benchmark.h limits */
export const DMA_MAP_MAX_THREADS = 1024;
export const DMA_MAP_MAX_SECONDS = 300;
export const DMA_MAP_MAX_TRANS_DELAY = 10 * 1000 * 1000;
export const DMA_MAP_BIDIRECTIONAL = 0;
export const DMA_MAP_TO_DEVICE = 1;
export const DMA_MAP_FROM_DEVICE = 2;
/** the tool's `directions[]`, indexed by DMA_MAP_* */
export const DIRECTION_NAMES = ["BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE"] as const;
/** include/linux/map_benchmark.h's map modes, and the newer tool's `mode[]` names */
export const DMA_MAP_BENCH_SINGLE_MODE = 0;
export const DMA_MAP_BENCH_SG_MODE = 1;
export const DMA_MAP_BENCH_MODE_MAX = 2;
export const MODE_NAMES = ["SINGLE_MODE", "SG_MODE"] as const;

/**
 * C atoi() as glibc does it (strtol, then truncated to int): leading white space, an optional
 * sign, decimal digits up to the first non-digit; no digits gives 0; out-of-range values
 * saturate to LONG_MIN/LONG_MAX and are then truncated to 32 bits.
 */
export function atoi(s: string): number {
  let i = 0;
  while (i < s.length && " \t\n\v\f\r".includes(s[i]!)) i++;
  let neg = false;
  if (s[i] === "+" || s[i] === "-") {
    neg = s[i] === "-";
    i++;
  }
  let v = 0n;
  const LONG_MAX = (1n << 63n) - 1n;
  let saturated = false;
  while (i < s.length && s[i]! >= "0" && s[i]! <= "9") {
    v = v * 10n + BigInt(s.charCodeAt(i) - 48);
    if (v > LONG_MAX + 1n) saturated = true;
    i++;
  }
  let l: bigint;
  if (saturated) l = neg ? -LONG_MAX - 1n : LONG_MAX;
  else {
    l = neg ? -v : v;
    if (l > LONG_MAX) l = LONG_MAX;
    if (l < -LONG_MAX - 1n) l = -LONG_MAX - 1n;
  }
  return Number(BigInt.asIntN(32, l));
}

/** The tool's inputs after atoi, before any check. */
export interface ToolArgs {
  threads: number;
  seconds: number;
  node: number;
  bits: number;
  dir: number;
  xdelay: number;
  granule: number;
  /** -m (the newer tool); null: not given, the older tool and module */
  mode: number | null;
}

/** The tool's defaults: one thread, 20 s, NUMA_NO_NODE, 32-bit mask, bidirectional, no delay, 1 page. */
export const TOOL_DEFAULTS: Readonly<ToolArgs> = { threads: 1, seconds: 20, node: -1, bits: 32, dir: 0, xdelay: 0, granule: 1, mode: null };

/** Raw option strings (as given after -t, -s, ...); absent ones take the tool's defaults. */
export type RawToolArgs = Partial<Record<keyof ToolArgs, string>>;

export function parseToolArgs(raw: RawToolArgs): ToolArgs {
  const a: ToolArgs = { ...TOOL_DEFAULTS };
  for (const k of Object.keys(TOOL_DEFAULTS) as (keyof ToolArgs)[]) {
    const v = raw[k];
    if (v !== undefined) a[k] = atoi(v);
  }
  return a;
}

/**
 * The selftest CLI's checks, in its order and with its wording. The tool exits 1 after
 * printing them; dmalab throws a UsageError (exit 2). -n is not checked here (the module does).
 */
export function checkToolArgs(a: ToolArgs): void {
  if (a.mode !== null && (a.mode < 0 || a.mode >= DMA_MAP_BENCH_MODE_MAX))
    throw new UsageError(`invalid map mode, SINGLE_MODE:${DMA_MAP_BENCH_SINGLE_MODE}, SG_MODE: ${DMA_MAP_BENCH_SG_MODE}`);
  if (a.threads <= 0 || a.threads > DMA_MAP_MAX_THREADS)
    throw new UsageError(`invalid number of threads, must be in 1-${DMA_MAP_MAX_THREADS}`);
  if (a.seconds <= 0 || a.seconds > DMA_MAP_MAX_SECONDS)
    throw new UsageError(`invalid number of seconds, must be in 1-${DMA_MAP_MAX_SECONDS}`);
  if (a.xdelay < 0 || a.xdelay > DMA_MAP_MAX_TRANS_DELAY)
    throw new UsageError(`invalid transmit delay, must be in 0-${DMA_MAP_MAX_TRANS_DELAY}`);
  // the tool assumes no DMA zone is smaller than 1 MiB
  if (a.bits < 20 || a.bits > 64) throw new UsageError("invalid dma mask bit, must be in 20-64");
  if (a.dir !== DMA_MAP_BIDIRECTIONAL && a.dir !== DMA_MAP_TO_DEVICE && a.dir !== DMA_MAP_FROM_DEVICE)
    throw new UsageError("invalid dma direction");
  if (a.granule < 1 || a.granule > 1024) throw new UsageError("invalid granule size");
}

/**
 * The module's ioctl checks that the CLI's pass can still fail: the node (the emulated
 * machine has one NUMA node, 0). Returns the pr_err text, or null. The other module checks
 * (threads, seconds, delay, granule, direction) can never fail after checkToolArgs.
 * map_benchmark.c casts the u32 fields: a negative node other than -1 is out of range.
 */
export function moduleCheck(a: ToolArgs, possibleNodes = 1): string | null {
  if (a.node !== -1 && (a.node < 0 || a.node >= possibleNodes)) return "invalid numa node";
  return null;
}

// ---- results ----------------------------------------------------------------------------------

/**
 * Per-run accumulators of map_benchmark.c: sums and sums of squares of 100 ns units, loops.
 * u64 in the kernel; BigInt here (this is not on the mapping path: workers add up numbers and
 * fold them in with add() well before they lose exactness).
 */
export interface LatencySums {
  sumMap: bigint;
  sumUnmap: bigint;
  sumSqMap: bigint;
  sumSqUnmap: bigint;
  loops: bigint;
}

export function zeroSums(): LatencySums {
  return { sumMap: 0n, sumUnmap: 0n, sumSqMap: 0n, sumSqUnmap: 0n, loops: 0n };
}

export function addSums(a: LatencySums, b: LatencySums): LatencySums {
  const u = (x: bigint): bigint => BigInt.asUintN(64, x);
  return {
    sumMap: u(a.sumMap + b.sumMap),
    sumUnmap: u(a.sumUnmap + b.sumUnmap),
    sumSqMap: u(a.sumSqMap + b.sumSqMap),
    sumSqUnmap: u(a.sumSqUnmap + b.sumSqUnmap),
    loops: u(a.loops + b.loops),
  };
}

/** int_sqrt64(): floor of the square root of a u64. */
export function intSqrt64(x: bigint): bigint {
  if (x < 0n || x >= 1n << 64n) throw new InvalidArgumentError(`int_sqrt64 of ${x}: not a u64`);
  if (x < 2n) return x;
  // Newton's iteration from above converges to the floor
  let r = 1n << BigInt(Math.ceil(x.toString(2).length / 2));
  for (;;) {
    const n = (r + x / r) >> 1n;
    if (n >= r) return r;
    r = n;
  }
}

/** The output fields of struct map_benchmark, in 100 ns units. */
export interface MapBenchmarkResult {
  avgMap100ns: bigint;
  mapStddev: bigint;
  avgUnmap100ns: bigint;
  unmapStddev: bigint;
}

/**
 * do_map_benchmark()'s arithmetic: integer means, variance = E[x²] - mean² in u64, stddev
 * by int_sqrt64. With no loops the kernel leaves the fields as the caller passed them; the
 * tool zeroed the struct, so they read 0.
 */
export function benchmarkResult(s: LatencySums): MapBenchmarkResult {
  if (s.loops === 0n) return { avgMap100ns: 0n, mapStddev: 0n, avgUnmap100ns: 0n, unmapStddev: 0n };
  const u = (x: bigint): bigint => BigInt.asUintN(64, x);
  const avgMap = s.sumMap / s.loops;
  const avgUnmap = s.sumUnmap / s.loops;
  const varMap = u(s.sumSqMap / s.loops - u(avgMap * avgMap));
  const varUnmap = u(s.sumSqUnmap / s.loops - u(avgUnmap * avgUnmap));
  return { avgMap100ns: avgMap, mapStddev: intSqrt64(varMap), avgUnmap100ns: avgUnmap, unmapStddev: intSqrt64(varUnmap) };
}

/** printf("%.1f", v / 10.0) for a u64 count of 100 ns: exact, since v/10 has one decimal. */
export function us1(v100ns: bigint): string {
  return `${v100ns / 10n}.${v100ns % 10n}`;
}

/**
 * The tool's three lines, in its wording: the older tool's first line has a space after
 * "granule:", the newer one's (with -m) names the mode and has none.
 */
export function reportLines(a: ToolArgs, r: MapBenchmarkResult): string[] {
  const dir = DIRECTION_NAMES[a.dir];
  return [
    a.mode === null
      ? `dma mapping benchmark: threads:${a.threads} seconds:${a.seconds} node:${a.node} dir:${dir} granule: ${a.granule}`
      : `dma mapping benchmark(${MODE_NAMES[a.mode]}): threads:${a.threads} seconds:${a.seconds} node:${a.node} dir:${dir} granule:${a.granule}`,
    `average map latency(us):${us1(r.avgMap100ns)} standard deviation:${us1(r.mapStddev)}`,
    `average unmap latency(us):${us1(r.avgUnmap100ns)} standard deviation:${us1(r.unmapStddev)}`,
  ];
}
