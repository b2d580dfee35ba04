// The soak's operations as plain data: every random choice an operation needs is in it, so a
// list of them replays exactly (and a shrunk list still means something: an operation whose
// mapping or buffer is gone is skipped). Mappings are named by the index of the op that made
// them, not by their DMA address.

import type { Rng } from "./rng.js";

export type SoakOp =
  /** dma_map_page: buffer `buf` at byte offset `off`, `size` bytes, through soak device `dev` */
  | { k: "map"; dev: number; buf: number; off: number; size: number; dir: number; seed: number; longLived?: boolean; full?: boolean }
  /** dma_map_sg over several buffers */
  | { k: "mapSg"; dev: number; segs: { buf: number; off: number; size: number }[]; dir: number; seed: number; full?: boolean }
  /** dma_unmap of mapping `m` (the index of the op that made it) */
  | { k: "unmap"; m: number }
  /** dma_sync_single_for_cpu / _for_device of [off, off+len) of mapping m (sg: the whole list) */
  | { k: "sync"; m: number; toCpu: boolean; off: number; len: number }
  /** the device writes [off, off+len) of mapping m through its bus view */
  | { k: "devWrite"; m: number; off: number; len: number; seed: number }
  /** the CPU writes bytes of buffer `buf` */
  | { k: "cpuWrite"; buf: number; off: number; len: number; seed: number }
  /** the DMA engine of the device copies from mapping `src` to mapping `dst` */
  | { k: "engine"; src: number; dst: number; len: number; error?: boolean }
  /** a Xen memory_op: give a balloon page back and populate it again, or a call Xen must refuse */
  | { k: "hypercall"; what: HypercallKind; page: number; fail?: boolean; enomemAt?: number };

export type HypercallKind = "decrease" | "populate" | "exchange" | "bad-cmd" | "bad-exchange" | "decrease-unmapped" | "xen-version";

export const DIRS = [0, 1, 2] as const;
/** buffers the soak maps from: BUF_SIZE bytes each */
export const BUF_SIZE = 0x10000;
export const MAX_MAP = 0x4000;

/** What the generator needs to know of the state to make plausible operations. */
export interface GenState {
  /** live mappings: op index, kind, direction, size (sg: total), whether device-writable, device */
  live: { id: number; sg: boolean; dir: number; size: number; dev: number; longLived: boolean }[];
  /** buffers not under a live mapping */
  freeBufs: number[];
  nbufs: number;
  ndevs: number;
  xen: boolean;
  exchange: boolean;
  /** balloon pages given back (indices), and those present */
  ballooned: number[];
  present: number[];
}

export interface FaultPlan {
  poolFull: number;
  exchangeEnomemAt: number;
  deviceError: number;
  hypercallFail: number;
}

function size(r: Rng): number {
  const c = r.int(10);
  if (c < 4) return 1 + r.int(256);
  if (c < 8) return 1 + r.int(4096);
  return 1 + r.int(MAX_MAP);
}

/** One random operation for the current state. */
export function genOp(r: Rng, s: GenState, plan: FaultPlan): SoakOp {
  for (;;) {
    const c = r.int(100);
    if (c < 22 && s.freeBufs.length > 0 && s.live.length < 48) {
      const sz = size(r);
      const op: SoakOp = { k: "map", dev: r.int(s.ndevs), buf: r.pick(s.freeBufs), off: r.int(BUF_SIZE - sz + 1), size: sz, dir: r.pick(DIRS), seed: r.next() };
      if (r.chance(0.1)) op.longLived = true;
      if (r.chance(plan.poolFull)) op.full = true;
      return op;
    }
    if (c < 28 && s.freeBufs.length >= 4 && s.live.length < 48) {
      const n = 2 + r.int(3);
      const bufs = [...s.freeBufs];
      const segs: { buf: number; off: number; size: number }[] = [];
      for (let i = 0; i < n; i++) {
        const b = bufs.splice(r.int(bufs.length), 1)[0]!;
        const sz = size(r);
        segs.push({ buf: b, off: r.int(BUF_SIZE - sz + 1), size: sz });
      }
      const op: SoakOp = { k: "mapSg", dev: r.int(s.ndevs), segs, dir: r.pick(DIRS), seed: r.next() };
      if (r.chance(plan.poolFull)) op.full = true;
      return op;
    }
    if (c < 50 && s.live.length > 0) {
      const cand = s.live.filter((l) => !l.longLived || r.chance(0.02));
      if (cand.length > 0) return { k: "unmap", m: r.pick(cand).id };
      continue;
    }
    if (c < 62 && s.live.length > 0) {
      const l = r.pick(s.live);
      const off = l.sg ? 0 : r.int(l.size);
      return { k: "sync", m: l.id, toCpu: r.chance(0.5), off, len: l.sg ? l.size : 1 + r.int(l.size - off) };
    }
    if (c < 74 && s.live.length > 0) {
      const w = s.live.filter((l) => !l.sg && l.dir !== 1);
      if (w.length === 0) continue;
      const l = r.pick(w);
      const off = r.int(l.size);
      return { k: "devWrite", m: l.id, off, len: 1 + r.int(l.size - off), seed: r.next() };
    }
    if (c < 84) {
      const len = 1 + r.int(2048);
      return { k: "cpuWrite", buf: r.int(s.nbufs), off: r.int(BUF_SIZE - len + 1), len, seed: r.next() };
    }
    if (c < 92 && s.live.length > 1) {
      const src = s.live.filter((l) => !l.sg && l.dir !== 2);
      if (src.length === 0) continue;
      const a = r.pick(src);
      const dst = s.live.filter((l) => !l.sg && l.dir !== 1 && l.dev === a.dev && l.id !== a.id);
      if (dst.length === 0) continue;
      const b = r.pick(dst);
      const op: SoakOp = { k: "engine", src: a.id, dst: b.id, len: 1 + r.int(Math.min(a.size, b.size)) };
      if (r.chance(plan.deviceError)) op.error = true;
      return op;
    }
    if (s.xen) {
      const kinds: HypercallKind[] = ["bad-cmd", "bad-exchange", "decrease-unmapped", "xen-version"];
      if (s.present.length > 0) kinds.push("decrease", "decrease");
      if (s.ballooned.length > 0) kinds.push("populate", "populate", "populate");
      if (s.exchange && s.present.length > 0) kinds.push("exchange");
      const what = r.pick(kinds);
      const page = what === "populate" ? r.pick(s.ballooned) : what === "decrease" || what === "exchange" ? r.pick(s.present) : 0;
      const op: SoakOp = { k: "hypercall", what, page };
      if ((what === "populate" || what === "exchange") && r.chance(plan.hypercallFail)) op.fail = true;
      if (what === "exchange" && plan.exchangeEnomemAt > 0) op.enomemAt = plan.exchangeEnomemAt;
      return op;
    }
  }
}

/** no fault injected */
export function faultPlanOff(): FaultPlan {
  return { poolFull: 0, exchangeEnomemAt: 0, deviceError: 0, hypercallFail: 0 };
}
