// The printk formats dmalab's kernel messages use (Documentation/core-api/printk-formats.rst).
// Only for messages: none of these is on a hot path.

/** %pa (phys_addr_t): 0x and 16 hex digits, for a physical address held as a number >= 0 */
export function fmtPa(addr: number): string {
  return "0x" + addr.toString(16).padStart(16, "0");
}

/** %pad / 0x%016llx of a DMA address held as a number (-1 = all ones, DMA_MAPPING_ERROR). */
export function padHex(dma: number | bigint): string {
  const v = typeof dma === "bigint" ? BigInt.asUintN(64, dma) : dma < 0 ? BigInt.asUintN(64, BigInt(dma)) : BigInt(dma);
  return "0x" + v.toString(16).padStart(16, "0");
}

/** %llx of a 64-bit value */
export function llx(v: bigint | number): string {
  const b = typeof v === "bigint" ? BigInt.asUintN(64, v) : BigInt.asUintN(64, BigInt(v));
  return b.toString(16);
}

/** %016lx (no 0x) of an address held as a number >= 0, as arm64's fault messages print it */
export function fmt016lx(addr: number): string {
  return addr.toString(16).padStart(16, "0");
}
