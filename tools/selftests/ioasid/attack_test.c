// SPDX-License-Identifier: GPL-2.0
/*
 * Adversarial tests of /dev/ioasid: one test per attack, each asserting the
 * secure (documented) outcome, so that a test FAILS where the module has a
 * defect. Attacks as an unprivileged holder of the fd (boundary values, argsz
 * games, races, fork, SCM_RIGHTS), as an administrator (hot removal, driver
 * unbind, rebinding, rmmod), and with hostile memory (tmpfs truncation,
 * munmap/mprotect during IOASID_MAP, hugetlb, SIGKILL mid-map). Under the
 * intel-pt VM (iommu.passthrough=1) DMA still in flight when a device leaves
 * its context is checked against a canary at the physical address it would
 * reach in the identity domain.
 *
 * Every test that changes the PCI topology or driver bindings restores it
 * (rescan, driver_override, drivers_probe).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/ioasid.h>
#include <linux/userfaultfd.h>

#include "edu.h"
#include "ioasid_util.h"
#include "kselftest_harness.h"

#define PAGE 4096ull
/*
 * The MSI window the IOMMU reserves: 0xfee00000 on x86 (VT-d, AMD-Vi,
 * virtio-iommu); SMMUv3's software MSI window at 128 MiB on arm64.
 */
#if defined(__aarch64__)
#define MSI_START 0x08000000ull
#define MSI_LAST 0x080fffffull
#else
#define MSI_START 0xfee00000ull
#define MSI_LAST 0xfeefffffull
#endif
/* Low, below both MSI windows. */
#define IOVA_A 0x100000ull
/* Above every MSI window, for maps larger than the space below it. */
#define IOVA_HIGH 0x100000000ull

static const char *const EDUS[] = {
	"0000:00:05.0", "0000:00:06.0", "0000:00:06.1", "0000:01:01.0", "0000:01:02.0",
};

/* --- helpers ---------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void kmsg(const char *msg)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, msg, strlen(msg)) < 0)
			perror("kmsg");
		close(fd);
	}
}

static int sysfs_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int has_driver(const char *bdf, const char *drv)
{
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	return !drv || !strcmp(strrchr(link, '/') + 1, drv);
}

static int exists(const char *bdf)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	return access(path, F_OK) == 0;
}

/* Brings every edu back, handed to the ioasid driver, as the VM runner left them. */
static void restore_devices(void)
{
	char path[256];

	sysfs_write("/sys/bus/pci/rescan", "1");
	for (unsigned int i = 0; i < sizeof(EDUS) / sizeof(EDUS[0]); i++) {
		if (!exists(EDUS[i]) || has_driver(EDUS[i], "ioasid"))
			continue;
		if (has_driver(EDUS[i], NULL)) {
			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", EDUS[i]);
			sysfs_write(path, EDUS[i]);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", EDUS[i]);
		sysfs_write(path, "ioasid");
		sysfs_write("/sys/bus/pci/drivers_probe", EDUS[i]);
	}
}

/*
 * Writes val to path in a child, and waits up to timeout seconds for it.
 * Returns the write's result (0 or -errno), or -ETIMEDOUT if the write did
 * not return in time (the child is left behind, stuck in the kernel).
 */
static int sysfs_write_bounded(const char *path, const char *val, double timeout)
{
	double t0 = now();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(-sysfs_write(path, val));
	while (now() - t0 < timeout) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? -WEXITSTATUS(status) : -EINTR;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static int remove_dev(const char *bdf, double timeout)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
	return sysfs_write_bounded(path, "1", timeout);
}

static long vmstat(const char *key)
{
	char name[64];
	long val, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", name, &val) == 2)
		if (!strcmp(name, key))
			found = val;
	fclose(f);
	return found;
}

/* Pages pinned with FOLL_PIN right now, system-wide. */
static long pins(void)
{
	sysfs_write("/proc/sys/vm/stat_refresh", "1");
	return vmstat("nr_foll_pin_acquired") - vmstat("nr_foll_pin_released");
}


static long fdinfo(int fd, const char *key)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return -1;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static int map_flags(int fd, __u32 ioasid, __u64 va, __u64 len, __u64 *iova, __u32 flags)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .flags = flags, .ioasid = ioasid,
		.user_va = va, .length = len, .iova = iova ? *iova : 0,
	};
	int ret = xioctl(fd, IOASID_MAP, &m);

	if (iova)
		*iova = m.iova;
	return ret;
}

static int unmap_all(int fd, __u32 ioasid, __u64 *bytes)
{
	struct ioasid_unmap u = { .argsz = sizeof(u), .flags = IOASID_UNMAP_ALL, .ioasid = ioasid };
	int ret = xioctl(fd, IOASID_UNMAP, &u);

	if (bytes)
		*bytes = u.out_unmapped;
	return ret;
}

static int dev_info(int fd, __u32 dev, struct ioasid_device_info *info)
{
	int ret;

	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->dev_id = dev;
	ret = xioctl(fd, IOASID_DEVICE_GET_INFO, info);
	/* No room for the regions was given: EMSGSIZE with everything else written. */
	return ret == -EMSGSIZE ? 0 : ret;
}

static int edu_start(struct edu *e, uint64_t src, uint64_t dst, uint32_t count, int to_ram)
{
	volatile uint64_t *reg = (volatile uint64_t *)(e->bar + 0x80);

	reg[0] = src;
	reg[1] = dst;
	reg[2] = count;
	reg[3] = 1 | (to_ram ? 2 : 0);
	return 0;
}

static int edu_set_master(const char *bdf, int on)
{
	char path[128];
	uint16_t cmd;
	int fd, ret = -1;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	if (pread(fd, &cmd, 2, 4) == 2) {
		cmd = on ? (cmd | 0x6) : (cmd & ~0x4);
		ret = pwrite(fd, &cmd, 2, 4) == 2 ? 0 : -1;
	}
	close(fd);
	return ret;
}

static uint64_t phys_of(void *va)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, 8, ((uintptr_t)va / PAGE) * 8) != 8)
		ent = 0;
	close(fd);
	if (!(ent & (1ull << 63)))
		return 0;
	return (ent & ((1ull << 55) - 1)) * PAGE;
}

/*
 * Finds a page of anonymous memory whose physical address the edu can reach
 * (its DMA mask is 28 bits) and which is not physical page 0. Returns its
 * address in *va (inside a pool the caller munmaps) and its physical address.
 */
static uint64_t low_canary(uint8_t **pool, size_t pool_size, uint8_t **va)
{
	*pool = mmap(NULL, pool_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*pool == MAP_FAILED)
		return 0;
	for (size_t off = 0; off < pool_size; off += PAGE) {
		uint64_t pa;

		(*pool)[off] = 1;
		mlock(*pool + off, PAGE);
		pa = phys_of(*pool + off);
		if (pa && pa < (1ull << 28) - (1ull << 20) && pa >= 0x200000) {
			*va = *pool + off;
			return pa;
		}
	}
	return 0;
}

static int is_intel_pt(void)
{
	const char *m = getenv("IOASID_IOMMU");

	return m && !strcmp(m, "intel-pt");
}

static int dma_translated(void)
{
	const char *m = getenv("IOASID_IOMMU");

	return !(m && !strcmp(m, "amd"));
}

/* A trivial fixture, for per-test timeouts (TEST_F_TIMEOUT). */
FIXTURE(atk) {
	int unused;
};

FIXTURE_SETUP(atk)
{
}

FIXTURE_TEARDOWN(atk)
{
}

/* A context with the lone edu 00:05.0 bound and attached. */
struct ctx1 {
	int fd;
	struct edu edu;
	__u32 dev, ioasid;
};

static int ctx1_open(struct ctx1 *c, const char *bdf)
{
	memset(c, 0, sizeof(*c));
	c->fd = open("/dev/ioasid", O_RDWR);
	if (c->fd < 0 || edu_setup(&c->edu, bdf))
		return -1;
	if (bind_dev(c->fd, &c->edu, &c->dev, NULL) || alloc_ioasid(c->fd, &c->ioasid) ||
	    attach(c->fd, c->dev, c->ioasid))
		return -2;
	return 0;
}

static void ctx1_close(struct ctx1 *c)
{
	if (c->fd >= 0)
		close(c->fd);
	edu_teardown(&c->edu);
}

/* --- the unprivileged holder of the fd: boundaries ------------------------- */

/*
 * IOASID_MAP with boundary values in every field: each must fail with the
 * documented errno (or succeed where the contract allows it), and a failed
 * map must leave nothing pinned, charged or mapped.
 */
TEST_F_TIMEOUT(atk, map_boundaries, 60)
{
	struct ctx1 c;
	struct ioasid_device_info info;
	uint8_t *buf, *ro;
	uint64_t b;
	__u64 iova, bytes, ap_last;
	long pins0, lck0;
	struct {
		const char *what;
		__u64 va, len, iova;
		__u32 flags;
		int err, err2;
	} cases[32];
	int n = 0;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 1, 8 * PAGE);
	b = (uintptr_t)buf;
	ASSERT_EQ(0, dev_info(c.fd, c.dev, &info));
	ap_last = info.out_aperture_last;
	pins0 = pins();
	lck0 = vmpin_kb();

#define F (IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA)
#define CASE(w, v, l, i, f, e, e2) cases[n++] = (typeof(cases[0])){ w, v, l, i, f, e, e2 }
	CASE("length 0", b, 0, IOVA_A, F, EINVAL, EINVAL);
	CASE("length 1", b, 1, IOVA_A, F, EINVAL, EINVAL);
	CASE("length page-1", b, PAGE - 1, IOVA_A, F, EINVAL, EINVAL);
	CASE("va unaligned", b + 1, PAGE, IOVA_A, F, EINVAL, EINVAL);
	CASE("iova unaligned", b, PAGE, IOVA_A + 1, F, EINVAL, EINVAL);
	CASE("va + length wraps", -PAGE, 2 * PAGE, IOVA_A, F, EINVAL, EINVAL);
	CASE("va 2^64-1", ~0ull, PAGE, IOVA_A, F, EINVAL, EINVAL);
	CASE("iova + length wraps", b, 2 * PAGE, -PAGE, F, EINVAL, EINVAL);
	CASE("iova 2^64-page", b, PAGE, -PAGE, F, ERANGE, ERANGE);
	CASE("iova 2^63", b, PAGE, 1ull << 63, F, ERANGE, ERANGE);
	CASE("iova past aperture", b, PAGE, ap_last + 1, F, ERANGE, ERANGE);
	CASE("iova straddles aperture end", b, 2 * PAGE, ap_last + 1 - PAGE, F, ERANGE, ERANGE);
	CASE("iova at MSI window", b, PAGE, MSI_START, F, ERANGE, ERANGE);
	CASE("iova straddles MSI start", b, 2 * PAGE, MSI_START - PAGE, F, ERANGE, ERANGE);
	CASE("iova at MSI last page", b, PAGE, MSI_LAST + 1 - PAGE, F, ERANGE, ERANGE);
	CASE("length 2^64-page", b, -PAGE, IOVA_A, F, EINVAL, EINVAL);
	CASE("length 2^63 (va wraps)", (1ull << 63) + PAGE, 1ull << 63, IOVA_A, F, EINVAL, EINVAL);
	/* 4 GiB at 4 GiB: usable IOVAs, unmapped memory at va 4096. */
	CASE("length 2^32, huge", PAGE, 1ull << 32, 1ull << 32, F, EFAULT, ENOMEM);
	/* Past the aperture: refused before anything is pinned. */
	CASE("length 2^62 from va 4096", PAGE, 1ull << 62, IOVA_A, F, ERANGE, ERANGE);
	CASE("kernel va", 0xffff888000000000ull, PAGE, IOVA_A, F, EFAULT, EFAULT);
	CASE("va 0", 0, PAGE, IOVA_A, F, EFAULT, EFAULT);
	CASE("write to read-only memory", (uintptr_t)ro, PAGE, IOVA_A, F, EFAULT, EFAULT);
	CASE("no READ/WRITE", b, PAGE, IOVA_A, IOASID_MAP_FIXED_IOVA, EINVAL, EINVAL);
	CASE("unknown flag bit 31", b, PAGE, IOVA_A, F | (1u << 31), EOPNOTSUPP, EOPNOTSUPP);
	CASE("kernel-chosen, length+offset = 2^64", PAGE, -PAGE, 0, RW, ENOSPC, ENOSPC);
	CASE("kernel-chosen, length 2^63", PAGE, 1ull << 63, 0, RW, ENOSPC, ENOSPC);
#undef CASE
	for (int i = 0; i < n; i++) {
		iova = cases[i].iova;
		int ret = map_flags(c.fd, c.ioasid, cases[i].va, cases[i].len, &iova, cases[i].flags);

		EXPECT_TRUE(ret == -cases[i].err || ret == -cases[i].err2)
			TH_LOG("%s: got %d (%s), want %d or %d", cases[i].what, ret,
			       strerror(-ret), -cases[i].err, -cases[i].err2);
		EXPECT_EQ(pins0, pins()) TH_LOG("%s left pages pinned", cases[i].what);
		EXPECT_EQ(lck0, vmpin_kb()) TH_LOG("%s left memory charged", cases[i].what);
	}
	/* Nothing was mapped by any of them. */
	EXPECT_EQ(0, unmap_all(c.fd, c.ioasid, &bytes));
	EXPECT_EQ(0, bytes);

	/* The edges that are allowed: the last page of the aperture, around the MSI window. */
	iova = ap_last + 1 - PAGE;
	EXPECT_EQ(0, map_flags(c.fd, c.ioasid, b, PAGE, &iova, F));
	iova = MSI_START - PAGE;
	EXPECT_EQ(0, map_flags(c.fd, c.ioasid, b, PAGE, &iova, F));
	iova = MSI_LAST + 1;
	EXPECT_EQ(0, map_flags(c.fd, c.ioasid, b, PAGE, &iova, F));
	/* Overlap with those: EEXIST. */
	iova = MSI_LAST + 1;
	EXPECT_EQ(-EEXIST, map_flags(c.fd, c.ioasid, b, PAGE, &iova, F));
	EXPECT_EQ(0, unmap_all(c.fd, c.ioasid, &bytes));
	EXPECT_EQ(3 * PAGE, bytes);
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
}

/* IOASID_UNMAP with boundary values: documented errnos, nothing cut. */
TEST_F_TIMEOUT(atk, unmap_boundaries, 60)
{
	struct ctx1 c;
	uint8_t *buf;
	__u64 bytes = 0;
	long pins0 = pins();
	struct ioasid_unmap u;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, 4 * PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, 2 * PAGE, IOVA_A, RW));
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf + 2 * PAGE, PAGE, 0x40000000, RW));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A, 0, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A, PAGE - 1, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A + 1, PAGE, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, -PAGE, 2 * PAGE, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, PAGE, ~0ull, NULL));
	/* Cutting the 2-page mapping, from either side. */
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A, PAGE, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A + PAGE, PAGE, NULL));
	EXPECT_EQ(-EINVAL, unmap(c.fd, c.ioasid, IOVA_A - PAGE, 2 * PAGE, NULL));
	EXPECT_EQ(-ENOENT, unmap(c.fd, c.ioasid, IOVA_A + 2 * PAGE, PAGE, NULL));
	EXPECT_EQ(-ENOENT, unmap(c.fd, c.ioasid, -PAGE, PAGE, NULL));
	/* ALL with a range: EINVAL. */
	memset(&u, 0, sizeof(u));
	u.argsz = sizeof(u);
	u.flags = IOASID_UNMAP_ALL;
	u.ioasid = c.ioasid;
	u.length = PAGE;
	EXPECT_EQ(-EINVAL, xioctl(c.fd, IOASID_UNMAP, &u));
	EXPECT_LT(pins0, pins());
	/* The whole space but the last page, from page 0: everything. */
	EXPECT_EQ(0, unmap(c.fd, c.ioasid, 0, -PAGE, &bytes));
	EXPECT_EQ(3 * PAGE, bytes);
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
}

/* argsz games: too small, too large, nonzero tail, a tail that cannot be read. */
TEST_F_TIMEOUT(atk, argsz_games, 30)
{
	int fd = open("/dev/ioasid", O_RDWR);
	uint8_t *pg = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	struct ioasid_alloc *a, *ro;
	__u32 argszs[] = { 0, 1, 11, 4097, 0x80000000u, 0xffffffffu };
	int want[] = { EINVAL, EINVAL, EINVAL, E2BIG, E2BIG, E2BIG };

	ASSERT_LE(0, fd);
	ASSERT_NE(MAP_FAILED, pg);
	a = (void *)pg;
	for (unsigned int i = 0; i < sizeof(argszs) / sizeof(argszs[0]); i++) {
		memset(pg, 0, PAGE);
		a->argsz = argszs[i];
		EXPECT_EQ(-want[i], xioctl(fd, IOASID_ALLOC, a)) TH_LOG("argsz %u", argszs[i]);
	}
	/* 4096 with a nonzero last byte: E2BIG; all zero: accepted. */
	memset(pg, 0, PAGE);
	a->argsz = 4096;
	pg[4095] = 1;
	EXPECT_EQ(-E2BIG, xioctl(fd, IOASID_ALLOC, a));
	pg[4095] = 0;
	EXPECT_EQ(0, xioctl(fd, IOASID_ALLOC, a));
	/* The struct ends at a page the caller cannot read: EFAULT, nothing allocated. */
	munmap(pg + PAGE, PAGE);
	a = (void *)(pg + PAGE - 16);
	memset(a, 0, 16);
	a->argsz = 32;
	EXPECT_EQ(-EFAULT, xioctl(fd, IOASID_ALLOC, a));
	EXPECT_EQ(1, fdinfo(fd, "ioasid-ids:"));
	/* The minimum size exactly, at the end of the readable page: works, writes 12 bytes. */
	a = (void *)(pg + PAGE - 12);
	memset(a, 0, 12);
	a->argsz = 12;
	EXPECT_EQ(0, xioctl(fd, IOASID_ALLOC, a));
	EXPECT_EQ(2, fdinfo(fd, "ioasid-ids:"));
	/* A pointer in kernel space, and NULL. */
	EXPECT_EQ(-EFAULT, xioctl(fd, IOASID_ALLOC, (void *)0xffff888000000000ull));
	EXPECT_EQ(-EFAULT, xioctl(fd, IOASID_ALLOC, NULL));
	/* A read-only struct: the output cannot be written, the ID is not left behind. */
	ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(ro, 0, sizeof(*ro));
	ro->argsz = sizeof(*ro);
	mprotect(ro, PAGE, PROT_READ);
	EXPECT_EQ(-EFAULT, xioctl(fd, IOASID_ALLOC, ro));
	EXPECT_EQ(2, fdinfo(fd, "ioasid-ids:"));
	close(fd);
}

/*
 * The array pointers of IOASID_IOVA_RANGES and IOASID_DEVICE_GET_INFO: a bad
 * pointer with room is EFAULT; no room never touches the pointer; a huge
 * capacity writes no more than the count.
 */
TEST_F_TIMEOUT(atk, range_arrays, 30)
{
	struct ctx1 c;
	struct ioasid_iova_ranges r;
	struct ioasid_device_info info;
	struct ioasid_iova_range arr[8];

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(&r, 0, sizeof(r));
	r.argsz = sizeof(r);
	r.ioasid = c.ioasid;
	r.num_ranges = 0;
	r.ranges_uptr = 0xdead000000000000ull;
	EXPECT_EQ(-EMSGSIZE, xioctl(c.fd, IOASID_IOVA_RANGES, &r));
	EXPECT_LE(1, r.num_ranges);
	r.num_ranges = 0xffffffffu;
	r.ranges_uptr = 0xffff888000000000ull;
	EXPECT_EQ(-EFAULT, xioctl(c.fd, IOASID_IOVA_RANGES, &r));
	r.num_ranges = 0xffffffffu;
	memset(arr, 0x5a, sizeof(arr));
	r.ranges_uptr = (uintptr_t)arr;
	EXPECT_EQ(0, xioctl(c.fd, IOASID_IOVA_RANGES, &r));
	ASSERT_LT(r.num_ranges, 8);
	EXPECT_EQ(0x5a5a5a5a5a5a5a5aull, arr[r.num_ranges].start);
	ASSERT_EQ(0, dev_info(c.fd, c.dev, &info));
	info.num_regions = 0xffffffffu;
	info.regions_uptr = 0xffff888000000000ull;
	EXPECT_EQ(-EFAULT, xioctl(c.fd, IOASID_DEVICE_GET_INFO, &info));
	ctx1_close(&c);
}

/* --- the unprivileged holder: accounting ----------------------------------- */

/*
 * "all the processes of a user share one limit": a child forked by an
 * unprivileged holder at its RLIMIT_MEMLOCK must not get a fresh allowance.
 */
TEST_F_TIMEOUT(atk, fork_gives_no_fresh_memlock, 60)
{
	struct ctx1 c;
	long pins0 = pins();
	int status;
	pid_t pid;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit lim = { 16 * PAGE, 16 * PAGE };
		uint8_t *buf = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pid_t gc;
		int st;

		if (buf == MAP_FAILED || setrlimit(RLIMIT_MEMLOCK, &lim) ||
		    setgid(65534) || setuid(65534))
			_exit(10);
		memset(buf, 1, 64 * PAGE);
		if (map_at(c.fd, c.ioasid, buf, 16 * PAGE, IOVA_A, RW))
			_exit(11);
		if (map_at(c.fd, c.ioasid, buf + 16 * PAGE, PAGE, IOVA_A + 16 * PAGE, RW) != -ENOMEM)
			_exit(12);
		/* The same user, the same limit: a forked child must be refused too. */
		gc = fork();
		if (gc == 0)
			_exit(map_at(c.fd, c.ioasid, buf + 32 * PAGE, 16 * PAGE,
				     IOVA_A + 32 * PAGE, RW) == -ENOMEM ? 0 : 20);
		if (gc < 0 || waitpid(gc, &st, 0) != gc || !WIFEXITED(st))
			_exit(13);
		_exit(WEXITSTATUS(st));
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("20: a forked child of the same user pinned 16 more pages past RLIMIT_MEMLOCK");
	TH_LOG("pinned through the fd now: %ld pages (limit 16)", pins() - pins0);
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
}

/* The same with SCM_RIGHTS: another process of the same user receives the fd. */
TEST_F_TIMEOUT(atk, scm_rights_gives_no_fresh_memlock, 60)
{
	struct ctx1 c;
	long pins0 = pins();
	int sv[2], st1, st2;
	pid_t p1, p2;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	p1 = fork();
	if (p1 == 0) {
		/* The holder: maps up to its limit, then passes the fd on. */
		struct rlimit lim = { 16 * PAGE, 16 * PAGE };
		uint8_t *buf = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, x = 'x';
		struct iovec iov = { &x, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

		if (setrlimit(RLIMIT_MEMLOCK, &lim) || setgid(65534) || setuid(65534))
			_exit(10);
		memset(buf, 1, 16 * PAGE);
		if (map_at(c.fd, c.ioasid, buf, 16 * PAGE, IOVA_A, RW))
			_exit(11);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &c.fd, sizeof(int));
		if (sendmsg(sv[0], &mh, 0) != 1)
			_exit(12);
		/* Stay alive (holding the pages) until the receiver is done. */
		if (read(sv[0], &x, 1) != 1)
			_exit(13);
		_exit(0);
	}
	close(c.fd);
	c.fd = -1;
	p2 = fork();
	if (p2 == 0) {
		struct rlimit lim = { 16 * PAGE, 16 * PAGE };
		uint8_t *buf = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char cbuf[CMSG_SPACE(sizeof(int))], x;
		struct iovec iov = { &x, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		int fd, ret;

		if (setrlimit(RLIMIT_MEMLOCK, &lim) || setgid(65534) || setuid(65534))
			_exit(10);
		memset(buf, 1, 16 * PAGE);
		if (recvmsg(sv[1], &mh, 0) != 1)
			_exit(14);
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
		ret = map_at(fd, c.ioasid, buf, 16 * PAGE, IOVA_A + 64 * PAGE, RW);
		if (write(sv[1], "x", 1) != 1)
			_exit(15);
		_exit(ret == -ENOMEM ? 0 : 20);
	}
	ASSERT_EQ(p2, waitpid(p2, &st2, 0));
	ASSERT_EQ(p1, waitpid(p1, &st1, 0));
	EXPECT_EQ(0, WEXITSTATUS(st1));
	EXPECT_EQ(0, WEXITSTATUS(st2))
		TH_LOG("20: the receiver of the fd, same user, pinned 16 more pages past the limit");
	edu_teardown(&c.edu);
	EXPECT_EQ(pins0, pins());
}

/* The documented observability of pinned memory: VmPin and debugfs ioasid/pinned_pages. */
TEST_F_TIMEOUT(atk, pinned_memory_is_visible, 30)
{
	struct ctx1 c;
	uint8_t *buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	long pin0 = status_kb("VmPin:");

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 1, 8 * PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, 8 * PAGE, IOVA_A, RW));
	EXPECT_EQ(pin0 + 32, status_kb("VmPin:")) TH_LOG("VmPin does not show the pinned pages");
	EXPECT_EQ(0, access("/sys/kernel/debug/ioasid/pinned_pages", R_OK))
		TH_LOG("debugfs ioasid/pinned_pages is missing");
	ctx1_close(&c);
}

/* --- the unprivileged holder: races on one fd ------------------------------ */

struct race {
	int fd, stop;
	__u32 dev, ioasid;
	uint8_t *buf;
	long bad;
	int bad_errno;
	const char *bad_op;
};

static void race_bad(struct race *r, const char *op, int ret)
{
	__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
	r->bad_errno = ret;
	r->bad_op = op;
}

static int ok_errno(int ret, const int *allowed)
{
	if (ret == 0)
		return 1;
	for (; *allowed; allowed++)
		if (ret == -*allowed)
			return 1;
	return 0;
}

static void *race_map(void *p)
{
	struct race *r = p;
	static const int ok[] = { ENOENT, EEXIST, EINVAL, 0 };
	unsigned int i = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		__u32 id = r->ioasid + (i % 3);
		int ret = map_at(r->fd, id, r->buf + (i % 8) * PAGE, PAGE, IOVA_A + (i % 8) * PAGE, RW);

		if (!ok_errno(ret, ok))
			race_bad(r, "map", ret);
		ret = unmap(r->fd, id, IOVA_A + ((i + 3) % 8) * PAGE, PAGE, NULL);
		if (!ok_errno(ret, ok))
			race_bad(r, "unmap", ret);
		i++;
	}
	return NULL;
}

static void *race_alloc_free(void *p)
{
	struct race *r = p;
	static const int ok[] = { ENOENT, 0 };
	unsigned int i = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		__u32 id;
		int ret = free_ioasid(r->fd, r->ioasid + (i++ % 3));

		if (!ok_errno(ret, ok))
			race_bad(r, "free", ret);
		ret = alloc_ioasid(r->fd, &id);
		if (ret)
			race_bad(r, "alloc", ret);
		else
			__atomic_store_n(&r->ioasid, id, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *race_attach(void *p)
{
	struct race *r = p;
	static const int ok[] = { ENOENT, EBUSY, EINVAL, EXDEV, 0 };
	unsigned int i = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		__u32 dev = __atomic_load_n(&r->dev, __ATOMIC_RELAXED);
		int ret = attach(r->fd, dev, r->ioasid + (i++ % 3));

		if (!ok_errno(ret, ok))
			race_bad(r, "attach", ret);
		ret = detach(r->fd, dev);
		if (!ok_errno(ret, ok))
			race_bad(r, "detach", ret);
	}
	return NULL;
}

static void *race_bind(void *p)
{
	struct race *r = p;
	static const int ok[] = { ENOENT, EEXIST, EBUSY, 0 };
	struct edu e = { .seg = 0, .bus = 0, .devfn = 5 << 3 };

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		__u32 dev;
		int ret = unbind(r->fd, __atomic_load_n(&r->dev, __ATOMIC_RELAXED));

		if (!ok_errno(ret, ok))
			race_bad(r, "unbind", ret);
		ret = bind_dev(r->fd, &e, &dev, NULL);
		if (!ok_errno(ret, ok))
			race_bad(r, "bind", ret);
		if (!ret)
			__atomic_store_n(&r->dev, dev, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *race_dup_close(void *p)
{
	struct race *r = p;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		int d = dup(r->fd);
		struct ioasid_info info = { .argsz = sizeof(info) };

		if (d < 0 || xioctl(d, IOASID_GET_INFO, &info))
			race_bad(r, "dup", -1);
		close(d);
	}
	return NULL;
}

/*
 * Threads of one fd: map/unmap, alloc/free, attach/detach, unbind/bind and
 * close of a dup, all at once. Every errno must be documented for its ioctl,
 * and once the fd is closed nothing stays pinned and the device is free.
 */
TEST_F_TIMEOUT(atk, races_on_one_fd, 120)
{
	struct race r = { 0 };
	struct edu e = { 0 };
	pthread_t th[5];
	void *(*fns[5])(void *) = { race_map, race_alloc_free, race_attach, race_bind,
				     race_dup_close };
	long pins0 = pins();
	double t0;
	__u32 dev;
	int fd2;

	r.fd = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, r.fd);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	ASSERT_EQ(0, bind_dev(r.fd, &e, &r.dev, NULL));
	ASSERT_EQ(0, alloc_ioasid(r.fd, &r.ioasid));
	r.buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(r.buf, 1, 8 * PAGE);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, fns[i], &r));
	t0 = now();
	while (now() - t0 < 8)
		usleep(100000);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(0, r.bad) TH_LOG("%s: %d (%s)", r.bad_op, r.bad_errno, strerror(-r.bad_errno));
	close(r.fd);
	EXPECT_EQ(pins0, pins());
	fd2 = open("/dev/ioasid", O_RDWR);
	EXPECT_EQ(0, bind_dev(fd2, &e, &dev, NULL));
	close(fd2);
	edu_teardown(&e);
}

/*
 * fork and exec keep the context (one open file description); the context
 * dies with the last reference only, and a child's exit changes nothing.
 */
TEST_F_TIMEOUT(atk, fork_exec_and_dup_keep_one_context, 30)
{
	struct ctx1 c;
	uint8_t *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long pins0 = pins();
	int status, d;
	pid_t pid;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 1, PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, PAGE, IOVA_A, RW));
	d = dup(c.fd);
	close(d);
	pid = fork();
	if (pid == 0) {
		char fdstr[16];

		snprintf(fdstr, sizeof(fdstr), "%d", c.fd);
		/* exec keeps the fd (no CLOEXEC); the new image just exits. */
		execl("/bin/sh", "sh", "-c", "exit 0", NULL);
		_exit(1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The parent's context is intact: its mapping and device are there. */
	EXPECT_EQ(pins0 + 1, pins());
	EXPECT_EQ(1, fdinfo(c.fd, "ioasid-devices:"));
	EXPECT_EQ(-EEXIST, map_at(c.fd, c.ioasid, buf, PAGE, IOVA_A, RW));
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
}

/* --- hostile memory --------------------------------------------------------- */

struct hostile {
	int fd, memfd, stop;
	__u32 ioasid;
	uint8_t *shm;
	long bad;
	int bad_ret;
};

static void *truncator(void *p)
{
	struct hostile *h = p;

	while (!__atomic_load_n(&h->stop, __ATOMIC_RELAXED)) {
		if (ftruncate(h->memfd, 0) || ftruncate(h->memfd, 64 * PAGE))
			h->bad++;
		munmap(h->shm + 32 * PAGE, 32 * PAGE);
		mmap(h->shm + 32 * PAGE, 32 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, h->memfd, 32 * PAGE);
		mprotect(h->shm + 16 * PAGE, 16 * PAGE, PROT_READ);
		mprotect(h->shm + 16 * PAGE, 16 * PAGE, PROT_READ | PROT_WRITE);
	}
	return NULL;
}

/*
 * IOASID_MAP of a MAP_SHARED tmpfs file that another thread truncates,
 * munmaps and mprotects at the same time: each map succeeds or fails with a
 * documented errno, and afterwards nothing stays pinned.
 */
TEST_F_TIMEOUT(atk, map_of_memory_changing_underneath, 60)
{
	struct hostile h = { 0 };
	struct ctx1 c;
	pthread_t th;
	long pins0 = pins();
	double t0;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	h.fd = c.fd;
	h.ioasid = c.ioasid;
	h.memfd = memfd_create("ioasid-attack", 0);
	ASSERT_LE(0, h.memfd);
	ASSERT_EQ(0, ftruncate(h.memfd, 64 * PAGE));
	h.shm = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, h.memfd, 0);
	ASSERT_NE(MAP_FAILED, h.shm);
	ASSERT_EQ(0, pthread_create(&th, NULL, truncator, &h));
	t0 = now();
	while (now() - t0 < 5) {
		__u64 bytes;
		int ret = map_at(h.fd, h.ioasid, h.shm, 64 * PAGE, IOVA_A, RW);

		if (ret && ret != -EFAULT && ret != -ENOMEM) {
			h.bad++;
			h.bad_ret = ret;
		}
		unmap_all(h.fd, h.ioasid, &bytes);
	}
	h.stop = 1;
	pthread_join(th, NULL);
	EXPECT_EQ(0, h.bad) TH_LOG("IOASID_MAP: %d", h.bad_ret);
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
}

/* hugetlb memory: map a whole huge page and a 4 KiB slice of one, then unmap. */
TEST_F_TIMEOUT(atk, hugetlb_map_and_slices, 60)
{
	struct ctx1 c;
	char old[32] = "0";
	int f = open("/proc/sys/vm/nr_hugepages", O_RDWR);
	uint8_t *h;
	long pins0 = pins();
	__u64 bytes;

	ASSERT_LE(0, f);
	if (read(f, old, sizeof(old) - 1) < 0)
		old[0] = '0';
	close(f);
	sysfs_write("/proc/sys/vm/nr_hugepages", "4");
	h = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		 -1, 0);
	if (h == MAP_FAILED) {
		sysfs_write("/proc/sys/vm/nr_hugepages", old);
		SKIP(return, "no huge pages");
	}
	memset(h, 3, 4 << 20);
	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	EXPECT_EQ(0, map_at(c.fd, c.ioasid, h, 2 << 20, 0x400000, RW));
	EXPECT_EQ(0, map_at(c.fd, c.ioasid, h + (2 << 20) + 5 * PAGE, PAGE, 0x1000, RW));
	EXPECT_EQ(0, map_at(c.fd, c.ioasid, h + (2 << 20) + PAGE, (2 << 20) - PAGE, 0x801000, RW));
	EXPECT_EQ(0, unmap_all(c.fd, c.ioasid, &bytes));
	EXPECT_EQ((4 << 20) - PAGE + PAGE, bytes);
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
	munmap(h, 4 << 20);
	sysfs_write("/proc/sys/vm/nr_hugepages", old);
}

/* A process killed while one IOASID_MAP pins 128 MiB: nothing stays pinned. */
TEST_F_TIMEOUT(atk, kill_mid_map, 120)
{
	long pins0 = pins();
	struct edu e = { 0 };
	int pipefd[2], status, fd;
	__u32 dev;
	pid_t pid;
	char x;

	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	if (pid == 0) {
		struct ctx1 c;
		size_t len = 128ull << 20;
		uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (ctx1_open(&c, "0000:00:05.0") || buf == MAP_FAILED)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		for (;;) {
			/* Not populated: the pin faults every page in. */
			map_at(c.fd, c.ioasid, buf, len, IOVA_A, RW);
			unmap_all(c.fd, c.ioasid, NULL);
			madvise(buf, len, MADV_DONTNEED);
		}
	}
	ASSERT_EQ(1, read(pipefd[0], &x, 1));
	usleep(700000);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(pins0, pins());
	fd = open("/dev/ioasid", O_RDWR);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	EXPECT_EQ(0, bind_dev(fd, &e, &dev, NULL));
	close(fd);
	edu_teardown(&e);
}

/*
 * Thousands of 4 KiB areas (the same user page pinned again and again, as
 * any holder can within its limit, and past it through fork), then one
 * kernel-chosen IOASID_MAP: the IOVA search (quadratic in the number of
 * areas, under the IOASID's mutex, with no cond_resched()) must not
 * monopolise a CPU: a thread on the same CPU must get to run within 2 s.
 * (The test kernel has CONFIG_PREEMPT_LAZY, which preempts it at a tick.)
 */
static volatile double max_gap;
static volatile int tick_stop;

static void *ticker(void *p)
{
	double prev = now();

	while (!tick_stop) {
		double t;

		usleep(1000);
		t = now();
		if (t - prev > max_gap)
			max_gap = t - prev;
		prev = t;
	}
	return p;
}

TEST_F_TIMEOUT(atk, iova_search_does_not_monopolise_a_cpu, 150)
{
	struct ctx1 c;
	uint8_t *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const int n = 8000;
	cpu_set_t set;
	pthread_t th;
	double t0, t1, gap = 0;
	__u64 iova = 0;
	long pins0 = pins();
	int ret;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 1, PAGE);
	t0 = now();
	for (int i = 0; i < n; i++)
		ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, PAGE, PAGE * (i + 1), RW));
	TH_LOG("%d fixed maps: %.1f s", n, now() - t0);
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
	tick_stop = 0;
	ASSERT_EQ(0, pthread_create(&th, NULL, ticker, NULL));
	usleep(50000);
	max_gap = 0;
	t0 = now();
	ret = map_flags(c.fd, c.ioasid, (uintptr_t)buf, PAGE, &iova, RW);
	t1 = now();
	usleep(50000);
	gap = max_gap;
	tick_stop = 1;
	pthread_join(th, NULL);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(PAGE * (n + 1), iova);
	TH_LOG("kernel-chosen map after %d areas: %.2f s; the other thread starved %.2f s",
	       n, t1 - t0, gap);
	EXPECT_GT(2.0, gap);
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
	CPU_SET(1, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* --- the administrator: removal, unbind, rebind ----------------------------- */

/*
 * Hot removal (sysfs remove) of a bound, attached device with mappings: it
 * completes, the context keeps the ID with ENODEV on everything but unbind,
 * its IOASID and mappings stay, and the device comes back under a new ID.
 */
TEST_F_TIMEOUT(atk, remove_attached_device, 120)
{
	struct ctx1 c;
	struct ioasid_device_info info;
	uint8_t *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	long pins0 = pins();
	__u32 dev2;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 7, 2 * PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, 2 * PAGE, IOVA_A, RW));
	edu_teardown(&c.edu);
	EXPECT_EQ(0, remove_dev("0000:00:05.0", 30));
	EXPECT_FALSE(exists("0000:00:05.0"));
	EXPECT_EQ(-ENODEV, attach(c.fd, c.dev, c.ioasid));
	EXPECT_EQ(-ENODEV, detach(c.fd, c.dev));
	EXPECT_EQ(-ENODEV, dev_info(c.fd, c.dev, &info));
	EXPECT_EQ(1, fdinfo(c.fd, "ioasid-devices:"));
	EXPECT_EQ(pins0 + 2, pins());
	EXPECT_EQ(-EEXIST, map_at(c.fd, c.ioasid, buf, PAGE, IOVA_A, RW));
	EXPECT_EQ(0, unbind(c.fd, c.dev));
	EXPECT_EQ(-ENOENT, unbind(c.fd, c.dev));
	EXPECT_EQ(0, fdinfo(c.fd, "ioasid-devices:"));
	restore_devices();
	ASSERT_TRUE(has_driver("0000:00:05.0", "ioasid"));
	ASSERT_EQ(0, edu_setup(&c.edu, "0000:00:05.0"));
	ASSERT_EQ(0, bind_dev(c.fd, &c.edu, &dev2, NULL));
	EXPECT_NE(c.dev, dev2);
	EXPECT_EQ(0, attach(c.fd, dev2, c.ioasid));
	/* The re-enumerated device DMAs through the IOASID's old mappings. */
	if (dma_translated()) {
		memset(buf + PAGE, 0, PAGE);
		EXPECT_EQ(0, edu_dma(&c.edu, IOVA_A, EDU_BUF, PAGE, 0));
		EXPECT_EQ(0, edu_dma(&c.edu, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
		EXPECT_EQ(7, buf[PAGE + 100]);
	}
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
}

/* Removal of the bridge 00:07.0 with its two edus, both bound and attached. */
TEST_F_TIMEOUT(atk, remove_bridge_with_attached_devices, 120)
{
	struct edu e0 = { 0 }, e1 = { 0 };
	int fd = open("/dev/ioasid", O_RDWR);
	__u32 d0, d1, ioas;

	if (!exists("0000:01:01.0"))
		SKIP(return, "no bridged edus in this VM");
	if (access("/sys/bus/pci/devices/0000:01:01.0/iommu_group", F_OK))
		SKIP(return, "the bridged edus have no IOMMU group here (SMMUv3: a shared StreamID)");
	ASSERT_EQ(0, edu_setup(&e0, "0000:01:01.0"));
	ASSERT_EQ(0, edu_setup(&e1, "0000:01:02.0"));
	ASSERT_EQ(0, bind_dev(fd, &e0, &d0, NULL));
	ASSERT_EQ(0, bind_dev(fd, &e1, &d1, NULL));
	ASSERT_EQ(0, alloc_ioasid(fd, &ioas));
	ASSERT_EQ(0, attach(fd, d0, ioas));
	ASSERT_EQ(0, attach(fd, d1, ioas));
	edu_teardown(&e0);
	edu_teardown(&e1);
	EXPECT_EQ(0, remove_dev("0000:00:07.0", 30));
	EXPECT_EQ(-ENODEV, detach(fd, d0));
	EXPECT_EQ(-ENODEV, detach(fd, d1));
	EXPECT_EQ(0, free_ioasid(fd, ioas));
	EXPECT_EQ(0, unbind(fd, d0));
	EXPECT_EQ(0, unbind(fd, d1));
	restore_devices();
	ASSERT_TRUE(has_driver("0000:01:01.0", "ioasid"));
	ASSERT_TRUE(has_driver("0000:01:02.0", "ioasid"));
	ASSERT_EQ(0, edu_setup(&e0, "0000:01:01.0"));
	EXPECT_EQ(0, bind_dev(fd, &e0, &d0, NULL));
	close(fd);
	edu_teardown(&e0);
}

/*
 * The administrator unbinds the device from the ioasid driver while a
 * context has it attached, rebinds it with drivers_probe, and plays with
 * driver_override; the context sees ENODEV, then binds it anew.
 */
TEST_F_TIMEOUT(atk, driver_unbind_and_rebind, 120)
{
	struct ctx1 c;
	struct ioasid_device_info info;
	__u32 dev2;
	int fd2 = open("/dev/ioasid", O_RDWR);

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	EXPECT_EQ(0, sysfs_write_bounded("/sys/bus/pci/drivers/ioasid/unbind", "0000:00:05.0", 30));
	EXPECT_FALSE(has_driver("0000:00:05.0", NULL));
	EXPECT_EQ(-ENODEV, dev_info(c.fd, c.dev, &info));
	/* Not handed to ioasid: ENXIO, in any context. */
	EXPECT_EQ(-ENXIO, bind_dev(fd2, &c.edu, &dev2, NULL));
	/* The override elsewhere, then reprobe: still no driver (none matches). */
	sysfs_write("/sys/bus/pci/devices/0000:00:05.0/driver_override", "pci-stub-none");
	sysfs_write("/sys/bus/pci/drivers_probe", "0000:00:05.0");
	EXPECT_EQ(-ENXIO, bind_dev(c.fd, &c.edu, &dev2, NULL));
	/* Back to ioasid. */
	sysfs_write("/sys/bus/pci/devices/0000:00:05.0/driver_override", "ioasid");
	sysfs_write("/sys/bus/pci/drivers_probe", "0000:00:05.0");
	ASSERT_TRUE(has_driver("0000:00:05.0", "ioasid"));
	/* The stale ID does not come back to life. */
	EXPECT_EQ(-ENODEV, attach(c.fd, c.dev, c.ioasid));
	/* Another context may take it now; the first one cannot, then. */
	EXPECT_EQ(0, bind_dev(fd2, &c.edu, &dev2, NULL));
	EXPECT_EQ(-EBUSY, bind_dev(c.fd, &c.edu, &dev2, NULL));
	close(fd2);
	ASSERT_EQ(0, bind_dev(c.fd, &c.edu, &dev2, NULL));
	EXPECT_EQ(0, attach(c.fd, dev2, c.ioasid));
	EXPECT_EQ(0, unbind(c.fd, c.dev));
	ctx1_close(&c);
	restore_devices();
}

struct remrace {
	int fd, stop;
	__u32 dev, ioasid;
	uint8_t *buf;
	long bad, calls;
	int bad_ret;
	const char *bad_op;
};

static void *remove_racer(void *p)
{
	struct remrace *r = p;
	static const int ok[] = { ENODEV, EBUSY, EINVAL, EEXIST, ENOENT, 0 };
	struct ioasid_device_info info;
	unsigned int i = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		int ret;

		switch (i++ % 4) {
		case 0: ret = attach(r->fd, r->dev, r->ioasid); break;
		case 1: ret = dev_info(r->fd, r->dev, &info); break;
		case 2: ret = detach(r->fd, r->dev); break;
		default:
			ret = map_at(r->fd, r->ioasid, r->buf, PAGE, IOVA_A, RW);
			if (!ret)
				ret = unmap(r->fd, r->ioasid, IOVA_A, PAGE, NULL);
			break;
		}
		__atomic_add_fetch(&r->calls, 1, __ATOMIC_RELAXED);
		if (!ok_errno(ret, ok)) {
			r->bad++;
			r->bad_ret = ret;
			r->bad_op = "op";
		}
	}
	return NULL;
}

/* Removal while other threads are inside ioctls on the device. */
TEST_F_TIMEOUT(atk, remove_during_ioctls, 120)
{
	struct remrace r = { 0 };
	struct edu e = { 0 };
	pthread_t th[2];
	long pins0 = pins();

	r.fd = open("/dev/ioasid", O_RDWR);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:06.0"));
	ASSERT_EQ(0, bind_dev(r.fd, &e, &r.dev, NULL));
	ASSERT_EQ(0, alloc_ioasid(r.fd, &r.ioasid));
	edu_teardown(&e);
	r.buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(r.buf, 1, PAGE);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, remove_racer, &r));
	usleep(300000);
	/*
	 * The bound function 0 only: 06.1 rescanned alone would come back in an
	 * IOMMU group of its own (the PCI core adds it before it knows the slot
	 * is multi-function), and later tests need the pair's shared group.
	 */
	EXPECT_EQ(0, remove_dev("0000:00:06.0", 30));
	usleep(300000);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(0, r.bad) TH_LOG("%d", r.bad_ret);
	TH_LOG("%ld calls", r.calls);
	EXPECT_EQ(-ENODEV, attach(r.fd, r.dev, r.ioasid));
	EXPECT_EQ(0, unbind(r.fd, r.dev));
	close(r.fd);
	EXPECT_EQ(pins0, pins());
	restore_devices();
	EXPECT_TRUE(has_driver("0000:00:06.0", "ioasid"));
	EXPECT_TRUE(has_driver("0000:00:06.1", "ioasid"));
}

/*
 * A map stalled in a page fault (a tmpfs file whose pages are being
 * populated while a huge map walks them) must not keep an administrator's
 * removal waiting beyond the map itself: here we measure that a removal
 * during a long IOASID_MAP (1 GiB... bounded by the guest) of the same
 * IOASID's attached device completes, and how long it waited.
 */
TEST_F_TIMEOUT(atk, remove_during_long_map, 180)
{
	struct ctx1 c;
	size_t len = 256ull << 20;
	uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long pins0 = pins();
	double t0, tmap = 0, trem;
	pid_t pid;
	int status, ret;

	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	edu_teardown(&c.edu);
	/* How long one map of it takes, unpopulated. */
	t0 = now();
	ret = map_at(c.fd, c.ioasid, buf, len, IOVA_HIGH, RW);
	tmap = now() - t0;
	ASSERT_EQ(0, ret);
	unmap_all(c.fd, c.ioasid, NULL);
	madvise(buf, len, MADV_DONTNEED);
	pid = fork();
	if (pid == 0) {
		usleep(200000);
		t0 = now();
		ret = remove_dev("0000:00:05.0", 4 * tmap + 30);
		fprintf(stderr, "# removal took %.2f s (one map: %.2f s)\n", now() - t0, tmap);
		_exit(ret ? 1 : 0);
	}
	t0 = now();
	ret = map_at(c.fd, c.ioasid, buf, len, IOVA_HIGH, RW);
	trem = now() - t0;
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, ret);
	TH_LOG("the map took %.2f s", trem);
	EXPECT_EQ(0, unbind(c.fd, c.dev));
	ctx1_close(&c);
	munmap(buf, len);
	EXPECT_EQ(pins0, pins());
	restore_devices();
	EXPECT_TRUE(has_driver("0000:00:05.0", "ioasid"));
}

/* --- intel-pt: DMA in flight when the device leaves its context ------------- */

enum release_how { BY_UNBIND, BY_CLOSE, BY_KILL, BY_DRIVER_UNBIND, BY_REMOVE, BY_FREE };

#define IOVA_SRC_LOAD 0x10000ull

/*
 * Loads the edu's internal buffer (not reachable by MMIO) with 0x5a through
 * the IOASID: src is mapped at IOVA_SRC_LOAD and read by the device.
 */
static int load_buffer(int fd, __u32 ioasid, struct edu *e, uint8_t *src)
{
	memset(src, 0x5a, PAGE);
	if (map_at(fd, ioasid, src, PAGE, IOVA_SRC_LOAD, RW))
		return -1;
	return edu_dma(e, IOVA_SRC_LOAD, EDU_BUF, 64, 0);
}

static int changed(const uint8_t *p)
{
	for (int i = 0; i < 64; i++)
		if (p[i] != 0xcc)
			return 1;
	return 0;
}

/*
 * The edu starts its DMA 100 ms after it is told to. Tell it to write to the
 * IOVA whose number is the physical address of a canary page (mapped in the
 * IOASID to a landing pad), and release the device at once. Under
 * iommu.passthrough=1 a device that is not stopped when it goes back to the
 * kernel writes the canary; one that is stopped writes nothing; one that
 * fires before the release writes the landing pad (inconclusive). A positive
 * control afterwards proves that the canary is reachable in the identity
 * domain by a device whose mastering root turns back on.
 */
static void in_flight(struct __test_metadata *_metadata, enum release_how how)
{
	uint8_t *pool, *canary, *pad, *src;
	uint64_t pa;
	struct ctx1 c;
	int status, fired_early, landed;
	pid_t pid = -1;
	__u64 bytes;

	if (!is_intel_pt())
		SKIP(return, "only meaningful with iommu.passthrough=1 (the intel-pt VM)");
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	pa = low_canary(&pool, 64 << 20, &canary);
	ASSERT_NE(0, pa);
	pad = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(pad, 0xcc, PAGE);
	memset(canary, 0xcc, PAGE);
	/* A DMA that fires while the group is on the blocking domain faults. */
	kmsg("ioasid-test: expect-dma-fault begin\n");
	if (how == BY_KILL) {
		int p[2];
		char x;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		if (pid == 0) {
			if (ctx1_open(&c, "0000:00:05.0") ||
			    map_at(c.fd, c.ioasid, pad, PAGE, pa, RW) ||
			    load_buffer(c.fd, c.ioasid, &c.edu, src))
				_exit(1);
			edu_start(&c.edu, EDU_BUF, pa, 64, 1);
			if (write(p[1], "x", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		ASSERT_EQ(1, read(p[0], &x, 1));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	} else {
		ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
		ASSERT_EQ(0, map_at(c.fd, c.ioasid, pad, PAGE, pa, RW));
		ASSERT_EQ(0, load_buffer(c.fd, c.ioasid, &c.edu, src));
		edu_start(&c.edu, EDU_BUF, pa, 64, 1);
		switch (how) {
		case BY_UNBIND: EXPECT_EQ(0, unbind(c.fd, c.dev)); break;
		case BY_CLOSE: close(c.fd); c.fd = -1; break;
		case BY_FREE: EXPECT_EQ(0, free_ioasid(c.fd, c.ioasid)); break;
		case BY_DRIVER_UNBIND:
			EXPECT_EQ(0, sysfs_write("/sys/bus/pci/drivers/ioasid/unbind",
						 "0000:00:05.0"));
			break;
		case BY_REMOVE:
			edu_teardown(&c.edu);
			c.edu.bar = NULL;
			EXPECT_EQ(0, remove_dev("0000:00:05.0", 30));
			break;
		default: break;
		}
	}
	usleep(800000);
	kmsg("ioasid-test: expect-dma-fault end\n");
	fired_early = changed(pad);
	landed = changed(canary);
	TH_LOG("DMA %s", fired_early ? "fired before the release (inconclusive)" :
	       landed ? "LANDED in the canary at its physical address" : "went nowhere");
	EXPECT_FALSE(landed);
	if (c.fd >= 0) {
		unmap_all(c.fd, c.ioasid, &bytes);
		close(c.fd);
	}
	edu_teardown(&c.edu);
	restore_devices();
	/* Positive control: the device, idle in the identity domain, mastering turned on by root. */
	if (!landed && has_driver("0000:00:05.0", "ioasid")) {
		struct edu e = { 0 };

		memset(canary, 0xcc, PAGE);
		if (!edu_setup(&e, "0000:00:05.0")) {
			/* The buffer still holds 0x5a (or whatever the device last read). */
			edu_dma(&e, EDU_BUF, pa, 64, 1);
			TH_LOG("control (root re-enables mastering): %s",
			       changed(canary) ? "reaches the canary" : "does not reach it");
			edu_set_master("0000:00:05.0", 0);
			edu_teardown(&e);
		}
	}
	munmap(pool, 64 << 20);
	munmap(pad, PAGE);
	munmap(src, PAGE);
}

TEST_F_TIMEOUT(atk, in_flight_dma_at_unbind, 60) { in_flight(_metadata, BY_UNBIND); }
TEST_F_TIMEOUT(atk, in_flight_dma_at_close, 60) { in_flight(_metadata, BY_CLOSE); }
TEST_F_TIMEOUT(atk, in_flight_dma_at_kill, 60) { in_flight(_metadata, BY_KILL); }
TEST_F_TIMEOUT(atk, in_flight_dma_at_free, 60) { in_flight(_metadata, BY_FREE); }
TEST_F_TIMEOUT(atk, in_flight_dma_at_driver_unbind, 60) { in_flight(_metadata, BY_DRIVER_UNBIND); }
TEST_F_TIMEOUT(atk, in_flight_dma_at_remove, 60) { in_flight(_metadata, BY_REMOVE); }

/*
 * A group of two functions (06.0 + 06.1): the context binds and attaches
 * 06.0 only; 06.1 (handed to ioasid, not bound) reaches the IOASID too, as
 * documented. When 06.0 is released the group goes back to the identity
 * domain: 06.1's DMA in flight then must not reach physical memory.
 */
TEST_F_TIMEOUT(atk, in_flight_dma_of_unbound_group_member, 60)
{
	uint8_t *pool, *canary, *pad, *src;
	struct edu f0 = { 0 }, f1 = { 0 };
	uint64_t pa;
	int fd, landed, early;
	__u32 d0, ioas;

	if (!is_intel_pt())
		SKIP(return, "only meaningful with iommu.passthrough=1 (the intel-pt VM)");
	pa = low_canary(&pool, 64 << 20, &canary);
	ASSERT_NE(0, pa);
	pad = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(pad, 0xcc, PAGE);
	memset(canary, 0xcc, PAGE);
	fd = open("/dev/ioasid", O_RDWR);
	ASSERT_EQ(0, edu_setup(&f0, "0000:00:06.0"));
	ASSERT_EQ(0, bind_dev(fd, &f0, &d0, NULL));
	ASSERT_EQ(0, alloc_ioasid(fd, &ioas));
	ASSERT_EQ(0, attach(fd, d0, ioas));
	ASSERT_EQ(0, map_at(fd, ioas, pad, PAGE, pa, RW));
	ASSERT_EQ(0, edu_setup(&f1, "0000:00:06.1"));
	ASSERT_EQ(0, load_buffer(fd, ioas, &f1, src));
	kmsg("ioasid-test: expect-dma-fault begin\n");
	edu_start(&f1, EDU_BUF, pa, 64, 1);
	EXPECT_EQ(0, unbind(fd, d0));
	usleep(800000);
	kmsg("ioasid-test: expect-dma-fault end\n");
	early = changed(pad);
	landed = changed(canary);
	TH_LOG("06.1's DMA %s", early ? "fired before the release (inconclusive)" :
	       landed ? "LANDED in the canary at its physical address" : "went nowhere");
	EXPECT_FALSE(landed);
	edu_set_master("0000:00:06.1", 0);
	close(fd);
	edu_teardown(&f0);
	edu_teardown(&f1);
	munmap(pool, 64 << 20);
}

/* --- the administrator: module reload ---------------------------------------- */

/*
 * rmmod while a /dev/ioasid fd is open must fail and change nothing; after
 * the close it succeeds, and a new load takes the devices back by itself.
 */
TEST_F_TIMEOUT(atk, rmmod_while_open, 120)
{
	char params[160];
	struct ctx1 c;
	int have_probe = !access("/sys/module/ioasid_kvm_probe", F_OK);
	__u32 d;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	if (have_probe)
		ASSERT_EQ(0, system("rmmod ioasid_kvm_probe"));
	EXPECT_NE(0, system("rmmod ioasid 2>/dev/null"));
	EXPECT_TRUE(has_driver("0000:00:05.0", "ioasid"));
	EXPECT_EQ(-EEXIST, bind_dev(c.fd, &c.edu, &d, NULL));
	ctx1_close(&c);
	/*
	 * Loaded again with the parameters the VM runner gave it
	 * (allow_unsafe_interrupts=1 where MSIs are not isolated).
	 */
	snprintf(params, sizeof(params), "insmod /lib/ioasid.ko %.100s",
		 getenv("IOASID_MODPARAMS") ?: "");
	EXPECT_EQ(0, system("rmmod ioasid"));
	EXPECT_FALSE(has_driver("0000:00:05.0", NULL));
	EXPECT_EQ(0, system(params));
	if (have_probe)
		EXPECT_EQ(0, system("insmod /lib/ioasid_kvm_probe.ko"));
	restore_devices();
	EXPECT_TRUE(has_driver("0000:00:05.0", "ioasid"));
	EXPECT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	ctx1_close(&c);
}

/* --- attacks added by the second adversarial review ------------------------- */

static int pci_cmd(const char *bdf, uint16_t *cmd, int write)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	ok = write ? pwrite(fd, cmd, 2, 4) == 2 : pread(fd, cmd, 2, 4) == 2;
	close(fd);
	return ok ? 0 : -1;
}

static void hand_to(const char *bdf, const char *drv)
{
	char path[256];

	if (has_driver(bdf, NULL)) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
		sysfs_write(path, bdf);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	sysfs_write(path, drv ? drv : "\n");
	if (drv)
		sysfs_write("/sys/bus/pci/drivers_probe", bdf);
}

/*
 * The administrator hands a PCI bridge to the ioasid driver (the QEMU root
 * port 00:08.0 has no driver here: CONFIG_PCIEPORTBUS is off; likewise the
 * conventional bridge 00:07.0). vfio-pci refuses anything but a normal
 * header (type 0) device. A bridge's Bus Master Enable gates the DMA of
 * every device below it, devices that other contexts may own (a root port
 * with ACS is a group of its own): the ioasid driver must not clear it at
 * probe, and a context must not be able to own a bridge and quiesce it at
 * unbind. Under QEMU the bridge's BME does not gate DMA (QEMU ignores it), so
 * the command register itself is checked.
 */
static void bridge_case(struct __test_metadata *_metadata, const char *bdf)
{
	uint16_t cmd0 = 0, cmd = 0;
	unsigned int bus, dev, fn, seg;
	int fd = open("/dev/ioasid", O_RDWR);
	__u32 d = 0;
	int ret;

	ASSERT_LE(0, fd);
	ASSERT_EQ(4, sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &dev, &fn));
	ASSERT_EQ(0, pci_cmd(bdf, &cmd0, 0));
	TH_LOG("%s: command register 0x%04x before", bdf, cmd0);
	hand_to(bdf, "ioasid");
	ASSERT_EQ(0, pci_cmd(bdf, &cmd, 0));
	TH_LOG("%s: handed to ioasid: %s, command register 0x%04x", bdf,
	       has_driver(bdf, "ioasid") ? "bound" : "refused", cmd);
	/* The probe must not stop the bridge forwarding its devices' DMA. */
	EXPECT_EQ(cmd0 & 0x4, cmd & 0x4);
	ret = bind_pci(fd, seg, bus, (dev << 3) | fn, &d, NULL);
	TH_LOG("%s: IOASID_DEVICE_BIND of the bridge: %d", bdf, ret);
	/* A bridge is no device a user-space driver can own. */
	EXPECT_NE(0, ret);
	if (!ret) {
		EXPECT_EQ(0, unbind(fd, d));
		ASSERT_EQ(0, pci_cmd(bdf, &cmd, 0));
		TH_LOG("%s: after unbind: command register 0x%04x", bdf, cmd);
		EXPECT_EQ(cmd0 & 0x4, cmd & 0x4);
	}
	close(fd);
	hand_to(bdf, NULL);
	/* Put the command register back as it was, for the devices below. */
	pci_cmd(bdf, &cmd0, 1);
}

TEST_F_TIMEOUT(atk, root_port_handed_to_ioasid, 60)
{
	if (!exists("0000:00:08.0") || access("/sys/bus/pci/devices/0000:00:08.0/iommu_group", F_OK))
		SKIP(return, "no root port 00:08.0 behind an IOMMU in this VM");
	if (has_driver("0000:00:08.0", NULL) && !has_driver("0000:00:08.0", "ioasid"))
		SKIP(return, "the root port has a kernel driver here");
	bridge_case(_metadata, "0000:00:08.0");
}

TEST_F_TIMEOUT(atk, conventional_bridge_handed_to_ioasid, 60)
{
	struct edu e = { 0 };
	uint8_t *buf;
	int fd;
	__u32 d, ioas;

	if (!exists("0000:00:07.0") || access("/sys/bus/pci/devices/0000:01:01.0/iommu_group", F_OK))
		SKIP(return, "no bridged edus behind an IOMMU in this VM");
	bridge_case(_metadata, "0000:00:07.0");
	/* The edus behind it still work afterwards. */
	restore_devices();
	fd = open("/dev/ioasid", O_RDWR);
	buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0x3c, PAGE);
	memset(buf + PAGE, 0, PAGE);
	ASSERT_EQ(0, edu_setup(&e, "0000:01:01.0"));
	ASSERT_EQ(0, bind_dev(fd, &e, &d, NULL));
	ASSERT_EQ(0, alloc_ioasid(fd, &ioas));
	ASSERT_EQ(0, attach(fd, d, ioas));
	ASSERT_EQ(0, map_at(fd, ioas, buf, 2 * PAGE, IOVA_A, RW));
	EXPECT_EQ(0, edu_dma(&e, IOVA_A, EDU_BUF, PAGE, 0));
	EXPECT_EQ(0, edu_dma(&e, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
	EXPECT_EQ(0x3c, buf[PAGE + 7]);
	close(fd);
	edu_teardown(&e);
	munmap(buf, 2 * PAGE);
}

/* The IOMMU group number of a device, or -1. */
static int group_of(const char *bdf)
{
	char path[256], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = '\0';
	return atoi(strrchr(link, '/') + 1);
}

/*
 * Hot-add into an owned group. Context A binds and attaches `keep`, with a
 * mapping; the administrator removes `gone`, a device of the same IOMMU group
 * (handed to ioasid, bound nowhere), and rescans. The re-enumerated device
 * shares `keep`'s requester-ID path without ACS between them, so it must come
 * back in the same group, and context B must not be able to own it (EBUSY)
 * while A owns `keep`. If B can, B attaches it to its own IOASID and DMAs,
 * which proves B drives a device not isolated from A's (on real hardware,
 * functions of a slot without ACS reach each other peer to peer).
 *
 * Finding (multi-function pair 06.0 + 06.1): the PCI core adds a function > 0
 * found by a rescan (pci_device_add -> device_add -> IOMMU probe) before
 * pci_scan_slot() sets its multifunction flag, so pci_device_group() does not
 * look for the function-0 alias and 06.1 gets a new group of its own: B binds
 * it while A owns 06.0. ioasid trusted the group and handed it out; now it
 * checks the slot at bind and refuses either function (EPERM) while the split
 * lasts.
 */
static void hot_add_case(struct __test_metadata *_metadata, const char *keep, const char *gone,
			 int regroup)
{
	struct edu e0 = { 0 }, e1 = { 0 };
	int a = open("/dev/ioasid", O_RDWR), b = open("/dev/ioasid", O_RDWR);
	uint8_t *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	uint8_t *bbuf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	long pins0 = pins();
	__u32 d0, d1, db, ioas, bioas;
	int g0, g1, ret;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(group_of(keep), group_of(gone));
	ASSERT_EQ(0, edu_setup(&e0, keep));
	ASSERT_EQ(0, bind_dev(a, &e0, &d0, NULL));
	ASSERT_EQ(0, alloc_ioasid(a, &ioas));
	ASSERT_EQ(0, attach(a, d0, ioas));
	memset(buf, 0x5e, PAGE);
	memset(buf + PAGE, 0, PAGE);
	ASSERT_EQ(0, map_at(a, ioas, buf, 2 * PAGE, IOVA_A, RW));

	EXPECT_EQ(0, remove_dev(gone, 30));
	EXPECT_EQ(0, sysfs_write("/sys/bus/pci/rescan", "1"));
	ASSERT_TRUE(exists(gone));
	hand_to(gone, "ioasid");
	EXPECT_TRUE(has_driver(gone, "ioasid"));
	g0 = group_of(keep);
	g1 = group_of(gone);
	TH_LOG("after the hot-add: %s in group %d, %s in group %d", keep, g0, gone, g1);
	ASSERT_EQ(0, edu_setup(&e1, gone));
	/*
	 * Another context cannot take a device that is not isolated from A's:
	 * EBUSY while the group is whole (A owns it); EPERM when the rescan
	 * split the slot's functions into two groups (nobody may bind either).
	 */
	ret = bind_dev(b, &e1, &db, NULL);
	EXPECT_EQ(g0 == g1 ? -EBUSY : -EPERM, ret);
	if (!ret) {
		/* B owns it: B's IOASID, B's memory, B's DMA, next to A's device. */
		memset(bbuf, 0xb0, PAGE);
		memset(bbuf + PAGE, 0, PAGE);
		EXPECT_EQ(0, alloc_ioasid(b, &bioas));
		EXPECT_EQ(0, attach(b, db, bioas));
		EXPECT_EQ(0, map_at(b, bioas, bbuf, 2 * PAGE, IOVA_A, RW));
		if (dma_translated()) {
			EXPECT_EQ(0, edu_dma(&e1, IOVA_A, EDU_BUF, PAGE, 0));
			EXPECT_EQ(0, edu_dma(&e1, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
			TH_LOG("context B drove %s by DMA: 0x%02x", gone, bbuf[PAGE + 9]);
		}
		close(b);
		b = open("/dev/ioasid", O_RDWR);
	}
	/* A's DMA still goes where A mapped it. */
	if (dma_translated()) {
		EXPECT_EQ(0, edu_dma(&e0, IOVA_A, EDU_BUF, PAGE, 0));
		EXPECT_EQ(0, edu_dma(&e0, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
		EXPECT_EQ(0x5e, buf[PAGE + 9]);
	}
	/* A itself gets the function only if it is in A's group. */
	ret = bind_dev(a, &e1, &d1, NULL);
	EXPECT_EQ(g0 == g1 ? 0 : -EPERM, ret);
	if (!ret)
		EXPECT_EQ(0, attach(a, d1, ioas));
	close(a);
	EXPECT_EQ(pins0, pins());
	if (g0 == g1) {
		EXPECT_EQ(0, bind_dev(b, &e1, &db, NULL));
		EXPECT_EQ(0, bind_dev(b, &e0, &db, NULL));
	} else {
		/* Split: refused whichever function comes first. */
		EXPECT_EQ(-EPERM, bind_dev(b, &e0, &db, NULL));
	}
	close(b);
	edu_teardown(&e0);
	edu_teardown(&e1);
	munmap(buf, 2 * PAGE);
	munmap(bbuf, 2 * PAGE);
	if (regroup && group_of(keep) != group_of(gone)) {
		/*
		 * Put the pair back in one group for later tests: function 0
		 * rescanned alone (its multifunction bit is in its header)
		 * finds function 1's group.
		 */
		EXPECT_EQ(0, remove_dev(keep, 30));
		EXPECT_EQ(0, sysfs_write("/sys/bus/pci/rescan", "1"));
	}
	restore_devices();
	EXPECT_EQ(group_of(keep), group_of(gone));
	EXPECT_TRUE(has_driver(keep, "ioasid"));
	EXPECT_TRUE(has_driver(gone, "ioasid"));
	/* Whole again: one context binds both. */
	b = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, b);
	EXPECT_EQ(0, bind_dev(b, &e0, &db, NULL));
	EXPECT_EQ(0, bind_dev(b, &e1, &db, NULL));
	close(b);
}

TEST_F_TIMEOUT(atk, hot_add_of_function_into_owned_group, 120)
{
	hot_add_case(_metadata, "0000:00:06.0", "0000:00:06.1", 1);
}

TEST_F_TIMEOUT(atk, hot_add_behind_bridge_into_owned_group, 120)
{
	if (!exists("0000:01:01.0") || access("/sys/bus/pci/devices/0000:01:01.0/iommu_group", F_OK))
		SKIP(return, "no bridged edus behind an IOMMU in this VM");
	hot_add_case(_metadata, "0000:01:01.0", "0000:01:02.0", 0);
}

/*
 * IOASID_MAP of the process's special mappings and of device memory: the vDSO
 * (kernel pages), [vvar], [vsyscall], a PROT_NONE area, a stack guard gap, and
 * the edu's BAR mapped from sysfs (VM_IO | VM_PFNMAP: peer-to-peer DMA to
 * MMIO). Each succeeds or fails with EFAULT, nothing writable is granted to
 * what the process cannot write, and nothing stays pinned.
 */
static __u64 maps_find(const char *name)
{
	char line[512];
	unsigned long lo = 0, hi;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name) && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			break;
		else
			lo = 0;
	fclose(f);
	return lo;
}

TEST_F_TIMEOUT(atk, special_mappings, 60)
{
	struct ctx1 c;
	long pins0 = pins();
	__u64 vdso = maps_find("[vdso]"), vvar = maps_find("[vvar]");
	__u64 iova = 0, unmapped = 0;
	void *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct {
		const char *what;
		__u64 va;
	} cases[] = {
		{ "vdso", vdso }, { "vvar", vvar }, { "vsyscall", 0xffffffffff600000ull },
		{ "PROT_NONE", (uintptr_t)none }, { "null page", 0 },
		{ "top of user space", 0x7ffffffff000ull },
	};

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int w = 0; w < 2; w++) {
			__u32 fl = IOASID_MAP_READ | (w ? IOASID_MAP_WRITE : 0);
			int ret;

			if (!cases[i].va && strcmp(cases[i].what, "null page"))
				continue;
			iova = 0;
			ret = map_flags(c.fd, c.ioasid, cases[i].va, PAGE, &iova, fl);
			TH_LOG("%s (0x%llx) %s: %d", cases[i].what, (unsigned long long)cases[i].va,
			       w ? "rw" : "ro", ret);
			EXPECT_TRUE(ret == 0 || ret == -EFAULT);
			/* Nothing the process cannot write becomes writable. */
			if (w && i < 3)
				EXPECT_EQ(-EFAULT, ret);
		}
	}
	/* The BAR: MMIO, which cannot be pinned. */
	EXPECT_EQ(-EFAULT, map_flags(c.fd, c.ioasid, (uintptr_t)c.edu.bar, PAGE, &iova,
				     IOASID_MAP_READ));
	EXPECT_EQ(-EFAULT, map_flags(c.fd, c.ioasid, (uintptr_t)c.edu.bar, PAGE, &iova, RW));
	unmap_all(c.fd, c.ioasid, &unmapped);
	TH_LOG("unmapped %llu bytes", (unsigned long long)unmapped);
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
	EXPECT_EQ(pins0, pins());
}

/*
 * mremap of a mapped buffer (moved, then with MREMAP_DONTUNMAP, then shrunk
 * and the rest munmapped): the device keeps writing the pinned pages, which
 * the process sees at the new address; after IOASID_UNMAP nothing is pinned.
 */
TEST_F_TIMEOUT(atk, mremap_of_mapped_buffer, 60)
{
	struct ctx1 c;
	long pins0 = pins();
	uint8_t *buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	uint8_t *dst = mmap(NULL, 8 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *moved, *again;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 0x11, 4 * PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, 4 * PAGE, IOVA_A, RW));
	moved = mremap(buf, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(dst, moved);
	/* The device writes page 1 from its buffer, loaded from page 0. */
	memset(moved + PAGE, 0, PAGE);
	EXPECT_EQ(0, edu_dma(&c.edu, IOVA_A, EDU_BUF, PAGE, 0));
	EXPECT_EQ(0, edu_dma(&c.edu, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
	EXPECT_EQ(0x11, moved[PAGE + 5]);
	again = mremap(moved, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (again != MAP_FAILED) {
		memset(again + 2 * PAGE, 0, PAGE);
		EXPECT_EQ(0, edu_dma(&c.edu, EDU_BUF, IOVA_A + 2 * PAGE, PAGE, 1));
		EXPECT_EQ(0x11, again[2 * PAGE + 5]);
		munmap(again, 4 * PAGE);
	}
	munmap(dst, 8 * PAGE);
	/* Nothing maps the pages any more; they are still pinned, and DMA is harmless. */
	EXPECT_EQ(pins0 + 4, pins());
	EXPECT_EQ(0, edu_dma(&c.edu, EDU_BUF, IOVA_A + 3 * PAGE, PAGE, 1));
	EXPECT_EQ(0, unmap_all(c.fd, c.ioasid, NULL));
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
}

/*
 * One page pinned over and over: a 1-page memfd mapped at N consecutive
 * addresses (N VMAs), and that range mapped again and again at new IOVAs.
 * Each FOLL_PIN of a small page adds GUP_PIN_COUNTING_BIAS (1024) to its
 * refcount, so about 2^21 pins overflow the 32-bit refcount; each pin is
 * charged one page, so a caller needs ~8 GiB of RLIMIT_MEMLOCK (a VMM's
 * usual limit is its guest's RAM; here an unprivileged child gets 9 GiB) or
 * CAP_IPC_LOCK, while only one page of memory is pinned. The secure
 * outcome: the module stops before the refcount overflows, with a documented
 * errno and no kernel warning; afterwards nothing stays pinned.
 */
TEST_F_TIMEOUT(atk, pin_one_page_until_refcount_overflows, 600)
{
	const char *iommu = getenv("IOASID_IOMMU");
	const size_t n = 60000;
	int fd = open("/dev/ioasid", O_RDWR), memfd = memfd_create("ioasid-refcount", 0);
	long pins0 = pins();
	uint8_t *r, *p;
	__u32 ioas;
	int ret = 0, k, klog, warned = 0, pfd[2];
	double t0 = now();
	pid_t pid;

	/* Pinning only, no device: one VM (intel) is enough; a minute per VM under TCG. */
	if (iommu && strcmp(iommu, "intel")) {
		close(fd);
		close(memfd);
		SKIP(return, "IOMMU-independent (pinning only): runs in the intel VM");
	}
	ASSERT_LE(0, fd);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, PAGE));
	/* n aliases of the page, then a page whose fault waits on a userfaultfd. */
	r = mmap(NULL, (n + 1) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	p = mmap(r + n * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	ASSERT_EQ(r + n * PAGE, p);
	for (size_t i = 0; i < n; i++) {
		p = mmap(r + i * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
		ASSERT_EQ(r + i * PAGE, p);
	}
	r[0] = 0x42;
	for (size_t i = 0, bad = 0; i < n; i++) {
		if (r[i * PAGE] == 0x42)
			continue;
		if (!bad++)
			TH_LOG("alias %zu of %zu reads 0x%02x: pfn 0x%llx, alias 0: pfn 0x%llx", i, n,
			       r[i * PAGE], (unsigned long long)phys_of(r + i * PAGE) / PAGE,
			       (unsigned long long)phys_of(r) / PAGE);
		p = mmap(r + i * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
		ASSERT_EQ(r + i * PAGE, p);
		ASSERT_EQ(0x42, r[i * PAGE]);
	}
	ASSERT_EQ(0, alloc_ioasid(fd, &ioas));
	/* The kernel log from here on: what the pins provoke. */
	klog = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (klog >= 0)
		lseek(klog, 0, SEEK_END);
	kmsg("ioasid-test: pin_one_page_until_refcount_overflows begin\n");
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* An unprivileged VMM whose administrator allowed it 9 GiB of locked memory. */
		struct rlimit lim = { 9ull << 30, 9ull << 30 };
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = {
			.range = { .start = (uintptr_t)r + n * PAGE, .len = PAGE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		int res[3] = { 0, -EPERM, 0 };
		/* As root: a userfaultfd that handles the kernel's faults needs privilege. */
		int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

		if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg) ||
		    setrlimit(RLIMIT_MEMLOCK, &lim) || setgroups(0, NULL) || setgid(65534) ||
		    setuid(65534)) {
			if (write(pfd[1], res, sizeof(res)) < 0)
				_exit(2);
			_exit(1);
		}
		for (k = 0; k < 40; k++) {
			__u64 iova = 0;

			ret = map_flags(fd, ioas, (uintptr_t)r, n * PAGE, &iova, IOASID_MAP_READ);
			if (ret)
				break;
		}
		res[0] = k;
		res[1] = ret;
		/*
		 * A failed map gives its pins back: the page is below the limit
		 * again. Smaller maps bring it to within 256 pins of the limit; then
		 * 511 more pins of it, and a fault that nobody resolves. GUP used to
		 * wait in the fault holding the 511 pins unchecked, and threads doing
		 * this together overflowed the count. Now the present pages are
		 * pinned and checked before any fault: the map fails at once.
		 * (Killed by the alarm if it waits.)
		 */
		for (int j = 0; j < 100000; j++) {
			__u64 iova = 0;

			if (map_flags(fd, ioas, (uintptr_t)r, 256 * PAGE, &iova, IOASID_MAP_READ))
				break;
		}
		alarm(120);
		{
			__u64 iova = 0;

			res[2] = map_flags(fd, ioas, (uintptr_t)(r + (n - 511) * PAGE), 512 * PAGE,
					   &iova, IOASID_MAP_READ);
		}
		alarm(0);
		if (write(pfd[1], res, sizeof(res)) < 0)
			_exit(2);
		_exit(unmap_all(fd, ioas, NULL) ? 3 : 0);
	}
	{
		int res[3] = { -1, 0, 0 }, status;

		/* Nothing to read if the child died (an end of file, not a wait). */
		close(pfd[1]);
		EXPECT_EQ((ssize_t)sizeof(res), read(pfd[0], res, sizeof(res)));
		EXPECT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("child status %#x", status);
		k = res[0];
		ret = res[1];
		/* Refused before waiting on the fault: the page is pinned too often already. */
		EXPECT_EQ(-ENOMEM, res[2]);
		close(pfd[0]);
	}
	kmsg("ioasid-test: pin_one_page_until_refcount_overflows end\n");
	TH_LOG("%d maps of %zu pins each (%.0f s), then %d (%s)", k, n, now() - t0, ret,
	       strerror(-ret));
	/* Did a page's refcount go past INT_MAX (GUP warns when it finds it negative)? */
	if (klog >= 0) {
		char rec[1024];
		ssize_t len;

		while ((len = read(klog, rec, sizeof(rec) - 1)) > 0 || (len < 0 && errno == EPIPE)) {
			if (len <= 0)
				continue;
			rec[len] = '\0';
			if (strstr(rec, "WARNING") && strstr(rec, "gup.c"))
				warned = 1;
		}
		close(klog);
	}
	TH_LOG("GUP warned of a negative refcount: %s", warned ? "yes" : "no");
	EXPECT_FALSE(warned);
	/* Past 2^21 pins the refcount would have wrapped: the module must have stopped. */
	EXPECT_GT(40, k);
	EXPECT_TRUE(ret == -ENOMEM || ret == -EFAULT || ret == -ENOSPC);
	EXPECT_EQ(0, unmap_all(fd, ioas, NULL));
	EXPECT_EQ(pins0, pins());
	EXPECT_EQ(0x42, r[5 * PAGE]);
	close(fd);
	munmap(r, (n + 1) * PAGE);
	close(memfd);
}

/*
 * fork() of a process with a buffer mapped for DMA: the child writes its copy
 * (copy-on-write, or the copy the kernel makes of pinned anonymous pages at
 * fork), the device writes the buffer through the IOASID. The parent sees the
 * device's bytes and not the child's, the child sees its own and not the
 * device's, and nothing stays pinned.
 */
TEST_F_TIMEOUT(atk, fork_child_writes_pinned_buffer, 60)
{
	struct ctx1 c;
	long pins0 = pins();
	uint8_t *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	int pfd[2], status;
	uint8_t seen = 0;
	pid_t pid;

	ASSERT_EQ(0, ctx1_open(&c, "0000:00:05.0"));
	memset(buf, 0x77, PAGE);
	memset(buf + PAGE, 0x01, PAGE);
	ASSERT_EQ(0, map_at(c.fd, c.ioasid, buf, 2 * PAGE, IOVA_A, RW));
	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char go;

		memset(buf + PAGE, 0xcc, PAGE);
		if (read(pfd[0], &go, 1) != 1)
			_exit(2);
		/* The device wrote the parent's page meanwhile. */
		_exit(buf[PAGE + 3] == 0xcc ? 0 : 1);
	}
	usleep(200000);
	EXPECT_EQ(0, edu_dma(&c.edu, IOVA_A, EDU_BUF, PAGE, 0));
	EXPECT_EQ(0, edu_dma(&c.edu, EDU_BUF, IOVA_A + PAGE, PAGE, 1));
	seen = buf[PAGE + 3];
	EXPECT_EQ(0x77, seen);
	EXPECT_EQ(1, write(pfd[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0, unmap_all(c.fd, c.ioasid, NULL));
	EXPECT_EQ(pins0, pins());
	ctx1_close(&c);
	close(pfd[0]);
	close(pfd[1]);
	munmap(buf, 2 * PAGE);
}

TEST_HARNESS_MAIN
