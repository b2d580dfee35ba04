// Numbers and layouts of Xen's public interface (xen/include/public/*.h) as an arm64
// guest sees them. Constants and names only; see spec xen-arm64.md sections 1–3.

import { ERRNO } from "../../kernel/errno.js";

/** `HVC #0xEA1`: the immediate that marks a Xen hypercall (XEN_HYPERCALL_TAG). */
export const XEN_HYPERCALL_TAG = 0xea1;
/** A64 encoding of `HVC #0xEA1`. */
export const HVC_XEN_INSN = 0xd4000002 | (XEN_HYPERCALL_TAG << 5);

export const XEN_PAGE_SHIFT = 12;
export const XEN_PAGE_SIZE = 4096;

/** Hypercall numbers (xen.h). */
export const HYPERCALL = {
  set_trap_table: 0,
  mmu_update: 1,
  set_gdt: 2,
  stack_switch: 3,
  set_callbacks: 4,
  fpu_taskswitch: 5,
  sched_op_compat: 6,
  platform_op: 7,
  set_debugreg: 8,
  get_debugreg: 9,
  update_descriptor: 10,
  memory_op: 12,
  multicall: 13,
  update_va_mapping: 14,
  set_timer_op: 15,
  event_channel_op_compat: 16,
  xen_version: 17,
  console_io: 18,
  physdev_op_compat: 19,
  grant_table_op: 20,
  vm_assist: 21,
  update_va_mapping_otherdomain: 22,
  iret: 23,
  vcpu_op: 24,
  set_segment_base: 25,
  mmuext_op: 26,
  xsm_op: 27,
  nmi_op: 28,
  sched_op: 29,
  callback_op: 30,
  xenoprof_op: 31,
  event_channel_op: 32,
  physdev_op: 33,
  hvm_op: 34,
  sysctl: 35,
  domctl: 36,
  kexec_op: 37,
  tmem_op: 38,
  argo_op: 39,
  xenpmu_op: 40,
  dm_op: 41,
  hypfs_op: 42,
} as const;

export type HypercallName = keyof typeof HYPERCALL;

const NAMES = new Map<number, string>(Object.entries(HYPERCALL).map(([k, v]) => [v, k]));
for (let i = 0; i < 8; i++) NAMES.set(48 + i, `arch_${i}`);

/** The name of a hypercall number, or `hypercall_<n>` for an unassigned one. */
export function hypercallName(nr: number): string {
  return NAMES.get(nr) ?? `hypercall_${nr}`;
}

/**
 * Xen public errno values (public/errno.h); hypercalls return them negated. Xen gives every
 * name it shares with Linux the same number, so this is the kernel's table.
 */
export const XEN_ERRNO = ERRNO;

// ---- domain ids (xen.h) -----------------------------------------------------------------
export const DOMID_FIRST_RESERVED = 0x7ff0;
export const DOMID_SELF = 0x7ff0;
export const DOMID_IO = 0x7ff1;
export const DOMID_XEN = 0x7ff2;
export const DOMID_COW = 0x7ff3;
export const DOMID_INVALID = 0x7ff4;
export const DOMID_ANY = 0x7ff5;
export const DOMID_IDLE = 0x7fff;

// ---- xen_version (version.h) ------------------------------------------------------------
export const XENVER = {
  version: 0,
  extraversion: 1,
  compile_info: 2,
  capabilities: 3,
  changeset: 4,
  platform_parameters: 5,
  get_features: 6,
  pagesize: 7,
  guest_handle: 8,
  commandline: 9,
  build_id: 10,
} as const;
export const XEN_EXTRAVERSION_LEN = 16;
export const XEN_COMPILE_INFO_SIZE = 144; // compiler[64] compile_by[16] compile_domain[32] compile_date[32]
export const XEN_CAPABILITIES_INFO_LEN = 1024;
export const XEN_CHANGESET_INFO_LEN = 64;
export const XEN_COMMANDLINE_LEN = 1024;
export const XEN_DOMAIN_HANDLE_LEN = 16;
export const XEN_FEATURE_INFO_SIZE = 8;
export const XENFEAT_NR_SUBMAPS = 1;

/** XENFEAT_* bit numbers (features.h). */
export const XENFEAT = {
  writable_page_tables: 0,
  writable_descriptor_tables: 1,
  auto_translated_physmap: 2,
  supervisor_mode_kernel: 3,
  pae_pgdir_above_4gb: 4,
  mmu_pt_update_preserve_ad: 5,
  highmem_assist: 6,
  gnttab_map_avail_bits: 7,
  hvm_callback_vector: 8,
  hvm_safe_pvclock: 9,
  hvm_pirqs: 10,
  dom0: 11,
  grant_map_identity: 12,
  memory_op_vnode_supported: 13,
  ARM_SMCCC_supported: 14,
  linux_rsdp_unrestricted: 15,
  not_direct_mapped: 16,
  direct_mapped: 17,
  runstate_phys_area: 18,
  vcpu_time_phys_area: 19,
  dm_msix_all_writes: 20,
} as const;

// ---- memory_op (memory.h) ---------------------------------------------------------------
export const MEMOP_EXTENT_SHIFT = 6;
export const MEMOP_CMD_MASK = (1 << MEMOP_EXTENT_SHIFT) - 1;

export const XENMEM = {
  increase_reservation: 0,
  decrease_reservation: 1,
  maximum_ram_page: 2,
  current_reservation: 3,
  maximum_reservation: 4,
  machphys_mfn_list: 5,
  populate_physmap: 6,
  add_to_physmap: 7,
  memory_map: 9,
  machine_memory_map: 10,
  exchange: 11,
  machphys_mapping: 12,
  set_memory_map: 13,
  maximum_gpfn: 14,
  remove_from_physmap: 15,
  set_pod_target: 16,
  get_pod_target: 17,
  get_sharing_freed_pages: 18,
  get_sharing_shared_pages: 19,
  paging_op: 20,
  access_op: 21,
  sharing_op: 22,
  add_to_physmap_batch: 23,
  claim_pages: 24,
  machphys_compat_mfn_list: 25,
  get_vnumainfo: 26,
  reserved_device_memory_map: 27,
  acquire_resource: 28,
} as const;

const XENMEM_NAMES = new Map<number, string>(Object.entries(XENMEM).map(([k, v]) => [v, k]));
export function xenmemName(op: number): string {
  return XENMEM_NAMES.get(op) ?? `op_${op}`;
}

/** XENMEMF_* bits of xen_memory_reservation.mem_flags. */
export const XENMEMF_ADDRESS_BITS_MASK = 0xff;
export const XENMEMF_populate_on_demand = 1 << 16;
export const XENMEMF_exact_node_request = 1 << 17;
export const XENMEMF_vnode = 1 << 18;
/** XENMEMF_get_node: the node field is stored +1, so 0 reads back as NUMA_NO_NODE (0xff). */
export function xenmemfGetNode(memFlags: number): number {
  return (((memFlags >>> 8) - 1) & 0xff) >>> 0;
}
export const NUMA_NO_NODE = 0xff;

/** struct xen_memory_reservation: 32 bytes, align 8. */
export const RESERVATION = {
  size: 32,
  extent_start: 0,
  nr_extents: 8,
  extent_order: 16,
  mem_flags: 20,
  domid: 24,
} as const;

/** struct xen_memory_exchange: 72 bytes, align 8. */
export const EXCHANGE = {
  size: 72,
  in: 0,
  out: 32,
  nr_exchanged: 64,
} as const;

/** Arm guest physical layout (arch-arm.h). */
export const GUEST_RAM0_BASE = 0x4000_0000;
export const GUEST_RAM0_SIZE = 0xc000_0000;
export const GUEST_RAM1_BASE = 0x2_0000_0000;
export const GUEST_RAM1_SIZE = 0xfe_0000_0000;
export const GUEST_GNTTAB_BASE = 0x3800_0000;
export const GUEST_GNTTAB_SIZE = 0x0100_0000;

/** Extent-order limits on arm (asm/config.h, Kconfig defaults). */
export const MAX_ORDER = 18;
export const DOMU_MAX_ORDER = 9;
export const PTDOM_MAX_ORDER = 10;
export const HWDOM_MAX_ORDER = 10;
export const CTLDOM_MAX_ORDER = 18;

// ---- grant_table_op (grant_table.h) -----------------------------------------------------
export const GNTTABOP = {
  map_grant_ref: 0,
  unmap_grant_ref: 1,
  setup_table: 2,
  dump_table: 3,
  transfer: 4,
  copy: 5,
  query_size: 6,
  unmap_and_replace: 7,
  set_version: 8,
  get_status_frames: 9,
  get_version: 10,
  swap_grant_ref: 11,
  cache_flush: 12,
} as const;
export const GNTTABOP_CONTINUATION_ARG_SHIFT = 12;
export const GNTTAB_CACHE_CLEAN = 1 << 0;
export const GNTTAB_CACHE_INVAL = 1 << 1;
export const GNTTAB_CACHE_SOURCE_GREF = 1 << 31;
/** struct gnttab_cache_flush: a u64 @0, offset u16 @8, length u16 @10, op u32 @12. */
export const GNTTAB_CACHE_FLUSH_SIZE = 16;

// ---- sched_op, console_io, vm_assist ----------------------------------------------------
export const SCHEDOP = { yield: 0, block: 1, shutdown: 2, poll: 3, remote_shutdown: 4, shutdown_code: 5, watchdog: 6, pin_override: 7 } as const;
export const SHUTDOWN_REASONS = ["poweroff", "reboot", "suspend", "crash", "watchdog", "soft_reset"] as const;
export const CONSOLEIO = { write: 0, read: 1 } as const;
export const VMASST_CMD_enable = 0;
export const VMASST_CMD_disable = 1;
export const VMASST_TYPE_runstate_update_flag = 5;
