// How a built-in driver's probe is reached at boot, for call traces: the driver's probe
// function and its initcall as the kernel sources name them, and the bus glue between
// really_probe() and the driver.
//
// Built-in drivers register from their initcall (do_one_initcall → <driver init> →
// __pci_register_driver / __platform_driver_register → driver_register → bus_add_driver →
// driver_attach → bus_for_each_dev → __driver_attach → device_driver_attach →
// driver_probe_device → really_probe), then the bus calls the driver's probe.

export type DriverBus = "pci" | "platform";

interface DriverFacts {
  /** the driver's probe function */
  readonly probe: string;
  /** its module_init / device_initcall function */
  readonly init: string;
}

/** driver name (as /sys/bus/<bus>/drivers names it) → the functions of its source file */
const DRIVERS: Readonly<Record<string, DriverFacts>> = {
  // drivers/net/ethernet/realtek/8139too.c
  "8139too": { probe: "rtl8139_init_one", init: "rtl8139_init_module" },
  // drivers/nvme/host/pci.c
  nvme: { probe: "nvme_probe", init: "nvme_init" },
  // drivers/net/ethernet/intel/ixgbe/ixgbe_main.c
  ixgbe: { probe: "ixgbe_probe", init: "ixgbe_init_module" },
  // drivers/net/ethernet/intel/e1000e/netdev.c
  e1000e: { probe: "e1000_probe", init: "e1000_init_module" },
  // drivers/usb/host/xhci-pci.c
  xhci_hcd: { probe: "xhci_pci_probe", init: "xhci_pci_init" },
  // drivers/net/ethernet/broadcom/genet/bcmgenet.c (module_platform_driver(bcmgenet_driver))
  bcmgenet: { probe: "bcmgenet_probe", init: "bcmgenet_driver_init" },
  // drivers/mmc/host/sdhci-iproc.c (module_platform_driver(sdhci_iproc_driver))
  "sdhci-iproc": { probe: "sdhci_iproc_probe", init: "sdhci_iproc_driver_init" },
};

/** A driver name as a C identifier: other characters become '_', a leading digit gets one. */
function cIdent(driver: string): string {
  const s = driver.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** The driver's probe function (a known driver's real name, else "<driver>_probe" made a C identifier). */
export function driverProbeFunction(driver: string): string {
  return DRIVERS[driver]?.probe ?? `${cIdent(driver)}_probe`;
}

/** The driver's initcall function. */
export function driverInitFunction(driver: string): string {
  return DRIVERS[driver]?.init ?? `${cIdent(driver)}_init`;
}

/** PCI devices are named by their address (0000:00:01.0); anything else is a platform device. */
export function deviceBus(deviceName: string): DriverBus {
  return /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(deviceName) ? "pci" : "platform";
}

/** really_probe → the bus's probe glue → the driver's probe (outermost first). */
export function probeFrames(driver: string, deviceName: string): string[] {
  const bus = deviceBus(deviceName);
  const glue = bus === "pci" ? ["pci_device_probe", "local_pci_probe"] : ["platform_probe"];
  return ["really_probe", ...glue, driverProbeFunction(driver)];
}

/** What runs a built-in driver's probe at boot, outermost first, down to driver_probe_device. */
export function initcallFrames(driver: string, deviceName: string): string[] {
  const register = deviceBus(deviceName) === "pci" ? "__pci_register_driver" : "__platform_driver_register";
  return [
    "ret_from_fork",
    "kernel_init",
    "kernel_init_freeable",
    "do_one_initcall",
    driverInitFunction(driver),
    register,
    "driver_register",
    "bus_add_driver",
    "driver_attach",
    "bus_for_each_dev",
    "__driver_attach",
    "device_driver_attach",
    "driver_probe_device",
  ];
}
