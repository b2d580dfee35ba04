import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { deviceBus, driverInitFunction, driverProbeFunction, initcallFrames, probeFrames } from "../../src/kernel/driver-probe.js";
import { symbolOffset } from "../../src/kernel/oops.js";

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

describe("driver probe functions", () => {
  it("the real names of the preset drivers (8139too.c rtl8139_init_one, sdhci-iproc.c sdhci_iproc_probe …)", () => {
    expect(driverProbeFunction("8139too")).toBe("rtl8139_init_one");
    expect(driverInitFunction("8139too")).toBe("rtl8139_init_module");
    expect(driverProbeFunction("sdhci-iproc")).toBe("sdhci_iproc_probe");
    expect(driverProbeFunction("xhci_hcd")).toBe("xhci_pci_probe");
    expect(driverProbeFunction("nvme")).toBe("nvme_probe");
  });
  it("bus glue: PCI devices by address, anything else a platform device", () => {
    expect(deviceBus("0000:00:01.0")).toBe("pci");
    expect(deviceBus("fe340000.mmc")).toBe("platform");
    expect(probeFrames("nvme", "0000:00:02.0")).toEqual(["really_probe", "pci_device_probe", "local_pci_probe", "nvme_probe"]);
    expect(initcallFrames("bcmgenet", "fd580000.ethernet")).toContain("__platform_driver_register");
  });
  it("property: any driver name gives C identifiers, and every frame a well-formed sym+off/size", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 24 }), (name) => {
        for (const f of [driverProbeFunction(name), driverInitFunction(name)]) {
          expect(f).toMatch(C_IDENT);
          const m = /\+0x([0-9a-f]+)\/0x([0-9a-f]+)$/.exec(symbolOffset(f))!;
          expect(parseInt(m[1]!, 16)).toBeLessThan(parseInt(m[2]!, 16));
          expect(parseInt(m[1]!, 16) % 4).toBe(0);
        }
        return true;
      }),
    );
  });
});
