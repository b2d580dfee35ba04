// The DMA side of struct device: masks, bus limit, the dma_range_map (phys <-> dma offsets),
// min_align_mask, dma_parms (segment boundary, max segment size), coherency, the swiotlb mem
// the device bounces through, and its dma_map_ops (null = dma-direct).
//
// 64-bit values (masks, limits) are kept exact as bigint for messages and mask arithmetic, and
// cached as numbers for the hot path (dma_capable, bus checks): DMA addresses stay below 2^53,
// and a mask >= 2^53 saturates to 2^64, which compares the same way (maskToNumber).

import { InvalidArgumentError, hex } from "../errors.js";
import {
  DMA_MAPPING_ERROR,
  U64_MAX,
  dmaBitMask,
  maskToNumber,
  minNotZero,
} from "../kernel/dma-mapping.js";
import type { SwiotlbDevice } from "../swiotlb/device.js";
import type { DmaMapOps } from "./ops.js";

/** One entry of dev->dma_range_map (struct bus_dma_region). offset = cpu_start - dma_start. */
export interface BusDmaRegion {
  readonly cpuStart: number;
  readonly dmaStart: number;
  readonly size: number;
}

/** dma_get_max_seg_size() without dma_parms: SZ_64K */
export const DEFAULT_MAX_SEG_SIZE = 0x10000;

export interface DeviceOptions {
  /** driver name as dev_driver_string prints it, e.g. "e1000e" */
  driver: string;
  /** device name as dev_name prints it, e.g. "0000:00:02.0" */
  device: string;
  /**
   * *dev->dma_mask. `null` models a device whose dma_mask pointer is NULL (the mapping API
   * warns and fails). Default DMA_BIT_MASK(32), what PCI and OF set up before a driver asks.
   */
  dmaMask?: bigint | null;
  /** dev->coherent_dma_mask; default DMA_BIT_MASK(32) */
  coherentDmaMask?: bigint;
  /** dev->bus_dma_limit; 0 = none */
  busDmaLimit?: bigint;
  /** dev->dma_range_map; absent = phys and dma addresses are equal */
  dmaRangeMap?: readonly BusDmaRegion[] | null;
  /** dma_parms->min_align_mask; default 0 */
  minAlignMask?: number;
  /** dma_parms->segment_boundary_mask; default ULONG_MAX */
  segBoundaryMask?: bigint;
  /** dma_parms->max_segment_size; default 64 KiB */
  maxSegSize?: number;
  /** dev_is_dma_coherent(); default true (the emulator's arch syncs are no-ops either way) */
  coherent?: boolean;
  /**
   * Bounce every mapping of this device. In 6.x this is what a device whose dma_io_tlb_mem has
   * force_bounce sees (swiotlb=force, restricted-dma-pool); 5.13 has no per-device switch, so
   * there it is a dmalab extra that acts like swiotlb=force for this device only.
   */
  forceBounce?: boolean;
  /** dev->dma_io_tlb_mem: a restricted pool's name; undefined = the default pool */
  ioTlbMemName?: string;
  /** dev->dma_ops; null = dma-direct */
  dmaOps?: DmaMapOps | null;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function checkU64(what: string, v: bigint): bigint {
  if (typeof v !== "bigint" || v < 0n || v > U64_MAX)
    throw new InvalidArgumentError(`${what} ${String(v)}: must be a 64-bit unsigned value`);
  return v;
}

export class Device implements SwiotlbDevice {
  readonly driver: string;
  readonly device: string;
  /** "<driver> <device>", the prefix dev_warn prints */
  readonly name: string;

  private _dmaMask: bigint | null;
  private _coherentDmaMask: bigint;
  private _busDmaLimit: bigint;
  private _segBoundary: bigint;
  /** the same as a number (maskToNumber), cached: the map hot path asks for it on every map */
  private segBoundaryNumber = 2 ** 64;
  /** min_not_zero(*dma_mask, bus_dma_limit) as a number: the dma_capable limit */
  private capLimit = 0;
  /** the same, exact */
  private capLimitExact = 0n;

  // dma_range_map as parallel arrays, searched in order like the kernel's list
  private rangeCpu: Float64Array = new Float64Array(0);
  private rangeDma: Float64Array = new Float64Array(0);
  private rangeSize: Float64Array = new Float64Array(0);
  private _rangeMap: readonly BusDmaRegion[] | null = null;
  /** SwiotlbDevice.plainBus: no dma_range_map and no segment boundary (kept by setDmaRangeMap) */
  plainBus = false;

  minAlignMask: number;
  readonly maxSegSize: number;
  coherent: boolean;
  forceBounce: boolean;
  ioTlbMemName: string | undefined;
  dmaOps: DmaMapOps | null;

  constructor(opts: DeviceOptions) {
    if (!opts.driver || !opts.device) throw new InvalidArgumentError(`a device needs a driver and a device name (got '${opts.driver}' '${opts.device}')`);
    this.driver = opts.driver;
    this.device = opts.device;
    this.name = `${opts.driver} ${opts.device}`;
    this._dmaMask = opts.dmaMask === null ? null : checkU64("dma_mask", opts.dmaMask ?? dmaBitMask(32));
    this._coherentDmaMask = checkU64("coherent_dma_mask", opts.coherentDmaMask ?? dmaBitMask(32));
    this._busDmaLimit = checkU64("bus_dma_limit", opts.busDmaLimit ?? 0n);
    this._segBoundary = checkU64("segment_boundary_mask", opts.segBoundaryMask ?? U64_MAX);
    this.segBoundaryNumber = maskToNumber(this._segBoundary);
    const mam = opts.minAlignMask ?? 0;
    // dma_parms->min_align_mask is an unsigned int
    if (!Number.isSafeInteger(mam) || mam < 0 || mam > 0xffff_ffff)
      throw new InvalidArgumentError(`min_align_mask ${mam}: must be a 32-bit unsigned mask`);
    this.minAlignMask = mam;
    const mss = opts.maxSegSize ?? DEFAULT_MAX_SEG_SIZE;
    if (!Number.isSafeInteger(mss) || mss <= 0) throw new InvalidArgumentError(`max_segment_size ${mss}: must be a positive integer`);
    this.maxSegSize = mss;
    this.coherent = opts.coherent ?? true;
    this.forceBounce = opts.forceBounce ?? false;
    this.ioTlbMemName = opts.ioTlbMemName;
    this.dmaOps = opts.dmaOps ?? null;
    this.setDmaRangeMap(opts.dmaRangeMap ?? null);
    this.refreshLimits();
  }

  // ---- masks and limits ---------------------------------------------------------------------

  /** *dev->dma_mask, or null when the pointer is NULL */
  get dmaMaskOrNull(): bigint | null {
    return this._dmaMask;
  }
  /** SwiotlbDevice.dmaMask: the exact mask for messages (0 when the pointer is NULL) */
  get dmaMask(): bigint {
    return this._dmaMask ?? 0n;
  }
  get hasDmaMask(): boolean {
    return this._dmaMask !== null;
  }
  get coherentDmaMask(): bigint {
    return this._coherentDmaMask;
  }
  get busDmaLimit(): bigint {
    return this._busDmaLimit;
  }
  /** dma_get_seg_boundary(), exact */
  get segBoundary(): bigint {
    return this._segBoundary;
  }
  /** SwiotlbDevice.segBoundaryMask: the boundary mask as a number (>= 2^53 means all ones) */
  get segBoundaryMask(): number {
    return this.segBoundaryNumber;
  }
  /** min_not_zero(*dma_mask, bus_dma_limit): the highest DMA address dma_capable accepts */
  get dmaLimit(): bigint {
    return this.capLimitExact;
  }
  /** the same as a number (saturated to 2^64 above 2^53) */
  get dmaLimitNumber(): number {
    return this.capLimit;
  }

  /** dma_get_mask(): *dma_mask when set and non-zero, else DMA_BIT_MASK(32) */
  dmaGetMask(): bigint {
    return this._dmaMask !== null && this._dmaMask !== 0n ? this._dmaMask : dmaBitMask(32);
  }

  /**
   * Writes *dev->dma_mask directly (what dma_set_mask does once dma_supported agreed). Drivers
   * go through the mapping API's dmaSetMask, which asks dma_supported first.
   */
  setDmaMaskRaw(mask: bigint | null): void {
    this._dmaMask = mask === null ? null : checkU64("dma_mask", mask);
    this.refreshLimits();
  }
  setCoherentDmaMaskRaw(mask: bigint): void {
    this._coherentDmaMask = checkU64("coherent_dma_mask", mask);
  }
  setBusDmaLimit(limit: bigint): void {
    this._busDmaLimit = checkU64("bus_dma_limit", limit);
    this.refreshLimits();
  }
  setSegBoundary(mask: bigint): void {
    this._segBoundary = checkU64("segment_boundary_mask", mask);
    this.segBoundaryNumber = maskToNumber(this._segBoundary);
  }

  private refreshLimits(): void {
    // a NULL dma_mask pointer: dma_capable cannot pass anything but the bus limit; the API
    // entry points refuse such a device before they get here
    const lim = minNotZero(this._dmaMask ?? 0n, this._busDmaLimit);
    this.capLimitExact = lim;
    this.capLimit = maskToNumber(lim);
  }

  // ---- dma_range_map ------------------------------------------------------------------------

  get dmaRangeMap(): readonly BusDmaRegion[] | null {
    return this._rangeMap;
  }

  /** Installs (or with null removes) the device's dma_range_map. */
  setDmaRangeMap(map: readonly BusDmaRegion[] | null): void {
    this.plainBus = false;
    if (map === null || map.length === 0) {
      this.plainBus = this.segBoundaryNumber >= MAX_SAFE;
      this._rangeMap = null;
      this.rangeCpu = new Float64Array(0);
      this.rangeDma = new Float64Array(0);
      this.rangeSize = new Float64Array(0);
      return;
    }
    map.forEach((r, i) => {
      for (const [k, v] of [["cpu_start", r.cpuStart], ["dma_start", r.dmaStart], ["size", r.size]] as const)
        if (!Number.isSafeInteger(v) || v < 0)
          throw new InvalidArgumentError(`dma_range_map[${i}].${k} ${String(v)}: must be a non-negative integer below 2^53`);
      if (r.size === 0) throw new InvalidArgumentError(`dma_range_map[${i}].size is 0 (a zero size ends the kernel's list)`);
      if (r.cpuStart + r.size > MAX_SAFE || r.dmaStart + r.size > MAX_SAFE)
        throw new InvalidArgumentError(`dma_range_map[${i}] [cpu ${hex(r.cpuStart)} dma ${hex(r.dmaStart)} size ${hex(r.size)}] exceeds 2^53`);
    });
    this._rangeMap = map.map((r) => ({ ...r }));
    this.rangeCpu = Float64Array.from(map, (r) => r.cpuStart);
    this.rangeDma = Float64Array.from(map, (r) => r.dmaStart);
    this.rangeSize = Float64Array.from(map, (r) => r.size);
  }

  /**
   * phys_to_dma / phys_to_dma_unencrypted (the encryption bit is a no-op on arm64): the first
   * region holding phys gives phys - offset; with a map but no region, DMA_MAPPING_ERROR (-1).
   */
  physToDma(phys: number): number {
    const n = this.rangeCpu.length;
    if (n === 0) return phys;
    for (let i = 0; i < n; i++) {
      const c = this.rangeCpu[i]!;
      if (phys >= c && phys - c < this.rangeSize[i]!) return phys - c + this.rangeDma[i]!;
    }
    return DMA_MAPPING_ERROR;
  }

  /** dma_to_phys: the reverse; an unmatched address gives all ones (-1). */
  dmaToPhys(dma: number): number {
    const n = this.rangeDma.length;
    if (n === 0) return dma;
    for (let i = 0; i < n; i++) {
      const d = this.rangeDma[i]!;
      if (dma >= d && dma - d < this.rangeSize[i]!) return dma - d + this.rangeCpu[i]!;
    }
    return DMA_MAPPING_ERROR;
  }

  /**
   * Bytes from dma (which dmaToPhys translates) up to the end of its range region: the
   * stretch over which dma -> phys stays linear. Unbounded without a range map.
   */
  dmaLinearRun(dma: number): number {
    const n = this.rangeDma.length;
    if (n === 0) return Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const d = this.rangeDma[i]!;
      if (dma >= d && dma - d < this.rangeSize[i]!) return d + this.rangeSize[i]! - dma;
    }
    return 0;
  }

  /**
   * dma_capable(dev, addr, size, is_ram): addr + size - 1 (64-bit wrap) must not pass
   * min_not_zero(*dma_mask, bus_dma_limit); DMA_MAPPING_ERROR is never capable. is_ram only
   * matters for the min_low_pfn test of 32-bit dma_addr_t, never on arm64.
   */
  dmaCapable(dma: number, size: number, _isRam = true): boolean {
    if (dma === DMA_MAPPING_ERROR) return false;
    const end = dma + size - 1;
    if (end < 0) {
      // addr 0, size 0: the end wraps to all ones
      return this.capLimitExact === U64_MAX;
    }
    return end <= this.capLimit;
  }
}
