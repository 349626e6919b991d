// SPDX-License-Identifier: GPL-2.0

//! Devices bound to a context, and the IOMMU groups they belong to.
//!
//! Binding a PCI device claims its DMA ownership for the context: from then on no kernel driver
//! and no other context can use the device or, because ownership is per group, any device of its
//! IOMMU group. The group is the unit of isolation (seed 001): devices of one group cannot be
//! isolated from each other by the IOMMU, so every device of a group that is bound in a context
//! and attached must be attached to the same IOASID. Attaching a device attaches its whole group.
//!
//! Binding also decides, once, whether the device is coherent-only or assumed non-coherent
//! ([`PciDev::may_emit_no_snoop`]); see [`crate::coherency`].
//!
//! # Locking
//!
//! Lock order, outermost first:
//!
//! 1. the context's `groups` mutex ([`DeviceTable::groups`]), held for every bind, unbind,
//!    attach and detach;
//! 2. an IOASID's state mutex (see [`crate::ioasid`]);
//! 3. the context's coherency mutex (see [`crate::coherency`]), under which the KVM-facing
//!    watches are called;
//! 4. the XArray locks of the ID tables (see [`crate::id_table`]).

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
    ioasid::{
        Ioasid,
        IoasidTable, //
    },
    iommu::{
        capable_sys_admin,
        DmaOwnership,
        Group,
        PciDev, //
    },
    uapi::IOASID_ID_MAX,
};

/// A PCI device bound to a context.
pub(crate) struct Device {
    pdev: PciDev,
    group: Group,
    segment: u32,
    bus: u8,
    devfn: u8,
    /// The device may emit no-snoop DMA (decided at bind).
    assumed_noncoherent: bool,
    /// Dropped last: the device is detached before its ownership is released.
    _ownership: DmaOwnership,
}

/// What [`DeviceTable::info`] reports.
pub(crate) struct DeviceInfo {
    pub(crate) num_regions: usize,
    pub(crate) pgsize_bitmap: u64,
    pub(crate) aperture: (u64, u64),
    pub(crate) cache_coherent: bool,
    pub(crate) isolated_msi: bool,
    pub(crate) enforce_coherency: bool,
    pub(crate) coherent_only: bool,
}

/// The IOASID a group is attached to in this context.
struct GroupIoasid {
    id: u32,
    ioasid: Arc<Ioasid>,
    /// The devices of the group attached, by device ID.
    devices: KVec<u32>,
}

/// A group with devices bound in this context.
struct ContextGroup {
    group: Group,
    /// Bound devices of this group, by device ID.
    bound: KVec<u32>,
    attached: Option<GroupIoasid>,
}

/// The entry of `dev`'s group among a context's `groups`.
fn group_of<'a>(groups: &'a mut [ContextGroup], dev: &Device) -> Result<&'a mut ContextGroup> {
    groups
        .iter_mut()
        .find(|g| g.group.is(&dev.group))
        .ok_or(ENOENT)
}

/// The devices of one context.
#[pin_data]
pub(crate) struct DeviceTable {
    #[pin]
    devices: IdTable<Device>,
    /// The groups of the bound devices.
    #[pin]
    groups: Mutex<KVec<ContextGroup>>,
}

impl DeviceTable {
    /// An empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            devices <- IdTable::new(IOASID_ID_MAX),
            groups <- new_mutex!(KVec::new()),
        })
    }

    /// Binds the PCI device `segment:bus:devfn` to the context whose address is `owner`, and
    /// returns its device ID.
    ///
    /// Errors: `EPERM` without `CAP_SYS_ADMIN`, or if the IOMMU cannot isolate the device's MSIs
    /// and the `allow_unsafe_interrupts` parameter is not set; `ENODEV` if there is no such
    /// device or it is not behind an IOMMU; `EEXIST` if it is already bound in this context;
    /// `EBUSY` if a kernel driver uses it or a device of its group, or another context owns its
    /// group.
    pub(crate) fn bind(
        &self,
        owner: *const core::ffi::c_void,
        segment: u32,
        bus: u8,
        devfn: u8,
    ) -> Result<(u32, u32)> {
        if !capable_sys_admin() {
            return Err(EPERM);
        }
        let pdev = PciDev::get(segment, bus, devfn).ok_or(ENODEV)?;
        let group = pdev.group().ok_or(ENODEV)?;
        // Without interrupt remapping, the device's DMA could write MSI messages and raise any
        // interrupt: refused unless the administrator said otherwise.
        if !group.has_isolated_msi() && !crate::module_parameters::allow_unsafe_interrupts.value() {
            return Err(EPERM);
        }
        let mut groups = self.groups.lock();
        // The group's entry, if a device of it is bound already (stable while the lock is held).
        let existing = groups.iter().position(|g| g.group.is(&group));
        if let Some(pos) = existing {
            for &id in groups[pos].bound.iter() {
                if let Some(d) = self.devices.get(id) {
                    if d.segment == segment && d.bus == bus && d.devfn == devfn {
                        return Err(EEXIST);
                    }
                }
            }
        }
        if pdev.has_driver() {
            return Err(EBUSY);
        }
        let ownership = pdev.claim_dma(owner)?;
        let assumed_noncoherent = pdev.may_emit_no_snoop(&ownership)
            || crate::test_seam::assume_noncoherent(segment, bus, devfn);
        let group_id = group.id();
        let dev = Arc::new(
            Device {
                pdev,
                group: group.get(),
                segment,
                bus,
                devfn,
                assumed_noncoherent,
                _ownership: ownership,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        let id = self.devices.insert(dev)?;
        let pos = match existing {
            Some(pos) => pos,
            None => {
                let entry = ContextGroup {
                    group,
                    bound: KVec::new(),
                    attached: None,
                };
                if let Err(e) = groups.push(entry, GFP_KERNEL_ACCOUNT) {
                    self.devices.remove(id);
                    return Err(e.into());
                }
                groups.len() - 1
            }
        };
        if let Err(e) = groups[pos].bound.push(id, GFP_KERNEL_ACCOUNT) {
            if groups[pos].bound.is_empty() {
                let _ = groups.remove(pos);
            }
            self.devices.remove(id);
            return Err(e.into());
        }
        Ok((id, group_id))
    }

    /// Attaches device `dev_id` to IOASID `ioasid_id`.
    ///
    /// Errors: `ENOENT` for an unknown device or IOASID; `EBUSY` if the device is attached
    /// already; `EXDEV` if another device of its group is attached to a different IOASID;
    /// `EMEDIUMTYPE` if the IOASID is coherent and the device's IOMMU cannot enforce that;
    /// `ERANGE` if an existing mapping is outside what the device can use.
    pub(crate) fn attach(&self, ioasids: &IoasidTable, dev_id: u32, ioasid_id: u32) -> Result {
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        let mut groups = self.groups.lock();
        let g = group_of(&mut groups, &dev)?;
        match &mut g.attached {
            Some(a) if a.devices.contains(&dev_id) => Err(EBUSY),
            Some(a) if a.id != ioasid_id => Err(EXDEV),
            Some(a) => {
                a.devices.push(dev_id, GFP_KERNEL_ACCOUNT)?;
                if let Err(e) =
                    a.ioasid
                        .attach_device(dev_id, &dev.pdev, &dev.group, dev.assumed_noncoherent)
                {
                    a.devices.retain(|d| *d != dev_id);
                    return Err(e);
                }
                Ok(())
            }
            None => {
                let ioasid = ioasids.add_user(ioasid_id)?;
                let mut devices = KVec::new();
                if let Err(e) = devices
                    .push(dev_id, GFP_KERNEL_ACCOUNT)
                    .map_err(Error::from)
                    .and_then(|()| {
                        ioasid.attach_device(dev_id, &dev.pdev, &dev.group, dev.assumed_noncoherent)
                    })
                {
                    ioasids.put_user(ioasid_id, ioasid);
                    return Err(e);
                }
                g.attached = Some(GroupIoasid {
                    id: ioasid_id,
                    ioasid,
                    devices,
                });
                Ok(())
            }
        }
    }

    /// Detaches device `dev_id` from its IOASID. Errors: `ENOENT` for an unknown device,
    /// `EINVAL` if it is not attached.
    pub(crate) fn detach(&self, ioasids: &IoasidTable, dev_id: u32) -> Result {
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        let mut groups = self.groups.lock();
        Self::detach_locked(ioasids, group_of(&mut groups, &dev)?, dev_id, &dev)
    }

    fn detach_locked(
        ioasids: &IoasidTable,
        g: &mut ContextGroup,
        dev_id: u32,
        dev: &Device,
    ) -> Result {
        let Some(a) = &mut g.attached else {
            return Err(EINVAL);
        };
        if !a.devices.contains(&dev_id) {
            return Err(EINVAL);
        }
        a.ioasid.detach_device(dev_id, &dev.group);
        a.devices.retain(|d| *d != dev_id);
        if a.devices.is_empty() {
            if let Some(a) = g.attached.take() {
                ioasids.put_user(a.id, a.ioasid);
            }
        }
        Ok(())
    }

    /// Unbinds device `dev_id`, detaching it first. Errors: `ENOENT` for an unknown device.
    pub(crate) fn unbind(&self, ioasids: &IoasidTable, dev_id: u32) -> Result {
        let mut groups = self.groups.lock();
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        Self::forget_locked(ioasids, &mut groups, dev_id, &dev);
        drop(dev);
        // The table's reference: dropping it (now or when a racing lookup lets go) releases the
        // DMA ownership, after the group was detached above.
        self.devices.remove(dev_id);
        Ok(())
    }

    /// Unbinds every device (the context is going away).
    pub(crate) fn unbind_all(&self, ioasids: &IoasidTable) {
        while let Some((id, dev)) = self.devices.pop() {
            Self::forget_locked(ioasids, &mut self.groups.lock(), id, &dev);
            // `dev`, dropped here, releases the DMA ownership after the detach.
        }
    }

    /// Detaches device `dev_id` if it is attached and removes it from its group's bookkeeping.
    fn forget_locked(
        ioasids: &IoasidTable,
        groups: &mut KVec<ContextGroup>,
        dev_id: u32,
        dev: &Device,
    ) {
        let Some(pos) = groups.iter().position(|g| g.group.is(&dev.group)) else {
            return;
        };
        let g = &mut groups[pos];
        // Not attached is fine here.
        let _ = Self::detach_locked(ioasids, g, dev_id, dev);
        g.bound.retain(|d| *d != dev_id);
        if g.bound.is_empty() {
            let _ = groups.remove(pos);
        }
    }

    /// What the IOMMU offers device `dev_id`: its reserved regions (the first `max` to
    /// `regions`; returns how many there are), page sizes, aperture and capabilities.
    pub(crate) fn info(
        &self,
        dev_id: u32,
        regions: &mut KVec<(u64, u64)>,
        max: usize,
    ) -> Result<DeviceInfo> {
        let dev = self.devices.get(dev_id).ok_or(ENOENT)?;
        let reserved = dev.pdev.reserved_regions()?;
        for &r in reserved.iter().take(max) {
            regions.push(r, GFP_KERNEL)?;
        }
        // The page sizes and aperture are those of a paging domain for its IOMMU.
        let domain = dev.pdev.alloc_domain()?;
        Ok(DeviceInfo {
            num_regions: reserved.len(),
            pgsize_bitmap: domain.pgsize_bitmap(),
            aperture: domain.aperture(),
            cache_coherent: dev.pdev.cache_coherent(),
            isolated_msi: dev.group.has_isolated_msi(),
            enforce_coherency: dev.pdev.can_enforce_coherency(),
            coherent_only: !dev.assumed_noncoherent,
        })
    }

    /// The number of bound devices.
    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }
}
