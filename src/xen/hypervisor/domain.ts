// A Xen domain as the memory hypercalls see it: identity and privileges, whether its RAM is
// direct-mapped (gfn == mfn), its P2M, its page accounting (tot_pages / max_pages; the pages
// themselves are recorded as owned in the frame allocator) and its features.

import { CTLDOM_MAX_ORDER, DOMU_MAX_ORDER, HWDOM_MAX_ORDER, MAX_ORDER, PTDOM_MAX_ORDER, XEN_DOMAIN_HANDLE_LEN } from "./public.js";
import { P2M } from "./p2m.js";
import type { Stage1 } from "./guest-memory.js";

export type DomainRole = "dom0" | "domU";

/**
 * How XENMEM_exchange behaves for this domain:
 * - "arm": real Xen/arm — full validation, then steal_page is unimplemented → -EOPNOTSUPP;
 * - "x86-pv": the working exchange of x86 PV guests (spec 3.5), so that the chunk loop,
 *   partial progress and the address_bits allocation can be exercised.
 */
export type ExchangeMode = "arm" | "x86-pv";

export interface DomainInit {
  id: number;
  role: DomainRole;
  directMapped: boolean;
  exchange: ExchangeMode;
  /** has passthrough devices (cache_flush_permitted): raises the max extent order to 10 */
  passthrough: boolean;
  /** paging_mode_translate; every arm domain is auto-translated */
  autoTranslated: boolean;
  /** the domain whose device model this domain is (Xen's d->target) */
  target?: number;
  handle?: Uint8Array;
  ipaBits: number;
}

export class Domain {
  readonly id: number;
  readonly role: DomainRole;
  /** is_hardware_domain */
  readonly isHardware: boolean;
  /** is_control_domain */
  readonly isControl: boolean;
  readonly directMapped: boolean;
  readonly exchange: ExchangeMode;
  readonly passthrough: boolean;
  readonly autoTranslated: boolean;
  readonly target: number | undefined;
  /** xen_domain_handle_t (a UUID) */
  readonly handle: Uint8Array;
  readonly p2m: P2M;
  /** pages currently assigned (Xen's tot_pages) */
  totPages = 0;
  /** allocation limit (Xen's max_pages) */
  maxPages = 0;
  /** VMASST bits enabled by vm_assist */
  vmAssist = 0;
  /** set by SCHEDOP_shutdown */
  shutdownReason: number | undefined;
  /** the guest's stage-1 translation when its MMU is on (set by the CPU); absent: VA == IPA */
  stage1: Stage1 | undefined;
  /** RAM ranges given at creation, guest-physical (base, size in bytes) */
  readonly ram: { base: number; size: number }[] = [];

  constructor(init: DomainInit) {
    this.id = init.id;
    this.role = init.role;
    this.isHardware = init.role === "dom0";
    this.isControl = init.role === "dom0";
    this.directMapped = init.directMapped;
    this.exchange = init.exchange;
    this.passthrough = init.passthrough;
    this.autoTranslated = init.autoTranslated;
    this.target = init.target;
    this.handle = init.handle ?? new Uint8Array(XEN_DOMAIN_HANDLE_LEN);
    this.p2m = new P2M(init.ipaBits);
  }

  /**
   * Largest extent order this domain may ask for as a caller (memory.c max_order, arm
   * Kconfig defaults): domU 9, passthrough 10, hardware domain 10, control domain 18.
   */
  get maxOrder(): number {
    let order = DOMU_MAX_ORDER;
    if (this.passthrough && order < PTDOM_MAX_ORDER) order = PTDOM_MAX_ORDER;
    if (this.isControl && order < CTLDOM_MAX_ORDER) order = CTLDOM_MAX_ORDER;
    if (this.isHardware && order < HWDOM_MAX_ORDER) order = HWDOM_MAX_ORDER;
    return Math.min(order, MAX_ORDER);
  }

  toString(): string {
    return `d${this.id}`;
  }
}
