// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for devices and DMA through /dev/ioasid: every test moves real
 * bytes with QEMU's edu device, whose DMA engine goes through the emulated
 * IOMMU, and checks what landed in memory, what did not, and what stayed
 * pinned.
 *
 * The VM (scripts/vm.sh) has edu devices at 00:05.0 (alone in its group),
 * 00:06.0 + 00:06.1 (one group) and, except under virtio-iommu, 01:01.0 +
 * 01:02.0 behind a PCI bridge. DMAs that must fault are bracketed by
 * "ioasid-test: expect-dma-fault" markers in the kernel log, so that the
 * runner accepts exactly those faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "edu.h"
#include "ioasid_util.h"
#include "kselftest_harness.h"

#define PAGE 4096

/* IOVAs within the edu's default 28-bit DMA mask. */
#define IOVA_SRC 0x100000
#define IOVA_DST 0x200000
#define IOVA_UNMAPPED 0x300000

/* The reserved MSI window of the architecture. */
#if defined(__aarch64__)
#define MSI_WINDOW_START 0x8000000ull	/* MSI_IOVA_BASE of the SMMU drivers */
#define MSI_WINDOW_LAST 0x80fffffull
#else
#define MSI_WINDOW_START 0xfee00000ull
#define MSI_WINDOW_LAST 0xfeefffffull
#endif

static void kmsg(const char *msg)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, msg, strlen(msg)) < 0)
			perror("kmsg");
		close(fd);
	}
}

/* A field of /proc/vmstat (pins taken and released, system-wide). */
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

/* Pages pinned right now with FOLL_PIN, system-wide. */
static long pins(void)
{
	/* Fold the per-CPU counter deltas first, or small changes do not show. */
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			perror("stat_refresh");
		close(fd);
	}
	return vmstat("nr_foll_pin_acquired") - vmstat("nr_foll_pin_released");
}

/*
 * Whether DMA of emulated devices is really translated by the VM's IOMMU.
 * QEMU 10.0's amd-iommu emulates interrupt remapping only: the DMA of
 * emulated devices bypasses it, so nothing here would mean anything (and a
 * "blocked" DMA would land in guest memory).
 */
static const char *no_dma_translation(void)
{
	const char *model = getenv("IOASID_IOMMU");

	if (model && !strcmp(model, "amd"))
		return "QEMU 10.0's amd-iommu does not translate DMA of emulated devices";
	return NULL;
}

#define NEED_DMA_TRANSLATION()							\
	do {									\
		if (no_dma_translation())					\
			SKIP(return, "%s", no_dma_translation());		\
	} while (0)

/* The kernel log from now on: a /dev/kmsg reader positioned at its end. */
static int kmsg_follow(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/* Whether an IOMMU fault report was logged since kmsg_follow() gave fd. */
static int fault_logged(int fd)
{
	static const char *const reports[] = {
		"DMAR: [DMA ",			/* VT-d */
		"IO_PAGE_FAULT",		/* AMD-Vi */
		"fault from EP",		/* virtio-iommu */
		"F_TRANSLATION",		/* SMMUv3 */
	};
	char rec[2048];
	ssize_t n;
	int found = 0;

	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0) {
		rec[n] = '\0';
		for (unsigned int i = 0; i < sizeof(reports) / sizeof(reports[0]); i++)
			found |= strstr(rec, reports[i]) != NULL;
	}
	close(fd);
	return found;
}

/* RAM at IOVA src -> device buffer -> RAM at IOVA dst. */
static int edu_round_trip(struct edu *e, uint64_t src, uint64_t dst, uint32_t off, uint32_t len)
{
	if (edu_dma(e, src, EDU_BUF + off, len, 0))
		return -1;
	return edu_dma(e, EDU_BUF + off, dst, len, 1);
}

/* --- fixtures ------------------------------------------------------------ */

/*
 * A context with the lone edu (00:05.0) bound and attached to one IOASID,
 * and a buffer of 4 pages: [canary][src][dst][canary].
 */
FIXTURE(dma) {
	int fd;
	struct edu edu;
	__u32 dev, ioasid;
	uint8_t *buf, *src, *dst;
};

FIXTURE_SETUP(dma)
{
	NEED_DMA_TRANSLATION();
	ASSERT_EQ(0, edu_setup(&self->edu, "0000:00:05.0"));
	self->fd = open("/dev/ioasid", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, alloc_ioasid(self->fd, &self->ioasid));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &self->dev, NULL));
	ASSERT_EQ(0, attach(self->fd, self->dev, self->ioasid));
	self->buf = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(self->buf != MAP_FAILED);
	memset(self->buf, 0xcc, 4 * PAGE);
	self->src = self->buf + PAGE;
	self->dst = self->buf + 2 * PAGE;
}

FIXTURE_TEARDOWN(dma)
{
	close(self->fd);
	munmap(self->buf, 4 * PAGE);
	edu_teardown(&self->edu);
}

static int canaries_intact(const uint8_t *buf)
{
	for (int i = 0; i < PAGE; i++)
		if (buf[i] != 0xcc || buf[3 * PAGE + i] != 0xcc)
			return 0;
	return 1;
}

static void fill(uint8_t *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

TEST_F(dma, round_trip_bytes_exact)
{
	static const struct { uint32_t off, len; } cases[] = {
		{ 0, 4096 }, { 0, 1 }, { 16, 100 }, { 1000, 3000 }, { 4000, 96 }, { 2048, 2048 },
	};

	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, IOASID_MAP_READ));
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, IOASID_MAP_WRITE));
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t off = cases[i].off, len = cases[i].len;

		fill(self->src, PAGE, i + 1);
		memset(self->dst, 0, PAGE);
		ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC + off, IOVA_DST + off, off, len));
		EXPECT_EQ(0, memcmp(self->src + off, self->dst + off, len))
			TH_LOG("offset %u length %u", off, len);
		/* Exactly those bytes: nothing before or after was written. */
		for (uint32_t j = 0; j < PAGE; j++) {
			if (j < off || j >= off + len) {
				EXPECT_EQ(0, self->dst[j]) TH_LOG("byte %u, case %u", j, i);
				if (self->dst[j])
					break;
			}
		}
		EXPECT_TRUE(canaries_intact(self->buf));
	}
}

TEST_F(dma, kernel_chosen_iova_works)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .flags = RW, .ioasid = self->ioasid,
		.user_va = (uintptr_t)self->src, .length = 2 * PAGE,
	};

	ASSERT_EQ(0, xioctl(self->fd, IOASID_MAP, &m));
	EXPECT_NE(0, m.iova);
	EXPECT_EQ(0, m.iova % PAGE);
	/* The edu only reaches 28 bits; IOVAs are allocated from the bottom. */
	ASSERT_GT(1ull << 28, m.iova + 2 * PAGE);
	fill(self->src, PAGE, 9);
	ASSERT_EQ(0, edu_round_trip(&self->edu, m.iova, m.iova + PAGE, 0, PAGE));
	EXPECT_EQ(0, memcmp(self->src, self->dst, PAGE));
}

/*
 * DMA that must not reach memory: the buffer stays as it was. With
 * must_report, the IOMMU must also report the fault in the kernel log. Only
 * the translation fault of an unmapped IOVA is asserted that way: the VT-d
 * and virtio-iommu drivers rate-limit their fault messages, QEMU's VT-d
 * compresses repeated faults, and a blocked (detached) endpoint is not
 * reported by virtio-iommu at all; whether a report came is logged.
 */
static void expect_blocked_write(struct __test_metadata *_metadata, struct edu *e,
				 uint64_t iova, uint8_t *target, int must_report)
{
	uint8_t before[PAGE];
	int log;

	memcpy(before, target, PAGE);
	log = kmsg_follow();
	kmsg("ioasid-test: expect-dma-fault begin");
	ASSERT_EQ(0, edu_dma(e, EDU_BUF, iova, 64, 1));
	usleep(100000);	/* fault reports are printed from the fault interrupt */
	kmsg("ioasid-test: expect-dma-fault end");
	EXPECT_EQ(0, memcmp(before, target, PAGE));
	if (must_report) {
		EXPECT_TRUE(fault_logged(log)) TH_LOG("no IOMMU fault was reported for IOVA %#llx",
						      (unsigned long long)iova);
	} else {
		TH_LOG("IOVA %#llx blocked; fault %sreported", (unsigned long long)iova,
		       fault_logged(log) ? "" : "not ");
	}
}

TEST_F(dma, unmapped_iova_is_blocked)
{
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	fill(self->src, PAGE, 3);
	/* Load the device buffer with the pattern, then write it where nothing is mapped. */
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, PAGE, 0));
	expect_blocked_write(_metadata, &self->edu, IOVA_UNMAPPED, self->dst, 1);
	EXPECT_TRUE(canaries_intact(self->buf));
}

TEST_F(dma, read_only_mapping_blocks_device_writes)
{
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, IOASID_MAP_READ));
	fill(self->src, PAGE, 4);
	/* Reading works... */
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, PAGE, 0));
	/* ...writing back into the same read-only mapping does not. */
	memset(self->src, 0x11, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_SRC, self->src, 0);
}

TEST_F(dma, write_only_mapping_blocks_device_reads)
{
	int log;

	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, IOASID_MAP_WRITE));
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	/* Put a known pattern in the device buffer through the readable mapping. */
	fill(self->dst, PAGE, 5);
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_DST, EDU_BUF, PAGE, 0));
	/*
	 * The device may not read the write-only page. (QEMU fills what a
	 * blocked DMA read returns, so the 64 bytes it tried to read change,
	 * but never to the page's content.)
	 */
	memset(self->src, 0x22, PAGE);
	log = kmsg_follow();
	kmsg("ioasid-test: expect-dma-fault begin");
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, 64, 0));
	usleep(100000);	/* fault reports are printed from the fault interrupt */
	kmsg("ioasid-test: expect-dma-fault end");
	TH_LOG("read blocked; fault %sreported", fault_logged(log) ? "" : "not ");
	memset(self->dst, 0, PAGE);
	ASSERT_EQ(0, edu_dma(&self->edu, EDU_BUF, IOVA_DST, PAGE, 1));
	for (int i = 0; i < 64; i++) {
#if defined(__aarch64__)
		/*
		 * Arm's stage-1 page tables (SMMUv3) cannot express write-only:
		 * a writable page is readable. The read went through.
		 */
		EXPECT_EQ(0x22, self->dst[i]) TH_LOG("byte %d: write-only is readable on SMMUv3", i);
#else
		EXPECT_NE(0x22, self->dst[i]) TH_LOG("byte %d came from the write-only page", i);
#endif
	}
	fill(self->src, PAGE, 5);
	EXPECT_EQ(0, memcmp(self->src + 64, self->dst + 64, PAGE - 64));
}

TEST_F(dma, unmap_blocks_and_unpins)
{
	long pins0 = pins(), vpin0 = vmpin_kb();
	__u64 unmapped = 0;

	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	EXPECT_EQ(pins0 + 1, pins());
	EXPECT_EQ(vpin0 + 4, vmpin_kb());
	fill(self->src, PAGE, 6);
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, PAGE, &unmapped));
	EXPECT_EQ(PAGE, unmapped);
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_DST, PAGE, &unmapped));
	EXPECT_EQ(pins0, pins());
	EXPECT_EQ(vpin0, vmpin_kb());
	/* The unmapped IOVA no longer reaches the page. */
	memset(self->dst, 0x33, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
}

TEST_F(dma, free_blocks_dma_and_parks_the_id)
{
	long pins0 = pins();
	__u32 other;

	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	ASSERT_EQ(0, free_ioasid(self->fd, self->ioasid));
	/* Freed with a device attached: DMA blocked and pages unpinned at once... */
	EXPECT_EQ(pins0, pins());
	memset(self->dst, 0x44, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	/* ...the ID names nothing, and it stays parked while the device is attached. */
	EXPECT_EQ(-ENOENT, free_ioasid(self->fd, self->ioasid));
	/* The device is still attached, to the freed IOASID, until it detaches. */
	EXPECT_EQ(-EBUSY, attach(self->fd, self->dev, self->ioasid));
	/* Detaching releases it. */
	EXPECT_EQ(0, detach(self->fd, self->dev));
	EXPECT_EQ(0, alloc_ioasid(self->fd, &other));
	EXPECT_EQ(0, attach(self->fd, self->dev, other));
}

TEST_F(dma, detach_and_unbind_block_dma)
{
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	fill(self->src, PAGE, 7);
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, detach(self->fd, self->dev));
	memset(self->dst, 0x55, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	EXPECT_EQ(-EINVAL, detach(self->fd, self->dev));
	/* Attached again, it works again; unbound, it is blocked again. */
	ASSERT_EQ(0, attach(self->fd, self->dev, self->ioasid));
	ASSERT_EQ(0, edu_dma(&self->edu, EDU_BUF, IOVA_DST, PAGE, 1));
	EXPECT_EQ(0, memcmp(self->src, self->dst, PAGE));
	ASSERT_EQ(0, unbind(self->fd, self->dev));
	memset(self->dst, 0x66, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	EXPECT_EQ(-ENOENT, unbind(self->fd, self->dev));
}

TEST_F(dma, bad_map_requests_leave_nothing_behind)
{
	long pins0 = pins(), vpin0 = vmpin_kb();
	struct ioasid_iova_ranges r = { .argsz = sizeof(r), .ioasid = self->ioasid };
	struct ioasid_iova_range ranges[8];
	struct ioasid_unmap all = { .argsz = sizeof(all), .flags = IOASID_UNMAP_ALL };

	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst, 0, IOVA_DST, RW));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst + 1, PAGE, IOVA_DST, RW));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst, PAGE - 1, IOVA_DST, RW));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST + 8, RW));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst, PAGE, 0, 0));
	EXPECT_EQ(-EINVAL, map_at(self->fd, self->ioasid, self->dst, 2 * PAGE, -(__u64)PAGE, RW));
	EXPECT_EQ(-EEXIST, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_SRC, RW));
	EXPECT_EQ(-EEXIST, map_at(self->fd, self->ioasid, self->buf, 2 * PAGE, IOVA_SRC - PAGE, RW));
	EXPECT_EQ(-ENOENT, map_at(self->fd, 999, self->dst, PAGE, IOVA_DST, RW));
	EXPECT_EQ(-EFAULT, map_at(self->fd, self->ioasid, (void *)(uintptr_t)PAGE, PAGE, IOVA_DST, RW));

	/* Outside the usable ranges: past the aperture, and in a reserved hole. */
	r.num_ranges = 8;
	r.ranges_uptr = (uintptr_t)ranges;
	ASSERT_EQ(0, xioctl(self->fd, IOASID_IOVA_RANGES, &r));
	ASSERT_LE(1, r.num_ranges);
	EXPECT_NE(0, r.out_pgsize_bitmap & PAGE);
	TH_LOG("%u usable ranges, page sizes %#llx", r.num_ranges, (unsigned long long)r.out_pgsize_bitmap);
	for (__u32 i = 0; i < r.num_ranges; i++) {
		TH_LOG("  [%#llx, %#llx]", (unsigned long long)ranges[i].start,
		       (unsigned long long)ranges[i].last);
	}
	if (ranges[r.num_ranges - 1].last < UINT64_MAX - PAGE) {
		EXPECT_EQ(-ERANGE, map_at(self->fd, self->ioasid, self->dst, PAGE,
					  (ranges[r.num_ranges - 1].last + 1) & ~(__u64)(PAGE - 1), RW));
	}
	if (r.num_ranges > 1) {
		EXPECT_EQ(-ERANGE, map_at(self->fd, self->ioasid, self->dst, PAGE,
					  (ranges[0].last + 1) & ~(__u64)(PAGE - 1), RW));
	}
	/* Only the first mapping is there. */
	EXPECT_EQ(pins0 + 1, pins());
	EXPECT_EQ(vpin0 + 4, vmpin_kb());

	/* UNMAP: cutting a mapping, or nothing there. */
	EXPECT_EQ(0, map_at(self->fd, self->ioasid, self->buf + 2 * PAGE, 2 * PAGE, IOVA_DST, RW));
	EXPECT_EQ(-EINVAL, unmap(self->fd, self->ioasid, IOVA_DST, PAGE, NULL));
	EXPECT_EQ(-ENOENT, unmap(self->fd, self->ioasid, IOVA_UNMAPPED, PAGE, NULL));
	EXPECT_EQ(-EINVAL, unmap(self->fd, self->ioasid, IOVA_DST, 0, NULL));
	all.ioasid = self->ioasid;
	ASSERT_EQ(0, xioctl(self->fd, IOASID_UNMAP, &all));
	EXPECT_EQ(3 * PAGE, all.out_unmapped);
	EXPECT_EQ(pins0, pins());
	EXPECT_EQ(vpin0, vmpin_kb());
}

/* The IOPTE counts the module shows in debugfs: 4 KiB and 2 MiB. */
static int iopte_counts(long *k4, long *m2)
{
	FILE *f = fopen("/sys/kernel/debug/ioasid/iopte_counts", "r");
	char name[16];
	long n;
	int found = 0;

	if (!f)
		return -1;
	while (fscanf(f, " %15[^:]: %ld", name, &n) == 2) {
		if (!strcmp(name, "4K"))
			*k4 = n, found++;
		if (!strcmp(name, "2M"))
			*m2 = n, found++;
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

#define HUGE (2ul << 20)

/*
 * A domain whose last device detached leaves with its mappings (not unmapped
 * area by area): its IOPTEs are gone from the counts, no DMA reaches the
 * areas, which stay pinned and are mapped into the next domain on attach;
 * freeing the IOASID with the device attached unpins them.
 */
TEST_F(dma, detached_domain_goes_with_its_mappings)
{
	long pins0 = pins(), k4, m2, k4_0, m2_0;

	ASSERT_EQ(0, iopte_counts(&k4_0, &m2_0));
	fill(self->src, PAGE, 8);
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0 + 2, k4);
	ASSERT_EQ(0, detach(self->fd, self->dev));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0, k4);
	EXPECT_EQ(pins0 + 2, pins());
	memset(self->dst, 0x5a, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	/* A new domain, with both areas replayed into it. */
	ASSERT_EQ(0, attach(self->fd, self->dev, self->ioasid));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0 + 2, k4);
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC, IOVA_DST, 0, PAGE));
	EXPECT_EQ(0, memcmp(self->src, self->dst, PAGE));
	/* Freed with the device attached: detached, then unpinned. */
	ASSERT_EQ(0, free_ioasid(self->fd, self->ioasid));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0, k4);
	EXPECT_EQ(m2_0, m2);
	EXPECT_EQ(pins0, pins());
	memset(self->dst, 0x5b, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	EXPECT_TRUE(canaries_intact(self->buf));
}

TEST_F(dma, huge_page_maps_as_one_2m_iopte)
{
	long k4, m2, k4_0, m2_0;
	uint8_t *huge;
	int fd;

	fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
	huge = mmap(NULL, HUGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_TRUE(huge != MAP_FAILED);
	memset(huge, 0, HUGE);
	ASSERT_EQ(0, iopte_counts(&k4_0, &m2_0));

	/* 2 MiB-aligned IOVA and physical address: one 2 MiB IOPTE, no 4 KiB ones. */
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, huge, HUGE, 0x400000, RW));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(m2_0 + 1, m2);
	EXPECT_EQ(k4_0, k4);
	/* And it works: DMA from its start to its second half. */
	fill(huge, PAGE, 11);
	ASSERT_EQ(0, edu_round_trip(&self->edu, 0x400000, 0x400000 + HUGE / 2, 0, PAGE));
	EXPECT_EQ(0, memcmp(huge, huge + HUGE / 2, PAGE));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, 0x400000, HUGE, NULL));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(m2_0, m2);
	EXPECT_EQ(k4_0, k4);

	/* At an IOVA that is only 4 KiB aligned, the same page takes 512 4 KiB IOPTEs. */
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, huge, HUGE, 0x801000, RW));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(m2_0, m2);
	EXPECT_EQ(k4_0 + 512, k4);
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, 0x801000, HUGE, NULL));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0, k4);
	munmap(huge, HUGE);
}

/* --- IOASID_MAP_FILE ----------------------------------------------------- */

/* A memfd of n pages (flags: memfd_create's), each page filled with its own pattern. */
static int memfd_of(size_t len, unsigned int flags)
{
	int fd = memfd_create("ioasid-dma", MFD_CLOEXEC | flags);

	if (fd >= 0 && ftruncate(fd, len)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A memfd range moves bytes both ways, with no view of it mapped, and after
 * the memfd is closed: the mapping holds the pages, not the caller's page
 * tables or the descriptor. Pins exactly the range, and gives it back.
 */
TEST_F(dma, map_file_round_trip_without_a_view)
{
	long pins0 = pins();
	int mfd = memfd_of(4 * PAGE, 0);
	uint8_t *view, want[PAGE];

	ASSERT_LE(0, mfd);
	view = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	memset(view, 0xcc, 4 * PAGE);
	fill(view + PAGE, PAGE, 21);
	memcpy(want, view + PAGE, PAGE);
	/* Pages 1 and 2 of the file: the device reads page 1 and writes page 2. */
	ASSERT_EQ(0, map_file(self->fd, self->ioasid, mfd, PAGE, 2 * PAGE, IOVA_SRC, RW, NULL));
	EXPECT_EQ(pins0 + 2, pins());
	munmap(view, 4 * PAGE);
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC, IOVA_SRC + PAGE, 0, PAGE));
	view = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	EXPECT_EQ(0, memcmp(want, view + 2 * PAGE, PAGE));
	EXPECT_TRUE(canaries_intact(view)) TH_LOG("pages 0 and 3 of the file were touched");
	/* Into anonymous memory, with the memfd closed and unmapped. */
	fill(view + PAGE, PAGE, 22);
	memcpy(want, view + PAGE, PAGE);
	munmap(view, 4 * PAGE);
	close(mfd);
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, IOASID_MAP_WRITE));
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC, IOVA_DST, 0, PAGE));
	EXPECT_EQ(0, memcmp(want, self->dst, PAGE));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, 2 * PAGE, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_DST, PAGE, NULL));
	EXPECT_EQ(pins0, pins());
}

/* A hugetlb memfd maps with one 2 MiB IOPTE, at a kernel-chosen IOVA too. */
TEST_F(dma, map_file_hugetlb_as_2m_ioptes)
{
	long k4, m2, k4_0, m2_0, pins0 = pins();
	__u64 iova = 0;
	uint8_t *view;
	int mfd, fd;

	fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
	mfd = memfd_of(2 * HUGE, MFD_HUGETLB);
	ASSERT_LE(0, mfd);
	view = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	fill(view + HUGE, PAGE, 23);
	ASSERT_EQ(0, iopte_counts(&k4_0, &m2_0));
	/* The second huge page, wherever the kernel puts it: 2 MiB-aligned, one IOPTE. */
	ASSERT_EQ(0, map_file(self->fd, self->ioasid, mfd, HUGE, HUGE, 0, RW, &iova));
	EXPECT_EQ(0, iova % HUGE) TH_LOG("iova %#llx", (unsigned long long)iova);
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(m2_0 + 1, m2);
	EXPECT_EQ(k4_0, k4);
	EXPECT_EQ(pins0 + 512, pins());
	ASSERT_GT(1ull << 28, iova + HUGE);
	ASSERT_EQ(0, edu_round_trip(&self->edu, iova, iova + HUGE / 2, 0, PAGE));
	EXPECT_EQ(0, memcmp(view + HUGE, view + HUGE + HUGE / 2, PAGE));
	/* Part of a huge page, from inside it: 4 KiB IOPTEs. */
	ASSERT_EQ(0, map_file(self->fd, self->ioasid, mfd, HUGE + 3 * PAGE, 2 * PAGE, 0x800000 + PAGE,
			      RW, NULL));
	ASSERT_EQ(0, iopte_counts(&k4, &m2));
	EXPECT_EQ(k4_0 + 2, k4);
	ASSERT_EQ(0, edu_round_trip(&self->edu, iova, 0x800000 + 2 * PAGE, 0, PAGE));
	EXPECT_EQ(0, memcmp(view + HUGE, view + HUGE + 4 * PAGE, PAGE));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, iova, HUGE, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, 0x800000 + PAGE, 2 * PAGE, NULL));
	EXPECT_EQ(pins0, pins());
	munmap(view, 2 * HUGE);
	close(mfd);
}

/* Each refused IOASID_MAP_FILE leaves nothing pinned or mapped. */
TEST_F(dma, map_file_refusals)
{
	long pins0 = pins();
	int mfd = memfd_of(4 * PAGE, MFD_ALLOW_SEALING), ro, wo, sealed, future, devnull, pipes[2];
	char path[64];
	struct ioasid_map_file m = {
		.argsz = sizeof(m), .flags = RW | IOASID_MAP_FIXED_IOVA, .ioasid = self->ioasid,
		.fd = mfd, .start = 0, .length = PAGE, .iova = IOVA_SRC,
	};
	static const struct { int fd_sel; __u64 start, length; __u32 prot; int err; } cases[] = {
		{ 0, 0, 0, RW, EINVAL },		/* zero length */
		{ 0, 1, PAGE, RW, EINVAL },		/* unaligned start */
		{ 0, 0, PAGE + 1, RW, EINVAL },		/* unaligned length */
		{ 0, 4 * PAGE, PAGE, RW, EINVAL },	/* past the end of the file */
		{ 0, 3 * PAGE, 2 * PAGE, RW, EINVAL },	/* across the end */
		{ 0, -4096ull, PAGE, RW, EINVAL },	/* at the top of the 64-bit space */
		{ 0, -4096ull, 2 * PAGE, RW, EINVAL },	/* wrapping */
		{ 0, 1ull << 63, PAGE, RW, EINVAL },	/* past the largest file offset */
		{ 0, 0, -4096ull, RW, EINVAL },		/* 2^64 - 4096 bytes */
		{ 0, 0, PAGE, 0, EINVAL },		/* no access */
		{ 1, 0, PAGE, RW, EBADF },		/* read-only descriptor, device writes */
		{ 2, 0, PAGE, RW, EPERM },		/* write-sealed, device writes */
		{ 3, 0, PAGE, RW, EINVAL },		/* not shmem or hugetlbfs */
		{ 4, 0, PAGE, IOASID_MAP_READ, EINVAL },	/* a pipe */
		{ 5, 0, PAGE, RW, EBADF },		/* -1 */
		{ 6, 0, PAGE, RW, EBADF },		/* not open */
		{ 7, 0, PAGE, RW, EBADF },		/* INT_MIN */
		{ 8, 0, PAGE, IOASID_MAP_READ, EBADF },	/* write-only descriptor */
		{ 8, 0, PAGE, IOASID_MAP_WRITE, EBADF },	/* the device would read it too */
		{ 9, 0, PAGE, RW, EPERM },		/* future-write-sealed, device writes */
	};

	ASSERT_LE(0, mfd);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	wo = open(path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wo);
	sealed = memfd_of(PAGE, MFD_ALLOW_SEALING);
	ASSERT_LE(0, sealed);
	ASSERT_EQ(0, fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE));
	future = memfd_of(PAGE, MFD_ALLOW_SEALING);
	ASSERT_LE(0, future);
	ASSERT_EQ(0, fcntl(future, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, devnull);
	ASSERT_EQ(0, pipe(pipes));
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const int fds[] = { mfd,  ro,   sealed, devnull, pipes[0], -1,
				    1000, -2147483647 - 1, wo, future };

		m.fd = fds[cases[i].fd_sel];
		m.start = cases[i].start;
		m.length = cases[i].length;
		m.flags = cases[i].prot | IOASID_MAP_FIXED_IOVA;
		EXPECT_EQ(-cases[i].err, xioctl(self->fd, IOASID_MAP_FILE, &m)) TH_LOG("case %u", i);
		EXPECT_EQ(pins0, pins()) TH_LOG("case %u", i);
	}
	/* What the device only reads needs neither a writable descriptor nor an unsealed file. */
	EXPECT_EQ(0, map_file(self->fd, self->ioasid, ro, 0, PAGE, IOVA_SRC, IOASID_MAP_READ, NULL));
	EXPECT_EQ(0, map_file(self->fd, self->ioasid, sealed, 0, PAGE, IOVA_SRC + PAGE,
			      IOASID_MAP_READ, NULL));
	EXPECT_EQ(pins0 + 2, pins());
	/* Nothing of the refused ones was left at IOVA_DST: it maps. */
	EXPECT_EQ(0, map_file(self->fd, self->ioasid, mfd, 0, 2 * PAGE, IOVA_DST, RW, NULL));
	/* A write seal cannot be added while the device may write the pages. */
	EXPECT_EQ(-1, fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, 2 * PAGE, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_DST, 2 * PAGE, NULL));
	EXPECT_EQ(pins0, pins());
	close(ro);
	close(wo);
	close(sealed);
	close(future);
	close(devnull);
	close(pipes[0]);
	close(pipes[1]);
	close(mfd);
}

/* The sealing side of map_file_write_seal_race. */
struct sealer {
	int mfd;
	unsigned int delay_us;
	volatile int go, stop;
	int sealed;
};

static void *seal_when_told(void *arg)
{
	struct sealer *s = arg;

	while (!s->go)
		;
	usleep(s->delay_us);
	/* Until the map returns: a seal that wins may come at any moment of it. */
	do {
		if (!fcntl(s->mfd, F_ADD_SEALS, F_SEAL_WRITE)) {
			s->sealed = 1;
			break;
		}
	} while (!s->stop);
	return NULL;
}

/*
 * F_SEAL_WRITE raced against an IOASID_MAP_FILE for the device to write,
 * landing at every moment of it (a fresh hugetlb file: the map allocates and
 * zeroes the huge page before it can pin it): the seal and the map never
 * both succeed. A seal added while the pages were being pinned used to
 * succeed, and the device could then write a sealed file.
 */
TEST_F(dma, map_file_write_seal_race)
{
	long pins0 = pins();
	unsigned int both = 0, sealed = 0, mapped = 0, took_us = 0;
	int fd;

	fd = open("/proc/sys/vm/nr_hugepages", O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
	for (unsigned int i = 0; i < 40; i++) {
		/* Seals tried from 0 to 5/4 of the longest map seen so far on. */
		struct sealer s = { .delay_us = (i % 20) * took_us / 16 };
		struct timespec t0, t1;
		pthread_t t;
		int ret;

		s.mfd = memfd_of(HUGE, MFD_HUGETLB | MFD_ALLOW_SEALING);
		ASSERT_LE(0, s.mfd);
		ASSERT_EQ(0, pthread_create(&t, NULL, seal_when_told, &s));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		s.go = 1;
		ret = map_file(self->fd, self->ioasid, s.mfd, 0, HUGE, IOVA_SRC, RW, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s.stop = 1;
		if (!ret && (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000 > took_us)
			took_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		pthread_join(t, NULL);
		if (!ret) {
			mapped++;
			both += s.sealed;
			ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, HUGE, NULL));
		} else {
			EXPECT_EQ(-EPERM, ret) TH_LOG("round %u", i);
			EXPECT_EQ(1, s.sealed) TH_LOG("round %u: refused, yet not sealed", i);
		}
		sealed += s.sealed;
		EXPECT_EQ(pins0, pins()) TH_LOG("round %u", i);
		close(s.mfd);
	}
	TH_LOG("40 rounds: %u mapped, %u sealed, %u both; a map took up to %u us",
	       mapped, sealed, both, took_us);
	EXPECT_EQ(0, both);
}

/*
 * Truncating a mapped memfd (or punching a hole) takes the pages out of the
 * file, not out of the IOASID: they stay pinned, keep their bytes and take
 * the device's writes, and are given back at unmap.
 */
TEST_F(dma, map_file_truncated_while_mapped)
{
	long pins0 = pins();
	int mfd = memfd_of(2 * PAGE, 0);
	uint8_t *view, want[PAGE];

	ASSERT_LE(0, mfd);
	view = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	fill(view, PAGE, 24);
	memcpy(want, view, PAGE);
	ASSERT_EQ(0, map_file(self->fd, self->ioasid, mfd, 0, 2 * PAGE, IOVA_SRC, RW, NULL));
	munmap(view, 2 * PAGE);
	ASSERT_EQ(0, fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE));
	ASSERT_EQ(0, ftruncate(mfd, 0));
	EXPECT_EQ(pins0 + 2, pins());
	/* The device copies the orphaned page 0 to page 1, then page 1 out to anonymous memory. */
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC, IOVA_SRC + PAGE, 0, PAGE));
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, IOASID_MAP_WRITE));
	memset(self->dst, 0, PAGE);
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC + PAGE, IOVA_DST, 0, PAGE));
	EXPECT_EQ(0, memcmp(want, self->dst, PAGE));
	/* The file grown again shows new, zeroed pages, not the device's. */
	ASSERT_EQ(0, ftruncate(mfd, 2 * PAGE));
	view = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	for (int i = 0; i < 2 * PAGE; i++)
		if (view[i]) {
			EXPECT_EQ(0, view[i]) TH_LOG("byte %d of the regrown file", i);
			break;
		}
	munmap(view, 2 * PAGE);
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, 2 * PAGE, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_DST, PAGE, NULL));
	EXPECT_EQ(pins0, pins());
	close(mfd);
}

/* A mapping made by a child that then exited stays, pinned, until unmapped. */
TEST_F(dma, map_file_outlives_the_process_that_made_it)
{
	long pins0 = pins();
	int mfd = memfd_of(PAGE, 0), status;
	uint8_t *view;
	pid_t pid;

	ASSERT_LE(0, mfd);
	view = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_TRUE(view != MAP_FAILED);
	fill(view, PAGE, 25);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(map_file(self->fd, self->ioasid, mfd, 0, PAGE, IOVA_SRC, IOASID_MAP_READ, NULL) ? 1 : 0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(pins0 + 1, pins());
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, IOASID_MAP_WRITE));
	memset(self->dst, 0, PAGE);
	ASSERT_EQ(0, edu_round_trip(&self->edu, IOVA_SRC, IOVA_DST, 0, PAGE));
	EXPECT_EQ(0, memcmp(view, self->dst, PAGE));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_SRC, PAGE, NULL));
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, IOVA_DST, PAGE, NULL));
	EXPECT_EQ(pins0, pins());
	munmap(view, PAGE);
	close(mfd);
}

TEST_F(dma, device_info_matches_what_the_iommu_enforces)
{
	struct ioasid_iova_range regions[8];
	struct ioasid_device_info info = {
		.argsz = sizeof(info), .dev_id = self->dev, .num_regions = 8,
		.regions_uptr = (uintptr_t)regions,
	};
	struct ioasid_iova_ranges r = { .argsz = sizeof(r), .ioasid = self->ioasid };
	struct ioasid_iova_range ranges[8];
	const char *model = getenv("IOASID_IOMMU");
	int msi_window = 0;

	ASSERT_EQ(0, xioctl(self->fd, IOASID_DEVICE_GET_INFO, &info));
	TH_LOG("page sizes %#llx, aperture [%#llx, %#llx], capabilities %#llx, %u regions",
	       (unsigned long long)info.out_pgsize_bitmap,
	       (unsigned long long)info.out_aperture_start,
	       (unsigned long long)info.out_aperture_last,
	       (unsigned long long)info.out_capabilities, info.num_regions);
	EXPECT_NE(0, info.out_pgsize_bitmap & PAGE);
	EXPECT_LT(0xffffffffull, info.out_aperture_last);
	for (__u32 i = 0; i < info.num_regions && i < 8; i++) {
		if (regions[i].start <= MSI_WINDOW_START && regions[i].last >= MSI_WINDOW_LAST)
			msi_window = 1;
	}
	/*
	 * The MSI window is reserved: on x86 the interrupt address range, on
	 * arm64 the IOVA window the SMMUv3 driver maps the GIC ITS doorbell in
	 * (a software-managed MSI region).
	 */
	EXPECT_TRUE(msi_window);
	/*
	 * MSIs are isolated by VT-d's interrupt remapping and by the GICv3 ITS;
	 * not in the virtio-iommu VM.
	 */
	if (model && (!strncmp(model, "intel", 5) || !strcmp(model, "smmuv3"))) {
		EXPECT_NE(0, info.out_capabilities & IOASID_DEVICE_CAP_ISOLATED_MSI);
	}
	if (model && !strcmp(model, "virtio")) {
		EXPECT_EQ(0, info.out_capabilities & IOASID_DEVICE_CAP_ISOLATED_MSI);
	}
	/* The IOASID it is attached to reports the same constraints. */
	r.num_ranges = 8;
	r.ranges_uptr = (uintptr_t)ranges;
	ASSERT_EQ(0, xioctl(self->fd, IOASID_IOVA_RANGES, &r));
	EXPECT_EQ(info.out_pgsize_bitmap, r.out_pgsize_bitmap);
	EXPECT_EQ(info.out_aperture_start, ranges[0].start);
	EXPECT_EQ(info.out_aperture_last, ranges[r.num_ranges - 1].last);
	/* A short array: EMSGSIZE with the count. */
	info.num_regions = 0;
	EXPECT_EQ(-EMSGSIZE, xioctl(self->fd, IOASID_DEVICE_GET_INFO, &info));
	EXPECT_LT(0, info.num_regions);
	info.dev_id = 999;
	EXPECT_EQ(-ENOENT, xioctl(self->fd, IOASID_DEVICE_GET_INFO, &info));
}

TEST_F(dma, close_blocks_dma)
{
	fill(self->src, PAGE, 12);
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->src, PAGE, IOVA_SRC, RW));
	ASSERT_EQ(0, edu_dma(&self->edu, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, map_at(self->fd, self->ioasid, self->dst, PAGE, IOVA_DST, RW));
	/* The last close: the device goes back to the kernel, whose domain maps nothing there. */
	close(self->fd);
	self->fd = -1;
	memset(self->dst, 0x77, PAGE);
	expect_blocked_write(_metadata, &self->edu, IOVA_DST, self->dst, 0);
	EXPECT_TRUE(canaries_intact(self->buf));
}

/* --- ownership, groups, privilege ---------------------------------------- */

TEST(bind_refusals)
{
	struct edu e = { 0 };
	struct edu virtio = { .seg = 0, .bus = 0, .devfn = 4 << 3 };
	struct edu none = { .seg = 0, .bus = 0, .devfn = 0x1d << 3 };
	int a = open("/dev/ioasid", O_RDWR), b = open("/dev/ioasid", O_RDWR);
	__u32 dev, dev2, group;
	char link[256];
	ssize_t n;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	ASSERT_EQ(0, bind_dev(a, &e, &dev, &group));
	/* Its group number is the one sysfs shows. */
	n = readlink("/sys/bus/pci/devices/0000:00:05.0/iommu_group", link, sizeof(link) - 1);
	ASSERT_LT(0, n);
	link[n] = '\0';
	EXPECT_EQ(group, (__u32)atoi(strrchr(link, '/') + 1));
	/* Twice in one context; in a second context while the first owns it. */
	EXPECT_EQ(-EEXIST, bind_dev(a, &e, &dev2, NULL));
	EXPECT_EQ(-EBUSY, bind_dev(b, &e, &dev2, NULL));
	/* Once the first lets go, the second may take it. */
	EXPECT_EQ(0, unbind(a, dev));
	EXPECT_EQ(0, bind_dev(b, &e, &dev2, NULL));
	close(b);
	/* A device with a kernel driver (the virtio console), and no device at all. */
	EXPECT_EQ(-EBUSY, bind_dev(a, &virtio, &dev2, NULL));
	EXPECT_EQ(-ENODEV, bind_dev(a, &none, &dev2, NULL));
	close(a);
	edu_teardown(&e);
}

/*
 * Without interrupt remapping (the runner's amd and virtio-iommu VMs) a
 * device's DMA could forge MSIs: binding is refused unless the module was
 * loaded with allow_unsafe_interrupts=1. The runner runs this test alone,
 * before it reloads the module with that parameter.
 */
TEST(unisolated_msi_is_refused)
{
	struct edu e = { 0 };
	__u32 dev;
	int fd;

	if (!getenv("IOASID_EXPECT_MSI_REFUSAL"))
		SKIP(return, "run by the VM runner where MSIs are not isolated");
	fd = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	EXPECT_EQ(-EPERM, bind_dev(fd, &e, &dev, NULL));
	close(fd);
	edu_teardown(&e);
}

TEST(multi_function_group_is_one_unit)
{
	struct edu f0 = { 0 }, f1 = { 0 };
	int a = open("/dev/ioasid", O_RDWR), b = open("/dev/ioasid", O_RDWR);
	__u32 d0, d1, g0, g1, x, ioas1, ioas2;
	uint8_t *buf;
	NEED_DMA_TRANSLATION();

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, edu_setup(&f0, "0000:00:06.0"));
	ASSERT_EQ(0, edu_setup(&f1, "0000:00:06.1"));
	ASSERT_EQ(0, bind_dev(a, &f0, &d0, &g0));
	/* The other function is in the same group: another context cannot have it. */
	EXPECT_EQ(-EBUSY, bind_dev(b, &f1, &x, NULL));
	ASSERT_EQ(0, bind_dev(a, &f1, &d1, &g1));
	EXPECT_EQ(g0, g1);
	ASSERT_EQ(0, alloc_ioasid(a, &ioas1));
	ASSERT_EQ(0, alloc_ioasid(a, &ioas2));
	ASSERT_EQ(0, attach(a, d0, ioas1));
	/* Both functions must share the IOASID. */
	EXPECT_EQ(-EXDEV, attach(a, d1, ioas2));
	ASSERT_EQ(0, attach(a, d1, ioas1));
	EXPECT_EQ(-EBUSY, attach(a, d1, ioas1));

	buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_EQ(0, map_at(a, ioas1, buf, 2 * PAGE, IOVA_SRC, RW));
	fill(buf, PAGE, 8);
	memset(buf + PAGE, 0, PAGE);
	/* Both functions DMA through the one IOASID. */
	ASSERT_EQ(0, edu_dma(&f0, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, edu_dma(&f0, EDU_BUF, IOVA_SRC + PAGE, PAGE / 2, 1));
	ASSERT_EQ(0, edu_dma(&f1, IOVA_SRC + PAGE / 2, EDU_BUF, PAGE / 2, 0));
	ASSERT_EQ(0, edu_dma(&f1, EDU_BUF, IOVA_SRC + PAGE + PAGE / 2, PAGE / 2, 1));
	EXPECT_EQ(0, memcmp(buf, buf + PAGE, PAGE));
	close(a);
	close(b);
	munmap(buf, 2 * PAGE);
	edu_teardown(&f0);
	edu_teardown(&f1);
}

TEST(bridged_devices_share_a_group)
{
	struct edu e0 = { 0 }, e1 = { 0 };
	int a = open("/dev/ioasid", O_RDWR), b = open("/dev/ioasid", O_RDWR);
	__u32 d0, d1, x, ioas;
	uint8_t *buf;
	NEED_DMA_TRANSLATION();

	if (access("/sys/bus/pci/devices/0000:01:01.0", F_OK))
		SKIP(return, "no bridged edu devices in this VM (virtio-iommu)");
	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, edu_setup(&e0, "0000:01:01.0"));
	ASSERT_EQ(0, edu_setup(&e1, "0000:01:02.0"));
#if defined(__aarch64__)
	/*
	 * The SMMUv3 driver does not support a StreamID shared by several
	 * devices ("Aliasing StreamID unsupported"): devices behind a
	 * conventional PCI bridge get no IOMMU group at all, and binding
	 * them is refused as "not behind an IOMMU".
	 */
	EXPECT_EQ(-ENODEV, bind_dev(a, &e0, &d0, NULL));
	EXPECT_EQ(-ENODEV, bind_dev(b, &e1, &d1, NULL));
	EXPECT_EQ(0, access("/sys/bus/pci/devices/0000:00:07.0/iommu_group", F_OK));
	EXPECT_NE(0, access("/sys/bus/pci/devices/0000:01:01.0/iommu_group", F_OK));
	close(a);
	close(b);
	return;
#endif
	ASSERT_EQ(0, bind_dev(a, &e0, &d0, NULL));
	EXPECT_EQ(-EBUSY, bind_dev(b, &e1, &x, NULL));
	ASSERT_EQ(0, bind_dev(a, &e1, &d1, NULL));
	ASSERT_EQ(0, alloc_ioasid(a, &ioas));
	ASSERT_EQ(0, attach(a, d0, ioas));
	ASSERT_EQ(0, attach(a, d1, ioas));
	buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(buf != MAP_FAILED);
	ASSERT_EQ(0, map_at(a, ioas, buf, 2 * PAGE, IOVA_SRC, RW));
	fill(buf, PAGE, 10);
	memset(buf + PAGE, 0, PAGE);
	ASSERT_EQ(0, edu_dma(&e0, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, edu_dma(&e1, IOVA_SRC, EDU_BUF, PAGE, 0));
	ASSERT_EQ(0, edu_dma(&e1, EDU_BUF, IOVA_SRC + PAGE, PAGE, 1));
	EXPECT_EQ(0, memcmp(buf, buf + PAGE, PAGE));
	close(a);
	close(b);
	munmap(buf, 2 * PAGE);
	edu_teardown(&e0);
	edu_teardown(&e1);
}

/*
 * A privileged parent binds and attaches, then hands the fd to a child that
 * drops every privilege and has a small RLIMIT_MEMLOCK: it can map and unmap
 * within the limit, not beyond, and cannot bind.
 */
TEST(unprivileged_holder_of_the_fd)
{
	struct edu e = { 0 };
	int fd = open("/dev/ioasid", O_RDWR);
	__u32 dev, ioasid;
	long pins0 = pins(), pinned0 = pinned_pages();
	pid_t pid;
	int status;
	NEED_DMA_TRANSLATION();

	ASSERT_LE(0, fd);
	ASSERT_LE(0, pinned0);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	ASSERT_EQ(0, bind_dev(fd, &e, &dev, NULL));
	ASSERT_EQ(0, alloc_ioasid(fd, &ioasid));
	ASSERT_EQ(0, attach(fd, dev, ioasid));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit lim = { 16 * PAGE, 16 * PAGE };
		uint8_t *buf = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		__u32 x;
		long vpin;

		if (buf == MAP_FAILED || setrlimit(RLIMIT_MEMLOCK, &lim) ||
		    setgid(65534) || setuid(65534))
			_exit(10);
		memset(buf, 1, 32 * PAGE);
		if (map_at(fd, ioasid, buf, 16 * PAGE, IOVA_SRC, RW))
			_exit(11);
		vpin = vmpin_kb();
		/* One page more than the limit allows: refused, nothing pinned. */
		if (map_at(fd, ioasid, buf + 16 * PAGE, PAGE, IOVA_DST, RW) != -ENOMEM)
			_exit(12);
		/* Pinned (VmPin), charged to the user, not to the process's VmLck. */
		if (vmpin_kb() != vpin || vpin != 64 || status_kb("VmLck:") != 0)
			_exit(13);
		if (unmap(fd, ioasid, IOVA_SRC, 16 * PAGE, NULL) || vmpin_kb() != 0)
			_exit(14);
		if (map_at(fd, ioasid, buf + 16 * PAGE, PAGE, IOVA_DST, RW))
			_exit(15);
		/* No CAP_SYS_ADMIN: no binding. */
		if (bind_dev(fd, &e, &x, NULL) != -EPERM)
			_exit(16);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	/* 10 setup, 11 map, 12 over-limit map not ENOMEM, 13 VmPin/VmLck, 14 unmap, 15 remap, 16 bind */
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The child's mapping is still there (the context is the parent's fd): one page. */
	EXPECT_EQ(pins0 + 1, pins());
	EXPECT_EQ(pinned0 + 1, pinned_pages());
	close(fd);
	EXPECT_EQ(pins0, pins());
	EXPECT_EQ(pinned0, pinned_pages());
	edu_teardown(&e);
}

TEST(close_and_kill_unpin_everything)
{
	long pins0 = pins();
	struct edu e = { 0 };
	int status, pipefd[2], fd;
	__u32 dev;
	pid_t pid;
	char c;
	NEED_DMA_TRANSLATION();

	/* A process killed while it maps in a loop. */
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct edu e = { 0 };
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = mmap(NULL, 256 * PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		__u32 dev, ioasid;

		if (fd < 0 || buf == MAP_FAILED || edu_setup(&e, "0000:00:05.0") ||
		    bind_dev(fd, &e, &dev, NULL) || alloc_ioasid(fd, &ioasid) ||
		    attach(fd, dev, ioasid))
			_exit(1);
		memset(buf, 1, 256 * PAGE);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		for (;;) {
			for (int i = 0; i < 256; i++)
				map_at(fd, ioasid, buf + i * PAGE, PAGE, IOVA_SRC + i * PAGE, RW);
			for (int i = 0; i < 256; i++)
				unmap(fd, ioasid, IOVA_SRC + i * PAGE, PAGE, NULL);
		}
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	usleep(300000);
	EXPECT_LT(pins0, pins()) TH_LOG("the child was mapping: pages were pinned");
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	/* Everything it pinned was unpinned, and its device is free again. */
	EXPECT_EQ(pins0, pins());
	fd = open("/dev/ioasid", O_RDWR);
	ASSERT_EQ(0, edu_setup(&e, "0000:00:05.0"));
	EXPECT_EQ(0, bind_dev(fd, &e, &dev, NULL));
	close(fd);
	edu_teardown(&e);
}

TEST_HARNESS_MAIN
