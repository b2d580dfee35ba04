// Number formats a machine description accepts: hex with underscores ("0x4000_0000"),
// decimal, or sizes with a binary unit ("8GiB", "512M", "4K"). Addresses and sizes become
// plain numbers (exact below 2^53); DMA masks and limits stay 64-bit BigInts.

const UNITS: Record<string, bigint> = {
  "": 1n,
  b: 1n,
  k: 1n << 10n,
  kb: 1n << 10n,
  kib: 1n << 10n,
  m: 1n << 20n,
  mb: 1n << 20n,
  mib: 1n << 20n,
  g: 1n << 30n,
  gb: 1n << 30n,
  gib: 1n << 30n,
  t: 1n << 40n,
  tb: 1n << 40n,
  tib: 1n << 40n,
};

export type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

/** An unsigned integer: JSON number, "0x…" hex or decimal string, optional unit suffix. */
export function parseUnsigned(v: unknown): Parsed<bigint> {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || v < 0) return { ok: false, why: "must be a non-negative integer below 2^53" };
    return { ok: true, value: BigInt(v) };
  }
  if (typeof v !== "string") return { ok: false, why: "must be a number or a string" };
  const s = v.trim().replace(/_/g, "");
  const hexm = /^0x([0-9a-f]+)$/i.exec(s);
  if (hexm) return { ok: true, value: BigInt("0x" + hexm[1]) };
  const m = /^([0-9]+)\s*([a-z]*)$/i.exec(s);
  if (!m) return { ok: false, why: "is not a number (expected e.g. 0x4000_0000, 1073741824 or 8GiB)" };
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return { ok: false, why: `has an unknown unit '${m[2]}' (use K, M, G, T or KiB, MiB, GiB, TiB)` };
  return { ok: true, value: BigInt(m[1]!) * unit };
}

/** An address or size that must stay exact as a number. */
export function parseNumber(v: unknown): Parsed<number> {
  const p = parseUnsigned(v);
  if (!p.ok) return p;
  if (p.value > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, why: "is too large (must be below 2^53)" };
  return { ok: true, value: Number(p.value) };
}

/** A DMA mask: a bit count (0..64, as a number) or an explicit hex value up to 64 bits. */
export function parseMask(v: unknown): Parsed<bigint> {
  if (typeof v === "number") {
    if (!Number.isInteger(v) || v < 0 || v > 64) return { ok: false, why: "as a bit count must be an integer 0..64" };
    return { ok: true, value: v === 64 ? (1n << 64n) - 1n : (1n << BigInt(v)) - 1n };
  }
  const p = parseUnsigned(v);
  if (!p.ok) return p;
  if (p.value >= 1n << 64n) return { ok: false, why: "does not fit in 64 bits" };
  return p;
}

/** fls64: position of the most significant set bit, 1-based; 0 for 0. */
export function fls64(x: bigint): number {
  let n = 0;
  while (x > 0n) {
    x >>= 1n;
    n++;
  }
  return n;
}

export function formatSize(bytes: number): string {
  const units: [number, string][] = [
    [2 ** 40, "TiB"],
    [2 ** 30, "GiB"],
    [2 ** 20, "MiB"],
    [2 ** 10, "KiB"],
  ];
  for (const [u, name] of units) if (bytes >= u) return bytes % u === 0 ? `${bytes / u} ${name}` : `${(bytes / u).toFixed(1)} ${name}`;
  return `${bytes} B`;
}
