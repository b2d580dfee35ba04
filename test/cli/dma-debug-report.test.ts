// --dma-debug from the command line and from a machine description: a buggy driver issued
// from guest code gets the kernel's reports in order, natively and as a Xen dom0; strict mode
// refuses the same calls with -EINVAL; the drivers are unbound when the program ends.
import { beforeAll, describe, expect, it } from "vitest";
import { unicornAvailable } from "../../src/cpu/unicorn.js";
import { buildMachine } from "../../src/machine/builder.js";
import { parseMachine } from "../../src/machine/preset.js";
import { cli, setUp } from "../helpers/cli.js";

interface Report {
  kind: string;
  device: string;
  message: string;
  printed: boolean;
}
interface GuestDoc {
  exit: { reason: string; code?: number };
  hypercalls: { op: string; ret: string }[];
  kernelLog: string[];
  dmaDebug: { mode: string; errorCount: number; reports: Report[] };
}

function guest(...args: string[]): GuestDoc {
  const r = cli("guest", "dma-buggy", ...args, "--json");
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as GuestDoc;
}

const P = "DMA-API: 8139too 0000:00:01.0: ";
/** what the kernel reports for fixtures/guest/dma-buggy.S, in order (buffers at RAM base + 2 MiB, identity-mapped) */
const EXPECTED: [string, string][] = [
  ["free-different-size", `${P}device driver frees DMA memory with different size [device address=0x0000000040200000] [map size=256 bytes] [unmap size=128 bytes]`],
  ["free-not-allocated", `${P}device driver tries to free DMA memory it has not allocated [device address=0x0000000040200000] [size=256 bytes]`],
  [
    "sync-different-direction",
    `${P}device driver syncs DMA memory with different direction [device address=0x0000000040201000] [size=512 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]`,
  ],
  [
    "sync-write-only-to-device",
    `${P}device driver syncs device write-only DMA memory to device [device address=0x0000000040201000] [size=512 bytes] [mapped with DMA_FROM_DEVICE] [synced with DMA_TO_DEVICE]`,
  ],
  ["sync-not-allocated", `${P}device driver tries to sync DMA memory it has not allocated [device address=0x00000000402011e0] [size=64 bytes]`],
  [
    "pending-at-unbind",
    `${P}device driver has pending DMA allocations while released from device [count=2]\n` +
      "One of leaked entries details: [device address=0x0000000040202000] [size=64 bytes] [mapped with DMA_BIDIRECTIONAL] [mapped as single]",
  ],
];

beforeAll(() => setUp(), 120_000);

describe.skipIf(!unicornAvailable())("a buggy driver in guest code under --dma-debug", () => {
  it.each([["natively", []], ["as a Xen dom0 (swiotlb-xen)", ["--xen", "dom0"]]] as const)("%s: the kernel's reports in order, the first one printed", (_n, extra) => {
    const d = guest("--dma-debug", ...extra);
    expect(d.exit).toEqual({ reason: "exit", code: 0 });
    expect(d.dmaDebug.mode).toBe("report");
    expect(d.dmaDebug.errorCount).toBe(EXPECTED.length);
    expect(d.dmaDebug.reports.map((r) => [r.kind, r.message])).toEqual(EXPECTED);
    expect(d.dmaDebug.reports.map((r) => r.printed)).toEqual([true, false, false, false, false, false]);
    // num_errors=1: the kernel log holds the first report only
    expect(d.kernelLog.filter((l) => l.startsWith("DMA-API:"))).toEqual([EXPECTED[0]![1]]);
    // report-and-continue: every service succeeded (the unmaps and syncs went on)
    expect(d.hypercalls.filter((h) => h.op.startsWith("dma_unmap") || h.op.startsWith("dma_sync")).map((h) => h.ret)).toEqual(["0x0", "0x0", "0x0", "0x0"]);
  });

  it("--dma-debug=strict: the misuse is refused with -EINVAL before anything changes; the leak is still reported", () => {
    const d = guest("--dma-debug=strict", "--xen", "dom0");
    expect(d.dmaDebug.mode).toBe("strict");
    const rets = d.hypercalls.filter((h) => h.op.startsWith("dma_unmap") || h.op.startsWith("dma_sync")).map((h) => h.ret);
    // wrong-size unmap refused, so the second unmap is the correct one
    expect(rets).toEqual(["0xffffffffffffffea", "0x0", "0xffffffffffffffea", "0xffffffffffffffea"]);
    expect(d.dmaDebug.reports.map((r) => r.kind)).toEqual(["pending-at-unbind"]);
  });

  it("without --dma-debug: no account", () => {
    const r = cli("guest", "dma-buggy", "--json");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).not.toHaveProperty("dmaDebug");
  });

  it("the text report counts the errors and shows what was printed", () => {
    const r = cli("guest", "dma-buggy", "--dma-debug");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("dma-debug (report): 6 errors reported (1 printed)");
  });
});

describe("--dma-debug values and the machine description's dmaDebug", () => {
  it("a bad value is a usage error (exit 2)", () => {
    const r = cli("run", "--dma-debug=loud");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--dma-debug/);
    expect(r.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);
  });

  it("bench --workload refuses it (the workloads do not go through the DMA API)", () => {
    const r = cli("bench", "--workload", "ring", "--dma-debug");
    expect(r.status).toBe(2);
  });

  const desc = (dmaDebug: unknown) =>
    parseMachine(
      { name: "dbg", ram: [{ name: "ram0", base: "0x4000_0000", size: "0x4000_0000" }], devices: [{ name: "0000:00:01.0", driver: "nic", dmaMask: 32 }], dmaDebug },
      "test",
    );

  it('"dmaDebug": true and "strict" in a description; the library option wins over it', () => {
    expect(buildMachine({ machine: desc(true) }).machine.api.debug?.strict).toBe(false);
    expect(buildMachine({ machine: desc("strict") }).machine.api.debug?.strict).toBe(true);
    expect(buildMachine({ machine: desc(true), dmaDebug: false }).machine.api.debug).toBeNull();
    expect(buildMachine({ machine: desc(false) }).machine.api.debug).toBeNull();
    expect(buildMachine({ dmaDebug: "strict", xen: "dom0" }).machine.api.debug?.strict).toBe(true);
    expect(() => desc("loud")).toThrow(/dmaDebug/);
  });
});
