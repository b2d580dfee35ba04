// One self-contained HTML file per report: uPlot (script and style, read from node_modules when
// the report is written), the page's own script and the ReportData document, all inline, so the
// page opens from disk with no network access.

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { InputError } from "../errors.js";
import type { ReportData } from "./model.js";
import { PAGE_CSS, PAGE_JS } from "./page.js";

let uplot: { js: string; css: string } | undefined;

function uplotAssets(): { js: string; css: string } {
  if (uplot !== undefined) return uplot;
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve("uplot/package.json")), "dist");
  uplot = { js: readFileSync(join(dir, "uPlot.iife.min.js"), "utf8"), css: readFileSync(join(dir, "uPlot.min.css"), "utf8") };
  return uplot;
}

/** Text safe inside <script>…</script> and <style>…</style>: no closing tag, no HTML comment opener. */
function inlineSafe(s: string): string {
  return s.replace(/<\/(script|style)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function renderReport(d: ReportData): string {
  const a = uplotAssets();
  // JSON in a data block: "<" escaped so no string in it can close the element
  const json = JSON.stringify(d).replace(/</g, "\\u003c");
  return [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    // no request may leave the page: a strict policy makes any attempt fail loudly
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(d.title)}</title>`,
    `<style>${inlineSafe(a.css)}</style>`,
    `<style>${inlineSafe(PAGE_CSS)}</style>`,
    "</head><body>",
    '<main id="report"></main>',
    `<script type="application/json" id="report-data">${json}</script>`,
    `<script>${inlineSafe(a.js)}</script>`,
    `<script>${inlineSafe(PAGE_JS)}</script>`,
    "</body></html>",
    "",
  ].join("\n");
}

/** Writes the report; a file that cannot be written is an InputError naming it. */
export function writeReport(file: string, d: ReportData): void {
  try {
    writeFileSync(file, renderReport(d));
  } catch (e) {
    throw new InputError(`--report: cannot write it (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
  }
}
