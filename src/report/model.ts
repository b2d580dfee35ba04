// The data an HTML report shows: one typed document per command, filled by the command and
// handed to writeReport (html.ts). Everything is already downsampled here: the page only draws.
//
// Plug-in API for a command (run, bench, boot --matrix, soak):
//   const rec = new PoolRecorder();             // optional: pool occupancy, sizes, hypercalls
//   buildMachine(spec, (m) => rec.attach(m));   // before the boot, so its hypercalls count
//   rec.start();  ... work ...  const run = rec.finish(devices, kernelLog);
//   writeReport(file, { schema: REPORT_SCHEMA, kind: "soak", title, config: reportConfig(...), run, notes: [] });
// Each section (run, bench, matrix) is optional: the page draws the ones present.

export const REPORT_SCHEMA = "dmalab/report@1";

/** What the page says about the run so that it stands alone. */
export interface ReportConfig {
  /** the command line that reproduces the run, starting with "dmalab" */
  command: string;
  machine: string;
  kernel: string;
  /** the swiotlb= value in force ("" for the machine's default) */
  swiotlb: string;
  xen: { role: string; version?: string };
  seed?: number;
  /** anything else worth a line: workload, ops, threads, page size… */
  extra: [string, string][];
  /** ISO time the report was written */
  generated: string;
}

export interface Histogram {
  /** bucket labels ("≤64", "65-128"…) */
  labels: string[];
  counts: number[];
}

/** The pool over time: sampled every `every` pool operations (map or unmap), at most a few hundred samples. */
export interface PoolTimeline {
  pool: string;
  nslabs: number;
  nareas: number;
  /** slots per area (the tail past nareas * areaNslabs is never searched) */
  areaNslabs: number;
  /** x of each sample: pool operations (swiotlb map + unmap) so far */
  x: number[];
  /** heat-map rows, in slot order */
  rows: { area: number; firstSlot: number; slots: number }[];
  /** base64 of a [sample][row] byte matrix: 0..255 = the row's slots in use at the sample's end (255 = all) */
  occupancy: string;
  /** io_tlb_used at each sample (slots) */
  used: number[];
  /** the largest io_tlb_used between the previous sample and this one */
  usedPeak: number[];
  /** io_tlb_used_hiwater at each sample */
  hiwater: number[];
  /** the areas the per-area series are for: all, or the 16 with the highest high-water mark */
  areas: number[];
  /** per area of `areas`: used slots at each sample */
  areaUsed: number[][];
  /** per area of `areas`: the largest used count reached so far, at each sample */
  areaHiwater: number[][];
  /** x of each "swiotlb buffer is full" (at most 1000; `fullCount` has them all) */
  full: number[];
  fullCount: number;
}

export interface RunSection {
  /** label / value lines of the run's own summary */
  summary: [string, string][];
  pool: PoolTimeline | null;
  /** swiotlb mapping sizes (bytes) */
  mapSizes: Histogram;
  /** slots each bounce mapping took */
  slotsPerMapping: Histogram;
  devices: { name: string; bounced: number; direct: number; failed: number }[];
  /** Xen hypercalls by op ("memory_op/XENMEM_exchange") and result ("0", "-ENOMEM") */
  hypercalls: { op: string; ret: string; count: number }[];
  /** kernel log lines (the first few hundred) */
  kernelLog: string[];
}

export interface LatencyFigure {
  label: string;
  /** bucket lower edges in ns (log scale) and counts */
  edgesNs: number[];
  counts: number[];
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  samples: number;
}

export interface BenchSection {
  /** one per measured workload / run */
  results: { label: string; pairsPerSec: number; bouncedBytesPerSec: number; copyBytesPerSec: number; fractionOfCopyLimit: number }[];
  latency: LatencyFigure[];
  /** the kernel tool's report lines, when it ran */
  toolLines: string[];
}

export interface MatrixSection {
  rows: { machine: string; kernel: string; xen: string; outcome: string; fault?: string }[];
}

export interface ReportData {
  schema: typeof REPORT_SCHEMA;
  kind: "run" | "bench" | "boot-matrix" | "soak";
  title: string;
  config: ReportConfig;
  run?: RunSection;
  bench?: BenchSection;
  matrix?: MatrixSection;
  /** lines shown under the title (e.g. what was left out) */
  notes: string[];
}

/** `dmalab ARGS…` with shell quoting, from this process's arguments. */
export function commandLine(argv: readonly string[] = process.argv.slice(2)): string {
  const q = (a: string): string => (/^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ["dmalab", ...argv.map(q)].join(" ");
}

/** Log-2 buckets from min to max: ≤64, 65-128, …; values past max count in the last. */
export class Log2Histogram {
  private readonly counts: number[];
  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {
    this.counts = new Array<number>(Math.log2(max / min) + 1).fill(0);
  }
  add(v: number): void {
    let i = 0;
    let edge = this.min;
    while (v > edge && edge < this.max) {
      edge *= 2;
      i++;
    }
    this.counts[Math.min(i, this.counts.length - 1)]!++;
  }
  /** labels: "≤64", "≤128"… (each bucket holds what is above the previous edge), or with `ranges` "1", "2", "3-4"… */
  histogram(fmt: (n: number) => string = String, ranges = false): Histogram {
    const labels: string[] = [];
    let lo = 0;
    for (let i = 0, edge = this.min; i < this.counts.length; i++, edge *= 2) {
      labels.push(!ranges ? `≤${fmt(edge)}` : lo + 1 === edge ? fmt(edge) : `${fmt(lo + 1)}-${fmt(edge)}`);
      lo = edge;
    }
    return { labels, counts: [...this.counts] };
  }
}

/** Bytes as 64, 1K, 64K. */
export function shortBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}
