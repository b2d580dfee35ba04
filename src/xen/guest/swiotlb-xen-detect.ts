// xen_swiotlb_detect(): should this kernel route DMA through swiotlb-xen?
//
// v5.13-rc1 introduced it (arch/arm/xen/mm.c) with the XENFEAT_direct_mapped rule; v5.13-rc2
// (cb6f6b3384d7) moved the same body to a static inline in include/xen/arm/swiotlb-xen.h.
// Before 5.13-rc1 there was no such function: arm64's arch_setup_dma_ops and xen_mm_init used
// xen_initial_domain() directly ("dom0 only") — that is the rule the 5.12 profile applies.

import type { KernelProfile } from "../../swiotlb/profile.js";
import { XENFEAT_direct_mapped, XENFEAT_not_direct_mapped } from "./features.js";
import type { XenGuest } from "./xen.js";

export function xenSwiotlbDetect(xen: XenGuest, profile: KernelProfile): boolean {
  if (!profile.xenDetectUsesFeatures) return xen.xenInitialDomain();
  if (!xen.xenDomain()) return false;
  if (xen.xenFeature(XENFEAT_direct_mapped)) return true;
  // a Xen older than 4.16 reports neither bit: dom0 is direct-mapped there, domUs are not
  if (!xen.xenFeature(XENFEAT_not_direct_mapped) && xen.xenInitialDomain()) return true;
  return false;
}
