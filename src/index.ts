// dmalab as a library: build and boot a machine the way every command does, then drive its
// DMA API, its devices' bus views, its swiotlb and (with Xen) its hypervisor directly.
//
//   import { buildMachine, DMA_FROM_DEVICE } from "dmalab";
//   const { machine } = buildMachine({ machine: "qemu-virt-2g", kernel: "6.x" });
//
// Addresses are plain numbers; DMA_MAPPING_ERROR is -1. Errors are DmalabError subclasses
// whose exitCode follows the CLI's table.

export {
  buildMachine,
  machineSpec,
  machineNames,
  resolveMachineArg,
  DEFAULT_MACHINE,
  DEFAULT_KERNEL,
  type MachineConfig,
  type MachineSpec,
  type BuiltMachine,
} from "./machine/builder.js";
export { formatBootReport, XEN_ROLES, type BootReport, type BootOutcome, type DeviceProbe, type PoolOverride, type XenRole } from "./machine/boot.js";
export type { BootFault } from "./machine/fault.js";
export { Machine, MachineDevice } from "./machine/machine.js";
export { parseMachine, loadMachineFile, presetNames, type MachineDesc, type DeviceDesc } from "./machine/preset.js";
export { machineFromDtb } from "./machine/device-tree.js";
export { XenGuestBoot, DIRECT_MAP_FEATURES, type DirectMapFeature } from "./machine/xen-boot.js";
export { KERNEL_VERSIONS, kernelProfile, type KernelProfile, type KernelVersion } from "./swiotlb/profile.js";
export { replayTrace, type ReplayResult } from "./swiotlb/replay.js";
export { DmaApi } from "./dma/mapping.js";
export { DmaDebug, type DmaDebugErrorKind, type DmaDebugError, type DmaDebugMode, type DmaDebugSummary } from "./dma/debug.js";
export { runSoak, type SoakOptions, type SoakResult } from "./soak/soak.js";
export { parseInject } from "./soak/inject.js";
export { Device } from "./dma/device.js";
export { DeviceBus, BusFault } from "./dma/bus.js";
export { PhysicalMemory } from "./memory/physical-memory.js";
export {
  DMA_MAPPING_ERROR,
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  DMA_FROM_DEVICE,
  dmaBitMask,
} from "./kernel/dma-mapping.js";
export { IO_TLB_SIZE, IO_TLB_SHIFT, IO_TLB_SEGSIZE } from "./kernel/swiotlb.js";
export { errnoName } from "./kernel/errno.js";
export {
  DmalabError,
  UsageError,
  InputError,
  InvalidArgumentError,
  FaultError,
  LimitError,
  EXIT_OK,
  EXIT_GUEST,
  EXIT_USAGE,
  EXIT_FAULT,
  EXIT_LIMIT,
  hex,
} from "./errors.js";
