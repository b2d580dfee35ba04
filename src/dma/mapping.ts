// The DMA mapping API entry points (kernel/dma/mapping.c, 5.13 [R eedb0b12]): validate, pick
// dma-direct or the device's dma_map_ops, and run the dma-debug hooks.
//
// What the kernel does with bad input and what dmalab does:
//   * an invalid direction is a BUG_ON: here an InvalidDirectionError (nothing changes);
//   * a device with a NULL dma_mask: WARN_ON_ONCE and DMA_MAPPING_ERROR (map_sg: 0), as the kernel;
//   * a size that is not a positive integer, or a buffer that is not RAM: the kernel would map
//     garbage; dmalab refuses with an InvalidArgumentError naming the value, before any state changes;
//   * with dma-debug in strict mode, misuse found at unmap/sync (not mapped, double unmap,
//     outside the mapping...) throws before the unmap/sync runs, so the pool is untouched;
//   * with dma-debug reporting (the kernel's way), the report is printed and the call goes on
//     with the kernel's semantics (an unmap with the wrong size copies back that size and
//     releases what was mapped; a double unmap of a free slot changes nothing).

import { InvalidArgumentError, hex } from "../errors.js";
import type { EventSink, KernelLog } from "../events.js";
import {
  DMA_DIRECTION_NAMES,
  DMA_MAPPING_ERROR,
  dmaBitMask,
  minNotZero,
  validDmaDirection,
  type DmaDirection,
} from "../kernel/dma-mapping.js";
import { EIO, ENOMEM } from "../kernel/errno.js";
import type { PhysicalMemory } from "../memory/physical-memory.js";
import type { DmaDebug } from "./debug.js";
import type { Device } from "./device.js";
import type { DmaDirect } from "./direct.js";
import { SIZE_MAX_NUMBER, type DmaMapOps } from "./ops.js";
import type { ScatterlistEntry } from "./scatterlist.js";

const DMA_BIT_MASK_32 = dmaBitMask(32);

/** BUG_ON(!valid_dma_direction(dir)) in an API entry point */
export class InvalidDirectionError extends InvalidArgumentError {
  constructor(
    readonly fn: string,
    readonly dir: number,
  ) {
    super(`kernel BUG in ${fn}: invalid DMA direction ${String(dir)} (valid: 0 DMA_BIDIRECTIONAL, 1 DMA_TO_DEVICE, 2 DMA_FROM_DEVICE)`);
  }
}

export interface DmaApiOptions {
  direct: DmaDirect;
  memory: PhysicalMemory;
  log: KernelLog;
  events?: EventSink;
  /** CONFIG_DMA_API_DEBUG; absent = off */
  debug?: DmaDebug | null;
}

export class DmaApi {
  readonly direct: DmaDirect;
  readonly memory: PhysicalMemory;
  readonly log: KernelLog;
  readonly events: EventSink | undefined;
  debug: DmaDebug | null;

  constructor(opts: DmaApiOptions) {
    this.direct = opts.direct;
    this.memory = opts.memory;
    this.log = opts.log;
    this.events = opts.events;
    this.debug = opts.debug ?? null;
  }

  /** get_dma_ops(dev), with dma-direct standing in for NULL (dma_map_direct) */
  opsOf(dev: Device): DmaMapOps {
    return dev.dmaOps ?? this.direct;
  }

  // ---- argument checks (cheap; they run before anything changes) ------------------------------

  private checkDir(fn: string, dir: number): asserts dir is DmaDirection {
    if (!validDmaDirection(dir)) throw new InvalidDirectionError(fn, dir);
  }

  private checkSize(fn: string, size: number): void {
    if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError(`${fn}: size ${String(size)} must be a positive integer`);
  }

  private checkAttrsCpu(fn: string, attrs: number, cpu: number): void {
    if (!Number.isInteger(attrs) || attrs < 0) throw new InvalidArgumentError(`${fn}: attrs ${String(attrs)} must be a non-negative bit mask`);
    if (!Number.isInteger(cpu) || cpu < 0) throw new InvalidArgumentError(`${fn}: CPU ${String(cpu)} must be a non-negative integer`);
  }

  private checkRam(fn: string, phys: number, size: number): void {
    if (!Number.isSafeInteger(phys) || phys < 0 || !this.memory.isRam(phys, size))
      throw new InvalidArgumentError(`${fn}: buffer [${Number.isSafeInteger(phys) && phys >= 0 ? hex(phys) : String(phys)}+${size}] is not RAM`);
  }

  private checkDma(fn: string, dma: number): void {
    if (!Number.isSafeInteger(dma) || dma < -1) throw new InvalidArgumentError(`${fn}: DMA address ${String(dma)} is not a dma_addr_t`);
  }

  private noMask(fn: string, dev: Device): void {
    // WARN_ON_ONCE(!dev->dma_mask): once per call site
    this.log.printOnce(`mapping:${fn}:no-mask`, `WARNING: at kernel/dma/mapping.c ${fn}: WARN_ON_ONCE(!dev->dma_mask) for ${dev.name}`);
  }

  // ---- single mappings ----------------------------------------------------------------------

  /** dma_map_page_attrs(dev, page, offset, size, dir, attrs); page given by its physical address */
  dmaMapPageAttrs(dev: Device, pagePhys: number, offset: number, size: number, dir: number, attrs = 0, cpu = 0): number {
    const fn = "dma_map_page_attrs";
    this.checkDir(fn, dir);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`${fn}: offset ${String(offset)} must be a non-negative integer`);
    if (!Number.isSafeInteger(pagePhys) || pagePhys < 0 || pagePhys % this.memory.granule !== 0)
      throw new InvalidArgumentError(`${fn}: page address ${String(pagePhys)} is not ${this.memory.granule}-aligned`);
    return this.mapPhys(fn, dev, pagePhys + offset, size, dir, attrs, cpu);
  }

  /**
   * dma_map_single_attrs: the kernel takes a linear-map virtual address; dmalab takes the
   * physical address behind it (there is no vmalloc space to reject).
   */
  dmaMapSingleAttrs(dev: Device, phys: number, size: number, dir: number, attrs = 0, cpu = 0): number {
    const fn = "dma_map_single_attrs";
    this.checkDir(fn, dir);
    return this.mapPhys(fn, dev, phys, size, dir, attrs, cpu);
  }

  private mapPhys(fn: string, dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): number {
    this.checkSize(fn, size);
    this.checkAttrsCpu(fn, attrs, cpu);
    this.checkRam(fn, phys, size);
    if (!dev.hasDmaMask) {
      this.noMask("dma_map_page_attrs", dev);
      return DMA_MAPPING_ERROR;
    }
    const ops = dev.dmaOps;
    const dma = ops === null ? this.direct.mapPage(dev, phys, size, dir, attrs, cpu) : ops.mapPage(dev, phys, size, dir, attrs, cpu);
    if (this.debug !== null) this.debug.mapPage(dev, phys, size, dir, dma, attrs);
    if (this.events?.active) this.events.emit("dma_map", { device: dev.name, phys, size, dir, dma });
    return dma;
  }

  /** dma_unmap_page_attrs / dma_unmap_single_attrs */
  dmaUnmapPageAttrs(dev: Device, dma: number, size: number, dir: number, attrs = 0): void {
    const fn = "dma_unmap_page_attrs";
    this.checkDir(fn, dir);
    this.checkDma(fn, dma);
    this.checkSize(fn, size);
    this.checkAttrsCpu(fn, attrs, 0);
    const debug = this.debug;
    if (debug !== null) debug.validateUnmapPage(dev, dma, size, dir);
    if (debug !== null && !debug.strict) this.unmapReporting(dev, dma, size, dir, attrs);
    else this.opsUnmapPage(dev, dma, size, dir, attrs);
    if (debug !== null) debug.unmapPage(dev, dma, size, dir);
    if (this.events?.active) this.events.emit("dma_unmap", { device: dev.name, dma, size, dir });
  }

  private opsUnmapPage(dev: Device, dma: number, size: number, dir: DmaDirection, attrs: number): void {
    const ops = dev.dmaOps;
    if (ops === null) this.direct.unmapPage(dev, dma, size, dir, attrs);
    else if (ops.unmapPage) ops.unmapPage(dev, dma, size, dir, attrs);
  }

  /**
   * dma-debug's report-and-continue: the unmap goes on as in the kernel, misuse included. A
   * swiotlb slot holding no mapping (never mapped, or already freed by a double unmap) has
   * orig_addr INVALID_PHYS_ADDR (nothing is copied back) and alloc_size 0 (nr_slots gives 0:
   * nothing is released), so the kernel's unmap changes nothing; swiotlb here refuses such an
   * address before touching anything, and that refusal is the kernel's no-op. A slot inside
   * someone else's mapping is left alone too (the kernel would release that mapping's tail
   * from it: a corruption dmalab does not reproduce).
   */
  private unmapReporting(dev: Device, dma: number, size: number, dir: DmaDirection, attrs: number): void {
    try {
      this.opsUnmapPage(dev, dma, size, dir, attrs);
    } catch (e) {
      if (!(e instanceof InvalidArgumentError)) throw e;
    }
  }

  dmaUnmapSingleAttrs(dev: Device, dma: number, size: number, dir: number, attrs = 0): void {
    this.dmaUnmapPageAttrs(dev, dma, size, dir, attrs);
  }

  /** dma_sync_single_for_cpu */
  dmaSyncSingleForCpu(dev: Device, dma: number, size: number, dir: number): void {
    const fn = "dma_sync_single_for_cpu";
    this.checkDir(fn, dir);
    this.checkDma(fn, dma);
    this.checkSize(fn, size);
    const debug = this.debug;
    if (debug !== null) debug.validateSyncSingle(dev, dma, size, dir, true);
    const ops = dev.dmaOps;
    if (ops === null) this.direct.syncSingleForCpu(dev, dma, size, dir);
    else if (ops.syncSingleForCpu) ops.syncSingleForCpu(dev, dma, size, dir);
    if (debug !== null) debug.syncSingle(dev, dma, size, dir, true);
  }

  /** dma_sync_single_for_device */
  dmaSyncSingleForDevice(dev: Device, dma: number, size: number, dir: number): void {
    const fn = "dma_sync_single_for_device";
    this.checkDir(fn, dir);
    this.checkDma(fn, dma);
    this.checkSize(fn, size);
    const debug = this.debug;
    if (debug !== null) debug.validateSyncSingle(dev, dma, size, dir, false);
    const ops = dev.dmaOps;
    if (ops === null) this.direct.syncSingleForDevice(dev, dma, size, dir);
    else if (ops.syncSingleForDevice) ops.syncSingleForDevice(dev, dma, size, dir);
    if (debug !== null) debug.syncSingle(dev, dma, size, dir, false);
  }

  /** dma_sync_single_range_for_cpu: the same call at dma + offset */
  dmaSyncSingleRangeForCpu(dev: Device, dma: number, offset: number, size: number, dir: number): void {
    this.dmaSyncSingleForCpu(dev, dma + offset, size, dir);
  }
  dmaSyncSingleRangeForDevice(dev: Device, dma: number, offset: number, size: number, dir: number): void {
    this.dmaSyncSingleForDevice(dev, dma + offset, size, dir);
  }

  /** dma_mapping_error: -ENOMEM iff addr is DMA_MAPPING_ERROR; tells dma-debug it was checked */
  dmaMappingError(dev: Device, dma: number): number {
    if (this.debug !== null) this.debug.mappingError(dev, dma);
    if (dma === DMA_MAPPING_ERROR) {
      if (this.events?.active) this.events.emit("dma_mapping_error", { device: dev.name });
      return -ENOMEM;
    }
    return 0;
  }

  // ---- scatter-gather -----------------------------------------------------------------------

  private checkSg(fn: string, sg: readonly ScatterlistEntry[], nents: number): void {
    if (!Number.isInteger(nents) || nents <= 0 || nents > sg.length)
      throw new InvalidArgumentError(`${fn}: nents ${String(nents)} must be 1..${sg.length} (the scatterlist length)`);
  }

  /** dma_map_sg_attrs: the number of mapped entries, 0 on failure */
  dmaMapSgAttrs(dev: Device, sg: ScatterlistEntry[], nents: number, dir: number, attrs = 0, cpu = 0): number {
    const fn = "dma_map_sg_attrs";
    this.checkDir(fn, dir);
    this.checkSg(fn, sg, nents);
    this.checkAttrsCpu(fn, attrs, cpu);
    for (let i = 0; i < nents; i++) {
      const s = sg[i]!;
      this.checkSize(`${fn}: scatterlist[${i}]`, s.length);
      this.checkRam(`${fn}: scatterlist[${i}]`, s.phys, s.length);
    }
    if (!dev.hasDmaMask) {
      this.noMask(fn, dev);
      return 0;
    }
    const ops = dev.dmaOps;
    const ents = ops === null ? this.direct.mapSg(dev, sg, nents, dir, attrs, cpu) : ops.mapSg(dev, sg, nents, dir, attrs, cpu);
    // BUG_ON(ents < 0): an ops implementation must report failure as 0 through this API
    if (ents < 0) throw new InvalidArgumentError(`kernel BUG in ${fn}: ${this.opsOf(dev).name} map_sg returned ${ents}`);
    if (this.debug !== null) this.debug.mapSg(dev, sg, nents, ents, dir, attrs);
    return ents;
  }

  /** dma_unmap_sg_attrs: the dma-debug check runs before the unmap, as in the kernel */
  dmaUnmapSgAttrs(dev: Device, sg: ScatterlistEntry[], nents: number, dir: number, attrs = 0): void {
    const fn = "dma_unmap_sg_attrs";
    this.checkDir(fn, dir);
    this.checkSg(fn, sg, nents);
    this.checkAttrsCpu(fn, attrs, 0);
    const debug = this.debug;
    if (debug !== null) {
      debug.validateUnmapSg(dev, sg, nents, dir);
      debug.unmapSg(dev, sg, nents, dir);
    }
    const ops = dev.dmaOps;
    // report-and-continue: unmap_sg's per-segment unmap (dma-direct's and swiotlb-xen's), each
    // segment going on as the kernel's does (see unmapReporting)
    if (debug !== null && !debug.strict) for (let i = 0; i < nents; i++) this.unmapReporting(dev, sg[i]!.dmaAddress, sg[i]!.dmaLength, dir, attrs);
    else if (ops === null) this.direct.unmapSg(dev, sg, nents, dir, attrs);
    else if (ops.unmapSg) ops.unmapSg(dev, sg, nents, dir, attrs);
  }

  dmaSyncSgForCpu(dev: Device, sg: ScatterlistEntry[], nelems: number, dir: number): void {
    const fn = "dma_sync_sg_for_cpu";
    this.checkDir(fn, dir);
    this.checkSg(fn, sg, nelems);
    const debug = this.debug;
    if (debug !== null) debug.validateSyncSg(dev, sg, nelems, dir, true);
    const ops = dev.dmaOps;
    if (ops === null) this.direct.syncSgForCpu(dev, sg, nelems, dir);
    else if (ops.syncSgForCpu) ops.syncSgForCpu(dev, sg, nelems, dir);
    if (debug !== null) debug.syncSg(dev, sg, nelems, dir, true);
  }

  dmaSyncSgForDevice(dev: Device, sg: ScatterlistEntry[], nelems: number, dir: number): void {
    const fn = "dma_sync_sg_for_device";
    this.checkDir(fn, dir);
    this.checkSg(fn, sg, nelems);
    const debug = this.debug;
    if (debug !== null) debug.validateSyncSg(dev, sg, nelems, dir, false);
    const ops = dev.dmaOps;
    if (ops === null) this.direct.syncSgForDevice(dev, sg, nelems, dir);
    else if (ops.syncSgForDevice) ops.syncSgForDevice(dev, sg, nelems, dir);
    if (debug !== null) debug.syncSg(dev, sg, nelems, dir, false);
  }

  // ---- masks --------------------------------------------------------------------------------

  private checkMask(fn: string, mask: bigint): bigint {
    if (typeof mask !== "bigint" || mask < 0n) throw new InvalidArgumentError(`${fn}: mask ${String(mask)} must be a non-negative 64-bit value`);
    // (dma_addr_t)mask: truncated to the 64-bit dma_addr_t
    return BigInt.asUintN(64, mask);
  }

  /**
   * dma_supported: dma-direct's rule, or the ops' ->dma_supported (absent = supported). The
   * ops may fault — xen_swiotlb_dma_supported on a NULL io_tlb_default_mem does — and the
   * fault propagates with nothing changed.
   */
  dmaSupported(dev: Device, mask: bigint): boolean {
    const ops = dev.dmaOps;
    if (ops === null) return this.direct.dmaSupported(dev, mask);
    if (!ops.dmaSupported) return true;
    return ops.dmaSupported(dev, mask);
  }

  /** dma_set_mask: -EIO without a dma_mask pointer or when unsupported; else sets it, 0 */
  dmaSetMask(dev: Device, mask: bigint): number {
    const m = this.checkMask("dma_set_mask", mask);
    if (!dev.hasDmaMask || !this.dmaSupported(dev, m)) return -EIO;
    dev.setDmaMaskRaw(m);
    return 0;
  }

  /** dma_set_coherent_mask */
  dmaSetCoherentMask(dev: Device, mask: bigint): number {
    const m = this.checkMask("dma_set_coherent_mask", mask);
    if (!this.dmaSupported(dev, m)) return -EIO;
    dev.setCoherentDmaMaskRaw(m);
    return 0;
  }

  /** dma_set_mask_and_coherent */
  dmaSetMaskAndCoherent(dev: Device, mask: bigint): number {
    const rc = this.dmaSetMask(dev, mask);
    if (rc === 0) return this.dmaSetCoherentMask(dev, mask);
    return rc;
  }

  /** dma_get_required_mask */
  dmaGetRequiredMask(dev: Device): bigint {
    const ops = dev.dmaOps;
    if (ops === null) return this.direct.getRequiredMask(dev);
    if (ops.getRequiredMask) return ops.getRequiredMask(dev);
    // ops without ->get_required_mask (swiotlb-xen's among them) must handle a 32-bit mask, so
    // kernel/dma/mapping.c answers DMA_BIT_MASK(32) whatever the RAM size (already so in
    // v5.7, hence in every profile here)
    return DMA_BIT_MASK_32;
  }

  /** dma_addressing_limited */
  dmaAddressingLimited(dev: Device): boolean {
    return minNotZero(dev.dmaGetMask(), dev.busDmaLimit) < this.dmaGetRequiredMask(dev);
  }

  /** dma_max_mapping_size; SIZE_MAX is SIZE_MAX_NUMBER (2^64) */
  dmaMaxMappingSize(dev: Device): number {
    const ops = dev.dmaOps;
    if (ops === null) return this.direct.maxMappingSize(dev);
    if (ops.maxMappingSize) return ops.maxMappingSize(dev);
    return SIZE_MAX_NUMBER;
  }

  /** "DMA_TO_DEVICE" etc. for reports */
  static dirName(dir: number): string {
    return DMA_DIRECTION_NAMES[dir] ?? String(dir);
  }
}
