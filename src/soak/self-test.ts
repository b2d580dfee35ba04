// `dmalab soak --self-test`: a soak that can fail. Each planted bug is a subclass of
// SoakMachine whose seam leaves the real machine's state as that bug class would leave it
// (the bug's effect, right after the step it breaks); the soak must catch every one within its
// default ops. Nothing in src/ is edited: the plants live only in these subclasses.

import type { MachineSpec } from "../machine/builder.js";
import { AREA_WORDS, CNT_TOTAL_USED } from "../swiotlb/pool.js";
import { SoakMachine } from "./machine.js";
import type { ModelMapping } from "./model.js";
import type { FaultPlan } from "./ops.js";
import { runSoak } from "./soak.js";

/** io_tlb_area.used inside an area's words (pool.ts A_USED) */
const A_USED = 1;

interface Plant {
  name: string;
  /** what the plant does, as the bug would */
  what: string;
  /** where it runs: natively, as dom0, or as a domU whose contiguous regions go through XENMEM_exchange */
  on: "native" | "dom0" | "domU-exchange";
  make: (spec: MachineSpec) => SoakMachine;
}

class ReleaseOneShort extends SoakMachine {
  protected override afterUnmap(mp: ModelMapping): void {
    // swiotlb_release_slots freeing nslots - 1: the last slot stays allocated and counted
    const seg = mp.segs.find((g) => g.pool !== null && g.nslots >= 2);
    if (seg === undefined || seg.pool === null) return;
    const p = seg.pool;
    const last = seg.slot0 + seg.nslots - 1;
    p.busy[last >>> 5] = p.busy[last >>> 5]! | (1 << (last & 31));
    const a = p.is513 ? 0 : Math.floor(last / p.areaNslabs);
    p.areas[a * AREA_WORDS + A_USED] = p.areas[a * AREA_WORDS + A_USED]! + 1;
    p.counters[CNT_TOTAL_USED] = p.counters[CNT_TOTAL_USED]! + 1;
  }
}

class SkippedCopyBack extends SoakMachine {
  private saved: Uint8Array[] = [];
  protected override unmap(id: number): boolean {
    // the unmap of a bounced FROM_DEVICE/BIDIRECTIONAL mapping forgets to copy back
    const mp = this.model.live.get(id);
    this.saved = [];
    const skip = mp !== undefined && mp.dir !== 1 && mp.segs.some((g) => g.pool !== null);
    if (skip) for (const g of mp.segs) this.saved.push(this.m.memory.read(this.bufs[g.buf]! + g.off, g.size));
    this.restore = skip ? mp : undefined;
    return super.unmap(id);
  }
  private restore: ModelMapping | undefined;
  protected override afterUnmap(mp: ModelMapping): void {
    if (this.restore !== mp) return;
    mp.segs.forEach((g, i) => this.m.memory.write(this.bufs[g.buf]! + g.off, this.saved[i]!));
  }
}

class CopyInShort extends SoakMachine {
  protected override afterMap(mp: ModelMapping): void {
    // swiotlb_bounce at map copying size - 1 bytes: the slot's last byte keeps what it held
    if (mp.dir === 2) return;
    const seg = mp.segs.find((g) => g.pool !== null && g.devView !== null);
    if (seg === undefined) return;
    const phys = this.devs[mp.dev]!.dev.dmaToPhys(seg.dma) + seg.size - 1;
    this.m.memory.write8(phys, (this.m.memory.read8(phys) ^ 0xa5) & 0xff);
  }
}

class AreaLockNotTaken extends SoakMachine {
  private n = 0;
  protected override afterMap(mp: ModelMapping): void {
    // two CPUs in one area without area->lock: one update of area->used is lost
    const seg = mp.segs.find((g) => g.pool !== null);
    if (seg === undefined || seg.pool === null || ++this.n % 5 !== 0) return;
    const p = seg.pool;
    const a = p.is513 ? 0 : Math.floor(seg.slot0 / p.areaNslabs);
    p.areas[a * AREA_WORDS + A_USED] = p.areas[a * AREA_WORDS + A_USED]! - seg.nslots;
  }
}

class P2mEntryNotRemoved extends SoakMachine {
  protected override afterDecrease(gfn: number): void {
    // guest_remove_page dropping the page but leaving its P2M entry (the self-test's dom0 is
    // direct-mapped: the entry was gfn -> mfn == gfn)
    this.domain!.p2m.insert(gfn, gfn, 1, "ram_rw");
  }
}

class PopulateFrameTwice extends SoakMachine {
  protected override afterPopulate(gfn: number): void {
    // the frame handed back is also handed out again at another of the domain's pages
    const d = this.domain!;
    const e = d.p2m.lookup(gfn);
    const other = this.balloon.find((g) => g !== gfn && this.ballooned.has(g));
    if (e === undefined || other === undefined) return;
    d.p2m.insert(other, e.mfn, 1, "ram_rw");
    this.ballooned.delete(other);
  }
}

class ExchangeFrameTwice extends SoakMachine {
  protected override afterExchange(gfn: number, gfn2: number): void {
    // XENMEM_exchange returning the extent's first frame for both pages of the region
    const d = this.domain!;
    const e = d.p2m.lookup(gfn);
    if (e === undefined) return;
    d.p2m.remove(gfn2);
    d.p2m.insert(gfn2, e.mfn, 1, "ram_rw");
  }
}

export const PLANTS: readonly Plant[] = [
  { name: "release-one-slot-short", what: "swiotlb_release_slots frees one slot fewer than it took", on: "native", make: (s) => new ReleaseOneShort(s) },
  { name: "skipped-copy-back", what: "unmap of a bounced FROM_DEVICE/BIDIRECTIONAL mapping skips the copy back", on: "native", make: (s) => new SkippedCopyBack(s) },
  { name: "copy-in-size-minus-1", what: "the bounce at map copies size - 1 bytes", on: "native", make: (s) => new CopyInShort(s) },
  { name: "area-lock-not-taken", what: "an area's used count loses an update (area->lock not taken)", on: "native", make: (s) => new AreaLockNotTaken(s) },
  { name: "p2m-entry-not-removed", what: "decrease_reservation leaves the page's P2M entry", on: "dom0", make: (s) => new P2mEntryNotRemoved(s) },
  { name: "populate-frame-twice", what: "a frame handed back by populate_physmap is handed out at a second page too", on: "dom0", make: (s) => new PopulateFrameTwice(s) },
  { name: "exchange-frame-twice", what: "XENMEM_exchange returns one frame for two pages", on: "domU-exchange", make: (s) => new ExchangeFrameTwice(s) },
];

export interface SelfTestRow {
  bug: string;
  what: string;
  caught: boolean;
  /** the op after which the soak stopped, -1 at the drain */
  atOp: number | null;
  invariant: string | null;
  message: string | null;
  /** length of the shrunk reproduction */
  reproOps: number | null;
}

export type SelfTestSpecs = Record<Plant["on"], MachineSpec>;

/** Plants every bug in turn, each on its kind of machine, and soaks `ops` operations. */
export function selfTest(specs: SelfTestSpecs, ops: number, seed: number, plan: FaultPlan): SelfTestRow[] {
  return PLANTS.map((p) => {
    const r = runSoak({ spec: specs[p.on], ops, seed, plan, make: p.make, shrinkBudgetMs: 5000 });
    const v = r.violations[0];
    return {
      bug: p.name,
      what: p.what,
      caught: v !== undefined,
      atOp: v?.op ?? null,
      invariant: v?.invariant ?? null,
      message: v?.message ?? null,
      reproOps: r.repro?.ops.length ?? null,
    };
  });
}
