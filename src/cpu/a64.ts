// A64 instruction words built in code (Arm ARM C6): what the guest fuzzer emits and what the
// tests hand-assemble, so that neither needs an assembler at run time.

export const movz = (rd: number, imm: number, hw = 0): number => (0xd2800000 | (hw << 21) | ((imm & 0xffff) << 5) | rd) >>> 0;
export const movk = (rd: number, imm: number, hw = 0): number => (0xf2800000 | (hw << 21) | ((imm & 0xffff) << 5) | rd) >>> 0;
/** ADD Xd, Xn, #imm12 */
export const addi = (rd: number, rn: number, imm: number): number => (0x91000000 | ((imm & 0xfff) << 10) | (rn << 5) | rd) >>> 0;
/** MOV Xd, Xm (ORR Xd, XZR, Xm) */
export const movx = (rd: number, rm: number): number => (0xaa0003e0 | (rm << 16) | rd) >>> 0;
export const ldrx = (rt: number, rn: number, off = 0): number => (0xf9400000 | ((off / 8) << 10) | (rn << 5) | rt) >>> 0;
export const strx = (rt: number, rn: number, off = 0): number => (0xf9000000 | ((off / 8) << 10) | (rn << 5) | rt) >>> 0;
export const ldrw = (rt: number, rn: number, off = 0): number => (0xb9400000 | ((off / 4) << 10) | (rn << 5) | rt) >>> 0;
export const strw = (rt: number, rn: number, off = 0): number => (0xb9000000 | ((off / 4) << 10) | (rn << 5) | rt) >>> 0;
export const hvc = (imm: number): number => (0xd4000002 | ((imm & 0xffff) << 5)) >>> 0;
export const svc = (imm: number): number => (0xd4000001 | ((imm & 0xffff) << 5)) >>> 0;
export const brk = (imm: number): number => (0xd4200000 | ((imm & 0xffff) << 5)) >>> 0;

/** Loads a 64-bit constant into Xd: MOVZ, then a MOVK per non-zero upper half-word. */
export function mov64(rd: number, v: bigint | number): number[] {
  const b = BigInt.asUintN(64, BigInt(v));
  const out = [movz(rd, Number(b & 0xffffn), 0)];
  for (let hw = 1; hw < 4; hw++) {
    const part = Number((b >> BigInt(16 * hw)) & 0xffffn);
    if (part !== 0) out.push(movk(rd, part, hw));
  }
  return out;
}

/** Instruction words as a little-endian image. */
export function image(words: readonly number[]): Uint8Array {
  const b = new Uint8Array(words.length * 4);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return b;
}

/** ADD Xd, Xn, Xm */
export const addx = (rd: number, rn: number, rm: number): number => (0x8b000000 | (rm << 16) | (rn << 5) | rd) >>> 0;
