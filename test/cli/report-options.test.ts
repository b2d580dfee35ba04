// --report / --trace paths are checked before any work: a bad one is exit 2 with one line.

import { beforeAll, describe, expect, it } from "vitest";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { InputError, UsageError } from "../../src/errors.js";
import { parseReportFlags } from "../../src/cli/report-options.js";
import { cli, root, setUp } from "../helpers/cli.js";

const dir = join(root, "test-output", "report-options");

beforeAll(() => {
  mkdirSync(dir, { recursive: true });
  setUp();
}, 120_000);

describe("parseReportFlags", () => {
  it("refuses a directory, a missing parent, and one file for both", () => {
    expect(() => parseReportFlags({ report: dir })).toThrow(new InputError("--report: is a directory, not a file", dir));
    expect(() => parseReportFlags({ trace: join(dir, "nope", "t.json") })).toThrow(/--trace: cannot create a file in/);
    const f = join(dir, "same.out");
    expect(() => parseReportFlags({ report: f, trace: f })).toThrow(new UsageError("--report and --trace name the same file"));
    expect(parseReportFlags({ report: join(dir, "r.html"), trace: join(dir, "t.json"), traceFormat: "replay", quiet: true })).toEqual({
      report: join(dir, "r.html"),
      trace: join(dir, "t.json"),
      traceFormat: "replay",
      quiet: true,
    });
  });
});

describe("the commands check them first", () => {
  it("run, bench and boot exit 2 with one line, before any work", () => {
    for (const args of [
      ["run", "--ops", "100000000", "--report", dir],
      ["run", "--ops", "100000000", "--trace", join(dir, "missing", "t.json")],
      ["bench", "-s", "300", "--report", dir],
      ["boot", "--matrix", "--report", dir],
      ["boot", "--report", join(dir, "b.html")],
      ["run", "--trace", join(dir, "t.json"), "--trace-format", "perf"],
    ]) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
    }
  }, 120_000);
});
