// SPDX-License-Identifier: GPL-2.0
/*
 * The scale curve: with N = 10^2 .. 10^6 existing 4 KiB areas in one IOAS,
 * the time of one more kernel-chosen map, one fixed-IOVA map, one unmap,
 * and of closing the context; ioasid and iommufd side by side.
 *
 * Each level is a fresh context. Its N areas are laid out exactly where
 * first-fit kernel-chosen placement puts them, packed one page after the
 * other from the lowest usable IOVA (both implementations place first fit
 * from IOVA 4 KiB; the first area is mapped kernel-chosen and sets the base,
 * and the kernel-chosen map measured afterwards must land right after the
 * last one, which is checked). The rest are mapped at those IOVAs with
 * FIXED_IOVA: building N areas through kernel-chosen maps would cost O(N^3)
 * on today's ioasid (each of its kernel-chosen maps rescans every area per
 * probe), and nothing but the kernel-chosen map itself would be measurable
 * beyond 10^3 areas. The memory behind them is one small region of
 * POOL_PAGES pages, page i % POOL_PAGES mapped by area i: each map pins (and
 * charges) its page again, and the pin count of no page comes near the
 * limit of a page's reference count.
 *
 * The operations, at each N:
 *   unmap           of the area in the middle, IOVA slot[N/2], ...
 *   fixed-IOVA map  ... mapped again at that IOVA (a hole between two areas)
 *   kernel-chosen   a map that lands at slot[N], then unmapped (untimed)
 *   close           of the context holding the N areas (iommufd: the
 *                   device's cdev, then /dev/iommu)
 * each repeated up to REPS times while they take less than REP_TIME in all;
 * the median is shown.
 *
 * Time budget: an operation that would exceed OP_BUDGET, predicted
 * quadratically from its cost at the previous N (today's kernel-chosen map
 * of ioasid is O(N^2)), is not run there nor further up: "> budget". A
 * level whose building would take more than BUILD_BUDGET (predicted from the
 * previous level, or found while building) stops the curve for that
 * implementation, and so does one that would end the bench (building and
 * closing, predicted linearly) after scale_total_budget (total-budget=,
 * default 1320 s: 22 minutes). A level that would not fit in MemAvailable (predicted from
 * the kernel memory per area at the previous level) is "n/a (memory)".
 */
#include <math.h>
#include <stdint.h>
#include <sys/mman.h>

#include "bench.h"

#define POOL_PAGES 64
#define REPS 7
#define REP_TIME 0.5
#define OP_BUDGET 30.0
/* Building one level: half the bench's budget (660 s by default). */
#define BUILD_BUDGET (scale_total_budget / 2)
/* Kernel memory figures below this total (bytes) are noise. */
#define NOISE (256 * KiB)

static const long counts[] = { 100, 1000, 10000, 100000, 1000000 };
#define NCOUNTS (int)(sizeof(counts) / sizeof(counts[0]))

enum op { OP_AUTO, OP_FIXED, OP_UNMAP, OP_CLOSE, NOPS };
static const char *const op_name[NOPS] = { "kernel-chosen map", "fixed-IOVA map", "unmap",
					   "close" };

enum state { NOT_RUN, MEASURED, OVER_BUDGET, NO_MEMORY };

struct cell {
	enum state state;
	double t;
};

struct level {
	enum state state;	/* of the level as a whole (building) */
	double build_s;
	double bytes_per_area;
	struct cell op[NOPS];
};

static struct level lv[NCOUNTS][NIMPL];
static char *pool;
static __u64 *slot;
static char placement_note[160];

static void *page_of(long i)
{
	return pool + (i % POOL_PAGES) * PAGE;
}

/*
 * slot[0..n]: slot[0] = base, each next one the next usable page (skipping
 * what the IOVA ranges exclude, e.g. the MSI window).
 */
static void lay_out(struct ctx *c, __u64 base, long n)
{
	struct iova_range r[64];
	int nr = ctx_iova_ranges(c, r, 64), k = 0;
	__u64 iova = base;

	for (long i = 0; i <= n; i++) {
		while (k < nr && iova > r[k].last)
			k++;
		if (k == nr)
			DIE("%s: IOVA space exhausted at area %ld\n", impl_name[c->impl], i);
		if (iova < r[k].start)
			iova = r[k].start;
		slot[i] = iova;
		iova += PAGE;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Whether op may run at level li: within budget, predicted from the last level it ran at. */
static int allowed(int li, enum impl m, enum op op)
{
	for (int p = li - 1; p >= 0; p--) {
		const struct cell *c = &lv[p][m].op[op];
		double ratio = (double)counts[li] / counts[p];

		if (c->state == OVER_BUDGET)
			return 0;
		if (c->state == MEASURED)
			return c->t * ratio * ratio <= OP_BUDGET;
	}
	return 1;
}

static void must(struct ctx *c, int e, const char *what, __u64 iova)
{
	if (e)
		DIE("%s: %s at 0x%llx: %s\n", impl_name[c->impl], what, (unsigned long long)iova,
		    strerror(e));
}

/* Builds level li for implementation m; 0, or -1 if it went over the budget. */
static int build(struct ctx *c, int li, enum impl m)
{
	long n = counts[li];
	struct kmem k0, k1;
	double t0;
	__u64 iova = 0;

	kmem_read(&k0);
	t0 = now_s();
	/* The first area: kernel-chosen, which gives the base of the layout. */
	must(c, ctx_map(c, page_of(0), PAGE, &iova, 0), "kernel-chosen map", 0);
	lay_out(c, iova, n + 1);
	for (long i = 1; i < n; i++) {
		iova = slot[i];
		must(c, ctx_map(c, page_of(i), PAGE, &iova, 1), "fixed map (building)", slot[i]);
		if ((i & 1023) == 0 && now_s() - t0 > BUILD_BUDGET) {
			printf("# scale: %s: building %ld areas: over the budget (%.0f s) after %ld\n",
			       impl_name[m], n, BUILD_BUDGET, i);
			return -1;
		}
	}
	lv[li][m].build_s = now_s() - t0;
	kmem_read(&k1);
	lv[li][m].bytes_per_area = (double)(k1.book + k1.iommu - k0.book - k0.iommu) / n;
	/* Slab pages come and go by themselves: a total this small says nothing. */
	if (fabs(lv[li][m].bytes_per_area * n) < NOISE)
		lv[li][m].bytes_per_area = NAN;
	return 0;
}

static double timed_unmap(struct ctx *c, __u64 iova)
{
	double t0 = now_s();

	must(c, ctx_unmap(c, iova, PAGE), "unmap", iova);
	return now_s() - t0;
}

static double timed_map(struct ctx *c, long page, __u64 *iova, int fixed)
{
	double t0 = now_s();

	must(c, ctx_map(c, page_of(page), PAGE, iova, fixed), fixed ? "fixed map" : "kernel-chosen map",
	     *iova);
	return now_s() - t0;
}

static void operations(struct ctx *c, int li, enum impl m)
{
	long n = counts[li], mid = n / 2;
	struct level *l = &lv[li][m];
	double t[NOPS][REPS], sum = 0;
	int unmap_ok = allowed(li, m, OP_UNMAP), fixed_ok = allowed(li, m, OP_FIXED);
	int reps = 0;

	/* Unmap the middle area, map it again at its IOVA. */
	if (unmap_ok && fixed_ok) {
		while (reps < REPS && (reps == 0 || sum < REP_TIME)) {
			__u64 iova = slot[mid];

			t[OP_UNMAP][reps] = timed_unmap(c, iova);
			t[OP_FIXED][reps] = timed_map(c, mid, &iova, 1);
			sum += t[OP_UNMAP][reps] + t[OP_FIXED][reps];
			reps++;
		}
	} else if (unmap_ok) {
		/* Once, leaving a hole: N - 1 areas from here on. */
		t[OP_UNMAP][0] = timed_unmap(c, slot[mid]);
		reps = 1;
	} else if (fixed_ok) {
		/* Once, above the kernel-chosen map's slot: N + 1 areas from here on. */
		__u64 iova = slot[n + 1];

		t[OP_FIXED][0] = timed_map(c, n + 1, &iova, 1);
		reps = 1;
	}
	l->op[OP_UNMAP].state = unmap_ok ? MEASURED : OVER_BUDGET;
	l->op[OP_FIXED].state = fixed_ok ? MEASURED : OVER_BUDGET;
	if (unmap_ok)
		l->op[OP_UNMAP].t = median(t[OP_UNMAP], reps);
	if (fixed_ok)
		l->op[OP_FIXED].t = median(t[OP_FIXED], reps);

	/* A kernel-chosen map: first fit, right after the packed areas. */
	if (!allowed(li, m, OP_AUTO)) {
		l->op[OP_AUTO].state = OVER_BUDGET;
		return;
	}
	reps = 0;
	sum = 0;
	while (reps < REPS && (reps == 0 || sum < REP_TIME)) {
		__u64 iova = 0;

		t[OP_AUTO][reps] = timed_map(c, n, &iova, 0);
		sum += t[OP_AUTO][reps++];
		if (iova != slot[n] && !placement_note[0])
			snprintf(placement_note, sizeof(placement_note),
				 "note: %s's kernel-chosen map with %ld areas went to 0x%llx, not 0x%llx",
				 impl_name[m], n, (unsigned long long)iova,
				 (unsigned long long)slot[n]);
		if (!unmap_ok)
			break;	/* it stays: its unmap is over the budget */
		must(c, ctx_unmap(c, iova, PAGE), "unmap", iova);
	}
	l->op[OP_AUTO].state = MEASURED;
	l->op[OP_AUTO].t = median(t[OP_AUTO], reps);
}

static void run_level(int li, enum impl m)
{
	struct level *l = &lv[li][m];
	long n = counts[li];
	struct ctx c;
	char b[3][32];

	/* Over the budget or out of memory at a lower level: so here. */
	for (int p = 0; p < li; p++) {
		if (lv[p][m].state == OVER_BUDGET || lv[p][m].state == NO_MEMORY) {
			l->state = lv[p][m].state;
			return;
		}
	}
	if (li > 0 && lv[li - 1][m].state == MEASURED) {
		const struct level *p = &lv[li - 1][m];
		double ratio = (double)n / counts[li - 1];
		long long avail = proc_value("/proc/meminfo", "MemAvailable") * 1024;

		double cost = (p->build_s + p->op[OP_CLOSE].t) * ratio;

		if (p->build_s * ratio > BUILD_BUDGET || now_s() - bench_t0 + cost > scale_total_budget) {
			printf("# scale: %s: %ld areas would take ~%.0f s to build and close: "
			       "over the budget\n", impl_name[m], n, cost);
			l->state = OVER_BUDGET;
			return;
		}
		if (!isnan(p->bytes_per_area) && p->bytes_per_area * n * 1.25 + 64 * MiB > avail) {
			printf("# scale: %s: %ld areas need ~%.0f MiB, %lld MiB available\n",
			       impl_name[m], n, p->bytes_per_area * n / MiB, avail / (long long)MiB);
			l->state = NO_MEMORY;
			return;
		}
	}
	ctx_open(&c, m);
	if (build(&c, li, m)) {
		l->state = OVER_BUDGET;
		ctx_close(&c);
		return;
	}
	operations(&c, li, m);
	{
		double t0 = now_s();

		ctx_close(&c);
		l->op[OP_CLOSE].t = now_s() - t0;
		l->op[OP_CLOSE].state = MEASURED;
	}
	l->state = MEASURED;
	printf("# scale: %s, %ld areas: built in %.1f s, %.0f bytes/area; "
	       "kernel-chosen map %s, unmap %s, close %s\n",
	       impl_name[m], n, l->build_s, l->bytes_per_area,
	       l->op[OP_AUTO].state == MEASURED ? fmt_time(b[0], 32, l->op[OP_AUTO].t) : "> budget",
	       l->op[OP_UNMAP].state == MEASURED ? fmt_time(b[1], 32, l->op[OP_UNMAP].t) : "> budget",
	       fmt_time(b[2], 32, l->op[OP_CLOSE].t));
}

static const char *cell(char *buf, size_t size, const struct level *l, enum op op)
{
	if (l->state == NOT_RUN)
		return "not run";
	if (l->state == NO_MEMORY)
		return "n/a (memory)";
	if (l->state == OVER_BUDGET || l->op[op].state != MEASURED)
		return "> budget";
	return fmt_time(buf, size, l->op[op].t);
}

void bench_scale(void)
{
	char b[4][32];

	pool = mmap(NULL, POOL_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	slot = calloc(counts[NCOUNTS - 1] + 2, sizeof(*slot));
	if (pool == MAP_FAILED || !slot)
		DIE("no memory for the scale curve\n");
	memset(pool, 1, POOL_PAGES * PAGE);

	printf("\n# scale: budgets: %.0f s per operation, %.0f s to build a level, the bench "
	       "within %.0f s; areas up to %ld\n", OP_BUDGET, BUILD_BUDGET, scale_total_budget,
	       scale_max_areas);
	for (int li = 0; li < NCOUNTS; li++)
		for (int m = 0; m < NIMPL; m++)
			if (counts[li] <= scale_max_areas)
				run_level(li, m);

	printf("\n## Scale: one more operation with N 4 KiB areas mapped (ioasid / iommufd, ratio)\n\n");
	printf("Median of up to %d; \"> budget\": predicted or found above %.0f s per operation, "
	       "%.0f s to build the level, or the bench's %.0f s.\n\n", REPS, OP_BUDGET,
	       BUILD_BUDGET, scale_total_budget);
	printf("| areas     |");
	for (int op = 0; op < NOPS; op++)
		printf(" %-36s |", op_name[op]);
	printf("\n|----------:|");
	for (int op = 0; op < NOPS; op++)
		printf("--------------------------------------|");
	printf("\n");
	for (int li = 0; li < NCOUNTS; li++) {
		const struct level *a = &lv[li][IOASID], *f = &lv[li][IOMMUFD];

		printf("| %9ld |", counts[li]);
		for (int op = 0; op < NOPS; op++) {
			char s[96];
			int n = snprintf(s, sizeof(s), "%s / %s", cell(b[0], 32, a, op),
					 cell(b[1], 32, f, op));

			if (a->state == MEASURED && f->state == MEASURED &&
			    a->op[op].state == MEASURED && f->op[op].state == MEASURED)
				snprintf(s + n, sizeof(s) - n, " (%.2f)", a->op[op].t / f->op[op].t);
			printf(" %-36s |", s);
		}
		printf("\n");
	}
	if (placement_note[0])
		printf("\n%s\n", placement_note);

	printf("\n## Scale: building the areas (all but the first by fixed-IOVA map), and the kernel memory per area\n\n");
	printf("Kernel memory: slab + vmalloc + percpu + IOMMU page tables, per area (struct kmem, bench.h);\n"
	       "\"(noise)\": less than %llu KiB in all.\n\n", NOISE / KiB);
	printf("| areas     | build, ioasid | build, iommufd | per area, ioasid / iommufd | bytes per area, ioasid / iommufd |\n");
	printf("|----------:|--------------:|---------------:|---------------------------:|---------------------------------:|\n");
	for (int li = 0; li < NCOUNTS; li++) {
		const struct level *a = &lv[li][IOASID], *f = &lv[li][IOMMUFD];
		char per[80], mem[80], ma[32], mf[32];

		snprintf(per, sizeof(per), "%s / %s",
			 a->state == MEASURED ? fmt_time(b[2], 32, a->build_s / counts[li]) : "-",
			 f->state == MEASURED ? fmt_time(b[3], 32, f->build_s / counts[li]) : "-");
		snprintf(ma, sizeof(ma), isnan(a->bytes_per_area) ? "(noise)" : "%.0f",
			 a->bytes_per_area);
		snprintf(mf, sizeof(mf), isnan(f->bytes_per_area) ? "(noise)" : "%.0f",
			 f->bytes_per_area);
		snprintf(mem, sizeof(mem), "%s / %s", a->state == MEASURED ? ma : "-",
			 f->state == MEASURED ? mf : "-");
		printf("| %9ld | %13s | %14s | %26s | %32s |\n", counts[li],
		       a->state == MEASURED ? fmt_time(b[0], 32, a->build_s) : cell(b[0], 32, a, 0),
		       f->state == MEASURED ? fmt_time(b[1], 32, f->build_s) : cell(b[1], 32, f, 0),
		       per, mem);
	}
	munmap(pool, POOL_PAGES * PAGE);
	free(slot);
}
