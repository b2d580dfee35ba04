// The npm package, used from outside the checkout: `npm pack` (whose prepack compiles when the
// sources changed), the tarball unpacked into a fresh project's node_modules, the CLI run and
// the library imported from there. Offline: the runtime dependencies are symlinked from this
// checkout's node_modules, nothing is fetched.

import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  exports: { ".": { types: string; import: string } };
};

const tmp = mkdtempSync(join(tmpdir(), "dmalab-pack-"));
const proj = join(tmp, "proj");
const installed = join(proj, "node_modules", pkg.name);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 90_000 });
}

function explain(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}${r.error ? `\nerror: ${r.error.message}` : ""}`;
}

/** `name` and, recursively, its dependencies, symlinked from the checkout's node_modules */
function linkDependency(name: string, done: Set<string>): void {
  if (done.has(name)) return;
  done.add(name);
  const from = join(root, "node_modules", name);
  const to = join(proj, "node_modules", name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(from, to, "dir");
  const dep = JSON.parse(readFileSync(join(from, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  for (const d of Object.keys(dep.dependencies ?? {})) linkDependency(d, done);
}

let files: string[] = [];

beforeAll(() => {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
  delete env.npm_config_dry_run;
  delete env.npm_config_ignore_scripts;
  const r = run("npm", ["pack", "--json", "--pack-destination", tmp], root, env);
  expect(r.status, explain(r)).toBe(0);
  const report = JSON.parse(r.stdout.slice(r.stdout.indexOf("["))) as { filename: string; files: { path: string }[] }[];
  files = report[0]!.files.map((f) => f.path);
  const tgz = join(tmp, report[0]!.filename);

  mkdirSync(installed, { recursive: true });
  const x = run("tar", ["-xzf", tgz, "-C", installed, "--strip-components=1"], tmp);
  expect(x.status, explain(x)).toBe(0);
  const done = new Set<string>();
  for (const d of Object.keys(pkg.dependencies ?? {})) linkDependency(d, done);
  // what npm install does for "bin": node_modules/.bin/dmalab -> ../dmalab/bin/dmalab.js
  mkdirSync(join(proj, "node_modules", ".bin"));
  symlinkSync(join("..", pkg.name, "bin", "dmalab.js"), join(proj, "node_modules", ".bin", "dmalab"));
  writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies: { [pkg.name]: pkg.version } }, null, 2));
}, 180_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("npm pack", () => {
  it("ships the compiled library with its declarations, the CLI, the presets, the guest programs and the licence", () => {
    for (const f of ["package.json", "README.md", "LICENSE", "bin/dmalab.js", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js"]) expect(files).toContain(f);
    expect(files.filter((f) => /^fixtures\/machines\/[^/]+\.json$/.test(f)).length).toBeGreaterThan(0);
    expect(files.filter((f) => /^fixtures\/guest\/[^/]+\.bin$/.test(f)).length).toBeGreaterThan(0);
    for (const f of ["guest/include/dmalab.h", "guest/crt0.S", "guest/lib.c", "guest/guest.ld", "guest/build-guest.sh", "fixtures/guest/hello.elf"]) expect(files).toContain(f);
    expect(readFileSync(join(installed, "LICENSE"), "utf8")).toMatch(/GNU GENERAL PUBLIC LICENSE\s+Version 2, June 1991/);
  });

  it("ships no tests, no TypeScript sources, no source maps and no bench tooling", () => {
    expect(files.filter((f) => f.startsWith("test/") || f.includes("/test/"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    expect(files.filter((f) => f.startsWith("src/") || f.startsWith("dist/bench/") || f.startsWith("scripts/"))).toEqual([]);
  });
});

describe("the installed package, outside the checkout", () => {
  const cli = () => join(installed, "bin", "dmalab.js");

  it("node_modules/.bin/dmalab --version prints the package's version", () => {
    const r = run(join(proj, "node_modules", ".bin", "dmalab"), ["--version"], proj);
    expect(r.status, explain(r)).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("dmalab boot --machine qemu-virt-2g --json finds its preset in the package and prints JSON", () => {
    const r = run(process.execPath, [cli(), "boot", "--machine", "qemu-virt-2g", "--json"], proj);
    expect(r.status, explain(r)).toBe(0);
    const out = JSON.parse(r.stdout) as { machine?: unknown };
    expect(out.machine).toBe("qemu-virt-2g");
  });

  it(`import "${pkg.name}" resolves to the installed copy, and its types file exists`, () => {
    const script = `import * as d from ${JSON.stringify(pkg.name)}; console.log(JSON.stringify({ url: import.meta.resolve(${JSON.stringify(pkg.name)}), keys: Object.keys(d) }));`;
    const r = run(process.execPath, ["--input-type=module", "-e", script], proj);
    expect(r.status, explain(r)).toBe(0);
    const out = JSON.parse(r.stdout) as { url: string; keys: string[] };
    expect(out.url).toBe(pathToFileURL(join(installed, pkg.exports["."].import)).href);
    expect(out.keys.length).toBeGreaterThan(0);
    expect(existsSync(join(installed, pkg.exports["."].types))).toBe(true);
  });

  it("TypeScript finds the declarations through the exports map (NodeNext)", () => {
    writeFileSync(join(proj, "consumer.ts"), `import * as d from ${JSON.stringify(pkg.name)};\nexport const keys: string[] = Object.keys(d);\n`);
    writeFileSync(
      join(proj, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(root, "node_modules", "@types")] },
        files: ["consumer.ts"],
      }),
    );
    const r = run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], proj);
    expect(r.status, explain(r)).toBe(0);
  });
});

/** The first ```ts block of the README's "## Library" section, as written. */
function readmeLibraryBlock(): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const at = readme.indexOf("\n## Library");
  expect(at, "README.md has a '## Library' section").toBeGreaterThan(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, "the Library section has a ```ts block").not.toBeNull();
  return m![1]!;
}

describe("the README's Library example, in a project that installed the tarball", () => {
  it("type-checks (declarations included) and prints `ok: N bytes bounced and verified`", () => {
    const block = readmeLibraryBlock();
    expect(block).toContain(`from "${pkg.name}"`);
    const dir = join(proj, "example");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "example.ts"), block);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, outDir: "out", types: ["node"], typeRoots: [join(root, "node_modules", "@types")] },
        files: ["example.ts"],
      }),
    );
    const t = run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], dir);
    expect(t.status, explain(t)).toBe(0);
    const r = run(process.execPath, [join(dir, "out", "example.js")], proj);
    expect(r.status, explain(r)).toBe(0);
    expect(r.stdout).toMatch(/^ok: [1-9][0-9]* bytes bounced and verified\n$/);
  });
});
