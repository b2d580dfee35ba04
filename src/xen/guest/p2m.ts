// Linux's own view of guest frame → bus frame on arm (arch/arm/xen/p2m.c, include/xen/arm/page.h).
// Every arm guest is auto-translated, so pfn_to_gfn is the identity; the "bus frame" a device
// must be given differs from the pfn only where Linux recorded an override (phys_to_mach):
// foreign pages mapped by grant, and — in dmalab's x86-PV exchange mode — the frames Xen gave
// back from XENMEM_exchange. Lookups sit on the swiotlb-xen map path: a Map of per-page
// entries keeps them allocation-free, and an empty table short-circuits to the identity.

export const XEN_PAGE_SHIFT = 12;
export const XEN_PAGE_SIZE = 1 << XEN_PAGE_SHIFT;
/** INVALID_P2M_ENTRY (~0UL) */
export const INVALID_P2M_ENTRY = -1;

export class P2mOverrides {
  private readonly map = new Map<number, number>();

  get size(): number {
    return this.map.size;
  }

  /** __set_phys_to_machine_multi(pfn, mfn, nr): INVALID_P2M_ENTRY removes the entries */
  set(pfn: number, mfn: number, nr = 1): void {
    for (let i = 0; i < nr; i++) {
      if (mfn === INVALID_P2M_ENTRY) this.map.delete(pfn + i);
      else this.map.set(pfn + i, mfn + i);
    }
  }

  /** __pfn_to_mfn: the recorded frame, or INVALID_P2M_ENTRY */
  lookup(pfn: number): number {
    return this.map.get(pfn) ?? INVALID_P2M_ENTRY;
  }

  /** pfn_to_bfn: the override if there is one, else the pfn itself */
  pfnToBfn(pfn: number): number {
    if (this.map.size === 0) return pfn;
    const m = this.map.get(pfn);
    return m === undefined ? pfn : m;
  }

  /**
   * bfn_to_pfn is the identity on arm: Linux never inverts the override table (a foreign
   * bus frame is not one of its pfns, and pfn_valid() then tells it so).
   */
  bfnToPfn(bfn: number): number {
    return bfn;
  }
}

/** xen_phys_to_bus(): bus frame of the page, same offset within the 4 KiB Xen page */
export function xenPhysToBus(p2m: P2mOverrides, paddr: number): number {
  const off = paddr % XEN_PAGE_SIZE;
  return p2m.pfnToBfn((paddr - off) / XEN_PAGE_SIZE) * XEN_PAGE_SIZE + off;
}

/** xen_bus_to_phys(): through bfn_to_pfn, the identity on arm */
export function xenBusToPhys(p2m: P2mOverrides, baddr: number): number {
  const off = baddr % XEN_PAGE_SIZE;
  return p2m.bfnToPfn((baddr - off) / XEN_PAGE_SIZE) * XEN_PAGE_SIZE + off;
}

/**
 * range_straddles_page_boundary(p, size): does any following 4 KiB frame of [p, p+size) map
 * to something other than the next bus frame?
 */
export function rangeStraddlesPageBoundary(p2m: P2mOverrides, p: number, size: number): boolean {
  if (p2m.size === 0) return false;
  const off = p % XEN_PAGE_SIZE;
  let pfn = (p - off) / XEN_PAGE_SIZE;
  const nr = Math.ceil((off + size) / XEN_PAGE_SIZE);
  let next = p2m.pfnToBfn(pfn);
  for (let i = 1; i < nr; i++) if (p2m.pfnToBfn(++pfn) !== ++next) return true;
  return false;
}
