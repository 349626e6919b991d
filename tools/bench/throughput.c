// SPDX-License-Identifier: GPL-2.0
/*
 * Latency of small maps, throughput of 1 GiB maps, and the kernel memory a
 * 1 GiB mapping costs; ioasid and iommufd side by side.
 *
 * Throughput: 1 GiB, populated beforehand, is mapped at a fixed, 1 GiB
 * aligned IOVA and unmapped again, best of REPS (the two implementations
 * alternate). The IOMMU driver's share is the time ioasid spent inside
 * iommu_map()/iommu_unmap() (its debugfs); iommufd's calls are not
 * instrumented, so its share is estimated from the same figure: the same
 * IOMMU, the same memory, the same IOPTEs. By memfd, iommufd's
 * IOMMU_IOAS_MAP_FILE is set against ioasid's IOASID_MAP_FILE, which reads
 * "n/a (not implemented)" until the module has it (ENOTTY).
 *
 * Memory: the kernel memory in use (struct kmem, bench.h) just before and
 * just after the first map of each row, per GiB mapped.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << 26)
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26)
#endif
#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB (30 << 26)
#endif

#define IOVA 0x40000000ull	/* 1 GiB: 1 GiB aligned, below the MSI window */
#define REPS 3

/* --- latency: the small sizes --------------------------------------------- */

struct size {
	const char *name;
	size_t bytes;
	int iterations;
};

static const struct size sizes[] = {
	{ "4 KiB", 4096, 1000 },
	{ "64 KiB", 64 << 10, 500 },
	{ "2 MiB", 2 << 20, 200 },
	{ "256 MiB", 256 << 20, 5 },
};

#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static void *small_buffer(size_t bytes)
{
	int huge = bytes >= (2u << 20);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0), -1, 0);

	if (p == MAP_FAILED && huge)
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 1, bytes);
	return p;
}

/* Mean seconds per map+unmap pair; *raw: of which inside iommu_map/unmap (ioasid). */
static double pairs(struct ctx *c, void *buf, size_t bytes, int iterations, double *raw)
{
	double ns0 = iommu_ns(), t0 = now_s(), t1;

	for (int i = 0; i < iterations; i++) {
		__u64 iova = IOVA;
		int e = ctx_map(c, buf, bytes, &iova, 1);

		if (e || (e = ctx_unmap(c, IOVA, bytes)))
			DIE("%s map/unmap %zu: %s\n", impl_name[c->impl], bytes, strerror(e));
	}
	t1 = now_s();
	*raw = (iommu_ns() - ns0) / 1e9 / iterations;
	return (t1 - t0) / iterations;
}

void bench_latency(struct ctx ctx[NIMPL])
{
	double us[NSIZES][NIMPL], raw[NSIZES];
	char b[4][32];

	for (unsigned int i = 0; i < NSIZES; i++) {
		void *buf = small_buffer(sizes[i].bytes);
		double r;

		if (!buf)
			DIE("no memory for %s\n", sizes[i].name);
		/* Warm both paths, then measure each twice, alternating, and keep the best. */
		for (int m = 0; m < NIMPL; m++) {
			pairs(&ctx[m], buf, sizes[i].bytes, 2, &r);
			us[i][m] = 1e30;
		}
		for (int round = 0; round < 2; round++) {
			for (int m = 0; m < NIMPL; m++) {
				double t = pairs(&ctx[m], buf, sizes[i].bytes, sizes[i].iterations, &r);

				if (t < us[i][m]) {
					us[i][m] = t;
					if (m == IOASID)
						raw[i] = r;
				}
			}
		}
		munmap(buf, sizes[i].bytes);
	}

	printf("\n## Latency: one map+unmap pair at a fixed IOVA, mean of N (best of 2 rounds)\n\n");
	printf("| size    |    N | ioasid     | iommufd    | ratio | in iommu_map+unmap | ioasid's ioctl overhead |\n");
	printf("|---------|-----:|-----------:|-----------:|------:|-------------------:|------------------------:|\n");
	for (unsigned int i = 0; i < NSIZES; i++)
		printf("| %-7s | %4d | %10s | %10s | %5.2f | %18s | %23s |\n", sizes[i].name,
		       sizes[i].iterations, fmt_time(b[0], 32, us[i][IOASID]),
		       fmt_time(b[1], 32, us[i][IOMMUFD]), us[i][IOASID] / us[i][IOMMUFD],
		       fmt_time(b[2], 32, raw[i]), fmt_time(b[3], 32, us[i][IOASID] - raw[i]));
}

/* --- throughput and memory: 1 GiB ------------------------------------------ */

enum kind { VA_4K, VA_THP, VA_2M, VA_1G, FD_SHMEM, FD_2M, FD_1G };

static const struct row {
	const char *name;
	enum kind kind;
} rows[] = {
	{ "VA, 4 KiB pages (THP off)", VA_4K },
	{ "VA, THP", VA_THP },
	{ "VA, 2 MiB hugetlb", VA_2M },
	{ "VA, 1 GiB hugetlb", VA_1G },
	{ "memfd, shmem", FD_SHMEM },
	{ "memfd, 2 MiB hugetlb", FD_2M },
	{ "memfd, 1 GiB hugetlb", FD_1G },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

struct backing {
	void *va;	/* VA rows */
	void *map;	/* what to munmap, and its length */
	size_t maplen;
	int fd;		/* memfd rows */
	char why[128];	/* why the row is not available */
};

struct result {
	int ok;
	char why[64];
	double map_s, unmap_s, iommu_s;
	struct kmem mem;		/* what the first map added */
	unsigned long long ioptes[4];	/* ioasid's IOPTEs of the mapping */
};

static long long hugepages_free(const char *size)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%s/free_hugepages", size);
	return read_number(path);
}

/* Sets up 1 GiB of the row's memory, populated; 0, or -1 with b->why set. */
static int prepare(enum kind k, struct backing *b)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	switch (k) {
	case VA_4K:
	case VA_THP:
		if (k == VA_THP && access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK)) {
			snprintf(b->why, sizeof(b->why),
				 "n/a: the kernel has no THP (CONFIG_TRANSPARENT_HUGEPAGE)");
			return -1;
		}
		/* 2 MiB more, to start on a 2 MiB boundary (THP). */
		b->maplen = GiB + 2 * MiB;
		b->map = mmap(NULL, b->maplen, PROT_READ | PROT_WRITE, flags, -1, 0);
		if (b->map == MAP_FAILED) {
			snprintf(b->why, sizeof(b->why), "n/a: mmap: %s", strerror(errno));
			return -1;
		}
		b->va = (void *)(((uintptr_t)b->map + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
		/* Without THP in the kernel, MADV_NOHUGEPAGE is EINVAL: 4 KiB pages anyway. */
		madvise(b->va, GiB, k == VA_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(b->va, 1, GiB);
		if (k == VA_THP) {
			long long thp = proc_value("/proc/self/smaps_rollup", "AnonHugePages");

			if (thp < (long long)(GiB / KiB / 2)) {
				snprintf(b->why, sizeof(b->why),
					 "n/a: only %lld MiB of the buffer became THP", thp / 1024);
				munmap(b->map, b->maplen);
				return -1;
			}
		}
		return 0;
	case VA_2M:
	case VA_1G:
		b->maplen = GiB;
		b->map = mmap(NULL, GiB, PROT_READ | PROT_WRITE,
			      flags | MAP_HUGETLB | (k == VA_2M ? MAP_HUGE_2MB : MAP_HUGE_1GB), -1, 0);
		if (b->map == MAP_FAILED) {
			snprintf(b->why, sizeof(b->why),
				 "n/a: no %s hugetlb pages free (%lld; the bench VM reserves them at boot)",
				 k == VA_2M ? "2 MiB" : "1 GiB",
				 hugepages_free(k == VA_2M ? "2048kB" : "1048576kB"));
			return -1;
		}
		b->va = b->map;
		memset(b->va, 1, GiB);
		return 0;
	case FD_SHMEM:
	case FD_2M:
	case FD_1G:
		b->fd = memfd_create("ioasid_bench", k == FD_SHMEM ? 0 :
				     MFD_HUGETLB | (k == FD_2M ? MFD_HUGE_2MB : MFD_HUGE_1GB));
		if (b->fd < 0 || ftruncate(b->fd, GiB) || fallocate(b->fd, 0, 0, GiB)) {
			snprintf(b->why, sizeof(b->why), "n/a: memfd of %s: %s",
				 k == FD_SHMEM ? "shmem" : k == FD_2M ? "2 MiB pages" : "a 1 GiB page",
				 strerror(errno));
			if (b->fd >= 0)
				close(b->fd);
			return -1;
		}
		return 0;
	}
	return -1;
}

static void release(struct backing *b)
{
	if (b->map)
		munmap(b->map, b->maplen);
	if (b->fd >= 0)
		close(b->fd);
}

static int map_row(struct ctx *c, enum kind k, struct backing *b)
{
	__u64 iova = IOVA;

	if (k >= FD_SHMEM)
		return ctx_map_file(c, b->fd, 0, GiB, &iova, 1);
	return ctx_map(c, b->va, GiB, &iova, 1);
}

static void unmap_row(struct ctx *c)
{
	int e = ctx_unmap(c, IOVA, GiB);

	if (e)
		DIE("%s: unmap of 1 GiB: %s\n", impl_name[c->impl], strerror(e));
}

/* The first map: whether it works, the kernel memory and the IOPTEs it takes. */
static void first_map(struct ctx *c, enum kind k, struct backing *b, struct result *r)
{
	struct kmem k0, k1;
	unsigned long long p0[4], p1[4];
	int e;

	iopte_counts(p0);
	kmem_read(&k0);
	e = map_row(c, k, b);
	if (e) {
		r->ok = 0;
		snprintf(r->why, sizeof(r->why), "n/a (%s)",
			 e == ENOTTY ? "not implemented" : strerror(e));
		return;
	}
	kmem_read(&k1);
	iopte_counts(p1);
	r->ok = 1;
	r->mem.book = k1.book - k0.book;
	r->mem.iommu = k1.iommu - k0.iommu;
	r->mem.free = k0.free - k1.free;
	for (int i = 0; i < 4; i++)
		r->ioptes[i] = p1[i] - p0[i];
	unmap_row(c);
	r->map_s = r->unmap_s = 1e30;
}

static void timed_map_unmap(struct ctx *c, enum kind k, struct backing *b, struct result *r)
{
	double ns0 = iommu_ns(), t0 = now_s(), t1, t2;
	int e = map_row(c, k, b);

	if (e)
		DIE("%s: map of 1 GiB (%s): %s\n", impl_name[c->impl], rows[k].name, strerror(e));
	t1 = now_s();
	unmap_row(c);
	t2 = now_s();
	if (t2 - t0 < r->map_s + r->unmap_s) {
		r->map_s = t1 - t0;
		r->unmap_s = t2 - t1;
		r->iommu_s = (iommu_ns() - ns0) / 1e9;
	}
}

static const char *kib(char *buf, size_t size, long long bytes)
{
	snprintf(buf, size, "%lld", bytes / (long long)KiB);
	return buf;
}

static const char *ioptes(char *buf, size_t size, const unsigned long long p[4])
{
	static const char *const name[4] = { "4K", "2M", "1G", "other" };
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < 4; i++)
		if (p[i] && n < size)
			n += snprintf(buf + n, size - n, "%s%llux%s", n ? " + " : "", p[i], name[i]);
	return buf;
}

void bench_throughput(void)
{
	struct result res[NROWS][NIMPL];
	struct ctx ctx[NIMPL];
	char why[NROWS][128];
	char b[8][48];

	memset(res, 0, sizeof(res));
	for (unsigned int i = 0; i < NROWS; i++) {
		struct backing bk;

		why[i][0] = '\0';
		if (prepare(rows[i].kind, &bk)) {
			snprintf(why[i], sizeof(why[i]), "%s", bk.why);
			continue;
		}
		/* Fresh contexts: the first map builds its IOMMU page tables from nothing. */
		for (int m = 0; m < NIMPL; m++) {
			ctx_open(&ctx[m], m);
			first_map(&ctx[m], rows[i].kind, &bk, &res[i][m]);
		}
		for (int rep = 0; rep < REPS; rep++)
			for (int m = 0; m < NIMPL; m++)
				if (res[i][m].ok)
					timed_map_unmap(&ctx[m], rows[i].kind, &bk, &res[i][m]);
		for (int m = 0; m < NIMPL; m++)
			ctx_close(&ctx[m]);
		release(&bk);
	}

	printf("\n## Throughput: map then unmap 1 GiB at a fixed IOVA (best of %d)\n\n", REPS);
	printf("The IOMMU driver's time is measured in ioasid's calls; iommufd's share (~) assumes the same.\n\n");
	printf("| backing                   | ioasid map | unmap     | GiB/s | iommufd map | unmap     | GiB/s | ratio | in iommu_map+unmap | of ioasid | of iommufd~ |\n");
	printf("|---------------------------|-----------:|----------:|------:|------------:|----------:|------:|------:|-------------------:|----------:|------------:|\n");
	for (unsigned int i = 0; i < NROWS; i++) {
		struct result *a = &res[i][IOASID], *f = &res[i][IOMMUFD];
		double ta = a->map_s + a->unmap_s, tf = f->map_s + f->unmap_s;

		printf("| %-25s |", rows[i].name);
		if (why[i][0]) {
			printf(" %s | | | | | | | | | |\n", why[i]);
			continue;
		}
		if (a->ok)
			printf(" %10s | %9s | %5.2f |", fmt_time(b[0], 48, a->map_s),
			       fmt_time(b[1], 48, a->unmap_s), 1 / ta);
		else
			printf(" %s | | |", a->why);
		if (f->ok)
			printf(" %11s | %9s | %5.2f |", fmt_time(b[2], 48, f->map_s),
			       fmt_time(b[3], 48, f->unmap_s), 1 / tf);
		else
			printf(" %s | | |", f->why);
		if (a->ok && f->ok)
			printf(" %5.2f |", ta / tf);
		else
			printf("     - |");
		if (a->ok)
			printf(" %18s | %8.1f%% | %10.1f%% |\n", fmt_time(b[4], 48, a->iommu_s),
			       100 * a->iommu_s / ta, f->ok ? 100 * a->iommu_s / tf : 0);
		else
			printf("                  - |         - |           - |\n");
	}

	printf("\n## Memory: kernel memory taken by mapping 1 GiB, KiB per GiB mapped\n\n");
	printf("bookkeeping: slab + vmalloc + percpu, what the implementation allocates to track the\n");
	printf("mapping; IOMMU page tables (ioasid / iommufd, fresh domains): the same IOPTEs in both.\n\n");
	printf("| backing                   | IOPTEs (ioasid)   | ioasid bookkeeping | iommufd bookkeeping | ratio  | IOMMU page tables |\n");
	printf("|---------------------------|-------------------|-------------------:|--------------------:|-------:|------------------:|\n");
	for (unsigned int i = 0; i < NROWS; i++) {
		struct result *a = &res[i][IOASID], *f = &res[i][IOMMUFD];

		printf("| %-25s |", rows[i].name);
		if (why[i][0]) {
			printf(" %s | | | | |\n", why[i]);
			continue;
		}
		printf(" %-17s |", a->ok ? ioptes(b[0], 48, a->ioptes) : "-");
		printf(" %18s |", a->ok ? kib(b[1], 48, a->mem.book) : a->why);
		printf(" %19s |", f->ok ? kib(b[2], 48, f->mem.book) : f->why);
		if (a->ok && f->ok && a->mem.book > 0 && f->mem.book > 0)
			printf(" %6.2f |", (double)a->mem.book / f->mem.book);
		else
			printf("      - |");
		printf(" %8s / %-6s |\n", a->ok ? kib(b[3], 48, a->mem.iommu) : "-",
		       f->ok ? kib(b[4], 48, f->mem.iommu) : "-");
	}
}
