// Quick swiotlb hot-path figure: map+unmap pairs per second through Swiotlb.swiotlbMap and
// tblUnmapSingle (slot search, release and both bounce copies), 6.x, 32768 slots, 1 area.
// Run: node scripts/setup.mjs && node dist/bench/quick-swiotlb.js

import { InternalError } from "../src/errors.js";
import { EventSink, KernelLog } from "../src/events.js";
import { DMA_BIDIRECTIONAL, DMA_TO_DEVICE, type DmaDirection } from "../src/kernel/dma-mapping.js";
import { PhysicalMemory } from "../src/memory/physical-memory.js";
import type { SwiotlbDevice } from "../src/swiotlb/device.js";
import { kernelProfile } from "../src/swiotlb/profile.js";
import { Swiotlb } from "../src/swiotlb/swiotlb.js";
import { SWIOTLB_VERBOSE } from "../src/kernel/swiotlb.js";

const GiB = 2 ** 30;
const memory = new PhysicalMemory({ banks: [{ base: 0x4000_0000, size: 8 * GiB }] });
const sw = new Swiotlb(memory, kernelProfile("6.x"), new KernelLog(), new EventSink(), { possibleCpus: 1 });
sw.swiotlbInitRemap(true, SWIOTLB_VERBOSE, 0x1_0000_0000);

const dev: SwiotlbDevice = {
  name: "bench 0000:00:01.0",
  minAlignMask: 0,
  segBoundaryMask: 2 ** 64,
  dmaMask: 0xffff_ffffn,
  busDmaLimit: 0n,
  coherent: true,
  physToDma: (p) => p,
  dmaToPhys: (d) => d,
  dmaCapable: (d, s) => d + s - 1 <= 0xffff_ffff,
};

function run(size: number, dir: DmaDirection, seconds: number): number {
  const buf = 0x1_8000_0000; // above 4 GiB: a buffer that has to bounce
  memory.fill(buf, size, 0xa5);
  let n = 0;
  const t0 = process.hrtime.bigint();
  const limit = BigInt(Math.round(seconds * 1e9));
  for (;;) {
    for (let i = 0; i < 4096; i++) {
      const dma = sw.swiotlbMap(dev, buf, size, dir, 0, 0);
      sw.tblUnmapSingle(dev, dma, size, dir, 0);
    }
    n += 4096;
    if (process.hrtime.bigint() - t0 > limit) break;
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / dt;
}

const secs = Number(process.env.SECONDS ?? 1);
for (const [size, label] of [
  [64, "64 B"],
  [65536, "64 KiB"],
] as const) {
  run(size, DMA_BIDIRECTIONAL, 0.2); // warm-up
  for (const [dir, dname] of [
    [DMA_TO_DEVICE, "TO_DEVICE"],
    [DMA_BIDIRECTIONAL, "BIDIRECTIONAL"],
  ] as const) {
    const r = run(size, dir, secs);
    const mbps = (r * size * (dir === DMA_BIDIRECTIONAL ? 2 : 1)) / 2 ** 20;
    console.log(`${label.padEnd(7)} ${dname.padEnd(14)} ${(r / 1e6).toFixed(2)} M pairs/s  (${mbps.toFixed(0)} MiB/s copied)`);
  }
}
// the allocator alone (slot search + release, no copies): what the copies cost on top
{
  const pool = sw.defaultMem!.pool;
  const runPool = (seconds: number): number => {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const limit = BigInt(Math.round(seconds * 1e9));
    for (;;) {
      for (let i = 0; i < 4096; i++) pool.releaseSlots(pool.mapSlots(0, 0x1_8000_0000, 64, 0, 0, pool.start, 0), 0);
      n += 4096;
      if (process.hrtime.bigint() - t0 > limit) break;
    }
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  runPool(0.2);
  console.log(`64 B    pool only      ${(runPool(secs) / 1e6).toFixed(2)} M pairs/s  (IoTlbPool.mapSlots + releaseSlots, no bounce)`);
}
const st = sw.stats();
if (st === null || st.io_tlb_used !== 0) throw new InternalError("pool not empty after the benchmark");
