import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { parseSwiotlbCmdline, simpleStrtoul } from "../../src/swiotlb/cmdline.js";
import { kernelProfile } from "../../src/swiotlb/profile.js";

const k513 = kernelProfile("5.13");
const k6 = kernelProfile("6.x");

describe("simple_strtoul with base 0", () => {
  it("detects hex, octal and decimal like the kernel", () => {
    expect(simpleStrtoul("0x100,", 0)).toEqual({ value: 256n, end: 5 });
    expect(simpleStrtoul("0X1f", 0)).toEqual({ value: 31n, end: 4 });
    expect(simpleStrtoul("010", 0)).toEqual({ value: 8n, end: 3 });
    expect(simpleStrtoul("089", 0)).toEqual({ value: 0n, end: 1 }); // octal stops at 8
    expect(simpleStrtoul("0xg", 0)).toEqual({ value: 0n, end: 1 }); // "0x" without a hex digit is octal 0
    expect(simpleStrtoul("65536force", 0)).toEqual({ value: 65536n, end: 5 });
    expect(simpleStrtoul("18446744073709551617", 0).value).toBe(1n); // wraps mod 2^64
  });
});

describe("swiotlb= in 5.13: [<nslabs>][,force|,noforce]", () => {
  const cases: [string, object][] = [
    ["65536", { nslabs: 65536 }],
    ["1000", { nslabs: 1024 }],
    ["0x100", { nslabs: 256 }],
    ["010", { nslabs: 128 }],
    ["force", { force: "force" }],
    ["noforce", { force: "noforce" }],
    ["131072,force", { nslabs: 131072, force: "force" }],
    [",noforce", { force: "noforce" }],
    ["", {}],
    ["65536,4", { nslabs: 65536, ignored: "4" }],
    ["65536,4,force", { nslabs: 65536, ignored: "4,force" }],
    ["1024,,force", { nslabs: 1024, ignored: ",force" }],
    ["forced", { ignored: "forced" }],
    ["any", { ignored: "any" }],
    ["-5", { ignored: "-5" }],
    ["0x", { nslabs: 0, ignored: "x" }],
  ];
  for (const [s, want] of cases) it(`'${s}'`, () => expect(parseSwiotlbCmdline(s, k513)).toEqual(want));
});

describe("swiotlb= in 6.x: [<nslabs>][,<nareas>][,force|,noforce]", () => {
  const cases: [string, object][] = [
    ["65536,4,force", { nslabs: 65536, nareas: 4, force: "force" }],
    ["65536,4", { nslabs: 65536, nareas: 4 }],
    ["4,force", { nslabs: 128, force: "force" }],
    [",8", { nareas: 8 }],
    ["1024,,force", { nslabs: 1024, force: "force" }],
    ["1024,0x3,noforce", { nslabs: 1024, nareas: 3, noforce: undefined, force: "noforce" }],
    ["1024,3,4", { nslabs: 1024, nareas: 3, ignored: "4" }],
    ["noforce ", { ignored: "noforce " }],
  ];
  for (const [s, want] of cases)
    it(`'${s}'`, () => {
      const w = { ...want } as Record<string, unknown>;
      delete w["noforce"];
      expect(parseSwiotlbCmdline(s, k6)).toEqual(w);
    });
  it("ALIGN to 128 wraps in unsigned long like the kernel", () => {
    expect(parseSwiotlbCmdline("18446744073709551615", k6).nslabs).toBe(0);
  });
});

describe("strict", () => {
  it("turns ignored text into an InputError naming it (exit code 2)", () => {
    let err: unknown;
    try {
      parseSwiotlbCmdline("65536,forse", k513, { strict: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitCode).toBe(2);
    expect((err as Error).message).toContain("'forse'");
    expect(parseSwiotlbCmdline("65536,force", k513, { strict: true })).toEqual({ nslabs: 65536, force: "force" });
  });
});
