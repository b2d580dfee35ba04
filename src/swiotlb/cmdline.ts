// The `swiotlb=` kernel parameter, parsed as each era's setup_io_tlb_npages does (spec 7.3):
//   5.13: [<nslabs>][,force|,noforce]
//   6.x : [<nslabs>][,<nareas>][,force|,noforce]
// Numbers go through simple_strtoul with base 0 (0x hex, leading 0 octal, else decimal);
// nslabs is rounded up to a multiple of IO_TLB_SEGSIZE. The kernel silently ignores whatever
// it does not understand; dmalab returns that text as `ignored` so callers can warn, and
// `strict` turns it into an InputError.

import { InputError, quote } from "../errors.js";
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { KernelProfile } from "./profile.js";

export interface SwiotlbCmdline {
  /** default_nslabs = ALIGN(N, IO_TLB_SEGSIZE), when a number leads */
  nslabs?: number;
  /** the 6.x second number, handed to swiotlb_adjust_nareas as is (0 and rounding happen there) */
  nareas?: number;
  force?: "force" | "noforce";
  /** the text the kernel ignored, if any */
  ignored?: string;
}

export interface ParseOptions {
  /** throw InputError instead of returning `ignored` */
  strict?: boolean;
}

const U64 = (1n << 64n) - 1n;

/** arm64's COMMAND_LINE_SIZE: the kernel keeps no more of its command line */
export const COMMAND_LINE_SIZE = 2048;
/**
 * The largest nslabs dmalab models: a pool of 2^52 bytes, arm64's largest physical address
 * space. Below it a pool larger than RAM goes through the kernel's own allocation failure
 * (and, on 6.x, its halving retry); above it the kernel's byte count would wrap.
 */
export const MAX_CMDLINE_NSLABS = 2 ** 52 / IO_TLB_SIZE;

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}
function isXDigit(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/** the value as is when short (as the kernel would print it), else quoted by its start */
function shown(value: string): string {
  return value.length <= 40 ? value : quote(value, 40);
}

/** simple_strtoul(s + i, &end, 0): the value modulo 2^64 and the index after the digits */
export function simpleStrtoul(s: string, i: number): { value: bigint; end: number } {
  let base = 10;
  if (s[i] === "0") {
    if (s[i + 1]?.toLowerCase() === "x" && isXDigit(s[i + 2])) base = 16;
    else base = 8;
  }
  if (base === 16) i += 2;
  let v = 0n;
  for (; i < s.length; i++) {
    const d = parseInt(s[i]!, 16);
    if (Number.isNaN(d) || d >= base) break;
    v = (v * BigInt(base) + BigInt(d)) & U64;
  }
  return { value: v, end: i };
}

/** Parses the value of `swiotlb=` (without the "swiotlb=" prefix). */
export function parseSwiotlbCmdline(value: string, profile: KernelProfile, opts: ParseOptions = {}): SwiotlbCmdline {
  if (value.length > COMMAND_LINE_SIZE - "swiotlb=".length)
    throw new InputError(`swiotlb=${quote(value, 40)} is longer than the kernel's command line (COMMAND_LINE_SIZE ${COMMAND_LINE_SIZE})`);
  const r: SwiotlbCmdline = {};
  let i = 0;
  if (isDigit(value[i])) {
    const n = simpleStrtoul(value, i);
    i = n.end;
    // ALIGN(n, IO_TLB_SEGSIZE) in unsigned long
    const seg = BigInt(IO_TLB_SEGSIZE);
    const nslabs = ((n.value + seg - 1n) & U64) & ~(seg - 1n);
    if (nslabs > BigInt(MAX_CMDLINE_NSLABS))
      throw new InputError(
        `swiotlb=${shown(value)}: ${nslabs} slabs is more than the ${MAX_CMDLINE_NSLABS} (a ${2 ** 52 / 2 ** 50} PiB pool, the 52-bit physical address space) dmalab models`,
      );
    r.nslabs = Number(nslabs);
  }
  if (value[i] === ",") i++;
  if (profile.cmdlineAreas) {
    if (isDigit(value[i])) {
      const n = simpleStrtoul(value, i);
      i = n.end;
      // swiotlb_adjust_nareas takes an unsigned int
      r.nareas = Number(n.value & 0xffff_ffffn);
    }
    if (value[i] === ",") i++;
  }
  const rest = value.slice(i);
  if (rest === "force" || rest === "noforce") r.force = rest;
  else if (rest !== "") {
    if (opts.strict) throw new InputError(`swiotlb=${shown(value)}: kernel ${profile.version} ignores ${quote(rest, 40)}`);
    r.ignored = rest;
  }
  return r;
}
