// SPDX-License-Identifier: GPL-2.0
/*
 * One API over both implementations, so that every measurement runs the same
 * code for each: /dev/ioasid with the edu at 00:05.0, and upstream iommufd
 * (/dev/iommu + the vfio-pci cdev) with the edu at 00:06.0, behind the same
 * emulated IOMMU.
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/ioasid.h>
#include <linux/vfio.h>

#include "bench.h"


const char *const impl_name[NIMPL] = { "ioasid", "iommufd" };

#define IOASID_BDF 0x05 /* devfn of 00:05.0 */
#define IOMMUFD_BDF "0000:00:06.0"

static char vfio_cdev[128];

void backend_init(void)
{
	char path[256], name[64];
	const char *bdf = IOMMUFD_BDF;
	FILE *f;

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
	snprintf(vfio_cdev, sizeof(vfio_cdev), "/dev/vfio/devices/%s", name);
}

void ctx_open(struct ctx *c, enum impl impl)
{
	c->impl = impl;
	c->dev_fd = -1;
	if (impl == IOASID) {
		struct ioasid_device_bind b = { .argsz = sizeof(b), .pci_devfn = IOASID_BDF << 3 };
		struct ioasid_alloc a = { .argsz = sizeof(a) };
		struct ioasid_device_attach at = { .argsz = sizeof(at) };

		c->fd = open("/dev/ioasid", O_RDWR);
		if (c->fd < 0 || ioctl(c->fd, IOASID_DEVICE_BIND, &b) ||
		    ioctl(c->fd, IOASID_ALLOC, &a))
			DIE("ioasid set-up: %s\n", strerror(errno));
		at.dev_id = b.out_dev_id;
		at.ioasid = c->id = a.out_ioasid;
		if (ioctl(c->fd, IOASID_DEVICE_ATTACH, &at))
			DIE("IOASID_DEVICE_ATTACH: %s\n", strerror(errno));
	} else {
		struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
		struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
		struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };

		c->dev_fd = open(vfio_cdev, O_RDWR);
		c->fd = open("/dev/iommu", O_RDWR);
		if (c->dev_fd < 0 || c->fd < 0)
			DIE("opening %s or /dev/iommu: %s\n", vfio_cdev, strerror(errno));
		bind.iommufd = c->fd;
		if (ioctl(c->dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) ||
		    ioctl(c->fd, IOMMU_IOAS_ALLOC, &alloc))
			DIE("iommufd set-up: %s\n", strerror(errno));
		attach.pt_id = c->id = alloc.out_ioas_id;
		if (ioctl(c->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
			DIE("VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s\n", strerror(errno));
	}
}

void ctx_close(struct ctx *c)
{
	if (c->dev_fd >= 0)
		close(c->dev_fd);
	close(c->fd);
	c->fd = c->dev_fd = -1;
}

int ctx_map(struct ctx *c, const void *va, __u64 length, __u64 *iova, int fixed)
{
	int ret;

	if (c->impl == IOASID) {
		struct ioasid_map m = {
			.argsz = sizeof(m), .ioasid = c->id, .user_va = (uintptr_t)va,
			.length = length, .iova = *iova,
			.flags = IOASID_MAP_READ | IOASID_MAP_WRITE |
				 (fixed ? IOASID_MAP_FIXED_IOVA : 0),
		};

		ret = ioctl(c->fd, IOASID_MAP, &m);
		*iova = m.iova;
	} else {
		struct iommu_ioas_map m = {
			.size = sizeof(m), .ioas_id = c->id, .user_va = (uintptr_t)va,
			.length = length, .iova = *iova,
			.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE |
				 (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
		};

		ret = ioctl(c->fd, IOMMU_IOAS_MAP, &m);
		*iova = m.iova;
	}
	return ret ? errno : 0;
}

int ctx_map_file(struct ctx *c, int fd, __u64 start, __u64 length, __u64 *iova, int fixed)
{
	int ret;

	if (c->impl == IOASID) {
		struct ioasid_map_file m = {
			.argsz = sizeof(m), .ioasid = c->id, .fd = fd, .start = start,
			.length = length, .iova = *iova,
			.flags = IOASID_MAP_READ | IOASID_MAP_WRITE |
				 (fixed ? IOASID_MAP_FIXED_IOVA : 0),
		};

		ret = ioctl(c->fd, IOASID_MAP_FILE, &m);
		*iova = m.iova;
	} else {
		struct iommu_ioas_map_file m = {
			.size = sizeof(m), .ioas_id = c->id, .fd = fd, .start = start,
			.length = length, .iova = *iova,
			.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE |
				 (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
		};

		ret = ioctl(c->fd, IOMMU_IOAS_MAP_FILE, &m);
		*iova = m.iova;
	}
	return ret ? errno : 0;
}

int ctx_unmap(struct ctx *c, __u64 iova, __u64 length)
{
	int ret;

	if (c->impl == IOASID) {
		struct ioasid_unmap u = { .argsz = sizeof(u), .ioasid = c->id, .iova = iova,
					  .length = length };

		ret = ioctl(c->fd, IOASID_UNMAP, &u);
	} else {
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = c->id, .iova = iova,
					      .length = length };

		ret = ioctl(c->fd, IOMMU_IOAS_UNMAP, &u);
	}
	return ret ? errno : 0;
}

int ctx_iova_ranges(struct ctx *c, struct iova_range *r, int max)
{
	/* struct ioasid_iova_range and struct iommu_iova_range are both {start, last}. */
	int ret;

	if (c->impl == IOASID) {
		struct ioasid_iova_ranges q = { .argsz = sizeof(q), .ioasid = c->id,
						.num_ranges = max, .ranges_uptr = (uintptr_t)r };

		ret = ioctl(c->fd, IOASID_IOVA_RANGES, &q);
		if (ret && errno != EMSGSIZE)
			DIE("IOASID_IOVA_RANGES: %s\n", strerror(errno));
		return q.num_ranges < (__u32)max ? (int)q.num_ranges : max;
	}
	struct iommu_ioas_iova_ranges q = { .size = sizeof(q), .ioas_id = c->id,
					    .num_iovas = max, .allowed_iovas = (uintptr_t)r };

	ret = ioctl(c->fd, IOMMU_IOAS_IOVA_RANGES, &q);
	if (ret && errno != EMSGSIZE)
		DIE("IOMMU_IOAS_IOVA_RANGES: %s\n", strerror(errno));
	return q.num_iovas < (__u32)max ? (int)q.num_iovas : max;
}
