import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { KernelLog } from "../../src/events.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { DEFAULT_RATELIMIT_BURST, DEFAULT_RATELIMIT_INTERVAL, EmulatedClock, HZ, RatelimitState } from "../../src/kernel/ratelimit.js";

// lib/ratelimit.c ___ratelimit (v5.13 … v6.11): the first call starts the interval; `burst`
// messages pass; the rest are counted as missed; once jiffies is past begin + interval
// (time_is_before_jiffies, strictly after) the count restarts and "<func>: <n> callbacks
// suppressed" is printed first. DEFAULT_RATELIMIT_INTERVAL is 5 * HZ, the burst 10
// (include/linux/ratelimit_types.h).
describe("RatelimitState (lib/ratelimit.c ___ratelimit)", () => {
  it("defaults: 10 messages per 5 * HZ jiffies", () => {
    expect(DEFAULT_RATELIMIT_INTERVAL).toBe(5 * HZ);
    expect(DEFAULT_RATELIMIT_BURST).toBe(10);
  });

  it("burst, then suppression, then the suppressed count once the interval has passed", () => {
    const clock = new EmulatedClock();
    const log = new KernelLog();
    const rs = new RatelimitState(clock, "swiotlb_tbl_map_single");
    const passed = Array.from({ length: 15 }, () => rs.allow(log)).filter(Boolean).length;
    expect(passed).toBe(10);
    // exactly begin + interval is not yet past it
    clock.advance(DEFAULT_RATELIMIT_INTERVAL);
    expect(rs.allow(log)).toBe(false);
    expect(log.lines).toEqual([]);
    clock.advance(1);
    expect(rs.allow(log)).toBe(true);
    expect(log.lines).toEqual(["swiotlb_tbl_map_single: 6 callbacks suppressed"]);
  });

  it("host time does not matter: no emulated time, no new burst", async () => {
    const clock = new EmulatedClock();
    const log = new KernelLog();
    const rs = new RatelimitState(clock, "f");
    for (let i = 0; i < 10; i++) rs.allow(log);
    await new Promise((r) => setTimeout(r, 20));
    expect(rs.allow(log)).toBe(false);
  });

  it("property: at most `burst` messages pass at one emulated instant, and every dropped one is reported later", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 * DEFAULT_RATELIMIT_INTERVAL }), { maxLength: 200 }), (gaps) => {
        const clock = new EmulatedClock();
        const log = new KernelLog();
        const rs = new RatelimitState(clock, "f");
        const passedAt: number[] = [];
        for (const g of gaps) {
          clock.advance(g);
          if (rs.allow(log)) passedAt.push(clock.jiffies);
        }
        for (let i = DEFAULT_RATELIMIT_BURST; i < passedAt.length; i++)
          expect(passedAt[i]!).toBeGreaterThan(passedAt[i - DEFAULT_RATELIMIT_BURST]!);
        // one more call after a full interval flushes the count of what was dropped
        clock.advance(DEFAULT_RATELIMIT_INTERVAL + 1);
        expect(rs.allow(log)).toBe(true);
        const reported = log.lines.reduce((n, l) => n + Number(/^f: (\d+) callbacks suppressed$/.exec(l)![1]), 0);
        expect(passedAt.length + reported).toBe(gaps.length);
        return true;
      }),
    );
  });

  it("bad clock steps are typed errors naming the value", () => {
    const clock = new EmulatedClock();
    expect(() => clock.advance(-1)).toThrow(InvalidArgumentError);
    expect(() => clock.advance(1.5)).toThrow(/1.5 jiffies/);
    expect(() => clock.advanceMs(Number.NaN)).toThrow(/NaN ms/);
    clock.advanceMs(5000);
    expect(clock.jiffies).toBe(5 * HZ);
  });
});
