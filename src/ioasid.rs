// SPDX-License-Identifier: GPL-2.0

//! I/O address spaces (IOASIDs) and the per-context table that names them.
//!
//! # Lifetime, following the `/dev/ioasid` RFC discussion (seed 002)
//!
//! An IOASID is reference counted. User space names it by an ID that [`IoasidTable`] allocates
//! cyclically in `1..=IOASID_ID_MAX`; kernel-side *users* (devices attached to it, once they
//! exist) hold it by a count in its state.
//!
//! - `IOASID_FREE` takes the ID away from user space at once: from then on every use of the ID
//!   fails with `ENOENT`, and a second free too.
//! - If the IOASID has no users, its table entry is removed and the ID becomes allocatable again
//!   (after the cyclic allocator wraps around).
//! - If it still has users, DMA through it is blocked and the entry stays in the table, *parked*:
//!   the ID cannot be allocated again, and lookups still say `ENOENT`. The last user to let go
//!   removes the entry.
//! - A lookup racing with a free either wins (and then operates on an IOASID that is freed right
//!   after; its reference keeps the memory alive) or sees `ENOENT`. Nothing that was freed is
//!   ever operated on after the free's `ioctl` has returned, because every operation checks the
//!   state under the IOASID's lock.
//!
//! # Locking
//!
//! Lock order, outermost first:
//!
//! 1. an IOASID's `state` mutex;
//! 2. the table's XArray lock (see [`crate::id_table`]), which is innermost.
//!
//! Today no path holds both: the state is decided under the IOASID's lock, which is released
//! before the table is changed. An IOASID's lock is never taken with the table's lock held.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::{
    id_table::IdTable,
    uapi::IOASID_ID_MAX, //
};

/// The state of an IOASID that changes after creation.
struct State {
    /// `IOASID_FREE` was called: the ID no longer names this IOASID for user space.
    freed: bool,
    /// Kernel-side users (attached devices). While nonzero after a free, the ID is parked.
    users: u32,
}

/// An I/O address space.
#[pin_data]
pub(crate) struct Ioasid {
    /// The fields that change, under the IOASID's lock.
    #[pin]
    state: Mutex<State>,
}

impl Ioasid {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(State {
                    freed: false,
                    users: 0,
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }
}

/// The IOASIDs of one context.
#[pin_data]
pub(crate) struct IoasidTable {
    #[pin]
    ids: IdTable<Ioasid>,
}

impl IoasidTable {
    /// Creates an empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            ids <- IdTable::new(IOASID_ID_MAX),
        })
    }

    /// Creates a new, empty IOASID and returns its ID.
    pub(crate) fn alloc(&self) -> Result<u32> {
        self.ids.insert(Ioasid::new()?)
    }

    /// Looks up a live IOASID: `ENOENT` if `id` was never allocated or has been freed.
    pub(crate) fn get(&self, id: u32) -> Result<Arc<Ioasid>> {
        let ioasid = self.ids.get(id).ok_or(ENOENT)?;
        if ioasid.state.lock().freed {
            return Err(ENOENT);
        }
        Ok(ioasid)
    }

    /// Frees the IOASID named `id` (see the module documentation for what that means).
    pub(crate) fn free(&self, id: u32) -> Result {
        let ioasid = self.ids.get(id).ok_or(ENOENT)?;
        let release = {
            let mut state = ioasid.state.lock();
            if state.freed {
                return Err(ENOENT);
            }
            state.freed = true;
            state.users == 0
        };
        if release {
            self.ids.remove(id);
        }
        Ok(())
    }

    /// Takes a kernel-side user reference on the live IOASID `id`.
    ///
    /// While it is held, freeing the IOASID parks its ID instead of releasing it.
    #[cfg_attr(not(CONFIG_KUNIT = "y"), expect(dead_code))]
    pub(crate) fn add_user(&self, id: u32) -> Result<Arc<Ioasid>> {
        let ioasid = self.ids.get(id).ok_or(ENOENT)?;
        {
            let mut state = ioasid.state.lock();
            if state.freed {
                return Err(ENOENT);
            }
            state.users = state.users.checked_add(1).ok_or(EOVERFLOW)?;
        }
        Ok(ioasid)
    }

    /// Drops a user reference taken by [`IoasidTable::add_user`] on `ioasid`, named `id`.
    ///
    /// If the IOASID was freed and this was its last user, its parked ID is released.
    #[cfg_attr(not(CONFIG_KUNIT = "y"), expect(dead_code))]
    pub(crate) fn put_user(&self, id: u32, ioasid: Arc<Ioasid>) {
        let release = {
            let mut state = ioasid.state.lock();
            state.users -= 1;
            state.freed && state.users == 0
        };
        if release {
            self.ids.remove(id);
        }
    }

    /// The number of IDs in use, parked ones included.
    pub(crate) fn ids_in_use(&self) -> usize {
        self.ids.len()
    }
}

#[kunit_tests(ioasid_lifetime)]
mod tests {
    use super::*;

    fn table() -> Result<Pin<KBox<IoasidTable>>> {
        KBox::pin_init(IoasidTable::new(), GFP_KERNEL)
    }

    #[test]
    fn free_releases_an_unused_id() -> Result {
        let t = table()?;
        let id = t.alloc()?;
        assert!(id >= 1);
        assert!(t.get(id).is_ok());
        assert_eq!(t.ids_in_use(), 1);
        t.free(id)?;
        assert_eq!(t.get(id).err(), Some(ENOENT));
        assert_eq!(t.ids_in_use(), 0);
        // A double free is ENOENT, and changes nothing.
        assert_eq!(t.free(id).err(), Some(ENOENT));
        assert_eq!(t.ids_in_use(), 0);
        Ok(())
    }

    #[test]
    fn free_parks_an_id_with_users() -> Result {
        let t = table()?;
        let id = t.alloc()?;
        let user = t.add_user(id)?;
        t.free(id)?;
        // Gone for user space, but the ID stays reserved.
        assert_eq!(t.get(id).err(), Some(ENOENT));
        assert_eq!(t.add_user(id).err(), Some(ENOENT));
        assert_eq!(t.free(id).err(), Some(ENOENT));
        assert_eq!(t.ids_in_use(), 1);
        let other = t.alloc()?;
        assert_ne!(other, id);
        // The last user lets go: the parked ID is released.
        t.put_user(id, user);
        assert_eq!(t.ids_in_use(), 1);
        t.free(other)?;
        assert_eq!(t.ids_in_use(), 0);
        Ok(())
    }

    #[test]
    fn ids_are_not_reused_until_wraparound() -> Result {
        let t = table()?;
        let a = t.alloc()?;
        t.free(a)?;
        let b = t.alloc()?;
        assert!(b > a);
        Ok(())
    }

    #[test]
    fn dropping_the_table_releases_everything() -> Result {
        let t = table()?;
        let id = t.alloc()?;
        let ioasid = t.get(id)?;
        let _ = t.alloc()?;
        // The table and this test hold `ioasid`.
        drop(t);
        // Only this test's reference is left: the table dropped its own.
        assert!(Arc::into_unique_or_drop(ioasid).is_some());
        Ok(())
    }
}
