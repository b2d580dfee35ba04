// `npm run lint` as a test, so that `npm test` (and CI) fails on a lint or knip finding:
// eslint (type-aware, cached in node_modules/.cache/eslint) and knip, each as a child process.
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Run {
  code: number;
  output: string;
}

function run(script: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile("npm", ["run", "--silent", script], { cwd: root, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

describe("lint", () => {
  // a cold eslint run type-checks the whole tree: ~25 s alone on 2 cores, more beside other tests
  it("eslint finds nothing", { timeout: 240_000 }, async () => {
    const r = await run("lint:eslint");
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
  });

  it("the tests type-check (tsc -p test/tsconfig.json)", { timeout: 240_000 }, async () => {
    const r = await run("typecheck:tests");
    expect(r.code, r.output).toBe(0);
  });

  it("knip finds no unused file, export or dependency", { timeout: 120_000 }, async () => {
    const r = await run("lint:knip");
    expect(r.code, r.output).toBe(0);
  });
});
