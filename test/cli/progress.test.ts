// The progress bar shows only on a terminal (stdout and stderr both TTYs), never under --json
// or --quiet; when shown it draws rate and ETA on its stream and clears its line at the end.

import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { Writable } from "node:stream";
import { createProgress, progressShown } from "../../src/cli/progress.js";
import { root, setUp } from "../helpers/cli.js";
import { join } from "node:path";

function sink(): { stream: Writable & { isTTY?: boolean; columns?: number }; text: () => string } {
  let out = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = true;
  stream.columns = 120;
  return { stream, text: () => out };
}

describe("progress gating", () => {
  const both = { stdout: true, stderr: true };
  it("shown only when both streams are terminals and neither --json nor --quiet", () => {
    expect(progressShown({ tty: both })).toBe(true);
    expect(progressShown({ tty: { stdout: false, stderr: true } })).toBe(false);
    expect(progressShown({ tty: { stdout: true, stderr: false } })).toBe(false);
    expect(progressShown({ tty: both, json: true })).toBe(false);
    expect(progressShown({ tty: both, quiet: true })).toBe(false);
  });

  it("draws label, counts, rate and ETA on its stream, and nothing when gated off", () => {
    const s = sink();
    const p = createProgress({ total: 1000, label: "run", unit: "ops", tty: { stdout: true, stderr: true }, stream: s.stream });
    expect(p.shown).toBe(true);
    p.update(500);
    p.stop();
    expect(s.text()).toMatch(/run \[.*\] \d+% \| \d+\/1000 ops \| [\d.k]+ ops\/s \| ETA/);
    const q = sink();
    for (const o of [{ json: true }, { quiet: true }, { tty: { stdout: false, stderr: true } }]) {
      const g = createProgress({ total: 1000, label: "run", tty: { stdout: true, stderr: true }, stream: q.stream, ...o });
      g.update(10);
      g.stop();
      expect(g.shown).toBe(false);
    }
    expect(q.text()).toBe("");
  });
});

// a real pseudo-terminal through util-linux's `script`, when the machine has it
const haveScript = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;

describe.runIf(haveScript)("progress on a pseudo-terminal", () => {
  const bin = join(root, "bin", "dmalab.js");
  const inPty = (args: string): string =>
    spawnSync("script", ["-qec", `${process.execPath} ${bin} ${args}`, "/dev/null"], { cwd: root, encoding: "utf8", timeout: 120_000 }).stdout;

  it("run draws the bar on a terminal; --quiet and --json do not; a pipe gets none", () => {
    setUp();
    expect(inPty("run --ops 5000")).toMatch(/run \[[^\]]*\] \d+% \| \d+\/5000 ops/);
    expect(inPty("run --ops 5000 --quiet")).not.toMatch(/ops\/s \| ETA/);
    expect(inPty("run --ops 5000 --json")).not.toMatch(/ops\/s \| ETA/);
    const piped = spawnSync(process.execPath, [bin, "run", "--ops", "5000"], { cwd: root, encoding: "utf8" });
    expect(piped.stderr).not.toMatch(/ETA/);
  }, 120_000);
});
