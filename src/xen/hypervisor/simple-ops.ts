// The small hypercalls a Linux guest issues at boot: sched_op (yield/block/shutdown),
// console_io (write; read answers an empty ring), vm_assist (arm allows only
// runstate_update_flag) and grant_table_op's cache_flush (the one grant op Linux/arm probes in
// xen_mm_init). The other grant ops are not modelled: they answer -ENOSYS.

import type { Domain } from "./domain.js";
import { FRAME_ANON, FRAME_FREE, FRAME_NOT_RAM, FRAME_RESERVED } from "./frame-allocator.js";
import type { GuestMemory } from "./guest-memory.js";
import type { XenHypervisor } from "./hypervisor.js";
import {
  CONSOLEIO,
  GNTTABOP,
  GNTTABOP_CONTINUATION_ARG_SHIFT,
  GNTTAB_CACHE_CLEAN,
  GNTTAB_CACHE_FLUSH_SIZE,
  GNTTAB_CACHE_INVAL,
  SCHEDOP,
  VMASST_CMD_disable,
  VMASST_CMD_enable,
  VMASST_TYPE_runstate_update_flag,
  XEN_ERRNO,
  XEN_PAGE_SIZE,
} from "./public.js";

const err = (e: keyof typeof XEN_ERRNO): bigint => -BigInt(XEN_ERRNO[e]);
const u32 = (v: bigint): number => Number(v & 0xffff_ffffn);
const i32 = (v: bigint): number => Number(BigInt.asIntN(32, v));

export function doSchedOp(caller: Domain, guest: GuestMemory, cmd: bigint, arg: bigint): bigint {
  switch (i32(cmd)) {
    case SCHEDOP.yield:
    case SCHEDOP.block:
      return 0n;
    case SCHEDOP.shutdown: {
      // struct sched_shutdown { unsigned int reason; }
      const b = guest.tryRead(arg, 4);
      if (b === undefined) return err("EFAULT");
      caller.shutdownReason = b[0]!; // domain_shutdown takes the reason as a u8
      return 0n;
    }
    default:
      return err("ENOSYS");
  }
}

/** console_io: dummy XSM lets a domU write only in debug builds (CONFIG_VERBOSE_DEBUG). */
export function doConsoleIo(hv: XenHypervisor, caller: Domain, guest: GuestMemory, cmd: bigint, count: bigint, buf: bigint): bigint {
  const c = u32(cmd);
  const n = u32(count);
  if (!caller.isControl && !(c === CONSOLEIO.write && hv.debugBuild)) return err("EPERM");
  switch (c) {
    case CONSOLEIO.write: {
      // copied in 128-byte pieces: what precedes a bad page is printed. Past the console's
      // cap the bytes are only counted, a page at a time (each page still must be readable).
      let done = 0;
      let room = true;
      while (done < n && room) {
        const k = Math.min(128, n - done);
        const b = guest.tryRead(buf + BigInt(done), k);
        if (b === undefined) return err("EFAULT");
        room = hv.consoleWrite(caller, b);
        done += k;
      }
      const start = buf + BigInt(done);
      while (done < n) {
        const at = buf + BigInt(done);
        const k = Math.min(n - done, XEN_PAGE_SIZE - Number(at % BigInt(XEN_PAGE_SIZE)));
        if (at > BigInt(Number.MAX_SAFE_INTEGER) || guest.translate(Number(at), false) === undefined) {
          hv.consoleDropped(caller, Number(at - start));
          return err("EFAULT");
        }
        done += k;
      }
      hv.consoleDropped(caller, Number(buf + BigInt(done) - start));
      return 0n;
    }
    case CONSOLEIO.read:
      if (n > 0x7fff_ffff) return err("E2BIG");
      return 0n;
    default:
      return err("ENOSYS");
  }
}

export function doVmAssist(caller: Domain, cmd: bigint, type: bigint): bigint {
  const t = u32(type);
  if (t >= 64 || t !== VMASST_TYPE_runstate_update_flag) return err("EINVAL");
  switch (u32(cmd)) {
    case VMASST_CMD_enable:
      caller.vmAssist |= 1 << t;
      return 0n;
    case VMASST_CMD_disable:
      caller.vmAssist &= ~(1 << t);
      return 0n;
    default:
      return err("ENOSYS");
  }
}

export function doGrantTableOp(hv: XenHypervisor, caller: Domain, guest: GuestMemory, cmdRaw: bigint, uop: bigint, countRaw: bigint): bigint {
  const cmdFull = u32(cmdRaw);
  const count = i32(countRaw);
  if (count < 0) return err("EINVAL");
  const opaque = cmdFull >>> GNTTABOP_CONTINUATION_ARG_SHIFT;
  const cmd = cmdFull & ((1 << GNTTABOP_CONTINUATION_ARG_SHIFT) - 1);
  if (cmd !== GNTTABOP.cache_flush && opaque !== 0) return err("EINVAL");
  if (cmd !== GNTTABOP.cache_flush) return err("ENOSYS");
  for (let i = 0; i < count; i++) {
    const b = guest.tryRead(uop + BigInt(i * GNTTAB_CACHE_FLUSH_SIZE), GNTTAB_CACHE_FLUSH_SIZE);
    if (b === undefined) return err("EFAULT");
    const v = new DataView(b.buffer);
    const rc = cacheFlush(hv, caller, v.getBigUint64(0, true), v.getUint16(8, true), v.getUint16(10, true), v.getUint32(12, true), opaque);
    if (rc !== 0n) return rc;
  }
  return 0n;
}

function cacheFlush(hv: XenHypervisor, caller: Domain, addr: bigint, offset: number, length: number, op: number, curRef: number): bigint {
  if (offset >= XEN_PAGE_SIZE || length > XEN_PAGE_SIZE || offset + length > XEN_PAGE_SIZE || (op & ~(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN)) !== 0)
    return err("EINVAL");
  if (length === 0 || op === 0) return curRef === 0 ? 0n : err("EILSEQ");
  const mfnBig = addr >> 12n;
  const mfn = mfnBig <= 0xf_ffff_ffff_ffffn ? Number(mfnBig) : -1;
  if (!hv.frames.isValid(mfn)) return err("EINVAL");
  const owner = hv.frames.ownerOf(mfn);
  if (owner === FRAME_FREE || owner === FRAME_RESERVED || owner === FRAME_ANON || owner === FRAME_NOT_RAM) return err("EPERM");
  // another domain's page needs an active grant to the caller; grants are not modelled
  if (owner !== caller.id) return err("EINVAL");
  // the emulated machine has no caches to maintain
  return 0n;
}
