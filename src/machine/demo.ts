// The board `dmalab demo` runs on, embedded so the demo needs no file: 8 GiB of RAM at
// 0x4000_0000 (so RAM runs past 4 GiB and arm64 mem_init creates a pool below 4 GiB), a
// 32-bit NIC whose ring buffers are taken from the top of RAM — above 4 GiB, so they bounce —
// and a 64-bit NVMe-like disk with min_align_mask 0xfff, which maps directly.

import { parseMachine, type MachineDesc } from "./preset.js";

/** `--machine demo-8g` names it; it is every command's default machine */
export const DEMO_MACHINE_NAME = "demo-8g";

export const DEMO_MACHINE_JSON = {
  name: DEMO_MACHINE_NAME,
  description:
    "dmalab demo: 8 GiB at 0x4000_0000, a 32-bit NIC with buffers above 4 GiB (bounced) and a 64-bit NVMe-like disk with min_align_mask 0xfff (direct)",
  paBits: 48,
  granule: "4K",
  cpus: 4,
  ram: [{ name: "ram", base: "0x4000_0000", size: "8GiB" }],
  devices: [
    { name: "0000:00:01.0", driver: "8139too", dmaMask: 32, coherent: true, buffers: "high" },
    { name: "0000:00:02.0", driver: "nvme", dmaMask: 64, minAlignMask: "0xfff", segmentBoundary: "0xffff_ffff", coherent: true, buffers: "high" },
  ],
  mmio: [{ name: "dma-engine", base: "0x0a00_0000", size: "0x1000", model: "dma-engine" }],
} as const;

export function demoMachine(): MachineDesc {
  return parseMachine(DEMO_MACHINE_JSON, "embedded demo machine");
}
