// Every `dmalab …` command the READMEs show runs, from the repository root, with the exit
// code the README documents (`# exit N` in its comment; 0 otherwise). A command marked
// "template" (a placeholder the reader fills in, or one that rewrites committed files) is
// not run. README.md: lines of its code blocks; bench/README.md: the `node bin/dmalab.js …`
// commands of its text and tables.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { root, setUp } from "./helpers/cli.js";


interface Example {
  file: string;
  line: number;
  command: string;
  exit: number;
  template: boolean;
}

function fromReadme(): Example[] {
  const out: Example[] = [];
  const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
  let inBlock = false;
  lines.forEach((l, i) => {
    if (l.startsWith("```")) {
      inBlock = !inBlock;
      return;
    }
    if (!inBlock || !/(^|<\()dmalab /.test(l)) return;
    // the comment starts at the first " #" (bash would treat it as one too, and run the rest)
    const hash = l.search(/\s#/);
    const comment = hash >= 0 ? l.slice(hash) : "";
    const command = (hash >= 0 ? l.slice(0, hash) : l).trim();
    const exit = /# exit (\d)/.exec(comment);
    out.push({ file: "README.md", line: i + 1, command, exit: exit ? Number(exit[1]) : 0, template: /\btemplate\b/.test(comment) });
  });
  return out;
}

function fromBenchReadme(): Example[] {
  const out: Example[] = [];
  const lines = readFileSync(join(root, "bench", "README.md"), "utf8").split("\n");
  lines.forEach((l, i) => {
    for (const m of l.matchAll(/`([^`]*bin\/dmalab\.js[^`]*)`/g))
      out.push({ file: "bench/README.md", line: i + 1, command: m[1]!, exit: 0, template: /\btemplate\b/.test(l) });
  });
  return out;
}

const examples = [...fromReadme(), ...fromBenchReadme()];

/** Runs one command line in bash, `dmalab` being this checkout's CLI. */
function runLine(command: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const script = `dmalab() { node bin/dmalab.js "$@"; }\n${command}\n`;
    const p = spawn("bash", ["-c", script], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => resolve({ code, stderr }));
  });
}

beforeAll(() => {
  setUp();
}, 120_000);

describe("the READMEs' commands", () => {
  it("are found, and every template is marked as one", () => {
    expect(examples.filter((e) => e.file === "README.md").length).toBeGreaterThan(15);
    expect(examples.filter((e) => e.file === "bench/README.md").length).toBeGreaterThan(4);
    // a placeholder must not pass for a runnable command
    for (const e of examples.filter((x) => !x.template)) expect(e.command, `${e.file}:${e.line}`).not.toMatch(/\[|<[a-zA-Z]|trace\.txt|prog\.bin|board\.dtb/);
  });

  const runnable = examples.filter((e) => !e.template);
  it.each(runnable.map((e) => [`${e.file}:${e.line} ${e.command}`, e] as const))("%s", { timeout: 120_000 }, async (_name, e) => {
    const r = await runLine(e.command);
    expect(r.code, r.stderr).toBe(e.exit);
  });
});
