// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for the accounting of pinned memory: IOASID_MAP charges the
 * pages to the *user* of the caller (user_struct->locked_vm) against the
 * caller's RLIMIT_MEMLOCK, so that no sequence of processes, forks, execs or
 * file descriptors passed around pins more than the limit allows; the pages
 * show in the pinning process's VmPin, and the module's total in debugfs
 * (ioasid/pinned_pages). CAP_IPC_LOCK is exempt.
 *
 * No device is needed: an IOASID with no device attached pins what it maps.
 * Every test opens /dev/ioasid (0600 root) as root, then drops to an
 * unprivileged user (no capabilities) with a 64 KiB RLIMIT_MEMLOCK. The
 * debugfs file is opened before, and read through that descriptor after.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/ioasid.h>

#include "ioasid_util.h"
#include "kselftest_harness.h"

#define PAGE 4096
/* RLIMIT_MEMLOCK of the unprivileged processes: 64 KiB, 16 pages. */
#define LIMIT_PAGES 16
#define LIMIT (LIMIT_PAGES * PAGE)
#define LIMIT_KB (LIMIT / 1024)

/* Two unprivileged users, used by nothing else in the suite. */
#define UID_A 61001
#define UID_B 61002

/* IOVAs (no device: any IOVA is usable). */
#define IOVA_A 0x1000000ull
#define IOVA_B 0x2000000ull
#define IOVA_PROBE 0x40000000ull

/* argv[1] of the re-executed test binary (exec_keeps_the_users_charge). */
#define EXEC_HELPER "--accounting-exec-helper"

/* In a child: report the failed check on stderr and exit 99. */
#define CHECK(cond)								\
	do {									\
		if (!(cond)) {							\
			fprintf(stderr, "# child %d: line %d: %s\n", getpid(),	\
				__LINE__, #cond);				\
			_exit(99);						\
		}								\
	} while (0)

/* `n` pages of anonymous memory, touched; NULL on failure. */
static uint8_t *pages(size_t n)
{
	uint8_t *buf = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return NULL;
	memset(buf, 0x5a, n * PAGE);
	return buf;
}

/* Become `uid`, with no capabilities and a 64 KiB RLIMIT_MEMLOCK. */
static int drop_to(uid_t uid)
{
	struct rlimit lim = { LIMIT, LIMIT };

	if (setrlimit(RLIMIT_MEMLOCK, &lim) || setgroups(0, NULL) || setgid(uid) || setuid(uid))
		return -1;
	return 0;
}

static int unmap_all(int fd, __u32 ioasid)
{
	struct ioasid_unmap u = {
		.argsz = sizeof(u), .flags = IOASID_UNMAP_ALL, .ioasid = ioasid,
	};

	return xioctl(fd, IOASID_UNMAP, &u);
}

/*
 * The pages the caller's user may still pin under the caller's limit: maps
 * one page at a time (at IOVA_PROBE...) until ENOMEM, then unmaps them.
 * -1 on any other error.
 */
static int room(int fd, __u32 ioasid)
{
	static uint8_t *buf;
	int n, ret = 0;

	if (!buf)
		buf = pages(LIMIT_PAGES + 1);
	if (!buf)
		return -1;
	for (n = 0; n <= LIMIT_PAGES; n++) {
		ret = map_at(fd, ioasid, buf + n * PAGE, PAGE, IOVA_PROBE + n * PAGE, RW);
		if (ret)
			break;
	}
	if (ret && ret != -ENOMEM)
		return -1;
	if (n && unmap(fd, ioasid, IOVA_PROBE, (__u64)n * PAGE, NULL))
		return -1;
	return n;
}

/* The exit status of child `pid`, or 128 + its signal. */
static int wait_exit(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* room() of user `uid` in a child of the caller, through `fd`. */
static int room_of(int fd, __u32 ioasid, uid_t uid)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int n;

		CHECK(!drop_to(uid));
		n = room(fd, ioasid);
		_exit(n < 0 ? 100 : n);
	}
	return wait_exit(pid);
}

/* Fork a process that opens /dev/ioasid, drops to `uid` and reports room(). */
static int room_of_new_fd(uid_t uid)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR), n;
		__u32 ioasid;

		CHECK(fd >= 0 && !alloc_ioasid(fd, &ioasid) && !drop_to(uid));
		n = room(fd, ioasid);
		_exit(n < 0 ? 100 : n);
	}
	return wait_exit(pid);
}

/* Send `fd` and one word over a unix socket (SCM_RIGHTS). */
static int send_fd(int sock, int fd, __u32 word)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &word, sizeof(word) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == sizeof(word) ? 0 : -1;
}

/* Receive what send_fd() sent: the new descriptor, or -1. */
static int recv_fd(int sock, __u32 *word)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { word, sizeof(*word) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, 0) != sizeof(*word))
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* One step of a two-process protocol over a SOCK_SEQPACKET pair. */
static int say(int sock, char step)
{
	return write(sock, &step, 1) == 1 ? 0 : -1;
}

static int heard(int sock, char step)
{
	char c;

	return read(sock, &c, 1) == 1 && c == step;
}

/*
 * The fd is inherited by 64 children of one user, each mapping 64 KiB and
 * exiting: the first fills the user's limit, every later one is refused, and
 * the charge outlives the child that made it.
 */
TEST(fork_children_share_the_users_limit)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	int fd = open("/dev/ioasid", O_RDWR);
	int mapped = 0, refused = 0;
	__u32 ioasid;
	long base;

	ASSERT_LE(0, dfd);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, alloc_ioasid(fd, &ioasid));
	base = pinned_pages_fd(dfd);
	ASSERT_LE(0, base);

	for (int i = 0; i < 64; i++) {
		pid_t pid = fork();
		int st, ret;

		ASSERT_LE(0, pid);
		if (pid == 0) {
			uint8_t *buf = pages(LIMIT_PAGES);

			CHECK(buf && !drop_to(UID_A));
			ret = map_at(fd, ioasid, buf, LIMIT, IOVA_A + (__u64)i * LIMIT, RW);
			if (ret == -ENOMEM) {
				CHECK(vmpin_kb() == 0);
				_exit(2);
			}
			CHECK(ret == 0);
			/* Pinned by this process, charged to its user, not to its VmLck. */
			CHECK(vmpin_kb() == LIMIT_KB);
			CHECK(status_kb("VmLck:") == 0);
			_exit(0);
		}
		st = wait_exit(pid);
		if (st == 0)
			mapped++;
		else if (st == 2)
			refused++;
		EXPECT_EQ(i ? 2 : 0, st) TH_LOG("child %d: 0 mapped, 2 ENOMEM, else failed", i);
		/* Never more pinned than the user's limit. */
		EXPECT_GE(base + LIMIT_PAGES, pinned_pages_fd(dfd));
	}
	EXPECT_EQ(1, mapped);
	EXPECT_EQ(63, refused);
	EXPECT_EQ(base + LIMIT_PAGES, pinned_pages_fd(dfd));
	/* The parent pinned nothing itself. */
	EXPECT_EQ(0, vmpin_kb());
	/* The charge is the user's: any other process of it has no room left. */
	EXPECT_EQ(0, room_of(fd, ioasid, UID_A));
	/* Unmapped by another task (root): the charge goes back to UID_A. */
	ASSERT_EQ(0, unmap_all(fd, ioasid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	EXPECT_EQ(LIMIT_PAGES, room_of(fd, ioasid, UID_A));
	close(fd);
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/* The re-executed test binary: argv = EXEC_HELPER fd ioasid dfd base. */
static void exec_helper(int argc, char **argv)
{
	int fd, dfd;
	__u32 ioasid;
	long base;
	uint8_t *buf;

	if (argc != 6 || strcmp(argv[1], EXEC_HELPER))
		return;
	fd = atoi(argv[2]);
	ioasid = atoi(argv[3]);
	dfd = atoi(argv[4]);
	base = atol(argv[5]);
	buf = pages(LIMIT_PAGES + 1);
	CHECK(buf);
	/* The user's charge of before the exec is still there... */
	CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
	CHECK(map_at(fd, ioasid, buf, PAGE, IOVA_B, RW) == -ENOMEM);
	CHECK(room(fd, ioasid) == 0);
	/* ...though this new mm pinned nothing. */
	CHECK(vmpin_kb() == 0);
	/* Unmapping what the old program mapped gives the room back. */
	CHECK(unmap(fd, ioasid, IOVA_A, LIMIT, NULL) == 0);
	CHECK(pinned_pages_fd(dfd) == base);
	CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_B, RW) == 0);
	CHECK(vmpin_kb() == LIMIT_KB);
	CHECK(map_at(fd, ioasid, buf + LIMIT, PAGE, IOVA_B + LIMIT, RW) == -ENOMEM);
	CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
	/* Exiting closes the last descriptor: everything goes back. */
	_exit(0);
}

/* glibc passes argc and argv to constructors: catch the re-executed binary first. */
static void __attribute__((constructor)) maybe_exec_helper(int argc, char **argv)
{
	exec_helper(argc, argv);
}

/* A process maps to its limit and execs a program that keeps the fd: refused past the limit. */
TEST(exec_keeps_the_users_charge)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t pid;

	ASSERT_LE(0, dfd);
	ASSERT_LE(0, base);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		char sfd[16], sid[16], sdfd[16], sbase[32];
		uint8_t *buf = pages(LIMIT_PAGES);
		__u32 ioasid;

		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid) && !drop_to(UID_A));
		CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_A, RW) == 0);
		snprintf(sfd, sizeof(sfd), "%d", fd);
		snprintf(sid, sizeof(sid), "%u", ioasid);
		snprintf(sdfd, sizeof(sdfd), "%d", dfd);
		snprintf(sbase, sizeof(sbase), "%ld", base);
		execl("/proc/self/exe", "accounting_test", EXEC_HELPER, sfd, sid, sdfd, sbase,
		      (char *)NULL);
		CHECK(!"exec");
	}
	EXPECT_EQ(0, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/*
 * The fd passed with SCM_RIGHTS between two processes of one user: the
 * receiver is refused past what the sender has charged; what it unmaps of
 * the sender's pages gives the room back.
 */
TEST(scm_rights_to_the_same_user)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t a, b;
	int sv[2];

	ASSERT_LE(0, base);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	/* B first: it has no /dev/ioasid descriptor but the one it receives. */
	b = fork();
	ASSERT_LE(0, b);
	if (b == 0) {
		uint8_t *buf = pages(LIMIT_PAGES + 1);
		__u32 ioasid;
		int fd;

		close(sv[0]);
		CHECK(buf && !drop_to(UID_A));
		fd = recv_fd(sv[1], &ioasid);
		CHECK(fd >= 0);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		CHECK(map_at(fd, ioasid, buf, PAGE, IOVA_B, RW) == -ENOMEM);
		CHECK(vmpin_kb() == 0);
		/* B unmaps A's pages: the user's charge and A's VmPin go down. */
		CHECK(unmap(fd, ioasid, IOVA_A, LIMIT, NULL) == 0);
		CHECK(pinned_pages_fd(dfd) == base);
		CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_B, RW) == 0);
		CHECK(vmpin_kb() == LIMIT_KB);
		CHECK(map_at(fd, ioasid, buf + LIMIT, PAGE, IOVA_B + LIMIT, RW) == -ENOMEM);
		CHECK(!say(sv[1], 'b'));
		CHECK(heard(sv[1], 'a'));
		_exit(0);
	}
	a = fork();
	ASSERT_LE(0, a);
	if (a == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(LIMIT_PAGES);
		__u32 ioasid;

		close(sv[1]);
		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid) && !drop_to(UID_A));
		CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_A, RW) == 0);
		CHECK(!send_fd(sv[0], fd, ioasid));
		CHECK(heard(sv[0], 'b'));
		/* B unmapped A's pages; B's own pages are charged to the same user. */
		CHECK(vmpin_kb() == 0);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		CHECK(room(fd, ioasid) == 0);
		CHECK(!say(sv[0], 'a'));
		_exit(0);
	}
	close(sv[0]);
	close(sv[1]);
	EXPECT_EQ(0, wait_exit(a));
	EXPECT_EQ(0, wait_exit(b));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/*
 * The fd passed to a process of another user: each user's maps are charged
 * to that user against its own limit, and whoever unmaps them, each charge
 * goes back to the user who made it.
 */
TEST(scm_rights_to_another_user)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t a, b;
	int sv[2];

	ASSERT_LE(0, base);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	b = fork();
	ASSERT_LE(0, b);
	if (b == 0) {
		uint8_t *buf = pages(LIMIT_PAGES + 1);
		__u32 ioasid;
		int fd;

		close(sv[0]);
		CHECK(buf && !drop_to(UID_B));
		fd = recv_fd(sv[1], &ioasid);
		CHECK(fd >= 0);
		/* A filled UID_A's limit; UID_B has its own. */
		CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_B, RW) == 0);
		CHECK(vmpin_kb() == LIMIT_KB);
		CHECK(pinned_pages_fd(dfd) == base + 2 * LIMIT_PAGES);
		CHECK(map_at(fd, ioasid, buf + LIMIT, PAGE, IOVA_B + LIMIT, RW) == -ENOMEM);
		CHECK(!say(sv[1], '1'));
		/* A unmapped B's pages: back to UID_B, whole. */
		CHECK(heard(sv[1], '2'));
		CHECK(vmpin_kb() == 0);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		/* B unmaps A's pages: back to UID_A. */
		CHECK(unmap(fd, ioasid, IOVA_A, LIMIT, NULL) == 0);
		CHECK(pinned_pages_fd(dfd) == base);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		CHECK(!say(sv[1], '3'));
		CHECK(heard(sv[1], '4'));
		_exit(0);
	}
	a = fork();
	ASSERT_LE(0, a);
	if (a == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(LIMIT_PAGES);
		__u32 ioasid;

		close(sv[1]);
		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid) && !drop_to(UID_A));
		CHECK(map_at(fd, ioasid, buf, LIMIT, IOVA_A, RW) == 0);
		CHECK(!send_fd(sv[0], fd, ioasid));
		CHECK(heard(sv[0], '1'));
		/* B's maps were not charged to UID_A, which is still full. */
		CHECK(room(fd, ioasid) == 0);
		CHECK(vmpin_kb() == LIMIT_KB);
		/* A unmaps B's pages. */
		CHECK(unmap(fd, ioasid, IOVA_B, LIMIT, NULL) == 0);
		CHECK(room(fd, ioasid) == 0);
		CHECK(!say(sv[0], '2'));
		CHECK(heard(sv[0], '3'));
		CHECK(vmpin_kb() == 0);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		CHECK(!say(sv[0], '4'));
		_exit(0);
	}
	close(sv[0]);
	close(sv[1]);
	EXPECT_EQ(0, wait_exit(a));
	EXPECT_EQ(0, wait_exit(b));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	EXPECT_EQ(LIMIT_PAGES, room_of_new_fd(UID_A));
	EXPECT_EQ(LIMIT_PAGES, room_of_new_fd(UID_B));
	close(dfd);
}

/* Unmapping, and failed maps, leave the charge, VmPin and the module's count exact. */
TEST(unmap_returns_the_charge)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t pid;

	ASSERT_LE(0, base);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(2 * LIMIT_PAGES);
		__u32 ioasid;

		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid) && !drop_to(UID_A));
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		for (int i = 0; i < 4; i++)
			CHECK(!map_at(fd, ioasid, buf + i * 4 * PAGE, 4 * PAGE,
				      IOVA_A + i * 4 * PAGE, RW));
		CHECK(vmpin_kb() == LIMIT_KB);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		CHECK(room(fd, ioasid) == 0);
		CHECK(!unmap(fd, ioasid, IOVA_A, 4 * PAGE, NULL));
		CHECK(vmpin_kb() == LIMIT_KB - 16);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES - 4);
		CHECK(room(fd, ioasid) == 4);
		CHECK(!unmap_all(fd, ioasid));
		CHECK(vmpin_kb() == 0);
		CHECK(pinned_pages_fd(dfd) == base);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		/* Past the limit in one go: refused, nothing pinned or charged. */
		CHECK(map_at(fd, ioasid, buf, LIMIT + PAGE, IOVA_A, RW) == -ENOMEM);
		CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		/* Failing half-way through pinning (a hole): everything undone. */
		CHECK(!munmap(buf + 8 * PAGE, PAGE));
		CHECK(map_at(fd, ioasid, buf, 12 * PAGE, IOVA_A, RW) == -EFAULT);
		CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		/* Exactly the limit is allowed. */
		CHECK(!map_at(fd, ioasid, buf + 9 * PAGE, LIMIT, IOVA_A, RW));
		CHECK(map_at(fd, ioasid, buf, PAGE, IOVA_B, RW) == -ENOMEM);
		CHECK(!unmap_all(fd, ioasid));
		/* Freeing the IOASID unmaps, and uncharges, too. */
		CHECK(!map_at(fd, ioasid, buf + 9 * PAGE, LIMIT, IOVA_A, RW));
		CHECK(!free_ioasid(fd, ioasid));
		CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
		CHECK(!alloc_ioasid(fd, &ioasid));
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		_exit(0);
	}
	EXPECT_EQ(0, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

TEST(close_returns_the_charge)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t pid;

	ASSERT_LE(0, base);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd1 = open("/dev/ioasid", O_RDWR), fd2 = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(LIMIT_PAGES);
		__u32 id1, id2;

		CHECK(fd1 >= 0 && fd2 >= 0 && buf);
		CHECK(!alloc_ioasid(fd1, &id1) && !alloc_ioasid(fd2, &id2) && !drop_to(UID_A));
		CHECK(!map_at(fd1, id1, buf, LIMIT, IOVA_A, RW));
		CHECK(vmpin_kb() == LIMIT_KB && pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		/* One limit for the user, whatever the context. */
		CHECK(room(fd2, id2) == 0);
		close(fd1);
		CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
		CHECK(room(fd2, id2) == LIMIT_PAGES);
		CHECK(!map_at(fd2, id2, buf, LIMIT, IOVA_A, RW));
		CHECK(vmpin_kb() == LIMIT_KB);
		_exit(0);
	}
	EXPECT_EQ(0, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/*
 * SIGKILL of the process holding the pages: with its context when it was the
 * last holder; with the context, later, when another process holds it: the
 * charge outlives the process that made it, and goes back to its user.
 */
TEST(kill_returns_the_charge)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	int pipefd[2], fd;
	__u32 ioasid;
	pid_t pid;
	char c;

	ASSERT_LE(0, base);

	/* The only holder. */
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(LIMIT_PAGES);
		__u32 ioasid;

		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid) && !drop_to(UID_A));
		CHECK(!map_at(fd, ioasid, buf, LIMIT, IOVA_A, RW));
		CHECK(write(pipefd[1], "x", 1) == 1);
		for (;;)
			pause();
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	EXPECT_EQ(base + LIMIT_PAGES, pinned_pages_fd(dfd));
	EXPECT_EQ(0, room_of_new_fd(UID_A));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	EXPECT_EQ(128 + SIGKILL, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	EXPECT_EQ(LIMIT_PAGES, room_of_new_fd(UID_A));

	/* Not the last holder: root keeps the context. */
	fd = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, alloc_ioasid(fd, &ioasid));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint8_t *buf = pages(LIMIT_PAGES);

		CHECK(buf && !drop_to(UID_A));
		CHECK(!map_at(fd, ioasid, buf, LIMIT, IOVA_A, RW));
		CHECK(write(pipefd[1], "x", 1) == 1);
		for (;;)
			pause();
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	EXPECT_EQ(128 + SIGKILL, wait_exit(pid));
	/* The pages stay pinned, and charged to UID_A, with the process gone. */
	EXPECT_EQ(base + LIMIT_PAGES, pinned_pages_fd(dfd));
	EXPECT_EQ(0, room_of_new_fd(UID_A));
	/* Root closes the context: the charge goes back to UID_A. */
	close(fd);
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	EXPECT_EQ(LIMIT_PAGES, room_of_new_fd(UID_A));
	close(pipefd[0]);
	close(pipefd[1]);
	close(dfd);
}

/* Clear CAP_IPC_LOCK from the calling thread's effective and permitted sets. */
static int drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	return syscall(SYS_capset, &hdr, data) ? -1 : 0;
}

/*
 * CAP_IPC_LOCK: maps past RLIMIT_MEMLOCK, charged to nobody (VmPin still
 * shows them). Without it, even root is held to the limit.
 */
TEST(cap_ipc_lock_is_exempt)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t pid;

	ASSERT_LE(0, base);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit lim = { LIMIT, LIMIT };
		int fd = open("/dev/ioasid", O_RDWR);
		uint8_t *buf = pages(4 * LIMIT_PAGES);
		__u32 ioasid;

		CHECK(fd >= 0 && buf && !alloc_ioasid(fd, &ioasid));
		CHECK(!setrlimit(RLIMIT_MEMLOCK, &lim));
		CHECK(!map_at(fd, ioasid, buf, 2 * LIMIT, IOVA_A, RW));
		CHECK(vmpin_kb() == 2 * LIMIT_KB);
		CHECK(pinned_pages_fd(dfd) == base + 2 * LIMIT_PAGES);
		/* The exempt pages are not charged to uid 0: its whole limit is left. */
		CHECK(!drop_cap_ipc_lock());
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		CHECK(!map_at(fd, ioasid, buf + 2 * LIMIT, LIMIT, IOVA_B, RW));
		CHECK(map_at(fd, ioasid, buf + 3 * LIMIT, PAGE, IOVA_B + LIMIT, RW) == -ENOMEM);
		CHECK(vmpin_kb() == 3 * LIMIT_KB);
		CHECK(pinned_pages_fd(dfd) == base + 3 * LIMIT_PAGES);
		/* Unmapping the exempt pages gives nothing back to uid 0. */
		CHECK(!unmap(fd, ioasid, IOVA_A, 2 * LIMIT, NULL));
		CHECK(room(fd, ioasid) == 0);
		CHECK(!unmap(fd, ioasid, IOVA_B, LIMIT, NULL));
		CHECK(room(fd, ioasid) == LIMIT_PAGES);
		CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
		_exit(0);
	}
	EXPECT_EQ(0, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

struct racer {
	int fd;
	__u32 ioasid;
	uint8_t *buf;
	int mapped;
};

static void *race_maps(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < LIMIT_PAGES; i++)
		if (!map_at(r->fd, r->ioasid, r->buf + i * PAGE, PAGE, IOVA_A + i * PAGE, RW))
			r->mapped++;
	return NULL;
}

/*
 * Threads of one process, each on its own IOASID (so that nothing in the
 * module serializes them), racing page by page to the limit: exactly the
 * limit is pinned, never more.
 */
TEST(racing_threads_stop_at_the_limit)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);
	pid_t pid;

	ASSERT_LE(0, base);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR), total = 0;
		struct racer r[4];
		pthread_t t[4];

		CHECK(fd >= 0);
		for (int i = 0; i < 4; i++) {
			r[i] = (struct racer){ .fd = fd, .buf = pages(LIMIT_PAGES) };
			CHECK(r[i].buf && !alloc_ioasid(fd, &r[i].ioasid));
		}
		CHECK(!drop_to(UID_A));
		for (int i = 0; i < 4; i++)
			CHECK(!pthread_create(&t[i], NULL, race_maps, &r[i]));
		for (int i = 0; i < 4; i++) {
			CHECK(!pthread_join(t[i], NULL));
			total += r[i].mapped;
		}
		CHECK(total == LIMIT_PAGES);
		CHECK(vmpin_kb() == LIMIT_KB);
		CHECK(pinned_pages_fd(dfd) == base + LIMIT_PAGES);
		_exit(0);
	}
	EXPECT_EQ(0, wait_exit(pid));
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/*
 * Processes of one user sharing one fd, started together, racing to map
 * and exiting: exactly the limit stays pinned, whoever won.
 */
TEST(racing_processes_stop_at_the_limit)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	int fd = open("/dev/ioasid", O_RDWR);
	long base = pinned_pages_fd(dfd);
	int gun[2], total = 0;
	__u32 ioasid[8];
	pid_t pid[8];

	ASSERT_LE(0, base);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(gun));
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(0, alloc_ioasid(fd, &ioasid[i]));
		pid[i] = fork();
		ASSERT_LE(0, pid[i]);
		if (pid[i] == 0) {
			struct racer r = { .fd = fd, .ioasid = ioasid[i], .buf = pages(LIMIT_PAGES) };
			char c;

			close(gun[1]);
			CHECK(r.buf && !drop_to(UID_A));
			/* Wait for the start: the write end closed. */
			CHECK(read(gun[0], &c, 1) == 0);
			race_maps(&r);
			_exit(r.mapped);
		}
	}
	close(gun[0]);
	close(gun[1]);
	for (int i = 0; i < 8; i++) {
		int st = wait_exit(pid[i]);

		EXPECT_GE(LIMIT_PAGES, st);
		total += st;
	}
	EXPECT_EQ(LIMIT_PAGES, total);
	EXPECT_EQ(base + LIMIT_PAGES, pinned_pages_fd(dfd));
	EXPECT_EQ(0, room_of(fd, ioasid[0], UID_A));
	close(fd);
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

/* IOASID_MAP without IOASID_MAP_FIXED_IOVA. */
static int map_any(int fd, __u32 ioasid, __u64 va, __u64 length)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .flags = RW, .ioasid = ioasid, .user_va = va, .length = length,
	};

	return xioctl(fd, IOASID_MAP, &m);
}

/*
 * Lengths and addresses at the edges of the 64-bit space, with and without
 * the limit: refused, nothing pinned or charged, no overflow in the kernel.
 */
TEST(absurd_sizes_are_refused)
{
	int dfd = open(PINNED_PAGES_PATH, O_RDONLY);
	long base = pinned_pages_fd(dfd);

	ASSERT_LE(0, base);
	for (int privileged = 1; privileged >= 0; privileged--) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			int fd = open("/dev/ioasid", O_RDWR);
			const __u64 top = -(__u64)PAGE;
			__u32 ioasid;
			int ret;

			CHECK(fd >= 0 && !alloc_ioasid(fd, &ioasid));
			CHECK(privileged || !drop_to(UID_A));
			/* The whole space but one page, from a page in: its end is 2^64. */
			CHECK(map_any(fd, ioasid, PAGE, top) == -ENOSPC);
			CHECK(map_any(fd, ioasid, 0, top) == -ENOSPC);
			/* Refused by the limit, or as more memory than the machine has. */
			CHECK(map_at(fd, ioasid, 0, top, PAGE, RW) == -ENOMEM);
			/* Reaching the top of the address space: no user memory there. */
			CHECK(map_at(fd, ioasid, (void *)(uintptr_t)PAGE, top, 0, RW) == -EFAULT);
			/* Wrapping. */
			CHECK(map_at(fd, ioasid, (void *)(uintptr_t)(2 * PAGE), top, 0, RW) == -EINVAL);
			CHECK(map_at(fd, ioasid, 0, top, 2 * PAGE, RW) == -EINVAL);
			CHECK(map_at(fd, ioasid, 0, (__u64)-1, 0, RW) == -EINVAL);
			/* The last page of the address space, a kernel address. */
			CHECK(map_at(fd, ioasid, (void *)(uintptr_t)top, PAGE, top, RW) == -EFAULT);
			CHECK(map_any(fd, ioasid, top, PAGE) == -EFAULT);
			/* One page past the limit, at the top of the IOVA space. */
			ret = map_at(fd, ioasid, pages(LIMIT_PAGES + 1), LIMIT + PAGE,
				     top - LIMIT, RW);
			CHECK(ret == (privileged ? 0 : -ENOMEM));
			CHECK(vmpin_kb() == (privileged ? LIMIT_KB + 4 : 0));
			if (privileged)
				CHECK(!unmap(fd, ioasid, top - LIMIT, LIMIT + PAGE, NULL));
			CHECK(vmpin_kb() == 0 && pinned_pages_fd(dfd) == base);
			CHECK(privileged || room(fd, ioasid) == LIMIT_PAGES);
			_exit(0);
		}
		EXPECT_EQ(0, wait_exit(pid)) TH_LOG("privileged: %d", privileged);
	}
	EXPECT_EQ(base, pinned_pages_fd(dfd));
	close(dfd);
}

TEST_HARNESS_MAIN
