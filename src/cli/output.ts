// Output helpers. Node's stdout is asynchronous when piped: exit only once it has drained,
// so nothing a command printed is lost. A failed write (a full disk, a reader that closed
// the pipe) is an error: one line on stderr and exit 2 (EXIT_USAGE, the input/output error
// code), never a silent 0 and never a stack trace.

import { writeSync } from "node:fs";
import { EXIT_USAGE } from "../errors.js";

export function out(line: string): void {
  process.stdout.write(line + "\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
}

const WHY: Record<string, string> = {
  ENOSPC: "no space left on device",
  EPIPE: "the reader closed the pipe",
  EIO: "input/output error",
  EBADF: "stdout is not open for writing",
  EFBIG: "file too large",
  EDQUOT: "disk quota exceeded",
};

/** "cannot write the output: ENOSPC (no space left on device)" */
export function outputErrorMessage(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code ?? "error";
  const why = WHY[code];
  return `cannot write the output: ${code}${why !== undefined ? ` (${why})` : ""}`;
}

let reported = false;

/** Reports a failed write of stdout once, synchronously (stderr may itself be gone), and exits 2. */
function failOutput(e: unknown): never {
  if (!reported) {
    reported = true;
    try {
      writeSync(2, `dmalab: ${outputErrorMessage(e)}\n`);
    } catch {
      /* stderr is gone too: the exit code still says it */
    }
  }
  process.exit(EXIT_USAGE);
}

/** The error stdout has failed with, if any (a write to a full disk, a closed pipe). */
export function stdoutError(): Error | null {
  return process.stdout.errored ?? null;
}

export function flushAndExit(code: number): void {
  process.exitCode = code;
  const done = (): void => {
    const e = stdoutError();
    if (e !== null) failOutput(e);
    process.exit(code);
  };
  let pending = 2;
  const one = (): void => {
    if (--pending === 0) done();
  };
  // an empty write calls back once everything before it is written (or has failed)
  process.stdout.write("", (e) => {
    if (e) failOutput(stdoutError() ?? e);
    one();
  });
  process.stderr.write("", one);
}

/**
 * Makes a failed write of stdout an error wherever it happens: one line on stderr, exit 2.
 * A reader that goes away early (`dmalab bench --json | head -1`) counts: a script that
 * wanted the whole output must learn it did not get it. A failed stderr only exits 2.
 */
let watching = false;
export function watchOutput(): void {
  if (watching) return;
  watching = true;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => failOutput(e));
  process.stderr.on("error", () => process.exit(EXIT_USAGE));
}

/**
 * Output of a command that streams (replay of a long trace): held in memory up to
 * `holdBytes`, so that an input error found before then leaves stdout untouched, then written
 * as it comes, waiting for a slow reader (`await drain()` when write() says so) so that
 * memory stays bounded.
 */
export class StreamedOutput {
  private held: string[] = [];
  private heldBytes = 0;
  private batch = "";
  private streaming = false;
  private blocked = false;

  constructor(private readonly holdBytes: number) {}

  /** Appends text; true when the caller should `await drain()` before writing more. */
  write(s: string): boolean {
    this.batch += s;
    if (this.batch.length < 1 << 16) return false;
    if (this.streaming) return this.flushBatch();
    // held text in 64 KiB strings, not one string per line (each small string costs a header)
    this.held.push(this.batch);
    this.heldBytes += this.batch.length;
    this.batch = "";
    if (this.heldBytes <= this.holdBytes) return false;
    this.streaming = true;
    for (const h of this.held) if (!process.stdout.write(h)) this.blocked = true;
    this.held = [];
    return this.flushBatch();
  }

  private flushBatch(): boolean {
    const e = stdoutError();
    if (e !== null) failOutput(e);
    if (this.batch.length > 0 && !process.stdout.write(this.batch)) this.blocked = true;
    this.batch = "";
    return this.blocked;
  }

  /** Waits until stdout has taken what was written (or exits 2 when it failed). */
  async drain(): Promise<void> {
    if (!this.blocked) return;
    await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
    this.blocked = false;
  }

  /** Everything written, held or batched, goes out. */
  async end(): Promise<void> {
    this.streaming = true;
    this.batch = this.held.join("") + this.batch;
    this.held = [];
    this.flushBatch();
    await this.drain();
  }
}
