// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/ioasid against upstream iommufd, in the same VM, behind the same
 * emulated IOMMU, with the same device model: the benchmark of `make bench`.
 * It prints numbers and ratios ioasid/iommufd (below 1: ioasid is faster or
 * smaller), never a verdict. Under TCG only ratios taken in the same run
 * mean anything.
 *
 * Sections, in this order (bench.h says which file holds which):
 *   latency     map+unmap pairs of 4 KiB .. 256 MiB at a fixed IOVA
 *   throughput  map then unmap 1 GiB backed by 4 KiB pages, THP, 2 MiB and
 *               1 GiB hugetlb, by VA; and by memfd (shmem, hugetlb): GiB/s
 *               and the share spent inside iommu_map()/iommu_unmap(); the
 *               kernel memory each 1 GiB mapping costs
 *   scale       with 10^2 .. 10^6 existing 4 KiB areas, the time of one more
 *               kernel-chosen map, one fixed-IOVA map, one unmap, and of
 *               closing the context; each implementation climbs the curve
 *               only while within its time budget
 *
 * Usage: ioasid_bench [latency] [throughput] [scale] [max-areas=N]
 *                     [total-budget=SECONDS]
 * (no section named: all of them; the scale curve stops climbing where the
 * bench would end after total-budget, default 1320 s). The bench VM (scripts/vm.sh MODE=bench)
 * boots with 4 GiB, a 1 GiB and 520 2 MiB hugetlb pages reserved, and
 * kmemleak off; run as root (RLIMIT_MEMLOCK is lifted).
 */
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

long scale_max_areas = 1000000;
double scale_total_budget = 1320;
double bench_t0;

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

long long read_number(const char *path)
{
	FILE *f = fopen(path, "r");
	long long v;

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

long long proc_value(const char *file, const char *name)
{
	FILE *f = fopen(file, "r");
	char line[256];
	size_t n = strlen(name);
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ' ')) {
			v = strtoll(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

double iommu_ns(void)
{
	FILE *f = fopen("/sys/kernel/debug/ioasid/iommu_time", "r");
	unsigned long long calls, ns, total = 0;
	char name[32];

	if (!f)
		return -1;
	while (fscanf(f, " %31[^:]: %llu calls %llu ns", name, &calls, &ns) == 3)
		total += ns;
	fclose(f);
	return total;
}

void iopte_counts(unsigned long long out[4])
{
	FILE *f = fopen("/sys/kernel/debug/ioasid/iopte_counts", "r");
	char name[16];
	unsigned long long v;

	memset(out, 0, 4 * sizeof(out[0]));
	if (!f)
		return;
	while (fscanf(f, " %15[^:]: %llu", name, &v) == 2) {
		if (!strcmp(name, "4K"))
			out[0] = v;
		else if (!strcmp(name, "2M"))
			out[1] = v;
		else if (!strcmp(name, "1G"))
			out[2] = v;
		else
			out[3] = v;
	}
	fclose(f);
}

void kmem_read(struct kmem *k)
{
	static const char *const book[] = { "Slab", "VmallocUsed", "Percpu", "KernelStack",
					     "PageTables" };

	k->book = 0;
	for (unsigned int i = 0; i < sizeof(book) / sizeof(book[0]); i++) {
		long long v = proc_value("/proc/meminfo", book[i]);

		if (v > 0)
			k->book += v * 1024;
	}
	k->iommu = proc_value("/proc/vmstat", "nr_iommu_pages") * (long long)PAGE;
	k->free = proc_value("/proc/meminfo", "MemFree") * 1024;
}

const char *fmt_time(char *buf, size_t size, double s)
{
	if (s < 1e-3)
		snprintf(buf, size, "%.0f us", s * 1e6);
	else if (s < 10e-3)
		snprintf(buf, size, "%.2f ms", s * 1e3);
	else if (s < 1)
		snprintf(buf, size, "%.1f ms", s * 1e3);
	else
		snprintf(buf, size, "%.2f s", s);
	return buf;
}

/* Gives the hugetlb pools back (the scale curve wants the memory). */
static void release_hugepages(void)
{
	glob_t g;

	if (glob("/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages", 0, NULL, &g))
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		write_file(g.gl_pathv[i], "0");
	globfree(&g);
}

int main(int argc, char **argv)
{
	int latency = 0, throughput = 0, scale = 0;
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	struct utsname u;
	const char *iommu = getenv("IOASID_IOMMU");
	double t0 = bench_t0 = now_s();

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "latency"))
			latency = 1;
		else if (!strcmp(argv[i], "throughput"))
			throughput = 1;
		else if (!strcmp(argv[i], "scale"))
			scale = 1;
		else if (!strncmp(argv[i], "max-areas=", 10))
			scale_max_areas = atol(argv[i] + 10);
		else if (!strncmp(argv[i], "total-budget=", 13))
			scale_total_budget = atof(argv[i] + 13);
		else
			DIE("usage: %s [latency] [throughput] [scale] [max-areas=N] "
			    "[total-budget=SECONDS]\n", argv[0]);
	}
	if (!latency && !throughput && !scale)
		latency = throughput = scale = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Root has CAP_IPC_LOCK anyway; 10^6 areas each pin (and charge) a page. */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited))
		DIE("setrlimit(RLIMIT_MEMLOCK): %s\n", strerror(errno));

	uname(&u);
	printf("# ioasid vs iommufd: Linux %s, %s IOMMU, %ld CPUs, %lld MiB RAM, "
	       "hugetlb 2 MiB: %lld, 1 GiB: %lld\n",
	       u.release, iommu ? iommu : "?", sysconf(_SC_NPROCESSORS_ONLN),
	       proc_value("/proc/meminfo", "MemTotal") / 1024,
	       read_number("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
	       read_number("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"));
	printf("# ratio = ioasid/iommufd: below 1, ioasid is faster (or smaller)\n");

	backend_init();
	if (latency) {
		struct ctx ctx[NIMPL];

		for (int i = 0; i < NIMPL; i++)
			ctx_open(&ctx[i], i);
		bench_latency(ctx);
		for (int i = 0; i < NIMPL; i++)
			ctx_close(&ctx[i]);
	}
	if (throughput)
		bench_throughput();
	release_hugepages();
	if (scale)
		bench_scale();
	printf("\n# bench done in %.0f s\n", now_s() - t0);
	return 0;
}
