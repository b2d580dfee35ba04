// One error hierarchy for the whole tool. Every error that reaches the CLI maps to
// exactly one exit code of the table below, and prints as one line.
//
//   0 ok · 1 a guest's own non-zero exit · 2 usage or input error · 3 a fault · 4 a limit reached

export const EXIT_OK = 0;
export const EXIT_GUEST = 1;
export const EXIT_USAGE = 2;
export const EXIT_FAULT = 3;
export const EXIT_LIMIT = 4;

export type ExitCode = 0 | 1 | 2 | 3 | 4;

export abstract class DmalabError extends Error {
  abstract readonly exitCode: ExitCode;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flag, bad argument value, unknown command. */
export class UsageError extends DmalabError {
  readonly exitCode = EXIT_USAGE;
}

/** Malformed input file (trace, preset, swiotlb= string under --strict, ...). */
export class InputError extends DmalabError {
  readonly exitCode = EXIT_USAGE;
  constructor(
    message: string,
    /** where: file name and line, or a JSON path */
    readonly where?: string,
  ) {
    super(where ? `${where}: ${message}` : message);
  }
}

/** A bad argument handed to a library call (a DMA address that is not mapped, a zero size...). */
export class InvalidArgumentError extends DmalabError {
  readonly exitCode = EXIT_USAGE;
}

/** The emulated machine or guest faulted (memory fault, NULL dereference in a boot path, guest exception). */
export class FaultError extends DmalabError {
  readonly exitCode = EXIT_FAULT;
}

/**
 * An invariant of dmalab itself does not hold (a bug in dmalab, not the guest's doing). It stops
 * the emulated machine like a fault (exit 3), so a trap handler never turns it into an errno.
 */
export class InternalError extends FaultError {}

/** An instruction, time or size limit was reached. */
export class LimitError extends DmalabError {
  readonly exitCode = EXIT_LIMIT;
}

export function hex(n: number | bigint): string {
  if (typeof n === "bigint") return "0x" + (n < 0n ? (n & 0xffff_ffff_ffff_ffffn) : n).toString(16);
  return "0x" + n.toString(16);
}

/** control characters, from code points (a regex literal would need escapes lint flags) */
const CONTROL = new RegExp(`[${String.fromCharCode(0)}-${String.fromCharCode(0x1f)}${String.fromCharCode(0x7f)}]`, "g");

/**
 * A value quoted for a one-line message: whole when short, else its start and its length,
 * so a 50 MB line or a 200 KB flag value is never echoed back.
 */
export function quote(s: string, max = 60): string {
  if (s.length <= max) return `'${oneLine(s, max)}'`;
  return `'${oneLine(s, max)}…' (${s.length} characters)`;
}

/**
 * Text from elsewhere (a parser's message, which may quote the input) made fit for a one-line
 * message: control characters (newlines too) shown as dots, at most `max` characters.
 */
export function oneLine(s: string, max: number): string {
  return s.slice(0, max).replace(CONTROL, (c) => (c === "\t" ? " " : "."));
}
