// The reproduction file a failed soak writes and `soak --replay FILE` reads: the machine
// configuration, the seed, where the violation showed, and the shrunk op list. Read with a
// size cap and checked field by field before anything boots.

import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { z } from "zod";
import { InputError, oneLine } from "../errors.js";
import type { MachineConfig } from "../machine/builder.js";
import type { SoakOp } from "./ops.js";

export const REPRO_SCHEMA = "dmalab/soak-repro@1";
/** a reproduction is a few hundred ops at most; anything this large is not one */
export const MAX_REPRO_BYTES = 16 * 1024 * 1024;

const u32 = z.number().int().min(0).max(0xffff_ffff);
const small = z.number().int().min(0).max(1 << 20);
const seg = z.strictObject({ buf: small, off: small, size: z.number().int().min(1).max(1 << 20) });
const dir = z.number().int().min(0).max(2);
const Op = z.discriminatedUnion("k", [
  z.strictObject({ k: z.literal("map"), dev: small, buf: small, off: small, size: z.number().int().min(1).max(1 << 20), dir, seed: u32, longLived: z.boolean().optional(), full: z.boolean().optional() }),
  z.strictObject({ k: z.literal("mapSg"), dev: small, segs: z.array(seg).min(1).max(16), dir, seed: u32, full: z.boolean().optional() }),
  z.strictObject({ k: z.literal("unmap"), m: z.number().int().min(0) }),
  z.strictObject({ k: z.literal("sync"), m: z.number().int().min(0), toCpu: z.boolean(), off: small, len: small }),
  z.strictObject({ k: z.literal("devWrite"), m: z.number().int().min(0), off: small, len: z.number().int().min(1).max(1 << 20), seed: u32 }),
  z.strictObject({ k: z.literal("cpuWrite"), buf: small, off: small, len: z.number().int().min(1).max(1 << 20), seed: u32 }),
  z.strictObject({ k: z.literal("engine"), src: z.number().int().min(0), dst: z.number().int().min(0), len: z.number().int().min(1).max(1 << 24), error: z.boolean().optional() }),
  z.strictObject({
    k: z.literal("hypercall"),
    what: z.enum(["decrease", "populate", "exchange", "bad-cmd", "bad-exchange", "decrease-unmapped", "xen-version"]),
    page: small,
    fail: z.boolean().optional(),
    enomemAt: z.number().int().min(1).optional(),
  }),
]);

const Config = z.strictObject({
  machine: z.string().max(4096).optional(),
  kernel: z.string().max(64).optional(),
  xen: z.string().max(64).optional(),
  features: z.array(z.string().max(64)).max(8).optional(),
  xenVersion: z.string().max(64).optional(),
  contig: z.string().max(64).optional(),
  swiotlb: z.string().max(4096).optional(),
  strict: z.boolean().optional(),
  dmaDebug: z.union([z.boolean(), z.literal("strict")]).optional(),
});

const Repro = z.strictObject({
  schema: z.literal(REPRO_SCHEMA),
  config: Config,
  seed: u32,
  op: z.number().int().min(-1),
  violation: z.strictObject({ invariant: z.string().max(64), message: z.string().max(4096) }),
  ops: z.array(z.strictObject({ index: z.number().int().min(0), op: Op })).max(1_000_000),
});

export type ReproFile = z.infer<typeof Repro> & { ops: { index: number; op: SoakOp }[]; config: MachineConfig };

/** Reads and checks a reproduction file; InputError (exit 2) naming what is wrong. */
export function readRepro(path: string): ReproFile {
  let fd: number;
  try {
    // non-blocking: a FIFO must not hang the open before the type check refuses it
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new InputError(`cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, path);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError("not a regular file", path);
    if (st.size > MAX_REPRO_BYTES) throw new InputError(`${st.size} bytes: a soak reproduction is at most ${MAX_REPRO_BYTES}`, path);
    const buf = Buffer.alloc(Math.min(st.size, MAX_REPRO_BYTES) + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > MAX_REPRO_BYTES) throw new InputError(`more than ${MAX_REPRO_BYTES} bytes: not a soak reproduction`, path);
      if (n === buf.length) break;
    }
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw new InputError("not UTF-8 text", path);
    }
  } finally {
    closeSync(fd);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`not JSON: ${oneLine((e as Error).message, 120)}`, path);
  }
  const r = Repro.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new InputError(`not a ${REPRO_SCHEMA} file: ${i.path.join(".") || "(top level)"}: ${i.message.slice(0, 160)}`, path);
  }
  return r.data;
}
