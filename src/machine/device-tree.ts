// From a parsed device tree (fdt.ts) to what dmalab's machine model takes from it, following
// the kernel's rules (re-implemented from drivers/of/{address,device,fdt,of_reserved_mem}.c
// and kernel/dma/swiotlb.c of the modelled releases; nothing copied):
//
//  - cells: a node's reg uses its parent's #address-cells/#size-cells, looked up through the
//    ancestors (Linux's of_n_addr_cells), 1/1 when no ancestor says;
//  - address translation (of_translate_address): up through every parent's `ranges`; a
//    missing `ranges` stops it, an empty one is 1:1; bus kinds default, 3-cell "flags", PCI;
//  - dma_range_map (of_dma_get_range, 6.x = v6.11): start at the device's DMA parent (its
//    parent, or the "dma-mem" interconnect target); skip empty dma-ranges upwards; the first
//    node may lack the property, any later one must have it (else no map); each entry's CPU
//    side is translated through the ancestors' dma-ranges, where a missing or empty one is
//    1:1; contiguous entries merge. 5.x profiles start at the device node itself (951d48855d86,
//    before f1ad5338 moved the start to the bus);
//  - bus_dma_limit: the last DMA address of the map (0 = none);
//  - coherent (of_dma_is_coherent): the nearest dma-coherent / dma-noncoherent (6.x) on the
//    node or a DMA parent; otherwise arm64's default, non-coherent;
//  - restricted-dma-pool (of_dma_set_restricted_buffer, rmem_swiotlb_setup): the first
//    memory-region phandle that is an available restricted-dma-pool; not for a device behind
//    an IOMMU (iommus); a pool marked no-map, reusable, linux,cma-default or
//    linux,dma-default is refused by the kernel;
//  - /reserved-memory: children with reg (status okay), when its cells match the root's and it
//    has `ranges` (else the kernel ignores the node); plus the FDT reservation block;
//  - memory: every device_type = "memory" node's reg (translated when not under the root).

import { closeSync, readSync } from "node:fs";
import { basename } from "node:path";
import { openInputFile, readInputFile } from "../cli/input-file.js";
import { InputError, UsageError, hex } from "../errors.js";
import { KERNEL_VERSIONS, isKernelVersion, kernelProfile, type KernelVersion } from "../swiotlb/profile.js";
import { XEN_VERSIONS } from "../xen/hypervisor/version.js";
import type { XenRole } from "./boot.js";
import { FDT_MAGIC, parseFdt, propCells, propError, propString, propStrings, propU32, readNumber, type Fdt, type FdtNode } from "./fdt.js";
import { parseMachine, type MachineDesc } from "./preset.js";

const U64 = (1n << 64n) - 1n;
const OF_BAD_ADDR = U64;
const ROOT_ADDR_CELLS_DEFAULT = 1;
const ROOT_SIZE_CELLS_DEFAULT = 1;
/** where the DMA engine's register page goes when nothing occupies it (as in the JSON presets) */
const DMA_ENGINE_PREFERRED = 0x0a00_0000n;
const DMA_ENGINE_SIZE = 0x1000n;
const PA_BITS = 48;

// ---- the model ------------------------------------------------------------------------------

export interface DtRange {
  cpu: bigint;
  dma: bigint;
  size: bigint;
}

export interface DtBank {
  base: bigint;
  size: bigint;
}

export interface DtReserved {
  name: string;
  base: bigint;
  size: bigint;
  noMap: boolean;
}

export interface DtRestrictedPool {
  name: string;
  path: string;
  base: bigint;
  size: bigint;
  /** paths of the devices whose swiotlb pool it is */
  devices: string[];
  /** why the kernel refuses it (no-map, reusable...); undefined when usable */
  refused?: string;
}

export interface DtDevice {
  path: string;
  /** the kernel's device name (of_device_make_bus_id), e.g. "fe340000.mmc" */
  name: string;
  compatible: string[];
  /** CPU address and size of each reg entry; null address = not translatable */
  regs: { cpu: bigint | null; size: bigint }[];
  dmaRanges: DtRange[];
  /** 0n = no bus limit */
  busDmaLimit: bigint;
  coherent: boolean;
  /** coherence came from a dma-coherent / dma-noncoherent property (not the arch default) */
  coherentExplicit: boolean;
  restrictedPool: string | null;
  behindIommu: boolean;
  /** `dmalab,dma-bits`: the mask the driver asks for (default 32) */
  dmaBits?: number;
  /** a bus node (simple-bus & co.): not a DMA master itself */
  isBus: boolean;
}

export interface DtModel {
  source: string;
  kernel: KernelVersion;
  /** --mem sized the RAM (needsMem and a size was given) */
  memGiven: boolean;
  model: string | null;
  compatible: string[];
  /** the banks as the machine gets them (--mem applied) */
  banks: DtBank[];
  /** no memory node, or every bank has size 0 (firmware fills it in) */
  needsMem: boolean;
  reserved: DtReserved[];
  restrictedPools: DtRestrictedPool[];
  devices: DtDevice[];
  xen: boolean;
  /** from a "xen,xen-X.Y" compatible, when it names a Xen release dmalab models */
  xenVersion?: string;
  bootargs: string | null;
  /** the `swiotlb=` value of bootargs (the last one wins, as each occurrence re-parses) */
  swiotlb: string | null;
  /** CPUs under /cpus (0 when the tree lists none) */
  cpus: number;
  /** of_dma_get_max_cpu_address(NULL); PHYS_ADDR_MAX when nothing restricts DMA */
  dtMaxCpuAddress: bigint;
  dmaEngine: bigint;
  notes: string[];
}

export interface DtOptions {
  /** RAM size for a tree whose memory the firmware fills in (bytes) */
  mem?: number;
  /** kernel profile whose OF rules apply; default 6.x */
  kernel?: string;
}

// ---- reading ----------------------------------------------------------------------------------

/** the largest blob read: arm64 Linux's MAX_FDT_SIZE (SZ_2M, arch/arm64/include/asm/boot.h) */
export const MAX_DTB_BYTES = 2 << 20;

/** Reads and parses a .dtb (a regular file of at most MAX_DTB_BYTES); errors are InputErrors. */
export function readDtb(path: string): Fdt {
  return parseFdt(readInputFile(path, { what: "device tree blob", maxBytes: MAX_DTB_BYTES }), path);
}

/** The file is a regular file starting with the FDT magic. Never throws, reads 4 bytes. */
export function isDtbFile(path: string): boolean {
  let fd: number;
  try {
    fd = openInputFile(path, { what: "file" }).fd;
  } catch {
    return false;
  }
  try {
    const b = Buffer.alloc(4);
    return readSync(fd, b, 0, 4, 0) === 4 && b.readUInt32BE(0) === FDT_MAGIC;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** The value of the last `swiotlb=` on a kernel command line; null when there is none. */
export function swiotlbFromBootargs(bootargs: string): string | null {
  let v: string | null = null;
  for (const tok of bootargs.split(/\s+/)) if (tok.startsWith("swiotlb=")) v = tok.slice("swiotlb=".length);
  return v;
}

// ---- cells, buses and address translation -----------------------------------------------------

/** Looks a one-cell property up on the node and its ancestors (of_bus_n_*_cells). */
function inheritedU32(start: FdtNode | null, prop: string, dflt: number, src: string): number {
  for (let n = start; n; n = n.parent) {
    const v = propU32(n, prop, src);
    if (v !== undefined) return v;
  }
  return dflt;
}

interface Bus {
  name: "pci" | "isa" | "default-flags" | "default";
  flagCells: number;
  /** cells of a child of this bus: (address, size) */
  count(child: FdtNode): [number, number];
  map(addr: bigint[], range: readonly number[], at: number, na: number, ns: number, pna: number): bigint;
  flags(cells: readonly number[], at: number): number;
}

const IORESOURCE_IO = 0x100;
const IORESOURCE_MEM = 0x200;

class Tree {
  readonly phandles = new Map<number, FdtNode>();
  constructor(
    readonly fdt: Fdt,
    readonly src: string,
  ) {
    const walk = (n: FdtNode): void => {
      for (const p of ["phandle", "linux,phandle"]) {
        const v = propU32(n, p, src);
        if (v !== undefined && v !== 0 && v !== 0xffff_ffff && !this.phandles.has(v)) this.phandles.set(v, n);
      }
      for (const c of n.children) walk(c);
    };
    walk(fdt.root);
  }

  /** of_n_addr_cells / of_n_size_cells: the cells of `node`'s own reg. */
  addrCells(node: FdtNode): number {
    return inheritedU32(node.parent ?? node, "#address-cells", ROOT_ADDR_CELLS_DEFAULT, this.src);
  }
  sizeCells(node: FdtNode): number {
    return inheritedU32(node.parent ?? node, "#size-cells", ROOT_SIZE_CELLS_DEFAULT, this.src);
  }
  /** of_bus_n_addr_cells / of_bus_n_size_cells: the cells of `node`'s children. */
  busAddrCells(node: FdtNode): number {
    return inheritedU32(node, "#address-cells", ROOT_ADDR_CELLS_DEFAULT, this.src);
  }
  busSizeCells(node: FdtNode): number {
    return inheritedU32(node, "#size-cells", ROOT_SIZE_CELLS_DEFAULT, this.src);
  }

  /** of_match_bus: what kind of bus `node` is for its children; null when none matches. */
  bus(node: FdtNode): Bus | null {
    const type = propString(node, "device_type", this.src);
    const base = unitless(node.name);
    const defaultCount = (child: FdtNode): [number, number] => [this.addrCells(child), this.sizeCells(child)];
    if (type === "pci" || type === "pciex" || type === "vci" || type === "ht" || base === "pcie") {
      return {
        name: "pci",
        flagCells: 1,
        count: () => [3, 2],
        flags: pciFlags,
        map: (addr, range, at, na, ns, pna) => {
          const af = pciFlags(addr.map(Number), 0);
          const rf = pciFlags(range, at);
          if ((af ^ rf) & (IORESOURCE_MEM | IORESOURCE_IO)) return OF_BAD_ADDR;
          return defaultMap(addr, range, at, na, ns, pna, 1);
        },
      };
    }
    if (base === "isa")
      return {
        name: "isa",
        flagCells: 1,
        count: () => [2, 1],
        flags: (c, at) => ((c[at] ?? 0) & 1 ? IORESOURCE_IO : IORESOURCE_MEM),
        map: (addr, range, at, na, ns, pna) => ((Number(addr[0]) ^ (range[at] ?? 0)) & 1 ? OF_BAD_ADDR : defaultMap(addr, range, at, na, ns, pna, 1)),
      };
    if (!node.props.has("#address-cells")) return null;
    if (this.busAddrCells(node) === 3)
      return {
        name: "default-flags",
        flagCells: 1,
        count: defaultCount,
        flags: (c, at) => c[at] ?? 0,
        map: (addr, range, at, na, ns, pna) => (Number(addr[0]) !== (range[at] ?? 0) ? OF_BAD_ADDR : defaultMap(addr, range, at, na, ns, pna, 1)),
      };
    return { name: "default", flagCells: 0, count: defaultCount, flags: () => IORESOURCE_MEM, map: (a, r, at, na, ns, pna) => defaultMap(a, r, at, na, ns, pna, 0) };
  }

  /** __of_get_dma_parent: the "dma-mem" interconnect's target, else the parent. */
  dmaParent(node: FdtNode): FdtNode | null {
    const names = propStrings(node, "interconnect-names", this.src);
    const idx = names?.indexOf("dma-mem") ?? -1;
    if (idx < 0) return node.parent;
    const cells = propCells(node, "interconnects", this.src) ?? [];
    let at = 0;
    for (let i = 0; at < cells.length; i++) {
      const target = this.phandles.get(cells[at]!);
      if (target === undefined) return node.parent;
      const argc = propU32(target, "#interconnect-cells", this.src);
      if (argc === undefined) return node.parent;
      if (i === idx) return target;
      at += 1 + argc;
    }
    return node.parent;
  }

  /**
   * __of_translate_address: `cells[at..]` (the node's own address cells) up to a CPU address
   * through each ancestor's `rprop`; null where the kernel returns OF_BAD_ADDR.
   */
  translate(node: FdtNode, cells: readonly number[], at: number, rprop: "ranges" | "dma-ranges"): bigint | null {
    const up = (n: FdtNode): FdtNode | null => (rprop === "ranges" ? n.parent : this.dmaParent(n));
    let dev: FdtNode = node;
    let parent = up(dev);
    if (parent === null) return null;
    let bus = this.bus(parent);
    if (bus === null) return null;
    let [na, ns] = bus.count(dev);
    if (!checkCounts(na, ns)) return null;
    let addr: bigint[] = [];
    for (let i = 0; i < na; i++) addr.push(BigInt(cells[at + i] ?? 0));
    for (let guard = 0; guard < 256; guard++) {
      dev = parent;
      parent = up(dev);
      if (parent === null) return readCells(addr, 0, na);
      const pbus = this.bus(parent);
      if (pbus === null) return null;
      const [pna, pns] = pbus.count(dev);
      if (!checkCounts(pna, pns)) return null;
      const next = this.translateOne(dev, bus, pbus, addr, na, ns, pna, rprop);
      if (next === null) return null;
      addr = next;
      na = pna;
      ns = pns;
      bus = pbus;
    }
    return null;
  }

  /** of_translate_one: one level up; the new address cells, or null. */
  private translateOne(dev: FdtNode, bus: Bus, pbus: Bus, addr: bigint[], na: number, ns: number, pna: number, rprop: string): bigint[] | null {
    const present = dev.props.has(rprop);
    if (!present && rprop !== "dma-ranges") return null;
    const ranges = present ? propCells(dev, rprop, this.src)! : [];
    let offset: bigint;
    let out: bigint[];
    if (ranges.length === 0) {
      // 1:1: the whole address becomes the offset; the parent's flag cells pass through
      offset = readCells(addr, 0, na);
      out = [];
      for (let i = 0; i < pna; i++) out.push(i < pbus.flagCells ? (addr[i] ?? 0n) : 0n);
    } else {
      const rone = na + pna + ns;
      offset = OF_BAD_ADDR;
      let hit = -1;
      for (let r = 0; r + rone <= ranges.length; r += rone) {
        offset = bus.map(addr, ranges, r, na, ns, pna);
        if (offset !== OF_BAD_ADDR) {
          hit = r;
          break;
        }
      }
      if (hit < 0) return null;
      out = [];
      for (let i = 0; i < pna; i++) out.push(BigInt(ranges[hit + na + i]!));
    }
    // the parent bus's translate: add the offset to the address part (after any flag cell)
    const f = pbus.flagCells;
    const a = (readCells(out, f, pna - f) + offset) & U64;
    for (let i = f; i < pna; i++) out[i] = 0n;
    if (pna - f > 1) out[pna - 2] = a >> 32n;
    if (pna - f >= 1) out[pna - 1] = a & 0xffff_ffffn;
    return out;
  }

  /** reg entries of `node` as (CPU address or null, size), per its parent bus. */
  regs(node: FdtNode): { cpu: bigint | null; size: bigint }[] {
    const cells = propCells(node, "reg", this.src);
    if (cells === undefined || node.parent === null) return [];
    const bus = this.bus(node.parent);
    const [na, ns] = bus ? bus.count(node) : [this.addrCells(node), this.sizeCells(node)];
    if (na + ns === 0 || na > 4 || ns > 4) return [];
    const out: { cpu: bigint | null; size: bigint }[] = [];
    for (let at = 0; at + na + ns <= cells.length; at += na + ns) {
      const size = readNumber(cells, at + na, ns);
      const cpu = ns === 0 ? null : this.translate(node, cells, at, "ranges");
      out.push({ cpu, size });
    }
    return out;
  }

  /** of_dma_get_range(start): the dma_range_map; [] when the kernel finds none (or none usable). */
  dmaRangeMap(start: FdtNode | null): DtRange[] {
    let node = start;
    let found = false;
    while (node) {
      const p = node.props.get("dma-ranges");
      if (p && p.value.length > 0) break;
      if (found && !p) return [];
      found = true;
      node = this.dmaParent(node);
    }
    if (!node) return [];
    return this.parseDmaRanges(node);
  }

  /** The for_each_of_range walk over a node's dma-ranges: merged, CPU side translated. */
  parseDmaRanges(node: FdtNode): DtRange[] {
    const cells = propCells(node, "dma-ranges", this.src) ?? [];
    const na = this.busAddrCells(node);
    const pna = this.addrCells(node);
    const ns = this.busSizeCells(node);
    const bus = this.bus(node) ?? { flagCells: 0, flags: () => IORESOURCE_MEM };
    const fc = bus.flagCells;
    const np = pna + na + ns;
    if (np === 0 || na < fc) return [];
    const out: DtRange[] = [];
    let at = 0;
    const entry = (i: number): { flags: number; bus: bigint; cpu: bigint | null; size: bigint } => ({
      flags: bus.flags(cells, i),
      bus: readNumber(cells, i + fc, na - fc),
      cpu: this.translate(node, cells, i + na, "dma-ranges"),
      size: readNumber(cells, i + pna + na, ns),
    });
    while (at + np <= cells.length) {
      const first = entry(at);
      at += np;
      let size = first.size;
      while (at + np <= cells.length) {
        const e = entry(at);
        if (e.flags !== first.flags) break;
        if (e.bus !== ((first.bus + size) & U64) || first.cpu === null || e.cpu !== ((first.cpu + size) & U64)) break;
        size = (size + e.size) & U64;
        at += np;
      }
      if (first.cpu === null) continue; // "translation of DMA address ... failed": skipped
      out.push({ cpu: first.cpu, dma: first.bus, size });
    }
    return out;
  }

  /** of_dma_is_coherent, and whether a property decided it. */
  coherent(node: FdtNode, noncoherentProp: boolean): { coherent: boolean; explicit: boolean } {
    for (let n: FdtNode | null = node, guard = 0; n && guard < 256; n = this.dmaParent(n), guard++) {
      if (n.props.has("dma-coherent")) return { coherent: true, explicit: true };
      if (noncoherentProp && n.props.has("dma-noncoherent")) return { coherent: false, explicit: true };
    }
    return { coherent: false, explicit: false };
  }

  /** of_dma_get_max_cpu_address(node) over available nodes. */
  maxCpuAddress(node: FdtNode): bigint {
    let max = U64;
    const p = node.props.get("dma-ranges");
    if (p && p.value.length > 0) {
      let end = 0n;
      for (const r of this.parseDmaRanges(node)) if (r.cpu + r.size > end) end = r.cpu + r.size - 1n;
      if (end < max) max = end;
    }
    for (const c of node.children) {
      if (!available(c, this.src)) continue;
      const m = this.maxCpuAddress(c);
      if (m < max) max = m;
    }
    return max;
  }
}

function checkCounts(na: number, ns: number): boolean {
  return na > 0 && na <= 4 && ns > 0;
}

function readCells(cells: readonly bigint[], at: number, n: number): bigint {
  let r = 0n;
  for (let i = 0; i < n; i++) r = ((r << 32n) | (cells[at + i] ?? 0n)) & U64;
  return r;
}

/** of_bus_default_map: offset of `addr` inside the range entry at `at`, or OF_BAD_ADDR. */
function defaultMap(addr: readonly bigint[], range: readonly number[], at: number, na: number, ns: number, pna: number, fna: number): bigint {
  const cp = readNumber(range, at + fna, na - fna);
  const s = readNumber(range, at + na + pna, ns);
  const da = readCells(addr, fna, na - fna);
  if (da < cp || da >= ((cp + s) & U64)) return OF_BAD_ADDR;
  return da - cp;
}

function pciFlags(cells: readonly number[], at: number): number {
  const w = cells[at] ?? 0;
  const space = (w >>> 24) & 3;
  let f = space === 1 ? IORESOURCE_IO : space === 2 || space === 3 ? IORESOURCE_MEM : 0;
  if (space === 3) f |= 0x0010_0000;
  if (w & 0x4000_0000) f |= 0x2000;
  return f;
}

function unitless(name: string): string {
  const at = name.indexOf("@");
  return at < 0 ? name : name.slice(0, at);
}

/** of_device_is_available: no status, or "okay"/"ok". */
function available(n: FdtNode, src: string): boolean {
  const s = propString(n, "status", src);
  return s === undefined || s === "okay" || s === "ok";
}

function isCompatible(n: FdtNode, c: string, src: string): boolean {
  return (propStrings(n, "compatible", src) ?? []).includes(c);
}

const BUS_COMPATIBLES = ["simple-bus", "simple-pm-bus", "simple-mfd", "arm,amba-bus", "isa"];
/** top-level nodes that describe the platform, not devices */
const NOT_DEVICES = new Set(["chosen", "aliases", "cpus", "reserved-memory", "hypervisor", "memory", "__symbols__", "__fixups__", "__local_fixups__", "psci", "firmware", "timer", "pmu"]);

/** of_device_make_bus_id: "<translated reg>.<name>", else basenames joined with ':'. */
function busId(t: Tree, node: FdtNode): string {
  let name: string | null = null;
  for (let n: FdtNode = node; n.parent; n = n.parent) {
    const cells = propCells(n, "reg", t.src);
    const addr = cells && cells.length > 0 ? t.translate(n, cells, 0, "ranges") : null;
    if (addr !== null) return name === null ? `${addr.toString(16)}.${unitless(n.name)}` : `${addr.toString(16)}.${unitless(n.name)}:${name}`;
    name = name === null ? n.name : `${n.name}:${name}`;
  }
  return name ?? "root";
}

// ---- the model builder --------------------------------------------------------------------

/** What dmalab takes from the tree. Throws only DmalabErrors (InputError for bad values). */
export function dtModel(fdt: Fdt, opts: DtOptions = {}, source = "dtb"): DtModel {
  const kernel = opts.kernel ?? "6.x";
  if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  const era = kernelProfile(kernel).era;
  if (opts.mem !== undefined && (!Number.isSafeInteger(opts.mem) || opts.mem <= 0)) throw new UsageError(`--mem ${String(opts.mem)}: must be a positive size`);
  const src = source;
  const t = new Tree(fdt, src);
  const root = fdt.root;
  const notes: string[] = [];

  const all: FdtNode[] = [];
  const collect = (n: FdtNode): void => {
    if (!available(n, src)) return;
    all.push(n);
    for (const c of n.children) collect(c);
  };
  collect(root);

  // memory
  const treeBanks: DtBank[] = [];
  let memNodes = 0;
  for (const n of all) {
    if (propString(n, "device_type", src) !== "memory") continue;
    memNodes++;
    const cells = propCells(n, "reg", src) ?? [];
    const na = t.addrCells(n);
    const ns = t.sizeCells(n);
    if (na === 0 || ns === 0 || na > 4 || ns > 4) throw propError(n, "reg", `cannot be read with #address-cells ${na}, #size-cells ${ns}`, src);
    if (cells.length % (na + ns) !== 0) throw propError(n, "reg", `has ${cells.length} cells, not a multiple of ${na}+${ns}`, src);
    for (let at = 0; at < cells.length; at += na + ns) {
      const size = readNumber(cells, at + na, ns);
      const base = n.parent === root ? readNumber(cells, at, na) : t.translate(n, cells, at, "ranges");
      if (base === null) {
        notes.push(`${n.path}: reg entry ${at / (na + ns)} does not translate to a CPU address: ignored`);
        continue;
      }
      treeBanks.push({ base, size });
    }
  }
  const needsMem = memNodes === 0 || treeBanks.every((b) => b.size === 0n);
  // without --mem a firmware-filled tree shows its size-0 banks as they are
  let banks = needsMem ? treeBanks : treeBanks.filter((b) => b.size > 0n);
  if (needsMem && opts.mem !== undefined) {
    banks = [{ base: treeBanks[0]?.base ?? 0n, size: BigInt(opts.mem) }];
    notes.push(`memory: the tree leaves the size to the firmware; --mem gives ${hex(opts.mem)} bytes from ${hex(banks[0]!.base)}`);
  } else if (!needsMem && opts.mem !== undefined) notes.push("memory: the tree gives its RAM; --mem is ignored");

  // reserved memory
  const reserved: DtReserved[] = fdt.reservations.map((r, i) => ({ name: `memreserve${i}`, base: r.address, size: r.size, noMap: false }));
  const pools: DtRestrictedPool[] = [];
  const poolByNode = new Map<FdtNode, DtRestrictedPool>();
  const rmem = root.children.find((c) => c.name === "reserved-memory");
  if (rmem && available(rmem, src)) {
    const rootNa = t.busAddrCells(root);
    const rootNs = t.busSizeCells(root);
    const na = propU32(rmem, "#address-cells", src);
    const ns = propU32(rmem, "#size-cells", src);
    if (na !== rootNa || ns !== rootNs || !rmem.props.has("ranges")) {
      notes.push(`/reserved-memory: ignored, as the kernel does: its #address-cells/#size-cells must match the root's (${rootNa}/${rootNs}) and it needs an empty ranges`);
    } else {
      for (const c of rmem.children) {
        if (!available(c, src)) continue;
        const cells = propCells(c, "reg", src);
        const isPool = isCompatible(c, "restricted-dma-pool", src);
        if (cells === undefined) {
          if (isPool) notes.push(`${c.path}: a restricted-dma-pool without reg (allocated at boot) is not modelled`);
          continue;
        }
        if (cells.length === 0 || cells.length % (na + ns) !== 0) throw propError(c, "reg", `has ${cells.length} cells, not a multiple of ${na}+${ns}`, src);
        const noMap = c.props.has("no-map");
        for (let at = 0, i = 0; at < cells.length; at += na + ns, i++) {
          const base = readNumber(cells, at, na);
          const size = readNumber(cells, at + na, ns);
          if (size === 0n) continue;
          if (isPool && i === 0) {
            const refusedBy = ["no-map", "reusable", "linux,cma-default", "linux,dma-default"].find((p) => c.props.has(p));
            const pool: DtRestrictedPool = { name: c.name, path: c.path, base, size, devices: [] };
            if (refusedBy) pool.refused = `the kernel refuses a restricted-dma-pool with ${refusedBy}`;
            pools.push(pool);
            poolByNode.set(c, pool);
            continue;
          }
          reserved.push({ name: i === 0 ? c.name : `${c.name}#${i}`, base, size, noMap });
        }
      }
    }
  }

  // devices
  const profileNoncoherent = era === "6.x";
  const devices: DtDevice[] = [];
  const skipSubtree = (n: FdtNode): boolean => {
    for (let p: FdtNode | null = n; p && p.parent; p = p.parent) if (p.parent === root && NOT_DEVICES.has(unitless(p.name))) return true;
    return propString(n, "device_type", src) === "memory" || propString(n, "device_type", src) === "cpu";
  };
  for (const n of all) {
    if (n === root || !n.props.has("reg") || skipSubtree(n)) continue;
    const regs = t.regs(n);
    if (regs.length === 0 || regs.every((r) => r.cpu === null)) continue; // not memory-mapped (i2c, spi clients...)
    const start = era === "6.x" ? t.dmaParent(n) : n;
    const dmaRanges = t.dmaRangeMap(start);
    let limit = 0n;
    for (const r of dmaRanges) {
      const e = (r.dma + r.size - 1n) & U64;
      if (e > limit) limit = e;
    }
    const coh = t.coherent(n, profileNoncoherent);
    const behindIommu = n.props.has("iommus");
    let restrictedPool: string | null = null;
    const mr = propCells(n, "memory-region", src);
    if (mr && !behindIommu) {
      for (const ph of mr) {
        const target = t.phandles.get(ph);
        if (target && isCompatible(target, "restricted-dma-pool", src) && available(target, src)) {
          const pool = poolByNode.get(target);
          if (pool) {
            pool.devices.push(n.path);
            if (pool.refused === undefined) restrictedPool = pool.name;
            else notes.push(`${n.path}: restricted-dma-pool ${pool.name} not used: ${pool.refused}`);
          }
          break;
        }
      }
    }
    if (mr && behindIommu && mr.some((ph) => { const x = t.phandles.get(ph); return x !== undefined && isCompatible(x, "restricted-dma-pool", src); }))
      notes.push(`${n.path}: behind an IOMMU (iommus), so the kernel does not give it its restricted-dma-pool`);
    const compatible = propStrings(n, "compatible", src) ?? [];
    const dev: DtDevice = {
      path: n.path,
      name: busId(t, n),
      compatible,
      regs,
      dmaRanges,
      busDmaLimit: limit,
      coherent: coh.coherent,
      coherentExplicit: coh.explicit,
      restrictedPool,
      behindIommu,
      isBus: compatible.some((c) => BUS_COMPATIBLES.includes(c)) || (compatible.length === 0 && n.children.some((c) => c.props.has("reg"))),
    };
    const bits = propU32(n, "dmalab,dma-bits", src);
    if (bits !== undefined) {
      if (bits < 1 || bits > 64) throw propError(n, "dmalab,dma-bits", `must be 1..64 (it is ${bits})`, src);
      dev.dmaBits = bits;
    }
    devices.push(dev);
  }

  // Xen, bootargs, cpus
  const hyp = root.children.find((c) => c.name === "hypervisor");
  const hypCompat = hyp ? (propStrings(hyp, "compatible", src) ?? []) : [];
  const xen = hyp !== undefined && available(hyp, src) && hypCompat.includes("xen,xen");
  const chosen = root.children.find((c) => c.name === "chosen");
  const bootargs = chosen ? (propString(chosen, "bootargs", src) ?? null) : null;
  const cpusNode = root.children.find((c) => c.name === "cpus");
  const cpus = cpusNode ? cpusNode.children.filter((c) => propString(c, "device_type", src) === "cpu" && available(c, src)).length : 0;

  // the DMA engine's page: the first free 4 KiB from 0x0a00_0000 up (then from 4 KiB up)
  const busy: { start: bigint; end: bigint }[] = [];
  for (const b of banks) busy.push({ start: b.base, end: b.base + b.size });
  for (const r of reserved) busy.push({ start: r.base, end: r.base + r.size });
  for (const p of pools) busy.push({ start: p.base, end: p.base + p.size });
  for (const n of all) for (const r of t.regs(n)) if (r.cpu !== null) busy.push({ start: r.cpu, end: r.cpu + (r.size === 0n ? 1n : r.size) });
  const limit = 1n << BigInt(PA_BITS);
  const fit = (from: bigint): bigint | null => {
    let c = from;
    for (let moved = true; moved; ) {
      moved = false;
      for (const b of busy)
        if (b.start < c + DMA_ENGINE_SIZE && c < b.end) {
          c = (b.end + DMA_ENGINE_SIZE - 1n) & ~(DMA_ENGINE_SIZE - 1n);
          moved = true;
        }
      if (c + DMA_ENGINE_SIZE > limit) return null;
    }
    return c;
  };
  const dmaEngine = fit(DMA_ENGINE_PREFERRED) ?? fit(DMA_ENGINE_SIZE);
  if (dmaEngine === null) throw new InputError("dtb: no free 4 KiB page below 2^48 for the DMA engine's registers", src);

  const model: DtModel = {
    source: src,
    kernel,
    memGiven: needsMem && opts.mem !== undefined,
    model: propString(root, "model", src) ?? null,
    compatible: propStrings(root, "compatible", src) ?? [],
    banks,
    needsMem,
    reserved,
    restrictedPools: pools,
    devices,
    xen,
    bootargs,
    swiotlb: bootargs === null ? null : swiotlbFromBootargs(bootargs),
    cpus,
    dtMaxCpuAddress: t.maxCpuAddress(root),
    dmaEngine,
    notes,
  };
  const ver = hypCompat.map((c) => /^xen,xen-(\d+\.\d+)$/.exec(c)?.[1]).find((v) => v !== undefined);
  if (xen && ver !== undefined) {
    if ((XEN_VERSIONS as readonly string[]).includes(ver)) model.xenVersion = ver;
    else notes.push(`/hypervisor: Xen ${ver} is not a release dmalab models (${XEN_VERSIONS.join(", ")}); the default applies`);
  }
  return model;
}

/** The `dt --json` document: every address and size a "0x…" string. */
export function dtJson(m: DtModel): Record<string, unknown> {
  const j: Record<string, unknown> = {
    schema: "dmalab/dt@1",
    model: m.model,
    compatible: m.compatible,
    banks: m.banks.map((b) => ({ base: hex(b.base), size: hex(b.size) })),
    needsMem: m.needsMem,
    reserved: m.reserved.map((r) => ({ name: r.name, base: hex(r.base), size: hex(r.size), noMap: r.noMap })),
    restrictedPools: m.restrictedPools.map((p) => {
      const o: Record<string, unknown> = { name: p.name, base: hex(p.base), size: hex(p.size), devices: p.devices };
      if (p.refused !== undefined) o.refused = p.refused;
      return o;
    }),
    devices: m.devices.map((d) => ({
      path: d.path,
      name: d.name,
      compatible: d.compatible,
      dmaRanges: d.dmaRanges.map((r) => ({ cpu: hex(r.cpu), dma: hex(r.dma), size: hex(r.size) })),
      busDmaLimit: hex(d.busDmaLimit),
      coherent: d.coherent,
      restrictedPool: d.restrictedPool,
    })),
    xen: m.xen,
    bootargs: m.bootargs,
    swiotlb: m.swiotlb,
    dmaEngine: hex(m.dmaEngine),
    kernel: m.kernel,
    notes: m.notes,
  };
  return j;
}

// ---- the machine ----------------------------------------------------------------------------

export interface MachineFromDtbOptions extends DtOptions {
  /** machine name; default the file name without .dtb */
  name?: string;
}

const fromDtb = new WeakMap<MachineDesc, DtModel>();

/** The DtModel a MachineDesc was built from (same object as machineFromDtb returned). */
export function dtModelOf(desc: MachineDesc): DtModel | undefined {
  return fromDtb.get(desc);
}

/** Which devices of the tree the machine models: DMA masters with something DMA-related to say. */
export function dmaRelevant(d: DtDevice): boolean {
  if (d.isBus || d.behindIommu || d.compatible.length === 0) return false;
  return d.dmaRanges.length > 0 || d.coherentExplicit || d.restrictedPool !== null || d.dmaBits !== undefined;
}

/** A restricted pool on a kernel that has none is refused, not silently dropped. */
export function checkKernelSupport(m: DtModel, kernel: string): void {
  if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
  if (kernelProfile(kernel).restrictedDmaPool) return;
  const users = m.devices.filter((d) => d.restrictedPool !== null && dmaRelevant(d));
  if (users.length > 0)
    throw new UsageError(
      `${m.source}: ${users.map((d) => d.path).join(", ")} use${users.length === 1 ? "s" : ""} restricted-dma-pool ${users[0]!.restrictedPool}, ` +
        `but kernel ${kernel} has no restricted DMA pools (they came with 5.15): use --kernel 6.x`,
    );
}

/** The MachineDesc of a parsed tree's model (validated by parseMachine). */
export function machineFromModel(m: DtModel, name: string): MachineDesc {
  if (m.needsMem && !m.memGiven)
    throw new UsageError(`${m.source}: the tree's memory size is left to the firmware (no memory node, or size 0): give --mem SIZE`);
  const h = (v: bigint): string => hex(v);
  const inRam = (base: bigint, size: bigint): { base: bigint; size: bigint } | null => {
    for (const b of m.banks) {
      const s = base > b.base ? base : b.base;
      const e = base + size < b.base + b.size ? base + size : b.base + b.size;
      if (e > s) return { base: s, size: e - s };
    }
    return null;
  };
  const reserved: Record<string, unknown>[] = [];
  const addReserved = (n: string, base: bigint, size: bigint, noMap: boolean): void => {
    const r = inRam(base, size);
    if (r) reserved.push({ name: n, base: h(r.base), size: h(r.size), noMap });
  };
  for (const r of m.reserved) addReserved(r.name, r.base, r.size, r.noMap);
  // a pool no modelled device uses is plain reserved memory
  const used = new Set(m.devices.filter(dmaRelevant).map((d) => d.restrictedPool));
  for (const p of m.restrictedPools) if (!used.has(p.name)) addReserved(p.name, p.base, p.size, p.refused !== undefined && p.refused.includes("no-map"));

  const names = new Set<string>();
  const devices = m.devices.filter(dmaRelevant).map((d) => {
    let devName = d.name;
    for (let i = 2; names.has(devName); i++) devName = `${d.name}.${i}`;
    names.add(devName);
    const first = d.compatible[0]!;
    const o: Record<string, unknown> = {
      name: devName,
      driver: first.includes(",") ? first.slice(first.indexOf(",") + 1) : first,
      dmaMask: d.dmaBits ?? 32,
      coherent: d.coherent,
      dmaRanges: d.dmaRanges.map((r) => ({ cpu: h(r.cpu), dma: h(r.dma), size: h(r.size) })),
      busDmaLimit: h(d.busDmaLimit),
      buffers: "high",
    };
    if (d.restrictedPool !== null) {
      const p = m.restrictedPools.find((x) => x.name === d.restrictedPool)!;
      o.restrictedPool = { name: p.name, base: h(p.base), size: h(p.size) };
    }
    return o;
  });
  const raw: Record<string, unknown> = {
    name,
    description: `${m.model ?? "device tree"} (from ${basename(m.source)})`,
    paBits: PA_BITS,
    granule: "4K",
    cpus: m.cpus > 0 ? m.cpus : 4,
    ram: m.banks.map((b, i) => ({ name: `memory${i}`, base: h(b.base), size: h(b.size) })),
    reserved,
    devices,
    mmio: [{ name: "dma-engine", base: h(m.dmaEngine), size: h(DMA_ENGINE_SIZE), model: "dma-engine" }],
  };
  if (m.dtMaxCpuAddress !== U64) raw.dmaZone = { dtMaxCpuAddress: h(m.dtMaxCpuAddress) };
  if (m.swiotlb !== null) raw.swiotlb = { cmdline: m.swiotlb };
  if (m.xen) raw.xen = m.xenVersion !== undefined ? { version: m.xenVersion } : {};
  const desc = parseMachine(raw, `${m.source} (as a machine description)`);
  fromDtb.set(desc, m);
  return desc;
}

/**
 * A MachineDesc from a .dtb that Machine/boot can boot. `mem` sizes RAM the firmware would
 * fill in; `kernel` (when given) refuses what that kernel cannot do (restricted pools before
 * 5.15) and picks that kernel's OF rules. Throws UsageError / InputError (exit 2).
 */
export function machineFromDtb(path: string, opts: MachineFromDtbOptions = {}): MachineDesc {
  const fdt = readDtb(path);
  const m = dtModel(fdt, opts, path);
  if (opts.kernel !== undefined) checkKernelSupport(m, opts.kernel);
  return machineFromModel(m, opts.name ?? basename(path).replace(/\.dtb$/i, ""));
}

/**
 * The Xen role for a machine: `--xen` when given; else dom0 (with a note) for a tree with
 * /hypervisor compatible "xen,xen"; else none.
 */
export function dtbXenRole(desc: MachineDesc, xenFlag?: string): { role: XenRole; note?: string } {
  const m = fromDtb.get(desc);
  if (xenFlag !== undefined) {
    const roles: readonly string[] = ["none", "dom0", "domU"];
    if (!roles.includes(xenFlag)) throw new UsageError(`--xen '${xenFlag}': expected one of ${roles.join(", ")}`);
    return { role: xenFlag as XenRole };
  }
  if (m?.xen) return { role: "dom0", note: `${basename(m.source)} has /hypervisor compatible "xen,xen": booting as a Xen dom0 (choose with --xen dom0|domU)` };
  return { role: "none" };
}
