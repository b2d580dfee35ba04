/*
 * dmalab guest SDK: what a program running on `dmalab guest` can call and touch.
 * C (freestanding, no libc) and assembly (#include in a .S file: constants only).
 *
 * Entry (crt0.S calls main with them): x0 = base of the guest RAM bank the program is loaded
 * in, x1 = its size, x2 = DMA engine MMIO base, x3 = the engine's device number, sp = below
 * the program. The MMU is off: addresses are guest-physical.
 *
 * Services: SVC #0, number in x8, arguments x0..x5, result in x0 (the Linux arm64 syscall ABI).
 * Xen hypercalls (--xen dom0|domU): HVC #0xEA1, number in x16, arguments x0..x4, result in x0.
 */
#ifndef DMALAB_H
#define DMALAB_H

/* ---- services (SVC #0, x8) ---------------------------------------------------------------- */
#define DMALAB_SYS_WRITE 64                  /* write(fd 1|2, buf, len) → len | -EBADF | -EFAULT */
#define DMALAB_SYS_EXIT 93                   /* exit(code): the run ends, status code & 0xff */
#define DMALAB_SYS_EXIT_GROUP 94
#define DMALAB_SYS_DMA_MAP 0x1000            /* dma_map(dev, phys, size, dir) → dma | DMA_MAPPING_ERROR */
#define DMALAB_SYS_DMA_UNMAP 0x1001          /* dma_unmap(dev, dma, size, dir) → 0 */
#define DMALAB_SYS_DMA_SYNC_FOR_CPU 0x1002   /* dma_sync_for_cpu(dev, dma, size, dir) → 0 */
#define DMALAB_SYS_DMA_SYNC_FOR_DEVICE 0x1003
#define DMALAB_SYS_DMA_ALLOC_COHERENT 0x1004 /* (dev, size) → x0 dma or all ones, x1 guest-physical */
#define DMALAB_SYS_DMA_FREE_COHERENT 0x1005  /* (dev, size, phys, dma) → 0 */

/* enum dma_data_direction */
#define DMA_BIDIRECTIONAL 0
#define DMA_TO_DEVICE 1
#define DMA_FROM_DEVICE 2
#define DMA_MAPPING_ERROR (~0UL)

/* ---- Xen (HVC #0xEA1, x16) ---------------------------------------------------------------- */
#define XEN_HYPERCALL_TAG 0xea1
#define __HYPERVISOR_memory_op 12
#define __HYPERVISOR_xen_version 17
#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_grant_table_op 20
#define __HYPERVISOR_vm_assist 21
#define __HYPERVISOR_vcpu_op 24
#define __HYPERVISOR_sched_op 29
#define __HYPERVISOR_event_channel_op 32
#define __HYPERVISOR_physdev_op 33
#define __HYPERVISOR_hvm_op 34

#define XENVER_version 0
#define XENVER_extraversion 1
#define XENVER_compile_info 2
#define XENVER_capabilities 3
#define XENVER_changeset 4
#define XENVER_platform_parameters 5
#define XENVER_get_features 6
#define XENVER_pagesize 7
#define XENVER_guest_handle 8
#define XENVER_commandline 9

#define XENFEAT_direct_mapped 17
#define XENFEAT_not_direct_mapped 18

#define XENMEM_increase_reservation 0
#define XENMEM_decrease_reservation 1
#define XENMEM_maximum_ram_page 2
#define XENMEM_current_reservation 3
#define XENMEM_maximum_reservation 4
#define XENMEM_populate_physmap 6
#define XENMEM_exchange 11
#define XENMEMF_address_bits(x) (x)
#define DOMID_SELF 0x7ff0

#define XEN_PAGE_SHIFT 12
#define XEN_PAGE_SIZE 4096

/* ---- the DMA engine (MMIO at x2 on entry; 4 KiB window) ----------------------------------- */
#define DMA_ENGINE_ID 0x00          /* 32 RO 0x444d4131 "DMA1" */
#define DMA_ENGINE_VERSION 0x04     /* 32 RO */
#define DMA_ENGINE_CTRL 0x08        /* 32 WO doorbell */
#define DMA_ENGINE_STATUS 0x0c      /* 32 RO */
#define DMA_ENGINE_SRC 0x10         /* 64 RW */
#define DMA_ENGINE_DST 0x18         /* 64 RW */
#define DMA_ENGINE_LEN 0x20         /* 32 RW 1 .. 16 MiB */
#define DMA_ENGINE_FILL 0x24        /* 32 RW fill byte in bits 7:0 */
#define DMA_ENGINE_ERROR 0x28       /* 32 RO */
#define DMA_ENGINE_DONE_COUNT 0x2c  /* 32 RO */
#define DMA_ENGINE_RING_BASE 0x30   /* 64 RW 16-byte aligned DMA address */
#define DMA_ENGINE_RING_COUNT 0x38  /* 32 RW */
#define DMA_ENGINE_RING_HEAD 0x3c   /* 32 RW */
#define DMA_ENGINE_RING_TAIL 0x40   /* 32 RW */
#define DMA_ENGINE_ERROR_ADDR 0x48  /* 64 RO */

#define DMA_ENGINE_ID_VALUE 0x444d4131
#define DMA_CMD_COPY 1
#define DMA_CMD_FILL 2
#define DMA_CMD_RING 3
#define DMA_CMD_RESET 4
#define DMA_STATUS_IDLE 0
#define DMA_STATUS_BUSY 1
#define DMA_STATUS_DONE 2
#define DMA_STATUS_ERROR 3
#define DMA_ERR_NONE 0
#define DMA_ERR_SRC_FAULT 1
#define DMA_ERR_DST_FAULT 2
#define DMA_ERR_BAD_LENGTH 3
#define DMA_ERR_BAD_COMMAND 4
#define DMA_ERR_DESC_FAULT 5
#define DMA_ERR_BAD_RING 6
#define DMA_DESC_SIZE 32
#define DMA_DESC_FLAG_FILL 1
#define DMA_DESC_STATUS_DONE 1
#define DMA_DESC_STATUS_ERROR 0x80000000

#ifndef __ASSEMBLER__

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long s64;
typedef unsigned long size_t;
typedef u64 dma_addr_t;
typedef u64 phys_addr_t;

/* One descriptor of the engine's ring (in memory the device reads by DMA). */
struct dma_engine_desc {
	u64 src;
	u64 dst;
	u32 len;
	u32 flags;  /* bit 0 FILL, bits 15:8 fill byte */
	u32 status; /* written back: 1 done, 0x80000000 | error code */
	u32 reserved;
};
_Static_assert(sizeof(struct dma_engine_desc) == DMA_DESC_SIZE, "descriptor layout");

/* Xen's public structures, arm64 layout (xen/include/public/memory.h, version.h). */
typedef u64 xen_pfn_t;
typedef u64 xen_ulong_t;
typedef u16 domid_t;

struct xen_memory_reservation {
	xen_pfn_t *extent_start; /* XEN_GUEST_HANDLE: a 64-bit pointer on arm */
	xen_ulong_t nr_extents;
	u32 extent_order;
	u32 mem_flags;
	domid_t domid;
};
_Static_assert(sizeof(struct xen_memory_reservation) == 32, "xen_memory_reservation");

struct xen_memory_exchange {
	struct xen_memory_reservation in;
	struct xen_memory_reservation out;
	xen_ulong_t nr_exchanged;
};
_Static_assert(sizeof(struct xen_memory_exchange) == 72, "xen_memory_exchange");

struct xen_feature_info {
	u32 submap_idx;
	u32 submap;
};

/* ---- calls ---------------------------------------------------------------------------------- */

static inline s64 dmalab_svc(u64 nr, u64 a0, u64 a1, u64 a2, u64 a3)
{
	register u64 x8 __asm__("x8") = nr;
	register u64 x0 __asm__("x0") = a0;
	register u64 x1 __asm__("x1") = a1;
	register u64 x2 __asm__("x2") = a2;
	register u64 x3 __asm__("x3") = a3;
	__asm__ volatile("svc #0" : "+r"(x0), "+r"(x1) : "r"(x8), "r"(x2), "r"(x3) : "memory");
	return (s64)x0;
}

/* A Xen hypercall; a release build of Xen changes only x0. */
static inline s64 xen_hypercall(u64 nr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4)
{
	register u64 x16 __asm__("x16") = nr;
	register u64 x0 __asm__("x0") = a0;
	register u64 x1 __asm__("x1") = a1;
	register u64 x2 __asm__("x2") = a2;
	register u64 x3 __asm__("x3") = a3;
	register u64 x4 __asm__("x4") = a4;
	__asm__ volatile("hvc #0xea1" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x16) : : "memory");
	return (s64)x0;
}

static inline s64 dmalab_write(int fd, const void *buf, size_t len)
{
	return dmalab_svc(DMALAB_SYS_WRITE, (u64)fd, (u64)buf, len, 0);
}

static inline __attribute__((noreturn)) void dmalab_exit(int code)
{
	dmalab_svc(DMALAB_SYS_EXIT, (u64)code, 0, 0, 0);
	for (;;)
		;
}

static inline dma_addr_t dma_map(u64 dev, const volatile void *buf, size_t size, int dir)
{
	return (dma_addr_t)dmalab_svc(DMALAB_SYS_DMA_MAP, dev, (u64)buf, size, (u64)dir);
}

static inline void dma_unmap(u64 dev, dma_addr_t dma, size_t size, int dir)
{
	dmalab_svc(DMALAB_SYS_DMA_UNMAP, dev, dma, size, (u64)dir);
}

static inline void dma_sync_for_cpu(u64 dev, dma_addr_t dma, size_t size, int dir)
{
	dmalab_svc(DMALAB_SYS_DMA_SYNC_FOR_CPU, dev, dma, size, (u64)dir);
}

static inline void dma_sync_for_device(u64 dev, dma_addr_t dma, size_t size, int dir)
{
	dmalab_svc(DMALAB_SYS_DMA_SYNC_FOR_DEVICE, dev, dma, size, (u64)dir);
}

/* Coherent memory for the device: its DMA address (DMA_MAPPING_ERROR on failure), its guest-physical address in *phys. */
static inline dma_addr_t dma_alloc_coherent(u64 dev, size_t size, phys_addr_t *phys)
{
	register u64 x8 __asm__("x8") = DMALAB_SYS_DMA_ALLOC_COHERENT;
	register u64 x0 __asm__("x0") = dev;
	register u64 x1 __asm__("x1") = size;
	__asm__ volatile("svc #0" : "+r"(x0), "+r"(x1) : "r"(x8) : "memory");
	*phys = x1;
	return x0;
}

static inline void dma_free_coherent(u64 dev, size_t size, phys_addr_t phys, dma_addr_t dma)
{
	dmalab_svc(DMALAB_SYS_DMA_FREE_COHERENT, dev, size, phys, dma);
}

static inline s64 HYPERVISOR_xen_version(int cmd, void *arg)
{
	return xen_hypercall(__HYPERVISOR_xen_version, (u64)cmd, (u64)arg, 0, 0, 0);
}

static inline s64 HYPERVISOR_memory_op(unsigned int cmd, void *arg)
{
	return xen_hypercall(__HYPERVISOR_memory_op, cmd, (u64)arg, 0, 0, 0);
}

/* MMIO accessors: one access of exactly that width (the engine refuses others). */
static inline u32 readl(const volatile void *addr)
{
	u32 v;
	__asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
	return v;
}
static inline void writel(u32 v, volatile void *addr)
{
	__asm__ volatile("str %w0, [%1]" : : "r"(v), "r"(addr) : "memory");
}
static inline u64 readq(const volatile void *addr)
{
	u64 v;
	__asm__ volatile("ldr %0, [%1]" : "=r"(v) : "r"(addr) : "memory");
	return v;
}
static inline void writeq(u64 v, volatile void *addr)
{
	__asm__ volatile("str %0, [%1]" : : "r"(v), "r"(addr) : "memory");
}

/* ---- tiny helpers (guest/lib.c) -------------------------------------------------------------- */
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
/* Writes a NUL-terminated string to the console. */
void puts_dmalab(const char *s);
/* Formats an unsigned value as 0x… hex (buf: at least 19 bytes); returns buf. */
char *utohex(char *buf, u64 v);
/* Formats an unsigned value in decimal (buf: at least 21 bytes); returns buf. */
char *utodec(char *buf, u64 v);

/* The program's entry, called by crt0.S with the entry registers; its return value is the exit status. */
int main(u64 ram_base, u64 ram_size, volatile void *dma_engine, u64 dma_dev);

#endif /* __ASSEMBLER__ */
#endif /* DMALAB_H */
