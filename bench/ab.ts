// A/B of two builds of dmalab on one workload, in one process, interleaved: on a machine with
// noisy neighbours a figure drifts by tens of percent from one minute to the next, so two
// builds measured one after the other can not be compared; measured in turns of 150 ms, over
// the same minute, they can. Each build runs its own copy of the code (its own module graph),
// on its own emulated machine.
//
// Run (each tree a checkout with `npm ci && npm run build` done, e.g. a `git worktree`):
//   node dist/bench/ab.js <treeA> <treeB> [pingpong <size> | ring] [rounds]
// Prints, per tree, the median and best of the rounds in M pairs/s, and B/A of the medians.

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

interface Stepper {
  run(n: number): void;
  prefill?: () => void;
}
type StepperClass = new (sw: unknown, dev: unknown, sizeOrCpu: number, cpuOrPass: number | boolean, passOrOrig: boolean | number, orig?: number) => Stepper;
interface Tree {
  name: string;
  st: Stepper;
  rates: number[];
}

function usage(msg: string): never {
  process.stderr.write(`ab: ${msg}\nusage: node dist/bench/ab.js <treeA> <treeB> [pingpong <size> | ring] [rounds]\n`);
  process.exit(2);
}

async function load(tree: string, workload: string, size: number): Promise<Stepper> {
  const base = pathToFileURL(resolve(tree, "dist", "src", "bench")).href;
  const setup = (await import(`${base}/setup.js`)) as {
    buildBenchMachine(c: object): { swiotlb: unknown };
    workloadDevice(): unknown;
    /** builds that take the originals from free RAM have it; older ones put them at 0x4000_0000 */
    workloadOriginals?: (m: { swiotlb: unknown }) => number;
  };
  const w = (await import(`${base}/workloads.js`)) as { Pingpong: StepperClass; Ring: StepperClass };
  const m = setup.buildBenchMachine({ machine: "qemu-virt-8g", kernel: "6.x", mode: "workload" });
  const dev = setup.workloadDevice();
  // older builds: the originals at 0x4000_0000 by default (and the ring's fifth argument is its seed)
  const orig = setup.workloadOriginals?.(m);
  if (workload === "ring") {
    const r = orig === undefined ? new w.Ring(m.swiotlb, dev, 0, false, 1) : new w.Ring(m.swiotlb, dev, 0, false, orig);
    r.prefill?.();
    return r;
  }
  return new w.Pingpong(m.swiotlb, dev, size, 0, false, orig ?? 0x4000_0000);
}

const args = process.argv.slice(2);
if (args.length < 2) usage("two trees are needed");
const workload = args[2] ?? "pingpong";
if (workload !== "pingpong" && workload !== "ring") usage(`workload '${workload}': pingpong or ring`);
const size = workload === "pingpong" ? Number(args[3] ?? 64) : 0;
if (workload === "pingpong" && !(Number.isInteger(size) && size > 0 && size <= 262144)) usage(`size '${args[3]}': 1..262144`);
const roundsArg = workload === "pingpong" ? args[4] : args[3];
const rounds = Number(roundsArg ?? 12);
if (!(Number.isInteger(rounds) && rounds >= 3 && rounds <= 1000)) usage(`rounds '${roundsArg}': 3..1000`);

const trees: Tree[] = [];
for (const t of args.slice(0, 2)) {
  let st: Stepper;
  try {
    st = await load(t, workload, size);
  } catch (e) {
    usage(`tree '${t}': ${e instanceof Error ? e.message.split("\n")[0] : String(e)} (built with npm run build?)`);
  }
  // untimed warm-up, in short calls so that V8 optimizes run() as a whole
  for (let i = 0; i < 1000; i++) st.run(20);
  trees.push({ name: t, st, rates: [] });
}
for (let r = 0; r < rounds; r++)
  for (const t of trees) {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 150) {
      t.st.run(1024);
      n += 1024;
    }
    t.rates.push(n / (performance.now() - t0) / 1e3);
  }
const med = (x: number[]): number => [...x].sort((a, b) => a - b)[x.length >> 1]!;
for (const t of trees)
  process.stdout.write(`${t.name}: median ${med(t.rates).toFixed(3)} M pairs/s, best ${Math.max(...t.rates).toFixed(3)}\n`);
process.stdout.write(`B/A (medians): ${(med(trees[1]!.rates) / med(trees[0]!.rates)).toFixed(3)}x\n`);
