// xen_version (hypercall 17): kernel.c do_xen_version with the dummy XSM policy, where
// version / platform_parameters / get_features always answer, extraversion ... guest_handle
// are open to every guest, and the rest (commandline, build_id) only to privileged domains:
// a denied commandline reads "<denied>", a denied build_id is -EPERM.

import type { Domain } from "./domain.js";
import type { GuestMemory } from "./guest-memory.js";
import {
  XENFEAT,
  XENVER,
  XEN_CAPABILITIES_INFO_LEN,
  XEN_CHANGESET_INFO_LEN,
  XEN_COMMANDLINE_LEN,
  XEN_COMPILE_INFO_SIZE,
  XEN_ERRNO,
  XEN_EXTRAVERSION_LEN,
  XEN_FEATURE_INFO_SIZE,
  XEN_PAGE_SIZE,
} from "./public.js";
import type { XenProfile } from "./version.js";

export const XEN_DENY = "<denied>";

/** What the build reports through the string sub-ops. */
export interface XenBuildInfo {
  extraversion: string;
  compiler: string;
  compileBy: string;
  compileDomain: string;
  compileDate: string;
  changeset: string;
  commandline: string;
  buildId: Uint8Array;
}

export function defaultBuildInfo(p: XenProfile): XenBuildInfo {
  return {
    extraversion: ".0",
    compiler: "gcc (Debian 10.2.1-6) 10.2.1 20210110",
    compileBy: "dmalab",
    compileDomain: "stub",
    compileDate: `dmalab Xen ${p.version} stub`,
    changeset: "unavailable",
    commandline: "",
    // a fixed 20-byte (sha1-sized) build id
    buildId: Uint8Array.from({ length: 20 }, (_, i) => (0xd0 + i * 7) & 0xff),
  };
}

/**
 * XENVER_get_features submap 0 for a domain (kernel.c): vnode + SMCCC always on arm;
 * translated domains get writable_page_tables + auto_translated_physmap; the hardware
 * domain XENFEAT_dom0; ≥4.16 direct_mapped (for a direct-mapped or a non-translated domain,
 * d66bf122c0ab) or else not_direct_mapped; ≥4.18 runstate_phys_area.
 */
export function featureSubmap0(p: XenProfile, d: Domain): number {
  let m = (1 << XENFEAT.memory_op_vnode_supported) | (1 << XENFEAT.ARM_SMCCC_supported);
  if (d.autoTranslated) m |= (1 << XENFEAT.writable_page_tables) | (1 << XENFEAT.auto_translated_physmap);
  if (d.isHardware) m |= 1 << XENFEAT.dom0;
  if (p.directMapFeatures) m |= !d.autoTranslated || d.directMapped ? 1 << XENFEAT.direct_mapped : 1 << XENFEAT.not_direct_mapped;
  if (p.runstatePhysArea) m |= 1 << XENFEAT.runstate_phys_area;
  return m >>> 0;
}

/** A zero-padded fixed-size string buffer; the copy is truncated to size-1 like safe_strcpy. */
function cbuf(s: string, size: number): Uint8Array {
  const b = new Uint8Array(size);
  b.set(new TextEncoder().encode(s).subarray(0, size - 1));
  return b;
}

const EFAULT = -BigInt(XEN_ERRNO.EFAULT);

export function doXenVersion(p: XenProfile, build: XenBuildInfo, caller: Domain, guest: GuestMemory, cmdRaw: bigint, arg: bigint): bigint {
  // cmd is a C int: the low 32 bits, signed
  const cmd = Number(BigInt.asIntN(32, cmdRaw));
  // dummy XSM: XSM_PRIV = control domain only
  const privileged = caller.isControl;
  const copyOut = (b: Uint8Array): bigint => (guest.tryWrite(arg, b) ? 0n : EFAULT);
  switch (cmd) {
    case XENVER.version:
      return BigInt((p.major << 16) | p.minor);
    case XENVER.extraversion:
      return copyOut(cbuf(build.extraversion, XEN_EXTRAVERSION_LEN));
    case XENVER.compile_info: {
      const b = new Uint8Array(XEN_COMPILE_INFO_SIZE);
      b.set(cbuf(build.compiler, 64), 0);
      b.set(cbuf(build.compileBy, 16), 64);
      b.set(cbuf(build.compileDomain, 32), 80);
      b.set(cbuf(build.compileDate, 32), 112);
      return copyOut(b);
    }
    case XENVER.capabilities:
      // arm64 arch_get_xen_caps, with AArch32 EL1 support
      return copyOut(cbuf("xen-3.0-aarch64 xen-3.0-armv7l ", XEN_CAPABILITIES_INFO_LEN));
    case XENVER.changeset:
      return copyOut(cbuf(build.changeset, XEN_CHANGESET_INFO_LEN));
    case XENVER.platform_parameters:
      // struct { xen_ulong_t virt_start; }: 0 on arm
      return copyOut(new Uint8Array(8));
    case XENVER.get_features: {
      const fi = guest.tryRead(arg, XEN_FEATURE_INFO_SIZE);
      if (fi === undefined) return EFAULT;
      const v = new DataView(fi.buffer);
      if (v.getUint32(0, true) !== 0) return -BigInt(XEN_ERRNO.EINVAL);
      v.setUint32(4, featureSubmap0(p, caller), true);
      return copyOut(fi);
    }
    case XENVER.pagesize:
      return arg !== 0n ? -BigInt(XEN_ERRNO.EINVAL) : BigInt(XEN_PAGE_SIZE);
    case XENVER.guest_handle:
      return copyOut(caller.handle);
    case XENVER.commandline: {
      if (!privileged) return copyOut(cbuf(XEN_DENY, XEN_DENY.length + 1));
      return copyOut(cbuf(build.commandline, XEN_COMMANDLINE_LEN));
    }
    case XENVER.build_id: {
      if (!privileged) return -BigInt(XEN_ERRNO.EPERM);
      const sz = build.buildId.length;
      if (arg === 0n) return BigInt(sz);
      // xen_build_id_t { u32 len; unsigned char buf[]; }
      const hdr = guest.tryRead(arg, 4);
      if (hdr === undefined) return EFAULT;
      const len = new DataView(hdr.buffer).getUint32(0, true);
      if (len === 0) return -BigInt(XEN_ERRNO.EINVAL);
      if (sz > len) return -BigInt(XEN_ERRNO.ENOBUFS);
      return guest.tryWrite(arg + 4n, build.buildId) ? BigInt(sz) : EFAULT;
    }
    default:
      return -BigInt(XEN_ERRNO.ENOSYS);
  }
}
