// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz_test: a boundary and sequence fuzzer of every /dev/ioasid ioctl.
 *
 * What it finds, by itself:
 *  - errnos the documentation does not list for an ioctl (each ioctl has its
 *    own table, ioctl_docs in ioasid_state.h, taken from
 *    Documentation/userspace-api/ioasid.rst), named with the call's fields;
 *  - crashes, panics (Rust overflow checks), hangs: the fuzzing runs in a
 *    watched process, and when it dies or hangs the last call is printed;
 *  - requests that succeed although the documentation says they cannot:
 *    mappings that wrap, are unaligned, overlap, lie outside an attached
 *    device's aperture or inside its reserved regions (its MSI window:
 *    an isolation break), writable mappings of read-only memory, binding a
 *    device another context owns, attaching a group to two IOASIDs;
 *  - state that goes astray: a model of the context (IOASIDs live and parked,
 *    devices, attachments, mappings) is compared with fdinfo after every
 *    call, every IOASID_UNMAP must report exactly the bytes the model says,
 *    and after every batch, with everything unmapped, the IOPTE counts, the
 *    pinned pages (vmstat, VmLck+VmPin, debugfs pinned_pages where it exists)
 *    and the live contexts must be back at their baseline;
 *  - interference with another context: a second process owns the edu device
 *    00:05.0 and, after every batch, moves bytes through its IOMMU mapping by
 *    DMA; they must arrive intact.
 *
 * How: first a deterministic sweep, with and without a device attached, of
 * every ioctl's argsz, tail bytes, flag bits (each undefined bit and every
 * defined combination), reserved fields and each numeric field over boundary
 * values (0, 1, page-1, page, page+1, 2^31, 2^32, 2^63, 2^64-page, 2^64-1,
 * the aperture's, the reserved regions' and the usable ranges' edges, the
 * existing mappings' edges), and IOASID_MAP/UNMAP over the cross product of
 * their address fields, with kernel-chosen and fixed IOVAs; then random
 * sequences of calls from a seeded PRNG.
 *
 * Environment: IOASID_FUZZ_SEED (default 20261123), IOASID_FUZZ_ITERS (random
 * calls, default 12000), IOASID_FUZZ_TRACE=1 prints every call before it is
 * made, IOASID_FUZZ_SKIP_OVERFLOW=1 leaves out the kernel-chosen-IOVA MAP
 * whose length plus the address's offset in 2 MiB overflows 64 bits (it
 * panics the current module; for working on other defects meanwhile; never
 * set by default).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/ioasid.h>

#include "ioasid_state.h"
#include "kselftest_harness.h"

#define CHECKER_BDF "0000:00:05.0"
#define CHECKER_SRC 0x100000
#define CHECKER_DST 0x200000

#define MAX_IOASIDS 128
#define MAX_MAPS 48
#define MAX_DEVS 64
#define MAX_REGIONS 16
#define BUF_PAGES 64
#define SCRATCH_RANGES 512
#define BATCH 200
#define DEFAULT_ITERS 12000

/* Must fail, with any documented errno (several rules are broken at once). */
#define ANY_FAIL (-1)

/* --- the model of the context ------------------------------------------- */

struct m_map {
	__u64 iova, len;
};

struct m_ioasid {
	__u32 id;
	int coherent;
	/* Freed while devices were attached: the ID is in use until they let go. */
	int parked;
	int nmaps;
	struct m_map maps[MAX_MAPS];
};

struct m_dev {
	__u32 id;		/* 0: not bound in this context */
	__u32 attached;		/* the IOASID it is attached to, 0 if none */
	int have_info;
	__u64 ap_start, ap_last, caps;
	int nres;
	struct ioasid_iova_range res[MAX_REGIONS];
};

/* The last call made, in shared memory: printed if the fuzzing process dies or hangs. */
struct lastcall {
	unsigned long nr;
	unsigned char arg[64];
	long seq;
	char phase[64];
	long calls, succeeded, failures;
};

struct fz {
	struct __test_metadata *md;
	int fd;
	struct rng rng;
	struct m_ioasid io[MAX_IOASIDS];
	int nio;
	__u32 stale[16];
	int nstale;
	struct pci_dev_info pci[MAX_DEVS];
	int npci;
	struct m_dev dev[MAX_DEVS];
	int checker_group;
	__u32 focus;		/* the IOASID the sweeps map into */
	int focus_dev;		/* the pool device attached to it, or -1 */
	uint8_t *buf, *ro, *hole;
	size_t buf_len;
	struct ioasid_iova_range *scratch;
	unsigned char *arg;
	struct lastcall *last;
	int req_fd, resp_fd;
	int skip_overflow, trace, need_resync;
	long failures;
	struct global_state base;
};

#define FZ_FAIL(f, fmt, ...) do {							\
	struct __test_metadata *_metadata = (f)->md;					\
	(f)->failures++;								\
	(f)->last->failures = (f)->failures;						\
	_metadata->exit_code = KSFT_FAIL;						\
	if ((f)->failures <= 40)							\
		fprintf(stderr, "# FAIL [%s, call %ld] " fmt "\n", (f)->last->phase,	\
			(f)->last->seq, ##__VA_ARGS__);					\
	else if ((f)->failures == 41)							\
		fprintf(stderr, "# (further failures not shown)\n");			\
} while (0)

static const __u64 B64[] = {
	0, 1, PG - 1, PG, PG + 1, 1ull << 31, 1ull << 32, 1ull << 63, -PG, ~0ull,
};
#define NB64 (sizeof(B64) / sizeof(B64[0]))

static const __u32 B32[] = {
	0, 1, PG - 1, PG, PG + 1, 1u << 31, 0xffffffffu, IOASID_ID_MAX, 2, 3, 64,
};
#define NB32 (sizeof(B32) / sizeof(B32[0]))

static const __u8 B8[] = { 0, 1, 0x7f, 0x80, 0xff, 5 << 3, 6 << 3, (6 << 3) | 1 };
#define NB8 (sizeof(B8) / sizeof(B8[0]))

static struct m_ioasid *m_find(struct fz *f, __u32 id)
{
	for (int i = 0; i < f->nio; i++)
		if (f->io[i].id == id)
			return &f->io[i];
	return NULL;
}

static int m_live(struct fz *f, __u32 id)
{
	struct m_ioasid *m = id ? m_find(f, id) : NULL;

	return m && !m->parked;
}

static int m_dev_by_id(struct fz *f, __u32 dev_id)
{
	for (int i = 0; i < f->npci; i++)
		if (dev_id && f->dev[i].id == dev_id)
			return i;
	return -1;
}

static int m_pool(struct fz *f, __u32 seg, __u8 bus, __u8 devfn)
{
	for (int i = 0; i < f->npci; i++)
		if (f->pci[i].seg == seg && f->pci[i].bus == bus && f->pci[i].devfn == devfn)
			return i;
	return -1;
}

static int m_attached_to(struct fz *f, __u32 id)
{
	int n = 0;

	for (int i = 0; i < f->npci; i++)
		n += f->dev[i].id && f->dev[i].attached == id;
	return n;
}

static void m_stale(struct fz *f, __u32 id)
{
	f->stale[f->nstale++ % 16] = id;
}

static void m_remove(struct fz *f, struct m_ioasid *m)
{
	*m = f->io[--f->nio];
}

/* A parked IOASID whose last device let go: its ID is released. */
static void m_release_parked(struct fz *f, __u32 id)
{
	struct m_ioasid *m = m_find(f, id);

	if (m && m->parked && !m_attached_to(f, id))
		m_remove(f, m);
}

static __u64 m_mapped(struct m_ioasid *m)
{
	__u64 sum = 0;

	for (int i = 0; i < m->nmaps; i++)
		sum += m->maps[i].len;
	return sum;
}

static int overlaps(__u64 a, __u64 a_last, __u64 b, __u64 b_last)
{
	return a <= b_last && b <= a_last;
}

/* Whether [iova, last] is usable by device i: inside its aperture, clear of its reserved regions. */
static int dev_allows(struct fz *f, int i, __u64 iova, __u64 last, char *why, size_t n)
{
	struct m_dev *d = &f->dev[i];

	if (!d->have_info)
		return 1;
	if (iova < d->ap_start || last > d->ap_last) {
		snprintf(why, n, "outside the aperture [%#llx, %#llx] of %s",
			 (unsigned long long)d->ap_start, (unsigned long long)d->ap_last,
			 f->pci[i].bdf);
		return 0;
	}
	for (int r = 0; r < d->nres; r++) {
		if (overlaps(iova, last, d->res[r].start, d->res[r].last)) {
			snprintf(why, n, "in the reserved region [%#llx, %#llx] of %s",
				 (unsigned long long)d->res[r].start,
				 (unsigned long long)d->res[r].last, f->pci[i].bdf);
			return 0;
		}
	}
	return 1;
}

/* Whether [iova, last] is usable in IOASID id, given every device attached to it. */
static int ioasid_allows(struct fz *f, __u32 id, __u64 iova, __u64 last, char *why, size_t n)
{
	for (int i = 0; i < f->npci; i++)
		if (f->dev[i].id && f->dev[i].attached == id && !dev_allows(f, i, iova, last, why, n))
			return 0;
	return 1;
}

/* --- the context: open, resync ---------------------------------------------- */

static void fz_open(struct fz *f)
{
	struct __test_metadata *_metadata = f->md;

	f->fd = open("/dev/ioasid", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, f->fd);
	f->nio = 0;
	f->focus = 0;
	f->focus_dev = -1;
	for (int i = 0; i < f->npci; i++)
		f->dev[i].id = f->dev[i].attached = 0;
}

/* After a mismatch the model cannot be trusted: start again with a new context. */
static void fz_resync(struct fz *f)
{
	close(f->fd);
	fz_open(f);
	f->need_resync = 0;
}

static void fz_counts(struct fz *f)
{
	struct ctx_counts c;
	long ids = 0, devs = 0;

	if (ctx_counts(f->fd, &c)) {
		FZ_FAIL(f, "fdinfo of the context cannot be read");
		return;
	}
	ids = f->nio;
	for (int i = 0; i < f->npci; i++)
		devs += f->dev[i].id != 0;
	if (c.ids != ids || c.devices != devs) {
		FZ_FAIL(f, "after %s: fdinfo says %ld IDs and %ld devices, the model %ld and %ld",
			ioctl_name(f->last->nr), c.ids, c.devices, ids, devs);
		f->need_resync = 1;
	}
}

/* --- one call: the documented errnos, the model ------------------------------ */

static void model_apply(struct fz *f, unsigned long nr, const void *in, const void *out, int ret);
static void dev_fetch_info(struct fz *f, int i);

static void fz_describe(unsigned long nr, const void *arg, char *buf, size_t n)
{
	describe_arg(nr, arg, buf, n);
}

/*
 * Makes the call and checks it: expect 0 means the header is valid (the
 * model decides what may happen); an errno means exactly that one must come
 * back; ANY_FAIL that it must fail.
 */
static int fz_do(struct fz *f, unsigned long nr, void *arg, int expect)
{
	unsigned char before[64];
	char desc[256];
	int ret;

	memcpy(before, arg, sizeof(before));
	f->last->nr = nr;
	memcpy(f->last->arg, arg, sizeof(f->last->arg));
	f->last->seq++;
	if (f->trace) {
		fz_describe(nr, arg, desc, sizeof(desc));
		fprintf(stderr, "# call %ld: %s %s\n", f->last->seq, ioctl_name(nr), desc);
	}
	ret = xioctl(f->fd, nr, arg);
	f->last->calls++;
	f->last->succeeded += !ret;
	if (ret && !errno_documented(nr, -ret)) {
		fz_describe(nr, before, desc, sizeof(desc));
		FZ_FAIL(f, "%s %s: undocumented errno %d (%s)", ioctl_name(nr), desc, -ret,
			strerror(-ret));
	}
	if (expect > 0 && ret != -expect) {
		fz_describe(nr, before, desc, sizeof(desc));
		FZ_FAIL(f, "%s %s: returned %d (%s), the extension rules say %s", ioctl_name(nr),
			desc, ret, ret ? strerror(-ret) : "success", strerror(expect));
	}
	if (expect == ANY_FAIL && !ret) {
		fz_describe(nr, before, desc, sizeof(desc));
		FZ_FAIL(f, "%s %s: succeeded with a header the extension rules refuse",
			ioctl_name(nr), desc);
	}
	if (expect == 0 || !ret)
		model_apply(f, nr, before, arg, expect == 0 ? ret : (ret ? ret : 0));
	fz_counts(f);
	if (f->need_resync)
		fz_resync(f);
	return ret;
}

#define MISMATCH(f, nr, in, fmt, ...) do {						\
	char _d[256];									\
	fz_describe(nr, in, _d, sizeof(_d));						\
	FZ_FAIL(f, "%s %s: " fmt, ioctl_name(nr), _d, ##__VA_ARGS__);			\
	(f)->need_resync = 1;								\
} while (0)

static void apply_alloc(struct fz *f, const struct ioasid_alloc *in,
			const struct ioasid_alloc *out, int ret)
{
	struct m_ioasid *m;

	if (ret)
		return;
	if (!out->out_ioasid || out->out_ioasid > IOASID_ID_MAX || m_find(f, out->out_ioasid)) {
		MISMATCH(f, IOASID_ALLOC, in, "returned ID %u, which is 0, too large or in use",
			 out->out_ioasid);
		return;
	}
	if (f->nio == MAX_IOASIDS) {
		/* The model is full: give it back. */
		struct ioasid_free fr = { .argsz = sizeof(fr), .ioasid = out->out_ioasid };

		if (xioctl(f->fd, IOASID_FREE, &fr))
			MISMATCH(f, IOASID_FREE, &fr, "a new IOASID cannot be freed");
		return;
	}
	m = &f->io[f->nio++];
	memset(m, 0, sizeof(*m));
	m->id = out->out_ioasid;
	m->coherent = !!(in->flags & IOASID_ALLOC_COHERENT);
}

static void apply_free(struct fz *f, const struct ioasid_free *in, int ret)
{
	struct m_ioasid *m = m_find(f, in->ioasid);

	if (m && !m->parked) {
		if (ret) {
			MISMATCH(f, IOASID_FREE, in, "a live IOASID cannot be freed: %s",
				 strerror(-ret));
			return;
		}
		m_stale(f, m->id);
		if (m->id == f->focus)
			f->focus = 0;
		if (m_attached_to(f, m->id)) {
			m->parked = 1;
			m->nmaps = 0;
		} else {
			m_remove(f, m);
		}
		return;
	}
	if (ret != -ENOENT)
		MISMATCH(f, IOASID_FREE, in, "freeing an ID that names nothing returned %d, not ENOENT",
			 ret);
}

static void apply_bind(struct fz *f, const struct ioasid_device_bind *in,
		       const struct ioasid_device_bind *out, int ret)
{
	int p = m_pool(f, in->pci_segment, in->pci_bus, in->pci_devfn);

	if (ret) {
		if (p >= 0 && f->dev[p].id && ret != -EEXIST)
			MISMATCH(f, IOASID_DEVICE_BIND, in,
				 "a device bound in this context already: %d, not EEXIST", ret);
		if (p >= 0 && !f->dev[p].id && f->pci[p].group >= 0 &&
		    f->pci[p].group == f->checker_group && ret != -EBUSY && ret != -EPERM)
			MISMATCH(f, IOASID_DEVICE_BIND, in,
				 "a device whose group another context owns: %d, not EBUSY", ret);
		if (p < 0 && ret != -ENODEV && ret != -EPERM)
			MISMATCH(f, IOASID_DEVICE_BIND, in, "no such device: %d, not ENODEV", ret);
		return;
	}
	if (p < 0) {
		MISMATCH(f, IOASID_DEVICE_BIND, in, "bound a device that does not exist");
		return;
	}
	if (f->dev[p].id) {
		MISMATCH(f, IOASID_DEVICE_BIND, in, "bound a device twice (it is device %u)",
			 f->dev[p].id);
		return;
	}
	if (f->pci[p].group == f->checker_group) {
		MISMATCH(f, IOASID_DEVICE_BIND, in,
			 "bound %s, whose IOMMU group another context owns: isolation broken",
			 f->pci[p].bdf);
		return;
	}
	if (f->pci[p].has_driver) {
		MISMATCH(f, IOASID_DEVICE_BIND, in, "bound %s, which is not handed to ioasid",
			 f->pci[p].bdf);
		return;
	}
	if (!out->out_dev_id || m_dev_by_id(f, out->out_dev_id) >= 0) {
		MISMATCH(f, IOASID_DEVICE_BIND, in, "device ID %u is 0 or in use", out->out_dev_id);
		return;
	}
	if ((int)out->out_group_id != f->pci[p].group)
		MISMATCH(f, IOASID_DEVICE_BIND, in, "group %u, sysfs says %d", out->out_group_id,
			 f->pci[p].group);
	f->dev[p].id = out->out_dev_id;
	f->dev[p].attached = 0;
	if (!f->dev[p].have_info)
		dev_fetch_info(f, p);
}

static void apply_unbind(struct fz *f, const struct ioasid_device_unbind *in, int ret)
{
	int i = m_dev_by_id(f, in->dev_id);
	__u32 was;

	if (i < 0) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_DEVICE_UNBIND, in, "unknown device: %d, not ENOENT", ret);
		return;
	}
	if (ret) {
		MISMATCH(f, IOASID_DEVICE_UNBIND, in, "a bound device cannot be unbound: %s",
			 strerror(-ret));
		return;
	}
	was = f->dev[i].attached;
	f->dev[i].id = f->dev[i].attached = 0;
	if (i == f->focus_dev)
		f->focus_dev = -1;
	if (was)
		m_release_parked(f, was);
}

static void apply_attach(struct fz *f, const struct ioasid_device_attach *in, int ret)
{
	int i = m_dev_by_id(f, in->dev_id);
	struct m_ioasid *m = m_find(f, in->ioasid);
	char why[160];

	if (i < 0) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_DEVICE_ATTACH, in, "unknown device: %d, not ENOENT", ret);
		return;
	}
	if (f->dev[i].attached) {
		if (m_live(f, in->ioasid) && ret != -EBUSY)
			MISMATCH(f, IOASID_DEVICE_ATTACH, in,
				 "a device attached already: %d, not EBUSY", ret);
		if (!m_live(f, in->ioasid) && ret != -EBUSY && ret != -ENOENT)
			MISMATCH(f, IOASID_DEVICE_ATTACH, in,
				 "an attached device, an ID that names nothing: %d", ret);
		return;
	}
	if (ret) {
		if (!m_live(f, in->ioasid) && ret != -ENOENT && ret != -EXDEV)
			MISMATCH(f, IOASID_DEVICE_ATTACH, in,
				 "an ID that names nothing: %d, not ENOENT", ret);
		return;
	}
	if (!m || m->parked) {
		MISMATCH(f, IOASID_DEVICE_ATTACH, in, "attached to an IOASID that is not live");
		return;
	}
	for (int j = 0; j < f->npci; j++) {
		if (j != i && f->dev[j].id && f->pci[j].group == f->pci[i].group &&
		    f->dev[j].attached && f->dev[j].attached != in->ioasid) {
			MISMATCH(f, IOASID_DEVICE_ATTACH, in,
				 "%s attached to IOASID %u while %s of its group is attached to IOASID %u",
				 f->pci[i].bdf, in->ioasid, f->pci[j].bdf, f->dev[j].attached);
			return;
		}
	}
	for (int k = 0; k < m->nmaps; k++) {
		__u64 s = m->maps[k].iova, l = s + m->maps[k].len - 1;

		if (!dev_allows(f, i, s, l, why, sizeof(why))) {
			MISMATCH(f, IOASID_DEVICE_ATTACH, in,
				 "attached although mapping [%#llx, %#llx] is %s (ERANGE expected)",
				 (unsigned long long)s, (unsigned long long)l, why);
			return;
		}
	}
	if (m->coherent && f->dev[i].have_info &&
	    !(f->dev[i].caps & IOASID_DEVICE_CAP_ENFORCE_COHERENCY)) {
		MISMATCH(f, IOASID_DEVICE_ATTACH, in,
			 "a coherent IOASID took a device that cannot enforce coherency");
		return;
	}
	f->dev[i].attached = in->ioasid;
}

static void apply_detach(struct fz *f, const struct ioasid_device_detach *in, int ret)
{
	int i = m_dev_by_id(f, in->dev_id);
	__u32 was;

	if (i < 0) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_DEVICE_DETACH, in, "unknown device: %d, not ENOENT", ret);
		return;
	}
	if (!f->dev[i].attached) {
		if (ret != -EINVAL)
			MISMATCH(f, IOASID_DEVICE_DETACH, in,
				 "a device that is not attached: %d, not EINVAL", ret);
		return;
	}
	if (ret) {
		MISMATCH(f, IOASID_DEVICE_DETACH, in, "an attached device cannot be detached: %s",
			 strerror(-ret));
		return;
	}
	was = f->dev[i].attached;
	f->dev[i].attached = 0;
	m_release_parked(f, was);
}

static void apply_map(struct fz *f, const struct ioasid_map *in, const struct ioasid_map *out,
		      int ret)
{
	struct m_ioasid *m = m_find(f, in->ioasid);
	int fixed = in->flags & IOASID_MAP_FIXED_IOVA;
	__u64 iova = fixed ? in->iova : out->iova, last;
	uintptr_t va = in->user_va;
	char why[160];

	if (ret) {
		if (!m_live(f, in->ioasid) && (in->flags & (IOASID_MAP_READ | IOASID_MAP_WRITE)) &&
		    ret != -ENOENT)
			MISMATCH(f, IOASID_MAP, in, "an ID that names nothing: %d, not ENOENT", ret);
		if (ret == -EEXIST && fixed && m && !m->parked && in->length &&
		    in->iova + (in->length - 1) >= in->iova) {
			int hit = 0;

			for (int k = 0; k < m->nmaps; k++)
				hit |= overlaps(in->iova, in->iova + in->length - 1, m->maps[k].iova,
						m->maps[k].iova + m->maps[k].len - 1);
			if (!hit)
				MISMATCH(f, IOASID_MAP, in, "EEXIST, but nothing is mapped there");
		}
		return;
	}
	if (!m || m->parked) {
		MISMATCH(f, IOASID_MAP, in, "mapped into an IOASID that is not live");
		return;
	}
	if (!(in->flags & (IOASID_MAP_READ | IOASID_MAP_WRITE)) || !in->length ||
	    in->length % PG || in->user_va % PG || iova % PG) {
		MISMATCH(f, IOASID_MAP, in, "mapped without access, or unaligned (iova %#llx)",
			 (unsigned long long)iova);
		return;
	}
	if (in->user_va + (in->length - 1) < in->user_va || iova + (in->length - 1) < iova) {
		MISMATCH(f, IOASID_MAP, in, "mapped a range that wraps (iova %#llx)",
			 (unsigned long long)iova);
		return;
	}
	if (fixed && out->iova != in->iova)
		MISMATCH(f, IOASID_MAP, in, "a fixed IOVA came back changed: %#llx",
			 (unsigned long long)out->iova);
	last = iova + in->length - 1;
	for (int k = 0; k < m->nmaps; k++) {
		if (overlaps(iova, last, m->maps[k].iova, m->maps[k].iova + m->maps[k].len - 1)) {
			MISMATCH(f, IOASID_MAP, in,
				 "[%#llx, %#llx] overlaps the mapping at %#llx (EEXIST expected)",
				 (unsigned long long)iova, (unsigned long long)last,
				 (unsigned long long)m->maps[k].iova);
			return;
		}
	}
	if (!ioasid_allows(f, in->ioasid, iova, last, why, sizeof(why))) {
		MISMATCH(f, IOASID_MAP, in, "mapped [%#llx, %#llx], which is %s: isolation broken",
			 (unsigned long long)iova, (unsigned long long)last, why);
		/* Take it away again, it must not stay. */
		unmap(f->fd, in->ioasid, iova, in->length, NULL);
		return;
	}
	if ((in->flags & IOASID_MAP_WRITE) && va >= (uintptr_t)f->ro &&
	    va < (uintptr_t)f->ro + 4 * PG) {
		MISMATCH(f, IOASID_MAP, in, "mapped read-only memory writable for the device");
		unmap(f->fd, in->ioasid, iova, in->length, NULL);
		return;
	}
	if (m->nmaps == MAX_MAPS) {
		__u64 done = 0;

		if (unmap(f->fd, in->ioasid, iova, in->length, &done) || done != in->length)
			MISMATCH(f, IOASID_UNMAP, in, "a new mapping cannot be unmapped");
		return;
	}
	m->maps[m->nmaps].iova = iova;
	m->maps[m->nmaps].len = in->length;
	m->nmaps++;
}

static void apply_unmap(struct fz *f, const struct ioasid_unmap *in,
			const struct ioasid_unmap *out, int ret)
{
	struct m_ioasid *m = m_find(f, in->ioasid);
	__u64 last = in->iova + in->length - 1, sum = 0;
	int inside = 0, cut = 0, exact = 0;

	if (!m || m->parked) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_UNMAP, in, "an ID that names nothing: %d, not ENOENT", ret);
		return;
	}
	if (in->flags & IOASID_UNMAP_ALL) {
		if (in->iova || in->length) {
			if (ret != -EINVAL)
				MISMATCH(f, IOASID_UNMAP, in,
					 "IOASID_UNMAP_ALL with an IOVA or length: %d, not EINVAL", ret);
			return;
		}
		if (ret && !(ret == -ENOENT && !m->nmaps)) {
			MISMATCH(f, IOASID_UNMAP, in, "IOASID_UNMAP_ALL failed: %s", strerror(-ret));
			return;
		}
		if (!ret && out->out_unmapped != m_mapped(m))
			MISMATCH(f, IOASID_UNMAP, in, "unmapped %#llx bytes of %#llx",
				 (unsigned long long)out->out_unmapped,
				 (unsigned long long)m_mapped(m));
		m->nmaps = 0;
		return;
	}
	if (!in->length || in->length % PG || in->iova % PG || last < in->iova) {
		if (!ret)
			MISMATCH(f, IOASID_UNMAP, in, "a zero, unaligned or wrapping range succeeded");
		else if (ret != -EINVAL)
			MISMATCH(f, IOASID_UNMAP, in,
				 "a zero, unaligned or wrapping range: %d, not EINVAL", ret);
		return;
	}
	for (int k = 0; k < m->nmaps; k++) {
		__u64 s = m->maps[k].iova, l = s + m->maps[k].len - 1;

		if (!overlaps(s, l, in->iova, last))
			continue;
		if (s < in->iova || l > last)
			cut = 1;
		else
			inside++, sum += m->maps[k].len;
		exact |= s == in->iova && l == last;
	}
	if (cut) {
		if (ret != -EINVAL)
			MISMATCH(f, IOASID_UNMAP, in, "a range that cuts a mapping: %d, not EINVAL",
				 ret);
		return;
	}
	if (!inside) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_UNMAP, in, "a range that holds no mapping: %d, not ENOENT",
				 ret);
		return;
	}
	if (ret) {
		MISMATCH(f, IOASID_UNMAP, in, "%s of %d whole mapping(s)%s failed: %s",
			 "unmapping", inside, exact ? " (exactly one)" : "", strerror(-ret));
		return;
	}
	if (out->out_unmapped != sum)
		MISMATCH(f, IOASID_UNMAP, in, "unmapped %#llx bytes, the mappings inside hold %#llx",
			 (unsigned long long)out->out_unmapped, (unsigned long long)sum);
	for (int k = 0; k < m->nmaps;) {
		__u64 s = m->maps[k].iova;

		if (overlaps(s, s + m->maps[k].len - 1, in->iova, last))
			m->maps[k] = m->maps[--m->nmaps];
		else
			k++;
	}
}

/* The array an IOVA_RANGES or GET_INFO call wrote, when it points at the scratch array. */
static int scratch_ok(struct fz *f, __u64 uptr, __u32 cap, __u32 count)
{
	return uptr == (uintptr_t)f->scratch && count <= cap && cap <= SCRATCH_RANGES;
}

static void apply_ranges(struct fz *f, const struct ioasid_iova_ranges *in,
			 const struct ioasid_iova_ranges *out, int ret)
{
	struct m_ioasid *m = m_find(f, in->ioasid);
	int attached;
	char why[160];

	if (!m || m->parked) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_IOVA_RANGES, in, "an ID that names nothing: %d, not ENOENT",
				 ret);
		return;
	}
	if (ret == -EMSGSIZE) {
		if (out->num_ranges <= in->num_ranges)
			MISMATCH(f, IOASID_IOVA_RANGES, in, "EMSGSIZE, with %u ranges for %u",
				 out->num_ranges, in->num_ranges);
		return;
	}
	if (ret)
		return;
	if (out->num_ranges > in->num_ranges) {
		MISMATCH(f, IOASID_IOVA_RANGES, in, "%u ranges for %u, and no EMSGSIZE",
			 out->num_ranges, in->num_ranges);
		return;
	}
	attached = m_attached_to(f, in->ioasid);
	if (!attached && out->out_pgsize_bitmap)
		MISMATCH(f, IOASID_IOVA_RANGES, in, "page sizes %#llx without a device",
			 (unsigned long long)out->out_pgsize_bitmap);
	if (attached && !(out->out_pgsize_bitmap & PG))
		MISMATCH(f, IOASID_IOVA_RANGES, in, "page sizes %#llx with a device attached",
			 (unsigned long long)out->out_pgsize_bitmap);
	if (!scratch_ok(f, in->ranges_uptr, in->num_ranges, out->num_ranges))
		return;
	if (!attached && (out->num_ranges != 1 || f->scratch[0].start || ~f->scratch[0].last)) {
		MISMATCH(f, IOASID_IOVA_RANGES, in, "without a device: %u ranges, not [0, 2^64-1]",
			 out->num_ranges);
		return;
	}
	for (__u32 k = 0; k < out->num_ranges; k++) {
		struct ioasid_iova_range *r = &f->scratch[k];

		if (r->start > r->last || (k && r->start <= f->scratch[k - 1].last)) {
			MISMATCH(f, IOASID_IOVA_RANGES, in, "range %u [%#llx, %#llx] is empty or out of order",
				 k, (unsigned long long)r->start, (unsigned long long)r->last);
			return;
		}
		if (!ioasid_allows(f, in->ioasid, r->start, r->last, why, sizeof(why))) {
			MISMATCH(f, IOASID_IOVA_RANGES, in, "range [%#llx, %#llx] is %s",
				 (unsigned long long)r->start, (unsigned long long)r->last, why);
			return;
		}
	}
}

static void apply_dev_info(struct fz *f, const struct ioasid_device_info *in,
			   const struct ioasid_device_info *out, int ret)
{
	int i = m_dev_by_id(f, in->dev_id);

	if (i < 0) {
		if (ret != -ENOENT)
			MISMATCH(f, IOASID_DEVICE_GET_INFO, in, "unknown device: %d, not ENOENT", ret);
		return;
	}
	if (ret == -EMSGSIZE && out->num_regions <= in->num_regions)
		MISMATCH(f, IOASID_DEVICE_GET_INFO, in, "EMSGSIZE with %u regions for %u",
			 out->num_regions, in->num_regions);
	if (!ret && out->num_regions > in->num_regions)
		MISMATCH(f, IOASID_DEVICE_GET_INFO, in, "%u regions for %u, and no EMSGSIZE",
			 out->num_regions, in->num_regions);
	if (!ret && f->dev[i].have_info &&
	    (out->out_aperture_start != f->dev[i].ap_start ||
	     out->out_aperture_last != f->dev[i].ap_last || out->num_regions != (__u32)f->dev[i].nres))
		MISMATCH(f, IOASID_DEVICE_GET_INFO, in, "the device's aperture or regions changed");
}

static void apply_coherency(struct fz *f, const struct ioasid_coherency *in, int ret)
{
	if (in->ioasid && !m_live(f, in->ioasid) && ret != -ENOENT)
		MISMATCH(f, IOASID_GET_COHERENCY, in, "an ID that names nothing: %d, not ENOENT", ret);
	if ((!in->ioasid || m_live(f, in->ioasid)) && ret)
		MISMATCH(f, IOASID_GET_COHERENCY, in, "failed: %s", strerror(-ret));
}

static void model_apply(struct fz *f, unsigned long nr, const void *in, const void *out, int ret)
{
	switch (nr) {
	case IOASID_ALLOC: apply_alloc(f, in, out, ret); break;
	case IOASID_FREE: apply_free(f, in, ret); break;
	case IOASID_DEVICE_BIND: apply_bind(f, in, out, ret); break;
	case IOASID_DEVICE_UNBIND: apply_unbind(f, in, ret); break;
	case IOASID_DEVICE_ATTACH: apply_attach(f, in, ret); break;
	case IOASID_DEVICE_DETACH: apply_detach(f, in, ret); break;
	case IOASID_MAP: apply_map(f, in, out, ret); break;
	case IOASID_UNMAP: apply_unmap(f, in, out, ret); break;
	case IOASID_IOVA_RANGES: apply_ranges(f, in, out, ret); break;
	case IOASID_DEVICE_GET_INFO: apply_dev_info(f, in, out, ret); break;
	case IOASID_GET_COHERENCY: apply_coherency(f, in, ret); break;
	case IOASID_GET_INFO:
		if (ret)
			MISMATCH(f, nr, in, "failed: %s", strerror(-ret));
		break;
	}
}

/* A bound device's aperture, reserved regions and capabilities, for the geometry checks. */
static void dev_fetch_info(struct fz *f, int i)
{
	struct ioasid_device_info info = {
		.argsz = sizeof(info), .dev_id = f->dev[i].id, .num_regions = MAX_REGIONS,
		.regions_uptr = (uintptr_t)f->dev[i].res,
	};

	if (xioctl(f->fd, IOASID_DEVICE_GET_INFO, &info))
		return;
	f->dev[i].have_info = 1;
	f->dev[i].ap_start = info.out_aperture_start;
	f->dev[i].ap_last = info.out_aperture_last;
	f->dev[i].caps = info.out_capabilities;
	f->dev[i].nres = info.num_regions;
}

/* --- building calls ------------------------------------------------------- */

static void *arg_reset(struct fz *f, size_t size)
{
	memset(f->arg, 0, 2 * IOASID_ARGSZ_MAX);
	*(__u32 *)f->arg = size;
	return f->arg;
}

static __u32 do_alloc(struct fz *f, __u32 flags)
{
	struct ioasid_alloc *a = arg_reset(f, sizeof(*a));

	a->flags = flags;
	return fz_do(f, IOASID_ALLOC, a, 0) ? 0 : a->out_ioasid;
}

static int do_free(struct fz *f, __u32 id)
{
	struct ioasid_free *a = arg_reset(f, sizeof(*a));

	a->ioasid = id;
	return fz_do(f, IOASID_FREE, a, 0);
}

static int do_bind_pci(struct fz *f, __u32 seg, __u8 bus, __u8 devfn)
{
	struct ioasid_device_bind *b = arg_reset(f, sizeof(*b));

	b->pci_segment = seg;
	b->pci_bus = bus;
	b->pci_devfn = devfn;
	return fz_do(f, IOASID_DEVICE_BIND, b, 0);
}

static int do_bind(struct fz *f, int i)
{
	return do_bind_pci(f, f->pci[i].seg, f->pci[i].bus, f->pci[i].devfn);
}

static int do_dev_op(struct fz *f, unsigned long nr, __u32 dev)
{
	__u32 *w = arg_reset(f, 16);

	w[0] = nr == IOASID_DEVICE_UNBIND ? sizeof(struct ioasid_device_unbind) :
					    sizeof(struct ioasid_device_detach);
	w[2] = dev;
	return fz_do(f, nr, w, 0);
}

static int do_attach(struct fz *f, __u32 dev, __u32 id)
{
	struct ioasid_device_attach *a = arg_reset(f, sizeof(*a));

	a->dev_id = dev;
	a->ioasid = id;
	return fz_do(f, IOASID_DEVICE_ATTACH, a, 0);
}

static int do_map(struct fz *f, __u32 flags, __u32 id, __u64 va, __u64 len, __u64 iova,
		  __u64 *out)
{
	struct ioasid_map *m = arg_reset(f, sizeof(*m));
	int ret;

	m->flags = flags;
	m->ioasid = id;
	m->user_va = va;
	m->length = len;
	m->iova = iova;
	if (f->skip_overflow && !(flags & IOASID_MAP_FIXED_IOVA) && len >= (2u << 20) &&
	    len + (va % (2u << 20)) < len)
		return -EINVAL;
	ret = fz_do(f, IOASID_MAP, m, 0);
	if (out)
		*out = m->iova;
	return ret;
}

static int do_unmap(struct fz *f, __u32 flags, __u32 id, __u64 iova, __u64 len)
{
	struct ioasid_unmap *u = arg_reset(f, sizeof(*u));

	u->flags = flags;
	u->ioasid = id;
	u->iova = iova;
	u->length = len;
	return fz_do(f, IOASID_UNMAP, u, 0);
}

static int do_ranges(struct fz *f, __u32 id, __u32 cap, __u64 uptr)
{
	struct ioasid_iova_ranges *r = arg_reset(f, sizeof(*r));

	r->ioasid = id;
	r->num_ranges = cap;
	r->ranges_uptr = uptr;
	return fz_do(f, IOASID_IOVA_RANGES, r, 0);
}

static int do_dev_info(struct fz *f, __u32 dev, __u32 cap, __u64 uptr)
{
	struct ioasid_device_info *d = arg_reset(f, sizeof(*d));

	d->dev_id = dev;
	d->num_regions = cap;
	d->regions_uptr = uptr;
	return fz_do(f, IOASID_DEVICE_GET_INFO, d, 0);
}

/* A live IOASID, allocated if need be. */
static __u32 any_live(struct fz *f)
{
	for (int i = 0; i < f->nio; i++)
		if (!f->io[i].parked)
			return f->io[i].id;
	return do_alloc(f, 0);
}

/* A pool device that can be bound here (handed to ioasid, an IOMMU group, not the checker's). */
static int bindable(struct fz *f, int i)
{
	return !f->pci[i].has_driver && f->pci[i].group >= 0 &&
	       f->pci[i].group != f->checker_group;
}

/* A bound device, bound if need be; -1 if none can be. */
static int any_bound(struct fz *f, int want_unattached)
{
	for (int i = 0; i < f->npci; i++)
		if (f->dev[i].id && (!want_unattached || !f->dev[i].attached))
			return i;
	for (int i = 0; i < f->npci; i++)
		if (bindable(f, i) && !f->dev[i].id && !do_bind(f, i) && f->dev[i].id)
			return i;
	return -1;
}

/* --- the checker: another context doing DMA --------------------------------- */

/*
 * The other context, in its own process: owns the edu device at 00:05.0 and
 * on each request maps a fresh buffer, moves it through the device and back,
 * compares the bytes, unmaps, and answers 'y' or 'n'.
 */
static void checker_main(int req, int resp)
{
	struct edu e = { 0 };
	__u32 dev, id, round = 0;
	uint8_t *buf = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ctx_counts c0, c;
	int fd = open("/dev/ioasid", O_RDWR | O_CLOEXEC);
	char r;

	if (fd < 0 || buf == MAP_FAILED || edu_setup(&e, CHECKER_BDF) ||
	    bind_dev(fd, &e, &dev, NULL) || alloc_ioasid(fd, &id) || attach(fd, dev, id) ||
	    ctx_counts(fd, &c0)) {
		r = 'e';
		if (write(resp, &r, 1) != 1)
			_exit(2);
		_exit(1);
	}
	r = 'r';
	if (write(resp, &r, 1) != 1)
		_exit(2);
	while (read(req, &r, 1) == 1 && r == 'c') {
		__u64 done = 0;
		int ok;

		st_fill(buf, PG, ++round);
		memset(buf + PG, 0, PG);
		ok = !map_at(fd, id, buf, PG, CHECKER_SRC, IOASID_MAP_READ) &&
		     !map_at(fd, id, buf + PG, PG, CHECKER_DST, IOASID_MAP_WRITE);
		ok = ok && !st_edu_round_trip(&e, CHECKER_SRC, CHECKER_DST, PG) &&
		     !memcmp(buf, buf + PG, PG);
		ok = !unmap(fd, id, CHECKER_SRC, PG, &done) && done == PG && ok;
		ok = !unmap(fd, id, CHECKER_DST, PG, &done) && done == PG && ok;
		ok = !ctx_counts(fd, &c) && c.ids == c0.ids && c.devices == c0.devices && ok;
		r = ok ? 'y' : 'n';
		if (write(resp, &r, 1) != 1)
			break;
	}
	close(fd);
	_exit(0);
}

static int checker_round(struct fz *f)
{
	char r = 'c';

	if (write(f->req_fd, &r, 1) != 1 || read(f->resp_fd, &r, 1) != 1)
		return 0;
	return r == 'y';
}

/* --- invariants after a batch ------------------------------------------------ */

static void checkpoint(struct fz *f, const char *where)
{
	struct global_state now;
	char diff[200];

	snprintf(f->last->phase, sizeof(f->last->phase), "%s: checkpoint", where);
	/* Everything unmapped: the model says how much each IOASID held. */
	for (int i = 0; i < f->nio; i++) {
		struct ioasid_unmap *u;

		if (f->io[i].parked)
			continue;
		u = arg_reset(f, sizeof(*u));
		u->flags = IOASID_UNMAP_ALL;
		u->ioasid = f->io[i].id;
		fz_do(f, IOASID_UNMAP, u, 0);
	}
	st_global(&now);
	/* The live contexts: the checker's and this one. */
	if (st_global_diff(&f->base, &now, 1, diff, sizeof(diff)))
		FZ_FAIL(f, "%s, with nothing mapped: %s", where, diff);
	if (f->req_fd >= 0 && !checker_round(f))
		FZ_FAIL(f, "%s: the other context's DMA through 00:05.0 failed", where);
}

/* --- the deterministic sweep ------------------------------------------------- */

/* A valid request of each ioctl, in f->arg; returns its size. */
static size_t prep_valid(struct fz *f, unsigned long nr)
{
	const struct ioctl_doc *d = ioctl_doc(nr);
	int i;

	switch (nr) {
	case IOASID_FREE: {
		__u32 id = do_alloc(f, 0);

		((struct ioasid_free *)arg_reset(f, d->size))->ioasid = id;
		break;
	}
	case IOASID_DEVICE_BIND: {
		struct ioasid_device_bind *b;

		for (i = 0; i < f->npci; i++)
			if (bindable(f, i) && !f->dev[i].id)
				break;
		b = arg_reset(f, d->size);
		if (i < f->npci) {
			b->pci_segment = f->pci[i].seg;
			b->pci_bus = f->pci[i].bus;
			b->pci_devfn = f->pci[i].devfn;
		}
		break;
	}
	case IOASID_DEVICE_UNBIND:
	case IOASID_DEVICE_GET_INFO:
		i = any_bound(f, 0);
		((__u32 *)arg_reset(f, d->size))[2] = i < 0 ? 1 : f->dev[i].id;
		if (nr == IOASID_DEVICE_GET_INFO) {
			((struct ioasid_device_info *)f->arg)->num_regions = SCRATCH_RANGES;
			((struct ioasid_device_info *)f->arg)->regions_uptr = (uintptr_t)f->scratch;
		}
		break;
	case IOASID_DEVICE_ATTACH: {
		__u32 id = any_live(f);

		i = any_bound(f, 1);
		((struct ioasid_device_attach *)arg_reset(f, d->size))->ioasid = id;
		((struct ioasid_device_attach *)f->arg)->dev_id = i < 0 ? 1 : f->dev[i].id;
		break;
	}
	case IOASID_DEVICE_DETACH:
		i = -1;
		for (int j = 0; j < f->npci; j++)
			if (f->dev[j].id && f->dev[j].attached)
				i = j;
		if (i < 0) {
			i = any_bound(f, 1);
			if (i >= 0)
				do_attach(f, f->dev[i].id, any_live(f));
		}
		((__u32 *)arg_reset(f, d->size))[2] = i < 0 ? 1 : f->dev[i].id;
		break;
	case IOASID_MAP: {
		__u32 id = f->focus && m_live(f, f->focus) ? f->focus : any_live(f);
		struct ioasid_map *m = arg_reset(f, d->size);

		m->flags = IOASID_MAP_READ | IOASID_MAP_WRITE;
		m->ioasid = id;
		m->user_va = (uintptr_t)f->buf;
		m->length = 2 * PG;
		break;
	}
	case IOASID_UNMAP: {
		__u32 id = f->focus && m_live(f, f->focus) ? f->focus : any_live(f);
		struct m_ioasid *m = m_find(f, id);
		struct ioasid_unmap *u;
		__u64 iova = 0;

		if (m && !m->nmaps)
			do_map(f, RW, id, (uintptr_t)f->buf, 2 * PG, 0, &iova);
		m = m_find(f, id);
		u = arg_reset(f, d->size);
		u->ioasid = id;
		if (m && m->nmaps) {
			u->iova = m->maps[0].iova;
			u->length = m->maps[0].len;
		}
		break;
	}
	case IOASID_IOVA_RANGES: {
		__u32 id = f->focus && m_live(f, f->focus) ? f->focus : any_live(f);
		struct ioasid_iova_ranges *r = arg_reset(f, d->size);

		r->ioasid = id;
		r->num_ranges = SCRATCH_RANGES;
		r->ranges_uptr = (uintptr_t)f->scratch;
		break;
	}
	default:
		arg_reset(f, d->size);
		break;
	}
	return d->size;
}

/* argsz, the bytes past the struct, every flag bit and the reserved field of every ioctl. */
static void sweep_header(struct fz *f, const struct ioctl_doc *d)
{
	static const __u32 sizes[] = { 0, 1, 4, 7, 8, 11, 12, 15, 16, 23, 24, 31, 32, 39, 40,
				       55, 56, 57, 64, 4095, 4096, 4097, 8192, 1u << 31,
				       0xffffffffu };
	unsigned char *a;
	long reserved = -1;
	int rsize = 0;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		__u32 argsz = sizes[s];
		int expect = argsz < d->min ? EINVAL : argsz > IOASID_ARGSZ_MAX ? E2BIG : 0;

		prep_valid(f, d->nr);
		*(__u32 *)f->arg = argsz;
		fz_do(f, d->nr, f->arg, expect);
	}
	/* A nonzero byte past the kernel's struct, within argsz: E2BIG. */
	for (size_t pos = d->size; pos < IOASID_ARGSZ_MAX; pos = pos * 2 + 3) {
		prep_valid(f, d->nr);
		*(__u32 *)f->arg = IOASID_ARGSZ_MAX;
		f->arg[pos] = 0x5a;
		fz_do(f, d->nr, f->arg, E2BIG);
	}
	/* Every flag bit on its own, all of them, every defined combination. */
	for (int bit = 0; bit <= 32; bit++) {
		__u32 flags = bit == 32 ? 0xffffffffu : 1u << bit;

		prep_valid(f, d->nr);
		a = f->arg;
		if (flags & ~d->flags) {
			((__u32 *)a)[1] = flags;
			fz_do(f, d->nr, a, EOPNOTSUPP);
		}
	}
	for (__u32 flags = 0; flags <= d->flags; flags++) {
		if (flags & ~d->flags)
			continue;
		prep_valid(f, d->nr);
		((__u32 *)f->arg)[1] = flags;
		fz_do(f, d->nr, f->arg, 0);
	}
	/* The reserved fields. */
	switch (d->nr) {
	case IOASID_GET_INFO: reserved = offsetof(struct ioasid_info, __reserved); rsize = 4; break;
	case IOASID_ALLOC: reserved = offsetof(struct ioasid_alloc, __reserved); rsize = 4; break;
	case IOASID_FREE: reserved = offsetof(struct ioasid_free, __reserved); rsize = 4; break;
	case IOASID_DEVICE_BIND:
		reserved = offsetof(struct ioasid_device_bind, __reserved); rsize = 2; break;
	case IOASID_DEVICE_UNBIND:
		reserved = offsetof(struct ioasid_device_unbind, __reserved); rsize = 4; break;
	case IOASID_DEVICE_DETACH:
		reserved = offsetof(struct ioasid_device_detach, __reserved); rsize = 4; break;
	case IOASID_MAP: reserved = offsetof(struct ioasid_map, __reserved); rsize = 4; break;
	case IOASID_UNMAP: reserved = offsetof(struct ioasid_unmap, __reserved); rsize = 4; break;
	case IOASID_GET_COHERENCY:
		reserved = offsetof(struct ioasid_coherency, __reserved); rsize = 4; break;
	}
	for (int b = 0; reserved >= 0 && b < rsize * 8; b += 7) {
		prep_valid(f, d->nr);
		f->arg[reserved + b / 8] |= 1u << (b % 8);
		fz_do(f, d->nr, f->arg, EOPNOTSUPP);
	}
	/* An argument that cannot be read: argsz readable, the rest not; or nothing readable. */
	prep_valid(f, d->nr);
	a = f->hole - 4;
	*(__u32 *)a = d->size;
	f->last->nr = d->nr;
	f->last->seq++;
	{
		int ret = xioctl(f->fd, d->nr, a);

		if (ret != -EFAULT)
			FZ_FAIL(f, "%s with an argument that ends at an unmapped page: %d, not EFAULT",
				d->name, ret);
		ret = xioctl(f->fd, d->nr, f->hole);
		if (ret != -EFAULT)
			FZ_FAIL(f, "%s with an unmapped argument: %d, not EFAULT", d->name, ret);
	}
	fz_counts(f);
}

/* A field of an ioctl's struct: its offset and width in bytes. */
struct field {
	unsigned long nr;
	const char *name;
	size_t off;
	int width;
};

#define F(s, nr, fld) { nr, #fld, offsetof(struct s, fld), sizeof(((struct s *)0)->fld) }
static const struct field fields[] = {
	F(ioasid_free, IOASID_FREE, ioasid),
	F(ioasid_device_bind, IOASID_DEVICE_BIND, pci_segment),
	F(ioasid_device_bind, IOASID_DEVICE_BIND, pci_bus),
	F(ioasid_device_bind, IOASID_DEVICE_BIND, pci_devfn),
	F(ioasid_device_unbind, IOASID_DEVICE_UNBIND, dev_id),
	F(ioasid_device_attach, IOASID_DEVICE_ATTACH, dev_id),
	F(ioasid_device_attach, IOASID_DEVICE_ATTACH, ioasid),
	F(ioasid_device_detach, IOASID_DEVICE_DETACH, dev_id),
	F(ioasid_map, IOASID_MAP, ioasid),
	F(ioasid_map, IOASID_MAP, user_va),
	F(ioasid_map, IOASID_MAP, length),
	F(ioasid_map, IOASID_MAP, iova),
	F(ioasid_unmap, IOASID_UNMAP, ioasid),
	F(ioasid_unmap, IOASID_UNMAP, iova),
	F(ioasid_unmap, IOASID_UNMAP, length),
	F(ioasid_iova_ranges, IOASID_IOVA_RANGES, ioasid),
	F(ioasid_iova_ranges, IOASID_IOVA_RANGES, num_ranges),
	F(ioasid_iova_ranges, IOASID_IOVA_RANGES, ranges_uptr),
	F(ioasid_device_info, IOASID_DEVICE_GET_INFO, dev_id),
	F(ioasid_device_info, IOASID_DEVICE_GET_INFO, num_regions),
	F(ioasid_device_info, IOASID_DEVICE_GET_INFO, regions_uptr),
	F(ioasid_coherency, IOASID_GET_COHERENCY, ioasid),
	/* Output fields: what the caller leaves there is ignored. */
	F(ioasid_alloc, IOASID_ALLOC, out_ioasid),
	F(ioasid_info, IOASID_GET_INFO, out_capabilities),
	F(ioasid_unmap, IOASID_UNMAP, out_unmapped),
};

static void set_field(unsigned char *a, const struct field *fl, __u64 v)
{
	switch (fl->width) {
	case 1: a[fl->off] = v; break;
	case 2: *(__u16 *)(a + fl->off) = v; break;
	case 4: *(__u32 *)(a + fl->off) = v; break;
	default: *(__u64 *)(a + fl->off) = v; break;
	}
}

/* Each numeric field over the boundary values, the others valid. */
static void sweep_fields(struct fz *f)
{
	for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
		const struct field *fl = &fields[k];
		size_t n = fl->width == 8 ? NB64 : fl->width == 1 ? NB8 : NB32;

		snprintf(f->last->phase, sizeof(f->last->phase), "sweep %s.%s",
			 ioctl_name(fl->nr), fl->name);
		for (size_t v = 0; v < n; v++) {
			__u64 val = fl->width == 8 ? B64[v] : fl->width == 1 ? B8[v] : B32[v];

			prep_valid(f, fl->nr);
			/* Output arrays only ever point at the scratch array or at nothing mapped. */
			if (fl->off == offsetof(struct ioasid_iova_ranges, ranges_uptr) &&
			    fl->nr == IOASID_IOVA_RANGES && val > 1ull << 47)
				val = (uintptr_t)f->hole;
			set_field(f->arg, fl, val);
			fz_do(f, fl->nr, f->arg, 0);
		}
	}
}

/* IOVAs worth trying in IOASID id: boundaries, edges of ranges, regions and mappings. */
static int iova_candidates(struct fz *f, __u32 id, __u64 *out, int max)
{
	struct ioasid_iova_ranges r = {
		.argsz = sizeof(r), .ioasid = id, .num_ranges = SCRATCH_RANGES,
		.ranges_uptr = (uintptr_t)f->scratch,
	};
	struct m_ioasid *m = m_find(f, id);
	int n = 0;

#define ADD(v) do { if (n < max) out[n++] = (v); } while (0)
	for (size_t i = 0; i < NB64; i++)
		ADD(B64[i]);
	ADD(0x100000);
	ADD(0x10000000 - PG);
	if (!xioctl(f->fd, IOASID_IOVA_RANGES, &r)) {
		for (__u32 i = 0; i < r.num_ranges && i < 8; i++) {
			ADD((f->scratch[i].start & ~(PG - 1)) - PG);
			ADD(f->scratch[i].start & ~(PG - 1));
			ADD((f->scratch[i].last + 1) - PG);
			ADD(f->scratch[i].last + 1);
		}
	}
	for (int d = 0; d < f->npci; d++) {
		if (!f->dev[d].id || f->dev[d].attached != id || !f->dev[d].have_info)
			continue;
		ADD(f->dev[d].ap_start);
		ADD((f->dev[d].ap_last + 1) - PG);
		ADD(f->dev[d].ap_last + 1);
		for (int i = 0; i < f->dev[d].nres && i < 4; i++) {
			ADD((f->dev[d].res[i].start & ~(PG - 1)) - PG);
			ADD(f->dev[d].res[i].start & ~(PG - 1));
			ADD((f->dev[d].res[i].last + 1) & ~(PG - 1));
			ADD(((f->dev[d].res[i].last + 1) & ~(PG - 1)) - PG);
		}
	}
	for (int i = 0; m && i < m->nmaps && i < 4; i++) {
		ADD(m->maps[i].iova - PG);
		ADD(m->maps[i].iova);
		ADD(m->maps[i].iova + m->maps[i].len - PG);
		ADD(m->maps[i].iova + m->maps[i].len);
	}
#undef ADD
	return n;
}

/* IOASID_MAP over user_va x length x IOVA (fixed, and kernel-chosen). */
static void sweep_map(struct fz *f, const char *state)
{
	__u64 vas[NB64 + 6], lens[NB64 + 4], iovas[64];
	int nva = 0, nlen = 0, niova;
	__u32 id = f->focus;

	for (size_t i = 0; i < NB64; i++)
		vas[nva++] = B64[i], lens[nlen++] = B64[i];
	vas[nva++] = (uintptr_t)f->buf;
	vas[nva++] = (uintptr_t)f->buf + PG;
	vas[nva++] = (uintptr_t)f->buf + f->buf_len - PG;
	vas[nva++] = (uintptr_t)f->ro;
	vas[nva++] = (uintptr_t)f->hole;
	vas[nva++] = (uintptr_t)f->buf + 8;
	lens[nlen++] = 2 * PG;
	lens[nlen++] = 3 * PG;
	lens[nlen++] = f->buf_len;
	lens[nlen++] = f->buf_len + PG;
	/* A mapping to aim at, so that overlaps are tried too. */
	do_map(f, RW | IOASID_MAP_FIXED_IOVA, id, (uintptr_t)f->buf + 16 * PG, 2 * PG,
	       0x4000000, NULL);
	niova = iova_candidates(f, id, iovas, 64);
	snprintf(f->last->phase, sizeof(f->last->phase), "sweep IOASID_MAP (%s)", state);
	for (int a = 0; a < nva; a++) {
		for (int b = 0; b < nlen; b++) {
			/*
			 * A huge length of real memory costs the kernel an array of
			 * page pointers (tens of ms under TCG): try it at every IOVA
			 * the kernel refuses before that, and at two it accepts.
			 */
			int costly = lens[b] > f->buf_len + PG && vas[a] % PG == 0 &&
				     vas[a] >= (uintptr_t)f->buf && vas[a] < (uintptr_t)f->ro + PG;
			int budget = 2;

			for (int c = -1; c < niova; c++) {
				__u32 flags = c < 0 ? RW : RW | IOASID_MAP_FIXED_IOVA;
				__u64 iova = c < 0 ? 0 : iovas[c], got = 0;
				char why[160];

				if (costly && c >= 0 && iova % PG == 0 && iova + lens[b] - 1 >= iova &&
				    ioasid_allows(f, id, iova, iova + lens[b] - 1, why, sizeof(why)) &&
				    budget-- <= 0)
					continue;

				if (a == nva - 1 && c >= 0)
					flags = IOASID_MAP_READ | IOASID_MAP_FIXED_IOVA;
				if (!do_map(f, flags, id, vas[a], lens[b], iova, &got))
					do_unmap(f, 0, id, got, lens[b]);
				if (!m_live(f, id))
					return;
			}
		}
	}
	/* Writable mappings of read-only memory, and read-only ones of it. */
	for (int c = 0; c < niova; c++) {
		__u64 got;

		if (!do_map(f, IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA, id, (uintptr_t)f->ro, PG,
			    iovas[c], &got))
			do_unmap(f, 0, id, got, PG);
		if (!do_map(f, IOASID_MAP_READ | IOASID_MAP_FIXED_IOVA, id, (uintptr_t)f->ro, PG,
			    iovas[c], &got))
			do_unmap(f, 0, id, got, PG);
	}
}

/* IOASID_UNMAP over IOVA x length, around three mappings. */
static void sweep_unmap(struct fz *f, const char *state)
{
	const __u64 x = 0x6000000;	/* below arm64's MSI window at 0x8000000 */
	const struct m_map maps[] = { { x, 2 * PG }, { x + 4 * PG, PG }, { x + 8 * PG, 3 * PG } };
	__u64 iovas[NB64 + 9], lens[NB64 + 6];
	int ni = 0, nl = 0;
	__u32 id = f->focus;

	for (size_t i = 0; i < NB64; i++)
		iovas[ni++] = B64[i], lens[nl++] = B64[i];
	for (int i = -1; i <= 11; i += (i < 2 ? 1 : 3))
		if (ni < (int)(sizeof(iovas) / sizeof(iovas[0])))
			iovas[ni++] = x + i * PG;
	lens[nl++] = 2 * PG;
	lens[nl++] = 3 * PG;
	lens[nl++] = 5 * PG;
	lens[nl++] = 11 * PG;
	lens[nl++] = 12 * PG;
	snprintf(f->last->phase, sizeof(f->last->phase), "sweep IOASID_UNMAP (%s)", state);
	for (int a = 0; a < ni; a++) {
		for (int b = 0; b < nl; b++) {
			for (int k = 0; k < 3; k++) {
				struct m_ioasid *m = m_find(f, id);
				int there = 0;

				for (int j = 0; m && j < m->nmaps; j++)
					there |= m->maps[j].iova == maps[k].iova;
				if (!there)
					do_map(f, RW | IOASID_MAP_FIXED_IOVA, id,
					       (uintptr_t)f->buf + 4 * k * PG, maps[k].len,
					       maps[k].iova, NULL);
			}
			do_unmap(f, 0, id, iovas[a], lens[b]);
			if (!m_live(f, id))
				return;
		}
	}
	do_unmap(f, IOASID_UNMAP_ALL, id, 0, 0);
}

static void sweep(struct fz *f, int with_device)
{
	const char *state = with_device ? "a device attached" : "no device";
	struct __test_metadata *_metadata = f->md;
	double t0 = st_now();

	f->focus = do_alloc(f, 0);
	f->focus_dev = -1;
	if (with_device) {
		f->focus_dev = any_bound(f, 1);
		if (f->focus_dev >= 0 && do_attach(f, f->dev[f->focus_dev].id, f->focus))
			f->focus_dev = -1;
	}
	for (size_t i = 0; i < N_IOCTLS; i++) {
		snprintf(f->last->phase, sizeof(f->last->phase), "sweep %s header (%s)",
			 ioctl_docs[i].name, state);
		sweep_header(f, &ioctl_docs[i]);
		if (!m_live(f, f->focus))
			f->focus = any_live(f);
	}
	checkpoint(f, "header sweep");
	TH_LOG("%s: headers swept, %.1f s, %ld calls", state, st_now() - t0, f->last->calls);
	sweep_fields(f);
	if (!m_live(f, f->focus))
		f->focus = any_live(f);
	checkpoint(f, "field sweep");
	TH_LOG("%s: fields swept, %.1f s, %ld calls", state, st_now() - t0, f->last->calls);
	sweep_map(f, state);
	checkpoint(f, "map sweep");
	TH_LOG("%s: IOASID_MAP swept, %.1f s, %ld calls", state, st_now() - t0, f->last->calls);
	if (!m_live(f, f->focus))
		f->focus = any_live(f);
	sweep_unmap(f, state);
	checkpoint(f, "unmap sweep");
	TH_LOG("%s: IOASID_UNMAP swept, %.1f s, %ld calls", state, st_now() - t0, f->last->calls);
}

/* --- random sequences ----------------------------------------------------------- */

static __u32 pick_ioasid(struct fz *f)
{
	unsigned int p = rng_below(&f->rng, 100);

	if (p < 65 && f->nio)
		return f->io[rng_below(&f->rng, f->nio)].id;
	if (p < 80 && f->nstale)
		return f->stale[rng_below(&f->rng, f->nstale < 16 ? f->nstale : 16)];
	if (p < 85)
		return 0;
	return B32[rng_below(&f->rng, NB32)];
}

static __u32 pick_dev(struct fz *f)
{
	unsigned int p = rng_below(&f->rng, 100);
	int tries = 8;

	while (p < 75 && tries--) {
		int i = rng_below(&f->rng, f->npci);

		if (f->dev[i].id)
			return f->dev[i].id;
	}
	return B32[rng_below(&f->rng, NB32)];
}

static __u64 pick_len(struct fz *f)
{
	unsigned int p = rng_below(&f->rng, 100);

	if (p < 70)
		return (1 + rng_below(&f->rng, 4)) * PG;
	if (p < 75)
		return f->buf_len;
	return B64[rng_below(&f->rng, NB64)];
}

static __u64 pick_va(struct fz *f, __u64 len)
{
	unsigned int p = rng_below(&f->rng, 100);

	if (p < 70 && len <= f->buf_len)
		return (uintptr_t)f->buf + rng_below(&f->rng, (f->buf_len - len) / PG + 1) * PG;
	if (p < 78)
		return (uintptr_t)f->ro;
	if (p < 84)
		return (uintptr_t)f->hole;
	return B64[rng_below(&f->rng, NB64)];
}

static __u64 pick_iova(struct fz *f, __u32 id)
{
	struct m_ioasid *m = m_find(f, id);
	unsigned int p = rng_below(&f->rng, 100);

	if (p < 30 && m && m->nmaps) {
		struct m_map *mp = &m->maps[rng_below(&f->rng, m->nmaps)];
		__u64 e[] = { mp->iova - PG, mp->iova, mp->iova + PG, mp->iova + mp->len,
			      mp->iova + mp->len - PG };

		return e[rng_below(&f->rng, 5)];
	}
	if (p < 70)
		return 0x100000 + rng_below(&f->rng, 64) * PG;
	if (p < 80) {
		for (int d = 0; d < f->npci; d++) {
			if (f->dev[d].id && f->dev[d].have_info && f->dev[d].nres) {
				struct ioasid_iova_range *r =
					&f->dev[d].res[rng_below(&f->rng, f->dev[d].nres)];
				__u64 e[] = { (r->start & ~(PG - 1)) - PG, r->start & ~(PG - 1),
					      (r->last + 1) & ~(PG - 1) };

				return e[rng_below(&f->rng, 3)];
			}
		}
	}
	return B64[rng_below(&f->rng, NB64)];
}

/* A header broken in one way, with the errno the extension rules prescribe. */
static int break_header(struct fz *f, const struct ioctl_doc *d)
{
	switch (rng_below(&f->rng, 5)) {
	case 0:
		*(__u32 *)f->arg = rng_below(&f->rng, d->min);
		return EINVAL;
	case 1:
		*(__u32 *)f->arg = IOASID_ARGSZ_MAX + 1 + rng_below(&f->rng, 4096);
		return E2BIG;
	case 2:
		*(__u32 *)f->arg = IOASID_ARGSZ_MAX;
		f->arg[d->size + rng_below(&f->rng, IOASID_ARGSZ_MAX - d->size)] =
			1 + rng_below(&f->rng, 255);
		return E2BIG;
	default:
		if (d->flags == 0xffffffffu)
			return 0;
		{
			__u32 bad;

			do
				bad = 1u << rng_below(&f->rng, 32);
			while (bad & d->flags);
			((__u32 *)f->arg)[1] |= bad;
		}
		return EOPNOTSUPP;
	}
}

static void random_op(struct fz *f)
{
	unsigned int op = rng_below(&f->rng, 100);

	if (op < 7) {
		if (f->nio < MAX_IOASIDS - 8)
			do_alloc(f, rng_pct(&f->rng, 30) ? IOASID_ALLOC_COHERENT : 0);
	} else if (op < 12) {
		do_free(f, pick_ioasid(f));
	} else if (op < 19) {
		unsigned int p = rng_below(&f->rng, 100);

		if (p < 85) {
			do_bind(f, rng_below(&f->rng, f->npci));
		} else {
			do_bind_pci(f, rng_pct(&f->rng, 50) ? 0 : B32[rng_below(&f->rng, NB32)],
				    B8[rng_below(&f->rng, NB8)], rng_below(&f->rng, 256));
		}
	} else if (op < 23) {
		do_dev_op(f, IOASID_DEVICE_UNBIND, pick_dev(f));
	} else if (op < 33) {
		do_attach(f, pick_dev(f), pick_ioasid(f));
	} else if (op < 38) {
		do_dev_op(f, IOASID_DEVICE_DETACH, pick_dev(f));
	} else if (op < 58) {
		__u32 id = pick_ioasid(f);
		__u64 len = pick_len(f);
		__u32 flags = rng_below(&f->rng, 8);

		if (rng_pct(&f->rng, 80))
			flags |= IOASID_MAP_READ;
		do_map(f, flags, id, pick_va(f, len), len, pick_iova(f, id), NULL);
	} else if (op < 72) {
		__u32 id = pick_ioasid(f);
		struct m_ioasid *m = m_find(f, id);
		unsigned int p = rng_below(&f->rng, 100);

		if (p < 50 && m && m->nmaps) {
			struct m_map *mp = &m->maps[rng_below(&f->rng, m->nmaps)];

			do_unmap(f, 0, id, mp->iova, mp->len);
		} else if (p < 60) {
			do_unmap(f, IOASID_UNMAP_ALL, id, 0, 0);
		} else if (p < 70) {
			do_unmap(f, IOASID_UNMAP_ALL, id, pick_iova(f, id), 0);
		} else {
			__u64 iova = pick_iova(f, id);

			do_unmap(f, 0, id, iova, pick_len(f) * (1 + rng_below(&f->rng, 4)));
		}
	} else if (op < 78) {
		static const __u32 caps[] = { 0, 1, 2, 3, 8, 256, 257, 0xffffffffu };
		__u32 cap = caps[rng_below(&f->rng, 8)];
		__u64 uptr = rng_pct(&f->rng, 85) ? (uintptr_t)f->scratch : (uintptr_t)f->hole;

		if (cap > SCRATCH_RANGES && uptr == (uintptr_t)f->scratch)
			cap = SCRATCH_RANGES;
		do_ranges(f, pick_ioasid(f), cap, uptr);
	} else if (op < 82) {
		__u32 cap = rng_below(&f->rng, 4);
		__u64 uptr = rng_pct(&f->rng, 85) ? (uintptr_t)f->scratch : (uintptr_t)f->hole;

		do_dev_info(f, pick_dev(f), cap, uptr);
	} else if (op < 85) {
		struct ioasid_coherency *c = arg_reset(f, sizeof(*c));

		c->ioasid = pick_ioasid(f);
		fz_do(f, IOASID_GET_COHERENCY, c, 0);
	} else if (op < 86) {
		arg_reset(f, sizeof(struct ioasid_wbinvd));
		fz_do(f, IOASID_EXECUTE_WBINVD, f->arg, 0);
	} else if (op < 94) {
		/* A random ioctl with its header broken. */
		const struct ioctl_doc *d = &ioctl_docs[rng_below(&f->rng, N_IOCTLS)];
		int expect;

		prep_valid(f, d->nr);
		expect = break_header(f, d);
		fz_do(f, d->nr, f->arg, expect ? expect : ANY_FAIL);
	} else if (op < 96) {
		/* A number that is not an ioctl of /dev/ioasid. */
		unsigned long nr = rng_pct(&f->rng, 50) ? _IO(IOASID_TYPE, 0x0e + rng_below(&f->rng, 242)) :
							  (unsigned long)(__u32)rng_next(&f->rng);

		/* Or a known number with a size or direction encoded: not the same ioctl. */
		if (rng_pct(&f->rng, 20))
			nr = ioctl_docs[rng_below(&f->rng, N_IOCTLS)].nr |
			     (rng_below(&f->rng, 3) + 1) << 30 | 16 << 16;
		/* Leave alone the numbers the VFS answers for every file (FIONBIO, FICLONE...). */
		switch (nr >> 8 & 0xff) {
		case 0x15: case 0x54: case 0x58: case 0x66: case 0x94:
			break;
		default:
			if (!ioctl_doc(nr)) {
				arg_reset(f, 64);
				fz_do(f, nr, f->arg, ENOTTY);
			}
		}
	} else if (op < 99) {
		/* A duplicate of the file, closed: nothing changes. */
		int d = dup(f->fd);

		if (d >= 0)
			close(d);
		fz_counts(f);
	} else {
		/* Start over with a new context: the old one goes with everything in it. */
		fz_resync(f);
	}
}

/* --- the test ---------------------------------------------------------------------- */

FIXTURE(fuzz) {
	struct lastcall *last;
	pid_t checker;
	int req, resp;
};

FIXTURE_SETUP(fuzz)
{
	int to[2], from[2];
	char r;

	self->last = mmap(NULL, sizeof(*self->last), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->last);
	self->checker = -1;
	ASSERT_EQ(0, pipe(to));
	ASSERT_EQ(0, pipe(from));
	self->checker = fork();
	ASSERT_LE(0, self->checker);
	if (!self->checker) {
		close(to[1]);
		close(from[0]);
		checker_main(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	self->req = to[1];
	self->resp = from[0];
	ASSERT_EQ(1, read(self->resp, &r, 1));
	ASSERT_EQ('r', r) TH_LOG("the other context could not set up 00:05.0");
	/* It works before anything else happened. */
	r = 'c';
	ASSERT_EQ(1, write(self->req, &r, 1));
	ASSERT_EQ(1, read(self->resp, &r, 1));
	ASSERT_EQ('y', r) TH_LOG("the other context's DMA does not work to begin with");
}

FIXTURE_TEARDOWN(fuzz)
{
	int status;

	if (self->checker > 0) {
		close(self->req);
		close(self->resp);
		waitpid(self->checker, &status, 0);
	}
}

static void fz_init(struct __test_metadata *_metadata, struct fz *f, FIXTURE_DATA(fuzz) *self)
{
	uint8_t *area;
	const char *e;

	memset(f, 0, sizeof(*f));
	f->md = _metadata;
	f->last = self->last;
	f->req_fd = self->req;
	f->resp_fd = self->resp;
	e = getenv("IOASID_FUZZ_SEED");
	f->rng.s = e ? strtoull(e, NULL, 0) : 20261123;
	f->trace = getenv("IOASID_FUZZ_TRACE") && !strcmp(getenv("IOASID_FUZZ_TRACE"), "1");
	f->skip_overflow = getenv("IOASID_FUZZ_SKIP_OVERFLOW") &&
			   !strcmp(getenv("IOASID_FUZZ_SKIP_OVERFLOW"), "1");
	f->npci = st_pci_devices(f->pci, MAX_DEVS);
	f->checker_group = -2;
	for (int i = 0; i < f->npci; i++) {
		if (!strcmp(f->pci[i].bdf, CHECKER_BDF))
			f->checker_group = f->pci[i].group;
	}
	/* [buf: 64 pages][hole: 16][ro: 4][hole: 16] */
	area = mmap(NULL, (BUF_PAGES + 36) * PG, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	f->buf = area;
	f->buf_len = BUF_PAGES * PG;
	memset(f->buf, 0x5a, f->buf_len);
	f->hole = area + BUF_PAGES * PG;
	f->ro = f->hole + 16 * PG;
	memset(f->ro, 0xa5, 4 * PG);
	ASSERT_EQ(0, mprotect(f->ro, 4 * PG, PROT_READ));
	ASSERT_EQ(0, munmap(f->hole, 16 * PG));
	ASSERT_EQ(0, munmap(f->ro + 4 * PG, 16 * PG));
	f->scratch = calloc(SCRATCH_RANGES, sizeof(*f->scratch));
	f->arg = aligned_alloc(PG, 2 * IOASID_ARGSZ_MAX);
	ASSERT_NE(NULL, f->scratch);
	ASSERT_NE(NULL, f->arg);
	fz_open(f);
	st_global(&f->base);
	TH_LOG("seed %llu, %d PCI devices, the other context owns %s (group %d)%s",
	       (unsigned long long)f->rng.s, f->npci, CHECKER_BDF, f->checker_group,
	       f->skip_overflow ? "; IOASID_FUZZ_SKIP_OVERFLOW=1: the 64-bit overflow is not tried" : "");
}

/*
 * Runs fn in a process of its own and waits at most timeout s; if it dies or
 * hangs, says what it was doing.
 */
static void watched(struct __test_metadata *_metadata, FIXTURE_DATA(fuzz) *self,
		    void (*fn)(struct __test_metadata *, FIXTURE_DATA(fuzz) *), int timeout)
{
	struct pollfd p;
	int status = 0, pidfd;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		fn(_metadata, self);
		_exit(0);
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	ASSERT_LE(0, pidfd);
	p.fd = pidfd;
	p.events = POLLIN;
	if (poll(&p, 1, timeout * 1000) != 1) {
		char d[256];

		describe_arg(self->last->nr, self->last->arg, d, sizeof(d));
		_metadata->exit_code = KSFT_FAIL;
		fprintf(stderr, "# the fuzzing process hangs after %d s, in %s, call %ld: %s %s\n",
			timeout, self->last->phase, self->last->seq, ioctl_name(self->last->nr), d);
		kill(pid, SIGKILL);
		close(pidfd);
		return;
	}
	close(pidfd);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		char d[256];

		describe_arg(self->last->nr, self->last->arg, d, sizeof(d));
		_metadata->exit_code = KSFT_FAIL;
		fprintf(stderr, "# the fuzzing process died (status %#x) in %s, call %ld: %s %s\n",
			status, self->last->phase, self->last->seq, ioctl_name(self->last->nr), d);
	}
	TH_LOG("%ld calls, %ld succeeded, %ld failures", self->last->calls, self->last->succeeded,
	       self->last->failures);
}

static void finish(struct __test_metadata *_metadata, struct fz *f)
{
	struct global_state now;
	char diff[200];

	close(f->fd);
	f->base.contexts--;
	st_global(&now);
	if (st_global_diff(&f->base, &now, 1, diff, sizeof(diff)))
		FZ_FAIL(f, "after the last close: %s", diff);
}

static void run_boundaries(struct __test_metadata *_metadata, FIXTURE_DATA(fuzz) *self)
{
	struct fz *f = calloc(1, sizeof(*f));

	ASSERT_NE(NULL, f);
	fz_init(_metadata, f, self);
	sweep(f, 0);
	fz_resync(f);
	sweep(f, 1);
	finish(_metadata, f);
}

static void run_random(struct __test_metadata *_metadata, FIXTURE_DATA(fuzz) *self)
{
	struct fz *f = calloc(1, sizeof(*f));
	const char *e = getenv("IOASID_FUZZ_ITERS");
	long iters = e ? strtol(e, NULL, 0) : DEFAULT_ITERS;
	double t0 = st_now();

	ASSERT_NE(NULL, f);
	fz_init(_metadata, f, self);
	TH_LOG("%ld random calls (IOASID_FUZZ_ITERS), seed IOASID_FUZZ_SEED=%llu", iters,
	       (unsigned long long)f->rng.s);
	for (long i = 0; i < iters; i++) {
		if (i % BATCH == 0)
			snprintf(f->last->phase, sizeof(f->last->phase), "random batch %ld", i / BATCH);
		random_op(f);
		if (i % BATCH == BATCH - 1) {
			char where[64];

			snprintf(where, sizeof(where), "random batch %ld", i / BATCH);
			checkpoint(f, where);
		}
		if (i && i % 20000 == 0)
			TH_LOG("%ld calls, %.0f s", i, st_now() - t0);
	}
	checkpoint(f, "random end");
	TH_LOG("%ld random calls in %.1f s", iters, st_now() - t0);
	finish(_metadata, f);
}

/*
 * Timeouts. Measured under TCG (2 vCPUs, debug kernel): the sweeps take
 * 10-17 s under x86_64 and 26 s under arm64, the default random run
 * (DEFAULT_ITERS calls with their checkpoints) 26-34 s under x86_64 and 30 s
 * under arm64, about 2.5 ms per call. The harness's limits are over 4x that;
 * the watched process's is 20 s below, so that a hang is reported with the
 * call that hangs.
 */
#define BOUNDARY_TIMEOUT 120
#define RANDOM_TIMEOUT 180

TEST_F_TIMEOUT(fuzz, boundaries, BOUNDARY_TIMEOUT)
{
	watched(_metadata, self, run_boundaries, BOUNDARY_TIMEOUT - 20);
}

TEST_F_TIMEOUT(fuzz, random_sequences, RANDOM_TIMEOUT)
{
	watched(_metadata, self, run_random, _fuzz_random_sequences_object->timeout - 20);
}

/*
 * A long run (IOASID_FUZZ_ITERS, make fuzz) gets 10 ms per call, 4x what a
 * call takes, and a minute for the start. (This runs after the harness registered the tests: constructors
 * without a priority run after those with one.)
 */
static void __attribute__((constructor)) random_sequences_timeout(void)
{
	const char *e = getenv("IOASID_FUZZ_ITERS");
	long iters = e ? strtol(e, NULL, 0) : 0;

	if (iters / 100 + 60 > RANDOM_TIMEOUT)
		_fuzz_random_sequences_object->timeout = iters / 100 + 60;
}

TEST_HARNESS_MAIN
