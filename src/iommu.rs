// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over the kernel's PCI and IOMMU C APIs.
//!
//! The types here make the C API's ordering rules hold by construction:
//!
//! - [`PciDev`] is a counted reference to a `struct pci_dev`.
//! - [`DmaOwnership`] is DMA ownership of a device claimed for a context; dropping it releases
//!   the ownership. No kernel driver can bind to the device while it is held.
//! - [`Group`] is a counted reference to an IOMMU group.
//! - [`Domain`] is a paging `iommu_domain`, shared by [`Arc`]; it is freed when the last
//!   reference goes. Mapping and unmapping are `unsafe`: a mapping lets a device reach physical
//!   memory, so the caller must prove the memory stays pinned while it is mapped.
//! - [`Attachment`] is a group attached to a domain. It holds a reference to the domain, so the
//!   domain cannot be freed while anything is attached to it, and dropping it detaches the group,
//!   which, because the group's DMA is owned, puts the group back on the blocking domain: no DMA.
//!   Creating one needs the group's [`DmaOwnership`].
//!
//! Where the module's `unsafe` is: the calls into C are in the thin wrappers, this file,
//! [`crate::driver`] (the PCI driver's registration), [`crate::id_table`] (the XArray),
//! [`crate::pages`] (pinning and accounting), [`crate::kvm`] (the exported C interface),
//! [`crate::kvm_types`] (the KVM watch) and [`crate::test_seam`]; [`crate::uapi`] declares the
//! generated uAPI structs plain data (`unsafe impl` of `FromBytes`/`AsBytes`). Besides those,
//! only the two callers of the `unsafe fn`s of [`Domain`] ([`crate::io_pagetable`], which maps
//! pinned pages, citing the invariant of its `Area`, and [`crate::hw_pagetable`], which makes a
//! new domain coherent) write `unsafe`. Everything else is safe Rust.

use core::ptr::{
    null_mut,
    NonNull, //
};
use kernel::{
    bindings,
    error::from_err_ptr,
    ffi::c_void,
    prelude::*,
    sync::Arc, //
};

extern "C" {
    fn ioasid_init_list_head(list: *mut bindings::list_head);
    fn ioasid_cond_resched();
    fn ioasid_group_clear_master(group: *mut bindings::iommu_group);
}

// `struct pci_dev` is only ever passed by pointer; its layout does not cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn ioasid_pci_slot_split(pdev: *mut bindings::pci_dev) -> bool;
}

/// One reserved IOVA region of a group: `start..=last`, and whether it is the window the IOMMU
/// driver wants MSI doorbells mapped into by software (`IOMMU_RESV_SW_MSI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResvRegion {
    pub(crate) start: u64,
    pub(crate) last: u64,
    pub(crate) sw_msi: bool,
    /// A hardware MSI window (`IOMMU_RESV_MSI`): MSIs need no software mapping.
    pub(crate) hw_msi: bool,
}

/// The base of the software-managed MSI window among `regions`, if the IOMMU needs one (and
/// has no hardware MSI window, which takes precedence), as VFIO decides it.
pub(crate) fn sw_msi_base(regions: &[ResvRegion]) -> Option<u64> {
    if regions.iter().any(|r| r.hw_msi) {
        return None;
    }
    regions.iter().find(|r| r.sw_msi).map(|r| r.start)
}

/// A counted reference to a PCI device.
///
/// # Invariants
///
/// `ptr` points to a `struct pci_dev` on which this value holds one reference.
pub(crate) struct PciDev {
    ptr: NonNull<bindings::pci_dev>,
}

// SAFETY: a `struct pci_dev` is reference counted and may be referenced and released from any
// thread; the methods below only call functions that take their own locks.
unsafe impl Send for PciDev {}
// SAFETY: as above; no method mutates the device through `&self` without the kernel's locking.
unsafe impl Sync for PciDev {}

impl PciDev {
    /// Looks up the PCI device at `segment:bus:devfn`.
    pub(crate) fn get(segment: u32, bus: u8, devfn: u8) -> Option<Self> {
        let segment = i32::try_from(segment).ok()?;
        // SAFETY: plain lookup; it returns a new reference or NULL.
        let ptr = unsafe {
            bindings::pci_get_domain_bus_and_slot(segment, u32::from(bus), u32::from(devfn))
        };
        // INVARIANT: `pci_get_domain_bus_and_slot` returned a new reference.
        NonNull::new(ptr).map(|ptr| PciDev { ptr })
    }

    /// Takes a new reference to the PCI device at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `struct pci_dev` for the duration of the call.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::pci_dev>) -> Self {
        // SAFETY: `ptr` is valid (function's safety requirement); this takes a reference.
        unsafe { bindings::pci_dev_get(ptr.as_ptr()) };
        // INVARIANT: the reference taken above.
        PciDev { ptr }
    }

    /// The `struct pci_dev`.
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        self.ptr.as_ptr()
    }

    /// Whether `self` and `other` are the same device.
    pub(crate) fn is(&self, other: &PciDev) -> bool {
        self.ptr == other.ptr
    }

    fn dev(&self) -> *mut bindings::device {
        // SAFETY: `ptr` is valid (type invariant); this only computes a field address.
        unsafe { &raw mut (*self.ptr.as_ptr()).dev }
    }

    /// Whether a kernel driver is bound to the device.
    pub(crate) fn has_driver(&self) -> bool {
        // SAFETY: `dev()` is valid; a racy read of the pointer is only used as a hint here, the
        // DMA ownership claim is what excludes drivers.
        unsafe { !core::ptr::read_volatile(&raw const (*self.dev()).driver).is_null() }
    }

    /// The device's IOMMU group, or `None` when it is not behind an IOMMU.
    pub(crate) fn group(&self) -> Option<Group> {
        // SAFETY: `dev()` is valid; `iommu_group_get` returns a new reference or NULL.
        let ptr = unsafe { bindings::iommu_group_get(self.dev()) };
        // INVARIANT: a new reference, or nothing.
        NonNull::new(ptr).map(|ptr| Group { ptr })
    }

    /// Whether the device's IOMMU group is not the unit of isolation it should be: another
    /// function of its slot, with no ACS between them, is in another group (the IOMMU core
    /// groups such functions together, except a function a rescan hot-added: it probes the
    /// function before it marks the slot multi-function). Owning either would then let its DMA
    /// reach the other's without the IOMMU (peer to peer inside the slot).
    pub(crate) fn slot_split(&self) -> bool {
        // SAFETY: `ptr` is valid (type invariant); the helper takes and drops its own
        // references on the sibling functions and the groups.
        unsafe { ioasid_pci_slot_split(self.ptr.as_ptr()) }
    }

    /// Whether the device's IOMMU keeps its DMA cache-coherent (`IOMMU_CAP_CACHE_COHERENCY`).
    pub(crate) fn cache_coherent(&self) -> bool {
        // SAFETY: `dev()` is valid; this only asks the IOMMU driver.
        unsafe {
            bindings::device_iommu_capable(
                self.dev(),
                bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY,
            )
        }
    }

    /// Whether the device's IOMMU can block its no-snoop DMA
    /// (`IOMMU_CAP_ENFORCE_CACHE_COHERENCY`), so that it may be attached to a coherent IOASID.
    pub(crate) fn can_enforce_coherency(&self) -> bool {
        // SAFETY: `dev()` is valid; this only asks the IOMMU driver.
        unsafe {
            bindings::device_iommu_capable(
                self.dev(),
                bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY,
            )
        }
    }

    /// Whether the device may emit no-snoop DMA, i.e. is *assumed non-coherent*.
    ///
    /// Read from the device itself:
    ///
    /// - a PCI-X device may: the No Snoop attribute has no enable bit there;
    /// - any other device that is not PCI Express cannot: conventional PCI has no No Snoop;
    /// - a PCIe device may if the Enable No Snoop bit of its Device Control register is set;
    /// - if that bit is clear, it may still be set later (by whoever can write the device's
    ///   config space), unless it is hardwired to 0, which the PCIe specification allows for a
    ///   device that never emits No Snoop. To tell, the bit is set, read back and the register
    ///   restored, with user-space config accesses blocked (`pci_cfg_access_lock`). The caller
    ///   owns the device's DMA (it is blocked, and no driver is bound), so the probe leaves the
    ///   register as it found it and nothing can observe it.
    ///
    /// A config read that fails answers "may", the safe side.
    pub(crate) fn may_emit_no_snoop(&self, _ownership: &DmaOwnership) -> bool {
        let pdev = self.ptr.as_ptr();
        // SAFETY: `pdev` is valid (type invariant); this walks the capability list.
        if unsafe { bindings::pci_find_capability(pdev, bindings::PCI_CAP_ID_PCIX as i32) } != 0 {
            return true;
        }
        // SAFETY: `pdev` is valid; `pcie_cap` is set at enumeration and never changes.
        if unsafe { (*pdev).pcie_cap } == 0 {
            return false;
        }
        let pos = bindings::PCI_EXP_DEVCTL as i32;
        let enable = bindings::PCI_EXP_DEVCTL_NOSNOOP_EN as u16;
        let mut ctl: u16 = 0;
        // SAFETY: `pdev` is valid and `ctl` a valid `u16` to store into.
        if unsafe { bindings::pcie_capability_read_word(pdev, pos, &mut ctl) } != 0 {
            return true;
        }
        if ctl & enable != 0 {
            return true;
        }
        let mut probed: u16 = 0;
        // SAFETY: `pdev` is valid. Its DMA is owned by the caller (`_ownership`): no driver
        // uses it and its DMA is blocked; user-space config accesses wait while the access is
        // locked, and the register is restored before it is unlocked.
        let ret = unsafe {
            bindings::pci_cfg_access_lock(pdev);
            let ret = bindings::pcie_capability_write_word(pdev, pos, ctl | enable);
            let read = bindings::pcie_capability_read_word(pdev, pos, &mut probed);
            bindings::pcie_capability_write_word(pdev, pos, ctl);
            bindings::pci_cfg_access_unlock(pdev);
            if ret != 0 {
                ret
            } else {
                read
            }
        };
        ret != 0 || probed & enable != 0
    }

    /// Claims the DMA ownership of the device for `owner`.
    ///
    /// Fails with `EBUSY` if a driver uses the device or its group, or if another owner has it.
    pub(crate) fn claim_dma(&self, owner: *const c_void) -> Result<DmaOwnership> {
        // SAFETY: `dev()` is valid; `owner` is only compared by the IOMMU core, never
        // dereferenced.
        let ret = unsafe { bindings::iommu_device_claim_dma_owner(self.dev(), owner.cast_mut()) };
        if ret != 0 {
            return Err(EBUSY);
        }
        // INVARIANT: the claim succeeded and is released exactly once, in `drop`.
        Ok(DmaOwnership { dev: self.clone() })
    }

    /// Allocates a paging domain for the device's IOMMU.
    pub(crate) fn alloc_domain(&self) -> Result<Arc<Domain>> {
        // SAFETY: `dev()` is valid; the call returns a domain or an `ERR_PTR`.
        let ptr =
            from_err_ptr(unsafe { bindings::iommu_paging_domain_alloc_flags(self.dev(), 0) })?;
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // INVARIANT: a new paging domain, owned by the `Domain` from here on.
        Ok(Arc::new(Domain { ptr }, GFP_KERNEL_ACCOUNT)?)
    }

    /// Stops the device's DMA before its DMA ownership goes back to the kernel: clears bus
    /// mastering, then resets the function if it supports a reset (as vfio-pci does on release).
    ///
    /// The reset takes the device lock with a trylock: when the driver core holds it (the device
    /// is being removed or unbound from the ioasid driver, and waits for this teardown), the
    /// reset is skipped and bus mastering stays off, which is what stops the DMA.
    pub(crate) fn quiesce(&self, _ownership: &DmaOwnership) {
        let pdev = self.ptr.as_ptr();
        // SAFETY: `pdev` is valid (type invariant) and still bound to the ioasid driver: the
        // caller owns its DMA (`_ownership`), and removal waits for this teardown.
        unsafe { bindings::pci_clear_master(pdev) };
        // SAFETY: as above. It fails harmlessly (`-ENOTTY`, `-EAGAIN`) when the function has
        // no reset or the device lock is taken; the function's config space is restored after a
        // reset, with bus mastering still off.
        let _ = unsafe { bindings::pci_try_reset_function(pdev) };
        // A reset restores the command register as it was saved: clear mastering once more.
        // SAFETY: as above.
        unsafe { bindings::pci_clear_master(pdev) };
    }
}

impl Clone for PciDev {
    fn clone(&self) -> Self {
        // SAFETY: `ptr` is valid (type invariant); this takes another reference.
        unsafe { bindings::pci_dev_get(self.ptr.as_ptr()) };
        // INVARIANT: the reference taken above.
        PciDev { ptr: self.ptr }
    }
}

impl Drop for PciDev {
    fn drop(&mut self) {
        // SAFETY: this value holds one reference (type invariant), released here.
        unsafe { bindings::pci_dev_put(self.ptr.as_ptr()) };
    }
}

/// DMA ownership of a device, claimed for one context.
///
/// # Invariants
///
/// `iommu_device_claim_dma_owner` succeeded on `dev` and has not been released.
pub(crate) struct DmaOwnership {
    dev: PciDev,
}

impl DmaOwnership {
    /// The device whose DMA is owned.
    pub(crate) fn dev(&self) -> &PciDev {
        &self.dev
    }
}

impl Drop for DmaOwnership {
    fn drop(&mut self) {
        // SAFETY: the ownership was claimed (type invariant) and is released once, here.
        unsafe { bindings::iommu_device_release_dma_owner(self.dev.dev()) };
    }
}

/// A counted reference to an IOMMU group.
///
/// # Invariants
///
/// `ptr` points to a `struct iommu_group` on which this value holds one reference.
pub(crate) struct Group {
    ptr: NonNull<bindings::iommu_group>,
}

// SAFETY: IOMMU groups are reference counted and their functions take the group's own mutex.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    /// The group's number, as in `/sys/kernel/iommu_groups/`.
    pub(crate) fn id(&self) -> u32 {
        // SAFETY: `ptr` is valid (type invariant).
        let id = unsafe { bindings::iommu_group_id(self.ptr.as_ptr()) };
        u32::try_from(id).unwrap_or(u32::MAX)
    }

    /// Whether the IOMMU isolates the MSIs of the group's devices (interrupt remapping), so
    /// that their DMA cannot forge interrupts.
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: `ptr` is valid (type invariant).
        unsafe { bindings::iommu_group_has_isolated_msi(self.ptr.as_ptr()) }
    }

    /// Whether `self` and `other` are the same group.
    pub(crate) fn is(&self, other: &Group) -> bool {
        self.ptr == other.ptr
    }

    /// The reserved IOVA regions of every device of the group, merged
    /// (`iommu_get_group_resv_regions`): IOVAs no mapping of a domain the group is attached to
    /// may use.
    pub(crate) fn reserved_regions(&self) -> Result<KVec<ResvRegion>> {
        let mut regions = KVec::new();
        let mut list = bindings::list_head {
            next: null_mut(),
            prev: null_mut(),
        };
        let head: *mut bindings::list_head = &mut list;
        // SAFETY: `head` is a valid, exclusively borrowed list head.
        unsafe { ioasid_init_list_head(head) };
        // SAFETY: `ptr` is valid (type invariant) and `head` an initialised empty list, to which
        // the call adds copies of the regions (even when it fails part way).
        let ret = unsafe { bindings::iommu_get_group_resv_regions(self.ptr.as_ptr(), head) };
        let mut result = if ret != 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(())
        };
        // SAFETY: `head` is a list of `struct iommu_resv_region`, linked by their field `list`,
        // valid until `iommu_put_resv_regions` below frees them (copies without a `free`
        // callback: `kfree`d, whatever the device argument).
        unsafe {
            let mut pos = (*head).next;
            while pos != head {
                let region = kernel::container_of!(pos, bindings::iommu_resv_region, list);
                let start = (*region).start;
                let len = (*region).length as u64;
                let ty = (*region).type_;
                if len > 0 && result.is_ok() {
                    let r = ResvRegion {
                        start,
                        last: start.saturating_add(len - 1),
                        sw_msi: ty == bindings::iommu_resv_type_IOMMU_RESV_SW_MSI,
                        hw_msi: ty == bindings::iommu_resv_type_IOMMU_RESV_MSI,
                    };
                    if let Err(e) = regions.push(r, GFP_KERNEL) {
                        result = Err(e.into());
                    }
                }
                pos = (*pos).next;
            }
            bindings::iommu_put_resv_regions(null_mut(), head);
        }
        result.map(|()| regions)
    }

    /// Clears bus mastering of every PCI endpoint of the group (not of a bridge it holds), bound
    /// in the context or not, before the group's DMA ownership goes back to the kernel with its
    /// last owned device
    /// (`ownership`): an unbound device of the group could otherwise still be mastering, and
    /// reach whatever the kernel's default domain maps (all memory, if it is the identity).
    pub(crate) fn quiesce_all(&self, _ownership: &DmaOwnership) {
        // SAFETY: `ptr` is valid (type invariant); the group's DMA is owned, so no kernel
        // driver uses any of its devices.
        unsafe { ioasid_group_clear_master(self.ptr.as_ptr()) };
    }

    /// Another reference to the group.
    pub(crate) fn get(&self) -> Group {
        // SAFETY: `ptr` is valid (type invariant); this takes another reference.
        unsafe { bindings::iommu_group_ref_get(self.ptr.as_ptr()) };
        // INVARIANT: the reference taken above.
        Group { ptr: self.ptr }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: this value holds one reference (type invariant), released here.
        unsafe { bindings::iommu_group_put(self.ptr.as_ptr()) };
    }
}

/// `IOMMU_READ`: the device may read the memory.
pub(crate) const PROT_READ: i32 = bindings::IOMMU_READ as i32;
/// `IOMMU_WRITE`: the device may write the memory.
pub(crate) const PROT_WRITE: i32 = bindings::IOMMU_WRITE as i32;
/// `IOMMU_CACHE`: the DMA is cache-coherent (snooped), whatever the device asks for.
pub(crate) const PROT_CACHE: i32 = bindings::IOMMU_CACHE as i32;

/// A paging IOMMU domain: an I/O page table in IOMMU hardware.
///
/// # Invariants
///
/// `ptr` points to a paging domain from `iommu_paging_domain_alloc_flags`, owned by this value
/// and freed in `drop`. No group is attached to it then: every attachment holds an `Arc` of it.
pub(crate) struct Domain {
    ptr: NonNull<bindings::iommu_domain>,
}

// SAFETY: `iommu_map` and `iommu_unmap` may be called from any thread; the IOMMU drivers
// serialise their page-table updates internally. Callers map and unmap disjoint ranges (the
// IOASID's lock orders them), as the IOMMU API requires.
unsafe impl Send for Domain {}
// SAFETY: as above.
unsafe impl Sync for Domain {}

impl Domain {
    /// The domain's aperture: the inclusive range of IOVAs it can map.
    pub(crate) fn aperture(&self) -> (u64, u64) {
        // SAFETY: `ptr` is valid (type invariant); the geometry is set at allocation.
        let geometry = unsafe { (*self.ptr.as_ptr()).geometry };
        if geometry.force_aperture {
            (geometry.aperture_start, geometry.aperture_end)
        } else {
            (0, u64::MAX)
        }
    }

    /// Makes the domain block no-snoop DMA: every mapping made after this is snooped whatever
    /// the device asks for. Returns whether the IOMMU driver could.
    ///
    /// # Safety
    ///
    /// Nothing may be mapped in the domain or attached to it yet, as the IOMMU API requires.
    pub(crate) unsafe fn enforce_cache_coherency(&self) -> bool {
        // SAFETY: `ptr` is a valid paging domain (type invariant); its `ops` are the driver's.
        let op = unsafe { (*(*self.ptr.as_ptr()).ops).enforce_cache_coherency };
        match op {
            // SAFETY: the driver's op, called on its own domain, with nothing mapped or
            // attached yet (function's safety requirement).
            Some(op) => unsafe { op(self.ptr.as_ptr()) },
            None => false,
        }
    }

    /// Gives the domain an MSI cookie with its window at `base`, so that the MSI doorbells of
    /// the devices attached to it are mapped there by the IOMMU core (`iommu_get_msi_cookie`):
    /// needed where MSIs go through the IOMMU's translation (SMMUv3's `IOMMU_RESV_SW_MSI`).
    /// Call it before anything is attached. `EEXIST` if the domain has one already.
    pub(crate) fn set_msi_cookie(&self, base: u64) -> Result {
        // SAFETY: `ptr` is a valid paging (unmanaged) domain (type invariant); the cookie is
        // released by `iommu_domain_free`.
        let ret = unsafe { bindings::iommu_get_msi_cookie(self.ptr.as_ptr(), base) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// The page sizes the domain supports, one bit per size.
    pub(crate) fn pgsize_bitmap(&self) -> u64 {
        // SAFETY: `ptr` is valid (type invariant).
        let bitmap = unsafe { (*self.ptr.as_ptr()).pgsize_bitmap };
        // An `unsigned long`: at most 64 bits.
        bitmap as u64
    }

    /// Maps `size` bytes at `iova` to physical address `paddr` with `prot`.
    ///
    /// # Safety
    ///
    /// `paddr..paddr + size` must be memory that stays allocated to the caller (pinned pages)
    /// until it is unmapped again with [`Domain::unmap`], and `iova..iova + size` must not be
    /// mapped already.
    pub(crate) unsafe fn map(&self, iova: u64, paddr: u64, size: usize, prot: i32) -> Result {
        let iova = usize::try_from(iova)?;
        // SAFETY: `ptr` is a valid paging domain (type invariant); the memory stays the caller's
        // while mapped (function's safety requirement).
        let ret = unsafe {
            bindings::iommu_map(
                self.ptr.as_ptr(),
                iova,
                paddr,
                size,
                prot,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Unmaps `size` bytes at `iova`, flushing the IOTLB before it returns. Returns the number
    /// of bytes unmapped: less than `size` only if the IOMMU driver failed, in which case the
    /// rest may still be mapped and its memory must stay pinned.
    ///
    /// # Safety
    ///
    /// `iova..iova + size` must cover whole mappings made with [`Domain::map`], as the IOMMU API
    /// requires (no mapping is split).
    pub(crate) unsafe fn unmap(&self, iova: u64, size: usize) -> usize {
        let Ok(iova) = usize::try_from(iova) else {
            return 0;
        };
        // SAFETY: `ptr` is a valid paging domain (type invariant); whole mappings (function's
        // safety requirement). `iommu_unmap` waits for the IOTLB invalidation.
        unsafe { bindings::iommu_unmap(self.ptr.as_ptr(), iova, size) }
    }

    /// The physical address `iova` is mapped to, or 0 if it is not mapped.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> u64 {
        // SAFETY: `ptr` is a valid paging domain (type invariant); this only reads its tables.
        unsafe { bindings::iommu_iova_to_phys(self.ptr.as_ptr(), iova) }
    }

    /// Attaches `group` to the domain. `ownership` is the caller's DMA ownership of a device of
    /// the group: with it, dropping the attachment puts the group on the blocking domain.
    pub(crate) fn attach(
        self: &Arc<Self>,
        group: &Group,
        ownership: &DmaOwnership,
    ) -> Result<Attachment> {
        if !ownership.dev().group().is_some_and(|g| g.is(group)) {
            return Err(EINVAL);
        }
        // SAFETY: both pointers are valid (type invariants); the group's DMA is owned.
        let ret = unsafe { bindings::iommu_attach_group(self.ptr.as_ptr(), group.ptr.as_ptr()) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: attached; the attachment holds the domain until it detaches.
        Ok(Attachment {
            domain: self.clone(),
            group: group.get(),
        })
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: the domain is owned by this value and nothing is attached to it (type
        // invariant: attachments hold an `Arc` of it).
        unsafe { bindings::iommu_domain_free(self.ptr.as_ptr()) };
    }
}

/// A group attached to a domain; dropping it detaches the group.
///
/// # Invariants
///
/// `group` is attached to `domain`.
pub(crate) struct Attachment {
    domain: Arc<Domain>,
    group: Group,
}

impl Attachment {
    /// The domain the group is attached to.
    pub(crate) fn domain(&self) -> &Arc<Domain> {
        &self.domain
    }

    /// The attached group.
    pub(crate) fn group(&self) -> &Group {
        &self.group
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `group` is attached to `domain` (type invariant). With the group's DMA owned,
        // detaching puts it on the blocking domain.
        unsafe { bindings::iommu_detach_group(self.domain.ptr.as_ptr(), self.group.ptr.as_ptr()) };
    }
}

/// Writes back and invalidates the caches of every CPU. `EOPNOTSUPP` where there is no WBINVD.
pub(crate) fn wbinvd_on_all_cpus() -> Result {
    #[cfg(CONFIG_X86)]
    {
        // SAFETY: no precondition; it runs WBINVD on every online CPU and waits.
        unsafe { bindings::wbinvd_on_all_cpus() };
        Ok(())
    }
    #[cfg(not(CONFIG_X86))]
    {
        Err(EOPNOTSUPP)
    }
}

/// Whether the calling task has `CAP_SYS_ADMIN`.
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only inspects the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Yields the CPU if another task should run: called in every loop whose length user space
/// decides.
pub(crate) fn cond_resched() {
    // SAFETY: no precondition; called in process context without spinlocks held.
    unsafe { ioasid_cond_resched() };
}
