#!/usr/bin/env node
// The compile step alone: `tsc -p tsconfig.json` when a source is newer than the last build,
// and removal of compiled files whose source is gone (so neither the CLI nor `npm pack` ever
// sees a module that no longer exists). Used by scripts/setup.mjs and by `npm pack` (prepack),
// which must not install anything: no npm ci, no apt-get here.
//   node scripts/build.mjs           compile when stale
//   node scripts/build.mjs --force   compile anyway
// Only plain Node here.

import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** the trees tsconfig.json compiles, each into dist/<tree> */
const TREES = ["src", "bench"];
const OUTPUT = /\.(js|js\.map|d\.ts|d\.ts\.map)$/;

function newest(dir) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith(".ts")) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** Removes dist/<tree>/**.{js,d.ts,maps} whose <tree>/**.ts is gone; returns their paths. */
function prune(distDir, srcDir) {
  const gone = [];
  if (!existsSync(distDir)) return gone;
  for (const e of readdirSync(distDir, { withFileTypes: true })) {
    const p = join(distDir, e.name);
    if (e.isDirectory()) {
      gone.push(...prune(p, join(srcDir, e.name)));
      if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
    } else if (OUTPUT.test(e.name) && !existsSync(join(srcDir, e.name.replace(OUTPUT, ".ts")))) {
      rmSync(p);
      gone.push(p);
    }
  }
  return gone;
}

/**
 * Compiles when needed. `log` gets one line per thing done; returns false when tsc failed.
 */
export function build({ force = false, log = () => {} } = {}) {
  for (const t of TREES) {
    const gone = prune(join(root, "dist", t), join(root, t));
    if (gone.length > 0) log(`removed ${gone.length} compiled file(s) whose source is gone: ${gone.map((p) => relative(root, p)).join(", ")}`);
  }
  const stamp = join(root, "dist", ".build-stamp");
  const srcTime = Math.max(...TREES.map((t) => newest(join(root, t))), statSync(join(root, "tsconfig.json")).mtimeMs);
  const builtTime = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  if (!force && srcTime <= builtTime) return true;
  log("compiling TypeScript (tsc)");
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  if (!existsSync(tsc)) {
    process.stderr.write("build: typescript is not installed: run `npm run setup` (or `npm ci`) first\n");
    return false;
  }
  // tsc reports errors on stdout; send them to stderr so `npm pack --json` keeps a clean stdout
  const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: root, stdio: ["ignore", 2, 2] });
  if (r.status !== 0) {
    process.stderr.write(`build: tsc failed (exit ${r.status ?? r.signal})\n`);
    return false;
  }
  mkdirSync(join(root, "dist"), { recursive: true });
  writeFileSync(stamp, new Date().toISOString());
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quiet = process.env.DMALAB_SETUP_QUIET === "1";
  const ok = build({ force: process.argv.includes("--force"), log: (m) => quiet || process.stderr.write(`build: ${m}\n`) });
  if (ok && !existsSync(join(root, "dist", "src", "index.js"))) {
    process.stderr.write("build: dist/src/index.js is missing (is there a src/index.ts?)\n");
    process.exit(1);
  }
  process.exit(ok ? 0 : 1);
}
