// Trace replay (format: samples/README.md): drives IoTlbPool's own map/release code op by op
// so its slot choices can be diffed against the kernel's allocator.
//
//   pool slots=<nslabs> areas=<nareas> kernel=<6.x|5.13>
//   map <id> <cpu> <orig_phys_hex> <size_dec> <min_align_mask_hex> <alloc_align_mask_hex>
//   unmap <id>
//
// A map prints "<id> <first_slot_index> <tlb_offset_hex>" or "<id> full".

import { InputError } from "../errors.js";
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

/** Replays a whole trace. `name` is used in error messages ("<name> line <n>: ..."). */
export function replayTrace(text: string, name = "trace"): ReplayResult {
  const src = text.split("\n");
  const lines: string[] = [];
  const warnings: string[] = [];
  const live = new Map<string, Live>();
  let pool: IoTlbPool | null = null;
  let profile: KernelProfile | null = null;

  for (let ln = 0; ln < src.length; ln++) {
    const where = `${name} line ${ln + 1}`;
    const raw = src[ln]!.replace(/\r$/, "");
    const t = raw.trim();
    if (t === "" || t.startsWith("#")) continue;
    const f = t.split(/\s+/);
    const bad = (why: string): InputError => new InputError(`${why}: '${t}'`, where);

    if (f[0] === "pool") {
      if (pool !== null) throw bad("a second pool header");
      const h = parseHeader(f, bad);
      profile = kernelProfile(h.kernel);
      pool = new IoTlbPool({
        start: REPLAY_POOL_START,
        nslabs: h.slots,
        nareas: h.areas,
        era: profile.era,
        pageSize: REPLAY_PAGE_SIZE,
        listClippedTail: profile.listU16ClippedTail,
      });
      continue;
    }
    if (f[0] !== "map" && f[0] !== "unmap") throw bad(`unknown op '${f[0]}' (expected pool, map or unmap)`);
    if (pool === null || profile === null) throw bad("an op before the 'pool slots=N areas=A kernel=K' header");

    if (f[0] === "unmap") {
      if (f.length !== 2) throw bad("malformed unmap (expected: unmap <id>)");
      const id = f[1]!;
      const m = live.get(id);
      if (m === undefined) throw bad(`unmap of id ${id}, which is not live`);
      if (pool.releaseSlots(m.tlb, m.minAlignMask) < 0) throw bad(`internal: id ${id} has no live slots`);
      live.delete(id);
      continue;
    }

    if (f.length !== 7) throw bad("malformed map (expected: map <id> <cpu> <orig_phys_hex> <size_dec> <min_align_mask_hex> <alloc_align_mask_hex>)");
    const [, id, cpuS, origS, sizeS, minS, allocS] = f as [string, string, string, string, string, string, string];
    if (live.has(id)) throw bad(`map of id ${id}, which is still live`);
    if (!DEC.test(cpuS) || Number(cpuS) > 0x7fff_ffff) throw bad(`cpu '${cpuS}' is not a decimal CPU number`);
    if (!HEX.test(origS) || !Number.isSafeInteger(Number(origS))) throw bad(`orig_phys '${origS}' is not a hex address below 2^53`);
    if (!DEC.test(sizeS) || Number(sizeS) < 1 || !Number.isSafeInteger(Number(sizeS))) throw bad(`size '${sizeS}' is not a decimal size of at least 1`);
    if (!HEX.test(minS) || Number(minS) > 0xffff_ffff) throw bad(`min_align_mask '${minS}' is not a 32-bit hex mask`);
    if (!HEX.test(allocS) || Number(allocS) > 0xffff_ffff) throw bad(`alloc_align_mask '${allocS}' is not a 32-bit hex mask`);
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
      if (tlb === FIND_SPIN)
        warnings.push(`${where}: map ${id}: the 5.13 find_slots would spin forever here (a soft lockup in the kernel); answering full`);
    }
    if (tlb < 0) {
      lines.push(`${id} full`);
      continue;
    }
    const real = Math.floor((tlb - REPLAY_POOL_START) / IO_TLB_SIZE);
    const first = profile.padSlots ? real - pool.padSlots[real]! : real;
    lines.push(`${id} ${first} 0x${(tlb - REPLAY_POOL_START).toString(16)}`);
    live.set(id, { tlb, minAlignMask: minAlign });
  }
  if (pool === null || profile === null) throw new InputError("no 'pool slots=N areas=A kernel=K' header", name);
  return { lines, warnings, pool, profile };
}

function parseHeader(f: string[], bad: (why: string) => InputError): { slots: number; areas: number; kernel: "6.x" | "5.13" } {
  if (f.length !== 4) throw bad("malformed header (expected: pool slots=<n> areas=<n> kernel=<6.x|5.13>)");
  const kv = new Map<string, string>();
  for (const tok of f.slice(1)) {
    const m = /^([a-z]+)=(\S+)$/.exec(tok);
    if (m === null) throw bad(`malformed header field '${tok}'`);
    if (kv.has(m[1]!)) throw bad(`header field '${m[1]}' given twice`);
    kv.set(m[1]!, m[2]!);
  }
  const slotsS = kv.get("slots");
  const areasS = kv.get("areas");
  const kernel = kv.get("kernel");
  if (slotsS === undefined || areasS === undefined || kernel === undefined) throw bad("the header needs slots=, areas= and kernel=");
  if (kernel !== "6.x" && kernel !== "5.13") throw bad(`kernel '${kernel}' (expected 6.x or 5.13)`);
  if (!DEC.test(slotsS) || !DEC.test(areasS)) throw bad("slots and areas must be decimal numbers");
  const slots = Number(slotsS);
  const areas = Number(areasS);
  if (areas < 1 || (areas & (areas - 1)) !== 0 || areas > 0x4000_0000) throw bad(`areas=${areasS} is not a power of two`);
  if (kernel === "5.13" && areas !== 1) throw bad(`areas=${areasS}: kernel=5.13 has one area`);
  if (!Number.isSafeInteger(slots) || slots % IO_TLB_SEGSIZE !== 0 || slots < IO_TLB_SEGSIZE * areas)
    throw bad(`slots=${slotsS} must be a multiple of ${IO_TLB_SEGSIZE} and at least ${IO_TLB_SEGSIZE} x areas`);
  // the pool's tables live in memory: keep a trace from asking for terabytes
  if (slots > 1 << 24) throw bad(`slots=${slotsS} is more than dmalab replays (${1 << 24})`);
  return { slots, areas, kernel };
}
