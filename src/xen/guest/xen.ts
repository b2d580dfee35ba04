// include/xen/xen.h and arch/arm/xen/enlighten.c as far as the DMA set-up needs them:
// whether the kernel runs on Xen (xen_domain) and whether it is the initial domain.
//
// On arm, Linux finds Xen through a `hypervisor` node in the device tree (xen_early_init);
// every arm guest is then an HVM-type domain, and "dom0" means nothing else than
// "the hypervisor reported XENFEAT_dom0" (SIF_INITDOMAIN is set from that bit alone).

import { XenFeatures, XENFEAT_dom0 } from "./features.js";
import type { Hypercalls } from "./hypercall.js";

export const SIF_PRIVILEGED = 1 << 0;
export const SIF_INITDOMAIN = 1 << 1;

export type XenDomainType = "XEN_NATIVE" | "XEN_PV_DOMAIN" | "XEN_HVM_DOMAIN";

export class XenGuest {
  domainType: XenDomainType = "XEN_NATIVE";
  startFlags = 0;
  readonly features = new XenFeatures();
  /** "xen,xen-<version>" from the DT node, once found */
  dtVersion: string | undefined;

  constructor(
    /** undefined when booting native: there is no hypervisor to call */
    readonly hypercalls: Hypercalls | undefined,
    /** guest memory for small argument structures (Linux's stack) */
    readonly scratchGpa: number,
    /** CONFIG_XEN_DOM0 (set in every arm64 defconfig of the era) */
    readonly configXenDom0 = true,
  ) {}

  /**
   * xen_early_init(): `hypervisorCompatible` stands for the DT `hypervisor` node's raw
   * `compatible` strings (undefined when there is no such node). The node must carry
   * "xen,xen", the first string must start with "xen,xen-" and the property's byte length
   * (strings with their NULs) must exceed 11; otherwise Linux stays native.
   */
  earlyInit(hypervisorCompatible: readonly string[] | undefined): void {
    if (!hypervisorCompatible || !this.hypercalls) return;
    if (!hypervisorCompatible.includes("xen,xen")) return;
    const first = hypervisorCompatible[0] ?? "";
    const prefix = "xen,xen-";
    const byteLen = hypervisorCompatible.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0);
    if (!first.startsWith(prefix) || byteLen <= prefix.length + 3) return;
    const version = first.slice(prefix.length);
    if (version.length === 0) return;
    this.dtVersion = version;
    this.domainType = "XEN_HVM_DOMAIN";
    this.features.setup(this.hypercalls, this.scratchGpa);
    if (this.features.has(XENFEAT_dom0)) this.startFlags |= SIF_INITDOMAIN | SIF_PRIVILEGED;
  }

  /** xen_domain() */
  xenDomain(): boolean {
    return this.domainType !== "XEN_NATIVE";
  }

  /** xen_pv_domain(): never on arm */
  xenPvDomain(): boolean {
    return this.domainType === "XEN_PV_DOMAIN";
  }

  /** xen_initial_domain(): constant false without CONFIG_XEN_DOM0 */
  xenInitialDomain(): boolean {
    return this.configXenDom0 && this.xenDomain() && (this.startFlags & SIF_INITDOMAIN) !== 0;
  }

  /** xen_feature(n) */
  xenFeature(flag: number): boolean {
    return this.features.has(flag);
  }
}

/** The DT `hypervisor` node's compatible strings for a given Xen release, as Xen writes them. */
export function xenDtCompatible(xenVersion: string): string[] {
  return [`xen,xen-${xenVersion}`, "xen,xen"];
}
