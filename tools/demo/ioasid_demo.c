// SPDX-License-Identifier: GPL-2.0
/*
 * ioasid demo: what a VMM sees when it opens /dev/ioasid.
 *
 * Opens the device, shows the node, the context the open created (from
 * fdinfo), and how the context goes away on close. Run by `make run`
 * inside the test VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	show_file("what the context reports", path);

	if (close(fd)) {
		printf("close: %s\n", strerror(errno));
		return 1;
	}
	printf("closed fd %d: the context and everything in it are gone\n", fd);
	printf("=== demo done ===\n");
	return 0;
}
