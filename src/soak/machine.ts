// The machine a soak drives: booted as every command boots it (machine/builder.ts), plus the
// soak's own buffers, extra devices (an aligned one and a 32-bit one beside each probed device
// on a native boot), a DMA engine per device and, with Xen, a balloon of pages it gives back
// and takes again. Each operation is carried out here and checked right after (invariants.ts).
// Planted bugs (self-test.ts) subclass this class and override the `after*` seams.

import { DmaEngine, CMD_COPY, REG_CTRL, REG_DST, REG_LEN, REG_SRC, REG_STATUS, STATUS_DONE, STATUS_ERROR } from "../dma/engine.js";
import type { Device } from "../dma/device.js";
import { DeviceBus } from "../dma/bus.js";
import { sgInitTable, type ScatterlistEntry } from "../dma/scatterlist.js";
import { FaultError, UsageError } from "../errors.js";
import { IO_TLB_SIZE } from "../kernel/swiotlb.js";
import { buildMachine, type BuiltMachine, type MachineSpec } from "../machine/builder.js";
import { configureDevice, type Machine } from "../machine/machine.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import type { Domain, XenHypervisor } from "../xen/hypervisor/index.js";
import { SoakModel, type ModelMapping, type ModelSeg } from "./model.js";
import { BUF_SIZE, type GenState, type SoakOp } from "./ops.js";
import { fillPattern } from "./rng.js";

export const NBUFS = 96;
export const BALLOON_PAGES = 32;
const PAGE = 4096;
const DOMID_SELF = 0x7ff0;
const HYPERVISOR_memory_op = 12n;
const HYPERVISOR_xen_version = 17n;
const XENMEM_decrease_reservation = 1n;
const XENMEM_populate_physmap = 6n;
const XENMEM_exchange = 11n;
const EINVAL = -22n;
const ENOSYS = -38n;
const ENOMEM = -12n;

/** One broken invariant: where and what. */
export class SoakViolation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SoakDevice {
  dev: Device;
  bus: DeviceBus;
  engine: DmaEngine;
  name: string;
}

export interface FaultCounts {
  "pool-full": number;
  "exchange-enomem": number;
  "device-error": number;
  "hypercall-fail": number;
}

export interface InvalidCounts {
  "memory_op-bad-cmd": number;
  "exchange-bad-sizes": number;
  "decrease-unmapped-gfn": number;
}

export class SoakMachine {
  readonly built: BuiltMachine;
  readonly m: Machine;
  readonly devs: SoakDevice[] = [];
  readonly bufs: number[] = [];
  readonly model: SoakModel;
  readonly pools: IoTlbPool[];
  readonly hv: XenHypervisor | null;
  readonly domain: Domain | null;
  /** guest-physical pages of the balloon, and which are given back */
  readonly balloon: number[] = [];
  readonly ballooned = new Set<number>();
  private scratch = 0;
  /** the mappings' scatterlists (sg) and DMA addresses, by mapping id */
  private readonly sgs = new Map<number, ScatterlistEntry[]>();
  readonly faults: FaultCounts = { "pool-full": 0, "exchange-enomem": 0, "device-error": 0, "hypercall-fail": 0 };
  readonly invalid: InvalidCounts = { "memory_op-bad-cmd": 0, "exchange-bad-sizes": 0, "decrease-unmapped-gfn": 0 };
  /** the fault the current op asks for (the hooks read it) */
  private want: { full: boolean; devErr: boolean; allocFail: boolean; exchangeAt: number } = { full: false, devErr: false, allocFail: false, exchangeAt: 0 };
  private exchangeExtents = 0;
  readonly mapCopiesAll: boolean;
  readonly partialSync: boolean;
  /** the heap and P2Ms at the start, for the drain check */
  readonly initialXen: string | null;
  readonly initialFree: number;
  readonly initialTotPages: number;

  /** `observe`: a listener on the machine before it boots (the HTML report's recorder) */
  constructor(spec: MachineSpec, observe?: (m: Machine) => void) {
    this.built = buildMachine(spec, observe);
    const br = this.built.report;
    if (br.outcome === "fault") throw new FaultError(`boot of ${br.machine} (kernel ${br.kernel}, xen ${br.xen}) faulted: ${br.fault?.message ?? "unknown fault"}`);
    const m = (this.m = this.built.machine);
    this.hv = this.built.xen?.hv ?? null;
    this.domain = this.built.xen?.domain ?? null;
    this.mapCopiesAll = m.profile.mapAlwaysCopies;
    this.partialSync = m.profile.bounceAppliesOffset;
    const probed = m.devices.filter((d) => d.probed);
    if (probed.length === 0) throw new UsageError(`machine ${m.desc.name}: no device probed, nothing to soak`);
    for (const md of probed) this.addDevice(md.dev, md.bus);
    // variants beside each device on a native boot: min_align_mask (NVMe-like) and a 32-bit mask
    if (this.built.xen === null)
      for (const md of probed) {
        for (const v of [{ minAlignMask: 0xfff, suffix: "align" }, { dmaMask: 0xffff_ffffn, suffix: "dma32" }]) {
          const d = { ...md.desc, name: `${md.desc.name}-soak-${v.suffix}`, ...("minAlignMask" in v ? { minAlignMask: v.minAlignMask } : {}) };
          const dev = configureDevice(d);
          dev.dmaOps = md.dev.dmaOps;
          const mask = "dmaMask" in v && v.dmaMask !== undefined ? v.dmaMask : md.desc.dmaMask;
          if (m.api.dmaSetMaskAndCoherent(dev, mask) !== 0) continue;
          this.addDevice(dev, new DeviceBus(dev, m.memory));
        }
      }
    // buffers: half from the top of RAM (bounced for narrow masks), half from the bottom
    for (let i = 0; i < NBUFS; i++) {
      const a = i % 2 === 0 ? m.memblock.allocTopDown(BUF_SIZE, PAGE, Infinity, "soak buffers") : m.memblock.allocBottomUp(BUF_SIZE, PAGE, 0, Infinity, "soak buffers");
      if (a < 0) throw new UsageError(`machine ${m.desc.name}: no room for the soak's ${NBUFS} buffers of ${BUF_SIZE} bytes`);
      this.bufs.push(a);
      m.memory.fill(a, BUF_SIZE, 0);
    }
    this.pools = [m.swiotlb.defaultMem?.pool, ...[...m.swiotlb.restrictedMems.values()].map((x) => x.pool)].filter((p): p is IoTlbPool => p !== undefined);
    this.model = new SoakModel(NBUFS, this.pools);
    if (this.hv !== null && this.domain !== null) {
      const s = m.memblock.allocBottomUp(PAGE * (BALLOON_PAGES + 1), PAGE, 0, Infinity, "soak balloon");
      if (s < 0) throw new UsageError(`machine ${m.desc.name}: no room for the soak's balloon`);
      this.scratch = s;
      for (let i = 1; i <= BALLOON_PAGES; i++) this.balloon.push(s / PAGE + i);
      const hv = this.hv;
      hv.allocFaultHook = () => this.want.allocFail;
      hv.exchangeFaultHook = () => this.want.exchangeAt > 0 && ++this.exchangeExtents === this.want.exchangeAt;
    }
    m.swiotlb.mapFaultHook = () => this.want.full;
    this.initialXen = this.hv?.snapshot() ?? null;
    this.initialFree = this.hv?.frames.freeFrames ?? 0;
    this.initialTotPages = this.domain?.totPages ?? 0;
  }

  private addDevice(dev: Device, bus: DeviceBus): void {
    const engine = new DmaEngine(bus, `dma-engine (${dev.name})`);
    engine.faultHook = () => this.want.devErr;
    this.devs.push({ dev, bus, engine, name: dev.name });
  }

  close(): void {
    this.m.swiotlb.mapFaultHook = null;
    if (this.hv) {
      this.hv.allocFaultHook = null;
      this.hv.exchangeFaultHook = null;
    }
  }

  genState(): GenState {
    const live = [...this.model.live.values()].map((l) => ({ id: l.id, sg: l.sg, dir: l.dir, size: l.size, dev: l.dev, longLived: l.longLived }));
    const freeBufs: number[] = [];
    for (let i = 0; i < NBUFS; i++) if (this.model.bufOwner[i] === -1) freeBufs.push(i);
    return {
      live,
      freeBufs,
      nbufs: NBUFS,
      ndevs: this.devs.length,
      xen: this.hv !== null,
      exchange: this.domain !== null && this.domain.exchange === "x86-pv" && !this.domain.directMapped,
      ballooned: [...this.ballooned].map((g) => this.balloon.indexOf(g)),
      present: this.balloon.map((g, i) => (this.ballooned.has(g) ? -1 : i)).filter((i) => i >= 0),
    };
  }

  // ---- the operations ------------------------------------------------------------------------

  /** Runs op number `id`; returns false when it does not apply (a shrunk list's leftovers). */
  exec(id: number, op: SoakOp): boolean {
    switch (op.k) {
      case "map":
        return this.map(id, op.dev, [{ buf: op.buf, off: op.off, size: op.size }], op.dir, false, op.longLived === true, op.full === true);
      case "mapSg":
        return this.map(id, op.dev, op.segs, op.dir, true, false, op.full === true);
      case "unmap":
        return this.unmap(op.m);
      case "sync":
        return this.sync(op.m, op.toCpu, op.off, op.len);
      case "devWrite":
        return this.devWrite(op.m, op.off, op.len, op.seed);
      case "cpuWrite":
        return this.cpuWrite(op.buf, op.off, op.len, op.seed);
      case "engine":
        return this.engine(op.src, op.dst, op.len, op.error === true);
      case "hypercall":
        return this.hypercall(op);
    }
  }

  private segOf(devIdx: number, buf: number, off: number, size: number, dma: number): ModelSeg {
    const d = this.devs[devIdx]!.dev;
    const phys = d.dmaToPhys(dma);
    const pool = this.pools.find((p) => phys >= p.start && phys < p.end) ?? null;
    const seg: ModelSeg = { buf, off, size, dma, pool, slot0: 0, nslots: 0, devView: null };
    if (pool !== null) {
      const rel = phys - pool.start;
      seg.slot0 = Math.floor(rel / IO_TLB_SIZE);
      seg.nslots = Math.ceil(((rel % IO_TLB_SIZE) + size) / IO_TLB_SIZE);
    }
    return seg;
  }

  protected map(id: number, devIdx: number, segsIn: readonly { buf: number; off: number; size: number }[], dir: number, sg: boolean, longLived: boolean, full: boolean): boolean {
    const sd = this.devs[devIdx];
    if (sd === undefined) return false;
    for (const s of segsIn) if (this.model.bufOwner[s.buf] !== -1 || s.buf >= NBUFS) return false;
    const api = this.m.api;
    this.want.full = full;
    let dmas: number[];
    try {
      if (!sg) {
        const s = segsIn[0]!;
        const phys = this.bufs[s.buf]! + s.off;
        const page = phys - (phys % PAGE);
        const dma = api.dmaMapPageAttrs(sd.dev, page, phys - page, s.size, dir, 0, id % this.m.cpus);
        if (api.dmaMappingError(sd.dev, dma) !== 0) {
          this.noteMapFailure(full);
          return true;
        }
        dmas = [dma];
      } else {
        const list = sgInitTable(segsIn.map((s) => ({ phys: this.bufs[s.buf]! + s.off, length: s.size })));
        const n = api.dmaMapSgAttrs(sd.dev, list, list.length, dir, 0, id % this.m.cpus);
        if (n === 0) {
          this.noteMapFailure(full);
          return true;
        }
        if (n !== list.length) throw new SoakViolation("sg", `map_sg of ${list.length} entries returned ${n} (dma-direct and swiotlb-xen never merge)`);
        this.sgs.set(id, list);
        dmas = list.map((e) => e.dmaAddress);
      }
    } finally {
      this.want.full = false;
    }
    const mp: ModelMapping = { id, dev: devIdx, sg, dir, segs: [], size: 0, longLived };
    for (let i = 0; i < segsIn.length; i++) {
      const s = segsIn[i]!;
      const seg = this.segOf(devIdx, s.buf, s.off, s.size, dmas[i]!);
      mp.segs.push(seg);
      mp.size += s.size;
      this.model.bufOwner[s.buf] = id;
      if (seg.pool !== null) {
        seg.devView = new Uint8Array(s.size);
        // what map copies into the slots: 6.x every direction; 5.13 TO/BIDIR. Otherwise the
        // device sees what the slots held: observed once, then held to
        if (this.mapCopiesAll || dir !== 2) this.model.copyIn(seg, 0, s.size);
        else sd.bus.readInto(seg.dma, seg.devView);
        const other = this.model.claimSlots(seg, id);
        if (other !== -1) throw new SoakViolation("slots", `op ${id}: the new mapping at ${seg.dma.toString(16)} (slots ${seg.slot0}+${seg.nslots}) shares a slot with live mapping ${other}`);
      }
    }
    // pool-full only bites on a map swiotlb serves; a direct mapping never asks the pool
    if (full && mp.segs.some((g) => g.pool !== null)) throw new SoakViolation("inject", `op ${id}: pool-full was injected but the bounced map succeeded`);
    this.model.live.set(id, mp);
    this.afterMap(mp);
    this.checkMapping(id, mp);
    this.checkPoolsAround(mp, true);
    return true;
  }

  private noteMapFailure(full: boolean): void {
    if (full) this.faults["pool-full"]++;
    else this.mapFailures++;
  }

  /** maps that failed without an injected fault (a pool genuinely full) */
  mapFailures = 0;

  protected unmap(id: number): boolean {
    const mp = this.model.live.get(id);
    if (mp === undefined) return false;
    const sd = this.devs[mp.dev]!;
    const api = this.m.api;
    if (!mp.sg) api.dmaUnmapPageAttrs(sd.dev, mp.segs[0]!.dma, mp.segs[0]!.size, mp.dir, 0);
    else {
      const list = this.sgs.get(id)!;
      api.dmaUnmapSgAttrs(sd.dev, list, list.length, mp.dir, 0);
      this.sgs.delete(id);
    }
    for (const seg of mp.segs) {
      if (mp.dir !== 1) this.model.copyBack(seg, 0, seg.size);
      this.model.releaseSlots(seg);
      this.model.bufOwner[seg.buf] = -1;
    }
    this.model.live.delete(id);
    this.afterUnmap(mp);
    for (const seg of mp.segs) this.checkCpu(seg.buf, seg.off, seg.size, `unmap of mapping ${id}`);
    this.checkPoolsAround(mp, false);
    return true;
  }

  private sync(id: number, toCpu: boolean, off: number, len: number): boolean {
    const mp = this.model.live.get(id);
    if (mp === undefined) return false;
    const sd = this.devs[mp.dev]!;
    const api = this.m.api;
    if (mp.sg) {
      const list = this.sgs.get(id)!;
      if (toCpu) api.dmaSyncSgForCpu(sd.dev, list, list.length, mp.dir);
      else api.dmaSyncSgForDevice(sd.dev, list, list.length, mp.dir);
      for (const seg of mp.segs) this.syncModel(seg, mp.dir, toCpu, 0, seg.size);
    } else {
      const seg = mp.segs[0]!;
      // 5.13 bounces a partial sync from the slot's orig_addr without the offset (fixed in 5.14): whole syncs only there
      if (!this.partialSync) {
        off = 0;
        len = seg.size;
      }
      if (off + len > seg.size) return false;
      if (toCpu) api.dmaSyncSingleForCpu(sd.dev, seg.dma + off, len, mp.dir);
      else api.dmaSyncSingleForDevice(sd.dev, seg.dma + off, len, mp.dir);
      this.syncModel(seg, mp.dir, toCpu, off, len);
    }
    this.checkMapping(id, mp);
    return true;
  }

  private syncModel(seg: ModelSeg, dir: number, toCpu: boolean, off: number, len: number): void {
    if (toCpu && dir !== 1) this.model.copyBack(seg, off, len);
    if (!toCpu && dir !== 2) this.model.copyIn(seg, off, len);
  }

  private readonly scratchBytes = new Uint8Array(BUF_SIZE);

  private devWrite(id: number, off: number, len: number, seed: number): boolean {
    const mp = this.model.live.get(id);
    if (mp === undefined || mp.sg) return false;
    const seg = mp.segs[0]!;
    if (off + len > seg.size) return false;
    const bytes = this.scratchBytes.subarray(0, len);
    fillPattern(bytes, seed);
    this.devs[mp.dev]!.bus.write(seg.dma + off, bytes);
    this.model.devWrite(seg, off, bytes);
    this.checkMapping(id, mp);
    return true;
  }

  private cpuWrite(buf: number, off: number, len: number, seed: number): boolean {
    if (buf >= NBUFS || off + len > BUF_SIZE) return false;
    const bytes = this.scratchBytes.subarray(0, len);
    fillPattern(bytes, seed);
    this.m.memory.write(this.bufs[buf]! + off, bytes);
    this.model.cpu[buf]!.set(bytes, off);
    this.checkCpu(buf, off, len, "CPU write");
    const owner = this.model.bufOwner[buf]!;
    if (owner !== -1) this.checkMapping(owner, this.model.live.get(owner)!);
    return true;
  }

  private engine(srcId: number, dstId: number, len: number, error: boolean): boolean {
    const a = this.model.live.get(srcId);
    const b = this.model.live.get(dstId);
    if (a === undefined || b === undefined || a.sg || b.sg || a.dev !== b.dev || srcId === dstId) return false;
    const sa = a.segs[0]!;
    const sb = b.segs[0]!;
    if (len > sa.size || len > sb.size) return false;
    const e = this.devs[a.dev]!.engine;
    e.write(REG_SRC, 8, BigInt(sa.dma));
    e.write(REG_DST, 8, BigInt(sb.dma));
    e.write(REG_LEN, 4, BigInt(len));
    this.want.devErr = error;
    try {
      e.write(REG_CTRL, 4, BigInt(CMD_COPY));
    } finally {
      this.want.devErr = false;
    }
    const st = Number(e.read(REG_STATUS, 4));
    if (error) {
      if (st !== STATUS_ERROR) throw new SoakViolation("inject", `device-error was injected but the engine's status is ${st}`);
      this.faults["device-error"]++;
    } else {
      if (st !== STATUS_DONE) throw new SoakViolation("engine", `engine copy ${sa.dma.toString(16)} -> ${sb.dma.toString(16)} (${len} bytes) ended with status ${st}`);
      this.model.devWrite(sb, 0, this.model.devBytes(sa, 0, len).slice());
    }
    this.checkMapping(dstId, b);
    return true;
  }

  // ---- Xen memory_op -------------------------------------------------------------------------

  private call(nr: bigint, a0: bigint, a1: bigint): bigint {
    const x = new BigUint64Array(31);
    x[16] = nr;
    x[0] = a0;
    x[1] = a1;
    this.hv!.dispatch(this.domain!, { x });
    return BigInt.asIntN(64, x[0]);
  }

  private reservation(at: number, list: number, nr: number, order: number): void {
    const mem = this.m.memory;
    mem.write64(at, BigInt(list));
    mem.write64(at + 8, BigInt(nr));
    mem.write32(at + 16, order);
    mem.write32(at + 20, 0);
    mem.write32(at + 24, DOMID_SELF);
  }

  protected hypercall(op: Extract<SoakOp, { k: "hypercall" }>): boolean {
    if (this.hv === null || this.domain === null) return false;
    const d = this.domain;
    const s = this.scratch;
    const list = s + 256;
    const gfn = this.balloon[op.page];
    if (gfn === undefined) return false;
    const tot = d.totPages;
    const free = this.hv.frames.freeFrames;
    switch (op.what) {
      case "xen-version": {
        const v = this.call(HYPERVISOR_xen_version, 0n, 0n);
        if (v <= 0n) throw new SoakViolation("hypercall", `xen_version(XENVER_version) = ${v}`);
        return true;
      }
      case "bad-cmd": {
        const rc = this.call(HYPERVISOR_memory_op, 63n, BigInt(s));
        if (rc !== ENOSYS) throw new SoakViolation("hypercall", `memory_op(63) = ${rc}, expected -ENOSYS`);
        this.invalid["memory_op-bad-cmd"]++;
        break;
      }
      case "bad-exchange": {
        this.m.memory.write64(list, BigInt(gfn));
        this.reservation(s, list, 1, 0);
        this.reservation(s + 32, list, 1, 1);
        this.m.memory.write64(s + 64, 0n);
        const rc = this.call(HYPERVISOR_memory_op, XENMEM_exchange, BigInt(s));
        if (rc !== EINVAL) throw new SoakViolation("hypercall", `XENMEM_exchange with 1 in-extent of order 0 for 1 of order 1 = ${rc}, expected -EINVAL`);
        this.invalid["exchange-bad-sizes"]++;
        break;
      }
      case "decrease-unmapped": {
        this.m.memory.write64(list, 0xf_ffff_fffn);
        this.reservation(s, list, 1, 0);
        const rc = this.call(HYPERVISOR_memory_op, XENMEM_decrease_reservation, BigInt(s));
        if (rc !== 0n) throw new SoakViolation("hypercall", `decrease_reservation of an unmapped gfn = ${rc}, expected 0 extents`);
        this.invalid["decrease-unmapped-gfn"]++;
        break;
      }
      case "decrease": {
        if (this.ballooned.has(gfn)) return false;
        this.m.memory.write64(list, BigInt(gfn));
        this.reservation(s, list, 1, 0);
        const rc = this.call(HYPERVISOR_memory_op, XENMEM_decrease_reservation, BigInt(s));
        if (rc !== 1n) throw new SoakViolation("hypercall", `decrease_reservation of present gfn ${gfn.toString(16)} = ${rc}, expected 1`);
        this.ballooned.add(gfn);
        this.afterDecrease(gfn);
        this.checkBalloon(`decrease_reservation of gfn ${gfn.toString(16)}`);
        return true;
      }
      case "populate": {
        if (!this.ballooned.has(gfn)) return false;
        this.m.memory.write64(list, BigInt(gfn));
        this.reservation(s, list, 1, 0);
        this.want.allocFail = op.fail === true;
        let rc: bigint;
        try {
          rc = this.call(HYPERVISOR_memory_op, XENMEM_populate_physmap, BigInt(s));
        } finally {
          this.want.allocFail = false;
        }
        // a direct-mapped domain gets its own frame back without an allocation: no fault to inject
        const failed = op.fail === true && !d.directMapped;
        if (rc !== (failed ? 0n : 1n)) throw new SoakViolation("hypercall", `populate_physmap of gfn ${gfn.toString(16)} = ${rc}, expected ${failed ? 0 : 1}`);
        if (failed) this.faults["hypercall-fail"]++;
        else {
          this.ballooned.delete(gfn);
          this.afterPopulate(gfn);
        }
        this.checkBalloon(`populate_physmap of gfn ${gfn.toString(16)}`);
        return true;
      }
      case "exchange": {
        // two order-0 pages for one order-1 extent at the first (x86 PV's contiguous region)
        const g2 = this.balloon[op.page + 1];
        if (op.page % 2 !== 0 || g2 === undefined || this.ballooned.has(gfn) || this.ballooned.has(g2)) return false;
        this.m.memory.write64(list, BigInt(gfn));
        this.m.memory.write64(list + 8, BigInt(g2));
        this.m.memory.write64(list + 16, BigInt(gfn));
        this.reservation(s, list, 2, 0);
        this.reservation(s + 32, list + 16, 1, 1);
        this.m.memory.write64(s + 64, 0n);
        this.want.exchangeAt = op.enomemAt ?? 0;
        const before = this.exchangeExtents;
        let rc: bigint;
        try {
          rc = this.call(HYPERVISOR_memory_op, XENMEM_exchange, BigInt(s));
        } finally {
          this.want.exchangeAt = 0;
        }
        const hit = op.enomemAt !== undefined && before < op.enomemAt && this.exchangeExtents >= op.enomemAt;
        const done = this.m.memory.read64(s + 64);
        if (hit) {
          if (rc !== ENOMEM || done !== 0n) throw new SoakViolation("hypercall", `XENMEM_exchange with its extent failing = ${rc}, nr_exchanged ${done}; expected -ENOMEM, 0`);
          this.faults["exchange-enomem"]++;
        } else if (rc !== 0n || done !== 2n) throw new SoakViolation("hypercall", `XENMEM_exchange = ${rc}, nr_exchanged ${done}; expected 0, 2`);
        else this.afterExchange(gfn, g2);
        this.checkBalloon("XENMEM_exchange");
        return true;
      }
    }
    if (d.totPages !== tot || this.hv.frames.freeFrames !== free) throw new SoakViolation("hypercall", `a refused ${op.what} changed tot_pages ${tot} -> ${d.totPages} or free frames ${free} -> ${this.hv.frames.freeFrames}`);
    return true;
  }

  // ---- seams for planted bugs (self-test): the real machine's state after each step ---------

  protected afterMap(_mp: ModelMapping): void {}
  protected afterUnmap(_mp: ModelMapping): void {}
  protected afterDecrease(_gfn: number): void {}
  protected afterPopulate(_gfn: number): void {}
  protected afterExchange(_gfn: number, _gfn2: number): void {}

  // ---- checks, in invariants.ts ----------------------------------------------------------------

  /** every check counted; bytes found different from the model */
  checks = 0;
  lostBytes = 0;
  private readonly readBack = new Uint8Array(BUF_SIZE);

  /** both views of a live mapping equal the model's */
  checkMapping(id: number, mp: ModelMapping): void {
    const sd = this.devs[mp.dev]!;
    for (const seg of mp.segs) {
      this.checkCpu(seg.buf, seg.off, seg.size, `mapping ${id} (CPU view)`);
      const got = this.readBack.subarray(0, seg.size);
      sd.bus.readInto(seg.dma, got);
      this.compare(got, this.model.devBytes(seg, 0, seg.size), `mapping ${id} (device view at ${seg.dma.toString(16)})`);
    }
  }

  checkCpu(buf: number, off: number, len: number, what: string): void {
    const got = this.readBack.subarray(0, len);
    this.m.memory.readInto(this.bufs[buf]! + off, got);
    this.compare(got, this.model.cpu[buf]!.subarray(off, off + len), `${what}: buffer ${buf}+${off}`);
  }

  private compare(got: Uint8Array, want: Uint8Array, what: string): void {
    this.checks++;
    let bad = 0;
    let first = -1;
    for (let i = 0; i < want.length; i++)
      if (got[i] !== want[i]) {
        bad++;
        if (first < 0) first = i;
      }
    if (bad === 0) return;
    this.lostBytes += bad;
    throw new SoakViolation("bytes", `${what}: ${bad} of ${want.length} bytes differ from the model, first at +${first} (expected 0x${want[first]!.toString(16)}, got 0x${got[first]!.toString(16)})`);
  }

  /** the slots a mapping took or gave back, and every pool's counters, against the model */
  checkPoolsAround(mp: ModelMapping, mapped: boolean): void {
    this.checks++;
    for (const seg of mp.segs) {
      if (seg.pool === null) continue;
      const busy = seg.pool.busy;
      for (let i = seg.slot0; i < seg.slot0 + seg.nslots; i++) {
        const set = (busy[i >>> 5]! & (1 << (i & 31))) !== 0;
        if (set !== mapped) throw new SoakViolation("slots", `mapping ${mp.id}: slot ${i} is ${set ? "still allocated after the unmap" : "free while mapped"}`);
      }
    }
    this.checkCounters();
  }

  checkCounters(): void {
    this.checks++;
    for (const p of this.pools) {
      const held = this.model.slotsHeld.get(p)!;
      if (p.used !== held) throw new SoakViolation("io_tlb_used", `pool at ${p.start.toString(16)}: the areas' used counts add up to ${p.used}, live mappings hold ${held} slots`);
      if (p.counters[0] !== held) throw new SoakViolation("io_tlb_used", `pool at ${p.start.toString(16)}: io_tlb_used ${p.counters[0]}, live mappings hold ${held} slots`);
    }
  }

  /** the balloon's pages against the P2M: given-back pages unmapped, the others on distinct frames the domain owns */
  checkBalloon(what: string): void {
    this.checks++;
    const d = this.domain!;
    const seen = new Map<number, number>();
    for (const g of this.balloon) {
      const e = d.p2m.lookup(g);
      if (this.ballooned.has(g)) {
        if (e !== undefined) throw new SoakViolation("p2m", `${what}: gfn ${g.toString(16)} was given back but the P2M still maps it to mfn ${e.mfn.toString(16)}`);
        continue;
      }
      if (e === undefined) throw new SoakViolation("p2m", `${what}: gfn ${g.toString(16)} is not mapped`);
      if (this.hv!.frames.ownerOf(e.mfn) !== d.id) throw new SoakViolation("p2m", `${what}: gfn ${g.toString(16)} maps mfn ${e.mfn.toString(16)}, which d${d.id} does not own`);
      const o = seen.get(e.mfn);
      if (o !== undefined) throw new SoakViolation("p2m", `${what}: gfns ${o.toString(16)} and ${g.toString(16)} map the same mfn ${e.mfn.toString(16)}`);
      seen.set(e.mfn, g);
    }
  }

  /** unmaps everything and takes every ballooned page back (no faults injected) */
  drain(): void {
    for (const id of [...this.model.live.keys()]) this.unmap(id);
    for (const g of [...this.ballooned]) this.hypercall({ k: "hypercall", what: "populate", page: this.balloon.indexOf(g) });
  }
}
