// SPDX-License-Identifier: GPL-2.0

//! The ioasid PCI driver: the devices an administrator handed to ioasid, and their removal.
//!
//! ioasid is the driver of the devices user space owns through it, as vfio-pci is for VFIO.
//! An administrator hands a device over exactly as to vfio-pci:
//!
//! ```text
//! echo ioasid > /sys/bus/pci/devices/0000:00:05.0/driver_override
//! echo 0000:00:05.0 > /sys/bus/pci/drivers_probe
//! ```
//!
//! The driver (registered by `src/pci_driver.c`) has no ID table, so it binds to nothing else,
//! and is `driver_managed_dma`, so binding it leaves the device's DMA ownership free for the
//! context that binds the device (`IOASID_DEVICE_BIND`), which accepts only devices bound to
//! this driver. Being the driver is what makes the device's lifetime safe: the driver core keeps
//! every other driver away, and calls [`ioasid_driver_remove`] before the device goes away (hot
//! removal, `remove` in sysfs, unbinding the driver, unloading the module), with the device
//! still intact. Removal tears the device down in the context that has it (DMA blocked, bus
//! mastering off, DMA ownership released) before it returns; the context keeps the device's ID,
//! on which every call but `IOASID_DEVICE_UNBIND` then fails with `ENODEV`.
//!
//! Each device bound to the driver has one [`DriverDevice`], the driver data. It is also where
//! a later per-device node (an fd a privileged launcher opens and passes to an unprivileged
//! VMM, as VFIO's cdev does) would hang: the claim of [`DriverDevice::claim`] is already the
//! "one context at a time" rule such a node needs.
//!
//! # Locking
//!
//! The device lock of the driver core (held around probe and remove) is the outermost lock of
//! the module: see the lock order in [`crate::device`]. A context takes it only to look a
//! device up ([`lookup`]), with no lock of its own held. A [`DriverDevice`]'s `holder` mutex is
//! innermost but for the ID tables' XArray locks: it is taken inside a context's `groups`
//! mutex, and never held while calling into a context.

use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_void, //
    },
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow,
        Mutex, //
    },
    types::ForeignOwnable,
};

use crate::iommu::PciDev;

// `struct pci_dev` is only ever passed by pointer; its layout does not cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    fn ioasid_pci_driver_register() -> c_int;
    fn ioasid_pci_driver_unregister();
    fn ioasid_pci_driver_data(pdev: *mut bindings::pci_dev) -> *mut c_void;
    fn ioasid_pci_set_driver_data(pdev: *mut bindings::pci_dev, data: *mut c_void);
    fn ioasid_device_lock(pdev: *mut bindings::pci_dev);
    fn ioasid_device_unlock(pdev: *mut bindings::pci_dev);
}

/// The context that has a device: told when the device goes away.
pub(crate) trait Owner: Send + Sync {
    /// `dev` is going away. Tear it down (block its DMA, quiesce it, release its DMA
    /// ownership) and [`DriverDevice::release`] it before returning.
    fn device_removed(&self, dev: &DriverDevice);
}

/// Who has a device, under [`DriverDevice::holder`].
struct Slot {
    /// The device is being removed: it cannot be claimed any more.
    removed: bool,
    /// The context that bound it, if any.
    owner: Option<Arc<dyn Owner>>,
}

/// A device bound to the ioasid driver (its driver data).
#[pin_data]
pub(crate) struct DriverDevice {
    pdev: PciDev,
    #[pin]
    holder: Mutex<Slot>,
}

impl DriverDevice {
    /// The PCI device.
    pub(crate) fn pdev(&self) -> &PciDev {
        &self.pdev
    }

    /// Records that `owner` has the device. `EBUSY` if another context has it, `ENODEV` if it
    /// is being removed.
    pub(crate) fn claim(&self, owner: Arc<dyn Owner>) -> Result {
        let mut slot = self.holder.lock();
        if slot.removed {
            return Err(ENODEV);
        }
        if slot.owner.is_some() {
            return Err(EBUSY);
        }
        slot.owner = Some(owner);
        Ok(())
    }

    /// Undoes [`DriverDevice::claim`]: the owner has torn the device down.
    pub(crate) fn release(&self) {
        // The owner is dropped after the lock.
        let _owner = self.holder.lock().owner.take();
    }
}

/// Looks up the PCI device `segment:bus:devfn` among the devices bound to the ioasid driver.
///
/// Errors: `ENODEV` if there is no such device; `EBUSY` if another driver has it; `ENXIO` if no
/// driver has it (it was not handed to ioasid).
pub(crate) fn lookup(segment: u32, bus: u8, devfn: u8) -> Result<Arc<DriverDevice>> {
    let pdev = PciDev::get(segment, bus, devfn).ok_or(ENODEV)?;
    let raw = pdev.as_raw();
    // SAFETY: `raw` is valid (`pdev` holds a reference). The device lock excludes probe and
    // remove, so the driver data cannot be freed while it is read below.
    unsafe { ioasid_device_lock(raw) };
    // SAFETY: `raw` is valid and its device lock is held.
    let data = unsafe { ioasid_pci_driver_data(raw) };
    let found = if data.is_null() {
        None
    } else {
        // SAFETY: the driver data of a device bound to the ioasid driver comes from
        // `Arc::into_foreign` in `ioasid_driver_probe`, and is given back only in
        // `ioasid_driver_remove`, which cannot run while the device lock is held.
        let dev: ArcBorrow<'_, DriverDevice> = unsafe { <Arc<DriverDevice>>::borrow(data) };
        Some(Arc::from(dev))
    };
    // SAFETY: locked above.
    unsafe { ioasid_device_unlock(raw) };
    match found {
        Some(dev) => Ok(dev),
        None if pdev.has_driver() => Err(EBUSY),
        None => Err(ENXIO),
    }
}

/// Probe: a device was handed to ioasid. Called by the driver core, with the device lock held.
///
/// # Safety
///
/// `pdev` must be a valid `struct pci_dev` being bound to the ioasid driver.
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_driver_probe(pdev: *mut bindings::pci_dev) -> c_int {
    let Some(ptr) = NonNull::new(pdev) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `ptr` is valid (function's safety requirement).
    let pdev = unsafe { PciDev::from_raw(ptr) };
    let dev = Arc::pin_init(
        pin_init!(DriverDevice {
            pdev,
            holder <- new_mutex!(Slot {
                removed: false,
                owner: None,
            }),
        }),
        GFP_KERNEL,
    );
    match dev {
        Ok(dev) => {
            // SAFETY: `ptr` is valid and being bound to this driver; the data is given back in
            // `ioasid_driver_remove`.
            unsafe { ioasid_pci_set_driver_data(ptr.as_ptr(), dev.into_foreign()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Remove: the device is going away, or is being unbound from the ioasid driver. Called by the
/// driver core with the device lock held; returns once no context has the device any more.
///
/// # Safety
///
/// `pdev` must be a valid `struct pci_dev` bound to the ioasid driver by a successful
/// [`ioasid_driver_probe`].
#[no_mangle]
pub(crate) unsafe extern "C" fn ioasid_driver_remove(pdev: *mut bindings::pci_dev) {
    // SAFETY: `pdev` is valid and bound to this driver, whose data is the one set by probe.
    let data = unsafe { ioasid_pci_driver_data(pdev) };
    if data.is_null() {
        return;
    }
    // SAFETY: `pdev` is valid; nothing can read the data any more once it is cleared (lookups
    // take the device lock, held here).
    unsafe { ioasid_pci_set_driver_data(pdev, core::ptr::null_mut()) };
    // SAFETY: `data` came from `Arc::into_foreign` in probe; this takes that reference back.
    let dev = unsafe { <Arc<DriverDevice>>::from_foreign(data) };
    crate::test_seam::device_leaving(dev.pdev());
    loop {
        let owner = {
            let mut slot = dev.holder.lock();
            match &slot.owner {
                None => {
                    slot.removed = true;
                    break;
                }
                Some(owner) => owner.clone(),
            }
        };
        // Without the slot's lock: the owner takes its own locks, then releases the slot.
        owner.device_removed(&dev);
        let mut slot = dev.holder.lock();
        if slot.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, &owner)) {
            // An owner that did not let go (it never happens): forget it rather than loop.
            slot.owner = None;
        }
    }
}

/// The ioasid PCI driver's registration; unregistering it removes every device from it.
///
/// # Invariants
///
/// The driver is registered while this value exists.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the driver: devices whose `driver_override` names it are probed now.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no precondition; the driver is unregistered once, in `drop`.
        let ret = unsafe { ioasid_pci_driver_register() };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: registered above.
        Ok(Registration(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant); every device is removed first.
        unsafe { ioasid_pci_driver_unregister() };
    }
}
