// The CPU time of the calling thread (clock_gettime(CLOCK_THREAD_CPUTIME_ID), through koffi's
// libc, as memory/huge-pages.ts calls madvise): the time the host actually ran this thread. The
// copy limit and the workload are compared per CPU-second, turn by turn, so that time the host
// gave to other processes counts for neither. Linux only; elsewhere (or without koffi) null, and
// the comparison falls back to wall time.

import { createRequire } from "node:module";
import { noteMissingHostFeature } from "../host-features.js";

/** include/uapi/linux/time.h */
const CLOCK_THREAD_CPUTIME_ID = 3;

type ClockGettime = (clk: number, ts: BigInt64Array) => number;
interface KoffiLite {
  load(path: string): { func(decl: string): ClockGettime };
}

let clockGettime: ClockGettime | null | undefined;
const ts = new BigInt64Array(2);

function load(): ClockGettime | null {
  if (clockGettime !== undefined) return clockGettime;
  clockGettime = null;
  if (process.platform !== "linux") return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as KoffiLite;
    const f = koffi.load("libc.so.6").func("int clock_gettime(int clk, void *ts)");
    if (f(CLOCK_THREAD_CPUTIME_ID, ts) === 0) clockGettime = f;
  } catch (e) {
    // no koffi or no libc.so.6: the turns are compared in wall time
    noteMissingHostFeature("thread CPU clock (koffi libc)", e);
  }
  return clockGettime;
}

/** This thread's CPU time in ns, or null where it cannot be read. */
export function threadCpuNs(): number | null {
  const f = load();
  if (f === null || f(CLOCK_THREAD_CPUTIME_ID, ts) !== 0) return null;
  return Number(ts[0]!) * 1e9 + Number(ts[1]!);
}
