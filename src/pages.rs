// SPDX-License-Identifier: GPL-2.0

//! Pinned user memory, accounted against `RLIMIT_MEMLOCK`.
//!
//! [`PinnedPages`] pins a range of the calling process's memory with `FOLL_LONGTERM` (the pages
//! cannot move or be reclaimed while a device may DMA to them) and charges it to the process's
//! `locked_vm`, which `RLIMIT_MEMLOCK` limits unless the caller has `CAP_IPC_LOCK`. Dropping it
//! unpins the pages (marking them dirty if the device could write them) and uncharges them, in
//! whatever task that happens. Callers must have removed every IOMMU mapping of the pages, with
//! the IOTLB flushed, before dropping it.

use core::{
    cmp::min,
    ptr::null_mut, //
};
use kernel::{
    bindings, current, ffi::c_void, mm::Mm, page::PAGE_SIZE, prelude::*, sync::aref::ARef,
};

extern "C" {
    /// `page_to_phys()`, from `src/helpers.c`. `page` is a `struct page *`.
    fn ioasid_page_to_phys(page: *mut c_void) -> bindings::phys_addr_t;
}

/// Pages pinned per `pin_user_pages_fast` call.
const PIN_BATCH: usize = 512;

/// `npages` of locked memory charged to `mm`; uncharged on drop.
///
/// # Invariants
///
/// `account_locked_vm(mm, npages, true)` succeeded and has not been undone.
struct LockedVm {
    mm: ARef<Mm>,
    npages: usize,
}

impl LockedVm {
    fn charge(mm: &Mm, npages: usize) -> Result<Self> {
        // SAFETY: `mm` is a valid mm; `account_locked_vm` takes its mmap lock itself and fails
        // with `-ENOMEM` above `RLIMIT_MEMLOCK` unless the current task has `CAP_IPC_LOCK`.
        let ret = unsafe { bindings::account_locked_vm(mm.as_raw(), npages, true) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: the charge succeeded.
        Ok(LockedVm {
            mm: mm.into(),
            npages,
        })
    }
}

impl Drop for LockedVm {
    fn drop(&mut self) {
        // SAFETY: the charge was made (type invariant); `mm` is kept alive by `ARef`.
        unsafe { bindings::account_locked_vm(self.mm.as_raw(), self.npages, false) };
    }
}

/// User pages pinned for DMA and charged to their process's `locked_vm`.
///
/// # Invariants
///
/// Each of `pages[..pinned]` holds one `FOLL_PIN` pin taken by this value, and `_locked`
/// charges at least `pinned` pages.
pub(crate) struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
    pinned: usize,
    writable: bool,
    _locked: LockedVm,
}

// SAFETY: pinned pages may be unpinned from any task; the raw pointers are only handed to the
// kernel's page functions.
unsafe impl Send for PinnedPages {}
// SAFETY: `&self` only reads the page pointers.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Pins `npages` pages of the calling process at user address `uaddr` (page aligned), for a
    /// device to read them and, if `writable`, to write them.
    ///
    /// Fails with `ENOMEM` past `RLIMIT_MEMLOCK`, and with `EFAULT` if part of the range is not
    /// mapped (or not writable, when `writable`). Nothing stays pinned or charged on failure.
    pub(crate) fn pin(uaddr: u64, npages: usize, writable: bool) -> Result<Self> {
        let task = current!();
        let mm = task.mm().ok_or(EFAULT)?;
        let locked = LockedVm::charge(mm, npages)?;
        // The size comes from user space: fail quietly if it is absurd.
        let pages = KVVec::from_elem(null_mut(), npages, GFP_KERNEL_ACCOUNT | __GFP_NOWARN)?;
        let mut this = PinnedPages {
            pages,
            pinned: 0,
            writable,
            _locked: locked,
        };
        let mut flags = bindings::FOLL_LONGTERM;
        if writable {
            flags |= bindings::FOLL_WRITE;
        }
        while this.pinned < npages {
            let nr = min(npages - this.pinned, PIN_BATCH);
            let start = uaddr + (this.pinned * PAGE_SIZE) as u64;
            // SAFETY: `pages[pinned..pinned + nr]` is valid for writes of `nr` pointers;
            // `pin_user_pages_fast` pins pages of the current task's memory.
            let ret = unsafe {
                bindings::pin_user_pages_fast(
                    usize::try_from(start)?,
                    nr as i32,
                    flags,
                    this.pages.as_mut_ptr().add(this.pinned),
                )
            };
            if ret <= 0 {
                // `this` is dropped: what was pinned is unpinned, the charge undone.
                return Err(if ret < 0 {
                    Error::from_errno(ret)
                } else {
                    EFAULT
                });
            }
            // INVARIANT: `ret` more pages hold a pin now.
            this.pinned += ret as usize;
        }
        Ok(this)
    }

    /// The number of pages.
    pub(crate) fn len(&self) -> usize {
        self.pinned
    }

    /// The physical address of page `i`.
    pub(crate) fn phys(&self, i: usize) -> u64 {
        // SAFETY: `pages[i]` is a pinned, hence valid, page (type invariant; indexing panics
        // past `pinned`, which the callers never pass).
        unsafe { ioasid_page_to_phys(self.pages[..self.pinned][i].cast()) }
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        if self.pinned == 0 {
            return;
        }
        // SAFETY: `pages[..pinned]` hold pins taken by this value (type invariant), released
        // once, here. A device may have written them if they were mapped writable.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr(),
                self.pinned,
                self.writable,
            )
        };
    }
}
