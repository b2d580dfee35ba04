// Hand-assembled A64 instruction words for unit tests (no assembler needed at test time).

export const NOP = 0xd503201f;
export const B_SELF = 0x14000000;
export const movz = (rd: number, imm: number, hw = 0): number => (0xd2800000 | (hw << 21) | ((imm & 0xffff) << 5) | rd) >>> 0;
export const movk = (rd: number, imm: number, hw = 0): number => (0xf2800000 | (hw << 21) | ((imm & 0xffff) << 5) | rd) >>> 0;
export const addi = (rd: number, rn: number, imm: number): number => (0x91000000 | ((imm & 0xfff) << 10) | (rn << 5) | rd) >>> 0;
export const ldrx = (rt: number, rn: number, off = 0): number => (0xf9400000 | ((off / 8) << 10) | (rn << 5) | rt) >>> 0;
export const strx = (rt: number, rn: number, off = 0): number => (0xf9000000 | ((off / 8) << 10) | (rn << 5) | rt) >>> 0;
export const ldrw = (rt: number, rn: number, off = 0): number => (0xb9400000 | ((off / 4) << 10) | (rn << 5) | rt) >>> 0;
export const strw = (rt: number, rn: number, off = 0): number => (0xb9000000 | ((off / 4) << 10) | (rn << 5) | rt) >>> 0;
export const ldrb = (rt: number, rn: number, off = 0): number => (0x39400000 | (off << 10) | (rn << 5) | rt) >>> 0;
export const ldurx = (rt: number, rn: number, simm9: number): number => (0xf8400000 | ((simm9 & 0x1ff) << 12) | (rn << 5) | rt) >>> 0;
export const hvc = (imm: number): number => (0xd4000002 | ((imm & 0xffff) << 5)) >>> 0;
export const svc = (imm: number): number => (0xd4000001 | ((imm & 0xffff) << 5)) >>> 0;
export const brk = (imm: number): number => (0xd4200000 | ((imm & 0xffff) << 5)) >>> 0;
export const UDF = 0x00000000;

/** Loads a 64-bit constant into xd with movz/movk. */
export function mov64(rd: number, v: bigint | number): number[] {
  const b = BigInt(v);
  const out = [movz(rd, Number(b & 0xffffn), 0)];
  for (let hw = 1; hw < 4; hw++) {
    const part = Number((b >> BigInt(16 * hw)) & 0xffffn);
    if (part !== 0) out.push(movk(rd, part, hw));
  }
  return out;
}

export function image(words: number[]): Uint8Array {
  const b = new Uint8Array(words.length * 4);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return b;
}
