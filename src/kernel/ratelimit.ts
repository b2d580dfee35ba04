// Emulated kernel time and printk rate limiting (include/linux/ratelimit_types.h,
// lib/ratelimit.c).
//
// Time is jiffies of an emulated clock, never the host's: a run that emits the same messages
// at the same emulated moments prints the same log, however fast the host is. The clock only
// moves when its owner advances it.
//
// Every dev_*_ratelimited / printk_ratelimited call site has its own static
// ratelimit_state, so a flood of one message never silences another: callers keep one
// RatelimitState per call site.

import type { KernelLog } from "../events.js";
import { InvalidArgumentError } from "../errors.js";

/** CONFIG_HZ of arm64's defconfig (CONFIG_HZ_250) */
export const HZ = 250;
/** DEFAULT_RATELIMIT_INTERVAL: 5 * HZ jiffies */
export const DEFAULT_RATELIMIT_INTERVAL = 5 * HZ;
/** DEFAULT_RATELIMIT_BURST */
export const DEFAULT_RATELIMIT_BURST = 10;

/** The emulated jiffies counter. */
export class EmulatedClock {
  private now = 0;

  get jiffies(): number {
    return this.now;
  }

  /** Advance by `ticks` jiffies (a non-negative integer). */
  advance(ticks: number): void {
    if (!Number.isSafeInteger(ticks) || ticks < 0) throw new InvalidArgumentError(`clock advance of ${ticks} jiffies: must be a non-negative integer`);
    this.now += ticks;
  }

  /** Advance by `ms` milliseconds of emulated time, rounded up to whole jiffies (msecs_to_jiffies). */
  advanceMs(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError(`clock advance of ${ms} ms: must be a non-negative number`);
    this.advance(Math.ceil((ms * HZ) / 1000));
  }
}

/** struct ratelimit_state of one call site. */
export class RatelimitState {
  /** jiffies at the start of the current interval; null until the first call (rs->begin == 0) */
  private begin: number | null = null;
  private printed = 0;
  private missed = 0;

  constructor(
    private readonly clock: EmulatedClock,
    /** the function name ___ratelimit reports in "callbacks suppressed" (the caller's __func__) */
    private readonly func: string,
    private readonly interval = DEFAULT_RATELIMIT_INTERVAL,
    private readonly burst = DEFAULT_RATELIMIT_BURST,
  ) {}

  /**
   * ___ratelimit(): true when the message may be printed. When an interval has passed (strictly
   * after begin + interval, time_is_before_jiffies) the count restarts, first reporting
   * "<func>: <n> callbacks suppressed" to `log` if messages were dropped.
   */
  allow(log: KernelLog): boolean {
    if (this.interval === 0) return true;
    const now = this.clock.jiffies;
    if (this.begin === null) this.begin = now;
    if (now > this.begin + this.interval) {
      if (this.missed > 0) {
        log.print(`${this.func}: ${this.missed} callbacks suppressed`);
        this.missed = 0;
      }
      this.begin = now;
      this.printed = 0;
    }
    if (this.burst > this.printed) {
      this.printed++;
      return true;
    }
    this.missed++;
    return false;
  }
}
