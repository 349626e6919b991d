/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One-line wrappers of the /dev/ioasid ioctls, shared by the kselftests
 * (uapi_test.c, dma_test.c, coherency_test.c, accounting_test.c) and the
 * demo. Each returns 0 or -errno. Also the readers of what pinning shows:
 * VmPin, and the module's count in debugfs.
 */
#ifndef IOASID_UTIL_H
#define IOASID_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "edu.h"

static inline int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int bind_pci(int fd, __u32 seg, __u8 bus, __u8 devfn, __u32 *dev_id, __u32 *group)
{
	struct ioasid_device_bind b = {
		.argsz = sizeof(b), .pci_segment = seg, .pci_bus = bus, .pci_devfn = devfn,
	};
	int ret = xioctl(fd, IOASID_DEVICE_BIND, &b);

	*dev_id = b.out_dev_id;
	if (group)
		*group = b.out_group_id;
	return ret;
}

static inline int bind_dev(int fd, struct edu *e, __u32 *dev_id, __u32 *group)
{
	return bind_pci(fd, e->seg, e->bus, e->devfn, dev_id, group);
}

static inline int attach(int fd, __u32 dev_id, __u32 ioasid)
{
	struct ioasid_device_attach a = { .argsz = sizeof(a), .dev_id = dev_id, .ioasid = ioasid };

	return xioctl(fd, IOASID_DEVICE_ATTACH, &a);
}

static inline int detach(int fd, __u32 dev_id)
{
	struct ioasid_device_detach d = { .argsz = sizeof(d), .dev_id = dev_id };

	return xioctl(fd, IOASID_DEVICE_DETACH, &d);
}

static inline int unbind(int fd, __u32 dev_id)
{
	struct ioasid_device_unbind u = { .argsz = sizeof(u), .dev_id = dev_id };

	return xioctl(fd, IOASID_DEVICE_UNBIND, &u);
}

/* IOASID_ALLOC with flags (IOASID_ALLOC_COHERENT). */
static inline int alloc_ioasid_flags(int fd, __u32 flags, __u32 *id)
{
	struct ioasid_alloc a = { .argsz = sizeof(a), .flags = flags };
	int ret = xioctl(fd, IOASID_ALLOC, &a);

	*id = a.out_ioasid;
	return ret;
}

static inline int alloc_ioasid(int fd, __u32 *id)
{
	return alloc_ioasid_flags(fd, 0, id);
}

static inline int free_ioasid(int fd, __u32 id)
{
	struct ioasid_free f = { .argsz = sizeof(f), .ioasid = id };

	return xioctl(fd, IOASID_FREE, &f);
}

static inline int map_at(int fd, __u32 ioasid, void *va, __u64 length, __u64 iova, __u32 prot)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .flags = prot | IOASID_MAP_FIXED_IOVA, .ioasid = ioasid,
		.user_va = (uintptr_t)va, .length = length, .iova = iova,
	};

	return xioctl(fd, IOASID_MAP, &m);
}

/* IOASID_MAP_FILE of [start, start + length) of file at iova (0: the kernel picks, into *out). */
static inline int map_file(int fd, __u32 ioasid, int file, __u64 start, __u64 length, __u64 iova,
			   __u32 prot, __u64 *out)
{
	struct ioasid_map_file m = {
		.argsz = sizeof(m), .flags = prot | (iova ? IOASID_MAP_FIXED_IOVA : 0),
		.ioasid = ioasid, .fd = file, .start = start, .length = length, .iova = iova,
	};
	int ret = xioctl(fd, IOASID_MAP_FILE, &m);

	if (out)
		*out = m.iova;
	return ret;
}

static inline int unmap(int fd, __u32 ioasid, __u64 iova, __u64 length, __u64 *unmapped)
{
	struct ioasid_unmap u = {
		.argsz = sizeof(u), .ioasid = ioasid, .iova = iova, .length = length,
	};
	int ret = xioctl(fd, IOASID_UNMAP, &u);

	if (unmapped)
		*unmapped = u.out_unmapped;
	return ret;
}

#define RW (IOASID_MAP_READ | IOASID_MAP_WRITE)

/* A "kB" field of /proc/self/status ("VmPin:", "VmLck:"), or -1. */
static inline long status_kb(const char *field)
{
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			val = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	return val;
}

/*
 * VmPin of this process, in kB: the memory it pinned through /dev/ioasid
 * (and anything else that pins), until unmapped. What is charged against
 * RLIMIT_MEMLOCK is the user's total, which /proc does not show.
 */
static inline long vmpin_kb(void)
{
	return status_kb("VmPin:");
}

#define PINNED_PAGES_PATH "/sys/kernel/debug/ioasid/pinned_pages"

/*
 * The pages the module pins now, all users together (debugfs), read from
 * an open file of PINNED_PAGES_PATH: opened as root, it can still be read
 * after dropping privileges. -1 on failure.
 */
static inline long pinned_pages_fd(int dfd)
{
	char buf[32];
	ssize_t n = pread(dfd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* The same, opening the file (root only). */
static inline long pinned_pages(void)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long val;

	if (dfd < 0)
		return -1;
	val = pinned_pages_fd(dfd);
	close(dfd);
	return val;
}

#endif
