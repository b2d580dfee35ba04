// Trace replay (format: samples/README.md): drives IoTlbPool's own map/release code op by op
// so its slot choices can be diffed against the kernel's allocator.
//
//   pool slots=<nslabs> areas=<nareas> kernel=<6.x|5.13>
//   map <id> <cpu> <orig_phys_hex> <size_dec> <min_align_mask_hex> <alloc_align_mask_hex>
//   unmap <id>
//
// A map prints "<id> <first_slot_index> <tlb_offset_hex>" or "<id> full".

import { InputError, quote } from "../errors.js";
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from "../kernel/swiotlb.js";
import { FIND_SPIN, IoTlbPool } from "./pool.js";
import { kernelProfile, type KernelProfile } from "./profile.js";

/** where the reference traces put the pool (2 MiB aligned, DMA address == physical) */
export const REPLAY_POOL_START = 0x8000_0000;
const REPLAY_PAGE_SIZE = 4096;

export interface ReplayResult {
  /** one line per map, in order */
  lines: string[];
  /** dmalab warnings (the 5.13 spin guard), for stderr */
  warnings: string[];
  /** the pool after the last op (tests inspect it) */
  pool: IoTlbPool;
  profile: KernelProfile;
}

const HEX = /^0x[0-9a-fA-F]+$/;
const DEC = /^[0-9]+$/;

interface Live {
  tlb: number;
  minAlignMask: number;
}

/** warnings kept for the JSON output; later ones are counted */
export const MAX_KEPT_WARNINGS = 100;

/**
 * A trace replayed one line at a time, so a trace of any length replays in bounded memory:
 * what it keeps is the pool and the live mappings (at most one per slot). `name` is used in
 * error messages ("<name> line <n>: ...").
 */
export class TraceReplayer {
  private pool: IoTlbPool | null = null;
  private profile: KernelProfile | null = null;
  private readonly live = new Map<string, Live>();
  private ln = 0;
  /** the first MAX_KEPT_WARNINGS warnings */
  readonly warnings: string[] = [];
  warningCount = 0;

  constructor(private readonly name = "trace") {}

  /** the pool, once the header has been read */
  get header(): { pool: IoTlbPool; profile: KernelProfile } | null {
    return this.pool !== null && this.profile !== null ? { pool: this.pool, profile: this.profile } : null;
  }

  /**
   * One line of the trace (without its newline): the output line of a map ("<id> <slot>
   * <tlb_offset>" or "<id> full"), or null. `onWarning` sees every warning as it happens.
   */
  line(rawLine: string, onWarning?: (w: string) => void): string | null {
    this.ln++;
    const where = `${this.name} line ${this.ln}`;
    const t = rawLine.replace(/\r$/, "").trim();
    if (t === "" || t.startsWith("#")) return null;
    const f = t.split(/\s+/);
    const bad = (why: string): InputError => new InputError(`${why}: ${quote(t)}`, where);

    if (f[0] === "pool") {
      if (this.pool !== null) throw bad("a second pool header");
      const h = parseHeader(f, bad);
      this.profile = kernelProfile(h.kernel);
      this.pool = new IoTlbPool({
        start: REPLAY_POOL_START,
        nslabs: h.slots,
        nareas: h.areas,
        era: this.profile.era,
        pageSize: REPLAY_PAGE_SIZE,
        listClippedTail: this.profile.listU16ClippedTail,
      });
      return null;
    }
    if (f[0] !== "map" && f[0] !== "unmap") throw bad(`unknown op ${quote(f[0] ?? "", 20)} (expected pool, map or unmap)`);
    const pool = this.pool;
    const profile = this.profile;
    if (pool === null || profile === null) throw bad("an op before the 'pool slots=N areas=A kernel=K' header");
    const live = this.live;

    if (f[0] === "unmap") {
      if (f.length !== 2) throw bad("malformed unmap (expected: unmap <id>)");
      const id = f[1]!;
      const m = live.get(id);
      if (m === undefined) throw bad(`unmap of id ${short(id)}, which is not live`);
      if (pool.releaseSlots(m.tlb, m.minAlignMask) < 0) throw bad(`internal: id ${short(id)} has no live slots`);
      live.delete(id);
      return null;
    }

    if (f.length !== 7) throw bad("malformed map (expected: map <id> <cpu> <orig_phys_hex> <size_dec> <min_align_mask_hex> <alloc_align_mask_hex>)");
    const [, id, cpuS, origS, sizeS, minS, allocS] = f as [string, string, string, string, string, string, string];
    if (live.has(id)) throw bad(`map of id ${short(id)}, which is still live`);
    if (!DEC.test(cpuS) || Number(cpuS) > 0x7fff_ffff) throw bad(`cpu ${quote(cpuS, 20)} is not a decimal CPU number`);
    if (!HEX.test(origS) || !Number.isSafeInteger(Number(origS))) throw bad(`orig_phys ${quote(origS, 20)} is not a hex address below 2^53`);
    if (!DEC.test(sizeS) || Number(sizeS) < 1 || !Number.isSafeInteger(Number(sizeS))) throw bad(`size ${quote(sizeS, 20)} is not a decimal size of at least 1`);
    if (!HEX.test(minS) || Number(minS) > 0xffff_ffff) throw bad(`min_align_mask ${quote(minS, 20)} is not a 32-bit hex mask`);
    if (!HEX.test(allocS) || Number(allocS) > 0xffff_ffff) throw bad(`alloc_align_mask ${quote(allocS, 20)} is not a 32-bit hex mask`);
    const cpu = Number(cpuS);
    const orig = Number(origS);
    const size = Number(sizeS);
    const minAlign = Number(minS);
    const allocAlign = Number(allocS);

    let tlb: number;
    if (profile.allocAlignMaskArg) {
      tlb = pool.mapSlots(cpu, orig, size, allocAlign, minAlign, REPLAY_POOL_START, 0);
    } else {
      if (allocAlign !== 0) throw bad("alloc_align_mask must be 0x0 with kernel=5.13");
      tlb = pool.mapSlots513(orig, size, minAlign, REPLAY_POOL_START, 0);
      if (tlb === FIND_SPIN) {
        const w = `${where}: map ${id}: the 5.13 find_slots would spin forever here (a soft lockup in the kernel); answering full`;
        if (this.warningCount++ < MAX_KEPT_WARNINGS) this.warnings.push(w);
        onWarning?.(w);
      }
    }
    if (tlb < 0) return `${id} full`;
    const real = Math.floor((tlb - REPLAY_POOL_START) / IO_TLB_SIZE);
    const first = profile.padSlots ? real - pool.padSlots[real]! : real;
    live.set(id, { tlb, minAlignMask: minAlign });
    return `${id} ${first} 0x${(tlb - REPLAY_POOL_START).toString(16)}`;
  }

  /** The end of the trace: the pool and profile (a trace without a header is refused). */
  finish(): { pool: IoTlbPool; profile: KernelProfile } {
    const h = this.header;
    if (h === null) throw new InputError("no 'pool slots=N areas=A kernel=K' header", this.name);
    return h;
  }
}

/** Replays a whole trace held in memory. `name` is used in error messages ("<name> line <n>: ..."). */
export function replayTrace(text: string, name = "trace"): ReplayResult {
  const r = new TraceReplayer(name);
  const lines: string[] = [];
  let from = 0;
  for (;;) {
    const nl = text.indexOf("\n", from);
    const out = r.line(nl === -1 ? text.slice(from) : text.slice(from, nl));
    if (out !== null) lines.push(out);
    if (nl === -1) break;
    from = nl + 1;
  }
  const { pool, profile } = r.finish();
  const warnings = r.warningCount > r.warnings.length ? [...r.warnings, `and ${r.warningCount - r.warnings.length} more warnings`] : r.warnings;
  return { lines, warnings, pool, profile };
}

/** an id as is when short, else quoted by its start */
function short(s: string): string {
  return s.length <= 24 ? s : quote(s, 20);
}

function parseHeader(f: string[], bad: (why: string) => InputError): { slots: number; areas: number; kernel: "6.x" | "5.13" } {
  if (f.length !== 4) throw bad("malformed header (expected: pool slots=<n> areas=<n> kernel=<6.x|5.13>)");
  const kv = new Map<string, string>();
  for (const tok of f.slice(1)) {
    const m = /^([a-z]+)=(\S+)$/.exec(tok);
    if (m === null) throw bad(`malformed header field ${quote(tok, 30)}`);
    if (kv.has(m[1]!)) throw bad(`header field ${quote(m[1]!, 20)} given twice`);
    kv.set(m[1]!, m[2]!);
  }
  const slotsS = kv.get("slots");
  const areasS = kv.get("areas");
  const kernel = kv.get("kernel");
  if (slotsS === undefined || areasS === undefined || kernel === undefined) throw bad("the header needs slots=, areas= and kernel=");
  if (kernel !== "6.x" && kernel !== "5.13") throw bad(`kernel ${quote(kernel, 20)} (expected 6.x or 5.13)`);
  if (!DEC.test(slotsS) || !DEC.test(areasS)) throw bad("slots and areas must be decimal numbers");
  const slots = Number(slotsS);
  const areas = Number(areasS);
  if (areas < 1 || (areas & (areas - 1)) !== 0 || areas > 0x4000_0000) throw bad(`areas=${areasS.slice(0, 20)} is not a power of two`);
  if (kernel === "5.13" && areas !== 1) throw bad(`areas=${areasS.slice(0, 20)}: kernel=5.13 has one area`);
  if (!Number.isSafeInteger(slots) || slots % IO_TLB_SEGSIZE !== 0 || slots < IO_TLB_SEGSIZE * areas)
    throw bad(`slots=${slotsS.slice(0, 20)} must be a multiple of ${IO_TLB_SEGSIZE} and at least ${IO_TLB_SEGSIZE} x areas`);
  // the pool's tables live in memory: keep a trace from asking for terabytes
  if (slots > 1 << 24) throw bad(`slots=${slotsS.slice(0, 20)} is more than dmalab replays (${1 << 24})`);
  return { slots, areas, kernel };
}
