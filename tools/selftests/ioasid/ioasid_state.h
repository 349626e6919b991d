/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What fuzz_test, storm_test and fail_nth_test observe of the module from
 * user space, to check that nothing was left behind: the counts of a context
 * (fdinfo), the module's global counts (debugfs), pinned memory (vmstat and
 * /proc/self/status), the PCI devices of the VM, the errnos each ioctl is
 * documented to return, a seeded PRNG, and the edu device's DMA.
 *
 * None of this is a stable ABI of the module (fdinfo and debugfs are for
 * tests and people): the readers accept what exists and report -1 for what
 * does not.
 */
#ifndef IOASID_STATE_H
#define IOASID_STATE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "edu.h"
#include "ioasid_util.h"

#define PG 4096ull
#define DEBUGFS "/sys/kernel/debug/ioasid/"

/* --- small files ---------------------------------------------------------- */

/*
 * Opening a file in the test VM costs about 10 ms (a debug kernel under
 * TCG), reading one that is open about 50 us: the files read over and over
 * (fdinfo, status, vmstat, debugfs) stay open, one set per process, and are
 * read again from offset 0, which regenerates a seq_file.
 */
struct st_open_file {
	pid_t pid;
	int fd;
	char path[128];
};

static struct st_open_file st_files[32];

static inline int st_open_cached(const char *path, int flags)
{
	pid_t pid = getpid();
	int free_slot = -1;

	for (int i = 0; i < 32; i++) {
		if (st_files[i].pid == pid && !strcmp(st_files[i].path, path))
			return st_files[i].fd;
		if (free_slot < 0 && st_files[i].pid != pid)
			free_slot = i;
	}
	if (free_slot < 0 || strlen(path) >= sizeof(st_files[0].path))
		return -1;
	/* A slot of another process (our parent, before a fork) is ours to reuse; its fd is not. */
	st_files[free_slot].fd = open(path, flags | O_CLOEXEC);
	if (st_files[free_slot].fd < 0)
		return -1;
	st_files[free_slot].pid = pid;
	memcpy(st_files[free_slot].path, path, strlen(path) + 1);
	return st_files[free_slot].fd;
}

/* Forgets a cached file (fdinfo of a descriptor that was closed). */
static inline void st_forget(const char *path)
{
	for (int i = 0; i < 32; i++) {
		if (st_files[i].pid == getpid() && !strcmp(st_files[i].path, path)) {
			close(st_files[i].fd);
			st_files[i].pid = 0;
		}
	}
}

static inline ssize_t st_slurp(const char *path, char *buf, size_t size)
{
	int fd = st_open_cached(path, O_RDONLY);
	ssize_t n, len = 0;

	if (fd < 0)
		return -1;
	while ((n = pread(fd, buf + len, size - 1 - len, len)) > 0)
		len += n;
	buf[len] = '\0';
	return n < 0 ? -1 : len;
}

/* A file read once (sysfs attributes of devices): not kept open. */
static inline ssize_t st_read_once(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static inline int st_write(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -errno;
	close(fd);
	return ret;
}

/* The number after "key" in a "key:\tvalue" file, or -1. */
static inline long st_field(const char *path, const char *key)
{
	char buf[8192], *p;
	size_t n = strlen(key);

	if (st_slurp(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, key, n) && p[n] == ':')
			return strtol(p + n + 1, NULL, 10);
	}
	return -1;
}

/* --- a context: fdinfo ---------------------------------------------------- */

struct ctx_counts {
	long ids, devices, areas;
};

static inline int ctx_counts(int fd, struct ctx_counts *c)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (st_slurp(path, buf, sizeof(buf)) <= 0 || !strstr(buf, "ioasid-ids:")) {
		/* The descriptor was closed and its number taken by another file: look again. */
		st_forget(path);
		if (st_slurp(path, buf, sizeof(buf)) <= 0)
			return -1;
	}
	p = strstr(buf, "ioasid-ids:");
	c->ids = p ? strtol(p + 11, NULL, 10) : -1;
	p = strstr(buf, "ioasid-devices:");
	c->devices = p ? strtol(p + 15, NULL, 10) : -1;
	p = strstr(buf, "ioasid-areas:");
	c->areas = p ? strtol(p + 13, NULL, 10) : -1;
	return c->ids < 0 || c->devices < 0 ? -1 : 0;
}

/* --- the module and the system: debugfs, vmstat, status -------------------- */

/* Pages pinned with FOLL_PIN right now, system-wide. */
static inline long st_foll_pins(void)
{
	char buf[16384], *a, *r;

	int fd = st_open_cached("/proc/sys/vm/stat_refresh", O_WRONLY);

	/* Fold the per-CPU counter deltas first, or small changes do not show. */
	if (fd < 0 || pwrite(fd, "1", 1, 0) != 1)
		return -1;
	if (st_slurp("/proc/vmstat", buf, sizeof(buf)) < 0)
		return -1;
	a = strstr(buf, "nr_foll_pin_acquired ");
	r = strstr(buf, "nr_foll_pin_released ");
	if (!a || !r)
		return -1;
	return strtol(a + 21, NULL, 10) - strtol(r + 21, NULL, 10);
}

/*
 * Memory pinned and charged to this process, in kB: VmLck plus VmPin. The
 * module charges one of them (locked_vm today, pinned_vm after the change
 * under way); the sum is right either way.
 */
static inline long st_pinned_kb(void)
{
	long lck = st_field("/proc/self/status", "VmLck");
	long pin = st_field("/proc/self/status", "VmPin");

	return (lck < 0 ? 0 : lck) + (pin < 0 ? 0 : pin);
}

static inline long st_debugfs_long(const char *name)
{
	char path[128], buf[64];

	snprintf(path, sizeof(path), DEBUGFS "%s", name);
	if (st_slurp(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* The IOPTEs of all IOASIDs, by page size: 4K, 2M, 1G, other. */
struct iopte_counts {
	long n[4];
};

static inline int st_iopte(struct iopte_counts *c)
{
	static const char *const keys[] = { "4K", "2M", "1G", "other" };

	for (int i = 0; i < 4; i++) {
		c->n[i] = st_field(DEBUGFS "iopte_counts", keys[i]);
		if (c->n[i] < 0)
			return -1;
	}
	return 0;
}

/* Everything that must come back to where it was once a test let go of what it made. */
struct global_state {
	struct iopte_counts iopte;
	long contexts;		/* debugfs contexts */
	long pinned_pages;	/* debugfs pinned_pages; -1 where the module has none */
	long foll_pins;		/* vmstat, system-wide */
	long pinned_kb;		/* VmLck + VmPin of this process */
};

static inline void st_global(struct global_state *g)
{
	if (st_iopte(&g->iopte))
		memset(&g->iopte, 0xff, sizeof(g->iopte));
	g->contexts = st_debugfs_long("contexts");
	g->pinned_pages = st_debugfs_long("pinned_pages");
	g->foll_pins = st_foll_pins();
	g->pinned_kb = st_pinned_kb();
}

/*
 * The first difference between two global states, described in buf; 0 if
 * they are the same. foll_pins is compared only if with_pins (other processes
 * of the test may pin at the same time).
 */
static inline int st_global_diff(const struct global_state *want, const struct global_state *got,
				 int with_pins, char *buf, size_t n)
{
	static const char *const sz[] = { "4K", "2M", "1G", "other" };

	for (int i = 0; i < 4; i++) {
		if (want->iopte.n[i] != got->iopte.n[i]) {
			snprintf(buf, n, "IOPTEs %s: %ld, expected %ld", sz[i], got->iopte.n[i],
				 want->iopte.n[i]);
			return 1;
		}
	}
	if (want->contexts != got->contexts) {
		snprintf(buf, n, "contexts: %ld, expected %ld", got->contexts, want->contexts);
		return 1;
	}
	if (want->pinned_pages != got->pinned_pages) {
		snprintf(buf, n, "pinned_pages: %ld, expected %ld", got->pinned_pages,
			 want->pinned_pages);
		return 1;
	}
	if (want->pinned_kb != got->pinned_kb) {
		snprintf(buf, n, "VmLck+VmPin: %ld kB, expected %ld kB", got->pinned_kb,
			 want->pinned_kb);
		return 1;
	}
	if (with_pins && want->foll_pins != got->foll_pins) {
		snprintf(buf, n, "FOLL_PIN pages (vmstat): %ld, expected %ld", got->foll_pins,
			 want->foll_pins);
		return 1;
	}
	buf[0] = '\0';
	return 0;
}

/* --- the kernel log ------------------------------------------------------- */

static inline void st_kmsg(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int fd;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, msg, strlen(msg)) < 0)
			perror("kmsg");
		close(fd);
	}
}

/* --- the VM's PCI devices -------------------------------------------------- */

struct pci_dev_info {
	char bdf[16];
	unsigned int seg, bus, devfn;
	unsigned int vendor, device;
	int group;		/* IOMMU group number, -1 if none */
	/*
	 * Not handed to ioasid: bound to another driver (EBUSY) or to none
	 * (ENXIO). Only devices bound to the ioasid PCI driver can be bound.
	 */
	int has_driver;
};

static inline long st_hex(const char *path)
{
	char buf[32];

	if (st_read_once(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 16);
}

/* Every PCI device of the VM, sorted by address; returns how many (at most max). */
static inline int st_pci_devices(struct pci_dev_info *out, int max)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		struct pci_dev_info *p = &out[n];
		unsigned int dev, fn;
		char path[300], link[300];
		ssize_t l;

		if (sscanf(e->d_name, "%x:%x:%x.%x", &p->seg, &p->bus, &dev, &fn) != 4)
			continue;
		snprintf(p->bdf, sizeof(p->bdf), "%.15s", e->d_name);
		p->devfn = dev << 3 | fn;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", p->bdf);
		p->vendor = st_hex(path);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", p->bdf);
		p->device = st_hex(path);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", p->bdf);
		l = readlink(path, link, sizeof(link) - 1);
		p->group = -1;
		if (l > 0) {
			link[l] = '\0';
			p->group = atoi(strrchr(link, '/') + 1);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", p->bdf);
		l = readlink(path, link, sizeof(link) - 1);
		p->has_driver = 1;
		if (l > 0) {
			link[l] = '\0';
			p->has_driver = strcmp(strrchr(link, '/') + 1, "ioasid") != 0;
		}
		n++;
	}
	closedir(d);
	for (int i = 0; i < n; i++) {
		for (int j = i + 1; j < n; j++) {
			if (strcmp(out[j].bdf, out[i].bdf) < 0) {
				struct pci_dev_info t = out[i];

				out[i] = out[j];
				out[j] = t;
			}
		}
	}
	return n;
}

static inline int st_pci_present(const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	return access(path, F_OK) == 0;
}

/* Whether this VM's IOMMU translates the DMA of emulated devices (not QEMU's amd-iommu). */
static inline int st_dma_translated(void)
{
	const char *model = getenv("IOASID_IOMMU");

	return !(model && !strcmp(model, "amd"));
}

/* --- errnos ---------------------------------------------------------------- */

/*
 * The errnos Documentation/userspace-api/ioasid.rst lists for each ioctl: the
 * common ones (the extension rules: EINVAL, E2BIG, EOPNOTSUPP, EFAULT; ENOTTY
 * for unknown numbers) plus those listed with it. EOVERFLOW ("not reachable
 * in practice") is listed with no ioctl, and is not accepted.
 */
struct ioctl_doc {
	const char *name;
	unsigned long nr;
	size_t size, min;
	__u32 flags;		/* the flags it defines */
	int errnos[12];		/* beyond the common ones; 0-terminated */
};

static const struct ioctl_doc ioctl_docs[] = {
	{ "IOASID_GET_INFO", IOASID_GET_INFO, sizeof(struct ioasid_info), 24, 0, { 0 } },
	{ "IOASID_ALLOC", IOASID_ALLOC, sizeof(struct ioasid_alloc), 12, IOASID_ALLOC_COHERENT,
	  { ENOSPC, ENOMEM } },
	{ "IOASID_FREE", IOASID_FREE, sizeof(struct ioasid_free), 12, 0, { ENOENT } },
	{ "IOASID_DEVICE_BIND", IOASID_DEVICE_BIND, sizeof(struct ioasid_device_bind), 24, 0,
	  { EPERM, ENODEV, ENXIO, EEXIST, EBUSY, ENOSPC, ENOMEM } },
	{ "IOASID_DEVICE_UNBIND", IOASID_DEVICE_UNBIND, sizeof(struct ioasid_device_unbind), 12, 0,
	  { ENOENT } },
	{ "IOASID_DEVICE_ATTACH", IOASID_DEVICE_ATTACH, sizeof(struct ioasid_device_attach), 16, 0,
	  { ENOENT, ENODEV, EBUSY, EXDEV, ERANGE, EMEDIUMTYPE, ENOMEM } },
	{ "IOASID_DEVICE_DETACH", IOASID_DEVICE_DETACH, sizeof(struct ioasid_device_detach), 12, 0,
	  { ENOENT, ENODEV } },
	{ "IOASID_MAP", IOASID_MAP, sizeof(struct ioasid_map), 40,
	  IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA,
	  { ENOENT, EEXIST, ERANGE, ENOSPC, ENOMEM, EINTR } },
	{ "IOASID_UNMAP", IOASID_UNMAP, sizeof(struct ioasid_unmap), 40, IOASID_UNMAP_ALL,
	  { ENOENT } },
	{ "IOASID_IOVA_RANGES", IOASID_IOVA_RANGES, sizeof(struct ioasid_iova_ranges), 32, 0,
	  { ENOENT, EMSGSIZE, ENOMEM } },
	{ "IOASID_DEVICE_GET_INFO", IOASID_DEVICE_GET_INFO, sizeof(struct ioasid_device_info), 56, 0,
	  { ENOENT, ENODEV, EMSGSIZE, ENOMEM } },
	{ "IOASID_GET_COHERENCY", IOASID_GET_COHERENCY, sizeof(struct ioasid_coherency), 24, 0,
	  { ENOENT } },
	{ "IOASID_EXECUTE_WBINVD", IOASID_EXECUTE_WBINVD, sizeof(struct ioasid_wbinvd), 8, 0,
	  { ENODATA, EPERM } },
	{ "IOASID_MAP_FILE", IOASID_MAP_FILE, sizeof(struct ioasid_map_file), 40,
	  IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA,
	  { ENOENT, EEXIST, ERANGE, ENOSPC, ENOMEM, EINTR, EBADF, EPERM } },
};

#define N_IOCTLS (sizeof(ioctl_docs) / sizeof(ioctl_docs[0]))

static inline const struct ioctl_doc *ioctl_doc(unsigned long nr)
{
	for (size_t i = 0; i < N_IOCTLS; i++)
		if (ioctl_docs[i].nr == nr)
			return &ioctl_docs[i];
	return NULL;
}

/* Whether err is documented for ioctl nr (any number: ENOTTY for unknown ones). */
static inline int errno_documented(unsigned long nr, int err)
{
	const struct ioctl_doc *d = ioctl_doc(nr);

	if (!d)
		return err == ENOTTY;
	switch (err) {
	case EINVAL: case E2BIG: case EOPNOTSUPP: case EFAULT:
		return 1;
	}
	for (int i = 0; d->errnos[i]; i++)
		if (d->errnos[i] == err)
			return 1;
	return 0;
}

static inline const char *ioctl_name(unsigned long nr)
{
	const struct ioctl_doc *d = ioctl_doc(nr);

	return d ? d->name : "(unknown ioctl)";
}

/* The fields of an ioctl's argument, for messages that name the call. */
static inline void describe_arg(unsigned long nr, const void *arg, char *buf, size_t n)
{
	const __u32 *w = arg;

	switch (nr) {
	case IOASID_DEVICE_BIND: {
		const struct ioasid_device_bind *b = arg;

		snprintf(buf, n, "argsz=%u flags=%#x pci=%04x:%02x:%02x.%x reserved=%#x",
			 b->argsz, b->flags, b->pci_segment, b->pci_bus, b->pci_devfn >> 3,
			 b->pci_devfn & 7, b->__reserved);
		return;
	}
	case IOASID_MAP: {
		const struct ioasid_map *m = arg;

		snprintf(buf, n, "argsz=%u flags=%#x ioasid=%u reserved=%#x user_va=%#llx length=%#llx iova=%#llx",
			 m->argsz, m->flags, m->ioasid, m->__reserved,
			 (unsigned long long)m->user_va, (unsigned long long)m->length,
			 (unsigned long long)m->iova);
		return;
	}
	case IOASID_MAP_FILE: {
		const struct ioasid_map_file *m = arg;

		snprintf(buf, n, "argsz=%u flags=%#x ioasid=%u fd=%d start=%#llx length=%#llx iova=%#llx",
			 m->argsz, m->flags, m->ioasid, m->fd, (unsigned long long)m->start,
			 (unsigned long long)m->length, (unsigned long long)m->iova);
		return;
	}
	case IOASID_UNMAP: {
		const struct ioasid_unmap *u = arg;

		snprintf(buf, n, "argsz=%u flags=%#x ioasid=%u reserved=%#x iova=%#llx length=%#llx",
			 u->argsz, u->flags, u->ioasid, u->__reserved,
			 (unsigned long long)u->iova, (unsigned long long)u->length);
		return;
	}
	case IOASID_IOVA_RANGES: {
		const struct ioasid_iova_ranges *r = arg;

		snprintf(buf, n, "argsz=%u flags=%#x ioasid=%u num_ranges=%u ranges_uptr=%#llx",
			 r->argsz, r->flags, r->ioasid, r->num_ranges,
			 (unsigned long long)r->ranges_uptr);
		return;
	}
	case IOASID_DEVICE_GET_INFO: {
		const struct ioasid_device_info *d = arg;

		snprintf(buf, n, "argsz=%u flags=%#x dev_id=%u num_regions=%u regions_uptr=%#llx",
			 d->argsz, d->flags, d->dev_id, d->num_regions,
			 (unsigned long long)d->regions_uptr);
		return;
	}
	case IOASID_EXECUTE_WBINVD:
		snprintf(buf, n, "argsz=%u flags=%#x", w[0], w[1]);
		return;
	default:
		/* Every other struct is four __u32 (ALLOC, FREE, UNBIND, ATTACH, DETACH) or six. */
		snprintf(buf, n, "argsz=%u flags=%#x words=[%#x %#x]", w[0], w[1], w[2], w[3]);
		return;
	}
}

/* --- a seeded PRNG (splitmix64) -------------------------------------------- */

struct rng {
	uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* True with probability pct percent. */
static inline int rng_pct(struct rng *r, unsigned int pct)
{
	return rng_below(r, 100) < pct;
}

/* --- time ------------------------------------------------------------------- */

static inline double st_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- edu DMA ----------------------------------------------------------------- */

/*
 * RAM at IOVA src -> the device's buffer -> RAM at IOVA dst: two DMAs of the
 * edu engine (each takes QEMU's 100 ms timer).
 */
static inline int st_edu_round_trip(struct edu *e, uint64_t src, uint64_t dst, uint32_t len)
{
	if (edu_dma(e, src, EDU_BUF, len, 0))
		return -1;
	return edu_dma(e, EDU_BUF, dst, len, 1);
}

static inline void st_fill(uint8_t *p, size_t n, uint64_t seed)
{
	struct rng r = { seed };

	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rng_next(&r);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

#endif
