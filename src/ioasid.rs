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
//! - Either way DMA through it is blocked at once: every attached group is detached (and, its DMA
//!   being owned, put on the blocking domain), every mapping is unmapped and its pages unpinned.
//! - If it still has users, the entry stays in the table, *parked*: the ID cannot be allocated
//!   again, and lookups still say `ENOENT`. The last user to let go (the last attached device to
//!   detach or unbind) removes the entry.
//! - A lookup racing with a free either wins (and then operates on an IOASID that is freed right
//!   after; its reference keeps the memory alive) or sees `ENOENT`. Nothing that was freed is
//!   ever operated on after the free's `ioctl` has returned, because every operation checks the
//!   state under the IOASID's lock.
//!
//! # Locking
//!
//! An IOASID's state mutex comes after a context's `groups` mutex and before its coherency
//! mutex and the ID table's XArray lock, in the module's one lock order (see
//! [`crate::device`]). The state is decided under the IOASID's lock, which is released before
//! the table is changed.
//!
//! # Coherency
//!
//! A coherent IOASID (`IOASID_ALLOC_COHERENT`) maps into domains that enforce cache coherency,
//! and accepts only devices whose IOMMU can enforce it (else `EMEDIUMTYPE`, checked before
//! anything changes). Every mapping of every IOASID carries `IOMMU_CACHE`: without it, SMMUv3
//! stage 1 maps memory Normal Non-cacheable. A non-coherent IOASID accepts any device; each
//! attached group through which an assumed non-coherent device was attached counts in the
//! context's [`Coherency`] from that attach until the group is detached (after its DMA is
//! blocked) or the IOASID is freed, whichever comes first.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex,
        MutexGuard, //
    },
};

use crate::{
    coherency::Coherency,
    hw_pagetable,
    id_table::IdTable,
    io_pagetable::{
        IoPageTable,
        MapRequest,
        MapSource,
        Mapped,
        PinnedArea, //
    },
    iommu::{
        sw_msi_base,
        Attachment,
        DmaOwnership,
        Group,
        PciDev,
        ResvRegion,
        PROT_CACHE, //
    },
    uapi::{
        self,
        IOASID_ID_MAX, //
    },
};

/// A group attached to the IOASID.
struct GroupAttachment {
    attachment: Attachment,
    /// The group's reserved IOVA regions.
    reserved: KVec<ResvRegion>,
    /// Whether the group counts in the context's [`Coherency`]: a device of it that may emit
    /// no-snoop DMA was attached through it, and the IOASID is non-coherent. Sticky until the
    /// group is detached: a device unbound from the context stays in the group, and the group's
    /// DMA is what counts.
    noncoherent: bool,
}

/// The state of an IOASID that changes after creation.
struct State {
    /// `IOASID_FREE` was called: the ID no longer names this IOASID for user space.
    freed: bool,
    /// Kernel-side users (attached groups). While nonzero after a free, the ID is parked.
    users: u32,
    /// The mappings, and the domains they are mirrored into.
    iopt: IoPageTable,
    /// The groups attached to the domains.
    groups: KVec<GroupAttachment>,
}

/// The reserved regions of every group in `groups`, and of `extra`, as inclusive ranges.
fn all_reserved(groups: &[GroupAttachment], extra: &[ResvRegion]) -> Result<KVec<(u64, u64)>> {
    let mut all = KVec::new();
    for r in Iterator::chain(groups.iter().flat_map(|g| g.reserved.iter()), extra) {
        all.push((r.start, r.last), GFP_KERNEL_ACCOUNT)?;
    }
    Ok(all)
}

impl State {
    /// Frees the IOASID: marks it freed, detaches every group (their DMA is blocked from then
    /// on), then stops counting them in `coherency`, and unmaps and unpins everything.
    /// `ENOENT` if it was freed already.
    fn free(&mut self, coherency: &Coherency) -> Result {
        if self.freed {
            return Err(ENOENT);
        }
        self.freed = true;
        while let Some(g) = self.groups.pop() {
            let counted = g.noncoherent;
            // Detaching first: no device can reach the memory while it is being unpinned.
            drop(g);
            if counted {
                coherency.put();
            }
        }
        // The domains go first, with their mappings: no group is attached to them any more.
        while let Some(d) = self.iopt.domains().first().cloned() {
            // SAFETY: every group was detached above, and no group can attach to a freed
            // IOASID (`live()` refuses it) nor to a domain out of its table.
            unsafe { self.iopt.retire_domain(d) };
        }
        // Then the areas are unpinned: no domain maps them any more.
        self.iopt.unmap_all();
        Ok(())
    }
}

/// An I/O address space.
#[pin_data]
pub(crate) struct Ioasid {
    /// Allocated with `IOASID_ALLOC_COHERENT`.
    coherent: bool,
    /// The coherency state of the context the IOASID belongs to.
    coherency: Arc<Coherency>,
    /// The fields that change, under the IOASID's lock.
    #[pin]
    state: Mutex<State>,
}

impl Ioasid {
    fn new(coherent: bool, coherency: Arc<Coherency>) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                coherent,
                coherency,
                state <- new_mutex!(State {
                    freed: false,
                    users: 0,
                    iopt: IoPageTable::new(),
                    groups: KVec::new(),
                }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Locks the state of a live IOASID: `ENOENT` once it was freed.
    fn live(&self) -> Result<MutexGuard<'_, State>> {
        let state = self.state.lock();
        if state.freed {
            return Err(ENOENT);
        }
        Ok(state)
    }

    /// Maps `length` bytes of `source` (the caller's memory, or a file's pages) with `prot`, at
    /// `iova` if given, else at an IOVA chosen here (see [`crate::io_pagetable`]).
    ///
    /// The memory is pinned with no lock held, so that a map of slow memory does not stall the
    /// other threads' ioctls on this IOASID, and maps into it pin in parallel; the IOASID's lock
    /// is taken before, to refuse at once what cannot be placed, and after, to place and map.
    /// Either the memory is mapped, or nothing is left pinned or charged.
    ///
    /// Errors: `EINVAL` for a zero, unaligned or wrapping range, `EEXIST` if it overlaps an
    /// existing mapping, `ERANGE` if it is not usable, `ENOSPC` if no IOVA range is free,
    /// `ENOMEM` past `RLIMIT_MEMLOCK`, `EFAULT` for memory that cannot be pinned, `EINTR` if a
    /// fatal signal interrupted the pinning, `ENOENT` if the IOASID was freed; for a file, those
    /// of [`crate::pages::PinnedPages::pin_file`].
    pub(crate) fn map(
        &self,
        source: MapSource,
        length: u64,
        iova: Option<u64>,
        prot: i32,
    ) -> Result<Mapped> {
        // Every mapping is cacheable: a coherent IOASID's domains also force snooping.
        let req = MapRequest::new(source, length, iova, prot | PROT_CACHE)?;
        self.live()?.iopt.place(&req)?;
        let pinned = PinnedArea::pin(&req)?;
        // Placed again under the lock: another thread may have mapped there meanwhile, a
        // device with reserved regions been attached, or the IOASID freed. A map that lost
        // the race unpins its memory (which may take long) after the lock is released: the
        // guard is a temporary of this statement, `inserted` lives on.
        let inserted = self.live()?.iopt.insert(&req, pinned);
        inserted.map_err(|(e, _unpinned_after_the_lock)| e)
    }

    /// `enum ioasid_coherency_flags` of this IOASID.
    pub(crate) fn coherency_flags(&self) -> Result<u32> {
        let state = self.live()?;
        let mut flags = 0;
        if self.coherent {
            flags |= uapi::IOASID_COHERENCY_ENFORCED;
        }
        if state.groups.iter().any(|g| g.noncoherent) {
            flags |= uapi::IOASID_COHERENCY_NONCOHERENT_DMA;
        }
        Ok(flags)
    }

    /// Undoes the mapping `m` made by [`Ioasid::map`], and nothing else: not a later mapping
    /// at the same IOVA by another thread.
    pub(crate) fn undo_map(&self, m: Mapped) {
        self.state.lock().iopt.unmap_exact(m);
    }

    /// Unmaps a range of whole mappings; see [`IoPageTable::unmap`].
    pub(crate) fn unmap(&self, iova: u64, length: u64) -> Result<u64> {
        self.live()?.iopt.unmap(iova, length)
    }

    /// Unmaps everything; returns the bytes unmapped.
    pub(crate) fn unmap_all(&self) -> Result<u64> {
        Ok(self.live()?.iopt.unmap_all())
    }

    /// The usable IOVA ranges (see [`IoPageTable::usable_ranges`]) to `out`, and returns the
    /// page sizes all domains support (0 without a domain).
    pub(crate) fn ranges(&self, out: &mut KVec<(u64, u64)>) -> Result<u64> {
        let state = self.live()?;
        state.iopt.usable_ranges(out)?;
        let pgsizes = state
            .iopt
            .domains()
            .iter()
            .fold(None, |acc: Option<u64>, d| {
                Some(acc.unwrap_or(u64::MAX) & d.pgsize_bitmap())
            })
            .unwrap_or(0);
        Ok(pgsizes)
    }

    /// Attaches `group` to this IOASID, through its device `pdev` whose DMA ownership is
    /// `ownership` (`noncoherent` if that device may emit no-snoop DMA). The group must not be
    /// attached to it already.
    ///
    /// The group goes to a domain of the IOASID that accepts it, or to a new domain into which
    /// every mapping is replayed ([`hw_pagetable::attach`]). Either it is attached and recorded,
    /// or nothing changed. Errors: `EMEDIUMTYPE` if the IOASID is coherent and the device's
    /// IOMMU cannot enforce that; `ERANGE` if an existing mapping lies outside what the group
    /// can use (a domain's aperture, its reserved regions); `ENOENT` if the IOASID was freed;
    /// `ENOMEM`; errors of the IOMMU driver.
    pub(crate) fn attach_group(
        &self,
        group: &Group,
        pdev: &PciDev,
        ownership: &DmaOwnership,
        noncoherent: bool,
    ) -> Result {
        let mut guard = self.live()?;
        let state = &mut *guard;
        if self.coherent && !pdev.can_enforce_coherency() {
            return Err(EMEDIUMTYPE);
        }
        let reserved = group.reserved_regions()?;
        let ranges = all_reserved(&state.groups, &reserved)?;
        if !state.iopt.fits(None, &ranges) {
            return Err(ERANGE);
        }
        // Everything that can fail is done before the group is attached.
        state.groups.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let attachment = hw_pagetable::attach(
            &mut state.iopt,
            group,
            pdev,
            ownership,
            self.coherent,
            sw_msi_base(&reserved),
        )?;
        let counts = noncoherent && !self.coherent;
        state.iopt.set_reserved(ranges);
        // Capacity reserved above: this cannot fail.
        let _ = state.groups.push_within_capacity(GroupAttachment {
            attachment,
            reserved,
            noncoherent: counts,
        });
        if counts {
            self.coherency.get();
        }
        Ok(())
    }

    /// Another device of `group`, which is attached to this IOASID, is attached: `pdev`, which
    /// may emit no-snoop DMA if `noncoherent`. Errors: `ENOENT` if the IOASID was freed;
    /// `EMEDIUMTYPE` as for [`Ioasid::attach_group`].
    pub(crate) fn join_group(&self, group: &Group, pdev: &PciDev, noncoherent: bool) -> Result {
        let mut state = self.live()?;
        if self.coherent && !pdev.can_enforce_coherency() {
            return Err(EMEDIUMTYPE);
        }
        let g = state
            .groups
            .iter_mut()
            .find(|g| g.attachment.group().is(group))
            .ok_or(ENOENT)?;
        if noncoherent && !self.coherent && !g.noncoherent {
            g.noncoherent = true;
            self.coherency.get();
        }
        Ok(())
    }

    /// Detaches `group` (its DMA is blocked from then on), then stops counting it in the
    /// context's coherency; a domain left without groups is freed. Nothing to do if the IOASID
    /// was freed meanwhile (that detached it).
    pub(crate) fn detach_group(&self, group: &Group) {
        let mut state = self.state.lock();
        let Some(i) = state
            .groups
            .iter()
            .position(|g| g.attachment.group().is(group))
        else {
            return;
        };
        let Ok(g) = state.groups.remove(i) else {
            return;
        };
        let GroupAttachment {
            attachment,
            noncoherent,
            ..
        } = g;
        let domain = attachment.domain().clone();
        drop(attachment);
        if noncoherent {
            self.coherency.put();
        }
        if !state
            .groups
            .iter()
            .any(|g| Arc::ptr_eq(g.attachment.domain(), &domain))
            && state.iopt.has_domain(&domain)
        {
            // SAFETY: `domain`'s last group was detached above (the state's lock is held, so
            // no other can attach meanwhile), and it leaves the table, from which alone groups
            // are attached.
            unsafe { state.iopt.retire_domain(domain) };
        }
        // The remaining groups' regions; on failure to allocate, the old (larger) set stays.
        if let Ok(ranges) = all_reserved(&state.groups, &[]) {
            state.iopt.set_reserved(ranges);
        }
    }
}

/// The IOASIDs of one context.
#[pin_data]
pub(crate) struct IoasidTable {
    #[pin]
    ids: IdTable<Ioasid>,
    /// The context's coherency state, shared with every IOASID.
    coherency: Arc<Coherency>,
}

impl IoasidTable {
    /// Creates an empty table for a context whose coherency state is `coherency`.
    pub(crate) fn new(coherency: Arc<Coherency>) -> impl PinInit<Self> {
        pin_init!(Self {
            ids <- IdTable::new(IOASID_ID_MAX),
            coherency,
        })
    }

    /// Creates a new, empty IOASID (coherent if `coherent`) and returns its ID.
    pub(crate) fn alloc(&self, coherent: bool) -> Result<u32> {
        self.ids
            .insert(Ioasid::new(coherent, self.coherency.clone())?)
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
            // Block DMA now, whoever still holds the IOASID.
            state.free(&ioasid.coherency)?;
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

    /// Frees every IOASID (the context is being closed; its devices are unbound already).
    pub(crate) fn free_all(&self) {
        while let Some((_, ioasid)) = self.ids.pop() {
            // A parked IOASID was freed already: nothing more to do.
            let _ = ioasid.state.lock().free(&ioasid.coherency);
        }
    }

    /// The number of IDs in use, parked ones included.
    pub(crate) fn ids_in_use(&self) -> usize {
        self.ids.len()
    }

    /// The number of mappings in all IOASIDs. Each IOASID's lock is taken in turn, none held
    /// while the table is walked.
    pub(crate) fn areas(&self) -> usize {
        let mut total: usize = 0;
        let mut id = 1;
        while let Some((found, ioasid)) = self.ids.next_from(id) {
            total = total.saturating_add(ioasid.state.lock().iopt.len());
            let Some(next) = found.checked_add(1) else {
                break;
            };
            id = next;
        }
        total
    }
}

#[kunit_tests(ioasid_lifetime)]
mod tests {
    use super::*;

    fn table() -> Result<Pin<KBox<IoasidTable>>> {
        KBox::pin_init(IoasidTable::new(Coherency::new()?), GFP_KERNEL)
    }

    #[test]
    fn free_releases_an_unused_id() -> Result {
        let t = table()?;
        let id = t.alloc(false)?;
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
        let id = t.alloc(false)?;
        let user = t.add_user(id)?;
        t.free(id)?;
        // Gone for user space, but the ID stays reserved.
        assert_eq!(t.get(id).err(), Some(ENOENT));
        assert_eq!(t.add_user(id).err(), Some(ENOENT));
        assert_eq!(t.free(id).err(), Some(ENOENT));
        assert_eq!(t.ids_in_use(), 1);
        let other = t.alloc(false)?;
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
        let a = t.alloc(false)?;
        t.free(a)?;
        let b = t.alloc(false)?;
        assert!(b > a);
        Ok(())
    }

    #[test]
    fn dropping_the_table_releases_everything() -> Result {
        let t = table()?;
        let id = t.alloc(false)?;
        let ioasid = t.get(id)?;
        let _ = t.alloc(false)?;
        // The table and this test hold `ioasid`.
        drop(t);
        // Only this test's reference is left: the table dropped its own.
        assert!(Arc::into_unique_or_drop(ioasid).is_some());
        Ok(())
    }
}
