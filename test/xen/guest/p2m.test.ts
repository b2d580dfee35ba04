import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  INVALID_P2M_ENTRY,
  P2mOverrides,
  rangeStraddlesPageBoundary,
  xenBusToPhys,
  xenPhysToBus,
} from "../../../src/xen/guest/p2m.js";

describe("Linux's arm p2m overrides (pfn_to_bfn)", () => {
  it("is the identity without overrides", () => {
    const p = new P2mOverrides();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 1 << 20 }), (a, n) => {
        expect(xenPhysToBus(p, a)).toBe(a);
        expect(xenBusToPhys(p, a)).toBe(a);
        expect(rangeStraddlesPageBoundary(p, a, n)).toBe(false);
      }),
    );
  });

  it("translates overridden frames and keeps the page offset", () => {
    const p = new P2mOverrides();
    p.set(0x40000, 0x900000, 4);
    expect(p.lookup(0x40002)).toBe(0x900002);
    expect(p.lookup(0x40004)).toBe(INVALID_P2M_ENTRY);
    expect(xenPhysToBus(p, 0x40001abc)).toBe(0x900001abc);
    expect(xenPhysToBus(p, 0x40004abc)).toBe(0x40004abc);
    // bfn_to_pfn is the identity on arm: Linux never inverts the table
    expect(xenBusToPhys(p, 0x900001abc)).toBe(0x900001abc);
    p.set(0x40001, INVALID_P2M_ENTRY, 2);
    expect(p.size).toBe(2);
    expect(xenPhysToBus(p, 0x40001abc)).toBe(0x40001abc);
  });

  it("range_straddles_page_boundary: true exactly when a following frame is not the next bus frame", () => {
    const p = new P2mOverrides();
    p.set(0x100, 0x5000, 2); // 0x100,0x101 → 0x5000,0x5001 ; 0x102 → itself
    expect(rangeStraddlesPageBoundary(p, 0x100000, 0x2000)).toBe(false);
    expect(rangeStraddlesPageBoundary(p, 0x100fff, 2)).toBe(false);
    expect(rangeStraddlesPageBoundary(p, 0x101fff, 2)).toBe(true);
    expect(rangeStraddlesPageBoundary(p, 0x100800, 0x1900)).toBe(true);
    expect(rangeStraddlesPageBoundary(p, 0x101000, 0x1000)).toBe(false);
    expect(rangeStraddlesPageBoundary(p, 0x102000, 0x1000)).toBe(false);
  });
});
