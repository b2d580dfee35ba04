// One event sink for the whole machine, tracepoint-style: producers check `sink.active`
// before building an event, so the hot path pays one property read when nobody listens.
// Event names follow the kernel's tracepoints where one exists (swiotlb_bounced).

export type TraceValue = number | string | boolean | bigint;

export type TraceEventName =
  | "swiotlb_bounced"
  | "swiotlb_map"
  | "swiotlb_unmap"
  | "swiotlb_sync"
  | "swiotlb_full"
  | "dma_map"
  | "dma_unmap"
  | "dma_mapping_error"
  | "dma_debug"
  | "hypercall"
  | "svc"
  | "mmio"
  | "boot"
  | "warning";

export interface TraceEvent {
  readonly name: TraceEventName;
  readonly fields: Readonly<Record<string, TraceValue>>;
}

export type TraceListener = (e: TraceEvent) => void;

export class EventSink {
  private listeners: TraceListener[] = [];
  /** true when someone listens; producers test this before allocating an event */
  active = false;

  on(fn: TraceListener): () => void {
    this.listeners.push(fn);
    this.active = true;
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
      this.active = this.listeners.length > 0;
    };
  }

  emit(name: TraceEventName, fields: Record<string, TraceValue>): void {
    if (!this.active) return;
    const e: TraceEvent = { name, fields };
    for (const l of this.listeners) l(e);
  }

  /** Collects every event into an array until the returned stop function is called. */
  record(filter?: (e: TraceEvent) => boolean): { events: TraceEvent[]; stop: () => void } {
    const events: TraceEvent[] = [];
    const stop = this.on((e) => {
      if (!filter || filter(e)) events.push(e);
    });
    return { events, stop };
  }
}

/**
 * Kernel-log-like message sink (dmesg). Warnings such as "swiotlb buffer is full" land here
 * in the kernel's wording; the CLI prints them, tests read them.
 */
export class KernelLog {
  readonly lines: string[] = [];
  private readonly once = new Set<string>();
  echo: ((line: string) => void) | undefined;

  print(line: string): void {
    this.lines.push(line);
    if (this.echo) this.echo(line);
  }

  /** pr_warn_once / dev_warn_once: only the first time for this key. */
  printOnce(key: string, line: string): void {
    if (this.once.has(key)) return;
    this.once.add(key);
    this.print(line);
  }

  clear(): void {
    this.lines.length = 0;
  }
}
