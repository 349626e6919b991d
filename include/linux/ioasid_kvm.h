/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ioasid: the in-kernel interface for KVM (and anything else that is handed
 * an ioasid file descriptor and must know whether DMA through it can bypass
 * the CPU caches). Exported GPL-only by ioasid.ko; see
 * Documentation/userspace-api/ioasid.rst, "Cache coherency and KVM".
 *
 * All functions may sleep and must be called in process context.
 */
#ifndef _LINUX_IOASID_KVM_H
#define _LINUX_IOASID_KVM_H

#include <linux/types.h>

struct file;

/* The context behind an open /dev/ioasid file; opaque. */
struct ioasid_ctx;

/**
 * struct ioasid_coherency_watch - told when the answer of
 *	ioasid_ctx_noncoherent_dma() changes
 * @changed: called with the new answer, exactly once per change and in
 *	order, in process context, from whichever thread made the change,
 *	with ioasid's own locks held: it may sleep, but must not call any
 *	ioasid function other than ioasid_ctx_noncoherent_dma().
 *
 * Embed it in your own structure; it must stay valid until
 * ioasid_ctx_unwatch_coherency() has returned.
 */
struct ioasid_coherency_watch {
	void (*changed)(struct ioasid_coherency_watch *watch, bool noncoherent);
};

/*
 * Takes a reference to the context of @file, or returns NULL if @file is not
 * an open /dev/ioasid file. The caller holds a reference to @file for the
 * duration of the call. The context reference keeps the context's memory
 * alive, not its devices: when user space closes the file the context is
 * torn down (DMA blocked, pages unpinned) and the answer becomes false.
 */
struct ioasid_ctx *ioasid_ctx_get_file(struct file *file);

/* Drops a reference from ioasid_ctx_get_file(); unwatch first. */
void ioasid_ctx_put(struct ioasid_ctx *ctx);

/*
 * Whether DMA through the context can bypass the CPU caches now (a
 * non-coherent IOASID has a group attached through which an assumed
 * non-coherent device was attached; it counts until the group is detached,
 * after its DMA is blocked) and the administrator has not forbidden WBINVD.
 * Lock-free.
 */
bool ioasid_ctx_noncoherent_dma(struct ioasid_ctx *ctx);

/*
 * Registers @watch and stores the answer of ioasid_ctx_noncoherent_dma() at
 * that moment in *@noncoherent; @watch is called for every change after it.
 * Returns 0, -EINVAL (no @watch->changed) or -ENOMEM.
 */
int ioasid_ctx_watch_coherency(struct ioasid_ctx *ctx,
			       struct ioasid_coherency_watch *watch,
			       bool *noncoherent);

/*
 * Unregisters @watch: once this returns, it is not called any more.
 * Returns 0, or -ENOENT if it was not registered.
 */
int ioasid_ctx_unwatch_coherency(struct ioasid_ctx *ctx,
				 struct ioasid_coherency_watch *watch);

#endif /* _LINUX_IOASID_KVM_H */
