#!/usr/bin/env node
// The CLI runs from the compiled tree; `npm run setup` (run by `npm test` and `npm run demo`) builds it.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist", "src", "cli");
if (!existsSync(join(dist, "main.js"))) {
  process.stderr.write("dmalab: not built yet: run `npm run setup` (installs packages and compiles) first\n");
  process.exit(2);
}
const { main, reportError } = await import(pathToFileURL(join(dist, "main.js")).href);
const { flushAndExit } = await import(pathToFileURL(join(dist, "output.js")).href);
main(process.argv.slice(2)).then(flushAndExit, (e) => flushAndExit(reportError(e)));
