/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The parts of ioasid_bench: what they share.
 *
 *   ioasid_bench.c  main, the sections to run, common helpers (time, /proc,
 *                   debugfs, the printing of tables)
 *   backend.c       one API over both implementations: /dev/ioasid (edu
 *                   00:05.0) and iommufd (/dev/iommu + the vfio-pci cdev of
 *                   edu 00:06.0)
 *   throughput.c    latency of small maps; map+unmap of 1 GiB by VA and by
 *                   memfd; kernel memory per GiB mapped
 *   scale.c         the cost of one operation with 10^2..10^6 areas mapped
 */
#ifndef IOASID_BENCH_H
#define IOASID_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define PAGE 4096ull

#define DIE(...)                                             \
	do {                                                 \
		fflush(stdout);                              \
		fprintf(stderr, "ioasid_bench: " __VA_ARGS__); \
		exit(1);                                     \
	} while (0)

/* --- the two implementations (backend.c) --------------------------------- */

enum impl { IOASID, IOMMUFD, NIMPL };
extern const char *const impl_name[NIMPL];

/* One context: an open /dev/ioasid or /dev/iommu, a device attached, one IOAS. */
struct ctx {
	enum impl impl;
	int fd;		/* /dev/ioasid or /dev/iommu */
	int dev_fd;	/* iommufd: the vfio-pci cdev; ioasid: -1 */
	__u32 id;	/* the IOASID or the IOAS */
};

struct iova_range {
	__u64 start, last;	/* inclusive */
};

/* Hands the iommufd device to vfio-pci; call once, before any ctx_open(). */
void backend_init(void);
/* Opens a context with its device attached to a fresh IOAS; dies on failure. */
void ctx_open(struct ctx *c, enum impl impl);
/* Closes it (iommufd: the device's cdev, then /dev/iommu). */
void ctx_close(struct ctx *c);
/*
 * Map user memory or a file range, at *iova if fixed, else at an IOVA the
 * kernel chooses and returns in *iova. Read+write. 0 or an errno.
 */
int ctx_map(struct ctx *c, const void *va, __u64 length, __u64 *iova, int fixed);
int ctx_map_file(struct ctx *c, int fd, __u64 start, __u64 length, __u64 *iova, int fixed);
/* Unmap [iova, iova + length): 0 or an errno. */
int ctx_unmap(struct ctx *c, __u64 iova, __u64 length);
/* The usable IOVA ranges, lowest first; returns how many (at most max). */
int ctx_iova_ranges(struct ctx *c, struct iova_range *r, int max);

/* --- helpers (ioasid_bench.c) --------------------------------------------- */

double now_s(void);
int write_file(const char *path, const char *s);
/* The first number in a file, or -1. */
long long read_number(const char *path);
/* A "Name: value" line of /proc/meminfo or "name value" of /proc/vmstat, or -1. */
long long proc_value(const char *file, const char *name);
/* Nanoseconds spent in iommu_map() + iommu_unmap() by ioasid so far (debugfs). */
double iommu_ns(void);
/* ioasid's IOPTEs now, by size: 4K, 2M, 1G, other (debugfs). */
void iopte_counts(unsigned long long out[4]);

/*
 * Kernel memory in use, in bytes, from /proc/meminfo and /proc/vmstat (the
 * test kernel has no memory cgroups, so no memory.stat to read). What a map
 * adds to it:
 *  - book: what the implementation allocates to track the mapping: slab
 *    (Slab: kmalloc, its own caches, xarrays, rbtree nodes), vmalloc
 *    (VmallocUsed: kvmalloc'ed arrays), per-CPU memory, kernel stacks and
 *    CPU page tables (PageTables; unchanged by a map of populated memory);
 *  - iommu: the IOMMU page tables (nr_iommu_pages: every IOMMU driver's
 *    iommu_alloc_pages*), which ioasid and iommufd both need, in the same
 *    amount for the same IOPTEs (zero under virtio-iommu: its page tables
 *    live in the host);
 *  - free: MemFree, whose drop would count everything, but is too noisy
 *    (the per-CPU page lists) to be shown.
 * None of them includes the mapped memory itself, populated beforehand.
 * Both are system-wide: the VM runs nothing else meanwhile.
 */
struct kmem {
	long long book, iommu, free;
};
void kmem_read(struct kmem *k);

/* Formats a duration in seconds: "412 us", "3.21 ms", "12.4 s" (ASCII: columns line up). */
const char *fmt_time(char *buf, size_t size, double s);

/* Set by main from its arguments: the largest area count of the scale curve. */
extern long scale_max_areas;
/* ... and the time (s since the bench started) it should end within. */
extern double scale_total_budget;
/* When the bench started (now_s()). */
extern double bench_t0;

/* --- the sections ---------------------------------------------------------- */

void bench_latency(struct ctx ctx[NIMPL]);
void bench_throughput(void);
void bench_scale(void);

#endif
