// A run's swiotlb requests on the default pool in `dmalab replay`'s format (swiotlb/replay.ts):
// the header, then every map (the cpu, original address, size and masks the allocator was
// given, including those it refused as full) and every unmap, in order. Replaying the file
// drives the same allocator code from an empty pool, so it reproduces the run's slots when the
// run's pool looks like the replay's (4 KiB pages, a start aligned like the replay's, no segment boundary):
// anything else is said in a `#` line at the top and in the returned warnings.
// Each map line is followed by "# => <id> <slot> <tlb_offset>" (or "# => <id> full"): what the
// run got, so `dmalab replay FILE` can be diffed against it.

import { TraceFile } from "./trace-file.js";
import type { TraceEvent } from "../events.js";
import { hex } from "../errors.js";
import { IO_TLB_SIZE } from "../kernel/swiotlb.js";
import type { Machine } from "../machine/machine.js";
import type { IoTlbMem } from "../swiotlb/swiotlb.js";

const REPLAY_PAGE = 4096;

export class ReplayTraceWriter {
  private readonly out: TraceFile;
  private mem: IoTlbMem | null = null;
  private m: Machine | null = null;
  private nextId = 0;
  private readonly live = new Map<number, number>();
  private stopListening: (() => void) | null = null;
  readonly warnings: string[] = [];
  maps = 0;
  full = 0;
  unmaps = 0;

  constructor(readonly file: string) {
    this.out = new TraceFile(file);
  }

  attach(m: Machine): void {
    this.m = m;
    this.stopListening = m.events.on((e) => this.onEvent(e));
  }

  /** After the boot: writes the header of the default pool (requests before it are the boot's). */
  start(): void {
    const m = this.m!;
    const mem = m.swiotlb.defaultMem;
    if (mem === null) {
      this.warnings.push("--trace-format replay: the machine has no default swiotlb pool; the trace holds no requests");
      this.put("# no default swiotlb pool: nothing to replay\n");
      return;
    }
    this.mem = mem;
    const p = mem.pool;
    const why: string[] = [];
    if (p.pageSize !== REPLAY_PAGE) why.push(`the kernel's pages are ${p.pageSize / 1024} KiB (replays use 4 KiB)`);
    // the search compares slot addresses with the original under the devices' min_align_mask
    // and page alignment: the replay's pool (2 MiB-aligned) matches the run's when the run's is
    // aligned to the largest of them, in physical and in every device's DMA view
    let need = REPLAY_PAGE;
    for (const d of m.devices) need = Math.max(need, 2 ** Math.ceil(Math.log2((d.dev.minAlignMask >>> 0) + 1)));
    if (p.start % need !== 0) why.push(`the pool starts at ${hex(p.start)}, not ${hex(need)}-aligned`);
    for (const d of m.devices) {
      const dev = d.dev;
      if (dev.segBoundaryMask < 2 ** 53 - 1 && dev.segBoundaryMask + 1 < p.nslabs * IO_TLB_SIZE) why.push(`${d.name} has a segment boundary mask ${hex(dev.segBoundaryMask)}`);
      const at = dev.physToDma(p.start);
      if (at >= 0 && at % need !== 0) why.push(`${d.name} sees the pool at DMA address ${hex(at)}, not ${hex(need)}-aligned`);
    }
    if (mem.used !== 0 || p.areaIndexList().some((i) => i !== 0)) why.push("the boot left the pool in use (a replay starts from an empty pool)");
    this.put(`# dmalab run on machine ${m.desc.name}, kernel ${m.profile.version}: the default pool at ${hex(p.start)}\n`);
    for (const w of why) {
      this.put(`# warning: ${w}: slots may differ from the run's\n`);
      this.warnings.push(`--trace-format replay: ${w}: replayed slots may differ from the run's`);
    }
    this.put(`pool slots=${p.nslabs} areas=${p.nareas} kernel=${p.is513 ? "5.13" : "6.x"}\n`);
  }

  private put(s: string): void {
    this.out.put(s);
  }

  private request(id: number, f: TraceEvent["fields"], size: number): void {
    const p = this.mem!.pool;
    // 5.13's allocator sizes by alloc_size (the trace's size column); 6.x by the mapping size and alloc_align_mask
    const alloc = Number(f["alloc"] ?? 0);
    const sz = p.is513 ? alloc : size;
    const alignMask = p.is513 ? 0 : alloc;
    this.put(`map ${id} ${Number(f["cpu"] ?? 0)} ${hex(Number(f["orig"]))} ${sz} ${hex(Number(f["min_align_mask"] ?? 0))} ${hex(alignMask)}\n`);
  }

  private onEvent(e: TraceEvent): void {
    const mem = this.mem;
    if (mem === null) return;
    const f = e.fields;
    if (f["pool"] !== undefined && f["pool"] !== mem.name) return;
    const p = mem.pool;
    if (e.name === "swiotlb_map") {
      const tlb = Number(f["tlb_addr"]);
      if (!p.contains(tlb)) return;
      const id = this.nextId++;
      this.request(id, f, Number(f["size"]));
      const real = p.slotOf(tlb);
      const first = p.is513 ? real : real - p.padSlots[real]!;
      this.put(`# => ${id} ${first} ${hex(tlb - p.start)}\n`);
      this.live.set(tlb, id);
      this.maps++;
    } else if (e.name === "swiotlb_full") {
      const id = this.nextId++;
      this.request(id, f, Number(f["map_size"]));
      this.put(`# => ${id} full\n`);
      this.full++;
    } else if (e.name === "swiotlb_unmap") {
      const tlb = Number(f["tlb_addr"]);
      const id = this.live.get(tlb);
      if (id === undefined) return;
      this.live.delete(tlb);
      this.put(`unmap ${id}\n`);
      this.unmaps++;
    }
  }

  /** Stops listening and closes the file. */
  finish(): void {
    this.stopListening?.();
    this.stopListening = null;
    this.out.close();
  }
}
