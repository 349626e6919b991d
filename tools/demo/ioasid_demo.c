// SPDX-License-Identifier: GPL-2.0
/*
 * ioasid demo: what a VMM sees when it opens /dev/ioasid.
 *
 * Opens the device, asks what it supports, creates and frees IOASIDs, then
 * takes QEMU's edu device at 00:05.0, maps a buffer into an IOASID and has
 * the device DMA a message out of it and back into another buffer, through
 * the emulated IOMMU. Run by `make run` inside the test VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "edu.h"
#include "ioasid_util.h"

static void show_file(const char *title, const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		printf("%s: cannot open %s: %s\n", title, path, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	printf("%s (%s):\n", title, path);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		printf("    %s\n", line);
}

#define CHECK(call) do {								\
	if (call) {									\
		printf("%s: %s\n", #call, strerror(errno));				\
		return -1;								\
	}										\
} while (0)

/* Bind the edu, map two buffers, and move a message through the IOMMU. */
static int dma_demo(int fd)
{
	static const char msg[] = "Hello from user space, via the edu's DMA engine and the IOMMU!";
	struct ioasid_device_bind bind = { .argsz = sizeof(bind), .pci_devfn = 5 << 3 };
	struct ioasid_alloc alloc = { .argsz = sizeof(alloc) };
	struct ioasid_device_attach att = { .argsz = sizeof(att) };
	struct ioasid_iova_range ranges[4];
	struct ioasid_iova_ranges r = { .argsz = sizeof(r), .num_ranges = 4,
					.ranges_uptr = (uintptr_t)ranges };
	struct ioasid_map out = { .argsz = sizeof(out), .flags = IOASID_MAP_READ };
	struct ioasid_map in = { .argsz = sizeof(in), .flags = IOASID_MAP_WRITE };
	struct ioasid_unmap all = { .argsz = sizeof(all), .flags = IOASID_UNMAP_ALL };
	struct edu edu = { 0 };
	char *buf;

	printf("\n--- DMA through /dev/ioasid ---\n");
	if (edu_setup(&edu, "0000:00:05.0")) {
		printf("cannot set up the edu device at 0000:00:05.0\n");
		return -1;
	}
	CHECK(ioctl(fd, IOASID_DEVICE_BIND, &bind));
	printf("IOASID_DEVICE_BIND 0000:00:05.0: device %u, IOMMU group %u (DMA owned, blocked)\n",
	       bind.out_dev_id, bind.out_group_id);
	CHECK(ioctl(fd, IOASID_ALLOC, &alloc));
	att.dev_id = bind.out_dev_id;
	att.ioasid = alloc.out_ioasid;
	CHECK(ioctl(fd, IOASID_DEVICE_ATTACH, &att));
	printf("IOASID_DEVICE_ATTACH: device %u -> IOASID %u\n", att.dev_id, att.ioasid);
	r.ioasid = alloc.out_ioasid;
	CHECK(ioctl(fd, IOASID_IOVA_RANGES, &r));
	printf("IOASID_IOVA_RANGES: page sizes %#llx, usable:", (unsigned long long)r.out_pgsize_bitmap);
	for (unsigned int i = 0; i < r.num_ranges && i < 4; i++)
		printf(" [%#llx-%#llx]", (unsigned long long)ranges[i].start,
		       (unsigned long long)ranges[i].last);
	printf("\n");

	buf = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -1;
	memset(buf, 0, 2 * 4096);
	strcpy(buf, msg);
	printf("VmPin before mapping: %ld kB\n", vmpin_kb());
	out.ioasid = in.ioasid = alloc.out_ioasid;
	out.user_va = (uintptr_t)buf;
	out.length = 4096;
	CHECK(ioctl(fd, IOASID_MAP, &out));
	in.user_va = (uintptr_t)buf + 4096;
	in.length = 4096;
	CHECK(ioctl(fd, IOASID_MAP, &in));
	printf("IOASID_MAP: buffer A at IOVA %#llx (device reads), buffer B at IOVA %#llx (device writes)\n",
	       (unsigned long long)out.iova, (unsigned long long)in.iova);
	printf("VmPin with both mapped: %ld kB\n", vmpin_kb());

	if (edu_dma(&edu, out.iova, EDU_BUF, sizeof(msg), 0) ||
	    edu_dma(&edu, EDU_BUF, in.iova, sizeof(msg), 1)) {
		printf("the edu DMA engine did not finish\n");
		return -1;
	}
	printf("edu DMA: IOVA %#llx -> device buffer -> IOVA %#llx\n",
	       (unsigned long long)out.iova, (unsigned long long)in.iova);
	printf("buffer B now holds: \"%s\"\n", buf + 4096);
	printf("%s\n", memcmp(buf, buf + 4096, sizeof(msg)) ? "MISMATCH" : "bytes identical");

	all.ioasid = alloc.out_ioasid;
	CHECK(ioctl(fd, IOASID_UNMAP, &all));
	printf("IOASID_UNMAP (all): %llu bytes unmapped; VmPin: %ld kB\n",
	       (unsigned long long)all.out_unmapped, vmpin_kb());
	snprintf((char *)buf, 64, "/proc/self/fdinfo/%d", fd);
	show_file("what the context reports", buf);
	edu_teardown(&edu);
	return memcmp(buf + 4096, msg, sizeof(msg)) ? -1 : 0;
}

int main(void)
{
	char path[64];
	struct stat st;
	int fd;

	printf("=== ioasid demo ===\n");
	if (stat("/dev/ioasid", &st)) {
		printf("/dev/ioasid: %s (is the module loaded?)\n", strerror(errno));
		return 1;
	}
	printf("/dev/ioasid: char device %u:%u, mode %04o, owner %u:%u\n",
	       major(st.st_rdev), minor(st.st_rdev), st.st_mode & 07777, st.st_uid, st.st_gid);

	fd = open("/dev/ioasid", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	printf("opened /dev/ioasid as fd %d: a new context\n", fd);

	struct ioasid_info info = { .argsz = sizeof(info) };

	if (ioctl(fd, IOASID_GET_INFO, &info)) {
		printf("IOASID_GET_INFO: %s\n", strerror(errno));
		return 1;
	}
	printf("IOASID_GET_INFO: uAPI version %u, capabilities %#llx:%s%s%s\n", info.out_api_version,
	       (unsigned long long)info.out_capabilities,
	       info.out_capabilities & IOASID_CAP_IOASID ? " IOASID" : "",
	       info.out_capabilities & IOASID_CAP_DEVICE ? " DEVICE" : "",
	       info.out_capabilities & IOASID_CAP_DMA ? " DMA" : "");

	__u32 ids[3];

	for (int i = 0; i < 3; i++) {
		struct ioasid_alloc a = { .argsz = sizeof(a) };

		if (ioctl(fd, IOASID_ALLOC, &a)) {
			printf("IOASID_ALLOC: %s\n", strerror(errno));
			return 1;
		}
		ids[i] = a.out_ioasid;
		printf("IOASID_ALLOC: IOASID %u\n", ids[i]);
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	show_file("what the context reports", path);

	struct ioasid_free f = { .argsz = sizeof(f), .ioasid = ids[1] };

	printf("IOASID_FREE %u: %s\n", ids[1], ioctl(fd, IOASID_FREE, &f) ? strerror(errno) : "ok");
	printf("IOASID_FREE %u again: %s (a freed ID names nothing)\n", ids[1],
	       ioctl(fd, IOASID_FREE, &f) ? strerror(errno) : "ok?!");

	struct ioasid_alloc a = { .argsz = sizeof(a) };

	if (!ioctl(fd, IOASID_ALLOC, &a))
		printf("IOASID_ALLOC: IOASID %u (IDs are not reused at once)\n", a.out_ioasid);
	a.flags = 1u << 31;
	printf("IOASID_ALLOC with an unknown flag: %s\n",
	       ioctl(fd, IOASID_ALLOC, &a) ? strerror(errno) : "ok?!");
	show_file("what the context reports", path);

	if (dma_demo(fd))
		return 1;

	if (close(fd)) {
		printf("close: %s\n", strerror(errno));
		return 1;
	}
	printf("closed fd %d: the context and its IOASIDs are gone\n", fd);
	printf("=== demo done ===\n");
	return 0;
}
