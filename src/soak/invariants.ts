// The soak's whole-machine checks (the per-operation ones live beside each operation in
// machine.ts): every pool slot against the model's owners, the free-run `list` the kernel would
// hold against a recount from those owners, the areas' used counts, both views of every live
// mapping, every free buffer, dma-debug silent, Xen's heap and P2Ms, and at the end the drain
// back to the state after the boot.

import { IO_TLB_SEGSIZE } from "../kernel/swiotlb.js";
import type { IoTlbPool } from "../swiotlb/pool.js";
import { SoakViolation, type SoakMachine } from "./machine.js";
import { BUF_SIZE } from "./ops.js";

/** io_tlb_slot.list recounted from which slots the model says are held */
function listFromOwners(p: IoTlbPool, owner: Int32Array): Uint16Array {
  const n = p.nslabs;
  const out = new Uint16Array(n);
  for (let i = n - 1; i >= 0; i--) {
    if (owner[i] !== -1) out[i] = 0;
    else if ((i & (IO_TLB_SEGSIZE - 1)) === IO_TLB_SEGSIZE - 1) out[i] = 1;
    else if (i === n - 1) out[i] = p.listClippedTail ? 1 : IO_TLB_SEGSIZE - (i & (IO_TLB_SEGSIZE - 1));
    else out[i] = out[i + 1] === 0 ? 1 : out[i + 1]! + 1;
  }
  return out;
}

export function checkPools(sm: SoakMachine): void {
  for (const p of sm.pools) {
    sm.checks++;
    const owner = sm.model.slotOwner.get(p)!;
    const perArea = new Array<number>(p.nareas).fill(0);
    for (let i = 0; i < p.nslabs; i++) {
      const set = (p.busy[i >>> 5]! & (1 << (i & 31))) !== 0;
      if (set !== (owner[i] !== -1))
        throw new SoakViolation("slots", `pool at ${p.start.toString(16)}: slot ${i} is ${set ? "allocated" : "free"} but the model says ${owner[i] !== -1 ? `mapping ${owner[i]} holds it` : "free"}`);
      if (set) perArea[p.is513 ? 0 : Math.floor(i / p.areaNslabs)]!++;
    }
    for (let a = 0; a < p.nareas; a++)
      if (p.areaUsedOf(a) !== perArea[a]) throw new SoakViolation("areas", `pool at ${p.start.toString(16)}: area ${a} says used ${p.areaUsedOf(a)}, its slots recount to ${perArea[a]}`);
    const want = listFromOwners(p, owner);
    const got = p.listSnapshot();
    for (let i = 0; i < p.nslabs; i++)
      if (got[i] !== want[i]) throw new SoakViolation("free-runs", `pool at ${p.start.toString(16)}: list[${i}] is ${got[i]}, a recount gives ${want[i]}`);
  }
  sm.checkCounters();
}

/** Everything: pools, every mapping's two views, every buffer, dma-debug, Xen. */
export function checkAll(sm: SoakMachine): void {
  checkPools(sm);
  for (const [id, mp] of sm.model.live) sm.checkMapping(id, mp);
  for (let b = 0; b < sm.model.nbufs; b++) sm.checkCpu(b, 0, BUF_SIZE, "buffer");
  const dbg = sm.m.api.debug;
  if (dbg !== null && dbg.errorCount > 0) throw new SoakViolation("dma-debug", `dma-debug reported: ${dbg.errors[0]!.message.split("\n")[0]!}`);
  if (sm.hv !== null) {
    sm.checks++;
    const problems = sm.hv.check();
    if (problems.length > 0) throw new SoakViolation("xen", `Xen's heap and P2Ms: ${problems[0]!}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`);
    sm.checkBalloon("check");
  }
}

/** After the drain: no slot, counter, debug entry or frame is still out. */
export function checkDrained(sm: SoakMachine): void {
  checkAll(sm);
  for (const p of sm.pools) {
    if (p.used !== 0 || p.counters[0] !== 0) throw new SoakViolation("drain", `pool at ${p.start.toString(16)}: ${p.used} slots still used after everything was unmapped`);
    if (p.mapped.some((x) => x !== 0)) throw new SoakViolation("drain", `pool at ${p.start.toString(16)}: a mapping start is still marked after everything was unmapped`);
  }
  const dbg = sm.m.api.debug;
  if (dbg !== null && dbg.entryCount() !== 0) throw new SoakViolation("drain", `dma-debug still tracks ${dbg.entryCount()} mappings`);
  if (sm.hv !== null) {
    if (sm.hv.frames.freeFrames !== sm.initialFree) throw new SoakViolation("drain", `Xen has ${sm.hv.frames.freeFrames} free frames, ${sm.initialFree} at the start`);
    if (sm.domain!.totPages !== sm.initialTotPages) throw new SoakViolation("drain", `the domain holds ${sm.domain!.totPages} pages, ${sm.initialTotPages} at the start`);
    // a direct-mapped domain gets its own frames back: the heap and P2Ms are as they were
    if (sm.domain!.directMapped && sm.hv.snapshot() !== sm.initialXen) throw new SoakViolation("drain", "Xen's heap or a P2M differs from the start after every page came back");
  }
}
