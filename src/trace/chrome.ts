// The machine's events as Chrome trace-event JSON (the format ui.perfetto.dev and
// chrome://tracing load): one instant event per tracepoint hit, timestamps in emulated order
// (event n at n µs), one track per device (DMA API, bounce decisions, pool full, dma-debug),
// one per swiotlb area (slot map/unmap/sync, with an io_tlb_used counter), one per Xen domain
// (hypercalls) and one for guest services. Written as it goes, in blocks, so memory stays flat.

import { TraceFile } from "./trace-file.js";
import type { TraceEvent, TraceValue } from "../events.js";
import type { Machine } from "../machine/machine.js";

const PID_DEVICES = 1;
const PID_POOL = 2;
const PID_XEN = 3;
const PID_GUEST = 4;
const PID_KERNEL = 5;
const PROCESS_NAMES: [number, string][] = [
  [PID_DEVICES, "devices (DMA API)"],
  [PID_POOL, "swiotlb areas"],
  [PID_XEN, "Xen"],
  [PID_GUEST, "guest services"],
  [PID_KERNEL, "kernel"],
];

/** What a finished trace holds: events per kind (the event's name). */
export type TraceCounts = Record<string, number>;

function hexish(k: string, v: TraceValue): TraceValue {
  if (typeof v === "bigint") return "0x" + v.toString(16);
  // addresses read best in hex, as the kernel's trace output prints them
  if (typeof v === "number" && v >= 0 && Number.isInteger(v) && /addr|orig|phys|dma$|mask/.test(k)) return "0x" + v.toString(16);
  return v;
}

export class ChromeTraceWriter {
  private readonly out: TraceFile;
  private first = true;
  private ts = 0;
  private readonly tids = new Map<string, number>();
  private readonly counts: TraceCounts = {};
  private stopListening: (() => void) | null = null;
  private m: Machine | null = null;

  constructor(readonly file: string) {
    this.out = new TraceFile(file);
    this.put('{"displayTimeUnit":"ns","traceEvents":[\n');
    for (const [pid, name] of PROCESS_NAMES) this.event({ ph: "M", pid, tid: 0, name: "process_name", args: { name } });
  }

  /** Listens to the machine's events (before its boot, so the boot's hypercalls are in). */
  attach(m: Machine): void {
    this.m = m;
    this.stopListening = m.events.on((e) => this.onEvent(e));
  }

  private put(s: string): void {
    this.out.put(s);
  }

  private event(o: object): void {
    this.put((this.first ? "" : ",\n") + JSON.stringify(o));
    this.first = false;
  }

  private tid(pid: number, name: string): number {
    const key = `${pid}\u0000${name}`;
    let t = this.tids.get(key);
    if (t === undefined) {
      t = this.tids.size + 1;
      this.tids.set(key, t);
      this.event({ ph: "M", pid, tid: t, name: "thread_name", args: { name } });
    }
    return t;
  }

  /** The area track of a bounce address (default pool), or the pool's own track. */
  private areaTrack(tlb: number, pool: TraceValue | undefined): { tid: number; area: number } {
    const mem = this.m?.swiotlb.defaultMem ?? null;
    if (mem !== null && mem.pool.contains(tlb) && (pool === undefined || pool === mem.name)) {
      const p = mem.pool;
      const area = Math.min(p.nareas - 1, Math.floor(p.slotOf(tlb) / p.areaNslabs));
      return { tid: this.tid(PID_POOL, p.nareas === 1 ? "io_tlb_default_mem" : `area ${area}`), area };
    }
    return { tid: this.tid(PID_POOL, `pool ${String(pool ?? "?")}`), area: -1 };
  }

  private onEvent(e: TraceEvent): void {
    const f = e.fields;
    let pid: number;
    let tid: number;
    let args: Record<string, TraceValue> = {};
    for (const [k, v] of Object.entries(f)) args[k] = hexish(k, v);
    let counter = false;
    switch (e.name) {
      case "swiotlb_map":
      case "swiotlb_unmap":
      case "swiotlb_sync": {
        pid = PID_POOL;
        tid = this.areaTrack(Number(f["tlb_addr"]), f["pool"]).tid;
        counter = e.name !== "swiotlb_sync";
        break;
      }
      case "swiotlb_bounced": {
        // the tracepoint's fields: dev_name, dma_mask, dev_addr, size and the force state of the era
        const name = String(f["dev"]);
        const dev = this.m?.devices.find((d) => d.name === name)?.dev;
        args = { dev_name: name, dma_mask: "0x" + (dev?.dmaMaskOrNull ?? 0n).toString(16), dev_addr: hexish("dev_addr", f["dev_addr"] ?? 0), size: f["size"] ?? 0 };
        if (f["force"] !== undefined) args["swiotlb_force"] = f["force"];
        else {
          const mem = dev !== undefined ? this.m?.swiotlb.memFor(dev) : null;
          args["force"] = mem?.forceBounce === true;
        }
        pid = PID_DEVICES;
        tid = this.tid(pid, name);
        break;
      }
      case "dma_map":
      case "dma_unmap":
      case "dma_mapping_error":
      case "dma_debug":
      case "swiotlb_full":
        pid = PID_DEVICES;
        tid = this.tid(pid, String(f["device"] ?? f["dev"] ?? "?"));
        break;
      case "hypercall":
        pid = PID_XEN;
        tid = this.tid(pid, `d${String(f["domid"] ?? "?")}`);
        break;
      case "svc":
      case "mmio":
        pid = PID_GUEST;
        tid = this.tid(pid, "guest");
        break;
      default:
        pid = PID_KERNEL;
        tid = this.tid(pid, "kernel");
    }
    const ts = this.ts++;
    // instant events, thread-scoped; a hypercall is named by its op so Perfetto groups them
    const name = e.name === "hypercall" ? `hypercall ${String(f["op"])}` : e.name;
    this.event({ name, cat: e.name, ph: "i", s: "t", ts, pid, tid, args });
    this.counts[e.name] = (this.counts[e.name] ?? 0) + 1;
    if (counter) {
      const mem = this.m?.swiotlb.defaultMem ?? null;
      if (mem !== null) this.event({ name: "io_tlb_used", ph: "C", ts, pid: PID_POOL, tid: 0, args: { io_tlb_used: mem.used } });
    }
  }

  /** Stops listening, closes the JSON and the file; returns the events written per kind. */
  finish(meta: Record<string, TraceValue> = {}): TraceCounts {
    this.stopListening?.();
    this.stopListening = null;
    const other: Record<string, TraceValue> = {};
    for (const [k, v] of Object.entries(meta)) other[k] = typeof v === "bigint" ? v.toString() : v;
    this.put(`\n],"otherData":${JSON.stringify({ ...other, counts: JSON.stringify(this.counts) })}}\n`);
    this.out.close();
    return { ...this.counts };
  }
}
