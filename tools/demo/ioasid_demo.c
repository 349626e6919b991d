// SPDX-License-Identifier: GPL-2.0
/*
 * ioasid demo: what a VMM sees when it opens /dev/ioasid.
 *
 * Opens the device, asks what it supports, creates and frees IOASIDs, and
 * shows the context's state (from fdinfo) along the way. Run by `make run`
 * inside the test VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/ioasid.h>

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
	printf("IOASID_GET_INFO: uAPI version %u, capabilities %#llx%s\n", info.out_api_version,
	       (unsigned long long)info.out_capabilities,
	       info.out_capabilities & IOASID_CAP_IOASID ? " (IOASID_CAP_IOASID)" : "");

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

	if (close(fd)) {
		printf("close: %s\n", strerror(errno));
		return 1;
	}
	printf("closed fd %d: the context and its IOASIDs are gone\n", fd);
	printf("=== demo done ===\n");
	return 0;
}
