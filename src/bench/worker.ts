// Worker-thread entry of a multi-threaded benchmark: builds the same machine over the main
// thread's shared RAM chunks and pool, then follows the phases the coordinator (threads.ts)
// announces through a shared control block.

import { parentPort, workerData } from "node:worker_threads";
import { KernelJob, WorkloadJob } from "./job.js";
import type { SharedState } from "./setup.js";
import { CTL_ARRIVED, CTL_PHASE, PHASE_COPY, PHASE_RUN, TIME_COPY_SHARE, TIME_RUN_END, TIME_RUN_START, arrive, waitPhase, type WorkerInit } from "./threads.js";

function localDeadline(epochMs: number): number {
  return epochMs - performance.timeOrigin;
}

function main(init: WorkerInit): void {
  const ctl = new Int32Array(init.control);
  const times = new Float64Array(init.times);
  const shared: SharedState = init.shared;
  try {
    if (init.spec.kind === "workload") {
      const job = new WorkloadJob(init.spec, shared);
      job.warmUp();
      arrive(ctl);
      waitPhase(ctl, PHASE_COPY);
      job.warmCopy(init.index, init.threads);
      arrive(ctl);
      waitPhase(ctl, PHASE_RUN);
      const { run, turns } = job.measure(localDeadline(times[TIME_RUN_START]!), localDeadline(times[TIME_RUN_END]!), times[TIME_COPY_SHARE]!);
      const { latency, heap, pairNs } = job.sample();
      job.finish();
      parentPort!.postMessage({ ok: true, result: { run, turns, latency, heapBytesPerPair: heap, log: job.m.log.lines, pairNs } });
    } else {
      const job = new KernelJob(init.spec, shared);
      job.prepare();
      arrive(ctl);
      waitPhase(ctl, PHASE_RUN);
      parentPort!.postMessage({ ok: true, result: job.run(localDeadline(times[TIME_RUN_END]!)) });
    }
  } catch (e) {
    // let the coordinator stop waiting for this thread
    Atomics.add(ctl, CTL_ARRIVED, 1 << 16);
    Atomics.notify(ctl, CTL_ARRIVED);
    Atomics.store(ctl, CTL_PHASE, Atomics.load(ctl, CTL_PHASE));
    const err = e instanceof Error ? { name: e.name, message: e.message } : { name: "Error", message: String(e) };
    parentPort!.postMessage({ ok: false, error: err });
  }
}

main(workerData as WorkerInit);
