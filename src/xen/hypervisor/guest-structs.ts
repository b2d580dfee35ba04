// Builders and readers for the hypercall argument structures, in their arm64 layouts
// (little-endian, AAPCS64). They work on anything with ByteAccess: a GuestMemory (guest
// addresses through the P2M) or a PhysicalMemory (machine addresses, = guest addresses of a
// direct-mapped domain). Tests and guest-side code use them to lay out requests.

import type { ByteAccess } from "./guest-memory.js";
import {
  DOMID_SELF,
  EXCHANGE,
  GNTTAB_CACHE_FLUSH_SIZE,
  RESERVATION,
  XENMEMF_exact_node_request,
  XENMEMF_populate_on_demand,
  XENMEMF_vnode,
} from "./public.js";

export interface Reservation {
  /** guest handle (VA) of the xen_pfn_t array; 0 = NULL */
  extentStart: bigint | number;
  nrExtents: bigint | number;
  extentOrder: number;
  /** the whole mem_flags word (see `memFlags`) */
  memFlags?: number;
  domid?: number;
}

export interface Exchange {
  in: Reservation;
  out: Reservation;
  nrExchanged?: bigint | number;
}

/** mem_flags from its parts (XENMEMF_address_bits / node / exact / PoD / vnode). */
export function memFlags(p: { addressBits?: number; node?: number; exactNode?: boolean; populateOnDemand?: boolean; vnode?: boolean }): number {
  let f = (p.addressBits ?? 0) & 0xff;
  if (p.node !== undefined) f |= ((p.node + 1) & 0xff) << 8;
  if (p.exactNode) f |= XENMEMF_exact_node_request;
  if (p.populateOnDemand) f |= XENMEMF_populate_on_demand;
  if (p.vnode) f |= XENMEMF_vnode;
  return f >>> 0;
}

export function writeReservation(m: ByteAccess, addr: number, r: Reservation): void {
  const b = new Uint8Array(RESERVATION.size);
  const v = new DataView(b.buffer);
  v.setBigUint64(RESERVATION.extent_start, BigInt.asUintN(64, BigInt(r.extentStart)), true);
  v.setBigUint64(RESERVATION.nr_extents, BigInt.asUintN(64, BigInt(r.nrExtents)), true);
  v.setUint32(RESERVATION.extent_order, r.extentOrder >>> 0, true);
  v.setUint32(RESERVATION.mem_flags, (r.memFlags ?? 0) >>> 0, true);
  v.setUint16(RESERVATION.domid, r.domid ?? DOMID_SELF, true);
  m.write(addr, b);
}

export interface ReservationFields {
  extentStart: bigint;
  nrExtents: bigint;
  extentOrder: number;
  memFlags: number;
  domid: number;
}

/** Decode 32 bytes of xen_memory_reservation. */
export function decodeReservation(b: Uint8Array, off = 0): ReservationFields {
  const v = new DataView(b.buffer, b.byteOffset + off, RESERVATION.size);
  return {
    extentStart: v.getBigUint64(RESERVATION.extent_start, true),
    nrExtents: v.getBigUint64(RESERVATION.nr_extents, true),
    extentOrder: v.getUint32(RESERVATION.extent_order, true),
    memFlags: v.getUint32(RESERVATION.mem_flags, true),
    domid: v.getUint16(RESERVATION.domid, true),
  };
}

export function writeExchange(m: ByteAccess, addr: number, x: Exchange): void {
  writeReservation(m, addr + EXCHANGE.in, x.in);
  writeReservation(m, addr + EXCHANGE.out, x.out);
  m.write64(addr + EXCHANGE.nr_exchanged, BigInt(x.nrExchanged ?? 0));
}

export interface ExchangeFields {
  in: ReservationFields;
  out: ReservationFields;
  nrExchanged: bigint;
}

export function decodeExchange(b: Uint8Array): ExchangeFields {
  return {
    in: decodeReservation(b, EXCHANGE.in),
    out: decodeReservation(b, EXCHANGE.out),
    nrExchanged: new DataView(b.buffer, b.byteOffset).getBigUint64(EXCHANGE.nr_exchanged, true),
  };
}

export function readExchange(m: ByteAccess, addr: number): ExchangeFields {
  return decodeExchange(m.read(addr, EXCHANGE.size));
}

/** An array of xen_pfn_t (u64 frame numbers). */
export function writePfnList(m: ByteAccess, addr: number, frames: readonly (number | bigint)[]): void {
  const b = new Uint8Array(frames.length * 8);
  const v = new DataView(b.buffer);
  frames.forEach((f, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, BigInt(f)), true));
  if (b.length > 0) m.write(addr, b);
}

export function readPfnList(m: ByteAccess, addr: number, n: number): bigint[] {
  if (n === 0) return [];
  const b = m.read(addr, n * 8);
  const v = new DataView(b.buffer);
  return Array.from({ length: n }, (_, i) => v.getBigUint64(i * 8, true));
}

/** struct xen_feature_info { u32 submap_idx; u32 submap; } */
export function writeFeatureInfo(m: ByteAccess, addr: number, submapIdx: number, submap = 0): void {
  m.write32(addr, submapIdx);
  m.write32(addr + 4, submap);
}
export function readFeatureInfo(m: ByteAccess, addr: number): { submapIdx: number; submap: number } {
  return { submapIdx: m.read32(addr), submap: m.read32(addr + 4) };
}

/** struct xen_memory_domain { domid_t domid; } (2 bytes) */
export function writeMemoryDomain(m: ByteAccess, addr: number, domid: number): void {
  m.write16(addr, domid);
}

/** struct gnttab_cache_flush (16 bytes). */
export function writeCacheFlush(m: ByteAccess, addr: number, f: { devBusAddr: bigint | number; offset: number; length: number; op: number }): void {
  const b = new Uint8Array(GNTTAB_CACHE_FLUSH_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, BigInt(f.devBusAddr)), true);
  v.setUint16(8, f.offset, true);
  v.setUint16(10, f.length, true);
  v.setUint32(12, f.op >>> 0, true);
  m.write(addr, b);
}

/** A NUL-terminated string read from a fixed-size buffer. */
export function readCString(m: ByteAccess, addr: number, max: number): string {
  const b = m.read(addr, max);
  const end = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? max : end));
}
