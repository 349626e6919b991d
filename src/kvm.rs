// SPDX-License-Identifier: GPL-2.0

//! The kernel-side contract for KVM: what KVM would call on an ioasid `struct file`.
//!
//! KVM allows a guest's WBINVD only while the VM has non-coherent DMA (x86:
//! `kvm_arch_register_noncoherent_dma`). For VFIO, KVM's VFIO pseudo-device asks
//! `vfio_file_enforced_coherent` once, when a group is added. For ioasid the answer can change
//! at any time (devices are attached and detached, IOASIDs freed, the file closed), so the
//! contract is a reference, a question and a watch:
//!
//! - [`ioasid_ctx_get_file`] takes a reference to the context behind an ioasid file (`NULL` for
//!   any other file); [`ioasid_ctx_put`] drops it. The reference keeps the context's memory
//!   alive after user space closes the file; the close itself still tears the context down
//!   (devices unbound, DMA blocked, pages unpinned), and the answer becomes `false`.
//! - [`ioasid_ctx_noncoherent_dma`]: is non-coherent DMA possible now (a non-coherent IOASID
//!   has an assumed non-coherent device attached) and does the administrator allow acting on
//!   it? Takes no lock.
//! - [`ioasid_ctx_watch_coherency`] registers a `struct ioasid_coherency_watch` whose
//!   `changed()` is called exactly once per change of that answer, in order, and returns the
//!   answer at registration; [`ioasid_ctx_unwatch_coherency`] unregisters it, after which it is
//!   never called again.
//!
//! The C declarations are in `include/linux/ioasid_kvm.h`; `src/kvm_export.c` exports these
//! functions with `EXPORT_SYMBOL_GPL`. `Documentation/userspace-api/ioasid.rst` describes how
//! QEMU and KVM use them. This file holds the `unsafe` of the contract: everything it hands to
//! the rest of the module is safe.

use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow, //
    },
    types::ForeignOwnable,
};

use crate::{
    context::Context,
    kvm_types::{
        IoasidCoherencyWatch,
        IoasidCtx,
        Watch, //
    },
};

/// The `file_operations` of `/dev/ioasid` files (the misc device's), as an address; 0 before
/// the device is registered.
static FOPS: Atomic<usize> = Atomic::new(0);

/// Records the `file_operations` that identify ioasid files, once the misc device exists.
pub(crate) fn set_fops(misc: *mut bindings::miscdevice) {
    // SAFETY: `misc` is the registered misc device; its `fops` never changes.
    let fops = unsafe { (*misc).fops };
    FOPS.store(fops as usize, Relaxed);
}

/// Takes a reference to the context behind `file`, or returns `NULL` if `file` is not an open
/// `/dev/ioasid` file.
///
/// # Safety
///
/// `file` must be a valid `struct file` on which the caller holds a reference.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_ctx_get_file(file: *mut bindings::file) -> *mut IoasidCtx {
    let ours = FOPS.load(Relaxed);
    if file.is_null() || ours == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: `file` is valid (function's safety requirement).
    if unsafe { (*file).f_op } as usize != ours {
        return core::ptr::null_mut();
    }
    // SAFETY: an open ioasid file's private data is its context, as stored by the misc device's
    // `open()` (`Arc::into_foreign`), and stays so until `release()`, which cannot run while the
    // caller holds its reference to the file.
    let ctx: ArcBorrow<'_, Context> = unsafe { <Arc<Context>>::borrow((*file).private_data) };
    Arc::into_raw(Arc::from(ctx)).cast_mut().cast()
}

/// Borrows the context of a reference from [`ioasid_ctx_get_file`].
///
/// # Safety
///
/// `ctx` must be a reference returned by [`ioasid_ctx_get_file`] and not yet put.
unsafe fn ctx_ref<'a>(ctx: *mut IoasidCtx) -> &'a Context {
    // SAFETY: `ctx` came from `Arc::into_raw` and the reference is still held.
    unsafe { &*ctx.cast_const().cast::<Context>() }
}

/// Drops a reference taken by [`ioasid_ctx_get_file`].
///
/// # Safety
///
/// `ctx` must be a reference returned by [`ioasid_ctx_get_file`] and not yet put; no watch of
/// the caller may be registered on it any more.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_ctx_put(ctx: *mut IoasidCtx) {
    // SAFETY: `ctx` came from `Arc::into_raw`, and this gives that reference back.
    drop(unsafe { Arc::from_raw(ctx.cast_const().cast::<Context>()) });
}

/// Whether non-coherent DMA is possible now through the context (and WBINVD not forbidden).
///
/// # Safety
///
/// `ctx` must be a reference returned by [`ioasid_ctx_get_file`] and not yet put.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_ctx_noncoherent_dma(ctx: *mut IoasidCtx) -> bool {
    // SAFETY: the function's safety requirement.
    unsafe { ctx_ref(ctx) }.coherency().noncoherent_dma()
}

/// Registers `watch`; stores the current answer in `*noncoherent`. Returns 0, `-EINVAL` if
/// `watch` has no `changed()`, or `-ENOMEM`.
///
/// # Safety
///
/// `ctx` must be a reference returned by [`ioasid_ctx_get_file`] and not yet put; `watch` and
/// `noncoherent` must be valid, `watch` until it is unregistered.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_ctx_watch_coherency(
    ctx: *mut IoasidCtx,
    watch: *mut IoasidCoherencyWatch,
    noncoherent: *mut bool,
) -> c_int {
    let Some(ptr) = NonNull::new(watch) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `watch` is valid until unregistered (function's safety requirement).
    let Some(w) = (unsafe { Watch::new(ptr) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: the function's safety requirement.
    match unsafe { ctx_ref(ctx) }.coherency().watch(w) {
        Ok(answer) => {
            // SAFETY: `noncoherent` is valid (function's safety requirement).
            unsafe { *noncoherent = answer };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Unregisters `watch`; from when this returns, it is not called any more. Returns 0, or
/// `-ENOENT` if it was not registered.
///
/// # Safety
///
/// `ctx` must be a reference returned by [`ioasid_ctx_get_file`] and not yet put.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_ctx_unwatch_coherency(
    ctx: *mut IoasidCtx,
    watch: *mut IoasidCoherencyWatch,
) -> c_int {
    let Some(ptr) = NonNull::new(watch) else {
        return ENOENT.to_errno();
    };
    // SAFETY: the function's safety requirement.
    if unsafe { ctx_ref(ctx) }.coherency().unwatch(ptr) {
        0
    } else {
        ENOENT.to_errno()
    }
}
