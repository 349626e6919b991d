// SPDX-License-Identifier: GPL-2.0

//! The types of the KVM contract, `include/linux/ioasid_kvm.h`, and a registered watch.
//!
//! The types are generated from the header by bindgen at build time (see `Kbuild`), as the
//! uAPI's are: the header is the one source of their layout. [`Watch`] is a registered
//! `struct ioasid_coherency_watch`, the callback KVM gives to be told when a context's
//! coherency answer changes.
//!
//! A leaf of the module's imports: [`crate::coherency`] keeps the registered watches and calls
//! them, and [`crate::kvm`] creates them from what KVM passes in.

use core::ptr::NonNull;

/// The types bindgen generated from `include/linux/ioasid_kvm.h`.
#[allow(
    dead_code,
    non_camel_case_types,
    unreachable_pub,
    missing_docs,
    clippy::all
)]
mod generated {
    include!("kvm_generated.rs");
}

/// `struct ioasid_coherency_watch`.
pub(crate) use generated::ioasid_coherency_watch as IoasidCoherencyWatch;
/// `struct ioasid_ctx`: opaque to C, it is a [`crate::context::Context`].
pub(crate) use generated::ioasid_ctx as IoasidCtx;

/// A registered watch.
///
/// # Invariants
///
/// `ptr` points to a `struct ioasid_coherency_watch` with a non-null `changed`, which its owner
/// keeps valid, and unchanged, until it is unregistered.
pub(crate) struct Watch {
    ptr: NonNull<IoasidCoherencyWatch>,
}

// SAFETY: the watch's owner allows it to be called from any thread (documented in the header).
unsafe impl Send for Watch {}
// SAFETY: as above.
unsafe impl Sync for Watch {}

impl Watch {
    /// A watch for the `struct ioasid_coherency_watch` at `ptr`, or `None` if it has no
    /// `changed()`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid, and stay valid and unchanged until the watch is unregistered.
    pub(crate) unsafe fn new(ptr: NonNull<IoasidCoherencyWatch>) -> Option<Self> {
        // SAFETY: `ptr` is valid (function's safety requirement).
        unsafe { (*ptr.as_ptr()).changed }?;
        // INVARIANT: valid with a `changed()`, and kept valid until unregistered.
        Some(Watch { ptr })
    }

    /// Whether this is the watch at `ptr`.
    pub(crate) fn is(&self, ptr: NonNull<IoasidCoherencyWatch>) -> bool {
        self.ptr == ptr
    }

    /// Calls the watch's `changed()` with the new answer.
    pub(crate) fn notify(&self, noncoherent: bool) {
        // SAFETY: `ptr` is valid and registered (type invariant).
        if let Some(changed) = unsafe { (*self.ptr.as_ptr()).changed } {
            // SAFETY: `changed` is the owner's callback for this watch (type invariant).
            unsafe { changed(self.ptr.as_ptr(), noncoherent) };
        }
    }
}
