// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for the cache coherency model (seed 000): coherent and
 * non-coherent IOASIDs, coherent-only and assumed non-coherent devices,
 * IOASID_EXECUTE_WBINVD, and the KVM-facing interface, seen through the
 * test-only module ioasid_kvm_probe exactly as KVM would see it.
 *
 * The runner (scripts/vm.sh) provides:
 *  - the edu device at 00:05.0 and an e1000e behind a PCIe root port (no
 *    emulated device can emit no-snoop: both must be detected coherent-only);
 *  - IOASID_EXPECT_ENFORCE=1|0: whether this VM's IOMMU can block no-snoop
 *    (VT-d with snoop-control=on: 1; snoop-control=off, virtio-iommu, SMMUv3
 *    described by a device tree: 0);
 *  - ioasid.ko built with IOASID_TEST=1 (the test seam that marks a device
 *    assumed non-coherent), and ioasid_kvm_probe.ko loaded;
 *  - a second run of this program with ioasid loaded forbid_wbinvd=1, and
 *    IOASID_FORBID_WBINVD=1 in the environment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "edu.h"
#include "ioasid_util.h"
#include "kselftest_harness.h"

#define PAGE 4096
#define IOVA_SRC 0x100000
#define IOVA_DST 0x200000
#define EDU "0000:00:05.0"

#define SEAM "/sys/kernel/debug/ioasid/test_assume_noncoherent"
#define PROBE_CTL "/sys/kernel/debug/ioasid_kvm_probe/ctl"
#define PROBE_STATE "/sys/kernel/debug/ioasid_kvm_probe/state"

#if defined(__x86_64__) || defined(__i386__)
#define ARCH_HAS_WBINVD 1
#else
#define ARCH_HAS_WBINVD 0
#endif

/* --- environment ----------------------------------------------------------- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	int ret;

	if (fd < 0)
		return -errno;
	ret = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -errno;
	close(fd);
	return ret;
}

static long read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

/* Whether the runner loaded ioasid with forbid_wbinvd=1 (it says so in IOASID_FORBID_WBINVD). */
static int forbidden(void)
{
	const char *e = getenv("IOASID_FORBID_WBINVD");

	return e && !strcmp(e, "1");
}

static int expect_enforce(void)
{
	const char *e = getenv("IOASID_EXPECT_ENFORCE");

	return e && !strcmp(e, "1");
}

/* The WBINVD state a context must report when non-coherent DMA is possible (or not). */
static __u32 state_for(int noncoherent)
{
	if (!ARCH_HAS_WBINVD)
		return IOASID_WBINVD_UNSUPPORTED;
	if (forbidden())
		return IOASID_WBINVD_FORBIDDEN;
	return noncoherent ? IOASID_WBINVD_NEEDED : IOASID_WBINVD_NOT_NEEDED;
}

/* The errno IOASID_EXECUTE_WBINVD must return in that case (0: it ran). */
static int wbinvd_errno_for(int noncoherent)
{
	switch (state_for(noncoherent)) {
	case IOASID_WBINVD_UNSUPPORTED:
		return -EOPNOTSUPP;
	case IOASID_WBINVD_FORBIDDEN:
		return -EPERM;
	case IOASID_WBINVD_NEEDED:
		return 0;
	default:
		return -ENODATA;
	}
}

static long wbinvd_count(void)
{
	return read_long("/sys/kernel/debug/ioasid/wbinvd_count");
}

/* Marks PCI device bdf assumed non-coherent for the next binds ("none": nothing). */
static int seam(const char *bdf)
{
	return write_file(SEAM, bdf);
}

/* --- the coherency ioctls -------------------------------------------------- */

static int alloc_kind(int fd, int coherent, __u32 *id)
{
	return alloc_ioasid_flags(fd, coherent ? IOASID_ALLOC_COHERENT : 0, id);
}

static int coherency(int fd, __u32 ioasid, __u32 *flags, __u32 *wbinvd)
{
	struct ioasid_coherency c = { .argsz = sizeof(c), .ioasid = ioasid };
	int ret = xioctl(fd, IOASID_GET_COHERENCY, &c);

	if (flags)
		*flags = c.out_ioasid_flags;
	if (wbinvd)
		*wbinvd = c.out_wbinvd;
	return ret;
}

static __u32 wbinvd_state(int fd)
{
	__u32 w = 0xdead;

	coherency(fd, 0, NULL, &w);
	return w;
}

static int execute_wbinvd(int fd)
{
	struct ioasid_wbinvd w = { .argsz = sizeof(w) };

	return xioctl(fd, IOASID_EXECUTE_WBINVD, &w);
}

static __u64 device_caps(int fd, __u32 dev)
{
	struct ioasid_iova_range r[16];
	struct ioasid_device_info i = {
		.argsz = sizeof(i), .dev_id = dev, .num_regions = 16, .regions_uptr = (uintptr_t)r,
	};

	return xioctl(fd, IOASID_DEVICE_GET_INFO, &i) ? ~0ull : i.out_capabilities;
}

static __u64 ioasid_pgsizes(int fd, __u32 ioasid)
{
	struct ioasid_iova_range r[16];
	struct ioasid_iova_ranges q = {
		.argsz = sizeof(q), .ioasid = ioasid, .num_ranges = 16, .ranges_uptr = (uintptr_t)r,
	};

	return xioctl(fd, IOASID_IOVA_RANGES, &q) ? ~0ull : q.out_pgsize_bitmap;
}

/* --- the KVM stand-in ------------------------------------------------------ */

struct probe {
	int held, answer, query, events, spurious, vm_noncoherent;
};

static int probe_cmd(const char *cmd)
{
	return write_file(PROBE_CTL, cmd);
}

static int probe_get(int fd)
{
	char cmd[32];

	snprintf(cmd, sizeof(cmd), "get %d", fd);
	return probe_cmd(cmd);
}

static struct probe probe_state(void)
{
	struct probe p = { -1, -1, -1, -1, -1, -1 };
	char buf[256] = "";
	int fd = open(PROBE_STATE, O_RDONLY);

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
	}
	sscanf(buf, "held=%d answer=%d query=%d events=%d spurious=%d vm_noncoherent=%d",
	       &p.held, &p.answer, &p.query, &p.events, &p.spurious, &p.vm_noncoherent);
	return p;
}

/*
 * After a step: the context's WBINVD state, the KVM-facing answer asked now,
 * the answer the watch last reported, the simulated VM's registration, and
 * the number of callbacks so far (one per change, none spurious).
 */
#define EXPECT_STEP(fd, nc, nev, step)							\
	do {										\
		int _nev = (nev);							\
		struct probe _p = probe_state();					\
		int _ans = (nc) && !forbidden();					\
		EXPECT_EQ(state_for(nc), wbinvd_state(fd)) TH_LOG("%s", step);		\
		EXPECT_EQ(_ans, _p.query) TH_LOG("%s", step);				\
		EXPECT_EQ(_ans, _p.answer) TH_LOG("%s", step);				\
		EXPECT_EQ(_ans, _p.vm_noncoherent) TH_LOG("%s", step);			\
		EXPECT_EQ(forbidden() ? 0 : _nev, _p.events) TH_LOG("%s", step);	\
		EXPECT_EQ(0, _p.spurious) TH_LOG("%s", step);				\
	} while (0)

/* --- PCI config space, read from sysfs ------------------------------------- */

/* The PCIe Device Control register of bdf, or -1 if it is not PCI Express. */
static int pcie_devctl(const char *bdf)
{
	uint8_t cfg[256];
	char path[128];
	int fd, pos, n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -2;
	n = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	if (n < 64 || !(cfg[6] & 0x10))
		return -1;
	for (pos = cfg[0x34] & ~3, n = 0; pos && n < 48; pos = cfg[pos + 1] & ~3, n++)
		if (cfg[pos] == 0x10)
			return cfg[pos + 8] | cfg[pos + 9] << 8;
	return -1;
}

/* A sysfs attribute of PCI device bdf, in hexadecimal; -1 if unreadable. */
static long pci_attr(const char *bdf, const char *attr)
{
	char path[300];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%lx", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* The first PCI device with this vendor:device, into bdf (256 bytes); 0 if found. */
static int find_pci(long vendor, long device, char *bdf)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	int ret = -1;

	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (pci_attr(de->d_name, "vendor") == vendor &&
		    pci_attr(de->d_name, "device") == device) {
			snprintf(bdf, 256, "%s", de->d_name);
			ret = 0;
			break;
		}
	}
	if (d)
		closedir(d);
	return ret;
}

static int bind_bdf(int fd, const char *bdf, __u32 *dev)
{
	unsigned int seg, bus, slot, fn;

	if (sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &slot, &fn) != 4)
		return -EINVAL;
	return bind_pci(fd, seg, bus, slot << 3 | fn, dev, NULL);
}

/* --- fixture: a context, the edu, a buffer --------------------------------- */

FIXTURE(coh) {
	int fd;
	struct edu edu;
	uint8_t *buf;
};

FIXTURE_SETUP(coh)
{
	ASSERT_EQ(0, seam("none")) TH_LOG("the module must be built with IOASID_TEST=1");
	ASSERT_EQ(0, edu_setup(&self->edu, EDU));
	self->fd = open("/dev/ioasid", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	self->buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(self->buf != MAP_FAILED);
	probe_cmd("put");
	ASSERT_EQ(0, probe_cmd("reset")) TH_LOG("ioasid_kvm_probe.ko must be loaded");
}

FIXTURE_TEARDOWN(coh)
{
	probe_cmd("put");
	seam("none");
	if (self->fd >= 0)
		close(self->fd);
	munmap(self->buf, 2 * PAGE);
	edu_teardown(&self->edu);
}

/*
 * Maps the buffer and moves 4 KiB through the device: 0 if the bytes arrived.
 * Under QEMU 10.0's amd-iommu the DMA of emulated devices is not translated
 * (see dma_test.c), so there only the mappings are checked.
 */
static int dma_works(int fd, struct edu *e, __u32 ioasid, uint8_t *buf)
{
	const char *model = getenv("IOASID_IOMMU");
	uint8_t *src = buf, *dst = buf + PAGE;
	int ret;

	if (model && !strcmp(model, "amd")) {
		ret = map_at(fd, ioasid, src, PAGE, IOVA_SRC, IOASID_MAP_READ);
		return ret ?: unmap(fd, ioasid, IOVA_SRC, PAGE, NULL);
	}

	for (int i = 0; i < PAGE; i++)
		src[i] = (uint8_t)(i * 13 + 7);
	memset(dst, 0, PAGE);
	ret = map_at(fd, ioasid, src, PAGE, IOVA_SRC, IOASID_MAP_READ);
	ret = ret ?: map_at(fd, ioasid, dst, PAGE, IOVA_DST, IOASID_MAP_WRITE);
	ret = ret ?: edu_dma(e, IOVA_SRC, EDU_BUF, PAGE, 0);
	ret = ret ?: edu_dma(e, EDU_BUF, IOVA_DST, PAGE, 1);
	ret = ret ?: (memcmp(src, dst, PAGE) ? -EIO : 0);
	unmap(fd, ioasid, IOVA_SRC, PAGE, NULL);
	unmap(fd, ioasid, IOVA_DST, PAGE, NULL);
	return ret;
}

/* --- tests ----------------------------------------------------------------- */

TEST_F(coh, capability_is_reported)
{
	struct ioasid_info i = { .argsz = sizeof(i) };

	ASSERT_EQ(0, xioctl(self->fd, IOASID_GET_INFO, &i));
	EXPECT_TRUE(i.out_capabilities & IOASID_CAP_COHERENCY);
	/* A fresh context: nothing attached, WBINVD not needed. */
	EXPECT_EQ(state_for(0), wbinvd_state(self->fd));
	EXPECT_EQ(wbinvd_errno_for(0), execute_wbinvd(self->fd));
}

/*
 * Every emulated device is coherent-only: the edu is conventional PCI, and
 * the e1000e's Enable No Snoop is hardwired to 0. Detecting that must not
 * change the device's config space.
 */
TEST_F(coh, emulated_devices_are_coherent_only)
{
	const char *devs[2] = { EDU, NULL };
	char nic[256];
	__u32 dev;

	ASSERT_EQ(0, find_pci(0x8086, 0x10d3, nic))
		TH_LOG("the VM has no e1000e behind a PCIe root port");
	devs[1] = nic;
	EXPECT_EQ(-1, pcie_devctl(EDU)) TH_LOG("the edu is conventional PCI");
	for (int i = 0; i < 2; i++) {
		int before = pcie_devctl(devs[i]);
		__u64 caps;

		ASSERT_EQ(0, bind_bdf(self->fd, devs[i], &dev)) TH_LOG("%s", devs[i]);
		caps = device_caps(self->fd, dev);
		EXPECT_TRUE(caps & IOASID_DEVICE_CAP_COHERENT_ONLY) TH_LOG("%s", devs[i]);
		EXPECT_EQ(expect_enforce(), !!(caps & IOASID_DEVICE_CAP_ENFORCE_COHERENCY))
			TH_LOG("%s", devs[i]);
		EXPECT_EQ(before, pcie_devctl(devs[i])) TH_LOG("%s: config space changed", devs[i]);
		if (before >= 0)
			EXPECT_EQ(0, before & 0x800) TH_LOG("%s: Enable No Snoop", devs[i]);
		EXPECT_EQ(0, unbind(self->fd, dev));
		EXPECT_EQ(before, pcie_devctl(devs[i]));
	}
}

/* The seam marks a device; the detection's other answer reaches user space. */
TEST_F(coh, assumed_noncoherent_device_is_reported)
{
	__u32 dev;

	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	EXPECT_FALSE(device_caps(self->fd, dev) & IOASID_DEVICE_CAP_COHERENT_ONLY);
	/* Decided at bind: clearing the seam does not change a bound device. */
	ASSERT_EQ(0, seam("none"));
	EXPECT_FALSE(device_caps(self->fd, dev) & IOASID_DEVICE_CAP_COHERENT_ONLY);
	EXPECT_EQ(0, unbind(self->fd, dev));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	EXPECT_TRUE(device_caps(self->fd, dev) & IOASID_DEVICE_CAP_COHERENT_ONLY);
}

/*
 * A coherent IOASID takes the edu where the IOMMU can block no-snoop, and DMA
 * works; elsewhere the attach fails with EMEDIUMTYPE and changes nothing.
 */
TEST_F(coh, coherent_ioasid)
{
	__u32 coh, nc, dev, flags = 0;

	ASSERT_EQ(0, alloc_kind(self->fd, 1, &coh));
	ASSERT_EQ(0, coherency(self->fd, coh, &flags, NULL));
	EXPECT_EQ(IOASID_COHERENCY_ENFORCED, flags);
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	EXPECT_EQ(expect_enforce(),
		  !!(device_caps(self->fd, dev) & IOASID_DEVICE_CAP_ENFORCE_COHERENCY));
	if (expect_enforce()) {
		long runs = wbinvd_count();

		ASSERT_EQ(0, attach(self->fd, dev, coh));
		EXPECT_EQ(0, dma_works(self->fd, &self->edu, coh, self->buf));
		EXPECT_EQ(state_for(0), wbinvd_state(self->fd));
		EXPECT_EQ(wbinvd_errno_for(0), execute_wbinvd(self->fd));
		EXPECT_EQ(runs, wbinvd_count());
		ASSERT_EQ(0, coherency(self->fd, coh, &flags, NULL));
		EXPECT_EQ(IOASID_COHERENCY_ENFORCED, flags);
	} else {
		EXPECT_EQ(-EMEDIUMTYPE, attach(self->fd, dev, coh));
		/* Nothing changed: no domain was kept, the device is free to attach elsewhere. */
		EXPECT_EQ(0, ioasid_pgsizes(self->fd, coh));
		EXPECT_EQ(-EINVAL, detach(self->fd, dev));
		ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
		ASSERT_EQ(0, attach(self->fd, dev, nc));
		EXPECT_EQ(0, dma_works(self->fd, &self->edu, nc, self->buf));
		ASSERT_EQ(0, coherency(self->fd, nc, &flags, NULL));
		EXPECT_EQ(0, flags);
	}
}

/* An assumed non-coherent device in a coherent IOASID: no-snoop is blocked, no WBINVD. */
TEST_F(coh, coherent_ioasid_neutralises_noncoherent_device)
{
	__u32 coh, dev, flags = 0;

	if (!expect_enforce())
		SKIP(return, "this IOMMU cannot enforce coherency (covered by coherent_ioasid)");
	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, probe_get(self->fd));
	ASSERT_EQ(0, alloc_kind(self->fd, 1, &coh));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, coh));
	EXPECT_EQ(0, dma_works(self->fd, &self->edu, coh, self->buf));
	ASSERT_EQ(0, coherency(self->fd, coh, &flags, NULL));
	EXPECT_EQ(IOASID_COHERENCY_ENFORCED, flags);
	EXPECT_STEP(self->fd, 0, 0, "assumed non-coherent device in a coherent IOASID");
	EXPECT_EQ(wbinvd_errno_for(0), execute_wbinvd(self->fd));
}

/* A non-coherent IOASID with a coherent-only device: WBINVD not needed. */
TEST_F(coh, noncoherent_ioasid_with_coherent_only_device)
{
	__u32 nc, dev, flags = ~0u;

	ASSERT_EQ(0, probe_get(self->fd));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, nc));
	EXPECT_EQ(0, dma_works(self->fd, &self->edu, nc, self->buf));
	ASSERT_EQ(0, coherency(self->fd, nc, &flags, NULL));
	EXPECT_EQ(0, flags);
	EXPECT_STEP(self->fd, 0, 0, "coherent-only device in a non-coherent IOASID");
	EXPECT_EQ(wbinvd_errno_for(0), execute_wbinvd(self->fd));
}

/* A non-coherent IOASID with an assumed non-coherent device: WBINVD runs. */
TEST_F(coh, assumed_noncoherent_device_makes_wbinvd_run)
{
	__u32 nc, dev, flags = 0;
	long runs = wbinvd_count();

	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, probe_get(self->fd));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, nc));
	ASSERT_EQ(0, coherency(self->fd, nc, &flags, NULL));
	EXPECT_EQ(IOASID_COHERENCY_NONCOHERENT_DMA, flags);
	EXPECT_STEP(self->fd, 1, 1, "assumed non-coherent device in a non-coherent IOASID");
	EXPECT_EQ(wbinvd_errno_for(1), execute_wbinvd(self->fd));
	EXPECT_EQ(runs + (wbinvd_errno_for(1) == 0), wbinvd_count());
	EXPECT_EQ(0, dma_works(self->fd, &self->edu, nc, self->buf));
}

/*
 * Every transition moves the state and the KVM-facing answer, and the watch
 * hears of each change exactly once: attach, detach, free, unbind, close.
 */
TEST_F(coh, transitions_are_reported_once_each)
{
	__u32 a, b, c, dev, edu2, coh_only;
	struct edu e2 = { 0 }, e3 = { 0 };
	struct probe p;
	int ev = 0;

	ASSERT_EQ(0, edu_setup(&e2, "0000:00:06.0"));
	ASSERT_EQ(0, edu_setup(&e3, "0000:00:06.1"));
	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, probe_get(self->fd));
	EXPECT_STEP(self->fd, 0, ev, "start");
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &a));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &b));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, seam("none"));
	EXPECT_STEP(self->fd, 0, ev, "bound, not attached");

	ASSERT_EQ(0, attach(self->fd, dev, a));
	EXPECT_STEP(self->fd, 1, ++ev, "attach");
	ASSERT_EQ(0, detach(self->fd, dev));
	EXPECT_STEP(self->fd, 0, ++ev, "detach");
	ASSERT_EQ(0, attach(self->fd, dev, a));
	EXPECT_STEP(self->fd, 1, ++ev, "attach again");

	/* A coherent-only device coming and going changes nothing. */
	ASSERT_EQ(0, bind_dev(self->fd, &e2, &coh_only, NULL));
	ASSERT_EQ(0, attach(self->fd, coh_only, b));
	EXPECT_STEP(self->fd, 1, ev, "coherent-only device attached");
	ASSERT_EQ(0, unbind(self->fd, coh_only));
	EXPECT_STEP(self->fd, 1, ev, "coherent-only device unbound");

	/* Free blocks DMA at once: the answer changes even though the device is still attached. */
	ASSERT_EQ(0, free_ioasid(self->fd, a));
	EXPECT_STEP(self->fd, 0, ++ev, "IOASID freed");
	ASSERT_EQ(0, detach(self->fd, dev));
	EXPECT_STEP(self->fd, 0, ev, "detached from the freed IOASID");
	ASSERT_EQ(0, attach(self->fd, dev, b));
	EXPECT_STEP(self->fd, 1, ++ev, "attached to another IOASID");

	/* Two assumed non-coherent devices: one change when the first comes, one when the last goes. */
	ASSERT_EQ(0, seam("0000:00:06.1"));
	ASSERT_EQ(0, bind_dev(self->fd, &e3, &edu2, NULL));
	ASSERT_EQ(0, seam("none"));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &c));
	/* 06.0 and 06.1 share a group: 06.1 goes where its group goes, on its own here. */
	ASSERT_EQ(0, attach(self->fd, edu2, c));
	EXPECT_STEP(self->fd, 1, ev, "second assumed non-coherent device");
	ASSERT_EQ(0, unbind(self->fd, dev));
	EXPECT_STEP(self->fd, 1, ev, "first one unbound");
	ASSERT_EQ(0, detach(self->fd, edu2));
	EXPECT_STEP(self->fd, 0, ++ev, "last one detached");
	ASSERT_EQ(0, attach(self->fd, edu2, c));
	EXPECT_STEP(self->fd, 1, ++ev, "attached again");

	/* Closing the file tears the context down: one last change. */
	close(self->fd);
	self->fd = -1;
	p = probe_state();
	EXPECT_EQ(1, p.held);
	EXPECT_EQ(0, p.query);
	EXPECT_EQ(0, p.answer);
	EXPECT_EQ(0, p.vm_noncoherent);
	EXPECT_EQ(forbidden() ? 0 : ev + 1, p.events);
	EXPECT_EQ(0, p.spurious);
	edu_teardown(&e2);
	edu_teardown(&e3);
}

/* The reference KVM holds keeps the context alive after the fd is closed, and no longer. */
TEST_F(coh, kvm_reference_outlives_the_fd)
{
	long base = read_long("/sys/kernel/debug/ioasid/contexts");
	__u32 nc, dev;
	int other;

	ASSERT_LE(1, base);
	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, nc));
	ASSERT_EQ(0, probe_get(self->fd));
	/* Not an ioasid file: refused. */
	other = open("/dev/null", O_RDONLY);
	ASSERT_LE(0, other);
	ASSERT_EQ(0, probe_cmd("put"));
	EXPECT_EQ(-EBADF, probe_get(other));
	close(other);
	ASSERT_EQ(0, probe_get(self->fd));
	EXPECT_EQ(!forbidden(), probe_state().query);

	close(self->fd);
	self->fd = -1;
	/* Alive, held by the probe alone, and empty: the device was released. */
	EXPECT_EQ(base, read_long("/sys/kernel/debug/ioasid/contexts"));
	EXPECT_EQ(1, probe_state().held);
	EXPECT_EQ(0, probe_state().query);
	other = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, other);
	EXPECT_EQ(base + 1, read_long("/sys/kernel/debug/ioasid/contexts"));
	EXPECT_EQ(0, bind_dev(other, &self->edu, &dev, NULL)) TH_LOG("device still owned");
	close(other);
	EXPECT_EQ(base, read_long("/sys/kernel/debug/ioasid/contexts"));

	ASSERT_EQ(0, probe_cmd("put"));
	EXPECT_EQ(base - 1, read_long("/sys/kernel/debug/ioasid/contexts"));
	EXPECT_EQ(-ENOENT, probe_cmd("put"));
}

/* A process killed with an assumed non-coherent device attached: the answer goes back. */
TEST_F(coh, process_kill_clears_the_answer)
{
	struct probe p;
	int ready[2];
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, seam(EDU));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		__u32 nc, dev;

		if (fd < 0 || alloc_kind(fd, 0, &nc) || bind_dev(fd, &self->edu, &dev, NULL) ||
		    attach(fd, dev, nc) || probe_get(fd))
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	p = probe_state();
	EXPECT_EQ(!forbidden(), p.query);
	EXPECT_EQ(!forbidden(), p.vm_noncoherent);
	EXPECT_EQ(0, p.events);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	p = probe_state();
	EXPECT_EQ(1, p.held);
	EXPECT_EQ(0, p.query);
	EXPECT_EQ(0, p.vm_noncoherent);
	EXPECT_EQ(forbidden() ? 0 : 1, p.events);
	EXPECT_EQ(0, p.spurious);
	close(ready[0]);
}

/*
 * The administrator's knob, checked in both module configurations: with
 * forbid_wbinvd=1 the state is FORBIDDEN whatever is attached, the ioctl
 * fails with EPERM, nothing runs, and KVM is never told to allow WBINVD.
 */
TEST_F(coh, admin_knob)
{
	long runs = wbinvd_count();
	__u32 nc, dev;

	if (!ARCH_HAS_WBINVD)
		SKIP(return, "no WBINVD on this architecture (see wbinvd_unsupported_here)");
	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, probe_get(self->fd));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, nc));
	if (forbidden()) {
		EXPECT_EQ(IOASID_WBINVD_FORBIDDEN, wbinvd_state(self->fd));
		EXPECT_EQ(-EPERM, execute_wbinvd(self->fd));
		EXPECT_EQ(runs, wbinvd_count());
		EXPECT_EQ(0, probe_state().query);
		EXPECT_EQ(0, probe_state().events);
	} else {
		EXPECT_EQ(IOASID_WBINVD_NEEDED, wbinvd_state(self->fd));
		EXPECT_EQ(0, execute_wbinvd(self->fd));
		EXPECT_EQ(runs + 1, wbinvd_count());
		EXPECT_EQ(1, probe_state().query);
	}
}

/* Where there is no WBINVD, the ioctl says so even when non-coherent DMA is possible. */
TEST_F(coh, wbinvd_unsupported_here)
{
	__u32 nc, dev;

	if (ARCH_HAS_WBINVD)
		SKIP(return, "this architecture has WBINVD");
	ASSERT_EQ(0, seam(EDU));
	ASSERT_EQ(0, alloc_kind(self->fd, 0, &nc));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &dev, NULL));
	ASSERT_EQ(0, attach(self->fd, dev, nc));
	EXPECT_EQ(IOASID_WBINVD_UNSUPPORTED, wbinvd_state(self->fd));
	EXPECT_EQ(-EOPNOTSUPP, execute_wbinvd(self->fd));
	EXPECT_EQ(0, wbinvd_count());
}

TEST_HARNESS_MAIN
