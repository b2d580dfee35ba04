// `--trace FILE`: one writer per format behind one small interface, so a command plugs in with
//   const t = openTrace(file, format);  buildMachine(spec, (m) => t.attach(m));
//   t.start();  (after the boot)  ... work ...  warnings = t.finish();

import type { Machine } from "../machine/machine.js";
import { ChromeTraceWriter } from "./chrome.js";
import { ReplayTraceWriter } from "./replay-writer.js";

export interface RunTrace {
  /** listen to the machine's events (before its boot) */
  attach(m: Machine): void;
  /** the boot is done: the pool exists */
  start(): void;
  /** close the file; returns warnings for stderr */
  finish(): string[];
}

export function openTrace(file: string, format: "chrome" | "replay"): RunTrace {
  if (format === "replay") {
    const w = new ReplayTraceWriter(file);
    return {
      attach: (m) => w.attach(m),
      start: () => w.start(),
      finish: () => {
        w.finish();
        return w.warnings;
      },
    };
  }
  const w = new ChromeTraceWriter(file);
  let m: Machine | null = null;
  return {
    attach: (mm) => {
      m = mm;
      w.attach(mm);
    },
    start: () => undefined,
    finish: () => {
      const mm: Machine | null = m;
      w.finish(mm === null ? {} : { machine: mm.desc.name, kernel: mm.profile.version });
      return [];
    },
  };
}
