// `dmalab merge`: many soak shards' JSON documents into one campaign summary — totals, every
// violation with the shard and seed that found it, and which shards of the campaign are
// missing or present twice.

export interface ShardDoc {
  schema: "dmalab/soak@1";
  machine: string;
  kernel: string;
  xen: string;
  seed: number;
  shard?: { k: number; n: number };
  shardSeed: number;
  ops: number;
  invariantChecks: number;
  violations: { invariant: string; message: string; op: number }[];
  lostBytes: number;
  faultsInjected: Record<string, number>;
  invalidInputs: Record<string, number>;
  elapsedMs: number;
  reproFile?: string;
}

export interface MergeDoc {
  schema: "dmalab/merge@1";
  documents: number;
  configurations: string[];
  ops: number;
  invariantChecks: number;
  lostBytes: number;
  faultsInjected: Record<string, number>;
  invalidInputs: Record<string, number>;
  violations: { source: string; shard: string | null; shardSeed: number; invariant: string; message: string; op: number; reproFile: string | null }[];
  shards: { n: number | null; present: number; missing: number[]; duplicates: number[] };
  elapsedMs: { total: number; max: number };
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function mergeSoaks(docs: readonly { source: string; doc: ShardDoc }[]): MergeDoc {
  const m: MergeDoc = {
    schema: "dmalab/merge@1",
    documents: docs.length,
    configurations: [],
    ops: 0,
    invariantChecks: 0,
    lostBytes: 0,
    faultsInjected: {},
    invalidInputs: {},
    violations: [],
    shards: { n: null, present: 0, missing: [], duplicates: [] },
    elapsedMs: { total: 0, max: 0 },
  };
  const configs = new Set<string>();
  const seen = new Map<number, number>();
  const ns = new Set<number>();
  for (const { source, doc } of docs) {
    configs.add(`${doc.machine} kernel ${doc.kernel} xen ${doc.xen}`);
    m.ops += doc.ops;
    m.invariantChecks += doc.invariantChecks;
    m.lostBytes += doc.lostBytes;
    add(m.faultsInjected, doc.faultsInjected);
    add(m.invalidInputs, doc.invalidInputs);
    m.elapsedMs.total += doc.elapsedMs;
    m.elapsedMs.max = Math.max(m.elapsedMs.max, doc.elapsedMs);
    for (const v of doc.violations)
      m.violations.push({ source, shard: doc.shard ? `${doc.shard.k}/${doc.shard.n}` : null, shardSeed: doc.shardSeed, ...v, reproFile: doc.reproFile ?? null });
    if (doc.shard) {
      ns.add(doc.shard.n);
      seen.set(doc.shard.k, (seen.get(doc.shard.k) ?? 0) + 1);
    }
  }
  m.configurations = [...configs].sort();
  m.shards.present = seen.size;
  m.shards.duplicates = [...seen].filter(([, c]) => c > 1).map(([k]) => k).sort((a, b) => a - b);
  if (ns.size === 1) {
    const n = [...ns][0]!;
    m.shards.n = n;
    for (let k = 0; k < n && m.shards.missing.length < 1000; k++) if (!seen.has(k)) m.shards.missing.push(k);
  }
  return m;
}
