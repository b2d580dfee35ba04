// Output helpers. Node's stdout is asynchronous when piped: exit only once it has drained,
// so nothing a command printed is lost.

export function out(line: string): void {
  process.stdout.write(line + "\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
}

export function flushAndExit(code: number): void {
  process.exitCode = code;
  const done = (): void => process.exit(code);
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) {
    setImmediate(done);
    return;
  }
  let pending = 2;
  const one = (): void => {
    if (--pending === 0) done();
  };
  process.stdout.write("", one);
  process.stderr.write("", one);
}

/**
 * A reader that goes away early (`dmalab bench --json | head -1`) is not an error: stop
 * quietly, with the exit code the command had so far, instead of an unhandled EPIPE trace.
 */
export function quietOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
      throw e;
    });
}
