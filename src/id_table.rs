// SPDX-License-Identifier: GPL-2.0

//! A table of reference-counted objects named by IDs, over the kernel's XArray.
//!
//! The kernel crate's `XArray` has no index allocation, so this is a thin wrapper of its own over
//! the C XArray with `XA_FLAGS_ALLOC1` and `__xa_alloc_cyclic`. All `unsafe` of the object model
//! is here; everything above it is safe Rust.
//!
//! # Locking
//!
//! The table has one lock, the XArray's own spinlock (`xa_lock`). Every method takes it for as
//! long as it touches the array and releases it before returning; no other lock is ever taken
//! while it is held, and no object is dropped under it. It is therefore the innermost lock of the
//! module and may be taken with any other lock held.

use core::{
    cell::UnsafeCell,
    marker::PhantomData, //
};
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};

/// Objects of type `T`, each named by an ID allocated cyclically from `1..=max`.
///
/// Cyclic allocation means an ID that was released is handed out again only after every other
/// free ID in the range has been: a stale ID held by user space keeps failing with `ENOENT` for
/// as long as possible instead of silently naming a newer object.
///
/// # Invariants
///
/// - `xa` is an initialised XArray with `XA_FLAGS_ALLOC1`.
/// - Every entry of `xa` is a pointer returned by `Arc::<T>::into_foreign` and owns the
///   reference it stands for.
/// - `next` and `len` are only accessed with the XArray's lock held; `len` is the number of
///   entries.
#[pin_data(PinnedDrop)]
pub(crate) struct IdTable<T: Send + Sync + 'static> {
    #[pin]
    xa: Opaque<bindings::xarray>,
    next: UnsafeCell<u32>,
    len: UnsafeCell<usize>,
    max: u32,
    _type: PhantomData<Arc<T>>,
}

// SAFETY: the table owns `Arc<T>`s, which may be sent between threads because `T: Send + Sync`;
// its own mutable state (`next`, `len`, the array) is only touched under the XArray's lock.
unsafe impl<T: Send + Sync + 'static> Send for IdTable<T> {}

// SAFETY: every method taking `&self` serialises on the XArray's lock, and hands out only new
// references to `T`, which is `Sync`.
unsafe impl<T: Send + Sync + 'static> Sync for IdTable<T> {}

/// The XArray stores pointers with the two low bits clear.
const _: () = assert!(<Arc<()> as ForeignOwnable>::FOREIGN_ALIGN >= 4);

/// Holds the XArray's lock of a table; releases it when dropped.
struct XaLock<'a> {
    xa: *mut bindings::xarray,
    _table: PhantomData<&'a ()>,
}

impl<'a> XaLock<'a> {
    fn new<T: Send + Sync + 'static>(table: &'a IdTable<T>) -> Self {
        let xa = table.xa.get();
        // SAFETY: `xa` is initialised (type invariant of `IdTable`) and lives as long as `table`.
        unsafe { bindings::xa_lock(xa) };
        XaLock {
            xa,
            _table: PhantomData,
        }
    }
}

impl Drop for XaLock<'_> {
    fn drop(&mut self) {
        // SAFETY: `new` took this lock and it is still held.
        unsafe { bindings::xa_unlock(self.xa) };
    }
}

impl<T: Send + Sync + 'static> IdTable<T> {
    /// Creates an empty table whose IDs are allocated from `1..=max`.
    pub(crate) fn new(max: u32) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `xa_init_flags` initialises the XArray in place and cannot fail.
            xa <- Opaque::ffi_init(|xa| unsafe {
                bindings::xa_init_flags(xa, bindings::XA_FLAGS_ALLOC1)
            }),
            next: UnsafeCell::new(1),
            len: UnsafeCell::new(0),
            max,
            _type: PhantomData,
        })
    }

    /// Inserts `obj` under a newly allocated ID and returns the ID.
    ///
    /// Fails with `ENOSPC` when every ID in the range is in use, and with `ENOMEM`.
    pub(crate) fn insert(&self, obj: Arc<T>) -> Result<u32> {
        let ptr = obj.into_foreign();
        let limit = bindings::xa_limit {
            min: 1,
            max: self.max,
        };
        let mut id: u32 = 0;
        let ret = {
            let _lock = XaLock::new(self);
            // SAFETY: `xa` is initialised, its lock is held as `__xa_alloc_cyclic` requires (it
            // may drop and retake it to allocate with `GFP_KERNEL_ACCOUNT`), `ptr` has its low
            // bits clear, and `next` is only accessed under this lock (type invariants).
            let ret = unsafe {
                bindings::__xa_alloc_cyclic(
                    self.xa.get(),
                    &mut id,
                    ptr,
                    limit,
                    self.next.get(),
                    bindings::GFP_KERNEL_ACCOUNT,
                )
            };
            if ret >= 0 {
                // SAFETY: `len` is only accessed under the lock, which is held.
                unsafe { *self.len.get() += 1 };
            }
            ret
        };
        if ret < 0 {
            // SAFETY: `ptr` came from `into_foreign` above and was not stored.
            drop(unsafe { Arc::<T>::from_foreign(ptr) });
            return Err(if ret == -(bindings::EBUSY as i32) {
                ENOSPC
            } else {
                Error::from_errno(ret)
            });
        }
        // INVARIANT: the entry stands for the reference `into_foreign` gave up.
        Ok(id)
    }

    /// Returns a new reference to the object named `id`, if there is one.
    pub(crate) fn get(&self, id: u32) -> Option<Arc<T>> {
        let _lock = XaLock::new(self);
        // SAFETY: `xa` is initialised; `xa_load` may be called with the lock held.
        let ptr = unsafe { bindings::xa_load(self.xa.get(), id as usize) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: every entry comes from `Arc::into_foreign` (type invariant), and it cannot be
        // removed, so its reference dropped, while the lock is held.
        let borrowed = unsafe { <Arc<T> as ForeignOwnable>::borrow(ptr) };
        Some(borrowed.into())
    }

    /// Removes the object named `id` and returns the table's reference to it.
    pub(crate) fn remove(&self, id: u32) -> Option<Arc<T>> {
        let ptr = {
            let _lock = XaLock::new(self);
            // SAFETY: `xa` is initialised and its lock is held, as `__xa_erase` requires.
            let ptr = unsafe { bindings::__xa_erase(self.xa.get(), id as usize) };
            if !ptr.is_null() {
                // SAFETY: `len` is only accessed under the lock, which is held.
                unsafe { *self.len.get() -= 1 };
            }
            ptr
        };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the entry came from `Arc::into_foreign` (type invariant) and, now erased, its
        // reference is ours. It is dropped, if at all, after the lock was released.
        Some(unsafe { Arc::<T>::from_foreign(ptr) })
    }

    /// The number of objects in the table.
    pub(crate) fn len(&self) -> usize {
        let _lock = XaLock::new(self);
        // SAFETY: `len` is only accessed under the lock, which is held.
        unsafe { *self.len.get() }
    }

    /// Removes and returns some object with its ID, or `None` when the table is empty.
    pub(crate) fn pop(&self) -> Option<(u32, Arc<T>)> {
        loop {
            let id = self.first_id()?;
            // Another thread may have removed it meanwhile; then look again.
            if let Some(obj) = self.remove(id) {
                return Some((id, obj));
            }
        }
    }

    /// The object with the lowest ID at or above `id`, with its ID, if there is one: for
    /// walking the table without holding its lock.
    pub(crate) fn next_from(&self, id: u32) -> Option<(u32, Arc<T>)> {
        let mut index = id as usize;
        let _lock = XaLock::new(self);
        // SAFETY: `xa` is initialised; `xa_find` may be called with the lock held.
        let ptr = unsafe {
            bindings::xa_find(self.xa.get(), &mut index, usize::MAX, bindings::XA_PRESENT)
        };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: every entry comes from `Arc::into_foreign` (type invariant), and it cannot be
        // removed, so its reference dropped, while the lock is held.
        let borrowed = unsafe { <Arc<T> as ForeignOwnable>::borrow(ptr) };
        // Every ID was allocated within `1..=max`, a `u32` range.
        Some((u32::try_from(index).ok()?, borrowed.into()))
    }

    /// The lowest ID in use, if any.
    fn first_id(&self) -> Option<u32> {
        let mut index: usize = 0;
        let _lock = XaLock::new(self);
        // SAFETY: `xa` is initialised; `xa_find` may be called with the lock held.
        let ptr = unsafe {
            bindings::xa_find(self.xa.get(), &mut index, usize::MAX, bindings::XA_PRESENT)
        };
        if ptr.is_null() {
            return None;
        }
        // Every ID was allocated within `1..=max`, a `u32` range.
        u32::try_from(index).ok()
    }
}

#[pinned_drop]
impl<T: Send + Sync + 'static> PinnedDrop for IdTable<T> {
    fn drop(self: Pin<&mut Self>) {
        // Drop every object outside the lock, then free the XArray's own memory.
        while let Some((_, obj)) = self.pop() {
            drop(obj);
        }
        // SAFETY: `xa` is initialised and now empty; nothing else can reach it any more.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}
