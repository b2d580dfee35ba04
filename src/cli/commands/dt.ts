// `dmalab dt FILE.dtb`: what dmalab's machine model takes from a device tree blob — RAM
// banks, reserved memory, restricted DMA pools, every memory-mapped device's dma_range_map,
// bus_dma_limit and coherence as the kernel's OF code derives them, Xen presence and the
// kernel command line. A bad blob exits 2 naming the byte offset; nothing is booted.

import type { Command } from "commander";
import { UsageError, hex } from "../../errors.js";
import { checkKernelSupport, dtJson, dtModel, machineFromModel, readDtb, type DtModel } from "../../machine/device-tree.js";
import { formatSize } from "../../machine/units.js";
import { parseMemFlag } from "../parse.js";
import { KERNEL_VERSIONS, isKernelVersion } from "../../swiotlb/profile.js";
import { out, printJson } from "../output.js";

export interface DtFlags {
  mem?: string;
  kernel?: string;
  json?: boolean;
}


function size(v: bigint): string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? formatSize(Number(v)) : hex(v);
}

export function formatDt(m: DtModel, file: string): string[] {
  const o: string[] = [];
  o.push(`${file}: ${m.model ?? "(no model)"}${m.compatible.length ? ` [${m.compatible.join(", ")}]` : ""}`);
  if (m.needsMem && !m.memGiven) o.push("memory: left to the firmware (size 0 or no memory node): give --mem SIZE to build a machine");
  for (const b of m.banks) o.push(b.size === 0n ? `memory: at ${hex(b.base)}, size 0` : `memory: [${hex(b.base)}-${hex(b.base + b.size - 1n)}] ${size(b.size)}`);
  for (const r of m.reserved) o.push(`reserved: ${r.name} [${hex(r.base)}-${hex(r.base + r.size - 1n)}] ${size(r.size)}${r.noMap ? ", no-map" : ""}`);
  for (const p of m.restrictedPools)
    o.push(`restricted-dma-pool: ${p.name} [${hex(p.base)}-${hex(p.base + p.size - 1n)}] ${size(p.size)} for ${p.devices.length ? p.devices.join(", ") : "no device"}${p.refused ? ` (${p.refused})` : ""}`);
  for (const d of m.devices) {
    const ranges = d.dmaRanges.length === 0 ? "no dma-ranges map" : d.dmaRanges.map((r) => `cpu ${hex(r.cpu)} <-> dma ${hex(r.dma)} (${size(r.size)})`).join(", ");
    o.push(`device ${d.name} (${d.path}${d.compatible[0] ? `, ${d.compatible[0]}` : ""}): ${ranges}; bus_dma_limit ${hex(d.busDmaLimit)}; ${d.coherent ? "coherent" : "non-coherent"}` +
      `${d.restrictedPool ? `; swiotlb pool ${d.restrictedPool}` : ""}${d.behindIommu ? "; behind an IOMMU" : ""}${d.isBus ? "; bus" : ""}`);
  }
  o.push(`xen: ${m.xen ? `yes (/hypervisor is xen,xen${m.xenVersion ? `, Xen ${m.xenVersion}` : ""}): a Xen guest, dom0 unless --xen says otherwise` : "no"}`);
  o.push(`bootargs: ${m.bootargs === null ? "(none)" : JSON.stringify(m.bootargs)}${m.swiotlb !== null ? ` -> swiotlb=${m.swiotlb}` : ""}`);
  o.push(`dma engine: registers at ${hex(m.dmaEngine)} (a free 4 KiB page)`);
  for (const n of m.notes) o.push(`note: ${n}`);
  return o;
}

export function registerDt(program: Command): void {
  program
    .command("dt")
    .description("show what the machine model takes from a device tree blob (RAM, reserved memory, dma-ranges, pools, Xen)")
    .argument("<file>", "a flattened device tree (.dtb)")
    .option("--mem <size>", "RAM size when the firmware fills in the memory node (e.g. 1GiB, 0x4000_0000)")
    .option("--kernel <version>", `whose OF rules apply: ${KERNEL_VERSIONS.join(", ")}`, "6.x")
    .option("--json", "JSON on stdout (schema dmalab/dt@1)")
    .action((file: string, flags: DtFlags) => {
      // every argument is checked before the blob is read
      const kernel = flags.kernel ?? "6.x";
      if (!isKernelVersion(kernel)) throw new UsageError(`--kernel '${kernel}': expected one of ${KERNEL_VERSIONS.join(", ")}`);
      const opts: { mem?: number; kernel: string } = { kernel };
      if (flags.mem !== undefined) opts.mem = parseMemFlag(flags.mem);
      const m = dtModel(readDtb(file), opts, file);
      checkKernelSupport(m, kernel);
      // the machine must be buildable when the tree (and --mem) say enough
      if (!m.needsMem || m.memGiven) machineFromModel(m, "dt");
      if (flags.json) printJson(dtJson(m));
      else for (const l of formatDt(m, file)) out(l);
    });
}
