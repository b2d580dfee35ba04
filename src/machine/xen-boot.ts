// A Linux kernel booting as a Xen guest on arm64, as far as DMA goes. The native boot
// (boot.ts: bootMachine) runs zone sizing, mem_init and the driver probes; XenGuestBoot builds
// the world around it and plugs the Xen steps into its hooks:
//
//   machine RAM ──► XenHypervisor (heap, dom0, the domU) ──► the booting domain's RAM as the
//   kernel sees it (a Machine whose RAM chunks are shared with the machine's through stage 2)
//
//   setup_arch:   xen_early_init — hypervisor DT node, XENVER_get_features via the HVC ABI,
//                 XENFEAT_dom0 → SIF_INITDOMAIN
//   mem_init:     the native rule; 5.13 (687842ec) skips NO_FORCE when xen_swiotlb_detect()
//   xen_mm_init:  ≤5.12 dom0 only → xen_swiotlb_init (rc ignored); 5.13-rc1 when
//                 xen_swiotlb_detect() → xen_swiotlb_init (rc ignored); 5.13 the same, -EEXIST
//                 tolerated, other errors end xen_mm_init; 6.x: swiotlb_init_late when no pool.
//                 Then the GNTTABOP_cache_flush probe (hypercall_cflush).
//   arch_setup_dma_ops: xen_swiotlb_dma_ops on every device when the kernel uses swiotlb-xen
//                 (≤5.12: xen_initial_domain(); later: xen_swiotlb_detect()).
//   probes:       dma_set_mask_and_coherent → dma_supported → xen_swiotlb_dma_supported.
//
// Kernel sources considered for the older profiles (all share the 5.13 swiotlb allocator):
//   5.12: swiotlb-xen kept its own "already allocated, just use it" path (reuses the mem_init
//         pool, returns -ENOMEM) and read the static io_tlb_end in dma_supported; NO_FORCE did
//         not stop swiotlb_late_init_with_tbl (2726bf3ff252 came in 5.13-rc1). swiotlb.c's
//         globals (io_tlb_start/end instead of io_tlb_default_mem) do not change slot choice.
//   5.13-rc1: Hellwig's swiotlb-xen cleanups (no own reuse path, bytes not recomputed on
//         retry, io_tlb_default_mem->end in dma_supported) plus 2726bf3ff252, without the
//         two 5.13-rc2 fixes (687842ec, 97729b653de5).
// All of this lives in KernelProfile flags (swiotlb/profile.ts).

import { InvalidArgumentError, LimitError, UsageError, hex } from "../errors.js";
import { EEXIST, ENOSYS, errnoString } from "../kernel/errno.js";
import type { KernelOops } from "../kernel/oops.js";
import { IO_TLB_SHIFT, SWIOTLB_FORCE_NAMES, SWIOTLB_NO_FORCE } from "../kernel/swiotlb.js";
import { DEFAULT_CHUNK_SIZE, PhysicalMemory } from "../memory/physical-memory.js";
import { DeviceBus, type BusTranslation } from "../dma/bus.js";
import type { Device } from "../dma/device.js";
import type { KernelProfile } from "../swiotlb/profile.js";
import type { Domain } from "../xen/hypervisor/domain.js";
import { XenHypervisor, type CreateDomainOptions } from "../xen/hypervisor/hypervisor.js";
import { XEN_VERSIONS, type XenVersion } from "../xen/hypervisor/version.js";
import { ContiguousRegion, EXCHANGE_SCRATCH_BYTES, exchangeScratchAt, type ContiguousRegionMode } from "../xen/guest/contiguous-region.js";
import { __HYPERVISOR_grant_table_op, Hypercalls, describeXenErrno } from "../xen/guest/hypercall.js";
import { aliasGuestRam } from "../xen/guest/memory-alias.js";
import { P2mOverrides, XEN_PAGE_SIZE } from "../xen/guest/p2m.js";
import { xenSwiotlbDetect } from "../xen/guest/swiotlb-xen-detect.js";
import { XenSwiotlb, swiotlbForXen } from "../xen/guest/swiotlb-xen.js";
import { XenGuest, xenDtCompatible } from "../xen/guest/xen.js";
import type { BootHooks, BootRecorder, XenRole } from "./boot.js";
import { Machine, MachineDevice } from "./machine.js";
import type { MachineDesc, RamBankDesc } from "./preset.js";
import { totalRam } from "./preset.js";

export type DirectMapFeature = "direct_mapped" | "not_direct_mapped";
export const DIRECT_MAP_FEATURES: readonly DirectMapFeature[] = ["direct_mapped", "not_direct_mapped"];

export const GNTTABOP_cache_flush = 12;
const GNTTAB_CACHE_FLUSH_SIZE = 16;
const MiB = 2 ** 20;

export interface XenBootConfig {
  role: Exclude<XenRole, "none">;
  /** Xen release; default: the machine's (`xen.version`), else 4.15 */
  xenVersion?: string;
  /** `--feature`: make the booting domain direct-mapped or not (the last one wins) */
  features?: readonly DirectMapFeature[];
  /** xen_create_contiguous_region flavour; default "arm" (the only one of the era on arm) */
  contiguousRegion?: ContiguousRegionMode;
}

/**
 * The rules a Xen boot's configuration must meet, in one place: the builder checks them
 * before anything is built, XenGuestBoot holds them as its invariant. Returns what they
 * decide: the Xen release, the contiguous-region flavour, whether the domain is 1:1.
 */
export function checkXenBootConfig(
  desc: MachineDesc,
  config: XenBootConfig,
): { version: XenVersion; mode: ContiguousRegionMode; directMapped: boolean } {
  const role = config.role;
  if (role !== "dom0" && role !== "domU") throw new UsageError(`--xen '${String(role)}': expected none, dom0 or domU`);
  const version = config.xenVersion ?? desc.xen?.version ?? "4.15";
  if (!(XEN_VERSIONS as readonly string[]).includes(version))
    throw new UsageError(`${config.xenVersion !== undefined ? "--xen-version" : `machine ${desc.name}: xen.version`} '${version}': expected one of ${XEN_VERSIONS.join(", ")}`);
  for (const f of config.features ?? [])
    if (!DIRECT_MAP_FEATURES.includes(f)) throw new UsageError(`--feature '${String(f)}': expected one of ${DIRECT_MAP_FEATURES.join(", ")}`);
  const mode = config.contiguousRegion ?? "arm";
  if (mode !== "arm" && mode !== "x86-pv") throw new UsageError(`--contig '${String(mode)}': expected one of arm, x86-pv`);
  const last = config.features?.[config.features.length - 1];
  const directMapped = last === undefined ? role === "dom0" : last === "direct_mapped";
  if (mode === "x86-pv" && directMapped)
    throw new UsageError(`x86-pv contiguous regions exchange frames, which a direct-mapped ${role} cannot do: add --feature not_direct_mapped`);
  return { version: version as XenVersion, mode, directMapped };
}

/** The Xen side of one boot; also the BootHooks the native boot calls. */
export class XenGuestBoot implements BootHooks {
  readonly hv: XenHypervisor;
  /** the domain whose kernel boots */
  readonly domain: Domain;
  /** the kernel's machine: its RAM is the domain's guest-physical RAM */
  readonly machine: Machine;
  /** machine RAM (what Xen and the devices address) */
  readonly host: PhysicalMemory;
  readonly xen: XenGuest;
  readonly hypercalls: Hypercalls;
  readonly p2m = new P2mOverrides();
  readonly contig: ContiguousRegion;
  /** xen_swiotlb_dma_ops, when the kernel uses swiotlb-xen */
  xenSwiotlb: XenSwiotlb | null = null;
  /** xen_swiotlb_init's result (undefined when it did not run) */
  xenSwiotlbInitRc: number | undefined;
  /** what the boot said about Xen, for the report */
  readonly notes: string[] = [];
  private readonly scratchGpa: number;

  constructor(
    readonly desc: MachineDesc,
    readonly profile: KernelProfile,
    readonly config: XenBootConfig,
  ) {
    const { role } = config;
    const { version, mode, directMapped } = checkXenBootConfig(desc, config);

    this.host = new PhysicalMemory({
      banks: desc.ram.map((b) => ({ base: b.base, size: b.size, name: b.name })),
      reserved: desc.reserved.map((r) => ({ base: r.base, size: r.size, name: r.name, noMap: r.noMap })),
      paBits: desc.paBits,
      granule: desc.granule,
    });
    this.hv = new XenHypervisor(this.host, {
      version,
      reserved: desc.reserved,
      debugClobber: desc.xen?.debugBuild === true,
    });
    const dom0Mem = desc.xen?.dom0Mem ?? Math.min(totalRam(desc), 1024 * MiB);
    const domUMem = desc.xen?.domUMem ?? 512 * MiB;
    const exchange = mode === "x86-pv" ? "x86-pv" : "arm";
    // a domU needs a dom0 beside it (whose kernel is not modelled); its devices are passed through
    const dom0Ranges = lowestRam(desc, roundMem(dom0Mem));
    if (role === "domU") this.hv.createDomain({ role: "dom0", ramRanges: dom0Ranges });
    const size = roundMem(role === "dom0" ? dom0Mem : domUMem);
    const opts: CreateDomainOptions = {
      role,
      directMapped,
      // a direct-mapped dom0 gets the lowest RAM, as Xen's allocate_memory_11 aims for
      ...(role === "dom0" && directMapped ? { ramRanges: dom0Ranges } : { size }),
      exchange,
      passthrough: role === "domU" && desc.devices.length > 0,
      // dmalab's x86-PV mode gets the exchanged frame numbers back, as a PV guest does
      autoTranslated: mode !== "x86-pv",
    };
    this.domain = this.hv.createDomain(opts);

    this.machine = new Machine(kernelView(desc, this.domain, role), profile);
    const d = this.domain;
    aliasGuestRam(this.machine.memory, this.host, (g) => {
      const mfn = d.p2m.contiguousChunk(g / XEN_PAGE_SIZE);
      return mfn === undefined ? undefined : mfn * XEN_PAGE_SIZE;
    });
    // devices address machine memory: a direct-mapped dom0's directly (no SMMU in front of
    // them); a domU's passed-through devices, and a dom0 that is not 1:1 (which Xen only
    // allows with an IOMMU), through an SMMU that walks the domain's stage-2 table
    // (an x86-PV-style dom0 hands its devices machine addresses: no SMMU)
    const behindSmmu = role === "domU" || (!d.directMapped && mode !== "x86-pv");
    const ms = this.machine.devices;
    for (let i = 0; i < ms.length; i++) {
      const md = ms[i]!;
      ms[i] = new MachineDevice(md.desc, md.dev, new DeviceBus(md.dev, this.host, behindSmmu ? stage2Translation(d, md.dev) : undefined));
    }
    // the kernel image's static data and stack: where Linux keeps the structures it hands Xen
    this.scratchGpa = this.machine.memblock.allocBottomUp(EXCHANGE_SCRATCH_BYTES + XEN_PAGE_SIZE, XEN_PAGE_SIZE, 0, Infinity, "kernel");
    if (this.scratchGpa < 0) throw new LimitError(`${desc.name}: no room for the kernel's own data in the domain's RAM`);
    this.hypercalls = new Hypercalls((regs) => {
      const rec = this.hv.dispatch(d, regs);
      // the kernel's hypercalls show on its machine's event sink (reports, traces)
      const ev = this.machine.events;
      if (ev.active) ev.emit("hypercall", { domid: rec.domid, op: rec.sub !== undefined ? `${rec.op}/${rec.sub}` : rec.op, ret: errnoString(rec.ret) });
    }, this.machine.memory);
    this.xen = new XenGuest(this.hypercalls, this.scratchGpa);
    this.contig = new ContiguousRegion(mode, this.xen, this.p2m, exchangeScratchAt(this.scratchGpa + XEN_PAGE_SIZE));
    if (mode === "x86-pv") {
      // a PV guest starts knowing its pfn → mfn list (start_info's mfn_list): Linux's p2m
      for (const [gfn, e] of d.p2m) if (e.type === "ram_rw") this.p2m.set(gfn, e.mfn);
    }
  }

  /** the oops of the boot, if xen_swiotlb_dma_supported faulted */
  get lastOops(): KernelOops | null {
    return this.xenSwiotlb?.lastOops ?? null;
  }

  /** setup_arch → xen_early_init(): the DT node Xen's toolstack/boot code writes, then the features. */
  earlyInit(): void {
    const compat = xenDtCompatible(this.hv.version);
    this.xen.earlyInit(compat);
    if (this.xen.xenDomain()) {
      this.machine.log.print(`Xen ${this.xen.dtVersion} support found`);
      this.notes.push(
        `xen_early_init: Xen ${this.hv.version}, XENVER_get_features submap ${hex(this.xen.features.submap())}: ` +
          `xen_domain() = 1, xen_initial_domain() = ${this.xen.xenInitialDomain() ? 1 : 0}, ${this.domain.directMapped ? "direct-mapped" : "not direct-mapped"}`,
      );
    }
  }

  // ---- BootHooks ---------------------------------------------------------------------------

  /** xen_swiotlb_detect() as mem_init (5.13) and xen_mm_init see it */
  swiotlbDetect(): boolean {
    return xenSwiotlbDetect(this.xen, this.profile);
  }

  afterMemInit(m: Machine, b: BootRecorder): void {
    // xen_early_init ran in setup_arch, before mem_init: its account goes first
    b.decisions.unshift(...this.notes);
    const p = this.profile;
    const sw = m.swiotlb;
    const detect = this.swiotlbDetect();
    const usesXenSwiotlb = detect; // ≤5.12 detect() is xen_initial_domain(), the rule of that era
    if (usesXenSwiotlb) {
      this.xenSwiotlb = this.makeXenSwiotlb(m);
      this.xenSwiotlb.faultCauses = () => [...b.decisions];
      // the probe's frames (really_probe → … → dma_supported) are on the boot's chain then
      this.xenSwiotlb.callContext = () => (b.chain.length > 0 ? [...b.chain] : ["dma_supported"]);
    }
    b.within(["do_initcalls", "xen_mm_init"], () => this.xenMmInit(m, b, detect));
    // arch_setup_dma_ops (of_dma_configure, before the driver probes)
    if (this.xenSwiotlb) {
      for (const md of m.devices) md.dev.dmaOps = this.xenSwiotlb;
      b.decide(`arch_setup_dma_ops: ${p.xenDetectUsesFeatures ? "xen_swiotlb_detect()" : "xen_initial_domain()"}: xen_swiotlb_dma_ops on ${m.devices.length} device(s)`);
    } else if (this.xen.xenDomain()) {
      b.decide(`arch_setup_dma_ops: ${p.xenDetectUsesFeatures ? "xen_swiotlb_detect() = 0" : "not the initial domain"}: devices keep dma-direct` +
        (this.domain.directMapped ? "" : " (guest-physical bus addresses, translated by the domain's stage-2 table as an SMMU would)"));
    }
    // the state the probes will run in, for the report and an oops' causes
    b.decide(`before the probes: swiotlb_force = ${SWIOTLB_FORCE_NAMES[sw.forceState]}, io_tlb_default_mem ${sw.defaultMem === null ? "== NULL" : `= [${hex(sw.defaultMem.start)}-${hex(sw.defaultMem.end - 1)}]`}`);
  }

  private makeXenSwiotlb(m: Machine): XenSwiotlb {
    const sw = m.swiotlb;
    const limit = this.dma32Limit(m);
    const xs = new XenSwiotlb({
      profile: this.profile,
      swiotlb: swiotlbForXen(sw, this.profile),
      p2m: this.p2m,
      contig: this.contig,
      log: m.log,
      pages: {
        // xen_get_swiotlb_free_pages: GFP_DMA32 when any RAM lies below 4 GiB
        alloc: (order) => {
          const size = m.memory.granule * 2 ** order;
          return m.memblock.allocTopDown(size, size, limit, "xen-swiotlb");
        },
        free: (addr) => m.memblock.free(addr),
      },
      isLocalRam: (phys) => m.memory.isRam(phys, 1),
      pageShift: m.zones.pageShift,
    });
    return xs;
  }

  /** GFP_DMA32's zone end when some RAM is below 4 GiB, else no limit */
  private dma32Limit(m: Machine): number {
    return m.memory.banks.some((bk) => bk.base < 0xffff_ffff) ? Number(m.zones.dma32PhysLimit) : Infinity;
  }

  private xenMmInit(m: Machine, b: BootRecorder, detect: boolean): void {
    const p = this.profile;
    const sw = m.swiotlb;
    const gate = p.xenMmInitUsesDetect ? detect : this.xen.xenInitialDomain();
    if (!gate) {
      b.decide(`xen_mm_init: ${p.xenMmInitUsesDetect ? "xen_swiotlb_detect() = 0" : "xen_initial_domain() = 0"}: returns early`);
      return;
    }
    if (p.xenMmInitUsesSwiotlbInitLate) {
      // v5.19+: swiotlb-xen has no pool of its own any more
      if (sw.defaultMem === null) {
        const size = sw.defaultNslabs * 2 ** IO_TLB_SHIFT;
        const rc = sw.swiotlbInitLate(size, this.dma32Limit(m));
        b.decide(`xen_mm_init: no default pool: swiotlb_init_late(${size >> 20} MiB) = ${rc}`);
        // arch/arm/xen/mm.c: a negative result is returned before the cache-flush probe
        if (rc < 0) {
          b.decide("xen_mm_init: swiotlb_init_late failed: returns it, GNTTABOP_cache_flush not probed");
          return;
        }
      } else b.decide("xen_mm_init: the default pool exists: swiotlb_init_late not needed");
    } else {
      const xs = this.xenSwiotlb!;
      const before = sw.defaultMem;
      const force = sw.forceState;
      const rc = xs.init();
      this.xenSwiotlbInitRc = rc;
      b.decide(`xen_mm_init: xen_swiotlb_init() = ${rc === 0 ? 0 : `${rc} (${describeXenErrno(rc)})`}${this.describeInit(xs, rc, before !== null, force)}`);
      if (p.xenSwiotlbInitChecksExisting && rc < 0 && rc !== -EEXIST) {
        b.decide("xen_mm_init: error other than -EEXIST: returns it");
        return;
      }
    }
    // hypercall_cflush: does Xen know GNTTABOP_cache_flush? (an all-zero request)
    const g = this.scratchGpa;
    m.memory.write(g, new Uint8Array(GNTTAB_CACHE_FLUSH_SIZE));
    const rc = this.hypercalls.call(__HYPERVISOR_grant_table_op, GNTTABOP_cache_flush, g, 1);
    if (this.xenSwiotlb) this.xenSwiotlb.hypercallCflush = rc !== -ENOSYS;
  }

  private describeInit(xs: XenSwiotlb, rc: number, hadPool: boolean, force: number): string {
    const p = this.profile;
    const sw = this.machine.swiotlb;
    const last = xs.initAttempts[xs.initAttempts.length - 1];
    if (rc === -EEXIST) return ": the default pool already exists (97729b653de5); -EEXIST is tolerated on arm";
    if (p.xenSwiotlbInitReusesExisting && hadPool) return ": the pool from mem_init is used as it is (\"already allocated\"); arm ignores the result";
    if (rc === 0 && sw.defaultMem === null && force === SWIOTLB_NO_FORCE)
      return (
        `: swiotlb_late_init_with_tbl() returned 0 without creating a pool because swiotlb_force == SWIOTLB_NO_FORCE ` +
        `(2726bf3ff252): late init skipped, io_tlb_default_mem stays NULL and ${last ? `the ${(last.nslabs << IO_TLB_SHIFT) / MiB} MiB buffer at ${hex(last.start)} is unused` : "nothing was allocated"}`
      );
    if (rc === 0 && last) return `: pool [${hex(last.start)}-${hex(last.start + (last.nslabs << IO_TLB_SHIFT) - 1)}] (${(last.nslabs << IO_TLB_SHIFT) / MiB} MiB), fixed up in ${xs.fixupCalls.length} chunk(s)`;
    if (last?.lateInitRc !== undefined && last.lateInitRc !== 0)
      return `: swiotlb_late_init_with_tbl() refused a second pool (double initialisation)${p.xenMmInitUsesDetect && !p.xenSwiotlbInitChecksExisting ? "; xen_mm_init ignores the result" : ""}`;
    if (last?.fixupRc !== undefined && last.fixupRc !== 0) return `: xen_swiotlb_fixup failed (${last.fixupRc})`;
    return "";
  }
}

/**
 * Where Xen puts a direct-mapped dom0's RAM. allocate_memory_11 makes bank 0 as large and as
 * low as it can (trying address limits from the block's own size upwards, below the
 * platform's DMA bit size), then fills further banks low-first: dom0's memory ends up at the
 * bottom of RAM. dmalab takes the lowest free 2 MiB chunks (skipping reserved regions), which
 * is where that policy lands on an empty heap.
 */
export function lowestRam(desc: MachineDesc, bytes: number): { base: number; size: number }[] {
  const cs = DEFAULT_CHUNK_SIZE;
  const out: { base: number; size: number }[] = [];
  let left = bytes;
  const banks = [...desc.ram].sort((a, b) => a.base - b.base);
  for (const b of banks) {
    for (let a = Math.ceil(b.base / cs) * cs; a + cs <= b.base + b.size && left > 0; a += cs) {
      if (desc.reserved.some((r) => a < r.base + r.size && r.base < a + cs)) continue;
      const last = out[out.length - 1];
      if (last && last.base + last.size === a) last.size += cs;
      else out.push({ base: a, size: cs });
      left -= cs;
    }
  }
  if (left > 0) throw new LimitError(`${desc.name}: ${bytes} bytes of dom0 RAM do not fit in the machine's ${totalRam(desc)} bytes`);
  return out;
}

/**
 * An SMMU context for a domain's passed-through device: DMA addresses are guest-physical and
 * go through the domain's stage-2 table; a frame that is not the domain's RAM is a fault
 * (the bus reports it as an untranslatable address).
 */
export function stage2Translation(d: Domain, dev?: Device): BusTranslation {
  // a direct-mapped domU's kernel keeps the board's dma-ranges (bus offsets): the device's
  // address goes through them first, then through the stage-2 walk (gfn == mfn)
  const ranged = dev !== undefined && dev.dmaRangeMap !== null;
  return {
    name: `stage-2 of ${d}`,
    toPhys(dma: number): number {
      const ipa = ranged ? dev.dmaToPhys(dma) : dma;
      if (ipa < 0) return -1;
      const off = ipa % XEN_PAGE_SIZE;
      const e = d.p2m.lookup((ipa - off) / XEN_PAGE_SIZE);
      if (e === undefined || (e.type !== "ram_rw" && e.type !== "ram_ro")) return -1;
      return e.mfn * XEN_PAGE_SIZE + off;
    },
    linearRun: (dma: number) => {
      if (!ranged) return XEN_PAGE_SIZE - (dma % XEN_PAGE_SIZE);
      const ipa = dev.dmaToPhys(dma);
      return ipa < 0 ? 0 : Math.min(dev.dmaLinearRun(dma), XEN_PAGE_SIZE - (ipa % XEN_PAGE_SIZE));
    },
  };
}

/** dom0Mem/domUMem rounded down to whole 2 MiB chunks (at least one). */
function roundMem(bytes: number): number {
  return Math.max(DEFAULT_CHUNK_SIZE, Math.floor(bytes / DEFAULT_CHUNK_SIZE) * DEFAULT_CHUNK_SIZE);
}

/**
 * The machine description as the booting domain's kernel reads it from its device tree:
 * its own RAM (guest-physical; trimmed to whole 2 MiB chunks), the machine's devices and DMA
 * restrictions for dom0 and direct-mapped domUs. A domU that is not direct-mapped gets a DT
 * Xen wrote: no DMA-zone limits, and its passed-through devices address guest-physical memory
 * through the SMMU (no bus offsets).
 */
export function kernelView(desc: MachineDesc, d: Domain, role: "dom0" | "domU"): MachineDesc {
  const cs = DEFAULT_CHUNK_SIZE;
  const ram: RamBankDesc[] = [];
  for (const r of d.ram) {
    const base = Math.ceil(r.base / cs) * cs;
    const end = Math.floor((r.base + r.size) / cs) * cs;
    if (end > base) ram.push({ name: `${role}-ram${ram.length}`, base, size: end - base });
  }
  if (ram.length === 0) throw new InvalidArgumentError(`${d}: no whole 2 MiB chunk of RAM to boot a kernel in`);
  const inside = (base: number, size: number): boolean => ram.some((b) => base >= b.base && base + size <= b.base + b.size);
  const view: MachineDesc = {
    ...desc,
    name: desc.name,
    ram,
    reserved: desc.reserved.filter((r) => inside(r.base, r.size)),
  };
  if (!d.directMapped) {
    view.dmaZone = {};
    view.devices = desc.devices.map((dv) => ({ ...dv, dmaRanges: [], busDmaLimit: 0n }));
    view.mmio = [];
  }
  return view;
}
