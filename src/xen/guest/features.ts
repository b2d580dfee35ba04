// drivers/xen/features.c: xen_features[] filled from XENVER_get_features, one submap of 32
// bits at a time, through a struct xen_feature_info in guest memory (a stack variable in
// Linux): submap_idx u32 @0 (in), submap u32 @4 (out).

import { XENVER_get_features, type Hypercalls } from "./hypercall.js";

export const XENFEAT_writable_page_tables = 0;
export const XENFEAT_auto_translated_physmap = 2;
export const XENFEAT_dom0 = 11;
export const XENFEAT_memory_op_vnode_supported = 13;
export const XENFEAT_ARM_SMCCC_supported = 14;
export const XENFEAT_not_direct_mapped = 16;
export const XENFEAT_direct_mapped = 17;
export const XENFEAT_runstate_phys_area = 18;

export const XENFEAT_NR_SUBMAPS = 1;

export const XEN_FEATURE_INFO_SIZE = 8;

export class XenFeatures {
  /** u8 xen_features[XENFEAT_NR_SUBMAPS * 32] */
  readonly bytes = new Uint8Array(XENFEAT_NR_SUBMAPS * 32);

  /**
   * xen_setup_features(): one XENVER_get_features per submap; a negative answer ends the
   * loop and leaves the rest of the array as it was (zero at boot).
   * `infoGpa` is guest memory for the 8-byte xen_feature_info.
   */
  setup(hc: Hypercalls, infoGpa: number): void {
    for (let i = 0; i < XENFEAT_NR_SUBMAPS; i++) {
      hc.mem.write32(infoGpa, i);
      hc.mem.write32(infoGpa + 4, 0);
      if (hc.xenVersion(XENVER_get_features, infoGpa) < 0) break;
      const submap = hc.mem.read32(infoGpa + 4);
      for (let j = 0; j < 32; j++) this.bytes[i * 32 + j] = (submap >>> j) & 1;
    }
  }

  /** xen_feature(flag) */
  has(flag: number): boolean {
    return flag >= 0 && flag < this.bytes.length && this.bytes[flag] === 1;
  }

  /** the submap as a number, for the boot log */
  submap(i = 0): number {
    let v = 0;
    for (let j = 0; j < 32; j++) if (this.bytes[i * 32 + j]) v |= 1 << j;
    return v >>> 0;
  }
}
