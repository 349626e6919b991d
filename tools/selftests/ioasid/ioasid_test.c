// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for /dev/ioasid: the device node, the per-open context, access
 * control, and the IOMMU group topology of the test VM's edu devices.
 *
 * Built static against the kernel tree's own kselftest_harness.h; run inside
 * the test VM as root by scripts/vm.sh.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define IOASID_DEV "/dev/ioasid"
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define MAX_EDU 16

/* Reads a whole small file into buf; returns its length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static long read_hex(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 16);
}

/* The context serial shown by fdinfo for fd, or 0 when there is none. */
static unsigned long long context_serial(int fd)
{
	char path[64], buf[4096], *line;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	line = strstr(buf, "ioasid-context:");
	if (!line)
		return 0;
	return strtoull(line + strlen("ioasid-context:"), NULL, 10);
}

TEST(device_node)
{
	struct stat st;
	char buf[64];
	unsigned int major, minor;

	ASSERT_EQ(0, stat(IOASID_DEV, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	/* Root-only by default: an admin grants access by chmod/chown or udev. */
	EXPECT_EQ(0600, st.st_mode & 07777);
	EXPECT_EQ(0, st.st_uid);
	EXPECT_EQ(0, st.st_gid);

	/* The node is the misc device the module registered, not a stale file. */
	ASSERT_LT(0, read_file("/sys/class/misc/ioasid/dev", buf, sizeof(buf)));
	ASSERT_EQ(2, sscanf(buf, "%u:%u", &major, &minor));
	EXPECT_EQ(major, major(st.st_rdev));
	EXPECT_EQ(minor, minor(st.st_rdev));
}

TEST(open_close)
{
	unsigned long long s1, s2;
	int fd1, fd2, dup1;

	fd1 = open(IOASID_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd1);
	fd2 = open(IOASID_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);

	/* Each open is its own context. */
	s1 = context_serial(fd1);
	s2 = context_serial(fd2);
	EXPECT_NE(0, s1);
	EXPECT_NE(0, s2);
	EXPECT_NE(s1, s2);

	/* A duplicate shares the context of its original. */
	dup1 = dup(fd1);
	ASSERT_LE(0, dup1);
	EXPECT_EQ(s1, context_serial(dup1));

	EXPECT_EQ(0, close(fd1));
	/* The context outlives the first close while a duplicate holds it. */
	EXPECT_EQ(s1, context_serial(dup1));
	EXPECT_EQ(0, close(dup1));
	EXPECT_EQ(0, close(fd2));

	/* A new open after close gets a fresh context. */
	fd1 = open(IOASID_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd1);
	EXPECT_GT(context_serial(fd1), s2);
	EXPECT_EQ(0, close(fd1));
}

TEST(unknown_ioctl)
{
	int fd = open(IOASID_DEV, O_RDWR | O_CLOEXEC);

	ASSERT_LE(0, fd);
	/* An ioctl number the module does not define, with another type letter. */
	EXPECT_EQ(-1, ioctl(fd, _IO('x', 0x7f), 0));
	EXPECT_EQ(ENOTTY, errno);
	close(fd);
}

TEST(nonroot_cannot_open)
{
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(10);
		fd = open(IOASID_DEV, O_RDWR);
		if (fd >= 0)
			_exit(11);
		_exit(errno == EACCES ? 0 : 12);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	/* 10: could not drop privileges; 11: opened; 12: wrong errno. */
	EXPECT_EQ(0, WEXITSTATUS(status));
}

struct edu {
	char bdf[NAME_MAX + 1];	/* "0000:00:05.0" */
	unsigned int domain, bus, slot, fn;
	char group[NAME_MAX + 1];	/* IOMMU group number */
};

/* Finds the edu devices and their IOMMU groups; returns how many. */
static int find_edus(struct edu *edu, int max)
{
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	int n = 0;

	if (!dir)
		return -1;
	while ((de = readdir(dir)) && n < max) {
		char path[PATH_MAX], link[PATH_MAX];
		ssize_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if (read_hex(path) != EDU_VENDOR)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		if (read_hex(path) != EDU_DEVICE)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;	/* not behind an IOMMU: counted as missing */
		link[len] = '\0';
		snprintf(edu[n].bdf, sizeof(edu[n].bdf), "%s", de->d_name);
		snprintf(edu[n].group, sizeof(edu[n].group), "%s", basename(link));
		if (sscanf(de->d_name, "%x:%x:%x.%x", &edu[n].domain, &edu[n].bus,
			   &edu[n].slot, &edu[n].fn) != 4)
			continue;
		n++;
	}
	closedir(dir);
	return n;
}

static int group_size(const char *group)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/devices", group);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* How many edu devices share this device's slot (same domain, bus, slot). */
static int slot_count(const struct edu *edu, int n, const struct edu *d)
{
	int i, c = 0;

	for (i = 0; i < n; i++)
		if (edu[i].domain == d->domain && edu[i].bus == d->bus && edu[i].slot == d->slot)
			c++;
	return c;
}

/*
 * The VM has: one edu alone in a slot on the root bus, a multi-function pair
 * (two functions of one slot, no ACS), and (except under virtio-iommu, see
 * scripts/vm.sh) edus behind a conventional pci-bridge. The IOMMU group is
 * the unit of isolation, and these are the three shapes it takes.
 */
TEST(iommu_group_topology)
{
	struct edu edu[MAX_EDU];
	int n, i, j, alone = 0, pairs = 0, bridged = 0, behind_bridge = 0;

	n = find_edus(edu, MAX_EDU);
	ASSERT_LE(3, n) TH_LOG("expected at least 3 edu devices behind the IOMMU, found %d", n);

	for (i = 0; i < n; i++) {
		TH_LOG("%s: group %s (%d devices)", edu[i].bdf, edu[i].group,
		       group_size(edu[i].group));
		behind_bridge += edu[i].bus != 0;
		if (edu[i].bus == 0 && slot_count(edu, n, &edu[i]) == 1) {
			/* A device alone in its slot on the root bus: a group of its own. */
			EXPECT_EQ(1, group_size(edu[i].group));
			alone++;
		}
		for (j = i + 1; j < n; j++) {
			if (edu[i].bus == 0 && edu[j].bus == 0 && edu[i].slot == edu[j].slot) {
				/* Functions of one multi-function slot: one group. */
				EXPECT_STREQ(edu[i].group, edu[j].group);
				pairs++;
			} else if (edu[i].bus != 0 && edu[i].bus == edu[j].bus) {
				/* Behind one conventional bridge: aliased, one group. */
				EXPECT_STREQ(edu[i].group, edu[j].group);
				bridged++;
			} else {
				/* Anything else is isolated from each other. */
				EXPECT_STRNE(edu[i].group, edu[j].group);
			}
		}
	}
	EXPECT_LE(1, alone);
	EXPECT_LE(1, pairs);
	/* Every edu behind a bridge was paired with another behind it. */
	if (behind_bridge) {
		EXPECT_LE(1, bridged);
	}
}

TEST_HARNESS_MAIN
