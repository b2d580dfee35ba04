// ELF64 little-endian AArch64 executables, as `dmalab guest` loads them: a static ET_EXEC
// with PT_LOAD segments (loaded at p_paddr: the guest runs with the MMU off, so physical
// addresses are what it executes at), an entry point, and a .symtab kept for fault reports
// and traces. Field offsets are the System V gABI's ELF64 layout.

import { InputError, hex } from "../errors.js";

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EV_CURRENT = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_AARCH64 = 183;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const SHT_SYMTAB = 2;
const SHN_UNDEF = 0;
const SHN_ABS = 0xfff1;
const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;

/** A malformed or unsupported ELF file (exit 2), naming the file and what is wrong. */
export class ElfError extends InputError {}

export interface ElfSegment {
  /** guest-physical load address (p_paddr) */
  paddr: number;
  vaddr: number;
  /** bytes from the file; the rest of memsz is zero (.bss) */
  data: Uint8Array;
  memsz: number;
  /** PF_X | PF_W | PF_R */
  flags: number;
}

export interface ElfSymbol {
  name: string;
  value: number;
  size: number;
  kind: "func" | "object" | "notype";
}

export interface ElfImage {
  entry: number;
  segments: ElfSegment[];
  symbols: ElfSymbol[];
}

/** True when the bytes start with the ELF magic. */
export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && ELF_MAGIC.every((m, i) => b[i] === m);
}

function u64(dv: DataView, off: number, what: string, file: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`${what} ${hex(v)} is beyond 2^53`, file);
  return Number(v);
}

/** Parses a static AArch64 executable; `file` names it in errors. */
export function parseElf(b: Uint8Array, file: string): ElfImage {
  const bad = (why: string): ElfError => new ElfError(why, file);
  if (!isElf(b)) throw bad("not an ELF file (no \\x7fELF magic)");
  if (b.length < EHDR_SIZE) throw bad(`truncated ELF header (${b.length} bytes, the ELF64 header is ${EHDR_SIZE})`);
  if (b[4] !== ELFCLASS64) throw bad(`ELF class ${b[4]}: only ELF64 (class 2) is supported`);
  if (b[5] !== ELFDATA2LSB) throw bad(`ELF data encoding ${b[5]}: only little-endian (1) is supported`);
  if (b[6] !== EV_CURRENT) throw bad(`ELF version ${b[6]}: expected 1`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_AARCH64) throw bad(`e_machine ${machine}: not an AArch64 (183) program`);
  if (type === ET_DYN) throw bad("a position-independent (ET_DYN) ELF: link a static executable (-static -no-pie, scripts/build-guest.sh does)");
  if (type !== ET_EXEC) throw bad(`e_type ${type}: not an executable (ET_EXEC)`);
  const entry = u64(dv, 24, "e_entry", file);
  const phoff = u64(dv, 32, "e_phoff", file);
  const shoff = u64(dv, 40, "e_shoff", file);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  if (phnum === 0) throw bad("no program headers: nothing to load");
  if (phentsize !== PHDR_SIZE) throw bad(`e_phentsize ${phentsize}: expected ${PHDR_SIZE}`);
  if (phoff + phnum * PHDR_SIZE > b.length) throw bad(`truncated: program headers at ${hex(phoff)} (${phnum} of ${PHDR_SIZE} bytes) end past the file's ${b.length} bytes`);

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * PHDR_SIZE;
    const ptype = dv.getUint32(o, true);
    if (ptype === PT_INTERP || ptype === PT_DYNAMIC) throw bad(`program header ${i} is ${ptype === PT_INTERP ? "PT_INTERP" : "PT_DYNAMIC"}: a dynamically linked program; link it -static`);
    if (ptype !== PT_LOAD) continue;
    const flags = dv.getUint32(o + 4, true);
    const offset = u64(dv, o + 8, `segment ${i} p_offset`, file);
    const vaddr = u64(dv, o + 16, `segment ${i} p_vaddr`, file);
    const paddr = u64(dv, o + 24, `segment ${i} p_paddr`, file);
    const filesz = u64(dv, o + 32, `segment ${i} p_filesz`, file);
    const memsz = u64(dv, o + 40, `segment ${i} p_memsz`, file);
    if (filesz > memsz) throw bad(`segment ${i}: p_filesz ${hex(filesz)} > p_memsz ${hex(memsz)}`);
    if (offset + filesz > b.length) throw bad(`truncated: segment ${i} (file bytes ${hex(offset)}-${hex(offset + filesz)}) ends past the file's ${b.length} bytes`);
    if (memsz === 0) continue;
    segments.push({ paddr, vaddr, data: b.subarray(offset, offset + filesz), memsz, flags });
  }
  if (segments.length === 0) throw bad("no PT_LOAD segment with contents: nothing to load");
  for (let i = 0; i < segments.length; i++)
    for (let j = i + 1; j < segments.length; j++) {
      const s = segments[i]!;
      const t = segments[j]!;
      if (s.paddr < t.paddr + t.memsz && t.paddr < s.paddr + s.memsz) throw bad(`segments at ${hex(s.paddr)} and ${hex(t.paddr)} overlap`);
    }
  if (!segments.some((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz)) throw bad(`entry point ${hex(entry)} is in no loaded segment`);

  return { entry, segments, symbols: shnum === 0 || shoff === 0 ? [] : readSymbols(b, dv, shoff, shnum, shentsize, file) };
}

function readSymbols(b: Uint8Array, dv: DataView, shoff: number, shnum: number, shentsize: number, file: string): ElfSymbol[] {
  const bad = (why: string): ElfError => new ElfError(why, file);
  if (shentsize !== SHDR_SIZE) throw bad(`e_shentsize ${shentsize}: expected ${SHDR_SIZE}`);
  if (shoff + shnum * SHDR_SIZE > b.length) throw bad(`truncated: section headers at ${hex(shoff)} (${shnum} of ${SHDR_SIZE} bytes) end past the file's ${b.length} bytes`);
  const sect = (i: number): { type: number; offset: number; size: number; link: number } => {
    const o = shoff + i * SHDR_SIZE;
    return { type: dv.getUint32(o + 4, true), offset: u64(dv, o + 24, `section ${i} sh_offset`, file), size: u64(dv, o + 32, `section ${i} sh_size`, file), link: dv.getUint32(o + 40, true) };
  };
  const out: ElfSymbol[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = sect(i);
    if (s.type !== SHT_SYMTAB) continue;
    if (s.offset + s.size > b.length) throw bad(`truncated: .symtab ends past the file's ${b.length} bytes`);
    if (s.link >= shnum) throw bad(`.symtab links to string table ${s.link}, but there are ${shnum} sections`);
    const str = sect(s.link);
    if (str.offset + str.size > b.length) throw bad(`truncated: .strtab ends past the file's ${b.length} bytes`);
    const strtab = b.subarray(str.offset, str.offset + str.size);
    const name = (at: number): string => {
      let e = at;
      while (e < strtab.length && strtab[e] !== 0) e++;
      return Buffer.from(strtab.subarray(at, e)).toString("latin1");
    };
    for (let o = s.offset; o + SYM_SIZE <= s.offset + s.size; o += SYM_SIZE) {
      const info = b[o + 4]!;
      const shndx = dv.getUint16(o + 6, true);
      const t = info & 0xf;
      if (shndx === SHN_UNDEF || shndx === SHN_ABS) continue;
      if (t !== STT_FUNC && t !== STT_OBJECT && t !== STT_NOTYPE) continue;
      const n = name(dv.getUint32(o, true));
      // mapping symbols ($x, $d) and assembler-local labels say nothing to a reader
      if (n === "" || n.startsWith("$") || n.startsWith(".L")) continue;
      out.push({ name: n, value: Number(dv.getBigUint64(o + 8, true)), size: Number(dv.getBigUint64(o + 16, true)), kind: t === STT_FUNC ? "func" : t === STT_OBJECT ? "object" : "notype" });
    }
  }
  return out;
}
