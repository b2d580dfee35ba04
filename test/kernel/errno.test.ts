import { describe, expect, it } from "vitest";
import { EEXIST, EINVAL, EIO, ENOMEM, ENOSYS, ERRNO, errnoName, errnoString } from "../../src/kernel/errno.js";
import { XEN_ERRNO } from "../../src/xen/hypervisor/public.js";

describe("errno", () => {
  it("has the generic arm64 numbers", () => {
    expect([EIO, ENOMEM, EEXIST, EINVAL, ENOSYS]).toEqual([5, 12, 17, 22, 38]);
  });

  it("names a number either way round, and only the numbers it has", () => {
    expect(errnoName(22)).toBe("EINVAL");
    expect(errnoName(-12)).toBe("ENOMEM");
    expect(errnoName(4242)).toBeUndefined();
    for (const [name, n] of Object.entries(ERRNO)) expect(errnoName(n)).toBe(name);
  });

  it("prints return codes as the kernel's messages do", () => {
    expect(errnoString(-22)).toBe("-EINVAL");
    expect(errnoString(-22n)).toBe("-EINVAL");
    expect(errnoString(0)).toBe("0");
    expect(errnoString(22)).toBe("22");
    expect(errnoString(-4242)).toBe("-4242");
  });

  it("is Xen's table too", () => {
    expect(XEN_ERRNO).toBe(ERRNO);
  });
});
