// A whole emulated board built from a description and a kernel profile: physical memory,
// the boot allocator, the event sink and kernel log, the kernel's swiotlb and dma-direct, the
// DMA mapping API and the devices (each with its bus view). Nothing is allocated or probed
// here — boot.ts runs mem_init and the driver probes.

import { InvalidArgumentError, UsageError } from "../errors.js";
import { EventSink, KernelLog } from "../events.js";
import { DmaDirect } from "../dma/direct.js";
import { DeviceBus } from "../dma/bus.js";
import { Device, type BusDmaRegion } from "../dma/device.js";
import { DmaApi } from "../dma/mapping.js";
import { dmaBitMask } from "../kernel/dma-mapping.js";
import { Memblock } from "../memory/memblock.js";
import { PhysicalMemory, type MmioHandler, type MmioWindow } from "../memory/physical-memory.js";
import { Swiotlb } from "../swiotlb/swiotlb.js";
import type { KernelProfile } from "../swiotlb/profile.js";
import type { DeviceDesc, MachineDesc } from "./preset.js";
import { arm64Zones, type Arm64Zones } from "./zones.js";
import { fls64 } from "./units.js";

/** A device of the machine: the kernel's struct device, its bus view and its description. */
export class MachineDevice {
  /** driver probe finished (dma_set_mask_and_coherent succeeded) */
  probed = false;
  /** errno of a failed probe */
  probeError = 0;
  constructor(
    readonly desc: DeviceDesc,
    readonly dev: Device,
    readonly bus: DeviceBus,
  ) {}
  /** "<driver> <device>", as dev_* messages print it */
  get name(): string {
    return this.dev.name;
  }
  get buffers(): "high" | "low" {
    return this.desc.buffers;
  }
}

/**
 * of_dma_configure(): the device as the bus code leaves it before a driver binds: 32-bit
 * default masks, clipped to DMA_BIT_MASK(ilog2(end) + 1) when the bus has dma-ranges, whose
 * last DMA address also becomes bus_dma_limit (unless the description gives one).
 */
export function configureDevice(d: DeviceDesc): Device {
  const map: BusDmaRegion[] = d.dmaRanges.map((r) => ({ cpuStart: r.cpuStart, dmaStart: r.dmaStart, size: r.size }));
  let mask = dmaBitMask(32);
  if (map.length > 0) {
    let end = 0n;
    for (const r of map) {
      const e = BigInt(r.dmaStart) + BigInt(r.size) - 1n;
      if (e > end) end = e;
    }
    mask &= dmaBitMask(Math.min(64, fls64(end)));
  }
  const opts: ConstructorParameters<typeof Device>[0] = {
    driver: d.driver,
    device: d.name,
    dmaMask: mask,
    coherentDmaMask: mask,
    busDmaLimit: d.busDmaLimit,
    dmaRangeMap: map.length > 0 ? map : null,
    minAlignMask: d.minAlignMask,
    segBoundaryMask: d.segmentBoundary,
    coherent: d.coherent,
  };
  if (d.restrictedPool) opts.ioTlbMemName = d.restrictedPool.name;
  return new Device(opts);
}

export class Machine {
  readonly memory: PhysicalMemory;
  readonly memblock: Memblock;
  readonly events = new EventSink();
  readonly log = new KernelLog();
  readonly zones: Arm64Zones;
  readonly cpus: number;
  readonly swiotlb: Swiotlb;
  readonly direct: DmaDirect;
  readonly api: DmaApi;
  readonly devices: MachineDevice[];
  /** set by boot(): the boot went through mem_init and the probes */
  booted = false;

  constructor(
    readonly desc: MachineDesc,
    readonly profile: KernelProfile,
  ) {
    this.memory = new PhysicalMemory({
      banks: desc.ram.map((b) => ({ base: b.base, size: b.size, name: b.name })),
      reserved: desc.reserved.map((r) => ({ base: r.base, size: r.size, name: r.name, noMap: r.noMap })),
      paBits: desc.paBits,
      granule: desc.granule,
    });
    this.memblock = new Memblock(this.memory);
    this.zones = arm64Zones(desc, profile);
    this.cpus = desc.cpus;
    this.swiotlb = new Swiotlb(this.memory, profile, this.log, this.events, { memblock: this.memblock, possibleCpus: this.cpus });
    this.direct = new DmaDirect({
      memory: this.memory,
      swiotlb: this.swiotlb,
      profile,
      log: this.log,
      events: this.events,
      maxPfn: this.zones.maxPfn,
      zoneDmaBits: this.zones.zoneDmaBits,
    });
    this.api = new DmaApi({ direct: this.direct, memory: this.memory, log: this.log, events: this.events });
    this.devices = desc.devices.map((d) => {
      const dev = configureDevice(d);
      return new MachineDevice(d, dev, new DeviceBus(dev, this.memory));
    });
  }

  /** A device by its name, its driver, or "<driver> <name>". */
  device(name: string): MachineDevice {
    const d = this.devices.find((x) => x.desc.name === name || x.name === name) ?? this.devices.find((x) => x.desc.driver === name);
    if (!d) throw new UsageError(`machine ${this.desc.name} has no device '${name}' (devices: ${this.devices.map((x) => x.desc.name).join(", ")})`);
    return d;
  }

  /**
   * Puts a device model (e.g. the DMA engine) behind the description's MMIO window of that
   * model; returns the window. The model's owner supplies the handler.
   */
  attachMmio(model: string, handler: MmioHandler): MmioWindow {
    const w = this.desc.mmio.find((x) => x.model === model || x.name === model);
    if (!w) throw new UsageError(`machine ${this.desc.name} has no MMIO window for '${model}'`);
    return this.memory.addMmio(w.base, w.size, w.name, handler);
  }

  /** Reserves a device's restricted-dma-pool region and creates its allocator (5.15+). */
  setUpRestrictedPool(md: MachineDevice): void {
    const rp = md.desc.restrictedPool;
    if (!rp) throw new InvalidArgumentError(`${md.name} has no restricted DMA pool`);
    if (this.swiotlb.restrictedMems.has(rp.name)) return;
    this.memblock.reserve(rp.base, rp.size, rp.name);
    this.swiotlb.addRestrictedPool(rp.name, rp.base, rp.size);
  }
}
