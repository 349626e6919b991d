// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the KVM-facing functions of ioasid.ko, which are written in Rust
 * (src/kvm.rs), GPL-only. Their declarations, in include/linux/ioasid_kvm.h,
 * are the contract.
 */
#include <linux/export.h>
#include <linux/ioasid_kvm.h>

EXPORT_SYMBOL_GPL(ioasid_ctx_get_file);
EXPORT_SYMBOL_GPL(ioasid_ctx_put);
EXPORT_SYMBOL_GPL(ioasid_ctx_noncoherent_dma);
EXPORT_SYMBOL_GPL(ioasid_ctx_watch_coherency);
EXPORT_SYMBOL_GPL(ioasid_ctx_unwatch_coherency);
