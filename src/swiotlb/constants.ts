// machine/boot.ts and bench/setup.ts still import these from here; the swiotlb constants
// live in kernel/swiotlb.ts.
export { IO_TLB_SHIFT, IO_TLB_SIZE } from "../kernel/swiotlb.js";
