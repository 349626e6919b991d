// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for an IOASID at scale, and for maps of slow memory:
 *
 *  - 10^5 areas, kernel-chosen and fixed, behind VT-d (or whatever IOMMU the
 *    VM has) with the edu device attached, unmapped in random order: every
 *    kernel-chosen IOVA is the lowest free one (checked against a bitmap of
 *    the space), every unmap returns exactly its area, the count of areas
 *    (fdinfo), the pinned pages (debugfs) and the IOPTEs (debugfs) follow
 *    every step and come back to where they were; the time of one
 *    kernel-chosen map at 10^3 and at 10^5 areas is printed;
 *  - a map of memory whose page fault user space never resolves
 *    (userfaultfd) is stuck in pinning; meanwhile another thread of the same
 *    process maps and unmaps on the same IOASID within a bounded wait; then
 *    SIGKILL of the stuck process leaves nothing pinned, its pinned pages
 *    uncounted and its user's RLIMIT_MEMLOCK charge returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/ioasid.h>
#include <linux/userfaultfd.h>

#include "ioasid_state.h"
#include "kselftest_harness.h"

#define BDF "0000:00:05.0"

/* The number of areas, half of them kernel-chosen, half fixed. */
#define N_AREAS 100000
/* Fixed areas go here, far above the kernel-chosen ones (which start at one page). */
#define FIXED_BASE 0x100000000ull
/* The user pages the areas map (again and again: each map pins them once more). */
#define BUF_PAGES 64

struct area {
	__u64 iova, len;
	int fixed;
};

static int map_auto(int fd, __u32 ioasid, void *va, __u64 len, __u64 *iova)
{
	struct ioasid_map m = {
		.argsz = sizeof(m), .flags = RW, .ioasid = ioasid,
		.user_va = (uintptr_t)va, .length = len,
	};
	int ret = xioctl(fd, IOASID_MAP, &m);

	*iova = m.iova;
	return ret;
}

static long areas_of(int fd)
{
	struct ctx_counts c;

	return ctx_counts(fd, &c) ? -1 : c.areas;
}

/* No page below it is free in the kernel-chosen space (page 0 never is). */
static __u64 free_hint = 1;

/* The lowest free page of the kernel-chosen space, in pages. */
static __u64 lowest_free(const uint8_t *used, __u64 n)
{
	while (free_hint < n && used[free_hint])
		free_hint++;
	return free_hint;
}

static void set_used(uint8_t *used, __u64 iova, __u64 len, uint8_t val)
{
	for (__u64 p = iova / PG; p < (iova + len) / PG; p++)
		used[p] = val;
	if (!val && iova / PG < free_hint)
		free_hint = iova / PG;
}

FIXTURE(scale) {
	int fd;
	struct edu edu;
	__u32 dev, ioasid;
};

FIXTURE_SETUP(scale)
{
	self->fd = open("/dev/ioasid", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, edu_setup(&self->edu, BDF));
	ASSERT_EQ(0, bind_dev(self->fd, &self->edu, &self->dev, NULL));
	ASSERT_EQ(0, alloc_ioasid(self->fd, &self->ioasid));
	ASSERT_EQ(0, attach(self->fd, self->dev, self->ioasid));
}

FIXTURE_TEARDOWN(scale)
{
	close(self->fd);
	edu_teardown(&self->edu);
}

/*
 * Measured under TCG (intel-pt VM) on 2 cores shared with a kernel build and
 * two other VMs: 117 s to create, 77 s to unmap, 194 s in all; the timeout is
 * 4 times that.
 */
TEST_F_TIMEOUT(scale, many_areas_unmapped_in_random_order, 800)
{
	/* The kernel-chosen space, in pages: at most 2 pages per kernel-chosen area. */
	const __u64 auto_pages = 2 * N_AREAS / 2 + 2;
	struct area *a = calloc(N_AREAS, sizeof(*a));
	uint8_t *used = calloc(auto_pages, 1);
	int *order = calloc(N_AREAS, sizeof(*order));
	uint8_t *buf = mmap(NULL, BUF_PAGES * PG, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iopte_counts io0, io;
	struct rng r = { 0x5ca1ab1e };
	long pinned0, pinned = 0, n;
	__u64 next_fixed = FIXED_BASE, iova, bytes;
	double t0, t_1k = 0, t_100k, t_create, t_unmap;

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, used);
	ASSERT_NE(NULL, order);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x5a, BUF_PAGES * PG);
	pinned0 = pinned_pages();
	ASSERT_LE(0, pinned0);
	ASSERT_EQ(0, st_iopte(&io0));
	ASSERT_EQ(0, areas_of(self->fd));

	/* Create: a random mix of kernel-chosen and fixed areas of 1 or 2 pages. */
	t0 = st_now();
	for (int i = 0; i < N_AREAS; i++) {
		__u64 len = (1 + rng_below(&r, 2)) * PG;
		void *va = buf + rng_below(&r, BUF_PAGES - 1) * PG;

		a[i].len = len;
		a[i].fixed = rng_below(&r, 2);
		if (a[i].fixed) {
			a[i].iova = next_fixed;
			ASSERT_EQ(0, map_at(self->fd, self->ioasid, va, len, next_fixed, RW));
			/* One page of hole after each, never filled. */
			next_fixed += len + PG;
		} else {
			double t = st_now();

			ASSERT_EQ(0, map_auto(self->fd, self->ioasid, va, len, &iova));
			if (i == 1000)
				t_1k = st_now() - t;
			/* First fit: only mapping so far, so right after the previous one. */
			ASSERT_EQ(lowest_free(used, auto_pages) * PG, iova);
			ASSERT_GT(auto_pages * PG, iova + len - 1);
			set_used(used, iova, len, 1);
			a[i].iova = iova;
		}
		pinned += len / PG;
		/* An overlapping fixed map is refused, and leaves nothing behind. */
		if (i % 997 == 0)
			ASSERT_EQ(-EEXIST, map_at(self->fd, self->ioasid, buf, PG,
						  a[i].iova + len - PG, RW));
	}
	t_create = st_now() - t0;
	ASSERT_EQ(N_AREAS, areas_of(self->fd));
	ASSERT_EQ(pinned0 + pinned, pinned_pages());
	ASSERT_EQ(0, st_iopte(&io));
	ASSERT_EQ(io0.n[0] + pinned, io.n[0]);

	/* One more kernel-chosen map at 10^5 areas, timed; then undone. */
	t0 = st_now();
	ASSERT_EQ(0, map_auto(self->fd, self->ioasid, buf, PG, &iova));
	t_100k = st_now() - t0;
	ASSERT_EQ(lowest_free(used, auto_pages) * PG, iova);
	ASSERT_EQ(0, unmap(self->fd, self->ioasid, iova, PG, &bytes));
	ASSERT_EQ(PG, bytes);

	TH_LOG("%d areas created in %.1f s; one kernel-chosen MAP: %.0f us at 10^3 areas, "
	       "%.0f us at 10^5 areas", N_AREAS, t_create, t_1k * 1e6, t_100k * 1e6);

	/* Ranges that cut a two-page area, at either end, change nothing. */
	for (int i = 0; i < N_AREAS; i++) {
		if (a[i].len != 2 * PG)
			continue;
		ASSERT_EQ(-EINVAL, unmap(self->fd, self->ioasid, a[i].iova + PG, PG, NULL));
		ASSERT_EQ(-EINVAL, unmap(self->fd, self->ioasid, a[i].iova - PG, 2 * PG, NULL));
		ASSERT_EQ(-EINVAL, unmap(self->fd, self->ioasid, a[i].iova, PG, NULL));
		break;
	}
	ASSERT_EQ(N_AREAS, areas_of(self->fd));
	ASSERT_EQ(pinned0 + pinned, pinned_pages());

	/* Unmap everything in random order. */
	for (int i = 0; i < N_AREAS; i++)
		order[i] = i;
	for (int i = N_AREAS - 1; i > 0; i--) {
		int j = rng_below(&r, i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	t0 = st_now();
	for (int k = 0; k < N_AREAS; k++) {
		struct area *x = &a[order[k]];

		ASSERT_EQ(0, unmap(self->fd, self->ioasid, x->iova, x->len, &bytes));
		ASSERT_EQ(x->len, bytes);
		pinned -= x->len / PG;
		if (!x->fixed)
			set_used(used, x->iova, x->len, 0);
		if (k % 10 == 0) {
			/* Gone: nothing left there, and the hole around it is free. */
			ASSERT_EQ(-ENOENT, unmap(self->fd, self->ioasid, x->iova, x->len, NULL));
		}
		if (k % 2500 == 0) {
			/* A kernel-chosen map goes to the lowest hole now. */
			ASSERT_EQ(0, map_auto(self->fd, self->ioasid, buf, PG, &iova));
			ASSERT_EQ(lowest_free(used, auto_pages) * PG, iova);
			ASSERT_EQ(0, unmap(self->fd, self->ioasid, iova, PG, &bytes));
			ASSERT_EQ(PG, bytes);
			n = areas_of(self->fd);
			ASSERT_EQ(N_AREAS - k - 1, n);
			ASSERT_EQ(pinned0 + pinned, pinned_pages());
			ASSERT_EQ(0, st_iopte(&io));
			ASSERT_EQ(io0.n[0] + pinned, io.n[0]);
		}
	}
	t_unmap = st_now() - t0;
	ASSERT_EQ(0, areas_of(self->fd));
	ASSERT_EQ(pinned0, pinned_pages());
	ASSERT_EQ(0, st_iopte(&io));
	ASSERT_EQ(io0.n[0], io.n[0]);
	ASSERT_EQ(-ENOENT, unmap(self->fd, self->ioasid, PG, FIXED_BASE * 2, NULL));
	TH_LOG("%d areas unmapped in random order in %.1f s", N_AREAS, t_unmap);
	free(a);
	free(used);
	free(order);
}

/* --- a map of memory whose fault is never resolved ---------------------------- */

/* An unprivileged user used by nothing else in the suite, and its limit. */
#define UID_SLOW 61011
#define SLOW_LIMIT_PAGES 4096
/* The stuck map: FAST_PAGES present pages, then userfaultfd-registered ones. */
#define FAST_PAGES 1024
#define SLOW_PAGES 512
#define IOVA_STUCK 0x10000000ull
#define IOVA_OTHER 0x20000000ull
/* The bounded wait for the other thread's map and unmap. */
#define BOUND_S 10.0

/* In a child: report the failed check on stderr and exit 99. */
#define CHECK(cond)								\
	do {									\
		if (!(cond)) {							\
			fprintf(stderr, "# child %d: line %d: %s\n", getpid(),	\
				__LINE__, #cond);				\
			_exit(99);						\
		}								\
	} while (0)

struct stuck_map {
	int fd;
	__u32 ioasid;
	void *va;
	int ret;
};

static void *stuck_mapper(void *p)
{
	struct stuck_map *s = p;

	s->ret = map_at(s->fd, s->ioasid, s->va, (FAST_PAGES + SLOW_PAGES) * PG, IOVA_STUCK, RW);
	return NULL;
}

/* Become UID_SLOW, with no capabilities, under a limit of SLOW_LIMIT_PAGES. */
static int drop_to_slow_user(void)
{
	struct rlimit lim = { SLOW_LIMIT_PAGES * PG, SLOW_LIMIT_PAGES * PG };

	if (setrlimit(RLIMIT_MEMLOCK, &lim) || setgroups(0, NULL) || setgid(UID_SLOW) ||
	    setuid(UID_SLOW))
		return -1;
	return 0;
}

/*
 * The child: opens the context and a userfaultfd as root (a userfaultfd that
 * handles the kernel's faults needs privilege), then becomes an unprivileged
 * user so that its pins are charged. One thread maps FAST_PAGES present pages
 * followed by SLOW_PAGES pages whose first fault waits on the userfaultfd,
 * which nobody reads. Once that fault is pending, the main thread maps and
 * unmaps another buffer on the same IOASID, and writes to `out` how long that
 * took, then waits to be killed.
 */
static void slow_child(int out)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct stuck_map s = { 0 };
	struct pollfd pfd;
	pthread_t th;
	uint8_t *buf, *other;
	double t0, took;
	__u64 bytes = 0;
	int uffd, ret;

	s.fd = open("/dev/ioasid", O_RDWR);
	CHECK(s.fd >= 0);
	CHECK(!alloc_ioasid(s.fd, &s.ioasid));
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	CHECK(uffd >= 0);
	CHECK(!ioctl(uffd, UFFDIO_API, &api));
	buf = mmap(NULL, (FAST_PAGES + SLOW_PAGES) * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	other = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED && other != MAP_FAILED);
	memset(buf, 1, FAST_PAGES * PG);
	memset(other, 2, PG);
	reg.range.start = (uintptr_t)buf + FAST_PAGES * PG;
	reg.range.len = SLOW_PAGES * PG;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	CHECK(!ioctl(uffd, UFFDIO_REGISTER, &reg));
	CHECK(!drop_to_slow_user());

	s.va = buf;
	CHECK(!pthread_create(&th, NULL, stuck_mapper, &s));
	/* The fault is pending once the userfaultfd is readable: the map is inside GUP. */
	pfd.fd = uffd;
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 60000) == 1);

	t0 = st_now();
	ret = map_at(s.fd, s.ioasid, other, PG, IOVA_OTHER, RW);
	if (!ret)
		ret = unmap(s.fd, s.ioasid, IOVA_OTHER, PG, &bytes);
	took = st_now() - t0;
	CHECK(!ret && bytes == PG);
	CHECK(write(out, &took, sizeof(took)) == sizeof(took));
	for (;;)
		pause();
}

/* What a fresh process of UID_SLOW can still pin in one map: the whole limit if uncharged. */
static int slow_user_can_pin_its_limit(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return 0;
	if (pid == 0) {
		int fd = open("/dev/ioasid", O_RDWR);
		__u32 id;
		uint8_t *b = mmap(NULL, SLOW_LIMIT_PAGES * PG, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		CHECK(fd >= 0 && b != MAP_FAILED && !alloc_ioasid(fd, &id));
		CHECK(!drop_to_slow_user());
		CHECK(!map_at(fd, id, b, SLOW_LIMIT_PAGES * PG, IOVA_STUCK, RW));
		/* And not one page more. */
		CHECK(map_at(fd, id, b, PG, IOVA_OTHER, RW) == -ENOMEM);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* VmPin of process `pid`, in kB, or -1. */
static long vmpin_kb_of(pid_t pid)
{
	char path[64], line[256];
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPin:", 6))
			val = strtol(line + 6, NULL, 10);
	fclose(f);
	return val;
}

TEST(stuck_map_stalls_no_other_thread_and_dies_clean)
{
	long pinned0 = pinned_pages(), pins0 = st_foll_pins(), pinned_mid = -1, vmpin_mid = -1;
	double took = -1, t0;
	int pipefd[2], status;
	pid_t pid, holder;

	ASSERT_LE(0, pinned0);
	pid = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (pid < 0 && errno == ENOSYS)
		SKIP(return, "the kernel has no userfaultfd (CONFIG_USERFAULTFD)");
	ASSERT_LE(0, pid);
	close(pid);
	/*
	 * A process of UID_SLOW alive throughout keeps its user (and the user's
	 * locked_vm) the same one: a charge left behind would still show after the kill.
	 */
	holder = fork();
	ASSERT_LE(0, holder);
	if (holder == 0) {
		CHECK(!drop_to_slow_user());
		for (;;)
			pause();
	}
	ASSERT_TRUE(slow_user_can_pin_its_limit());
	ASSERT_EQ(pinned0, pinned_pages());
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(pipefd[0]);
		slow_child(pipefd[1]);
		_exit(98);
	}
	close(pipefd[1]);
	/* The other thread's map and unmap come back within the bound, while the map is stuck. */
	t0 = st_now();
	ASSERT_EQ(sizeof(took), read(pipefd[0], &took, sizeof(took)));
	TH_LOG("map+unmap by another thread while a map is stuck in a fault: %.3f s (waited %.1f s)",
	       took, st_now() - t0);
	EXPECT_GT(BOUND_S, took);
	/* Still stuck, with the present pages pinned (pinning goes on outside the lock). */
	usleep(200000);
	ASSERT_EQ(0, waitpid(pid, &status, WNOHANG));
	pinned_mid = pinned_pages();
	vmpin_mid = vmpin_kb_of(pid);
	EXPECT_EQ(pinned0 + FAST_PAGES, pinned_mid);
	EXPECT_EQ(FAST_PAGES * PG / 1024, vmpin_mid);

	/* SIGKILL ends the stuck map: nothing stays pinned or charged. */
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	EXPECT_EQ(pinned0, pinned_pages());
	EXPECT_EQ(pins0, st_foll_pins());
	EXPECT_TRUE(slow_user_can_pin_its_limit());
	EXPECT_EQ(pinned0, pinned_pages());
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
}

TEST_HARNESS_MAIN
