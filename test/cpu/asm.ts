// Hand-assembled A64 instruction words for unit tests (no assembler needed at test time).

export const NOP = 0xd503201f;
export const B_SELF = 0x14000000;
export { addi, brk, hvc, image, ldrw, ldrx, mov64, movz, strw, strx, svc } from "../../src/cpu/a64.js";
export const ldrb = (rt: number, rn: number, off = 0): number => (0x39400000 | (off << 10) | (rn << 5) | rt) >>> 0;
export const ldurx = (rt: number, rn: number, simm9: number): number => (0xf8400000 | ((simm9 & 0x1ff) << 12) | (rn << 5) | rt) >>> 0;
export const UDF = 0x00000000;

/** A minimal ELF64 AArch64 executable: one PT_LOAD of `code` at `paddr`, memsz = code + bss. */
export function tinyElf(code: Uint8Array, paddr = 0x4008_0000, bss = 0, patch?: (dv: DataView) => void): Uint8Array {
  const b = new Uint8Array(64 + 56 + code.length);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 183, true); // EM_AARCH64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, BigInt(paddr), true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint16(58, 64, true);
  dv.setUint32(64, 1, true); // PT_LOAD
  dv.setUint32(68, 5, true);
  dv.setBigUint64(72, 120n, true);
  dv.setBigUint64(80, BigInt(paddr), true);
  dv.setBigUint64(88, BigInt(paddr), true);
  dv.setBigUint64(96, BigInt(code.length), true);
  dv.setBigUint64(104, BigInt(code.length + bss), true);
  b.set(code, 120);
  patch?.(dv);
  return b;
}
