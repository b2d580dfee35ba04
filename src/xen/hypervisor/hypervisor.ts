// The stub Xen of one machine: its heap of machine frames, its domains, its version, and
// the register-level hypercall entry point (`dispatch`), the only way a guest gets in.

import { InvalidArgumentError, LimitError, UsageError, hex } from "../../errors.js";
import type { EventSink } from "../../events.js";
import type { PhysicalMemory } from "../../memory/physical-memory.js";
import { type GuestRegs, type HypercallRecord, dispatchHypercall } from "./dispatch.js";
import { Domain, type DomainRole, type ExchangeMode } from "./domain.js";
import { FRAME_ANON, FRAME_FREE, FRAME_RESERVED, FrameAllocator } from "./frame-allocator.js";
import { GuestMemory, type Stage1 } from "./guest-memory.js";
import { DOMID_FIRST_RESERVED, DOMID_SELF, GUEST_RAM0_BASE, GUEST_RAM0_SIZE, GUEST_RAM1_BASE, GUEST_RAM1_SIZE, MAX_ORDER, XEN_PAGE_SIZE } from "./public.js";
import { errnoString } from "../../kernel/errno.js";
import { type XenProfile, type XenVersion, xenProfile } from "./version.js";
import { type XenBuildInfo, defaultBuildInfo } from "./xen-version.js";

export interface XenHypervisorOptions {
  /** Xen release; "4.15" (the 2021 regression's era) by default */
  version?: XenVersion;
  /** a debug build: clobbers used argument registers and x16 with 0xDEADBEEF (spec 1.2), lets domUs write the console */
  debugClobber?: boolean;
  /** strings the build reports through xen_version */
  build?: Partial<XenBuildInfo>;
  /** machine ranges kept out of the heap (Xen's own image, firmware...) */
  reserved?: readonly { base: number; size: number }[];
  /** stage-2 input address size; 48 by default (never more than the machine's PA width) */
  ipaBits?: number;
  /** receives one "hypercall" event per dispatch */
  events?: EventSink;
}

export interface RamRange {
  base: number;
  size: number;
}

export interface CreateDomainOptions {
  role: DomainRole;
  /** gfn == mfn over its RAM; default: true for dom0, false for a domU */
  directMapped?: boolean;
  /**
   * RAM ranges. Direct-mapped: machine ranges handed over as they are (must be free). Not
   * direct-mapped: guest-physical ranges, each backed by frames from the heap.
   */
  ramRanges?: readonly RamRange[];
  /** RAM size in bytes, placed by Xen (direct-mapped: allocated blocks mapped 1:1; otherwise the arm guest layout) */
  size?: number;
  /** XENMEM_exchange behaviour, "arm" (real Xen/arm) by default */
  exchange?: ExchangeMode;
  /** a domain with passthrough devices (max extent order 10) */
  passthrough?: boolean;
  /** paging_mode_translate; default true (every arm domain) */
  autoTranslated?: boolean;
  /** allocation limit in pages; default: the pages it starts with */
  maxPages?: number;
  /** domain id for a domU (default: the lowest free id from 1) */
  id?: number;
  /** device-model target (d->target) */
  target?: number;
  handle?: Uint8Array;
}

const PAGE = XEN_PAGE_SIZE;
const CHUNK_ORDER = 9; // 2 MiB

export class XenHypervisor {
  readonly frames: FrameAllocator;
  readonly profile: XenProfile;
  readonly debugBuild: boolean;
  readonly build: XenBuildInfo;
  readonly ipaBits: number;
  private readonly domainsById = new Map<number, Domain>();
  private readonly consoleText = new Map<number, { bytes: Uint8Array; len: number; dropped: number }>();
  private readonly events: EventSink | undefined;

  constructor(
    readonly mem: PhysicalMemory,
    opts: XenHypervisorOptions = {},
  ) {
    this.profile = xenProfile(opts.version ?? "4.15");
    this.debugBuild = opts.debugClobber ?? false;
    this.build = { ...defaultBuildInfo(this.profile), ...opts.build };
    this.ipaBits = Math.min(opts.ipaBits ?? 48, mem.paBits, 48);
    this.frames = new FrameAllocator(mem, { reserved: opts.reserved ?? [] });
    this.events = opts.events;
  }

  get version(): XenVersion {
    return this.profile.version;
  }

  get domains(): Domain[] {
    return [...this.domainsById.values()];
  }

  domain(id: number): Domain | undefined {
    return this.domainsById.get(id);
  }

  get dom0(): Domain | undefined {
    return this.domainsById.get(0);
  }

  // ---- domains --------------------------------------------------------------------------

  createDomain(o: CreateDomainOptions): Domain {
    if (o.role !== "dom0" && o.role !== "domU") throw new InvalidArgumentError(`domain role "${String(o.role)}": expected dom0 or domU`);
    const directMapped = o.directMapped ?? o.role === "dom0";
    const exchange = o.exchange ?? "arm";
    if (exchange !== "arm" && exchange !== "x86-pv") throw new InvalidArgumentError(`exchange mode "${String(exchange)}": expected arm or x86-pv`);
    if (directMapped && exchange === "x86-pv")
      throw new InvalidArgumentError("exchange mode x86-pv needs a domain that is not direct-mapped (an exchange would break gfn == mfn)");
    let id: number;
    if (o.role === "dom0") {
      if (this.domainsById.has(0)) throw new InvalidArgumentError("dom0 already exists");
      id = 0;
    } else if (o.id !== undefined) {
      if (!Number.isInteger(o.id) || o.id < 1 || o.id >= DOMID_FIRST_RESERVED) throw new InvalidArgumentError(`domain id ${o.id}: a domU id is 1..${DOMID_FIRST_RESERVED - 1}`);
      if (this.domainsById.has(o.id)) throw new InvalidArgumentError(`domain id ${o.id} is already in use`);
      id = o.id;
    } else {
      id = 1;
      while (this.domainsById.has(id)) id++;
    }
    if ((o.ramRanges === undefined) === (o.size === undefined)) throw new InvalidArgumentError(`d${id}: give either ramRanges or size`);
    const ranges = o.ramRanges ?? [];
    for (const r of ranges)
      if (!Number.isSafeInteger(r.base) || !Number.isSafeInteger(r.size) || r.base < 0 || r.size <= 0 || r.base % PAGE !== 0 || r.size % PAGE !== 0)
        throw new InvalidArgumentError(`d${id}: RAM range ${hex(r.base)}+${hex(r.size)} must be 4 KiB aligned and non-empty`);
    if (o.size !== undefined && (!Number.isSafeInteger(o.size) || o.size <= 0 || o.size % PAGE !== 0))
      throw new InvalidArgumentError(`d${id}: RAM size ${o.size} must be a positive multiple of 4 KiB`);

    const d = new Domain({
      id,
      role: o.role,
      directMapped,
      exchange,
      passthrough: o.passthrough ?? false,
      autoTranslated: o.autoTranslated ?? true,
      ipaBits: this.ipaBits,
      ...(o.target !== undefined ? { target: o.target } : {}),
      ...(o.handle !== undefined ? { handle: o.handle } : {}),
    });
    try {
      if (directMapped) this.populateDirect(d, ranges, o.size);
      else this.populateTranslated(d, o.size !== undefined ? guestLayout(o.size) : ranges);
    } catch (e) {
      this.releaseAll(d);
      throw e;
    }
    d.maxPages = o.maxPages ?? d.totPages;
    this.domainsById.set(id, d);
    return d;
  }

  /** Tear a domain down: every page it owns goes back to the heap. */
  destroyDomain(d: Domain): void {
    if (this.domainsById.get(d.id) !== d) throw new InvalidArgumentError(`${d} is not a domain of this hypervisor`);
    this.releaseAll(d);
    this.domainsById.delete(d.id);
  }

  private releaseAll(d: Domain): void {
    for (const m of this.frames.ownedFrames(d.id)) this.frames.free(m, 0);
    d.totPages = 0;
    for (const [g] of [...d.p2m]) d.p2m.remove(g);
  }

  private populateDirect(d: Domain, ranges: readonly RamRange[], size: number | undefined): void {
    if (size === undefined) {
      for (const r of ranges) {
        if (!this.frames.claim(r.base / PAGE, r.size / PAGE, d.id))
          throw new InvalidArgumentError(`${d}: machine range ${hex(r.base)}-${hex(r.base + r.size - 1)} is not free RAM`);
        d.totPages += r.size / PAGE;
        this.mapRam(d, r.base / PAGE, r.base / PAGE, r.size / PAGE);
      }
      return;
    }
    // Xen places a direct-mapped domain's RAM itself: big blocks, low memory (< 4 GiB) first
    let left = size / PAGE;
    while (left > 0) {
      let order = Math.min(MAX_ORDER, Math.floor(Math.log2(left)));
      let mfn: number | undefined;
      for (; order >= 0; order--) {
        mfn = this.frames.alloc(order, { addressBits: 32, owner: d.id }) ?? this.frames.alloc(order, { owner: d.id });
        if (mfn !== undefined) break;
      }
      if (mfn === undefined) throw new LimitError(`${d}: Xen's heap cannot provide ${size} bytes of RAM`);
      d.totPages += 2 ** order;
      this.mapRam(d, mfn, mfn, 2 ** order);
      left -= 2 ** order;
    }
  }

  /** Back guest ranges with heap frames, in naturally aligned 2 MiB blocks where possible. */
  private populateTranslated(d: Domain, ranges: readonly RamRange[]): void {
    for (const r of ranges) {
      let gfn = r.base / PAGE;
      const end = gfn + r.size / PAGE;
      if (!d.p2m.inRange(gfn, end - gfn)) throw new InvalidArgumentError(`${d}: guest range ${hex(r.base)}+${hex(r.size)} is beyond the ${this.ipaBits}-bit IPA space`);
      while (gfn < end) {
        let order = 0;
        while (order < CHUNK_ORDER && gfn % 2 ** (order + 1) === 0 && gfn + 2 ** (order + 1) <= end) order++;
        let mfn: number | undefined;
        for (; order >= 0; order--) {
          mfn = this.frames.alloc(order, { owner: d.id });
          if (mfn !== undefined) break;
        }
        if (mfn === undefined) throw new LimitError(`${d}: Xen's heap is exhausted after ${d.totPages} pages (${hex(r.size)} bytes wanted at ${hex(r.base)})`);
        d.totPages += 2 ** order;
        d.p2m.insert(gfn, mfn, 2 ** order, "ram_rw");
        gfn += 2 ** order;
      }
      addRange(d.ram, r.base, r.size);
    }
  }

  private mapRam(d: Domain, gfn: number, mfn: number, count: number): void {
    if (!d.p2m.insert(gfn, mfn, count, "ram_rw")) throw new InvalidArgumentError(`${d}: RAM at ${hex(gfn * PAGE)} is beyond the ${this.ipaBits}-bit IPA space`);
    addRange(d.ram, gfn * PAGE, count * PAGE);
  }

  // ---- services for the hypercall handlers ---------------------------------------------

  /** rcu_lock_domain_by_any_id: DOMID_SELF is the caller; reserved ids name no domain here. */
  lookupDomain(domid: number, caller: Domain): Domain | undefined {
    if (domid === DOMID_SELF) return caller;
    if (domid >= DOMID_FIRST_RESERVED) return undefined;
    return this.domainsById.get(domid);
  }

  /** XSM_TARGET under the dummy policy: itself, its device model, or the control domain. */
  xsmTarget(src: Domain, target: Domain): boolean {
    return src === target || (src.target !== undefined && src.target === target.id) || src.isControl;
  }

  /**
   * Fault injection (`dmalab soak --inject`): when set and it answers true, alloc_domheap_pages
   * (hypercall-fail) or XENMEM_exchange's allocation of an output extent (exchange-enomem) finds
   * no memory. null by default.
   */
  allocFaultHook: (() => boolean) | null = null;
  exchangeFaultHook: (() => boolean) | null = null;

  /** alloc_domheap_pages(d, order): honours max_pages and the address limit; counts the pages. */
  allocDomheap(d: Domain, order: number, addressBits: number): number | undefined {
    if (this.allocFaultHook !== null && this.allocFaultHook()) return undefined;
    const n = 2 ** order;
    if (d.totPages + n > d.maxPages) return undefined;
    const mfn = this.frames.alloc(order, addressBits > 0 ? { addressBits, owner: d.id } : { owner: d.id });
    if (mfn !== undefined) d.totPages += n;
    return mfn;
  }

  /** Drop a domain's allocation reference on pages: they go back to the heap. */
  releaseDomainPages(d: Domain, mfn: number, count: number): void {
    for (let k = 0; k < count; k++) this.frames.free(mfn + k, 0);
    d.totPages -= count;
  }

  /** Guest-virtual access for a domain: its stage-1 hook (if the CPU set one), then its P2M. */
  guestMemory(d: Domain, stage1: Stage1 | undefined = d.stage1): GuestMemory {
    return new GuestMemory(this.mem, d, stage1);
  }

  /** What a domain's CONSOLEIO_write output keeps: the first bytes, the rest only counted. */
  static readonly CONSOLE_CAP = 64 * 1024;

  /** Appends to a domain's console; returns false once the cap is reached (the rest is counted). */
  consoleWrite(d: Domain, bytes: Uint8Array): boolean {
    let c = this.consoleText.get(d.id);
    if (c === undefined) this.consoleText.set(d.id, (c = { bytes: new Uint8Array(XenHypervisor.CONSOLE_CAP), len: 0, dropped: 0 }));
    const keep = Math.min(bytes.length, c.bytes.length - c.len);
    c.bytes.set(bytes.subarray(0, keep), c.len);
    c.len += keep;
    this.consoleDropped(d, bytes.length - keep);
    return c.len < c.bytes.length;
  }

  /** Counts console bytes not kept (past the cap). */
  consoleDropped(d: Domain, n: number): void {
    const c = this.consoleText.get(d.id);
    if (c !== undefined) c.dropped += n;
  }

  /** What a domain wrote with CONSOLEIO_write (its first CONSOLE_CAP bytes). */
  console(domid: number): string {
    const c = this.consoleText.get(domid);
    return c === undefined ? "" : new TextDecoder().decode(c.bytes.subarray(0, c.len));
  }

  /** Console bytes a domain wrote past the cap. */
  consoleDroppedBytes(domid: number): number {
    return this.consoleText.get(domid)?.dropped ?? 0;
  }

  // ---- the way in ---------------------------------------------------------------------

  /**
   * An `HVC #0xEA1` from `domain`: hypercall number in x16, arguments in x0..x4; the result
   * goes to x0 (a negative errno sign-extended to 64 bits). A release build leaves the other
   * registers alone; a debug build clobbers the used argument registers and x16.
   */
  dispatch(domain: Domain | number, regs: GuestRegs): HypercallRecord {
    const d = typeof domain === "number" ? this.domainsById.get(domain) : domain;
    if (d === undefined || this.domainsById.get(d.id) !== d) throw new UsageError(`hypercall from unknown domain ${typeof domain === "number" ? domain : domain.id}`);
    const rec = dispatchHypercall(this, d, regs);
    if (this.events?.active)
      this.events.emit("hypercall", {
        domid: rec.domid,
        op: rec.sub !== undefined ? `${rec.op}/${rec.sub}` : rec.op,
        args: rec.args.map((a) => hex(a)).join(","),
        ret: errnoString(rec.ret),
      });
    return rec;
  }

  // ---- consistency --------------------------------------------------------------------

  /**
   * Cross-checks the heap and every domain: the allocator's own invariants; tot_pages equals
   * the frames each domain owns; every RAM entry of a P2M points at a frame its domain owns
   * (gfn == mfn when direct-mapped); no anonymous frame outlives a hypercall; free + owned +
   * reserved = total. Returns the problems (empty when consistent).
   */
  check(): string[] {
    const problems = this.frames.check();
    const counts = this.frames.countsByOwner();
    let owned = 0;
    for (const d of this.domainsById.values()) {
      const n = counts.get(d.id) ?? 0;
      owned += n;
      if (n !== d.totPages) problems.push(`${d}: tot_pages ${d.totPages} but owns ${n} frames`);
      for (const [gfn, e] of d.p2m) {
        if (e.type !== "ram_rw" && e.type !== "ram_ro") continue;
        if (this.frames.ownerOf(e.mfn) !== d.id) problems.push(`${d}: gfn ${hex(gfn)} maps mfn ${hex(e.mfn)} it does not own`);
        if (d.directMapped && gfn !== e.mfn) problems.push(`${d}: direct-mapped but gfn ${hex(gfn)} maps mfn ${hex(e.mfn)}`);
        if (problems.length > 20) return problems;
      }
    }
    for (const [k, n] of counts)
      if (k >= 0 && !this.domainsById.has(k)) problems.push(`${n} frames owned by d${k}, which does not exist`);
    const anon = counts.get(FRAME_ANON) ?? 0;
    if (anon !== 0) problems.push(`${anon} anonymous frames (allocated, assigned to nobody)`);
    const free = counts.get(FRAME_FREE) ?? 0;
    const reserved = counts.get(FRAME_RESERVED) ?? 0;
    if (free + owned + reserved + anon !== this.frames.totalFrames)
      problems.push(`free ${free} + owned ${owned} + reserved ${reserved} + anonymous ${anon} != total ${this.frames.totalFrames}`);
    return problems;
  }

  /** A text image of the heap and every P2M, to assert "unchanged" after an error path. */
  snapshot(): string {
    return [this.frames.fingerprint(), ...this.domains.map((d) => `${d}:${d.totPages}/${d.maxPages}:${d.p2m.snapshot()}`)].join("\n");
  }
}

/** The arm guest layout: RAM0 at 1 GiB (up to 3 GiB), the rest in RAM1 at 8 GiB. */
export function guestLayout(size: number): RamRange[] {
  const r0 = Math.min(size, GUEST_RAM0_SIZE);
  const out: RamRange[] = [{ base: GUEST_RAM0_BASE, size: r0 }];
  if (size > r0) {
    if (size - r0 > GUEST_RAM1_SIZE) throw new InvalidArgumentError(`guest RAM of ${size} bytes exceeds the arm guest layout`);
    out.push({ base: GUEST_RAM1_BASE, size: size - r0 });
  }
  return out;
}

function addRange(list: RamRange[], base: number, size: number): void {
  list.push({ base, size });
  list.sort((a, b) => a.base - b.base);
  for (let i = list.length - 1; i > 0; i--) {
    const a = list[i - 1]!;
    const b = list[i]!;
    if (a.base + a.size === b.base) {
      a.size += b.size;
      list.splice(i, 1);
    }
  }
}
