// Every command's --json document against its JSON Schema in schemas/ (draft 2020-12, one Ajv
// instance holding all of them so that they $ref each other by file name): each command is
// run as a user would, and the schemas themselves are checked for strictness.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020, type AnySchemaObject, type ErrorObject } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { cli, root, setUp } from "../helpers/cli.js";

const schemaDir = join(root, "schemas");

const schemaFiles = readdirSync(schemaDir).filter((f) => f.endsWith(".schema.json")).sort();
/** every schema but the shared pieces: one per document id, "boot-matrix.schema.json" ↔ "dmalab/boot-matrix@1" */
const commandFiles = schemaFiles.filter((f) => f !== "common.schema.json");
const fileOf = (id: string): string => `${id.replace(/^dmalab\//, "").replace(/@1$/, "")}.schema.json`;

const ajvWarnings: string[] = [];
const ajv = new Ajv2020({
  allErrors: true,
  // unknown keywords, formats and type-less keyword use are errors; `required` inside if/then/not
  // names properties declared beside it, which strictRequired cannot see
  strict: true,
  strictRequired: false,
  logger: { log: (...a: unknown[]) => ajvWarnings.push(a.join(" ")), warn: (...a: unknown[]) => ajvWarnings.push(a.join(" ")), error: (...a: unknown[]) => ajvWarnings.push(a.join(" ")) },
});
const schemas = new Map<string, AnySchemaObject>();
for (const f of schemaFiles) {
  const s = JSON.parse(readFileSync(join(schemaDir, f), "utf8")) as AnySchemaObject;
  schemas.set(f, s);
  ajv.addSchema(s);
}

/** The errors of validating doc against a schema file ([] when valid), printed by the failing expect. */
function errorsOf(file: string, doc: unknown): ErrorObject[] {
  const v = ajv.getSchema(file);
  if (v === undefined) throw new Error(`no schema ${file}`);
  return v(doc) ? [] : [...(v.errors ?? [])];
}

const validated = new Set<string>();

/** Validates a --json document against the schema its own `schema` field names, which must be `id`. */
function expectValid(doc: unknown, id: string): void {
  expect((doc as { schema?: unknown }).schema).toBe(id);
  const errs = errorsOf(fileOf(id), doc);
  expect(errs, `${id}: ${ajv.errorsText(errs)}\n${JSON.stringify(errs, null, 2)}`).toEqual([]);
  validated.add(fileOf(id));
}

/** Runs the command, checks its exit status, and validates its stdout. */
function runAndValidate(args: string[], id: string, status = 0): Record<string, unknown> {
  const r = cli(...args);
  expect(r.status, `dmalab ${args.join(" ")}: ${r.stderr}`).toBe(status);
  const doc = JSON.parse(r.stdout) as Record<string, unknown>;
  expectValid(doc, id);
  return doc;
}

const tmp = mkdtempSync(join(tmpdir(), "dmalab-schema-"));
// a board whose 24-bit device cannot reach RAM at 0x4000_0000: its probe fails with -EIO
const PROBE_FAILS = join(tmp, "isa-dma-virt.json");
writeFileSync(
  PROBE_FAILS,
  JSON.stringify({
    name: "isa-dma-virt",
    paBits: 44,
    granule: "4K",
    cpus: 1,
    ram: [{ name: "ram0", base: "0x4000_0000", size: "0x8000_0000" }],
    devices: [
      { name: "0000:00:01.0", driver: "isa-dma", dmaMask: 24, coherent: true },
      { name: "0000:00:02.0", driver: "nvme", dmaMask: 64, coherent: true },
    ],
  }),
);
// one undefined instruction: a guest fault
const UDF = join(tmp, "udf.bin");
writeFileSync(UDF, Buffer.alloc(4));

beforeAll(() => {
  setUp();
  expect(existsSync(join(root, "dist", "src", "cli", "commands", "run.js"))).toBe(true);
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the schema files", () => {
  it("compile in strict mode without warnings, and each $id and title names its command", () => {
    expect(commandFiles).toEqual(["bench", "boot-matrix", "boot", "dt", "fuzz-guest", "guest", "machines", "merge", "replay", "run", "soak"].map((c) => `${c}.schema.json`));
    for (const f of schemaFiles) {
      const s = schemas.get(f)!;
      expect(s.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(s.$id).toBe(f);
      expect(ajv.getSchema(f), f).toBeTypeOf("function");
    }
    expect(ajvWarnings).toEqual([]);
    for (const f of commandFiles) {
      const cmd = f.replace(/\.schema\.json$/, "");
      const id = `dmalab/${cmd}@1`;
      const s = schemas.get(f)!;
      expect(s.title, f).toMatch(new RegExp(`^dmalab ${cmd === "boot-matrix" ? "boot --matrix" : cmd} `));
      expect(s.title, f).toContain(`(${id})`);
      // every document shape in the file pins `schema` to this id and to no other
      const consts = new Set<unknown>();
      const walk = (n: unknown): void => {
        if (Array.isArray(n)) n.forEach(walk);
        else if (n !== null && typeof n === "object") {
          const o = n as Record<string, unknown>;
          const p = o.properties as Record<string, { const?: unknown }> | undefined;
          if (p?.schema !== undefined) consts.add(p.schema.const);
          Object.values(o).forEach(walk);
        }
      };
      walk(s);
      expect([...consts], f).toEqual([id]);
    }
  });
});

describe("dmalab run / demo --json (dmalab/run@1)", () => {
  it("demo --ops 200", () => {
    runAndValidate(["demo", "--ops", "200", "--json"], "dmalab/run@1");
  });
  it("run --dma-debug=strict: a clean workload reports nothing", () => {
    expect(runAndValidate(["run", "--ops", "200", "--dma-debug=strict", "--json"], "dmalab/run@1").dmaDebug).toEqual({ mode: "strict", errorCount: 0, reports: [] });
  });
  it("run as a Xen dom0 (swiotlb-xen)", () => {
    const doc = runAndValidate(["run", "--machine", "rpi4-8g", "--kernel", "5.13", "--xen", "dom0", "--ops", "200", "--json"], "dmalab/run@1");
    expect(doc.xen).toBe("dom0");
  });
  it("run --workload coherent (descriptor rings from dma_alloc_coherent)", () => {
    const doc = runAndValidate(["run", "--machine", "rpi4-8g", "--workload", "coherent", "--ops", "200", "--json"], "dmalab/run@1");
    expect(doc.workload).toBe("coherent");
    expect(doc.corruptBytes).toBe(0);
  });
  it("a boot that faulted: exit 3, the boot's account and one fault object", () => {
    const doc = runAndValidate(["run", "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0", "--json"], "dmalab/run@1", 3);
    expect(Object.keys(doc).sort()).toEqual(["boot", "fault", "kernel", "kernelLog", "machine", "schema", "warnings", "xen"]);
  });
});

describe("dmalab boot --json (dmalab/boot@1, dmalab/boot-matrix@1)", () => {
  it("ok, natively", () => {
    const doc = runAndValidate(["boot", "--json"], "dmalab/boot@1");
    expect(doc.outcome).toBe("ok");
    expect(doc).not.toHaveProperty("xenInfo");
  });
  it("a fault as dom0 (fault.oops and xenInfo)", () => {
    const doc = runAndValidate(["boot", "--xen", "dom0", "--kernel", "5.13-rc1", "--machine", "qemu-virt-2g", "--json"], "dmalab/boot@1", 3);
    expect(doc.outcome).toBe("fault");
    expect(doc.fault).toHaveProperty("oops");
    expect(doc).toHaveProperty("xenInfo");
  });
  it("ok as a domU (xenInfo without xen_swiotlb_init)", () => {
    const doc = runAndValidate(["boot", "--xen", "domU", "--json"], "dmalab/boot@1");
    expect(doc.xenInfo).not.toHaveProperty("xen_swiotlb_init");
  });
  it("a failed probe (error and errno on the device)", () => {
    const doc = runAndValidate(["boot", "--machine", PROBE_FAILS, "--json"], "dmalab/boot@1", 3);
    expect(doc.outcome).toBe("probe-failed");
    expect(doc.devices).toContainEqual(expect.objectContaining({ probed: false, error: -5, errno: "EIO" }));
  });
  it("--matrix narrowed to 6.x, no Xen", () => {
    runAndValidate(["boot", "--matrix", "--kernel", "6.x", "--xen", "none", "--json"], "dmalab/boot-matrix@1");
  });
  it("--matrix rows that faulted carry the fault's message", () => {
    const doc = runAndValidate(["boot", "--matrix", "--kernel", "5.13-rc1", "--xen", "dom0", "--json"], "dmalab/boot-matrix@1");
    expect((doc.rows as { outcome: string }[]).some((r) => r.outcome === "fault")).toBe(true);
  });
});

describe.skipIf(!unicornAvailable())("dmalab guest --json (dmalab/guest@1)", () => {
  it("xen-errors as dom0: errors as unsigned hex with their errno", () => {
    const doc = runAndValidate(["guest", "xen-errors", "--xen", "dom0", "--json"], "dmalab/guest@1");
    expect(doc.hypercalls).toContainEqual(expect.objectContaining({ ret: "0xffffffffffffffda", errno: "ENOSYS" }));
  });
  it("dma-ring", () => {
    runAndValidate(["guest", "dma-ring", "--json"], "dmalab/guest@1");
  });
  it("dma-buggy with --dma-debug: dmaDebug's reports", () => {
    const doc = runAndValidate(["guest", "dma-buggy", "--dma-debug", "--json"], "dmalab/guest@1");
    expect((doc.dmaDebug as { errorCount: number }).errorCount).toBeGreaterThan(0);
  });
  it("a guest fault (exit 3) and the instruction limit (exit 4)", () => {
    expect(runAndValidate(["guest", UDF, "--json"], "dmalab/guest@1", 3).exit).toMatchObject({ reason: "fault", kind: "undefined-instruction", insn: "0x00000000" });
    expect(runAndValidate(["guest", "dma-ring", "--max-insns", "10", "--json"], "dmalab/guest@1", 4).exit).toEqual({ reason: "limit", limit: "insns" });
  });
  it("--log-calls: every call kept; a boot that faults: one document without registers (exit 3)", () => {
    const all = runAndValidate(["guest", "xen-errors", "--xen", "dom0", "--log-calls", "--json"], "dmalab/guest@1");
    expect(all.calls).toMatchObject({ logged: "all", dropped: 0 });
    const boot = runAndValidate(["guest", "dma-ring", "--machine", "rpi4-1g", "--kernel", "5.13-rc1", "--xen", "dom0", "--json"], "dmalab/guest@1", 3);
    expect(boot.exit).toMatchObject({ reason: "fault", kind: "boot" });
    expect(boot.regs).toBeUndefined();
  });
  it("an ELF program with --trace-insns: the trace with symbols", () => {
    const doc = runAndValidate(["guest", "hello", "--trace-insns", "3", "--json"], "dmalab/guest@1");
    expect(doc.trace).toHaveLength(3);
    expect((doc.trace as { symbol?: string }[])[2]!.symbol).toMatch(/^_start\+0x/);
  });
});

describe("dmalab bench --json (dmalab/bench@1)", () => {
  it.skipIf(!unicornAvailable())("--workload guest: trap costs from guest loops", () => {
    const doc = runAndValidate(["bench", "--workload", "guest", "--machine", "qemu-virt-2g", "--json"], "dmalab/bench@1");
    expect(doc).toMatchObject({ workload: "guest", xen: "dom0", goals: { hypercall: 1500, dmaMapUnmap: 3000 } });
    expect((doc.hypercall as { insnEquivalents: number }).insnEquivalents).toBeGreaterThan(0);
  }, 300_000);
  it("the kernel's dma_map_benchmark", () => {
    expect(runAndValidate(["bench", "-s", "1", "-b", "64", "--json"], "dmalab/bench@1").tool).toBe("dma_map_benchmark");
  });
  it("the kernel's dma_map_benchmark under --dma-debug", () => {
    expect(runAndValidate(["bench", "-s", "1", "--dma-debug", "--json"], "dmalab/bench@1").dmaDebug).toEqual({ mode: "report", errorCount: 0, reports: [] });
  });
  it("one workload: ring, and pingpong", () => {
    runAndValidate(["bench", "--workload", "ring", "-s", "1", "--json"], "dmalab/bench@1");
    runAndValidate(["bench", "--workload", "pingpong", "--size", "64", "-s", "1", "--json"], "dmalab/bench@1");
  });
  it("newer kernels' tool with -m (map_mode), and a workload with --compare (its rows)", () => {
    expect(runAndValidate(["bench", "-s", "1", "-m", "1", "-g", "2", "--json"], "dmalab/bench@1").map_mode).toBe(1);
    const c = runAndValidate(["bench", "--workload", "pingpong", "--size", "100", "-s", "1", "--compare", join(root, "bench", "baseline.json"), "--json"], "dmalab/bench@1");
    expect((c.compare as { verdict: string }[])[0]!.verdict).toBe("not in baseline");
  });
  it("the suite's summary (too slow to run here): bench/baseline.json with the schema field --json adds", () => {
    const base = JSON.parse(readFileSync(join(root, "bench", "baseline.json"), "utf8")) as Record<string, unknown>;
    expect(base.dmalab).toBe("bench-suite");
    expectValid({ schema: "dmalab/bench@1", ...base }, "dmalab/bench@1");
  });
});

describe("dmalab soak and merge --json (dmalab/soak@1, dmalab/merge@1)", () => {
  it("a soak shard with injected faults, and merge of two shards", () => {
    const a = join(tmp, "soak-0.json");
    const b = join(tmp, "soak-1.json");
    for (const [k, f] of [[0, a], [1, b]] as const) {
      const doc = runAndValidate(["soak", "--ops", "600", "--shard", `${k}/3`, "--inject", "pool-full@0.1,device-error@0.1", "--json"], "dmalab/soak@1");
      writeFileSync(f, JSON.stringify(doc));
    }
    const m = runAndValidate(["merge", a, b, "--json"], "dmalab/merge@1");
    expect(m).toMatchObject({ documents: 2, ops: 1200, lostBytes: 0, violations: [], shards: { n: 3, present: 2, missing: [2], duplicates: [] } });
  });
  it("a self-test document", () => {
    const doc = runAndValidate(["soak", "--self-test", "--ops", "3000", "--json"], "dmalab/soak@1");
    expect(doc.selfTest).toMatchObject({ planted: 7, caught: 7 });
  });
});

describe("dmalab replay, machines, dt --json", () => {
  it("replay: slots and offsets, and full", () => {
    runAndValidate(["replay", join("test", "fixtures", "samples", "kernel", "align-6x.trace"), "--json"], "dmalab/replay@1");
    const doc = runAndValidate(["replay", join("test", "fixtures", "samples", "kernel", "full-6x.trace"), "--json"], "dmalab/replay@1");
    expect(doc.maps).toContainEqual(expect.objectContaining({ full: true }));
  });
  it("machines", () => {
    runAndValidate(["machines", "--json"], "dmalab/machines@1");
  });
  it("fuzz-guest: one shard, and a failure (host memory past a 64 MiB cap)", () => {
    runAndValidate(["fuzz-guest", "--programs", "4", "--shard", "1/2", "--json"], "dmalab/fuzz-guest@1");
    const doc = runAndValidate(["fuzz-guest", "--programs", "1", "--xen", "dom0", "--max-rss", "64", "--json"], "dmalab/fuzz-guest@1", 3);
    expect(doc.failures).toEqual([expect.objectContaining({ kind: "memory", config: expect.objectContaining({ xen: "dom0" }) })]);
  });
  const dtbs = readdirSync(join(root, "fixtures", "dt")).filter((f) => f.endsWith(".dtb") && !["corrupt.dtb", "truncated.dtb"].includes(f));
  it.each(dtbs)("dt %s", (f) => {
    runAndValidate(["dt", join("fixtures", "dt", f), "--json"], "dmalab/dt@1");
  });
});

describe("the schemas are strict", () => {
  const sample = (args: string[]) => JSON.parse(cli(...args).stdout) as Record<string, unknown>;
  let boot: Record<string, unknown>;
  let run: Record<string, unknown>;
  beforeAll(() => {
    boot = sample(["boot", "--json"]);
    run = sample(["demo", "--ops", "50", "--json"]);
  });
  const edit = <T>(doc: T, f: (d: T) => void): T => {
    const d = structuredClone(doc);
    f(d);
    return d;
  };
  const rejects = (file: string, doc: unknown): string => {
    const errs = errorsOf(file, doc);
    expect(errs.length, "expected the document to be rejected").toBeGreaterThan(0);
    return ajv.errorsText(errs);
  };

  it("an unknown top-level key", () => {
    expect(errorsOf("boot.schema.json", boot)).toEqual([]);
    expect(rejects("boot.schema.json", { ...boot, extra: 1 })).toMatch(/additional properties/);
    expect(rejects("run.schema.json", { ...run, extra: 1 })).toMatch(/additional properties/);
  });
  it("an unknown nested key, a missing key, a wrong schema id", () => {
    rejects("boot.schema.json", edit(boot, (d) => ((d.zones as Record<string, unknown>).zoneDmaBits = 32)));
    rejects("boot.schema.json", edit(boot, (d) => delete d.kernelLog));
    rejects("boot.schema.json", { ...boot, schema: "dmalab/boot@2" });
    rejects("run.schema.json", { ...boot, schema: "dmalab/run@1" });
  });
  it("an address as a number, or as upper-case or prefix-less hex", () => {
    for (const v of [0x240000, "0x24000G", "0X240000", "240000"]) rejects("boot.schema.json", edit(boot, (d) => ((d.zones as Record<string, unknown>).max_pfn = v)));
  });
  it("fault and outcome go together; xenInfo and xen too; enums hold", () => {
    rejects("boot.schema.json", { ...boot, outcome: "fault" });
    rejects("boot.schema.json", { ...boot, fault: { message: "x", callChain: [], causes: [], lines: [] } });
    rejects("boot.schema.json", { ...boot, xen: "dom0" });
    rejects("boot.schema.json", { ...boot, kernel: "4.19" });
    rejects("run.schema.json", edit(run, (d) => ((d.boot as Record<string, unknown>).outcome = "fault")));
  });
  it("the suite summary without its schema field", () => {
    rejects("bench.schema.json", JSON.parse(readFileSync(join(root, "bench", "baseline.json"), "utf8")));
  });
  it("every command schema was exercised above", () => {
    const expected = commandFiles.filter((f) => unicornAvailable() || f !== "guest.schema.json");
    expect([...validated].sort()).toEqual(expected);
  });
});
