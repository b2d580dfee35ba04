// The HTML reports in a real browser: Debian's chromium driven by playwright-core (no browser
// download; scripts/setup.mjs installs the package). Each page must draw every chart it
// announces (non-blank canvas, the series its data calls for), make no network request and
// raise no error; screenshots go to test-output/browser/.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import type { ReportData } from "../../src/report/model.js";
import { cli, root, setUp } from "../helpers/cli.js";

const dir = join(root, "test-output", "browser");
const chromiumPath = process.env["DMALAB_CHROMIUM"] ?? "/usr/bin/chromium";
const haveChromium = existsSync(chromiumPath);
if (!haveChromium) process.stderr.write(`browser.test: ${chromiumPath} is missing (scripts/setup.mjs installs it as root): skipped\n`);

interface DrawnChart {
  id: string;
  kind: string;
  series: number;
  points: number;
  /** canvas pixels in colour (series, heat cells), not the grey of axes, grid and text */
  inked: number;
}

let browser: Browser | undefined;

function reportData(file: string): ReportData {
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(readFileSync(file, "utf8"));
  return JSON.parse(m![1]!) as ReportData;
}

/** the charts a report's data calls for: id -> series */
function expectedCharts(d: ReportData): Record<string, number> {
  const e: Record<string, number> = {};
  const R = d.run;
  if (R) {
    if (R.pool) {
      const shown = R.pool.areas.length;
      expect(shown).toBe(Math.min(16, R.pool.nareas));
      Object.assign(e, { "pool-heatmap": R.pool.rows.length, "pool-used": 3, "area-used": shown, "area-hiwater": shown });
    }
    Object.assign(e, { "map-sizes": 1, "slots-per-mapping": 1 });
    if (R.devices.length > 0) e["devices"] = 3;
    if (R.hypercalls.length > 0) e["hypercalls"] = 1;
  }
  const B = d.bench;
  if (B) {
    if (B.results.length > 0) Object.assign(e, { throughput: 1, "copy-ceiling": 2 });
    B.latency.forEach((_, i) => (e[`latency-${i}`] = 1));
  }
  if (d.matrix) e["matrix"] = d.matrix.rows.length;
  return e;
}

async function open(file: string, shot: string): Promise<{ charts: DrawnChart[]; requests: string[]; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  const errors: string[] = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  // anything but the file itself would leave the machine: refuse it (and it is recorded above)
  await page.route(/^(?!file:)/, (route) => route.abort());
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector("body[data-ready='1']", { timeout: 20_000 });
  const charts = await page.evaluate(() => {
    // the page's own objects (the test's type library has no DOM)
    interface Canvas {
      width: number;
      height: number;
      getContext(kind: "2d"): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
    }
    interface C {
      id: string;
      kind: string;
      series: number;
      points: number;
      canvas: Canvas | null;
    }
    const list = (globalThis as unknown as { dmalabCharts: C[] }).dmalabCharts;
    return list.map((c) => {
      let inked = -1;
      if (c.canvas !== null) {
        const px = c.canvas.getContext("2d").getImageData(0, 0, c.canvas.width, c.canvas.height).data;
        inked = 0;
        for (let i = 0; i < px.length; i += 4) {
          const r = px[i] ?? 0;
          const g = px[i + 1] ?? 0;
          const b = px[i + 2] ?? 0;
          if ((px[i + 3] ?? 0) > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) inked++;
        }
      }
      return { id: c.id, kind: c.kind, series: c.series, points: c.points, inked };
    });
  });
  await page.screenshot({ path: join(dir, shot), fullPage: true });
  await page.close();
  return { charts, requests, errors };
}

function check(file: string, r: Awaited<ReturnType<typeof open>>): void {
  expect(r.errors).toEqual([]);
  expect(r.requests).toEqual([pathToFileURL(file).href]);
  const want = expectedCharts(reportData(file));
  expect(Object.fromEntries(r.charts.map((c) => [c.id, c.series]))).toEqual(want);
  for (const c of r.charts) {
    if (c.kind === "table") continue;
    expect(c.points, c.id).toBeGreaterThan(0);
    // a drawn chart has its series in colour (axes, grid and labels are grey)
    expect(c.inked, c.id).toBeGreaterThan(300);
  }
}

describe.skipIf(!haveChromium)("reports in headless Chromium", () => {
  beforeAll(async () => {
    setUp();
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  it("run: a pool that runs full (5.13, 128 slots): heat map, pool, areas, sizes, devices", async () => {
    const file = join(dir, "run-513.html");
    const r = cli("run", "--ops", "3000", "--kernel", "5.13", "--swiotlb", "128", "--report", file);
    expect(r.status, r.stderr).toBe(0);
    expect(reportData(file).run!.pool!.fullCount).toBeGreaterThan(0);
    check(file, await open(file, "run-513.png"));
  }, 60_000);

  it("run as a Xen dom0 (6.x, 4 areas, a Raspberry Pi 4 whose eMMC bounces): hypercalls by op and result", async () => {
    const file = join(dir, "run-xen.html");
    const r = cli("run", "--ops", "2000", "--machine", "rpi4-8g", "--xen", "dom0", "--report", file);
    expect(r.status, r.stderr).toBe(0);
    expect(reportData(file).run!.hypercalls.length).toBeGreaterThan(0);
    check(file, await open(file, "run-xen.png"));
  }, 60_000);

  it("bench: throughput, copy ceiling, latency histogram", async () => {
    const file = join(dir, "bench.html");
    const r = cli("bench", "--workload", "pingpong", "--size", "512", "-s", "1", "--report", file);
    expect(r.status, r.stderr).toBe(0);
    expect(reportData(file).bench!.latency.length).toBe(1);
    check(file, await open(file, "bench.png"));
  }, 60_000);
});
