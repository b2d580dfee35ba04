// Hand-assembled A64 instruction words for unit tests (no assembler needed at test time).

export const NOP = 0xd503201f;
export const B_SELF = 0x14000000;
export { addi, brk, hvc, image, ldrw, ldrx, mov64, movz, strw, strx, svc } from "../../src/cpu/a64.js";
export const ldrb = (rt: number, rn: number, off = 0): number => (0x39400000 | (off << 10) | (rn << 5) | rt) >>> 0;
export const ldurx = (rt: number, rn: number, simm9: number): number => (0xf8400000 | ((simm9 & 0x1ff) << 12) | (rn << 5) | rt) >>> 0;
export const UDF = 0x00000000;
