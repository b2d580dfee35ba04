import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { compareResults, formatCompare, loadSummary, median, medianRun, spread, workloadKey, type WorkloadResult } from "../../src/bench/result.js";
import { InputError } from "../../src/errors.js";

let stdout: string[];
let stderr: string[];
beforeEach(() => {
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    stdout.push(String(s));
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    stderr.push(String(s));
    return true;
  });
  process.exitCode = undefined;
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

const run = (...argv: string[]): Promise<number> => main(["bench", ...argv]);

describe("dmalab bench: the kernel tool's checks, exit code 2", () => {
  const cases: [string[], string][] = [
    [["-t", "0"], "invalid number of threads, must be in 1-1024"],
    [["-t", "2000"], "invalid number of threads, must be in 1-1024"],
    [["-s", "0"], "invalid number of seconds, must be in 1-300"],
    [["-s", "abc"], "invalid number of seconds, must be in 1-300"],
    [["-x", "10000001"], "invalid transmit delay, must be in 0-10000000"],
    [["-b", "19"], "invalid dma mask bit, must be in 20-64"],
    [["-d", "3"], "invalid dma direction"],
    [["-g", "0"], "invalid granule size"],
    [["-g", "1025"], "invalid granule size"],
    // newer kernels' tool: the map mode first, in its wording
    [["-m", "2"], "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"],
    [["-m", "-1", "-t", "0"], "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"],
    [["-m", "0", "-t", "0"], "invalid number of threads, must be in 1-1024"],
  ];
  for (const [argv, msg] of cases)
    it(`${argv.join(" ")} -> ${msg}`, async () => {
      expect(await run(...argv)).toBe(2);
      expect(stderr.join("")).toBe(`dmalab: ${msg}\n`);
      expect(stdout.join("")).toBe("");
    });

  it("refuses an impossible NUMA node the way the module does", async () => {
    expect(await run("-s", "1", "-n", "1")).toBe(2);
    expect(stderr.join("")).toMatch(/^dmalab: ioctl: Invalid argument \(dma_map_benchmark: invalid numa node\)\n$/);
  });

  it("refuses a mask dma_set_mask refuses (below ZONE_DMA)", async () => {
    expect(await run("-s", "1", "-b", "24")).toBe(2);
    expect(stderr.join("")).toMatch(/failed to set dma_mask on device 0000:00:1f.0/);
  });

  it("refuses unknown options and kernel-tool letters in workload mode", async () => {
    expect(await run("-q", "1")).toBe(2);
    expect(await run("--workload", "ring", "-g", "2")).toBe(2);
    expect(await run("--workload", "ring", "-m", "0")).toBe(2);
    expect(await run("--workload", "nope")).toBe(2);
  });

  it("--size: 1 up to swiotlb_max_mapping_size, others refused naming the limit", async () => {
    for (const bad of ["0", "262145", "1000000"]) {
      stderr = [];
      expect(await run("--workload", "pingpong", "--size", bad, "-s", "1")).toBe(2);
      expect(stderr.join("")).toBe(`dmalab: --size ${bad}: must be 1-262144 (swiotlb_max_mapping_size of demo-8g's pool, kernel 6.x)\n`);
    }
    stderr = [];
    expect(await run("--workload", "pingpong", "--size", "64k")).toBe(2);
    expect(stderr.join("")).toBe("dmalab: --size '64k': not a whole number of bytes\n");
    expect(stdout.join("")).toBe("");
  });

  it("--compare needs 3 runs or more (its noise band is their spread)", async () => {
    expect(await run("--workload", "pingpong", "--compare", "bench/baseline.json", "--runs", "2")).toBe(2);
    expect(stderr.join("")).toMatch(/--runs 2: --compare needs 3 runs or more/);
  });
});

describe("dmalab bench: a 1-second run", () => {
  it("prints the tool's three lines, then dmalab's", async () => {
    expect(await run("-s", "1")).toBe(0);
    const lines = stdout.join("").trimEnd().split("\n");
    expect(lines[0]).toBe("dma mapping benchmark: threads:1 seconds:1 node:-1 dir:BIDIRECTIONAL granule: 1");
    expect(lines[1]).toMatch(/^average map latency\(us\):\d+\.\d standard deviation:\d+\.\d$/);
    expect(lines[2]).toMatch(/^average unmap latency\(us\):\d+\.\d standard deviation:\d+\.\d$/);
    expect(lines[3]).toMatch(/^map\+unmap pairs per second: \d+ .*100\.0% bounced/);
    expect(lines[4]).toMatch(/^bytes bounced per second: [1-9]\d* /);
  });

  it("fails like the kernel when the granule is larger than one bounce buffer (65 pages > 256 KiB)", async () => {
    // the emulated kernel's map failed: a fault (exit 3), not a limit of dmalab's
    expect(await run("-s", "1", "-g", "65")).toBe(3);
    const out = stdout.join("");
    expect(out).toContain("[dmesg] dma_map_benchmark 0000:00:1f.0: swiotlb buffer is full (sz: 266240 bytes), total 32768 (slots), used 0 (slots)");
    expect(out).toContain("[dmesg] dma_map_benchmark: dma_map_single failed on 0000:00:1f.0");
    expect(stderr.join("")).toBe("dmalab: ioctl: Cannot allocate memory (dma_map_benchmark: dma_map_single failed on 0000:00:1f.0)\n");
  });

  // issue: these faulted at 0x4000_0000 (rpi4-1g's RAM starts at 0)
  for (const machine of ["rpi4-1g", "server-64g"])
    for (const workload of ["pingpong", "ring"])
      it(`--workload ${workload} --machine ${machine}`, async () => {
        expect(await run("--workload", workload, "--machine", machine, "-s", "1", "--json")).toBe(0);
        const j = JSON.parse(stdout.join("")) as Record<string, number>;
        expect(j["pairsPerSec"]).toBeGreaterThan(0);
        expect(j["mapFailures"]).toBe(0);
      });

  it("-m 0: the newer tool's SINGLE_MODE line", async () => {
    expect(await run("-s", "1", "-m", "0")).toBe(0);
    const lines = stdout.join("").trimEnd().split("\n");
    expect(lines[0]).toBe("dma mapping benchmark(SINGLE_MODE): threads:1 seconds:1 node:-1 dir:BIDIRECTIONAL granule:1");
    expect(lines[1]).toMatch(/^average map latency\(us\):\d+\.\d standard deviation:\d+\.\d$/);
  });

  it("-m 1: dma_map_sg of granule one-page entries, every one bounced on a 32-bit mask", async () => {
    expect(await run("-s", "1", "-m", "1", "-g", "3", "--json")).toBe(0);
    const j = JSON.parse(stdout.join("")) as Record<string, number>;
    expect(j["map_mode"]).toBe(1);
    expect(j["granule"]).toBe(3);
    expect(j["bouncedFraction"]).toBe(1);
    // bidirectional: each loop copies 3 pages in and 3 back
    expect(j["bouncedBytesPerSec"]).toBeCloseTo(j["pairsPerSec"]! * 2 * 3 * 4096, -4);
  });

  it("does not bounce a 64-bit device", async () => {
    expect(await run("-s", "1", "-b", "64", "--json")).toBe(0);
    const j = JSON.parse(stdout.join("")) as Record<string, number>;
    expect(j["bouncedFraction"]).toBe(0);
    expect(j["loops"]).toBeGreaterThan(0);
  });

  it("--workload --json has the fields the comparison reads", async () => {
    expect(await run("--workload", "pingpong", "--size", "4096", "-s", "1", "--json")).toBe(0);
    const j = JSON.parse(stdout.join("")) as Record<string, unknown>;
    for (const k of ["workload", "kernel", "size", "threads", "areas", "pairsPerSec", "bouncedBytesPerSec", "bouncedBytesPerCpuSec", "copyBytesPerSec", "fractionOfCopyLimit", "nsPerPair", "meanMapNs", "meanUnmapNs", "p50MapNs", "p50UnmapNs", "p50Ns", "p99Ns", "heapBytesPerPair"])
      expect(j).toHaveProperty(k);
    expect(j["bouncedBytesPerSec"]).toBeCloseTo((j["pairsPerSec"] as number) * 2 * 4096, -3);
    expect(j["nsPerPair"]).toBeCloseTo(1e9 / (j["pairsPerSec"] as number), 3);
    // the median of turns, not the ratio of the totals: finite, positive
    expect(j["fractionOfCopyLimit"]).toBeGreaterThan(0);
    expect(Number.isFinite(j["fractionOfCopyLimit"])).toBe(true);
  });

  it("--compare exits 1 on a regression outside the noise band, and prints the band", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmalab-bench-"));
    const base = join(dir, "base.json");
    // a baseline no host reaches: a regression, whatever the noise
    writeFileSync(base, JSON.stringify({ dmalab: "bench-suite", version: 1, workloads: { "pingpong-64": { ...res({}), pairsPerSec: 1e12, runs: [1e12, 1e12, 1e12] } } }));
    expect(await run("--workload", "pingpong", "--size", "64", "-s", "1", "--compare", base)).toBe(1);
    const out = stdout.join("");
    expect(out).toMatch(/pingpong-64 .* ±\d+\.\d% \(3 runs\) +slower/);
    expect(out).toContain("regression outside the noise band: pingpong-64");
  });
});

const res = (o: Partial<WorkloadResult>): WorkloadResult => ({
  workload: "pingpong",
  kernel: "6.x",
  size: 64,
  threads: 1,
  areas: 1,
  seconds: 1,
  pairs: 1,
  pairsPerSec: 1,
  bouncedBytes: 0,
  bouncedBytesPerSec: 0,
  bouncedBytesPerCpuSec: 0,
  copyBytesPerSec: 1,
  fractionOfCopyLimit: 0,
  nsPerPair: 0,
  meanMapNs: 0,
  meanUnmapNs: 0,
  p50MapNs: 0,
  p50UnmapNs: 0,
  p50Ns: 0,
  p99Ns: 0,
  heapBytesPerPair: 0,
  mapFailures: 0,
  ...o,
});

describe("summaries and --compare", () => {
  it("names workloads stably", () => {
    expect(workloadKey(res({ size: 512 }))).toBe("pingpong-512");
    expect(workloadKey(res({ workload: "ring", size: 0 }))).toBe("ring");
    expect(workloadKey(res({ workload: "ring", size: 0, threads: 2, areas: 2 }))).toBe("ring-t2-a2");
  });

  it("takes medians", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const m = medianRun([res({ pairsPerSec: 5, p50Ns: 50 }), res({ pairsPerSec: 1, p50Ns: 10 }), res({ pairsPerSec: 3, p50Ns: 30 })]);
    expect(m.pairsPerSec).toBe(3);
    expect(m.p50Ns).toBe(30);
    expect(m.runs).toEqual([5, 1, 3]);
  });

  it("prints the ratio per workload, and says when the baseline lacks one", () => {
    const rows = compareResults({ "pingpong-64": res({ pairsPerSec: 3e6 }), ring: res({ workload: "ring", pairsPerSec: 1 }) }, { "pingpong-64": res({ pairsPerSec: 2e6 }) });
    expect(rows[0]!.ratio).toBe(1.5);
    expect(rows[1]!.ratio).toBeNull();
    const text = formatCompare(rows).join("\n");
    expect(text).toMatch(/pingpong-64\s+3\.000 M\s+2\.000 M\s+1\.500x/);
    expect(text).toMatch(/ring .*not in baseline/);
  });

  it("calls a ratio noise when it is within the largest spread of this run's or the baseline's runs", () => {
    expect(spread([100, 90, 110])).toBeCloseTo(0.1, 12);
    expect(spread([5])).toBe(0);
    const now = (runs: number[]) => ({ "pingpong-64": { ...res({ pairsPerSec: median(runs) }), runs } });
    const base = { "pingpong-64": { ...res({ pairsPerSec: 100 }), runs: [100, 95, 105] } };
    // 8 % slower, runs spread 10 %: noise
    let [r] = compareResults(now([92, 82.8, 101.2]), base);
    expect(r!.noise).toBeCloseTo(0.1, 12);
    expect(r!.verdict).toBe("within noise");
    // 8 % slower, both spreads 5 %: a regression
    [r] = compareResults(now([92, 87.4, 96.6]), base);
    expect(r!.noise).toBeCloseTo(0.05, 12);
    expect(r!.verdict).toBe("slower");
    expect(formatCompare([r!]).at(-1)).toBe("regression outside the noise band: pingpong-64");
    // 20 % faster: faster, not a regression
    [r] = compareResults(now([120, 119, 121]), base);
    expect(r!.verdict).toBe("faster");
    expect(formatCompare([r!]).at(-1)).toBe("no regression outside the noise band");
  });

  it("loads a suite summary or a single result, and refuses anything else", () => {
    const dir = mkdtempSync(join(tmpdir(), "dmalab-bench-"));
    const suite = join(dir, "s.json");
    writeFileSync(suite, JSON.stringify({ dmalab: "bench-suite", version: 1, workloads: { "pingpong-64": res({}) } }));
    expect(Object.keys(loadSummary(suite))).toEqual(["pingpong-64"]);
    const single = join(dir, "r.json");
    writeFileSync(single, JSON.stringify(res({ workload: "ring", size: 0 })));
    expect(Object.keys(loadSummary(single))).toEqual(["ring"]);
    const bad = join(dir, "b.json");
    writeFileSync(bad, "{ nope");
    expect(() => loadSummary(bad)).toThrow(InputError);
    writeFileSync(bad, JSON.stringify({ hello: 1 }));
    expect(() => loadSummary(bad)).toThrow(/not a bench summary/);
    expect(() => loadSummary(join(dir, "missing.json"))).toThrow(/cannot read/);
    expect(readFileSync(suite, "utf8")).toContain("bench-suite");
  });
});
