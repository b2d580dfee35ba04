// What `run`, `guest` and `bench` say about CONFIG_DMA_API_DEBUG when their work ends: the
// drivers are unbound (mappings still live are reported as the kernel reports them at unbind),
// then every report, printed or not, goes to the JSON document and a count to the text.

import type { DmaDebugSummary } from "../dma/debug.js";
import type { Machine } from "../machine/machine.js";

/** BUS_NOTIFY_UNBOUND_DRIVER for every bound driver, in device order; null without dma-debug. */
export function releaseDrivers(m: Pick<Machine, "api" | "devices">): DmaDebugSummary | null {
  const dbg = m.api.debug;
  if (dbg === null) return null;
  dbg.releaseDevices(m.devices.filter((d) => d.probed).map((d) => d.dev));
  return dbg.summary();
}

/** The text report's lines: the count, then the kernel log's lines since `runLog` began (the reports printed). */
export function formatDmaDebug(s: DmaDebugSummary, runLog: readonly string[]): string[] {
  const o = [`dma-debug (${s.mode}): ${s.errorCount} error${s.errorCount === 1 ? "" : "s"} reported${s.errorCount > 0 ? ` (${s.reports.filter((r) => r.printed).length} printed)` : ""}`];
  for (const l of runLog) if (l.startsWith("DMA-API: ") || l.startsWith("One of leaked entries details: ")) o.push(`  ${l}`);
  return o;
}
