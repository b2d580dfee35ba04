// xen_create_contiguous_region / xen_destroy_contiguous_region: make a buffer machine-
// contiguous below 2^address_bits (what swiotlb-xen's fixup and coherent allocations ask for).
//
// Two implementations, chosen per boot:
//  - "arm": arch/arm/xen/mm.c from 2013 to v5.18 (so every kernel profile of the 2021 era):
//    no hypercall at all. dom0 is assumed 1:1, so the DMA handle is pstart itself and the
//    answer is 0; any other domain gets -EINVAL. Destroy does nothing. (v5.19 removed both
//    from arm, together with the fixup; the 6.x profile never calls them.)
//  - "x86-pv": arch/x86/xen/mmu_pv.c: give the region's frames to Xen with XENMEM_exchange and
//    take back one machine-contiguous extent of the same order below address_bits; the
//    xen_memory_exchange and both extent lists are written into guest memory and handed to
//    the hypervisor by address. Useful on a not-direct-mapped guest, where the stub's
//    "x86-pv" exchange mode really performs the exchange.

import { InvalidArgumentError, hex } from "../../errors.js";
import { EINVAL, ENOMEM } from "../../kernel/errno.js";
import { KernelBug } from "../../kernel/panic.js";
import { DOMID_SELF, XENMEM_exchange, zeroGuest, type Hypercalls } from "./hypercall.js";
import { INVALID_P2M_ENTRY, P2mOverrides, XEN_PAGE_SIZE } from "./p2m.js";
import type { XenGuest } from "./xen.js";

export type ContiguousRegionMode = "arm" | "x86-pv";

/** MAX_CONTIG_ORDER of mmu_pv.c: 2 MiB */
export const MAX_CONTIG_ORDER = 9;

// struct xen_memory_reservation (32 bytes) and struct xen_memory_exchange (72 bytes), arm64
export const RES_EXTENT_START = 0;
export const RES_NR_EXTENTS = 8;
export const RES_EXTENT_ORDER = 16;
export const RES_MEM_FLAGS = 20;
export const RES_DOMID = 24;
export const XCHG_IN = 0;
export const XCHG_OUT = 32;
export const XCHG_NR_EXCHANGED = 64;
export const XEN_MEMORY_EXCHANGE_SIZE = 72;

/** Guest memory Linux uses for the exchange: the struct and mmu_pv.c's static frame array. */
export interface ExchangeScratch {
  /** 72 bytes */
  readonly structGpa: number;
  /** 2^MAX_CONTIG_ORDER u64 entries (4 KiB) */
  readonly inListGpa: number;
  /** 2^MAX_CONTIG_ORDER u64 entries (4 KiB) */
  readonly outListGpa: number;
}

/** bytes of guest memory an ExchangeScratch needs, laid out struct page + two list pages */
export const EXCHANGE_SCRATCH_BYTES = 3 * XEN_PAGE_SIZE;

export function exchangeScratchAt(base: number): ExchangeScratch {
  return { structGpa: base, inListGpa: base + XEN_PAGE_SIZE, outListGpa: base + 2 * XEN_PAGE_SIZE };
}

export interface ContiguousResult {
  /** 0 or a negative Linux errno */
  readonly rc: number;
  /** *dma_handle: machine (bus) address of the region start */
  readonly dmaHandle: number;
}

export interface ExchangeRecord {
  readonly rc: number;
  readonly nrExchanged: number;
  readonly addressBits: number;
}

/** What swiotlb-xen calls: xen_create_contiguous_region / xen_destroy_contiguous_region. */
export interface ContiguousRegionOps {
  create(pstart: number, order: number, addressBits: number): ContiguousResult;
  destroy(pstart: number, order: number): void;
}

export class ContiguousRegion implements ContiguousRegionOps {
  /** every XENMEM_exchange issued, in order (for reports and tests) */
  readonly exchanges: ExchangeRecord[] = [];

  constructor(
    readonly mode: ContiguousRegionMode,
    private readonly xen: XenGuest,
    private readonly p2m: P2mOverrides,
    private readonly scratch?: ExchangeScratch,
  ) {
    if (mode === "x86-pv" && (!scratch || !xen.hypercalls))
      throw new InvalidArgumentError("x86-pv contiguous regions need a hypervisor and guest scratch memory for the exchange");
  }

  /** guest-physical address of the xen_memory_exchange the exchanges use (for the hypercall log) */
  get exchangeStructGpa(): number {
    return this.scratch?.structGpa ?? 0;
  }

  /** xen_create_contiguous_region(pstart, order, address_bits, &dma_handle) */
  create(pstart: number, order: number, addressBits: number): ContiguousResult {
    if (this.mode === "arm") {
      if (!this.xen.xenInitialDomain()) return { rc: -EINVAL, dmaHandle: 0 };
      return { rc: 0, dmaHandle: pstart };
    }
    if (order > MAX_CONTIG_ORDER) return { rc: -ENOMEM, dmaHandle: 0 };
    if (pstart % (XEN_PAGE_SIZE << order) !== 0)
      throw new InvalidArgumentError(`xen_create_contiguous_region: ${hex(pstart)} is not aligned to its order ${order}`);
    const hc = this.xen.hypercalls!;
    const s = this.scratch!;
    const n = 1 << order;
    const pfn = pstart / XEN_PAGE_SIZE;
    // mmu_pv.c zeroes the region first: its contents do not survive the exchange
    zeroGuest(hc.mem, pstart, n * XEN_PAGE_SIZE);
    // record the frames given up and drop Linux's mapping of them (the p2m entry goes invalid)
    const old: number[] = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      old[i] = this.p2m.lookup(pfn + i);
      // an auto-translated guest names its frames by gfn (== pfn on arm)
      hc.mem.write64(s.inListGpa + i * 8, pfn + i);
      this.p2m.set(pfn + i, INVALID_P2M_ENTRY);
    }
    hc.mem.write64(s.outListGpa, pfn);
    const r = this.exchange(hc, { nr: n, order: 0, list: s.inListGpa }, { nr: 1, order, list: s.outListGpa, addressBits });
    if (r.success) {
      const mfn = Number(hc.mem.read64(s.outListGpa));
      this.p2m.set(pfn, mfn, n);
      return { rc: 0, dmaHandle: mfn * XEN_PAGE_SIZE };
    }
    // put back what was there: the original frames stay the region's frames
    for (let i = 0; i < n; i++) if (old[i] !== INVALID_P2M_ENTRY) this.p2m.set(pfn + i, old[i]!);
    return { rc: -ENOMEM, dmaHandle: this.p2m.pfnToBfn(pfn) * XEN_PAGE_SIZE };
  }

  /** xen_destroy_contiguous_region(pstart, order) */
  destroy(pstart: number, order: number): void {
    if (this.mode === "arm") return;
    if (order > MAX_CONTIG_ORDER) return;
    const hc = this.xen.hypercalls!;
    const s = this.scratch!;
    const n = 1 << order;
    const pfn = pstart / XEN_PAGE_SIZE;
    zeroGuest(hc.mem, pstart, n * XEN_PAGE_SIZE);
    const firstBfn = this.p2m.pfnToBfn(pfn);
    hc.mem.write64(s.inListGpa, pfn);
    for (let i = 0; i < n; i++) {
      hc.mem.write64(s.outListGpa + i * 8, pfn + i);
      this.p2m.set(pfn + i, INVALID_P2M_ENTRY);
    }
    const r = this.exchange(hc, { nr: 1, order, list: s.inListGpa }, { nr: n, order: 0, list: s.outListGpa, addressBits: 0 });
    for (let i = 0; i < n; i++) {
      const back = r.success ? Number(hc.mem.read64(s.outListGpa + i * 8)) : firstBfn + i;
      // a frame equal to its pfn needs no override
      if (back !== pfn + i) this.p2m.set(pfn + i, back);
    }
  }

  /** xen_exchange_memory(): one XENMEM_exchange; BUG()s where Linux does. */
  private exchange(
    hc: Hypercalls,
    inp: { nr: number; order: number; list: number },
    out: { nr: number; order: number; list: number; addressBits: number },
  ): { success: boolean } {
    const s = this.scratch!;
    const m = hc.mem;
    zeroGuest(m, s.structGpa, XEN_MEMORY_EXCHANGE_SIZE);
    m.write64(s.structGpa + XCHG_IN + RES_EXTENT_START, inp.list);
    m.write64(s.structGpa + XCHG_IN + RES_NR_EXTENTS, inp.nr);
    m.write32(s.structGpa + XCHG_IN + RES_EXTENT_ORDER, inp.order);
    m.write16(s.structGpa + XCHG_IN + RES_DOMID, DOMID_SELF);
    m.write64(s.structGpa + XCHG_OUT + RES_EXTENT_START, out.list);
    m.write64(s.structGpa + XCHG_OUT + RES_NR_EXTENTS, out.nr);
    m.write32(s.structGpa + XCHG_OUT + RES_EXTENT_ORDER, out.order);
    m.write32(s.structGpa + XCHG_OUT + RES_MEM_FLAGS, out.addressBits & 0xff);
    m.write16(s.structGpa + XCHG_OUT + RES_DOMID, DOMID_SELF);
    m.write64(s.structGpa + XCHG_NR_EXCHANGED, 0);
    const rc = hc.memoryOp(XENMEM_exchange, s.structGpa);
    const nrExchanged = Number(m.read64(s.structGpa + XCHG_NR_EXCHANGED));
    this.exchanges.push({ rc, nrExchanged, addressBits: out.addressBits });
    const success = nrExchanged === inp.nr;
    if (!success && (nrExchanged !== 0 || rc === 0))
      throw new KernelBug(`arch/x86/xen/mmu_pv.c xen_exchange_memory (XENMEM_exchange returned ${rc} with nr_exchanged ${nrExchanged} of ${inp.nr})`);
    if (success && rc !== 0) throw new KernelBug(`arch/x86/xen/mmu_pv.c xen_exchange_memory (XENMEM_exchange completed but returned ${rc})`);
    return { success };
  }
}
