// Transparent huge pages for emulated RAM, as QEMU asks for its guest RAM (madvise
// MADV_HUGEPAGE). With 4 KiB host pages a bounce pool of 64 MiB spans 16384 TLB entries, so a
// DMA workload walking its slots takes a page walk (a two-level one under a hypervisor) every
// other 2 KiB slot; with 2 MiB pages the whole pool needs 32. Most distributions ship THP in
// "madvise" mode, where nothing is huge unless asked for. Measured on the 2-core EPYC VM: a
// 64-byte bounce pingpong walking 64 MiB, ~30-45 ns per map+unmap copy pair instead of ~36-85.
//
// The advice goes through libc's madvise via koffi (already loaded for Unicorn). Linux only;
// any failure (no koffi, no libc, THP disabled) leaves ordinary pages, which are just slower.

import { createRequire } from "node:module";
import { noteMissingHostFeature } from "../host-features.js";

type CFn = (...args: unknown[]) => unknown;
interface KoffiLite {
  load(path: string): { func(decl: string): CFn };
}

const MADV_HUGEPAGE = 14;

let calls: { addressOf: CFn; madvise: CFn } | null | undefined;

function libc(): { addressOf: CFn; madvise: CFn } | null {
  if (calls !== undefined) return calls;
  calls = null;
  if (process.platform !== "linux") return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as KoffiLite;
    const lib = koffi.load("libc.so.6");
    // memmove(p, p, 0) returns p: the address koffi passed for the view's first byte
    calls = {
      addressOf: lib.func("uintptr_t memmove(void *dst, void *src, size_t n)"),
      madvise: lib.func("int madvise(uintptr_t addr, size_t len, int advice)"),
    };
  } catch (e) {
    // no koffi or no libc.so.6: memory stays on whatever pages the host gives (same answers)
    noteMissingHostFeature("huge pages (koffi libc)", e);
    calls = null;
  }
  return calls;
}

/**
 * Asks for huge pages over `bytes` bytes from the first byte of `view` (which must start a host
 * page: a WebAssembly memory's buffer does). True when the kernel took the advice.
 */
export function adviseHugePages(view: Uint8Array, bytes: number): boolean {
  const c = libc();
  if (c === null || view.byteOffset !== 0) return false;
  try {
    const addr = Number(c.addressOf(view, view, 0));
    if (!Number.isSafeInteger(addr) || addr % 4096 !== 0) return false;
    return c.madvise(addr, bytes, MADV_HUGEPAGE) === 0;
  } catch (e) {
    // the advice is optional: the memory works on small pages too (slower)
    noteMissingHostFeature("huge pages (madvise)", e);
    return false;
  }
}
