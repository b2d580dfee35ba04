// Ping-pong over one DMA_BIDIRECTIONAL mapping per device, the way a driver reuses a mailbox
// buffer: CPU writes a request, sync_for_device, the device checks it and writes a reply,
// sync_for_cpu, the CPU checks the reply. Every `rounds` exchanges the buffer is unmapped (the
// reply must survive the unmap copy-back) and mapped again with a new size.

import { DMA_BIDIRECTIONAL, DMA_MAPPING_ERROR } from "../kernel/dma-mapping.js";
import type { Engine } from "./engine.js";
import { XorShift32 } from "./rng.js";
import type { WorkloadDevice } from "./target.js";

export interface PingPongOptions {
  ops: number;
  seed: number;
  /** exchanges per mapping */
  rounds: number;
  /** see WorkloadOptions.progress */
  progress?: ((opsDone: number) => void) | undefined;
}

export function runPingPong<D extends WorkloadDevice>(e: Engine<D>, o: PingPongOptions): void {
  const r = new XorShift32(o.seed);
  const page = e.t.pageSize;
  const MAXSZ = 16384;
  const st = e.devices.map((d) => ({
    arena: e.arena(d, MAXSZ + page, 1),
    phys: 0,
    dma: DMA_MAPPING_ERROR,
    size: 0,
    left: 0,
    bounced: false,
    lastReply: 0,
  }));
  const BIDIR = DMA_BIDIRECTIONAL;

  const unmap = (dev: D, s: (typeof st)[number]): void => {
    e.t.unmap(dev, s.dma, s.size, BIDIR);
    // after unmap the CPU buffer must hold the device's last reply
    e.cpuReadCheck(dev, s.phys, s.dma, s.size, s.lastReply, s.bounced);
    s.dma = DMA_MAPPING_ERROR;
  };

  for (let op = 0; op < o.ops; op++) {
    if ((op & 1023) === 0 && o.progress !== undefined) o.progress(op);
    const di = op % e.devices.length;
    const dev = e.devices[di]!;
    const s = st[di]!;
    const ping = r.next();
    const pong = r.next();
    if (s.dma === DMA_MAPPING_ERROR) {
      s.size = r.range(64, MAXSZ);
      s.phys = s.arena.take() + (r.chance(0.5) ? r.range(0, 255) * 4 : 0);
      e.cpuFill(s.phys, s.size, ping);
      // mapping BIDIRECTIONAL copies the request into the bounce buffer
      const dma = e.map(dev, s.phys, s.size, BIDIR, op % e.t.cpus);
      if (dma === DMA_MAPPING_ERROR) continue;
      s.dma = dma;
      s.bounced = e.t.isBounced(dev, dma);
      s.left = o.rounds;
    } else {
      e.cpuFill(s.phys, s.size, ping);
      e.t.syncForDevice(dev, s.dma, s.size, BIDIR);
    }
    e.deviceReadCheck(dev, s.dma, s.size, ping, s.bounced);
    e.deviceWrite(dev, s.dma, s.size, pong);
    e.t.syncForCpu(dev, s.dma, s.size, BIDIR);
    e.cpuReadCheck(dev, s.phys, s.dma, s.size, pong, s.bounced);
    s.lastReply = pong;
    if (--s.left === 0) unmap(dev, s);
  }
  e.devices.forEach((dev, di) => {
    const s = st[di]!;
    if (s.dma !== DMA_MAPPING_ERROR) unmap(dev, s);
  });
}
