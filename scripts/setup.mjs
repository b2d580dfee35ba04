#!/usr/bin/env node
// One set-up step shared by `npm test`, `npm run demo` and `npm run bench`, so that a fresh
// clone needs nothing else: npm packages when node_modules is missing or stale, Debian's
// libunicorn2 (the CPU), and a compile of the TypeScript tree when it changed.
// Only plain Node here: this runs before any package is installed.

import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "./build.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const quiet = process.env.DMALAB_SETUP_QUIET === "1";
const log = (m) => {
  if (!quiet) process.stderr.write(`setup: ${m}\n`);
};

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.status !== 0) {
    process.stderr.write(`setup: \`${cmd} ${args.join(" ")}\` failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}

// 1. npm packages: reinstall when the lock file changed since the last install
const lock = join(root, "package-lock.json");
const stamp = join(root, "node_modules", ".dmalab-lock-sha");
const lockSha = createHash("sha256").update(readFileSync(lock)).digest("hex");
if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== lockSha) {
  log("installing npm packages (npm ci)");
  sh("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
  writeFileSync(stamp, lockSha);
}

// 2. libunicorn2 from Debian (the arm64 CPU); only the CPU needs it
function haveUnicorn() {
  for (const d of ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib", "/lib/x86_64-linux-gnu"])
    if (existsSync(join(d, "libunicorn.so.2"))) return true;
  try {
    return execFileSync("ldconfig", ["-p"], { encoding: "utf8" }).includes("libunicorn.so.2");
  } catch {
    return false;
  }
}
if (!haveUnicorn()) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (isRoot) {
    log("installing libunicorn2 (apt-get update; apt-get install libunicorn2)");
    sh("apt-get", ["update", "-qq"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    sh("apt-get", ["install", "-y", "-qq", "libunicorn2"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  } else {
    process.stderr.write(
      "setup: libunicorn2 (the Unicorn CPU engine) is missing and this is not root.\n" +
        "setup: install it with:  sudo apt-get update && sudo apt-get install -y libunicorn2\n" +
        "setup: everything but the CPU (`dmalab guest`, the CPU tests) works without it.\n",
    );
  }
}

// 2b. Debian's chromium for the report's browser test (test/report/browser.test.ts), driven by
// playwright-core: never a browser download, only the distribution's package
function ensureChromium() {
  if (existsSync("/usr/bin/chromium") || process.env.DMALAB_CHROMIUM) return;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    process.stderr.write(
      "setup: chromium is missing and this is not root; the HTML report's browser test will be skipped.\n" +
        "setup: install it with:  sudo apt-get update && sudo apt-get install -y chromium\n",
    );
    return;
  }
  log("installing chromium (apt-get update; apt-get install chromium) for the report's browser test");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  sh("apt-get", ["update", "-qq"], { env });
  sh("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "chromium"], { env });
}
ensureChromium();

// 3. compile when any source is newer than the last build (scripts/build.mjs, also npm pack's prepack)
if (!build({ log })) process.exit(1);
