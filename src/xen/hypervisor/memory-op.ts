// memory_op (hypercall 12): xen/common/memory.c as it stands in 4.15 (identical in the
// parts modelled here up to 4.19), on arm. Spec xen-arm64.md section 3.
//
// The reservation ops (increase, decrease, populate) never return a negative errno: every
// failure is a short count of extents done. XENMEM_exchange validates in Xen's exact order,
// then either fails like Xen/arm (steal_page is unimplemented → -EOPNOTSUPP) or, for a
// domain in "x86-pv" exchange mode, runs the chunk loop of a PV guest's exchange.

import type { Domain } from "./domain.js";
import { FRAME_ANON } from "./frame-allocator.js";
import { decodeExchange, decodeReservation } from "./guest-structs.js";
import type { GuestMemory } from "./guest-memory.js";
import type { XenHypervisor } from "./hypervisor.js";
import {
  EXCHANGE,
  MAX_ORDER,
  MEMOP_CMD_MASK,
  MEMOP_EXTENT_SHIFT,
  NUMA_NO_NODE,
  RESERVATION,
  XENMEM,
  XENMEMF_ADDRESS_BITS_MASK,
  XENMEMF_exact_node_request,
  XENMEMF_populate_on_demand,
  XENMEMF_vnode,
  XEN_ERRNO,
  XEN_PAGE_SHIFT,
  xenmemfGetNode,
} from "./public.js";

/** arm has no NUMA in these releases: one node (MAX_NUMNODES = 1). */
export const MAX_NUMNODES = 1;
/** continuations encode the extent count in cmd >> 6 of an unsigned int */
const MAX_NR_EXTENTS = 0xffff_ffffn >> BigInt(MEMOP_EXTENT_SHIFT);
const U64_MAX = (1n << 64n) - 1n;

const err = (e: keyof typeof XEN_ERRNO): bigint => -BigInt(XEN_ERRNO[e]);

/** A u64 frame number from the guest as a JS number; -1 when it cannot be a frame. */
function toFrame(v: bigint): number {
  return v <= 0xf_ffff_ffff_ffffn ? Number(v) : -1;
}

/** Xen's get_order_from_pages: smallest order with 2^order >= n. */
export function getOrderFromPages(n: number): number {
  let o = 0;
  while (2 ** o < n) o++;
  return o;
}

/** propagate_node(): is the node request in mem_flags acceptable for the calling domain? */
function nodeRequestOk(caller: Domain, memFlags: number): boolean {
  const node = xenmemfGetNode(memFlags);
  if (node === NUMA_NO_NODE) return true;
  if (caller.isHardware || caller.isControl) return node < MAX_NUMNODES;
  return (memFlags & XENMEMF_exact_node_request) === 0;
}

interface MemopArgs {
  d: Domain;
  list: bigint;
  nr: number;
  order: number;
  addressBits: number;
  pod: boolean;
  done: number;
}

export function doMemoryOp(hv: XenHypervisor, caller: Domain, guest: GuestMemory, cmd: bigint, arg: bigint): bigint {
  const op = Number(cmd & BigInt(MEMOP_CMD_MASK));
  const startExtent = cmd >> BigInt(MEMOP_EXTENT_SHIFT);
  switch (op) {
    case XENMEM.increase_reservation:
    case XENMEM.decrease_reservation:
    case XENMEM.populate_physmap:
      return reservationOp(hv, caller, guest, op, startExtent, arg);
    case XENMEM.exchange:
      if (startExtent !== 0n) return err("EINVAL");
      return memoryExchange(hv, caller, guest, arg);
    case XENMEM.maximum_ram_page:
      if (startExtent !== 0n) return err("EINVAL");
      return BigInt(hv.frames.maxPage);
    case XENMEM.current_reservation:
    case XENMEM.maximum_reservation:
    case XENMEM.maximum_gpfn: {
      if (startExtent !== 0n) return err("EINVAL");
      const b = guest.tryRead(arg, 2);
      if (b === undefined) return err("EFAULT");
      const d = hv.lookupDomain(b[0]! | (b[1]! << 8), caller);
      if (d === undefined) return err("ESRCH");
      if (!hv.xsmTarget(caller, d)) return err("EPERM");
      if (op === XENMEM.current_reservation) return BigInt(d.totPages);
      if (op === XENMEM.maximum_reservation) return BigInt(d.maxPages);
      return BigInt(d.p2m.maxMappedGfn);
    }
    case XENMEM.get_sharing_freed_pages:
    case XENMEM.get_sharing_shared_pages:
      // arm's arch_memory_op answers these with 0
      return 0n;
    default:
      // the rest is either x86-only (arch_memory_op → -ENOSYS on arm) or not modelled
      return err("ENOSYS");
  }
}

// ---- increase / decrease / populate ---------------------------------------------------------

function reservationOp(hv: XenHypervisor, caller: Domain, guest: GuestMemory, op: number, startExtent: bigint, arg: bigint): bigint {
  const raw = guest.tryRead(arg, RESERVATION.size);
  if (raw === undefined) return startExtent;
  const r = decodeReservation(raw);
  if (r.nrExtents > MAX_NR_EXTENTS) return startExtent;
  if (startExtent >= r.nrExtents) return startExtent;
  const d = hv.lookupDomain(r.domid, caller);
  if (d === undefined) return startExtent;

  // construct_memop_from_reservation
  let addressBits = 0;
  const ab = r.memFlags & XENMEMF_ADDRESS_BITS_MASK;
  if (ab !== 0 && ab < getOrderFromPages(hv.frames.maxPage) + XEN_PAGE_SHIFT) {
    if (ab <= XEN_PAGE_SHIFT) return startExtent;
    addressBits = ab;
  }
  // a vnode request needs the domain's vNUMA layout; our domains have none, so it is ignored
  if ((r.memFlags & XENMEMF_vnode) === 0 && !nodeRequestOk(caller, r.memFlags)) return startExtent;
  const pod = op === XENMEM.populate_physmap && (r.memFlags & XENMEMF_populate_on_demand) !== 0;

  if (!hv.xsmTarget(caller, d)) return startExtent;

  const a: MemopArgs = { d, list: r.extentStart, nr: Number(r.nrExtents), order: r.extentOrder, addressBits, pod, done: Number(startExtent) };
  if (op === XENMEM.increase_reservation) increaseReservation(hv, caller, guest, a);
  else if (op === XENMEM.decrease_reservation) decreaseReservation(hv, caller, guest, a);
  else populatePhysmap(hv, caller, guest, a);
  return BigInt(a.done);
}

function increaseReservation(hv: XenHypervisor, caller: Domain, guest: GuestMemory, a: MemopArgs): void {
  if (a.order > caller.maxOrder) return;
  let i = a.done;
  for (; i < a.nr; i++) {
    const mfn = hv.allocDomheap(a.d, a.order, a.addressBits);
    if (mfn === undefined) break;
    // only a non-translated guest learns the machine frame; an arm domain gets nothing back
    if (!a.d.autoTranslated && a.list !== 0n && !guest.tryWrite64(a.list + BigInt(i * 8), BigInt(mfn))) break;
  }
  a.done = i;
}

function populatePhysmap(hv: XenHypervisor, caller: Domain, guest: GuestMemory, a: MemopArgs): void {
  if (a.pod ? a.order > MAX_ORDER : a.order > caller.maxOrder) return;
  const n = 2 ** a.order;
  let i = a.done;
  for (; i < a.nr; i++) {
    const g = guest.tryRead64(a.list + BigInt(i * 8));
    if (g === undefined) break;
    const gpfn = toFrame(g);
    if (a.pod) {
      // PoD on oneself is refused; for another domain arm's
      // guest_physmap_mark_populate_on_demand answers -ENOSYS, which stops the loop too
      if (a.d === caller || guestPhysmapMarkPopulateOnDemand() < 0) break;
      continue;
    }
    let mfn: number;
    if (a.d.directMapped) {
      // a direct-mapped domain can only get back frames it still owns, at gfn == mfn
      let ok = gpfn >= 0;
      for (let j = 0; ok && j < n; j++) ok = hv.frames.isValid(gpfn + j) && hv.frames.ownerOf(gpfn + j) === a.d.id;
      if (!ok) break;
      mfn = gpfn;
    } else {
      const m = hv.allocDomheap(a.d, a.order, a.addressBits);
      if (m === undefined) break;
      mfn = m;
    }
    // a failed p2m insert leaves the new page assigned but unmapped, as in Xen; 4.15 ignores
    // guest_physmap_add_page's result and counts the extent, 4.16+ stops there
    if (!a.d.p2m.insert(gpfn, mfn, n, "ram_rw") && hv.profile.populateStopsOnP2mFailure) break;
    if (!a.d.autoTranslated && !guest.tryWrite64(a.list + BigInt(i * 8), BigInt(mfn))) break;
  }
  a.done = i;
}

/** arm's guest_physmap_mark_populate_on_demand (arch/arm/p2m.c): PoD is x86-only, -ENOSYS. */
function guestPhysmapMarkPopulateOnDemand(): number {
  return -XEN_ERRNO.ENOSYS;
}

/** guest_remove_page(): 0, -EINVAL (nothing valid mapped) or -ENXIO (not the domain's page). */
export function guestRemovePage(hv: XenHypervisor, d: Domain, gfn: number): bigint {
  const e = gfn >= 0 ? d.p2m.lookup(gfn) : undefined;
  if (e === undefined || !hv.frames.isValid(e.mfn)) return err("EINVAL");
  if (hv.frames.ownerOf(e.mfn) !== d.id) return err("ENXIO");
  d.p2m.remove(gfn);
  // a direct-mapped domain keeps the page so populate_physmap can hand back the same frame
  if (!d.directMapped) hv.releaseDomainPages(d, e.mfn, 1);
  return 0n;
}

function decreaseReservation(hv: XenHypervisor, caller: Domain, guest: GuestMemory, a: MemopArgs): void {
  if (a.order > caller.maxOrder) return;
  const n = 2 ** a.order;
  let i = a.done;
  outer: for (; i < a.nr; i++) {
    const g = guest.tryRead64(a.list + BigInt(i * 8));
    if (g === undefined) break;
    const gfn = toFrame(g);
    for (let j = 0; j < n; j++) if (guestRemovePage(hv, a.d, gfn < 0 ? -1 : gfn + j) !== 0n) break outer;
  }
  a.done = i;
}

// ---- XENMEM_exchange ------------------------------------------------------------------------

function memoryExchange(hv: XenHypervisor, caller: Domain, guest: GuestMemory, arg: bigint): bigint {
  const raw = guest.tryRead(arg, EXCHANGE.size);
  if (raw === undefined) return err("EFAULT");
  const x = decodeExchange(raw);
  const nrExchangedAddr = arg + BigInt(EXCHANGE.nr_exchanged);
  // fail_early / the common exit: report progress in the guest's nr_exchanged
  const finish = (nrExchanged: bigint, rc: bigint): bigint => (guest.tryWrite64(nrExchangedAddr, nrExchanged) ? rc : err("EFAULT"));

  if (Math.max(x.in.extentOrder, x.out.extentOrder) > caller.maxOrder) return finish(x.nrExchanged, err("EPERM"));
  const inOrder = BigInt(x.in.extentOrder);
  const outOrder = BigInt(x.out.extentOrder);
  if (
    x.nrExchanged > x.in.nrExtents ||
    x.in.domid !== x.out.domid ||
    U64_MAX >> inOrder < x.in.nrExtents ||
    U64_MAX >> outOrder < x.out.nrExtents ||
    x.in.nrExtents << inOrder !== x.out.nrExtents << outOrder
  )
    return finish(x.nrExchanged, err("EINVAL"));
  if (x.nrExchanged === x.in.nrExtents) return 0n;

  let inChunkOrder: number;
  let outChunkOrder: number;
  if (x.in.extentOrder <= x.out.extentOrder) {
    inChunkOrder = x.out.extentOrder - x.in.extentOrder;
    outChunkOrder = 0;
  } else {
    inChunkOrder = 0;
    outChunkOrder = x.in.extentOrder - x.out.extentOrder;
  }
  if (!nodeRequestOk(caller, x.out.memFlags)) return finish(x.nrExchanged, err("EINVAL"));
  const d = hv.lookupDomain(x.in.domid, caller);
  if (d === undefined) return finish(x.nrExchanged, err("ESRCH"));
  if (!hv.xsmTarget(caller, d)) return finish(x.nrExchanged, err("EPERM"));
  // 0 means no limit (BITS_PER_LONG + PAGE_SHIFT)
  const addressBits = (x.out.memFlags & XENMEMF_ADDRESS_BITS_MASK) || 64 + XEN_PAGE_SHIFT;

  // the counts fit in 2^64 >> order and the orders are at most 18, so numbers are exact here
  const firstChunk = Number(x.nrExchanged >> BigInt(inChunkOrder));
  const lastChunk = Number(x.in.nrExtents >> BigInt(inChunkOrder));
  const inList = x.in.extentStart;
  const outList = x.out.extentStart;

  if (d.exchange === "arm") {
    // The first frame of the first chunk is looked up, then steal_page fails.
    const i = firstChunk;
    const done = BigInt(i) << BigInt(inChunkOrder);
    const g = guest.tryRead64(inList + BigInt((i << inChunkOrder) * 8));
    if (g === undefined) return finish(done, err("EFAULT"));
    const e = d.p2m.lookup(toFrame(g));
    if (e === undefined || !hv.frames.isValid(e.mfn)) return finish(done, err("EINVAL"));
    return finish(done, err("EOPNOTSUPP"));
  }

  const inFrames = 2 ** x.in.extentOrder;
  const outFrames = 2 ** x.out.extentOrder;
  for (let i = firstChunk; i < lastChunk; i++) {
    const stolen: { gfn: number; mfn: number }[] = [];
    const outs: number[] = [];
    let rc = 0n;
    const fail = (code: bigint): bigint => {
      // give the stolen pages back, free what was allocated, report completed chunks
      for (const s of stolen) hv.frames.setOwner(s.mfn, 1, d.id);
      for (const m of outs) hv.frames.free(m, x.out.extentOrder);
      return finish(BigInt(i) << BigInt(inChunkOrder), code);
    };

    // steal the chunk's input frames
    for (let j = 0; j < 2 ** inChunkOrder; j++) {
      const g = guest.tryRead64(inList + BigInt(((i << inChunkOrder) + j) * 8));
      if (g === undefined) return fail(err("EFAULT"));
      const gmfn = toFrame(g);
      for (let k = 0; k < inFrames; k++) {
        const e = gmfn < 0 ? undefined : d.p2m.lookup(gmfn + k);
        if (e === undefined || !hv.frames.isValid(e.mfn)) return fail(err("EINVAL"));
        // x86 steal_page: only a page the domain owns (and has not already given up)
        if (hv.frames.ownerOf(e.mfn) !== d.id) return fail(err("EINVAL"));
        hv.frames.setOwner(e.mfn, 1, FRAME_ANON);
        stolen.push({ gfn: gmfn + k, mfn: e.mfn });
      }
    }
    // allocate the chunk's output extents, anonymous for now
    for (let j = 0; j < 2 ** outChunkOrder; j++) {
      const m = hv.exchangeFaultHook !== null && hv.exchangeFaultHook() ? undefined : hv.frames.alloc(x.out.extentOrder, { addressBits });
      if (m === undefined) return fail(err("ENOMEM"));
      outs.push(m);
    }
    // past this point the chunk cannot fail for want of memory
    for (const s of stolen) {
      if (d.p2m.lookupMfn(s.gfn) === s.mfn) d.p2m.remove(s.gfn);
      hv.frames.free(s.mfn, 0);
    }
    stolen.length = 0;
    for (let j = 0; j < outs.length; j++) {
      const mfn = outs[j]!;
      hv.frames.setOwner(mfn, outFrames, d.id);
      const slot = outList + BigInt(((i << outChunkOrder) + j) * 8);
      const g = guest.tryRead64(slot);
      if (g === undefined) {
        rc = err("EFAULT");
        continue;
      }
      if (!d.p2m.insert(toFrame(g), mfn, outFrames, "ram_rw")) rc = err("EINVAL");
      if (!d.autoTranslated && !guest.tryWrite64(slot, BigInt(mfn))) rc = err("EFAULT");
    }
    outs.length = 0;
    if (rc !== 0n) return fail(rc);
  }
  return finish(x.in.nrExtents, 0n);
}
