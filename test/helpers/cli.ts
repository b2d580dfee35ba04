// What the CLI tests share: the repository root, the built CLI run as a child process from
// there, and the set-up `npm test` does (npm packages, compile) for a file run on its own.

import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `node bin/dmalab.js ARGS…` from the repository root */
export function cli(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(root, "bin", "dmalab.js"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });
}

/** scripts/setup.mjs, quietly: builds dist/ when a source changed (call from beforeAll) */
export function setUp(): void {
  spawnSync(process.execPath, [join(root, "scripts", "setup.mjs")], { cwd: root, env: { ...process.env, DMALAB_SETUP_QUIET: "1" }, stdio: "ignore" });
}
