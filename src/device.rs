// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, and the IOMMU groups they belong to.
//!
//! Binding a PCI device (one handed to the ioasid driver, see [`crate::driver`]) claims its DMA
//! ownership for the context: from then on no kernel driver and no other context can use the
//! device or, because ownership is per group, any device of its IOMMU group. The group is the
//! unit of isolation (seed 001): devices of one group cannot be isolated from each other by the
//! IOMMU, so every device of a group that is bound in a context and attached must be attached to
//! the same IOASID. Attaching the first device of a group attaches the whole group.
//!
//! Binding also decides, once, whether the device is coherent-only or assumed non-coherent
//! ([`crate::iommu::PciDev::may_emit_no_snoop`]); see [`crate::coherency`].
//!
//! # One record
//!
//! Everything about a bound device that changes (whether it is attached, its DMA ownership, the
//! IOASID its group is attached to) lives in one place, its group's [`ContextGroup`] under the
//! context's `groups` mutex; the ID table only names devices. Every operation looks the device
//! up under that mutex, so a device unbound or removed by another thread is never acted on.
//!
//! # Releasing a device
//!
//! Unbind, close, the death of the process, and removal of the device all go through
//! [`ContextGroup::release`], in this order: (1) if it is the group's last attached device, the
//! group is detached from its IOASID, which puts it on the blocking domain: no DMA; (2) bus
//! mastering is cleared and the function reset where it supports one, and, if it is the last
//! device of its group in the context, bus mastering of every other device of the group (bound
//! or not) is cleared too; (3) the DMA ownership is released, and the device goes back to the
//! kernel's default domain (which may be the identity), with the whole group once its last
//! owned device is released; (4) the ioasid driver's claim is released. Pages are unpinned only when the
//! IOASIDs are freed, after every group was detached from them.
//!
//! # Lock order
//!
//! This is the one lock order of the module, outermost first:
//!
//! 1. a PCI device's device lock (driver core), held around the ioasid driver's probe and
//!    remove ([`crate::driver`]); a context takes it only while no lock of its own is held;
//! 2. the context's `groups` mutex ([`DeviceTable`]), held for every bind, unbind, attach,
//!    detach and device query, and by the removal of a device;
//! 3. an IOASID's state mutex ([`crate::ioasid`]);
//! 4. the context's coherency mutex ([`crate::coherency`]), under which the KVM-facing watches
//!    are called;
//! 5. a driver device's `holder` mutex ([`crate::driver::DriverDevice`]);
//! 6. the XArray locks of the ID tables ([`crate::id_table`]).
//!
//! `IOASID_MAP` pins user memory (which takes the mm's `mmap_lock` and may wait for page faults
//! that user space resolves, for as long as it likes) with none of these held: the IOASID's state
//! mutex is taken before and after, never across ([`crate::ioasid::Ioasid::map`]).

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::{
    driver::{
        self,
        DriverDevice,
        Owner, //
    },
    id_table::IdTable,
    ioasid::{
        Ioasid,
        IoasidTable, //
    },
    iommu::{
        capable_sys_admin,
        DmaOwnership,
        Group,
        ResvRegion, //
    },
    uapi::IOASID_ID_MAX,
};

/// A PCI device bound to a context: what does not change while it is bound.
pub(crate) struct Device {
    dev: Arc<DriverDevice>,
    group: Group,
    /// The device may emit no-snoop DMA (decided at bind).
    assumed_noncoherent: bool,
}

/// What [`DeviceTable::info`] reports.
pub(crate) struct DeviceInfo {
    pub(crate) pgsize_bitmap: u64,
    pub(crate) aperture: (u64, u64),
    pub(crate) cache_coherent: bool,
    pub(crate) isolated_msi: bool,
    pub(crate) enforce_coherency: bool,
    pub(crate) coherent_only: bool,
}

/// A bound device, in its group's record.
///
/// # Invariants
///
/// `ownership` is the DMA ownership of `dev`'s PCI device.
struct Member {
    dev: Arc<Device>,
    attached: bool,
    ownership: DmaOwnership,
}

/// A group with devices bound in this context.
///
/// # Invariants
///
/// `ioasid` is `Some` exactly when a member is attached; the group holds one user reference
/// ([`IoasidTable::add_user`]) on that IOASID, and is attached to it unless it was freed. While
/// the group is attached, an attached member holds DMA ownership of the group.
struct ContextGroup {
    group: Group,
    members: KVec<Member>,
    ioasid: Option<(u32, Arc<Ioasid>)>,
}

impl ContextGroup {
    /// Detaches member `i`; the last attached member detaches the group.
    fn detach(&mut self, ioasids: &IoasidTable, i: usize) {
        self.members[i].attached = false;
        if self.members.iter().any(|m| m.attached) {
            return;
        }
        if let Some((id, ioasid)) = self.ioasid.take() {
            // DMA blocked from here on: the group is on the blocking domain.
            ioasid.detach_group(&self.group);
            ioasids.put_user(id, ioasid);
        }
    }

    /// Releases member `i` (see the module documentation for the order) and returns it, to be
    /// [`forget`]ten.
    fn release(&mut self, ioasids: &IoasidTable, i: usize) -> Option<Member> {
        if self.members.get(i)?.attached {
            self.detach(ioasids, i);
        }
        let member = self.members.remove(i).ok()?;
        member.dev.dev.pdev().quiesce(&member.ownership);
        Some(member)
    }
}

/// Drops a released member: its DMA ownership, then the ioasid driver's claim.
fn forget(member: Member) {
    let Member { dev, ownership, .. } = member;
    drop(ownership);
    dev.dev.release();
}

/// The devices of one context.
#[pin_data]
pub(crate) struct DeviceTable {
    /// The bound devices by ID, including removed ones until they are unbound.
    #[pin]
    devices: IdTable<Device>,
    /// The groups of the bound devices, with everything that changes about the devices.
    #[pin]
    groups: Mutex<KVec<ContextGroup>>,
}

/// The group and member index of the bound device `dev`, if it is bound and not removed.
fn find(groups: &[ContextGroup], dev: &Arc<Device>) -> Option<(usize, usize)> {
    groups.iter().enumerate().find_map(|(g, cg)| {
        cg.members
            .iter()
            .position(|m| Arc::ptr_eq(&m.dev, dev))
            .map(|i| (g, i))
    })
}

impl DeviceTable {
    /// An empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            devices <- IdTable::new(IOASID_ID_MAX),
            groups <- new_mutex!(KVec::new()),
        })
    }

    /// Binds the PCI device `segment:bus:devfn`, which must be bound to the ioasid driver, to
    /// the context `owner` whose DMA ownership cookie is `cookie`; returns the device ID and
    /// the group number.
    ///
    /// Errors: `EPERM` without `CAP_SYS_ADMIN`, if the IOMMU cannot isolate the device's MSIs
    /// and the `allow_unsafe_interrupts` parameter is not set, or if its group was split from
    /// another function of its slot ([`crate::iommu::PciDev::slot_split`]); `ENODEV` if there is no such
    /// device, it is not behind an IOMMU, or it is being removed; `ENXIO` if it is not bound to
    /// the ioasid driver; `EBUSY` if another driver has it, another context has it or a device
    /// of its group, or a kernel driver uses a device of its group; `EEXIST` if it is already
    /// bound in this context.
    pub(crate) fn bind(
        &self,
        owner: Arc<dyn Owner>,
        cookie: *const core::ffi::c_void,
        segment: u32,
        bus: u8,
        devfn: u8,
    ) -> Result<(u32, u32)> {
        if !capable_sys_admin() {
            return Err(EPERM);
        }
        // Before the groups mutex: this takes the device lock (see the lock order).
        let dev = driver::lookup(segment, bus, devfn)?;
        let pdev = dev.pdev();
        let group = pdev.group().ok_or(ENODEV)?;
        // Without interrupt remapping, the device's DMA could write MSI messages and raise any
        // interrupt: refused unless the administrator said otherwise.
        if !group.has_isolated_msi() && !crate::module_parameters::allow_unsafe_interrupts.value() {
            return Err(EPERM);
        }
        // A group that does not hold every function it should cannot isolate the device.
        if pdev.slot_split() {
            return Err(EPERM);
        }
        let mut groups = self.groups.lock();
        let existing = groups.iter().position(|g| g.group.is(&group));
        if let Some(g) = existing {
            if groups[g].members.iter().any(|m| m.dev.dev.pdev().is(pdev)) {
                return Err(EEXIST);
            }
            groups[g].members.reserve(1, GFP_KERNEL_ACCOUNT)?;
        } else {
            groups.reserve(1, GFP_KERNEL_ACCOUNT)?;
        }
        let mut members = KVec::new();
        if existing.is_none() {
            members.reserve(1, GFP_KERNEL_ACCOUNT)?;
        }
        dev.claim(owner)?;
        let ownership = match pdev.claim_dma(cookie) {
            Ok(o) => o,
            Err(e) => {
                dev.release();
                return Err(e);
            }
        };
        let assumed_noncoherent = pdev.may_emit_no_snoop(&ownership)
            || crate::test_seam::assume_noncoherent(segment, bus, devfn);
        let group_id = group.id();
        let inserted = Arc::new(
            Device {
                dev: dev.clone(),
                group: group.get(),
                assumed_noncoherent,
            },
            GFP_KERNEL_ACCOUNT,
        )
        .map_err(Error::from)
        .and_then(|d| Ok((self.devices.insert(d.clone())?, d)));
        let (id, device) = match inserted {
            Ok(v) => v,
            Err(e) => {
                drop(ownership);
                dev.release();
                return Err(e);
            }
        };
        // INVARIANT: `ownership` is the device's.
        let member = Member {
            dev: device,
            attached: false,
            ownership,
        };
        // Capacity was reserved above: nothing below fails.
        match existing {
            Some(g) => {
                let _ = groups[g].members.push_within_capacity(member);
            }
            None => {
                let _ = members.push_within_capacity(member);
                let _ = groups.push_within_capacity(ContextGroup {
                    group,
                    members,
                    ioasid: None,
                });
            }
        }
        Ok((id, group_id))
    }

    /// Attaches device `dev_id` to IOASID `ioasid_id`.
    ///
    /// Errors: `ENOENT` for an unknown device or IOASID; `ENODEV` if the device was removed;
    /// `EBUSY` if the device is attached already; `EXDEV` if another device of its group is
    /// attached to a different IOASID; `EMEDIUMTYPE` if the IOASID is coherent and the device's
    /// IOMMU cannot enforce that; `ERANGE` if an existing mapping is outside what the device
    /// can use.
    pub(crate) fn attach(&self, ioasids: &IoasidTable, dev_id: u32, ioasid_id: u32) -> Result {
        let mut groups = self.groups.lock();
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        let (g, i) = find(&groups, &dev).ok_or(ENODEV)?;
        let cg = &mut groups[g];
        if cg.members[i].attached {
            return Err(EBUSY);
        }
        let noncoherent = dev.assumed_noncoherent;
        match &cg.ioasid {
            Some((id, _)) if *id != ioasid_id => return Err(EXDEV),
            Some((_, ioasid)) => {
                ioasid.join_group(&cg.group, dev.dev.pdev(), noncoherent)?;
            }
            None => {
                let ioasid = ioasids.add_user(ioasid_id)?;
                let m = &cg.members[i];
                if let Err(e) =
                    ioasid.attach_group(&cg.group, dev.dev.pdev(), &m.ownership, noncoherent)
                {
                    ioasids.put_user(ioasid_id, ioasid);
                    return Err(e);
                }
                cg.ioasid = Some((ioasid_id, ioasid));
            }
        }
        cg.members[i].attached = true;
        Ok(())
    }

    /// Detaches device `dev_id` from its IOASID. Errors: `ENOENT` for an unknown device,
    /// `ENODEV` if it was removed, `EINVAL` if it is not attached.
    pub(crate) fn detach(&self, ioasids: &IoasidTable, dev_id: u32) -> Result {
        let mut groups = self.groups.lock();
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        let (g, i) = find(&groups, &dev).ok_or(ENODEV)?;
        if !groups[g].members[i].attached {
            return Err(EINVAL);
        }
        groups[g].detach(ioasids, i);
        Ok(())
    }

    /// Releases the device of group `g`, member `i`, dropping the group's record with its last
    /// member.
    fn release_locked(ioasids: &IoasidTable, groups: &mut KVec<ContextGroup>, g: usize, i: usize) {
        let member = groups[g].release(ioasids, i);
        if groups[g].members.is_empty() {
            if let Ok(cg) = groups.remove(g) {
                // The last owned device of the group: the group's DMA goes back to the kernel
                // with it, so every device of the group stops first, not only this one.
                if let Some(m) = &member {
                    cg.group.quiesce_all(&m.ownership);
                }
            }
        }
        if let Some(member) = member {
            forget(member);
        }
    }

    /// Unbinds device `dev_id`, detaching and quiescing it first. Errors: `ENOENT` for an
    /// unknown device. A removed device is only forgotten.
    pub(crate) fn unbind(&self, ioasids: &IoasidTable, dev_id: u32) -> Result {
        let mut groups = self.groups.lock();
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        if let Some((g, i)) = find(&groups, &dev) {
            Self::release_locked(ioasids, &mut groups, g, i);
        }
        self.devices.remove(dev_id);
        Ok(())
    }

    /// The ioasid driver is removing `dev`: releases it if it is bound here. Its ID stays, on
    /// which everything but unbind fails with `ENODEV`.
    pub(crate) fn removed(&self, ioasids: &IoasidTable, dev: &DriverDevice) {
        let mut groups = self.groups.lock();
        let at = groups.iter().enumerate().find_map(|(g, cg)| {
            cg.members
                .iter()
                .position(|m| core::ptr::eq(&*m.dev.dev, dev))
                .map(|i| (g, i))
        });
        if let Some((g, i)) = at {
            Self::release_locked(ioasids, &mut groups, g, i);
        }
    }

    /// Unbinds every device (the context is going away).
    pub(crate) fn unbind_all(&self, ioasids: &IoasidTable) {
        let mut groups = self.groups.lock();
        while let Some(cg) = groups.first() {
            // A group record always has a member: it is dropped with its last one.
            let last = cg.members.len().saturating_sub(1);
            Self::release_locked(ioasids, &mut groups, 0, last);
        }
        drop(groups);
        while self.devices.pop().is_some() {}
    }

    /// What the IOMMU offers device `dev_id`: its group's reserved regions (to `regions`), page
    /// sizes, aperture and capabilities. Errors: `ENOENT`, `ENODEV` if it was removed.
    pub(crate) fn info(&self, dev_id: u32, regions: &mut KVec<ResvRegion>) -> Result<DeviceInfo> {
        let groups = self.groups.lock();
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        find(&groups, &dev).ok_or(ENODEV)?;
        let pdev = dev.dev.pdev();
        *regions = dev.group.reserved_regions()?;
        // The page sizes and aperture are those of a paging domain for its IOMMU.
        let domain = pdev.alloc_domain()?;
        Ok(DeviceInfo {
            pgsize_bitmap: domain.pgsize_bitmap(),
            aperture: domain.aperture(),
            cache_coherent: pdev.cache_coherent(),
            isolated_msi: dev.group.has_isolated_msi(),
            enforce_coherency: pdev.can_enforce_coherency(),
            coherent_only: !dev.assumed_noncoherent,
        })
    }

    /// The number of device IDs in use (removed devices included, until unbound).
    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }
}
