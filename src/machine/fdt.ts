// A reader for flattened device tree blobs (the .dtb a bootloader hands the kernel), as the
// Devicetree Specification (v0.4, chapter 5) lays them out:
//
//   header (10 big-endian u32s) · memory reservation block (u64 address/size pairs ended by
//   a 0/0 pair) · structure block (tokens BEGIN_NODE name, PROP len nameoff value, END_NODE,
//   NOP, END; everything 4-byte aligned) · strings block (NUL-terminated property names).
//
// Pure: bytes in, a tree out. Whatever the bytes, the only thing it throws is FdtError (an
// InputError: exit 2) naming the byte offset and what was wrong there.

import { InputError, hex } from "../errors.js";

export const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
const HEADER_SIZE = 40;
/** The version this reader needs (size_dt_struct appeared in 17); blobs compatible with it (last_comp_version <= 17) read. */
export const FDT_VERSION = 17;
/** Deeper nesting than this is corruption, not a board. */
const MAX_DEPTH = 64;

/** A malformed blob: `offset` is the byte offset in the file where the problem is. */
export class FdtError extends InputError {
  constructor(
    readonly offset: number,
    readonly problem: string,
    kind: "truncated" | "corrupt",
    source?: string,
  ) {
    super(`dtb: ${kind} at offset ${hex(offset)}: ${problem}`, source);
  }
}

export interface FdtProperty {
  readonly name: string;
  readonly value: Uint8Array;
  /** file offset of the property's FDT_PROP token */
  readonly offset: number;
}

export interface FdtNode {
  /** the name with its unit address ("mmc@7e340000"); "" for the root */
  readonly name: string;
  /** "/", "/soc", "/soc/mmc@7e340000" */
  readonly path: string;
  readonly parent: FdtNode | null;
  readonly props: Map<string, FdtProperty>;
  readonly children: FdtNode[];
  /** file offset of the node's FDT_BEGIN_NODE token */
  readonly offset: number;
}

export interface FdtReservation {
  address: bigint;
  size: bigint;
}

export interface Fdt {
  totalSize: number;
  version: number;
  lastCompVersion: number;
  bootCpuidPhys: number;
  /** the memory reservation block, without its 0/0 terminator */
  reservations: FdtReservation[];
  root: FdtNode;
}

const latin1 = new TextDecoder("latin1");

/**
 * Parses a blob. `source` (a file name) prefixes error messages. Only FdtError escapes.
 */
export function parseFdt(bytes: Uint8Array, source?: string): Fdt {
  const len = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const truncated = (off: number, why: string): FdtError => new FdtError(off, why, "truncated", source);
  const corrupt = (off: number, why: string): FdtError => new FdtError(off, why, "corrupt", source);

  if (len < HEADER_SIZE) throw truncated(len, `the file ends inside the ${HEADER_SIZE}-byte header (${len} bytes)`);
  const u32 = (off: number): number => view.getUint32(off, false);
  const magic = u32(0);
  if (magic !== FDT_MAGIC) throw corrupt(0, `bad magic ${hex(magic)} (expected ${hex(FDT_MAGIC)}): not a device tree blob`);
  const totalSize = u32(4);
  const offStruct = u32(8);
  const offStrings = u32(12);
  const offRsvmap = u32(16);
  const version = u32(20);
  const lastComp = u32(24);
  const bootCpuidPhys = u32(28);
  const sizeStrings = u32(32);
  const sizeStruct = u32(36);

  if (version < FDT_VERSION) throw corrupt(20, `version ${version} is too old (this reader needs ${FDT_VERSION})`);
  if (lastComp > FDT_VERSION) throw corrupt(24, `last_comp_version ${lastComp} is newer than ${FDT_VERSION}: not readable by a version ${FDT_VERSION} reader`);
  if (totalSize < HEADER_SIZE) throw corrupt(4, `totalsize ${hex(totalSize)} is smaller than the header`);
  if (totalSize > len) throw truncated(len, `the header says the blob is ${hex(totalSize)} bytes but the file ends at ${hex(len)}`);

  // errors name the header field at fault: the block's offset, or its size
  const block = (what: string, offField: number, sizeField: number, off: number, size: number): void => {
    if (off < HEADER_SIZE) throw corrupt(offField, `the ${what} block offset ${hex(off)} points into the header`);
    if (off > totalSize) throw corrupt(offField, `the ${what} block offset ${hex(off)} is past the end of the blob (${hex(totalSize)})`);
    if (size > totalSize - off) throw corrupt(sizeField, `the ${what} block [${hex(off)}+${hex(size)}] runs past the end of the blob (${hex(totalSize)})`);
  };
  block("structure", 8, 36, offStruct, sizeStruct);
  block("strings", 12, 32, offStrings, sizeStrings);
  if (offStruct % 4 !== 0) throw corrupt(8, `the structure block offset ${hex(offStruct)} is not 4-byte aligned`);
  if (offRsvmap % 8 !== 0) throw corrupt(16, `the memory reservation block offset ${hex(offRsvmap)} is not 8-byte aligned`);
  if (offRsvmap < HEADER_SIZE || offRsvmap >= totalSize) throw corrupt(16, `the memory reservation block offset ${hex(offRsvmap)} is outside the blob`);

  // ---- memory reservation block ----
  const reservations: FdtReservation[] = [];
  for (let off = offRsvmap; ; off += 16) {
    if (off + 16 > totalSize) throw truncated(off, "the memory reservation block has no 0/0 terminator before the end of the blob");
    const address = view.getBigUint64(off, false);
    const size = view.getBigUint64(off + 8, false);
    if (address === 0n && size === 0n) break;
    reservations.push({ address, size });
  }

  // ---- strings block ----
  const stringsEnd = offStrings + sizeStrings;
  const nameCache = new Map<number, string>();
  const propName = (nameoff: number, at: number): string => {
    const cached = nameCache.get(nameoff);
    if (cached !== undefined) return cached;
    if (nameoff >= sizeStrings) throw corrupt(at, `property name offset ${hex(nameoff)} is outside the strings block (${hex(sizeStrings)} bytes)`);
    const start = offStrings + nameoff;
    const nul = bytes.indexOf(0, start);
    if (nul < 0 || nul >= stringsEnd) throw corrupt(at, `property name at strings offset ${hex(nameoff)} runs past the strings block`);
    if (nul === start) throw corrupt(at, `property name at strings offset ${hex(nameoff)} is empty`);
    const s = latin1.decode(bytes.subarray(start, nul));
    nameCache.set(nameoff, s);
    return s;
  };

  // ---- structure block ----
  const structEnd = offStruct + sizeStruct;
  let off = offStruct;
  const token = (): number => {
    if (off + 4 > structEnd) throw truncated(off, "the structure block ends without an FDT_END token");
    const t = u32(off);
    return t;
  };
  const align4 = (n: number): number => (n + 3) & ~3;

  let root: FdtNode | null = null;
  const stack: FdtNode[] = [];
  // child names per node, so a blob with many siblings is checked in linear time
  const childNames = new Map<FdtNode, Set<string>>();
  let ended = false;
  while (!ended) {
    const at = off;
    const t = token();
    off += 4;
    switch (t) {
      case FDT_BEGIN_NODE: {
        if (root !== null && stack.length === 0) throw corrupt(at, "a second top-level node after the root node ended");
        if (stack.length >= MAX_DEPTH) throw corrupt(at, `nodes nested deeper than ${MAX_DEPTH} levels`);
        const nul = bytes.indexOf(0, off);
        if (nul < 0 || nul >= structEnd) throw truncated(off, "node name runs past the structure block");
        const name = latin1.decode(bytes.subarray(off, nul));
        off = align4(nul + 1);
        if (off > structEnd) throw truncated(nul + 1, "node name padding runs past the structure block");
        const parent = stack.length > 0 ? stack[stack.length - 1]! : null;
        if (parent === null && name !== "") throw corrupt(at, `the root node has a name ('${printable(name)}'); it must be empty`);
        if (parent !== null && name === "") throw corrupt(at, `a node below ${parent.path} has an empty name`);
        if (parent !== null && NAME_BAD.test(name)) throw corrupt(at, `node name '${printable(name)}' below ${parent.path} has a '/' or a non-printable character`);
        const path = parent === null ? "/" : parent.path === "/" ? `/${name}` : `${parent.path}/${name}`;
        const node: FdtNode = { name, path, parent, props: new Map(), children: [], offset: at };
        if (parent) {
          let seen = childNames.get(parent);
          if (seen === undefined) childNames.set(parent, (seen = new Set()));
          if (seen.has(name)) throw corrupt(at, `two nodes named ${path}`);
          seen.add(name);
          parent.children.push(node);
        } else root = node;
        stack.push(node);
        break;
      }
      case FDT_END_NODE:
        if (stack.length === 0) throw corrupt(at, "FDT_END_NODE without an open node");
        stack.pop();
        break;
      case FDT_PROP: {
        if (stack.length === 0) throw corrupt(at, "a property outside any node");
        if (off + 8 > structEnd) throw truncated(off, "property header runs past the structure block");
        const vlen = u32(off);
        const nameoff = u32(off + 4);
        off += 8;
        const name = propName(nameoff, at);
        if (vlen > structEnd - off) throw truncated(at, `property '${printable(name)}' value (${hex(vlen)} bytes) runs past the structure block`);
        const node = stack[stack.length - 1]!;
        if (node.props.has(name)) throw corrupt(at, `property '${printable(name)}' appears twice in ${node.path}`);
        node.props.set(name, { name, value: bytes.slice(off, off + vlen), offset: at });
        off = align4(off + vlen);
        if (off > structEnd) throw truncated(structEnd, `property '${printable(name)}' padding runs past the structure block`);
        break;
      }
      case FDT_NOP:
        break;
      case FDT_END:
        if (stack.length > 0) throw corrupt(at, `FDT_END while ${stack[stack.length - 1]!.path} is still open`);
        ended = true;
        break;
      default:
        throw corrupt(at, `unknown structure token ${hex(t)}`);
    }
  }
  if (root === null) throw corrupt(offStruct, "the structure block has no root node");
  return { totalSize, version, lastCompVersion: lastComp, bootCpuidPhys, reservations, root };
}

/** control characters and bytes above ASCII: built from code points, as the regex literals would need escapes lint flags */
const NON_PRINTABLE = new RegExp(`[${String.fromCharCode(0)}-${String.fromCharCode(0x1f)}${String.fromCharCode(0x7f)}-${String.fromCharCode(0xff)}]`, "g");
const NAME_BAD = new RegExp(`[/${String.fromCharCode(0)}-${String.fromCharCode(0x1f)}${String.fromCharCode(0x7f)}-${String.fromCharCode(0xff)}]`);

function printable(s: string): string {
  const t = s.replace(NON_PRINTABLE, "?");
  return t.length > 40 ? t.slice(0, 37) + "..." : t;
}

// ---- property accessors (typed errors for malformed values) -------------------------------

/** A semantic problem in a well-formed blob: a property whose value does not fit its use. */
export function propError(node: FdtNode, prop: string, why: string, source?: string): InputError {
  const p = node.props.get(prop);
  return new InputError(`dtb: ${node.path}: property '${prop}'${p ? ` (offset ${hex(p.offset)})` : ""} ${why}`, source);
}

/** The property as big-endian u32 cells; undefined when absent. */
export function propCells(node: FdtNode, name: string, source?: string): number[] | undefined {
  const p = node.props.get(name);
  if (p === undefined) return undefined;
  if (p.value.length % 4 !== 0) throw propError(node, name, `is ${p.value.length} bytes, not a whole number of 32-bit cells`, source);
  const v = new DataView(p.value.buffer, p.value.byteOffset, p.value.byteLength);
  const out: number[] = [];
  for (let i = 0; i < p.value.length; i += 4) out.push(v.getUint32(i, false));
  return out;
}

/** A one-cell property (#address-cells, phandle...); undefined when absent. */
export function propU32(node: FdtNode, name: string, source?: string): number | undefined {
  const c = propCells(node, name, source);
  if (c === undefined) return undefined;
  if (c.length !== 1) throw propError(node, name, `must be one 32-bit cell (it has ${c.length})`, source);
  return c[0]!;
}

/** A string list (compatible); undefined when absent. */
export function propStrings(node: FdtNode, name: string, source?: string): string[] | undefined {
  const p = node.props.get(name);
  if (p === undefined) return undefined;
  if (p.value.length === 0) return [];
  if (p.value[p.value.length - 1] !== 0) throw propError(node, name, "is not a NUL-terminated string list", source);
  return new TextDecoder("utf-8").decode(p.value.subarray(0, p.value.length - 1)).split("\0");
}

/** A single string (model, bootargs, device_type, status); undefined when absent. */
export function propString(node: FdtNode, name: string, source?: string): string | undefined {
  const l = propStrings(node, name, source);
  if (l === undefined) return undefined;
  return l.join(" ");
}

/** of_read_number: `n` cells from `cells[at]` as one number, keeping the low 64 bits as the kernel's u64 does. */
export function readNumber(cells: readonly number[], at: number, n: number): bigint {
  let r = 0n;
  for (let i = 0; i < n; i++) r = ((r << 32n) | BigInt(cells[at + i] ?? 0)) & 0xffff_ffff_ffff_ffffn;
  return r;
}
