// Flag values every command parses the same way: integers (decimal or 0x hex, `_` allowed)
// and output paths, which are checked before any work starts.

import { accessSync, constants, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InputError, UsageError } from "../errors.js";
import { parseNumber } from "../machine/units.js";

/** An integer flag in [min, max], decimal or 0x hex; anything else names the flag and the value. */
export function parseIntArg(flag: string, v: string, min: number, max: number): number {
  const s = v.trim().replace(/_/g, "");
  const n = /^0x[0-9a-f]+$/i.test(s) ? Number.parseInt(s.slice(2), 16) : /^[0-9]+$/.test(s) ? Number(s) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag} '${v}': must be an integer ${min}..${max}`);
  return n;
}

/**
 * `--out FILE`: the file must be creatable or writable, and not a directory, so that a long
 * run does not end in an error that loses its result.
 */
export function checkWritable(flag: string, path: string): void {
  const p = resolve(path);
  let isDir: boolean;
  try {
    isDir = statSync(p).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new InputError(`${flag}: cannot use it: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, path);
    const dir = dirname(p);
    try {
      if (!statSync(dir).isDirectory()) throw new InputError(`${flag}: ${dir} is not a directory`, path);
      accessSync(dir, constants.W_OK);
    } catch (e2) {
      if (e2 instanceof InputError) throw e2;
      throw new InputError(`${flag}: cannot create a file in ${dir}: ${(e2 as NodeJS.ErrnoException).code ?? String(e2)}`, path);
    }
    return;
  }
  if (isDir) throw new InputError(`${flag}: is a directory, not a file`, path);
  if (!statSync(p).isFile()) throw new InputError(`${flag}: is not a regular file (a device, FIFO or socket)`, path);
  try {
    accessSync(p, constants.W_OK);
  } catch (e) {
    throw new InputError(`${flag}: not writable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, path);
  }
}

/** `--mem`: "1GiB", "0x4000_0000", "1073741824". */
export function parseMemFlag(v: string): number {
  const p = parseNumber(v);
  if (!p.ok) throw new UsageError(`--mem '${v}': ${p.why}`);
  if (p.value === 0) throw new UsageError(`--mem '${v}': must be a positive size`);
  return p.value;
}

/** the most shards a campaign is split into */
const MAX_SHARDS = 1_000_000;

/**
 * `--shard K/N`: shard K of N, K from 0 to N-1 (as a Kubernetes indexed Job's
 * JOB_COMPLETION_INDEX or a Slurm array's task id from 0 count).
 */
export function parseShard(v: string): { k: number; n: number } {
  const m = /^([0-9]{1,7})\/([0-9]{1,7})$/.exec(v.trim());
  if (m === null) throw new UsageError(`--shard '${v.slice(0, 40)}': expected K/N, e.g. 0/1000 (K from 0 to N-1)`);
  const k = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1 || n > MAX_SHARDS || k >= n) throw new UsageError(`--shard '${v}': K must be 0..N-1 and N 1..${MAX_SHARDS}`);
  return { k, n };
}
