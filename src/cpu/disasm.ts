// One AArch64 instruction word → text, through Debian's libcapstone (4 or 5) over koffi, the
// same way the CPU reaches libunicorn. Optional: without the library a fault report shows
// the instruction as a hex word (scripts/setup.mjs installs it when it can).

import { createRequire } from "node:module";
import { noteMissingHostFeature } from "../host-features.js";

const CS_ARCH_ARM64 = 1; // capstone 4 and 5
const CS_MODE_LITTLE_ENDIAN = 0;

interface Disassembler {
  one(word: number, address: number): string | undefined;
}

type KoffiFn = (...args: unknown[]) => unknown;
interface KoffiLib {
  func(decl: string): KoffiFn;
}
interface Koffi {
  load(name: string): KoffiLib;
  struct(name: string, def: Record<string, string>): unknown;
  pointer(t: unknown): unknown;
  out(t: unknown): unknown;
  decode(ptr: unknown, type: unknown): unknown;
  opaque(name: string): unknown;
}

let cached: Disassembler | null | undefined;

function open(): Disassembler | null {
  const require = createRequire(import.meta.url);
  const koffi = require("koffi") as Koffi;
  let lib: KoffiLib | undefined;
  let major = 0;
  for (const [name, m] of [
    ["libcapstone.so.5", 5],
    ["libcapstone.so.4", 4],
  ] as const) {
    try {
      lib = koffi.load(name);
      major = m;
      break;
    } catch {
      // try the next soname
    }
  }
  if (lib === undefined) return null;
  // struct cs_insn: the instruction bytes grew from 16 to 24 in capstone 5
  const insn = koffi.struct(`dmalab_cs_insn${major}`, {
    id: "uint32_t",
    address: "uint64_t",
    size: "uint16_t",
    bytes: `uint8_t[${major >= 5 ? 24 : 16}]`,
    mnemonic: "char[32]",
    op_str: "char[160]",
    detail: "void *",
  });
  const csOpen = lib.func("int cs_open(int arch, int mode, _Out_ size_t *handle)");
  const csDisasm = lib.func(`size_t cs_disasm(size_t handle, const uint8_t *code, size_t size, uint64_t address, size_t count, _Out_ void **insn)`);
  const csFree = lib.func("void cs_free(void *insn, size_t count)");
  const h = [0];
  if ((csOpen(CS_ARCH_ARM64, CS_MODE_LITTLE_ENDIAN, h) as number) !== 0) return null;
  const handle = h[0];
  const buf = new Uint8Array(4);
  return {
    one(word, address) {
      new DataView(buf.buffer).setUint32(0, word >>> 0, true);
      const out: unknown[] = [null];
      const n = Number(csDisasm(handle, buf, 4, address, 1, out));
      if (n < 1 || out[0] === null) return undefined;
      try {
        const i = koffi.decode(out[0], insn) as { mnemonic: string; op_str: string };
        return i.op_str === "" ? i.mnemonic : `${i.mnemonic}\t${i.op_str}`;
      } finally {
        csFree(out[0], n);
      }
    },
  };
}

/** The instruction as assembly (`ldr x0, [x1]`), or undefined without libcapstone or for a word it cannot decode. */
export function disassemble(word: number, address: number): string | undefined {
  if (cached === undefined) {
    try {
      cached = open();
    } catch (e) {
      noteMissingHostFeature("libcapstone disassembler", e);
      cached = null;
    }
    if (cached === null) noteMissingHostFeature("libcapstone disassembler", new Error("libcapstone.so.5/.so.4 not found"));
  }
  return cached?.one(word, address);
}
