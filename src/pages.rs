// SPDX-License-Identifier: GPL-2.0

//! Pinned user memory, and who pays for it.
//!
//! [`PinnedPages`] pins a range of the calling process's memory with `FOLL_LONGTERM` (the pages
//! cannot move or be reclaimed while a device may DMA to them). Dropping it unpins the pages
//! (marking them dirty if the device could write them), in whatever task that happens. Callers
//! must have removed every IOMMU mapping of the pages, with the IOTLB flushed, before dropping it.
//!
//! The pages are accounted as upstream iommufd does by default:
//!
//! - they are charged to the calling task's *user* (`user_struct::locked_vm`, the counter that
//!   io_uring and iommufd charge too), which may not exceed the caller's `RLIMIT_MEMLOCK`; a caller
//!   with `CAP_IPC_LOCK` is exempt and charges nothing. A reference on the `user_struct` is held
//!   until the pages are unpinned, so that the charge goes back to the same user whichever task
//!   unpins them. A process's own `locked_vm` would not do: it dies with the process while the
//!   file (inherited by `fork()`, kept across `exec()`, passed with `SCM_RIGHTS`) keeps the pages
//!   pinned, so that every new process could pin its limit again;
//! - they are added to the pinning process's `mm->pinned_vm` (`VmPin` in `/proc/<pid>/status`), for
//!   visibility only (no limit applies to it), the mm being held (`mmgrab`) until they are unpinned;
//! - they are counted in [`PINNED_PAGES`], debugfs `ioasid/pinned_pages`.

use core::{
    cmp::min,
    fmt,
    ptr::{
        null_mut,
        NonNull, //
    },
};
use kernel::{
    bindings, current,
    ffi::{
        c_int,
        c_uint,
        c_ulong,
        c_void, //
    },
    mm::Mm,
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
    },
};

extern "C" {
    /// `page_to_phys()`, from `src/helpers.c`. `page` is a `struct page *`.
    fn ioasid_page_to_phys(page: *mut c_void) -> bindings::phys_addr_t;
    /// `get_current_user()`, from `src/helpers.c`: a new reference on the current task's user.
    fn ioasid_get_current_user() -> *mut bindings::user_struct;
    /// `&user->locked_vm`, from `src/helpers.c`.
    fn ioasid_user_locked_vm(user: *mut bindings::user_struct) -> *mut bindings::atomic_long_t;
    /// `&mm->pinned_vm`, from `src/helpers.c`. `mm` is a `struct mm_struct *`.
    fn ioasid_mm_pinned_vm(mm: *mut c_void) -> *mut bindings::atomic64_t;
    /// `rlimit(limit)`, from `src/helpers.c`: the current task's soft limit.
    fn ioasid_rlimit(limit: c_uint) -> c_ulong;
    /// `fatal_signal_pending(current)`, from `src/helpers.c`.
    fn ioasid_fatal_signal_pending() -> bool;
    /// `folio_ref_count(page_folio(page))`, from `src/helpers.c`. `page` is a `struct page *`.
    fn ioasid_page_refcount(page: *mut c_void) -> c_int;
}

/// The reference count past which a page is not pinned once more: each `FOLL_PIN` of a small
/// folio adds `GUP_PIN_COUNTING_BIAS` (1024) to it, so the same page mapped at many addresses
/// and pinned through each (by one user with a large `RLIMIT_MEMLOCK`, or `CAP_IPC_LOCK`)
/// would otherwise overflow it: GUP warns then, and a count that wrapped is a use-after-free
/// waiting to happen. Half the range leaves room for every batch pinned concurrently
/// (`PIN_BATCH` pins of one page add at most 2^19) and for the kernel's other users.
const PIN_REFCOUNT_LIMIT: c_int = 1 << 30;

/// Whether one more pin of `page`, which the caller holds pinned, could overflow its count.
fn pinned_too_often(page: *mut bindings::page) -> bool {
    // SAFETY: `page` is pinned by the caller, so it and its folio stay valid.
    let count = unsafe { ioasid_page_refcount(page.cast()) };
    count > PIN_REFCOUNT_LIMIT
}

/// Whether the current task was sent a fatal signal (it is being killed).
fn fatal_signal_pending() -> bool {
    // SAFETY: reads the current task's pending signals, which is always allowed.
    unsafe { ioasid_fatal_signal_pending() }
}

/// Pages pinned per `pin_user_pages_fast` call.
const PIN_BATCH: usize = 512;

/// The pages pinned by the module now, all contexts and users together.
pub(crate) static PINNED_PAGES: Atomic<usize> = Atomic::new(0);

/// What the debugfs file `ioasid/pinned_pages` shows: [`PINNED_PAGES`].
pub(crate) struct PinnedPagesCount;

impl fmt::Debug for PinnedPagesCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", PINNED_PAGES.load(Relaxed))
    }
}

/// A reference on a user (`struct user_struct`), dropped with `free_uid`.
///
/// # Invariants
///
/// `self.0` points to a valid `user_struct` on which this value holds one reference.
struct User(NonNull<bindings::user_struct>);

// SAFETY: a reference on a `user_struct` may be dropped by any task (`free_uid` takes the locks it
// needs itself, with interrupts disabled); `locked_vm` is only accessed atomically.
unsafe impl Send for User {}
// SAFETY: `&User` only gives atomic access to `locked_vm`.
unsafe impl Sync for User {}

impl User {
    /// The user of the current task's credentials (its real UID).
    fn current() -> Self {
        // SAFETY: `get_current_user()` may be called from any task; it returns
        // `current_cred()->user` with a reference taken on it.
        let user = unsafe { ioasid_get_current_user() };
        // INVARIANT: the reference taken above now belongs to this value.
        // SAFETY: the `user` of a credential is never NULL (every cred holds a reference on one).
        User(unsafe { NonNull::new_unchecked(user) })
    }

    /// The user's `locked_vm`: the pages charged to it against `RLIMIT_MEMLOCK`, in `usize` (an
    /// `atomic_long_t` is as wide as a pointer).
    fn locked_vm(&self) -> &Atomic<usize> {
        // SAFETY: `self.0` is a valid `user_struct` (type invariant).
        let counter = unsafe { ioasid_user_locked_vm(self.0.as_ptr()) };
        // SAFETY: `counter` points to an `atomic_long_t`, a `long` only ever accessed atomically,
        // of the size and alignment of `usize`, that lives as long as the reference `self` holds.
        unsafe { Atomic::from_ptr(counter.cast::<usize>()) }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: this value holds one reference (type invariant), released once, here.
        unsafe { bindings::free_uid(self.0.as_ptr()) };
    }
}

/// `npages` pinned pages charged to a user against `RLIMIT_MEMLOCK`; uncharged on drop.
///
/// # Invariants
///
/// If `user` is `Some`, `npages` were added to its `locked_vm` and have not been subtracted.
struct UserCharge {
    user: Option<User>,
    npages: usize,
}

impl UserCharge {
    /// Charges `npages` to the current task's user, failing with `ENOMEM` if its total would
    /// exceed the current task's `RLIMIT_MEMLOCK`; charges nothing if the current task has
    /// `CAP_IPC_LOCK`.
    fn charge(npages: usize) -> Result<Self> {
        // SAFETY: `capable()` may be called from any task.
        if unsafe { bindings::capable(bindings::CAP_IPC_LOCK as c_int) } {
            // INVARIANT: nothing charged.
            return Ok(UserCharge { user: None, npages });
        }
        // SAFETY: `rlimit()` reads the current task's limits, which is always allowed.
        let limit: usize = unsafe { ioasid_rlimit(bindings::RLIMIT_MEMLOCK) } >> PAGE_SHIFT;
        let user = User::current();
        let locked = user.locked_vm();
        let mut cur = locked.load(Relaxed);
        // Compare and add in one step: concurrent maps by threads or processes of the same user
        // cannot together overshoot the limit.
        loop {
            let new = cur
                .checked_add(npages)
                .filter(|&new| new <= limit)
                .ok_or(ENOMEM)?;
            match locked.cmpxchg(cur, new, Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        // INVARIANT: `npages` were added to `user`'s `locked_vm`.
        Ok(UserCharge {
            user: Some(user),
            npages,
        })
    }
}

impl Drop for UserCharge {
    fn drop(&mut self) {
        if let Some(user) = &self.user {
            // The charge was made (type invariant) and the reference keeps the user alive.
            user.locked_vm().fetch_sub(self.npages, Relaxed);
        }
    }
}

/// The `pinned_vm` (`VmPin`) of `mm`: the pages pinned for its process, in pages.
fn pinned_vm(mm: &Mm) -> &Atomic<i64> {
    // SAFETY: `mm` is a valid `mm_struct`.
    let counter = unsafe { ioasid_mm_pinned_vm(mm.as_raw().cast()) };
    // SAFETY: `counter` points to an `atomic64_t` of `mm`, only ever accessed atomically, which
    // lives at least as long as the reference on `mm` that `&Mm` implies.
    unsafe { Atomic::from_ptr(counter.cast::<i64>()) }
}

/// User pages pinned for DMA and accounted (see the [module documentation](self)).
///
/// # Invariants
///
/// - Each of `pages[..pinned]` holds one `FOLL_PIN` pin taken by this value.
/// - `pinned` pages are counted in `mm`'s `pinned_vm` and in [`PINNED_PAGES`], by this value.
/// - `_charge` is the charge of `pages.len()` pages (none if the caller was exempt), at least
///   `pinned`, and `pages.len()` fits an `i64`.
pub(crate) struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
    pinned: usize,
    writable: bool,
    /// The process's mm whose `pinned_vm` counts the pages, held with `mmgrab`.
    mm: ARef<Mm>,
    /// Dropped after the pages are unpinned (fields are dropped after `drop()`).
    _charge: UserCharge,
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
    /// Fails with `ENOMEM` past `RLIMIT_MEMLOCK` (or out of memory, or for a page pinned so
    /// often already that its reference count nears overflow: [`PIN_REFCOUNT_LIMIT`]), with
    /// `EFAULT` if part of
    /// the range is not mapped (or not writable, when `writable`) or it reaches the end of the
    /// address space, and with `EINTR` if the task gets a fatal signal meanwhile (checked between
    /// batches of `PIN_BATCH` pages, and whenever GUP gives up). Nothing stays pinned or
    /// charged on failure. Called with no lock of the module held: it may wait for page faults
    /// as long as user space makes it.
    pub(crate) fn pin(uaddr: u64, npages: usize, writable: bool) -> Result<Self> {
        // A range that reaches the end of the address space holds no user memory.
        let uaddr = usize::try_from(uaddr).map_err(|_| EFAULT)?;
        npages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| uaddr.checked_add(len))
            .ok_or(EFAULT)?;
        // The counters below are `i64`: refuse what they cannot count (an absurd size anyway).
        i64::try_from(npages).map_err(|_| ENOMEM)?;
        let task = current!();
        let mm = task.mm().ok_or(EFAULT)?;
        // Charged first, so that a request past the limit allocates nothing.
        let charge = UserCharge::charge(npages)?;
        // The size comes from user space: fail quietly if it is absurd.
        let pages = KVVec::from_elem(null_mut(), npages, GFP_KERNEL_ACCOUNT | __GFP_NOWARN)?;
        // INVARIANT: nothing pinned yet; `charge` is for `npages` = `pages.len()` pages, which
        // fits an `i64` (checked above).
        let mut this = PinnedPages {
            pages,
            pinned: 0,
            writable,
            mm: ARef::from(&**mm),
            _charge: charge,
        };
        let mut flags = bindings::FOLL_LONGTERM;
        if writable {
            flags |= bindings::FOLL_WRITE;
        }
        while this.pinned < npages {
            let nr = min(npages - this.pinned, PIN_BATCH);
            // In bounds: `uaddr + npages * PAGE_SIZE` does not wrap (checked above).
            let start = uaddr + this.pinned * PAGE_SIZE;
            // SAFETY: `pages[pinned..pinned + nr]` is valid for writes of `nr` pointers;
            // `pin_user_pages_fast` pins pages of the current task's memory.
            let ret = unsafe {
                bindings::pin_user_pages_fast(
                    start,
                    nr as c_int,
                    flags,
                    this.pages.as_mut_ptr().add(this.pinned),
                )
            };
            let got = match usize::try_from(ret) {
                Ok(got) if got > 0 => got,
                // A fault GUP waited on (userfaultfd, FUSE, swap) was cut short by a fatal
                // signal: GUP says `EINTR`, `ERESTARTSYS` or `EFAULT` depending on where.
                _ if fatal_signal_pending() => return Err(EINTR),
                // `this` is dropped: what was pinned is unpinned, everything uncharged.
                _ if ret < 0 => return Err(Error::from_errno(ret)),
                _ => return Err(EFAULT),
            };
            // INVARIANT: `got` more pages hold a pin now, and are counted now.
            // `pin_user_pages_fast` pins at most `nr`, so `pinned` stays within `npages`, which
            // fits an `i64`.
            this.pinned += got;
            pinned_vm(&this.mm).fetch_add(got as i64, Relaxed);
            PINNED_PAGES.fetch_add(got, Relaxed);
            if this.pages[this.pinned - got..this.pinned]
                .iter()
                .any(|&p| pinned_too_often(p))
            {
                // `this` is dropped: everything unpinned and uncharged.
                return Err(ENOMEM);
            }
            // User space decides how many batches there are; a process being killed stops
            // pinning at once (GUP's fast path does not look at signals).
            crate::iommu::cond_resched();
            if this.pinned < npages && fatal_signal_pending() {
                return Err(EINTR);
            }
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
        // The counts this value added (type invariant; `pinned` fits an `i64`). The user's
        // charge is returned after this, when `_charge` is dropped.
        pinned_vm(&self.mm).fetch_sub(self.pinned as i64, Relaxed);
        PINNED_PAGES.fetch_sub(self.pinned, Relaxed);
    }
}
