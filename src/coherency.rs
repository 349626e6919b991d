// SPDX-License-Identifier: GPL-2.0

//! Cache coherency of DMA, and when WBINVD is needed (seed 000).
//!
//! # The model
//!
//! - An IOASID is *coherent* (allocated with `IOASID_ALLOC_COHERENT`: every mapping carries
//!   `IOMMU_CACHE` and its domains block no-snoop DMA) or *non-coherent* (anything goes).
//! - A device is *coherent-only* (it cannot emit no-snoop transactions: see
//!   [`crate::iommu::PciDev::may_emit_no_snoop`]) or *assumed non-coherent*.
//! - DMA through a context may bypass the CPU caches exactly while a non-coherent IOASID of the
//!   context has an assumed non-coherent device attached. Only then is WBINVD needed, and only
//!   then does `IOASID_EXECUTE_WBINVD` run it.
//!
//! Each context has one [`Coherency`]. Its IOASIDs count the assumed non-coherent devices
//! attached to them while they are non-coherent and live ([`Coherency::get`],
//! [`Coherency::put`]). The answer given to KVM ([`Coherency::noncoherent_dma`]) is "the count
//! is nonzero and the administrator did not forbid WBINVD"; every change of that answer is
//! reported to the registered watches, exactly once, in order.
//!
//! # Locking
//!
//! The coherency mutex is taken inside an IOASID's state mutex (see [`crate::ioasid`]) and
//! before nothing else of this module: it is the innermost mutex but for the ID tables' XArray
//! locks, which are never held with it. Watches are called with it held (and with the IOASID
//! and device locks of the change's caller held); they must not call back into this module but
//! for [`Coherency::noncoherent_dma`], which takes no lock.

use core::ptr::NonNull;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
};

use crate::{
    kvm_types::{
        IoasidCoherencyWatch,
        Watch, //
    },
    uapi,
};

/// How many times WBINVD was executed on behalf of user space, since the module was loaded.
static WBINVD_RUNS: Atomic<u64> = Atomic::new(0);

/// Whether WBINVD is needed for a context: `enum ioasid_wbinvd_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WbinvdState {
    /// No non-coherent DMA is possible.
    NotNeeded,
    /// Non-coherent DMA is possible: `IOASID_EXECUTE_WBINVD` flushes the caches.
    Needed,
    /// The administrator forbade WBINVD (`forbid_wbinvd`).
    Forbidden,
    /// The architecture has no WBINVD.
    Unsupported,
}

impl WbinvdState {
    /// The uAPI value.
    pub(crate) fn to_uapi(self) -> u32 {
        match self {
            Self::NotNeeded => uapi::IOASID_WBINVD_NOT_NEEDED,
            Self::Needed => uapi::IOASID_WBINVD_NEEDED,
            Self::Forbidden => uapi::IOASID_WBINVD_FORBIDDEN,
            Self::Unsupported => uapi::IOASID_WBINVD_UNSUPPORTED,
        }
    }
}

/// Whether this architecture has a WBINVD instruction.
const ARCH_HAS_WBINVD: bool = cfg!(CONFIG_X86);

/// Whether the administrator forbade WBINVD (module parameter `forbid_wbinvd`, fixed at load).
fn forbidden() -> bool {
    crate::module_parameters::forbid_wbinvd.value()
}

struct Inner {
    /// Assumed non-coherent devices attached to live non-coherent IOASIDs of the context.
    count: u32,
    /// The registered watches (the KVM-facing callbacks).
    watches: KVec<Watch>,
}

/// The coherency state of one context.
///
/// # Invariants
///
/// `answer` is true exactly when `inner.count > 0` and WBINVD is not forbidden; it only changes
/// with `inner` locked, and every watch registered at the time of a change is told of it once.
#[pin_data]
pub(crate) struct Coherency {
    #[pin]
    inner: Mutex<Inner>,
    /// The answer given to KVM, readable without the lock.
    answer: Atomic<bool>,
}

impl Coherency {
    /// The state of a new context: nothing attached, no watch.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                inner <- new_mutex!(Inner {
                    count: 0,
                    watches: KVec::new(),
                }),
                answer: Atomic::new(false),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Recomputes the answer after `inner.count` changed and tells every watch if it changed.
    fn update(&self, inner: &Inner) {
        let answer = inner.count > 0 && !forbidden();
        if self.answer.xchg(answer, Relaxed) != answer {
            for w in inner.watches.iter() {
                w.notify(answer);
            }
        }
    }

    /// An assumed non-coherent device became able to DMA through a non-coherent IOASID.
    pub(crate) fn get(&self) {
        let mut inner = self.inner.lock();
        inner.count += 1;
        self.update(&inner);
    }

    /// Undoes one [`Coherency::get`]: the device was detached, or its IOASID freed.
    pub(crate) fn put(&self) {
        let mut inner = self.inner.lock();
        inner.count -= 1;
        self.update(&inner);
    }

    /// Whether non-coherent DMA is possible now through this context and the administrator
    /// allows acting on it: what KVM asks. Takes no lock.
    pub(crate) fn noncoherent_dma(&self) -> bool {
        self.answer.load(Relaxed)
    }

    /// Whether WBINVD is needed, and may be executed, for this context.
    pub(crate) fn wbinvd_state(&self) -> WbinvdState {
        if !ARCH_HAS_WBINVD {
            WbinvdState::Unsupported
        } else if forbidden() {
            WbinvdState::Forbidden
        } else if self.noncoherent_dma() {
            // Not forbidden: the answer is exactly "the count is nonzero".
            WbinvdState::Needed
        } else {
            WbinvdState::NotNeeded
        }
    }

    /// `IOASID_EXECUTE_WBINVD`: flushes the caches of all CPUs if, and only if, WBINVD is
    /// needed. Errors: `ENODATA` if it is not, `EPERM` if it is forbidden, `EOPNOTSUPP` if the
    /// architecture has no WBINVD.
    pub(crate) fn execute_wbinvd(&self) -> Result {
        match self.wbinvd_state() {
            WbinvdState::Needed => {
                crate::iommu::wbinvd_on_all_cpus()?;
                WBINVD_RUNS.fetch_add(1, Relaxed);
                Ok(())
            }
            WbinvdState::NotNeeded => Err(ENODATA),
            WbinvdState::Forbidden => Err(EPERM),
            WbinvdState::Unsupported => Err(EOPNOTSUPP),
        }
    }

    /// Registers `watch`; returns the answer at the time of registration, from which the watch
    /// is told of every change until [`Coherency::unwatch`].
    pub(crate) fn watch(&self, watch: Watch) -> Result<bool> {
        let mut inner = self.inner.lock();
        inner.watches.push(watch, GFP_KERNEL_ACCOUNT)?;
        Ok(self.noncoherent_dma())
    }

    /// Unregisters `watch`. Once this returns, the watch is not called any more. Returns
    /// whether it was registered.
    pub(crate) fn unwatch(&self, watch: NonNull<IoasidCoherencyWatch>) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.watches.len();
        inner.watches.retain(|w| !w.is(watch));
        inner.watches.len() != before
    }
}

/// The `ioasid/wbinvd_count` debugfs file: how many times WBINVD was executed for user space.
pub(crate) struct WbinvdCount;

impl core::fmt::Debug for WbinvdCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", WBINVD_RUNS.load(Relaxed))
    }
}

#[kunit_tests(ioasid_coherency)]
mod tests {
    use super::*;

    static EVENTS: Atomic<u32> = Atomic::new(0);
    static LAST: Atomic<bool> = Atomic::new(false);

    /// The watch's callback: counts and records.
    ///
    /// # Safety
    ///
    /// None beyond the callback's contract; it does not dereference `_watch`.
    unsafe extern "C" fn changed(_watch: *mut IoasidCoherencyWatch, noncoherent: bool) {
        EVENTS.fetch_add(1, Relaxed);
        LAST.store(noncoherent, Relaxed);
    }

    #[test]
    fn the_answer_follows_the_count_and_each_change_is_reported_once() -> Result {
        let allowed = !forbidden();
        let c = Coherency::new()?;
        let mut w = IoasidCoherencyWatch {
            changed: Some(changed),
        };
        let ptr = NonNull::from(&mut w);
        EVENTS.store(0, Relaxed);
        // SAFETY: `w` outlives its registration: it is unregistered below.
        let watch = unsafe { Watch::new(ptr) }.ok_or(EINVAL)?;
        assert!(!c.watch(watch)?);
        c.get();
        assert_eq!(c.noncoherent_dma(), allowed);
        c.get();
        c.put();
        // One change for 0 -> 1, none for 1 -> 2 -> 1.
        assert_eq!(EVENTS.load(Relaxed), u32::from(allowed));
        assert_eq!(LAST.load(Relaxed), allowed);
        c.put();
        assert!(!c.noncoherent_dma());
        assert_eq!(EVENTS.load(Relaxed), 2 * u32::from(allowed));
        assert!(c.unwatch(ptr));
        assert!(!c.unwatch(ptr));
        // Not registered any more: not told.
        c.get();
        c.put();
        assert_eq!(EVENTS.load(Relaxed), 2 * u32::from(allowed));
        Ok(())
    }

    #[test]
    fn a_watch_without_callback_is_refused() {
        let mut w = IoasidCoherencyWatch { changed: None };
        // SAFETY: `w` is valid; it is never registered.
        assert!(unsafe { Watch::new(NonNull::from(&mut w)) }.is_none());
    }
}
