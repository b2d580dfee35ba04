// The stub Xen hypervisor: domains, P2M, heap, and the arm64 hypercall ABI.
export * from "./public.js";
export * from "./version.js";
export * from "./frame-allocator.js";
export * from "./p2m.js";
export * from "./domain.js";
export * from "./guest-memory.js";
export * from "./guest-structs.js";
export * from "./xen-version.js";
export * from "./dispatch.js";
export * from "./hypervisor.js";
