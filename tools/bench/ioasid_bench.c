// SPDX-License-Identifier: GPL-2.0
/*
 * Map+unmap latency of /dev/ioasid against upstream iommufd, in the same VM,
 * behind the same emulated IOMMU, with the same device model.
 *
 * /dev/ioasid drives the edu at 00:05.0; iommufd (/dev/iommu + the vfio-pci
 * cdev) the edu at 00:06.0, which this program binds to vfio-pci. For each
 * size, a buffer (hugetlb-backed from 2 MiB up, populated beforehand) is
 * mapped at a fixed IOVA and unmapped, in a loop; the table gives the mean
 * time of one map+unmap pair, the ratio ioasid/iommufd (below 1: ioasid is
 * faster), and from the module's debugfs the time spent inside iommu_map()
 * and iommu_unmap(), so that the cost of the ioctl path above the IOMMU
 * driver is known. Run by `make bench` inside the test VM. Under TCG only
 * ratios taken in the same run mean anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/ioasid.h>
#include <linux/vfio.h>

#define IOVA 0x40000000ull	/* 1 GiB: 1 GiB aligned, below the MSI window */

struct size {
	const char *name;
	size_t bytes;
	int iterations;
};

static const struct size sizes[] = {
	{ "4 KiB", 4096, 2000 },
	{ "64 KiB", 64 << 10, 1000 },
	{ "2 MiB", 2 << 20, 200 },
	{ "256 MiB", 256 << 20, 5 },
};

#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

/* Nanoseconds spent in iommu_map + iommu_unmap so far (ioasid's debugfs). */
static double iommu_ns(void)
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

static void *buffer(size_t bytes)
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

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); exit(1); } while (0)

/* --- /dev/ioasid ---------------------------------------------------------- */

static int ioasid_fd;
static __u32 ioasid_id;

static void ioasid_setup(void)
{
	struct ioasid_device_bind b = { .argsz = sizeof(b), .pci_devfn = 5 << 3 };
	struct ioasid_alloc a = { .argsz = sizeof(a) };
	struct ioasid_device_attach at = { .argsz = sizeof(at) };

	ioasid_fd = open("/dev/ioasid", O_RDWR);
	if (ioasid_fd < 0 || ioctl(ioasid_fd, IOASID_DEVICE_BIND, &b) ||
	    ioctl(ioasid_fd, IOASID_ALLOC, &a))
		DIE("ioasid set-up: %s\n", strerror(errno));
	at.dev_id = b.out_dev_id;
	at.ioasid = ioasid_id = a.out_ioasid;
	if (ioctl(ioasid_fd, IOASID_DEVICE_ATTACH, &at))
		DIE("IOASID_DEVICE_ATTACH: %s\n", strerror(errno));
}

static double ioasid_run(void *buf, size_t bytes, int iterations, double *raw_us)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .ioasid = ioasid_id, .user_va = (uintptr_t)buf,
		.length = bytes, .iova = IOVA,
		.flags = IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA,
	};
	struct ioasid_unmap u = { .argsz = sizeof(u), .ioasid = ioasid_id, .iova = IOVA,
				  .length = bytes };
	double t0, t1, ns0 = iommu_ns();

	t0 = now_us();
	for (int i = 0; i < iterations; i++)
		if (ioctl(ioasid_fd, IOASID_MAP, &m) || ioctl(ioasid_fd, IOASID_UNMAP, &u))
			DIE("ioasid map/unmap %zu: %s\n", bytes, strerror(errno));
	t1 = now_us();
	*raw_us = (iommu_ns() - ns0) / 1e3 / iterations;
	return (t1 - t0) / iterations;
}

/* --- iommufd + vfio-pci cdev ---------------------------------------------- */

static int iommufd, vfio_fd;
static __u32 ioas_id;

static void iommufd_setup(const char *bdf)
{
	char path[256], name[64];
	FILE *f;
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

	/* The VM hands every edu to the ioasid driver: take this one back first. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	if (access(path, F_OK) == 0 && write_file(path, bdf))
		DIE("unbinding %s from its driver failed\n", bdf);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	if (write_file(path, "vfio-pci") || write_file("/sys/bus/pci/drivers_probe", bdf))
		DIE("binding %s to vfio-pci failed\n", bdf);
	snprintf(path, sizeof(path), "ls /sys/bus/pci/devices/%s/vfio-dev/", bdf);
	f = popen(path, "r");
	if (!f || !fgets(name, sizeof(name), f))
		DIE("%s has no vfio-dev\n", bdf);
	pclose(f);
	name[strcspn(name, "\n")] = '\0';
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	vfio_fd = open(path, O_RDWR);
	iommufd = open("/dev/iommu", O_RDWR);
	if (vfio_fd < 0 || iommufd < 0)
		DIE("opening %s or /dev/iommu: %s\n", path, strerror(errno));
	bind.iommufd = iommufd;
	if (ioctl(vfio_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) || ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc))
		DIE("iommufd set-up: %s\n", strerror(errno));
	attach.pt_id = ioas_id = alloc.out_ioas_id;
	if (ioctl(vfio_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		DIE("VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s\n", strerror(errno));
}

static double iommufd_run(void *buf, size_t bytes, int iterations)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m), .ioas_id = ioas_id, .user_va = (uintptr_t)buf,
		.length = bytes, .iova = IOVA,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
	};
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas_id };
	double t0, t1;

	t0 = now_us();
	for (int i = 0; i < iterations; i++) {
		u.iova = IOVA;
		u.length = bytes;
		if (ioctl(iommufd, IOMMU_IOAS_MAP, &m) || ioctl(iommufd, IOMMU_IOAS_UNMAP, &u))
			DIE("iommufd map/unmap %zu: %s\n", bytes, strerror(errno));
	}
	t1 = now_us();
	return (t1 - t0) / iterations;
}

int main(void)
{
	double ioasid_us[NSIZES], iommufd_us[NSIZES], raw_us[NSIZES];

	/* 256 MiB and the smaller huge buffers: 130 huge pages and change. */
	write_file("/proc/sys/vm/nr_hugepages", "160");
	ioasid_setup();
	iommufd_setup("0000:00:06.0");

	for (unsigned int i = 0; i < NSIZES; i++) {
		void *buf = buffer(sizes[i].bytes);

		if (!buf)
			DIE("no memory for %s\n", sizes[i].name);
		/* Alternate, warm both paths, then measure each twice and keep the best. */
		ioasid_run(buf, sizes[i].bytes, 2, &raw_us[i]);
		iommufd_run(buf, sizes[i].bytes, 2);
		ioasid_us[i] = iommufd_us[i] = 1e30;
		for (int round = 0; round < 2; round++) {
			double r, a = ioasid_run(buf, sizes[i].bytes, sizes[i].iterations, &r);
			double b = iommufd_run(buf, sizes[i].bytes, sizes[i].iterations);

			if (a < ioasid_us[i]) {
				ioasid_us[i] = a;
				raw_us[i] = r;
			}
			if (b < iommufd_us[i])
				iommufd_us[i] = b;
		}
		munmap(buf, sizes[i].bytes);
	}

	printf("map+unmap latency, mean of N pairs (best of 2 rounds), same VM and IOMMU\n");
	printf("%-8s %6s %14s %14s %16s %18s %14s\n", "size", "N", "ioasid (us)",
	       "iommufd (us)", "ioasid/iommufd", "iommu_map+unmap", "ioctl overhead");
	for (unsigned int i = 0; i < NSIZES; i++)
		printf("%-8s %6d %14.1f %14.1f %16.2f %15.1f us %11.1f us\n", sizes[i].name,
		       sizes[i].iterations, ioasid_us[i], iommufd_us[i], ioasid_us[i] / iommufd_us[i],
		       raw_us[i], ioasid_us[i] - raw_us[i]);
	return 0;
}
