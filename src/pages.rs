// SPDX-License-Identifier: GPL-2.0

//! Pinned user memory, and who pays for it.
//!
//! [`PinnedPages`] pins a range of the calling process's memory with `FOLL_LONGTERM` (the pages
//! cannot move or be reclaimed while a device may DMA to them). Dropping it unpins the pages
//! (marking them dirty if the device could write them), in whatever task that happens. Callers
//! must have removed every IOMMU mapping of the pages, with the IOTLB flushed, before dropping it.
//!
//! The pages are kept as [`Run`]s of physically contiguous pages, 8 bytes each, merged as they
//! are pinned: 1 GiB of 4 KiB pages scattered in memory costs what a page list would (8 bytes a
//! page), 1 GiB of 2 MiB hugetlb at most 512 runs and often one, 1 GiB of 1 GiB hugetlb one run.
//! GUP still hands out one `struct page *` per 4 KiB page, into a temporary buffer of one batch
//! that is collapsed into runs ([`RunBuilder`]) and reused for the next batch; the pages are
//! unpinned a run at a time with `unpin_user_page_range_dirty_lock`, which releases each folio's
//! pins at once.
//!
//! Pinning never waits for user space while it holds pins it has not checked yet. Present pages
//! are pinned a batch at a time with `FOLL_NOFAULT`, then checked ([`PIN_REFCOUNT_LIMIT`]); a
//! page that is not present is faulted in first, with no pin held (a userfaultfd or FUSE fault
//! may take forever), then pinned. And all tasks together hold at most [`UNCHECKED_REFS_MAX`]
//! references from pins not checked yet ([`Unchecked`]), whatever the number of threads: a
//! page's reference count cannot be driven past `INT_MAX` by many batches in flight at once.
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
    error::to_result,
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong,
        c_void, //
    },
    fs::{
        file,
        LocalFile, //
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
    time::{
        delay::fsleep,
        Delta, //
    },
};

extern "C" {
    /// `page_to_pfn()`, from `src/helpers.c`.
    fn ioasid_page_to_pfn(page: *mut c_void) -> c_ulong;
    /// `pfn_to_page()`, from `src/helpers.c`.
    fn ioasid_pfn_to_page(pfn: c_ulong) -> *mut c_void;
    /// `totalram_pages()`, from `src/helpers.c`: the pages of memory the kernel manages.
    fn ioasid_totalram_pages() -> c_ulong;
    /// `folio_pfn()`, from `src/helpers.c`. `folio` is a `struct folio *`.
    fn ioasid_folio_pfn(folio: *mut c_void) -> c_ulong;
    /// `folio_nr_pages()`, from `src/helpers.c`.
    fn ioasid_folio_nr_pages(folio: *mut c_void) -> c_ulong;
    /// `folio_page(folio, n)`, from `src/helpers.c`: a `struct page *`.
    fn ioasid_folio_page(folio: *mut c_void, n: c_ulong) -> *mut c_void;
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
    /// `folio_ref_count(page_folio(page))`, from `src/helpers.c`. `page` is a `struct page *`
    /// (or a `struct folio *`, whose head page it is).
    fn ioasid_page_refcount(page: *mut c_void) -> c_int;
    /// From `src/helpers.c`: faults in `len` bytes of the current task's memory at `start`,
    /// for writing if `write`, through `fixup_user_fault()` (nothing is read or written: a
    /// load from a device's MMIO could end in an external abort), without pinning anything;
    /// stops at the first page that cannot be, and returns its error.
    fn ioasid_fault_in(start: c_ulong, len: usize, write: bool) -> c_int;
    /// `folio->index`, from `src/helpers.c`: the file offset of a page-cache folio, in pages.
    fn ioasid_folio_index(folio: *mut c_void) -> c_ulong;
    /// From `src/helpers.c`: takes a writer's hold on `file` (a `struct file *`), as a shared
    /// writable `mmap()` does: a reference on the file, and one count of its mapping's
    /// `i_mmap_writable`, so that `F_SEAL_WRITE` cannot be added until
    /// [`ioasid_file_writer_put`]. `-EPERM`, and nothing held, for a file sealed against
    /// writes (`F_SEAL_WRITE`, `F_SEAL_FUTURE_WRITE`), append-only or immutable.
    fn ioasid_file_writer_get(file: *mut c_void) -> c_int;
    /// Releases what [`ioasid_file_writer_get`] took.
    fn ioasid_file_writer_put(file: *mut c_void);
}

/// A writer's hold on a shmem or hugetlbfs file, kept while a device may write its pages: the
/// file cannot be sealed against writes meanwhile (`F_ADD_SEALS` of `F_SEAL_WRITE` fails with
/// `EBUSY`), as while a shared writable mapping of it exists.
///
/// # Invariants
///
/// `self.0` is a `struct file` on which this value holds a reference and one count of its
/// mapping's `i_mmap_writable`.
struct FileWriter(NonNull<c_void>);

// SAFETY: the hold is a file reference and an atomic count, both released from any task.
unsafe impl Send for FileWriter {}
// SAFETY: `&FileWriter` gives access to nothing.
unsafe impl Sync for FileWriter {}

impl FileWriter {
    /// Takes a writer's hold on `file`; `EPERM` if it is sealed against writes, append-only or
    /// immutable.
    fn new(file: &LocalFile) -> Result<Self> {
        let ptr = file.as_ptr().cast::<c_void>();
        // SAFETY: `file` is a valid file, referenced for the duration of the call.
        to_result(unsafe { ioasid_file_writer_get(ptr) })?;
        // INVARIANT: the call above took the reference and the count.
        // SAFETY: `file.as_ptr()` is never NULL.
        Ok(FileWriter(unsafe { NonNull::new_unchecked(ptr) }))
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // SAFETY: this value holds the reference and the count (type invariant), released once,
        // here.
        unsafe { ioasid_file_writer_put(self.0.as_ptr()) };
    }
}

/// The reference count past which a page is not pinned once more: each `FOLL_PIN` of a small
/// folio adds `GUP_PIN_COUNTING_BIAS` (1024) to it, so the same page mapped at many addresses
/// and pinned through each (by one user with a large `RLIMIT_MEMLOCK`, or `CAP_IPC_LOCK`)
/// would otherwise overflow it: GUP warns then, and a count that wrapped is a use-after-free
/// waiting to happen. Half the range leaves room for the pins in flight, not checked yet (at
/// most [`UNCHECKED_REFS_MAX`], 2^29, all tasks together) and for the kernel's other users.
const PIN_REFCOUNT_LIMIT: c_int = 1 << 30;

/// Whether one more pin of `page` (a `struct page *` or `struct folio *`), which the caller
/// holds pinned, could overflow its count.
fn pinned_too_often(page: *mut c_void) -> bool {
    // SAFETY: `page` is pinned by the caller, so it and its folio stay valid.
    let count = unsafe { ioasid_page_refcount(page) };
    // A count that wrapped past `INT_MAX` reads negative: too often too.
    count as u32 > PIN_REFCOUNT_LIMIT as u32
}

/// The references that pins taken but not yet checked against [`PIN_REFCOUNT_LIMIT`] may
/// have added to one page, all pinning tasks together, at most: with the limit, a page's count
/// stays below 2^30 + 2^29, far from overflow, however many threads pin the same page at once
/// (each waiting somewhere inside GUP with a batch half pinned, say).
const UNCHECKED_REFS_MAX: usize = 1 << 29;

/// The references reserved by [`Unchecked`] now.
static UNCHECKED_REFS: Atomic<usize> = Atomic::new(0);

/// A pin of a small folio adds this many references to it (`GUP_PIN_COUNTING_BIAS`); one of a
/// large folio, one (and one to its pin count).
const REFS_PER_PIN: usize = bindings::GUP_PIN_COUNTING_BIAS as usize;

/// A share of [`UNCHECKED_REFS_MAX`], taken before pins are taken and given back once they
/// were checked (or released).
///
/// # Invariants
///
/// `self.0` references are counted in [`UNCHECKED_REFS`] for this value.
struct Unchecked(usize);

impl Unchecked {
    /// Reserves `refs` references, waiting (killably) while other pinning tasks hold the
    /// rest; `EINTR` if the task is killed meanwhile. GUP is called with nothing reserved
    /// while it may wait for user space (a fault), so the wait is short.
    fn reserve(refs: usize) -> Result<Self> {
        let mut cur = UNCHECKED_REFS.load(Relaxed);
        loop {
            match cur.checked_add(refs).filter(|&n| n <= UNCHECKED_REFS_MAX) {
                Some(new) => match UNCHECKED_REFS.cmpxchg(cur, new, Relaxed) {
                    // INVARIANT: `refs` were counted.
                    Ok(_) => return Ok(Unchecked(refs)),
                    Err(now) => cur = now,
                },
                None => {
                    if fatal_signal_pending() {
                        return Err(EINTR);
                    }
                    fsleep(Delta::from_millis(1));
                    cur = UNCHECKED_REFS.load(Relaxed);
                }
            }
        }
    }
}

impl Drop for Unchecked {
    fn drop(&mut self) {
        // Counted for this value (type invariant).
        UNCHECKED_REFS.fetch_sub(self.0, Relaxed);
    }
}

/// Whether the current task was sent a fatal signal (it is being killed).
fn fatal_signal_pending() -> bool {
    // SAFETY: reads the current task's pending signals, which is always allowed.
    unsafe { ioasid_fatal_signal_pending() }
}

/// Pages pinned per `pin_user_pages_fast` call.
const PIN_BATCH: usize = 512;

/// Faults in `nr` pages of the current task's memory at `start` (page aligned, in bounds), for
/// writing if `write`, without pinning them: an error shows when they are pinned.
fn fault_in(start: usize, nr: usize, write: bool) {
    // SAFETY: faulting in the current task's memory through its fault handler, which checks
    // the range and touches nothing, is allowed from any task with no lock held.
    unsafe { ioasid_fault_in(start as c_ulong, nr * PAGE_SIZE, write) };
}

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

/// The bits of a [`Run`] that hold its page count.
const RUN_COUNT_BITS: u32 = 24;

/// The most pages one [`Run`] holds (64 GiB less a page, of 4 KiB pages); a longer contiguous
/// range takes several runs.
pub(crate) const RUN_MAX_PAGES: usize = (1 << RUN_COUNT_BITS) - 1;

/// The bits of a [`Run`] that hold its first page frame number: 40, enough for the 52-bit
/// physical addresses of x86_64 and arm64 with 4 KiB pages (and more with larger pages).
const RUN_PFN_BITS: u32 = u64::BITS - RUN_COUNT_BITS;

/// A run of physically contiguous pages: its first page frame number and its page count,
/// packed in 8 bytes (the size of the page pointer per 4 KiB page it replaces).
///
/// # Invariants
///
/// The count is between 1 and [`RUN_MAX_PAGES`]; the frame number fits [`RUN_PFN_BITS`] bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Run(u64);

impl Run {
    /// The run of `npages` pages from frame `pfn`, if `npages` is between 1 and
    /// [`RUN_MAX_PAGES`] and `pfn` fits [`RUN_PFN_BITS`] bits.
    pub(crate) fn new(pfn: u64, npages: usize) -> Option<Self> {
        if npages == 0 || npages > RUN_MAX_PAGES || pfn >> RUN_PFN_BITS != 0 {
            return None;
        }
        // INVARIANT: checked above.
        Some(Run((pfn << RUN_COUNT_BITS) | npages as u64))
    }

    /// The frame number of the first page.
    pub(crate) fn pfn(self) -> u64 {
        self.0 >> RUN_COUNT_BITS
    }

    /// The number of pages, at least 1.
    pub(crate) fn npages(self) -> usize {
        (self.0 & RUN_MAX_PAGES as u64) as usize
    }

    /// The physical address of the first page.
    pub(crate) fn phys(self) -> u64 {
        self.pfn() << PAGE_SHIFT
    }

    /// The length in bytes.
    pub(crate) fn bytes(self) -> u64 {
        self.npages() as u64 * PAGE_SIZE as u64
    }
}

/// Collapses pages, handed over in order as (frame number, `struct page` address), into
/// [`Run`]s: a page extends the last run if its frame follows the run's last frame, its
/// `struct page` follows the run's last one in the memory map (so that `page + i` walks the run,
/// as `unpin_user_page_range_dirty_lock` does, also where the memory map is not virtually
/// contiguous) and the run is shorter than `max_run`; otherwise it starts a new run.
///
/// It never allocates: the caller reserves room for one run per page it is about to add.
///
/// # Invariants
///
/// `max_run` is between 1 and [`RUN_MAX_PAGES`]; if `runs` is not empty, `last_page` is the
/// `struct page` address of the last page of its last run.
pub(crate) struct RunBuilder {
    runs: KVVec<Run>,
    last_page: usize,
    max_run: usize,
}

impl RunBuilder {
    /// No runs, which will hold at most `max_run` pages each (clamped to `1..=RUN_MAX_PAGES`).
    pub(crate) fn new(max_run: usize) -> Self {
        // INVARIANT: clamped; no runs.
        RunBuilder {
            runs: KVVec::new(),
            last_page: 0,
            max_run: max_run.clamp(1, RUN_MAX_PAGES),
        }
    }

    /// Makes room for `n` more runs: `add` then cannot fail for the next `n` pages. The memory
    /// is charged to the caller's memory cgroup; no warning if there is none (user space decides
    /// the sizes).
    pub(crate) fn reserve(&mut self, n: usize) -> Result {
        Ok(self.runs.reserve(n, GFP_KERNEL_ACCOUNT | __GFP_NOWARN)?)
    }

    /// Adds the page of frame `pfn` whose `struct page` is at address `page`. Fails with
    /// `ENOMEM` if it needs a new run and there is no room reserved, and with `EINVAL` if the
    /// frame number does not fit a [`Run`]; nothing changes then.
    pub(crate) fn add(&mut self, pfn: u64, page: usize) -> Result {
        let stride = core::mem::size_of::<bindings::page>();
        if let Some(last) = self.runs.last_mut() {
            let n = last.npages();
            if n < self.max_run
                && last.pfn().checked_add(n as u64) == Some(pfn)
                && self.last_page.checked_add(stride) == Some(page)
            {
                // `n + 1` pages from the same frame: at most `max_run`, and the last frame
                // fits since `pfn` is a frame of the run.
                *last = Run::new(last.pfn(), n + 1).ok_or(EINVAL)?;
                // INVARIANT: `page` is now the last page of the last run.
                self.last_page = page;
                return Ok(());
            }
        }
        let run = Run::new(pfn, 1).ok_or(EINVAL)?;
        self.runs.push_within_capacity(run).map_err(|_| ENOMEM)?;
        // INVARIANT: `page` is the only page of the new last run.
        self.last_page = page;
        Ok(())
    }

    /// Adds `n` pages from frame `pfn`, physically contiguous and with contiguous `struct page`s
    /// from address `page` (the pages of one folio): as `n` calls of [`RunBuilder::add`], in
    /// O(1 + n / max_run). Fails with `ENOMEM` if it needs more runs than there is room
    /// reserved for, `EINVAL` if a frame number does not fit a [`Run`]; nothing changes then.
    pub(crate) fn add_range(&mut self, pfn: u64, page: usize, n: usize) -> Result {
        let stride = core::mem::size_of::<bindings::page>();
        if n == 0 {
            return Ok(());
        }
        let last_pfn = pfn.checked_add(n as u64 - 1).ok_or(EINVAL)?;
        Run::new(last_pfn, 1).ok_or(EINVAL)?;
        let last_page = page.checked_add((n - 1) * stride).ok_or(EINVAL)?;
        // How many pages go into the last run, then how many new runs the rest needs.
        let joined = match self.runs.last() {
            Some(last)
                if last.pfn() + last.npages() as u64 == pfn
                    && self.last_page.checked_add(stride) == Some(page) =>
            {
                min(n, self.max_run - last.npages())
            }
            _ => 0,
        };
        let new_runs = (n - joined).div_ceil(self.max_run);
        if self.runs.capacity() - self.runs.len() < new_runs {
            return Err(ENOMEM);
        }
        if joined > 0 {
            if let Some(last) = self.runs.last_mut() {
                // At most `max_run` pages; the last frame fits (checked above).
                *last = Run::new(last.pfn(), last.npages() + joined).ok_or(EINVAL)?;
            }
        }
        let mut done = joined;
        while done < n {
            let take = min(n - done, self.max_run);
            let run = Run::new(pfn + done as u64, take).ok_or(EINVAL)?;
            // Room was checked above.
            self.runs.push_within_capacity(run).map_err(|_| ENOMEM)?;
            done += take;
        }
        // INVARIANT: the last page added is the last page of the last run.
        self.last_page = last_page;
        Ok(())
    }

    /// The runs, in a vector of exactly their size: what the builder reserved ahead is given
    /// back (`krealloc` never shrinks a buffer: copied to a new one). Keeps the spare room if
    /// there is no memory for the copy.
    pub(crate) fn into_runs(self) -> KVVec<Run> {
        let runs = self.runs;
        if runs.capacity() == runs.len() {
            return runs;
        }
        let mut exact = match KVVec::with_capacity(runs.len(), GFP_KERNEL_ACCOUNT | __GFP_NOWARN) {
            Ok(v) => v,
            Err(_) => return runs,
        };
        for &r in runs.iter() {
            // Room for all of them was made above.
            if exact.push_within_capacity(r).is_err() {
                return runs;
            }
        }
        exact
    }
}

/// User pages pinned for DMA and accounted (see the [module documentation](self)).
///
/// # Invariants
///
/// - `runs` are runs of physically contiguous pages whose `struct page`s are contiguous in the
///   memory map, in the order of the user addresses they were pinned at; each page of each run
///   holds one `FOLL_PIN` pin taken by this value.
/// - `pinned` is the sum of the runs' page counts; `pinned` pages are counted in `mm`'s
///   `pinned_vm` and in [`PINNED_PAGES`], by this value.
/// - `_charge` is the charge of the pages asked for (none if the caller was exempt), at least
///   `pinned`, and that number fits an `i64`.
pub(crate) struct PinnedPages {
    runs: KVVec<Run>,
    pinned: usize,
    writable: bool,
    /// The process's mm whose `pinned_vm` counts the pages, held with `mmgrab`.
    mm: ARef<Mm>,
    /// Dropped after the pages are unpinned (fields are dropped after `drop()`).
    _charge: UserCharge,
    /// For the pages of a file a device may write: the file may not be sealed against writes
    /// until they are unpinned (dropped after them, as `_charge`).
    _writer: Option<FileWriter>,
}

// SAFETY: pinned pages may be unpinned from any task; the runs are plain numbers.
unsafe impl Send for PinnedPages {}
// SAFETY: `&self` only reads the runs.
unsafe impl Sync for PinnedPages {}

/// The frame number of `page`, and the address of its `struct page` (which [`RunBuilder`]
/// compares).
fn page_pfn(page: *mut bindings::page) -> (u64, usize) {
    // SAFETY: `page_to_pfn()` only computes with the pointer; callers pass pages that GUP
    // pinned, valid `struct page`s.
    let pfn = unsafe { ioasid_page_to_pfn(page.cast()) };
    (pfn as u64, page as usize)
}

/// Releases the pins of `run`, marking its pages dirty first if `dirty`.
///
/// # Safety
///
/// Each page of `run` holds a `FOLL_PIN` pin that the caller owns and gives up here, and the
/// run's `struct page`s are contiguous in the memory map.
unsafe fn unpin_run(run: Run, dirty: bool) {
    // SAFETY: the frame is a pinned, hence valid, page (safety contract).
    let page = unsafe { ioasid_pfn_to_page(run.pfn() as c_ulong) }.cast();
    // SAFETY: the run's pages are physically contiguous, and so are their `struct page`s (safety
    // contract): `page + i` is page `i` of the run, as the function requires; each holds a pin
    // the caller gives up, released once, here.
    unsafe { bindings::unpin_user_page_range_dirty_lock(page, run.npages() as c_ulong, dirty) };
}

/// Folios pinned per `memfd_pin_folios` call, at most (a call costs about as much as a few
/// dozen folios of the page cache: 64 made shmem maps a third slower than iommufd's).
const FOLIO_BATCH: usize = 1024;

/// Bytes of a file pinned per `memfd_pin_folios` call, at most: 64 2 MiB hugetlb folios, or an
/// eighth of a 1 GiB one (which is pinned again for the next eighth).
const FOLIO_BATCH_BYTES: u64 = 128 << 20;

/// The temporary buffer `memfd_pin_folios` writes one batch of folio pointers into.
struct FolioBatch(KVec<*mut bindings::folio>);

impl FolioBatch {
    fn new(len: usize) -> Result<Self> {
        Ok(FolioBatch(KVec::from_elem(null_mut(), len, GFP_KERNEL)?))
    }
}

/// The temporary buffer GUP writes one batch of page pointers into.
struct Batch(KVec<*mut bindings::page>);

impl Batch {
    fn new(len: usize) -> Result<Self> {
        Ok(Batch(KVec::from_elem(null_mut(), len, GFP_KERNEL)?))
    }
}

impl PinnedPages {
    /// Pins `npages` pages of the calling process at user address `uaddr` (page aligned), for a
    /// device to read them and, if `writable`, to write them.
    ///
    /// Fails with `ENOMEM` past `RLIMIT_MEMLOCK`, for more pages than the machine has, for a
    /// page pinned so often already that its reference count nears overflow
    /// ([`PIN_REFCOUNT_LIMIT`]) (or out of memory), with `EFAULT` if part of
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
        let mut this = Self::charged(npages, writable)?;
        // One batch of page pointers, reused for every batch (4 KiB), not kept.
        let mut batch = Batch::new(min(npages, PIN_BATCH))?;
        let mut builder = RunBuilder::new(RUN_MAX_PAGES);
        let mut flags = bindings::FOLL_LONGTERM;
        if writable {
            flags |= bindings::FOLL_WRITE;
        }
        let ret = this.pin_batches(uaddr, npages, flags, &mut batch, &mut builder);
        // INVARIANT: the runs of every page pinned so far, and only those (`pin_batches` adds
        // each batch's pages to `builder` as soon as they are pinned, and `pinned` with them);
        // on failure they are unpinned when `this` is dropped.
        this.runs = builder.into_runs();
        ret.map(|()| this)
    }

    /// Nothing pinned yet, `npages` charged to the current task's user, the current mm
    /// recorded: what [`PinnedPages::pin`] and [`PinnedPages::pin_file`] start from.
    fn charged(npages: usize, writable: bool) -> Result<Self> {
        // The counters are `i64`: refuse what they cannot count (an absurd size anyway).
        i64::try_from(npages).map_err(|_| ENOMEM)?;
        // More pages than the machine has cannot all be pinned: refused before anything is
        // charged, allocated or pinned (the page list that used to be allocated first refused
        // such sizes too).
        // SAFETY: `totalram_pages()` reads a counter, which is always allowed.
        if npages > unsafe { ioasid_totalram_pages() } as usize {
            return Err(ENOMEM);
        }
        let task = current!();
        let mm = task.mm().ok_or(EFAULT)?;
        // Charged first, so that a request past the limit allocates nothing.
        let charge = UserCharge::charge(npages)?;
        // INVARIANT: nothing pinned yet, no runs; `charge` is for `npages` pages, which fits an
        // `i64` (checked above).
        Ok(PinnedPages {
            runs: KVVec::new(),
            pinned: 0,
            writable,
            mm: ARef::from(&**mm),
            _charge: charge,
            _writer: None,
        })
    }

    /// Pins `npages` pages of `file`, a memfd (shmem or hugetlbfs), from byte `offset` (page
    /// aligned), with `memfd_pin_folios()`: the pages the file holds, whatever maps them (or
    /// nothing), allocated if the file has none there yet. Accounted as [`PinnedPages::pin`]
    /// accounts (to the calling task's user and mm).
    ///
    /// `file` must be open for reading (`EBADF`), and for a `writable` pin (the device will write
    /// the pages) for writing too (`EBADF`) and not sealed against writes (`EPERM`): a device must
    /// not read or write what the caller could not. Fails as [`PinnedPages::pin`] does, and with `EINVAL` for a file that is
    /// neither shmem nor hugetlbfs or a range past its end. Nothing stays pinned or charged on
    /// failure. Called with no lock of the module held.
    pub(crate) fn pin_file(
        file: &LocalFile,
        offset: u64,
        npages: usize,
        writable: bool,
    ) -> Result<Self> {
        // The device reads what it maps (some IOMMUs cannot even make a mapping write-only): the
        // descriptor must allow reading, as `mmap()` requires; and writing, for a device that
        // writes. Access mode 3 (`O_ACCMODE`) allows neither.
        let access = file.flags() & file::flags::O_ACCMODE;
        if access != file::flags::O_RDONLY && access != file::flags::O_RDWR {
            return Err(EBADF);
        }
        // Held from before the seals are checked until the pages are unpinned: a write seal
        // cannot be added while the pages are being pinned, nor after.
        let writer = if writable {
            if access != file::flags::O_RDWR {
                return Err(EBADF);
            }
            Some(FileWriter::new(file)?)
        } else {
            None
        };
        let len = (npages as u64)
            .checked_mul(PAGE_SIZE as u64)
            .filter(|&len| len > 0)
            .ok_or(EINVAL)?;
        // The last byte, as a file offset (`loff_t`).
        let end = offset
            .checked_add(len - 1)
            .and_then(|end| i64::try_from(end).ok())
            .ok_or(EINVAL)?;
        let mut this = Self::charged(npages, writable)?;
        this._writer = writer;
        let mut folios = FolioBatch::new(min(npages, FOLIO_BATCH))?;
        let mut builder = RunBuilder::new(RUN_MAX_PAGES);
        let ret = this.pin_folios(file, offset, end, &mut folios, &mut builder);
        // INVARIANT: as in `pin`: the runs of every page pinned so far, and only those.
        this.runs = builder.into_runs();
        ret.map(|()| this)
    }

    /// Pins the folios of [`PinnedPages::pin_file`] a batch at a time, each folio's pages in
    /// the range made one pin each (`memfd_pin_folios` pins a folio once) and added to
    /// `builder`'s runs, and counted, before the next batch; stops at the first failure.
    fn pin_folios(
        &mut self,
        file: &LocalFile,
        offset: u64,
        end: i64,
        folios: &mut FolioBatch,
        builder: &mut RunBuilder,
    ) -> Result {
        let npages = ((end as u64 - offset) as usize >> PAGE_SHIFT) + 1;
        // The file's page index of the first page.
        let first = offset >> PAGE_SHIFT;
        while self.pinned < npages {
            let start = offset + (self.pinned << PAGE_SHIFT) as u64;
            // At most `FOLIO_BATCH` folios and `FOLIO_BATCH_BYTES` of the file (one folio, of
            // 1 GiB hugetlb): a fatal signal is seen after each.
            let batch_end = min(end as u64, start.saturating_add(FOLIO_BATCH_BYTES - 1));
            let max = min(folios.0.len(), npages - self.pinned);
            // A folio adds at most two runs (it extends the last one, then a new one).
            builder.reserve(2 * max)?;
            // One pin per folio, then one per page of the range (fewer than 2^15).
            let _unchecked = Unchecked::reserve(
                max * REFS_PER_PIN + ((batch_end - start) >> PAGE_SHIFT) as usize + 1,
            )?;
            let mut first_offset: c_ulong = 0;
            // SAFETY: `file` is a valid file; `folios` is valid for writes of `max` (at most
            // its length) pointers; `start..=batch_end` is a range of nonnegative file offsets
            // (`batch_end` <= `end`, an `i64`).
            let ret = unsafe {
                bindings::memfd_pin_folios(
                    file.as_ptr(),
                    start as i64,
                    batch_end as i64,
                    folios.0.as_mut_ptr(),
                    max as c_uint,
                    &mut first_offset,
                )
            };
            let got = match usize::try_from(ret) {
                Ok(got) if got > 0 => min(got, max),
                _ if fatal_signal_pending() => return Err(EINTR),
                // The documented ones: a range past the end of the file, no memory (or no huge
                // page left in the hugetlb pool), no room (or quota) in a tmpfs for a page the
                // file lacked.
                _ if ret == -(bindings::EINVAL as c_long) => return Err(EINVAL),
                _ if ret == -(bindings::ENOMEM as c_long) => return Err(ENOMEM),
                _ if ret == -(bindings::ENOSPC as c_long) => return Err(ENOSPC),
                _ if ret == -(bindings::EDQUOT as c_long) => return Err(ENOSPC),
                // Anything else (an I/O error reading a page in): the page cannot be pinned.
                _ => return Err(EFAULT),
            };
            // The folios taken into the runs: all of them, unless the file changed under the
            // batch (a hole punched and filled meanwhile); then the rest is pinned again, from
            // where the file is now, in the next batch.
            let mut taken = got;
            for k in 0..got {
                // SAFETY: `folios[k..got]` each hold the one pin `memfd_pin_folios` took and are
                // in no run.
                let ret = unsafe {
                    self.take_folio(folios.0[k], first, batch_end >> PAGE_SHIFT, npages, builder)
                };
                if ret != Ok(true) {
                    // SAFETY: as above; released once, here.
                    unsafe {
                        bindings::unpin_folios(folios.0.as_mut_ptr().add(k), (got - k) as c_ulong)
                    };
                    ret?;
                    taken = k;
                    break;
                }
            }
            self.batch_done(folios.0[..taken].iter().map(|&f| f.cast()))?;
            if self.pinned < npages && fatal_signal_pending() {
                return Err(EINTR);
            }
        }
        Ok(())
    }

    /// Adds to `builder`'s runs, and counts, the pages of `folio` from the file's next page
    /// (page `first + self.pinned`, `first` being the file page the pinning started at), to
    /// the folio's end, file page `last` or the last of the `npages`, whichever comes first,
    /// one pin each: `true`. `false` if `folio`
    /// does not hold that page (the file changed since `memfd_pin_folios` looked it up), an
    /// error if the pins cannot be taken or recorded; then the folio's pin is the caller's to
    /// release, and nothing else was taken.
    ///
    /// # Safety
    ///
    /// `folio` holds one pin, taken by `memfd_pin_folios` for the caller and in no run.
    unsafe fn take_folio(
        &mut self,
        folio: *mut bindings::folio,
        first: u64,
        last: u64,
        npages: usize,
        builder: &mut RunBuilder,
    ) -> Result<bool> {
        // The file page wanted (`pinned` < `npages`, whose pages' offsets fit an `i64`).
        let at = first + self.pinned as u64;
        // SAFETY: `folio` is pinned (safety contract): a valid folio.
        let (pfn, nr, index) = unsafe {
            (
                ioasid_folio_pfn(folio.cast()),
                ioasid_folio_nr_pages(folio.cast()) as u64,
                ioasid_folio_index(folio.cast()) as u64,
            )
        };
        // The page wanted, as the folio's page `skip`: a folio returned for a range starting
        // inside it (the first of a batch), or one the file no longer has there.
        let Some(skip) = at.checked_sub(index).filter(|&skip| skip < nr) else {
            return Ok(false);
        };
        // None if all `npages` were taken already (a folio past the range: the file changed).
        let n = min(nr - skip, npages.saturating_sub(self.pinned) as u64);
        let n = min(n, (last + 1).saturating_sub(at)) as usize;
        if n == 0 {
            return Ok(false);
        }
        // SAFETY: page `skip` of the folio, which has more than `skip` pages.
        let page = unsafe { ioasid_folio_page(folio.cast(), skip as c_ulong) } as usize;
        // One pin per page, as `pin_user_pages` would have taken: the folio holds one.
        if n > 1 {
            // SAFETY: `folio` holds a pin (safety contract).
            to_result(unsafe { bindings::folio_add_pins(folio, (n - 1) as c_uint) })?;
        }
        if let Err(e) = builder.add_range(pfn as u64 + skip, page, n) {
            if n > 1 {
                // SAFETY: the `n - 1` pins added above, on pages `skip..skip + n` of the folio
                // minus the first, which keeps the caller's; released once, here.
                unsafe {
                    bindings::unpin_user_page_range_dirty_lock(
                        page as *mut bindings::page,
                        (n - 1) as c_ulong,
                        false,
                    )
                };
            }
            return Err(e);
        }
        self.count(n);
        Ok(true)
    }

    /// Pins the batches of [`PinnedPages::pin`], collapsing each into `builder`'s runs, and
    /// counting it, before the next; stops at the first failure.
    fn pin_batches(
        &mut self,
        uaddr: usize,
        npages: usize,
        flags: c_uint,
        batch: &mut Batch,
        builder: &mut RunBuilder,
    ) -> Result {
        // Where the last batch came up empty, the pages faulted in since, without pins.
        let mut faulted_at = None;
        while self.pinned < npages {
            // In bounds: `uaddr + npages * PAGE_SIZE` does not wrap (checked by `pin`).
            let start = uaddr + self.pinned * PAGE_SIZE;
            // Pages that are present are pinned a batch at a time, without faults: GUP never
            // waits for user space (a userfaultfd, FUSE) holding pins not checked yet. A
            // page that is not gets faulted in first, with no pin held, then pinned; if even
            // that does not take, it alone is pinned with faults allowed, which gives either
            // the page or the final error.
            let (nr, flags) = match faulted_at {
                Some(at) if at == start => (1, flags),
                _ => (
                    min(npages - self.pinned, PIN_BATCH),
                    flags | bindings::FOLL_NOFAULT,
                ),
            };
            let got = self.pin_batch(start, nr, flags, batch, builder)?;
            if got > 0 {
                faulted_at = None;
            } else if faulted_at != Some(start) {
                fault_in(start, nr, flags & bindings::FOLL_WRITE != 0);
                faulted_at = Some(start);
            }
            if self.pinned < npages && fatal_signal_pending() {
                return Err(EINTR);
            }
        }
        Ok(())
    }

    /// Pins up to `nr` pages at `start` with `pin_user_pages_fast(flags)`, adds them to
    /// `builder`'s runs and counts them, and checks them ([`PinnedPages::batch_done`]); returns
    /// how many. `Ok(0)` if `FOLL_NOFAULT` found the first page not present.
    fn pin_batch(
        &mut self,
        start: usize,
        nr: usize,
        flags: c_uint,
        batch: &mut Batch,
        builder: &mut RunBuilder,
    ) -> Result<usize> {
        // Room for the runs of this batch before anything is pinned: recording them cannot
        // fail then. The size comes from user space: fail quietly if it is absurd.
        builder.reserve(nr)?;
        let _unchecked = Unchecked::reserve(nr * REFS_PER_PIN)?;
        // SAFETY: `batch` is valid for writes of `nr` (at most its length) pointers;
        // `pin_user_pages_fast` pins pages of the current task's memory.
        let ret = unsafe {
            bindings::pin_user_pages_fast(start, nr as c_int, flags, batch.0.as_mut_ptr())
        };
        let got = match usize::try_from(ret) {
            Ok(got) if got > 0 => min(got, nr),
            // A fault GUP waited on (userfaultfd, FUSE, swap) was cut short by a fatal
            // signal: GUP says `EINTR`, `ERESTARTSYS` or `EFAULT` depending on where.
            _ if fatal_signal_pending() => return Err(EINTR),
            // Not present, with `FOLL_NOFAULT`: to be faulted in.
            _ if flags & bindings::FOLL_NOFAULT != 0 => return Ok(0),
            // The documented ones (what was pinned is unpinned when the caller drops `self`).
            _ if ret == -(bindings::ENOMEM as c_int) => return Err(ENOMEM),
            _ if ret == -(bindings::EINTR as c_int) => return Err(EINTR),
            // Anything else (not mapped, not writable, fsdax, p2pdma, device memory that
            // could not be migrated): these pages cannot be pinned for a device.
            _ => return Err(EFAULT),
        };
        for k in 0..got {
            let (pfn, addr) = page_pfn(batch.0[k]);
            if builder.add(pfn, addr).is_err() {
                // Not reached: room was reserved, and frame numbers fit 40 bits. Pages
                // `k..got` cannot be recorded: their pins go back now.
                // SAFETY: `batch[k..got]` were pinned by the call above and are in no
                // run: their pins are released once, here.
                unsafe {
                    bindings::unpin_user_pages(batch.0.as_mut_ptr().add(k), (got - k) as c_ulong)
                };
                self.count(k);
                return Err(EINVAL);
            }
        }
        self.count(got);
        self.batch_done(batch.0[..got].iter().map(|&p| p.cast()))?;
        Ok(got)
    }

    /// What follows each batch of [`PinnedPages::pin_batch`] and [`PinnedPages::pin_folios`],
    /// once its pages (or folios) were counted: `ENOMEM` if one of them is pinned too often
    /// already; the CPU is yielded. What was pinned is unpinned when the caller drops `self`.
    fn batch_done(&self, mut pinned: impl Iterator<Item = *mut c_void>) -> Result {
        if pinned.any(pinned_too_often) {
            return Err(ENOMEM);
        }
        // User space decides how many batches there are.
        crate::iommu::cond_resched();
        Ok(())
    }

    /// Counts `got` more pages, just recorded in the runs.
    fn count(&mut self, got: usize) {
        // INVARIANT: `got` more pages hold a pin and are in the runs. `pin_user_pages_fast`
        // pins at most what is asked, so `pinned` stays within the pages asked for, which fit
        // an `i64`.
        self.pinned += got;
        pinned_vm(&self.mm).fetch_add(got as i64, Relaxed);
        PINNED_PAGES.fetch_add(got, Relaxed);
    }

    /// The number of pages.
    pub(crate) fn len(&self) -> usize {
        self.pinned
    }

    /// The runs of physically contiguous pages, in the order of the user addresses.
    pub(crate) fn runs(&self) -> &[Run] {
        &self.runs
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        if self.pinned == 0 {
            return;
        }
        for (i, &run) in self.runs.iter().enumerate() {
            // SAFETY: each page of each run holds a pin taken by this value, and the run's
            // `struct page`s are contiguous (type invariant); each run is released once, here.
            // A device may have written them if they were mapped writable.
            unsafe { unpin_run(run, self.writable) };
            // One run per page at worst, for 4 KiB pages scattered in memory.
            if i % PIN_BATCH == PIN_BATCH - 1 {
                crate::iommu::cond_resched();
            }
        }
        // The counts this value added (type invariant; `pinned` fits an `i64`). The user's
        // charge is returned after this, when `_charge` is dropped.
        pinned_vm(&self.mm).fetch_sub(self.pinned as i64, Relaxed);
        PINNED_PAGES.fetch_sub(self.pinned, Relaxed);
    }
}

#[kunit_tests(ioasid_pages)]
mod tests {
    use super::*;

    /// The size of a `struct page`: the distance between neighbours in the memory map.
    const STRIDE: usize = core::mem::size_of::<bindings::page>();

    use crate::test_rng::Rng;

    /// The reference: the runs of the whole sequence at once, page by page, with the rule
    /// written out plainly.
    fn reference(pages: &[(u64, usize)], max_run: usize) -> Result<KVec<(u64, usize)>> {
        let mut runs: KVec<(u64, usize)> = KVec::new();
        for (k, &(pfn, addr)) in pages.iter().enumerate() {
            let joins = k > 0 && {
                let (prev_pfn, prev_addr) = pages[k - 1];
                let (_, n) = runs[runs.len() - 1];
                pfn == prev_pfn + 1 && addr == prev_addr + STRIDE && n < max_run
            };
            if joins {
                let last = runs.len() - 1;
                runs[last].1 += 1;
            } else {
                runs.push((pfn, 1), GFP_KERNEL)?;
            }
        }
        Ok(runs)
    }

    #[test]
    fn run_packs_and_refuses_what_does_not_fit() -> Result {
        let r = Run::new((1 << RUN_PFN_BITS) - 1, RUN_MAX_PAGES).ok_or(EINVAL)?;
        assert_eq!(r.pfn(), (1 << RUN_PFN_BITS) - 1);
        assert_eq!(r.npages(), RUN_MAX_PAGES);
        let r = Run::new(0x12345, 1).ok_or(EINVAL)?;
        assert_eq!((r.pfn(), r.npages()), (0x12345, 1));
        assert_eq!(r.phys(), 0x12345 << PAGE_SHIFT);
        assert_eq!(r.bytes(), PAGE_SIZE as u64);
        assert_eq!(core::mem::size_of::<Run>(), 8);
        assert!(Run::new(0, 0).is_none());
        assert!(Run::new(0, RUN_MAX_PAGES + 1).is_none());
        assert!(Run::new(1 << RUN_PFN_BITS, 1).is_none());
        Ok(())
    }

    /// Random sequences of frames (contiguous stretches, jumps, steps back, repeats, and
    /// stretches contiguous in frames but not in the memory map), fed in batches as the pinning
    /// loop does (of `PIN_BATCH` pages, or random sizes, so that runs both end and go on at
    /// batch boundaries), with short and long run limits, against the reference.
    #[test]
    fn run_collapsing_against_reference() -> Result {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut boundaries_inside_runs = 0;
        let mut boundaries_between_runs = 0;
        for round in 0..150u64 {
            let len = 1 + rng.below(3000) as usize;
            let max_run = match round % 5 {
                0 => 1,
                1 => 1 + rng.below(8) as usize,
                2 => 512,
                _ => RUN_MAX_PAGES,
            };
            let mut pages = KVec::with_capacity(len, GFP_KERNEL)?;
            // Where each stretch of contiguous frames starts.
            let mut breaks = KVec::new();
            let mut pfn = rng.below(1 << 30);
            let mut shift = 0usize;
            while pages.len() < len {
                match rng.below(16) {
                    // A jump elsewhere, maybe to a 2 MiB boundary.
                    0..=3 => pfn = rng.below(1 << 30) & !(rng.below(2) * 511),
                    // A step back, or the same frame again.
                    4 => pfn = pfn.saturating_sub(rng.below(3)),
                    // The memory map is not contiguous here.
                    5 => shift += STRIDE * (1 + rng.below(4) as usize),
                    _ => {}
                }
                breaks.push(pages.len(), GFP_KERNEL)?;
                // A stretch of contiguous frames.
                let longest = if rng.below(2) == 0 { 8 } else { 700 };
                let stretch = 1 + rng.below(longest);
                for _ in 0..stretch {
                    if pages.len() == len {
                        break;
                    }
                    pages.push(
                        (pfn, 0x1000_0000 + pfn as usize * STRIDE + shift),
                        GFP_KERNEL,
                    )?;
                    pfn += 1;
                }
            }
            let expect = reference(&pages, max_run)?;
            let mut b = RunBuilder::new(max_run);
            let mut done = 0;
            while done < len {
                let nr = match rng.below(3) {
                    0 => PIN_BATCH,
                    1 => 1 + rng.below(600) as usize,
                    // Up to where the next stretch starts.
                    _ => breaks
                        .iter()
                        .find(|&&k| k > done)
                        .map_or(len - done, |&k| k - done),
                }
                .min(len - done);
                b.reserve(nr)?;
                for &(pfn, addr) in &pages[done..done + nr] {
                    b.add(pfn, addr)?;
                }
                done += nr;
                if done < len {
                    // Whether the next page continues the last run of this batch.
                    let (pfn, addr) = pages[done];
                    let (ppfn, paddr) = pages[done - 1];
                    if pfn == ppfn + 1 && addr == paddr + STRIDE {
                        boundaries_inside_runs += 1;
                    } else {
                        boundaries_between_runs += 1;
                    }
                }
            }
            let runs = b.into_runs();
            assert_eq!(runs.capacity(), runs.len());
            assert_eq!(runs.len(), expect.len());
            for (r, &(pfn, n)) in runs.iter().zip(expect.iter()) {
                assert_eq!((r.pfn(), r.npages()), (pfn, n));
                assert!(r.npages() <= max_run);
            }
            // The runs give back the sequence, page by page.
            let mut k = 0;
            for r in runs.iter() {
                for j in 0..r.npages() {
                    assert_eq!(pages[k].0, r.pfn() + j as u64);
                    k += 1;
                }
            }
            assert_eq!(k, len);
        }
        // Both cases at batch boundaries were met.
        assert!(boundaries_inside_runs > 10 && boundaries_between_runs > 10);
        Ok(())
    }

    /// Whole folios added at once (`add_range`, the memfd path) give the runs their pages added
    /// one by one give, with short and long run limits; with too little room nothing changes.
    #[test]
    fn ranges_against_pages() -> Result {
        let mut rng = Rng(0x6a09_e667_f3bc_c908);
        for round in 0..200u64 {
            let max_run = match round % 4 {
                0 => 1 + rng.below(5) as usize,
                1 => 512,
                _ => RUN_MAX_PAGES,
            };
            let mut by_range = RunBuilder::new(max_run);
            let mut by_page = RunBuilder::new(max_run);
            let mut pfn = rng.below(1 << 30);
            let mut shift = 0usize;
            for _ in 0..1 + rng.below(40) {
                match rng.below(4) {
                    0 => pfn = rng.below(1 << 30),
                    1 => shift += STRIDE,
                    _ => {}
                }
                let n = match rng.below(3) {
                    0 => 1,
                    1 => 512,
                    _ => 1 + rng.below(2000) as usize,
                };
                let page = 0x1000_0000 + pfn as usize * STRIDE + shift;
                by_range.reserve(n)?;
                by_page.reserve(n)?;
                by_range.add_range(pfn, page, n)?;
                for j in 0..n {
                    by_page.add(pfn + j as u64, page + j * STRIDE)?;
                }
                pfn += n as u64;
            }
            let a = by_range.into_runs();
            let b = by_page.into_runs();
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(b.iter()).all(|(x, y)| x == y));
        }
        let mut b = RunBuilder::new(4);
        b.reserve(1)?;
        assert_eq!(b.add_range(10, STRIDE * 10, 5), Err(ENOMEM));
        b.add_range(10, STRIDE * 10, 3)?;
        assert_eq!(b.add_range(13, STRIDE * 13, 3), Err(ENOMEM));
        assert_eq!(b.add_range(1 << RUN_PFN_BITS, 0, 1), Err(EINVAL));
        b.reserve(1)?;
        b.add_range(13, STRIDE * 13, 3)?;
        let runs = b.into_runs();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].pfn(), runs[0].npages()), (10, 4));
        assert_eq!((runs[1].pfn(), runs[1].npages()), (14, 2));
        Ok(())
    }

    /// A run that reaches its limit is followed by a new one, at a batch boundary too; adding
    /// without room reserved fails and changes nothing.
    #[test]
    fn run_limits_and_room() -> Result {
        let mut b = RunBuilder::new(4);
        assert_eq!(b.add(7, STRIDE * 7), Err(ENOMEM));
        b.reserve(4)?;
        for pfn in 10..14u64 {
            b.add(pfn, STRIDE * pfn as usize)?;
        }
        b.reserve(2)?;
        for pfn in 14..16u64 {
            b.add(pfn, STRIDE * pfn as usize)?;
        }
        assert_eq!(b.add((1 << RUN_PFN_BITS) + 16, STRIDE * 16), Err(EINVAL));
        let runs = b.into_runs();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].pfn(), runs[0].npages()), (10, 4));
        assert_eq!((runs[1].pfn(), runs[1].npages()), (14, 2));
        Ok(())
    }
}
