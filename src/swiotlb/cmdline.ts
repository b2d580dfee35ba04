// The `swiotlb=` kernel parameter, parsed as each era's setup_io_tlb_npages does (spec 7.3):
//   5.13: [<nslabs>][,force|,noforce]
//   6.x : [<nslabs>][,<nareas>][,force|,noforce]
// Numbers go through simple_strtoul with base 0 (0x hex, leading 0 octal, else decimal);
// nslabs is rounded up to a multiple of IO_TLB_SEGSIZE. The kernel silently ignores whatever
// it does not understand; dmalab returns that text as `ignored` so callers can warn, and
// `strict` turns it into an InputError.

import { InputError } from "../errors.js";
import { IO_TLB_SEGSIZE } from "../kernel/swiotlb.js";
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

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}
function isXDigit(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
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
  const r: SwiotlbCmdline = {};
  let i = 0;
  if (isDigit(value[i])) {
    const n = simpleStrtoul(value, i);
    i = n.end;
    // ALIGN(n, IO_TLB_SEGSIZE) in unsigned long
    const seg = BigInt(IO_TLB_SEGSIZE);
    r.nslabs = Number(((n.value + seg - 1n) & U64) & ~(seg - 1n));
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
    if (opts.strict) throw new InputError(`swiotlb=${value}: kernel ${profile.version} ignores '${rest}'`);
    r.ignored = rest;
  }
  return r;
}
