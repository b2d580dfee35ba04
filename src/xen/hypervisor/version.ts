// The one place that says how a Xen release behaves. Code elsewhere reads these flags.

import { UsageError } from "../../errors.js";

export type XenVersion = "4.15" | "4.16" | "4.17" | "4.18" | "4.19";
export const XEN_VERSIONS: readonly XenVersion[] = ["4.15", "4.16", "4.17", "4.18", "4.19"];

export interface XenProfile {
  readonly version: XenVersion;
  readonly major: number;
  readonly minor: number;
  /** XENFEAT_direct_mapped / not_direct_mapped reported (d66bf122c0ab, first in 4.16) */
  readonly directMapFeatures: boolean;
  /** XENFEAT_runstate_phys_area reported (4.18) */
  readonly runstatePhysArea: boolean;
  /**
   * Debug builds skip the argument clobber when the result is -ENOSYS (the generated
   * hypercall tables of 4.17); 4.15/4.16 clobber after any handled hypercall.
   */
  readonly clobberSkipsEnosys: boolean;
  /**
   * populate_physmap stops at an extent whose guest_physmap_add_page fails (Jan Beulich's
   * "common: guest_physmap_add_page()'s return value needs checking", Sep 2021, first in 4.16);
   * 4.15 ignores the result and counts the extent
   */
  readonly populateStopsOnP2mFailure: boolean;
}

export function xenProfile(v: XenVersion): XenProfile {
  if (!XEN_VERSIONS.includes(v)) throw new UsageError(`unknown Xen version "${String(v)}": expected one of ${XEN_VERSIONS.join(", ")}`);
  const minor = Number(v.split(".")[1]);
  return {
    version: v,
    major: 4,
    minor,
    directMapFeatures: minor >= 16,
    runstatePhysArea: minor >= 18,
    clobberSkipsEnosys: minor >= 17,
    populateStopsOnP2mFailure: minor >= 16,
  };
}
