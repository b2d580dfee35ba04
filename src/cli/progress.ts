// Progress of long commands on a terminal (cli-progress, on stderr): a bar with rate and ETA.
// Shown only when both stdout and stderr are terminals, not under --json, not with --quiet:
// piped output and JSON documents stay byte-for-byte what they were.
//
// Plug-in API for a command (run, bench, boot --matrix, soak):
//   const p = createProgress({ total: ops, label: "run", unit: "ops", quiet: a.quiet, json: a.json });
//   ... p.update(done) as work advances (cheap: throttled to 10 redraws/s) ...
//   p.stop();   // always, also on errors (try/finally): clears the bar's line
// A command with no natural count (a timed benchmark) passes its seconds as the total and
// updates with the seconds elapsed.

import cliProgress from "cli-progress";

export interface ProgressOptions {
  /** units of work in all (ops, boots, seconds) */
  total: number;
  /** what the bar is for, first on its line: "run", "bench", "boot --matrix" */
  label: string;
  /** the unit of the rate: "ops" -> "12,345 ops/s" */
  unit?: string;
  quiet?: boolean;
  json?: boolean;
  /** the terminal flags; default: process.stdout.isTTY and process.stderr.isTTY (tests inject them) */
  tty?: { stdout: boolean; stderr: boolean };
  /** where the bar goes (default process.stderr) */
  stream?: NodeJS.WritableStream;
}

export interface Progress {
  /** false when nothing is shown (the calls below do nothing then) */
  readonly shown: boolean;
  update(done: number): void;
  /** when the amount of work is known only once it starts */
  setTotal(total: number): void;
  stop(): void;
}

/** Whether a bar would show: both streams are terminals, no --json, no --quiet. */
export function progressShown(o: Pick<ProgressOptions, "quiet" | "json" | "tty">): boolean {
  const tty = o.tty ?? { stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true };
  return tty.stdout && tty.stderr && o.json !== true && o.quiet !== true;
}

const NONE: Progress = { shown: false, update: () => undefined, setTotal: () => undefined, stop: () => undefined };

function rate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n >= 100 ? 0 : 1);
}

export function createProgress(o: ProgressOptions): Progress {
  if (!progressShown(o) || !(o.total > 0)) return NONE;
  const unit = o.unit ?? "ops";
  const t0 = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      format: `${o.label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
      stream: o.stream ?? process.stderr,
      clearOnComplete: true,
      hideCursor: true,
      barsize: 30,
      etaBuffer: 50,
      fps: 10,
      // a TTY is already required above; this keeps a test's fake stream drawing
      noTTYOutput: true,
      notTTYSchedule: 100,
    },
    cliProgress.Presets.shades_classic,
  );
  let total = o.total;
  bar.start(total, 0, { rate: "0" });
  let stopped = false;
  return {
    shown: true,
    update(done: number): void {
      if (stopped) return;
      const secs = (performance.now() - t0) / 1000;
      bar.update(Math.min(done, total), { rate: rate(secs > 0 ? done / secs : 0) });
    },
    setTotal(n: number): void {
      total = n;
      bar.setTotal(n);
    },
    stop(): void {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
