// Input files (traces, machine descriptions, device tree blobs, guest programs): refused by
// type before a byte is read (a directory, a FIFO, /dev/zero and other special files would
// hang or never end), then read with a size cap or streamed in bounded chunks.

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { InputError } from "../errors.js";

export interface InputFileOptions {
  /** what the file is, for messages: "trace", "machine description"... */
  what: string;
  /** the largest file read whole; a larger one is refused naming the limit */
  maxBytes?: number;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

function codeOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
}

/**
 * Opens `path` for reading and checks it is a regular file. O_NONBLOCK keeps the open itself
 * from waiting for a FIFO's writer; the type check then refuses it.
 */
export function openInputFile(path: string, o: InputFileOptions): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = codeOf(e);
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable (EACCES)" : `cannot be opened (${code})`;
    throw new InputError(`${o.what} ${why}`, path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${o.what} is ${kindOf(st)}, not a regular file`, path);
    if (o.maxBytes !== undefined && st.size > o.maxBytes)
      throw new InputError(`${o.what} of ${st.size} bytes is larger than the ${formatLimit(o.maxBytes)} dmalab reads`, path);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Checks that `path` is a regular file within the size cap, without reading it. */
export function checkInputFile(path: string, o: InputFileOptions): void {
  closeSync(openInputFile(path, o).fd);
}

/** A regular file read whole, at most `maxBytes` (also when the file grows while it is read). */
export function readInputFile(path: string, o: InputFileOptions & { maxBytes: number }): Buffer {
  const { fd, size } = openInputFile(path, o);
  try {
    const buf = Buffer.alloc(Math.min(size, o.maxBytes) + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === buf.length) throw new InputError(`${o.what} is larger than the ${formatLimit(o.maxBytes)} dmalab reads`, path);
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot read ${o.what} (${codeOf(e)})`, path);
  } finally {
    closeSync(fd);
  }
}

/** UTF-8 text, refusing bytes that are not UTF-8 (with the offset of the first bad one). */
export function decodeUtf8(bytes: Uint8Array, what: string, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new InputError(`${what} is not UTF-8 text (bad byte at offset ${firstBadUtf8(bytes)})`, path);
  }
}

function firstBadUtf8(b: Uint8Array): number {
  // a streaming decode accepts a prefix that ends mid-character, so "the prefix decodes" is
  // monotonic: bisect for the shortest prefix that does not
  const decodes = (n: number): boolean => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  let lo = 0;
  let hi = b.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (decodes(mid)) lo = mid;
    else hi = mid;
  }
  return hi - 1;
}

/**
 * The lines of a regular file, read in chunks of `chunkBytes` so memory stays bounded
 * whatever the file's length. A line longer than `maxLineBytes` is refused by its start and
 * its length (counted without being kept). Lines are UTF-8 decoded strictly, `\r\n` allowed.
 */
export function* inputLines(path: string, o: { what: string; maxLineBytes: number; chunkBytes?: number }): Generator<string, void, undefined> {
  const { fd } = openInputFile(path, o);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const chunk = Buffer.alloc(o.chunkBytes ?? 1 << 20);
  let carry: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  let offset = 0;
  const decode = (b: Buffer, at: number): string => {
    try {
      return decoder.decode(b);
    } catch {
      throw new InputError(`${o.what} line ${lineNo}: not UTF-8 text (in the line at byte offset ${at})`, path);
    }
  };
  const tooLong = (start: Buffer, length: number, complete: boolean): InputError =>
    new InputError(`${o.what} line ${lineNo}: a line of ${complete ? "" : "at least "}${length} bytes (starts ${quoteBytes(start)}) is longer than the ${o.maxLineBytes} bytes a line may have`, path);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        throw new InputError(`cannot read ${o.what} (${codeOf(e)})`, path);
      }
      if (n === 0) break;
      let from = 0;
      while (from < n) {
        const nl = chunk.indexOf(0x0a, from);
        const end = nl === -1 || nl >= n ? n : nl;
        if (carry.length + (end - from) > o.maxLineBytes) {
          lineNo++;
          const start = Buffer.concat([carry, chunk.subarray(from, Math.min(end, from + 64))]).subarray(0, 64);
          let length = carry.length + (end - from);
          // count the rest of the line without keeping it, so the message says how long it is
          let complete = end < n;
          while (!complete) {
            try {
              n = readSync(fd, chunk, 0, chunk.length, null);
            } catch {
              break;
            }
            if (n === 0) {
              complete = true;
              break;
            }
            const k = chunk.subarray(0, n).indexOf(0x0a);
            length += k === -1 ? n : k;
            complete = k !== -1;
          }
          throw tooLong(start, length, complete);
        }
        if (end === n) {
          carry = Buffer.concat([carry, chunk.subarray(from, n)]);
          offset += n - from;
          break;
        }
        lineNo++;
        const line = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(from, end)]) : chunk.subarray(from, end);
        const at = offset - carry.length;
        carry = Buffer.alloc(0);
        offset += end + 1 - from;
        from = end + 1;
        yield decode(line, at);
      }
    }
    if (carry.length > 0) {
      lineNo++;
      yield decode(carry, offset - carry.length);
    }
  } finally {
    closeSync(fd);
  }
}

/** `'map 1 0 0x…'…` : the first bytes of a value shown safely, for messages about long input. */
export function quoteBytes(b: Uint8Array, max = 40): string {
  const s = Buffer.from(b.subarray(0, max)).toString("latin1").replace(/[^\x20-\x7e]/g, ".");
  return `'${s}${b.length > max ? "…" : ""}'`;
}

function formatLimit(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} bytes`;
}
