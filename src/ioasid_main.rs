// SPDX-License-Identifier: GPL-2.0

//! `/dev/ioasid`: user-space ownership of I/O address spaces.
//!
//! Each open of the `/dev/ioasid` misc device creates a [`Context`], which owns the I/O address
//! spaces, bound devices and PASIDs that user space (a VMM, a user-space driver) creates through
//! it. Closing the file, or the death of the process holding it, tears all of them down.
//!
//! This file is the crate root: it holds the `module!` declaration, the misc device registration
//! and the list of the module's other files.
//!
//! [`Context`]: context::Context

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    miscdevice::{
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*, //
};

mod coherency;
mod context;
mod device;
mod driver;
mod hw_pagetable;
mod id_table;
mod io_pagetable;
mod ioasid;
mod iommu;
mod iova_tree;
mod kvm;
mod kvm_types;
mod pages;
#[cfg(CONFIG_KUNIT)]
mod test_rng;
mod test_seam;
mod uapi;
mod ucopy;

module! {
    type: IoasidModule,
    name: "ioasid",
    authors: ["The ioasid developers"],
    description: "/dev/ioasid: I/O address spaces owned by user space",
    license: "GPL",
    params: {
        allow_unsafe_interrupts: bool {
            default: false,
            description: "Bind devices whose MSIs the IOMMU cannot isolate (no interrupt \
                remapping). A device owned by user space could then raise arbitrary \
                interrupts: only for systems whose users are trusted.",
        },
        forbid_wbinvd: bool {
            default: false,
            description: "Never execute WBINVD for user space, even when a device may do \
                non-coherent DMA: IOASID_EXECUTE_WBINVD fails with EPERM and KVM is told \
                that no non-coherent DMA needs it.",
        },
    },
}

/// The module: owns the `/dev/ioasid` registration and the debugfs files for as long as it is
/// loaded.
#[pin_data]
struct IoasidModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<context::Context>,
    /// The `ioasid` PCI driver, to which administrators hand devices (see [`driver`]).
    _driver: driver::Registration,
    /// `ioasid/iopte_counts`: the IOPTEs in all domains, by page size.
    #[pin]
    _iopte_counts: File<io_pagetable::IopteCounts>,
    /// `ioasid/iommu_time`: the time spent in `iommu_map` and `iommu_unmap`.
    #[pin]
    _iommu_time: File<io_pagetable::IommuTime>,
    /// `ioasid/contexts`: how many contexts are alive.
    #[pin]
    _contexts: File<context::ContextsAlive>,
    /// `ioasid/wbinvd_count`: how many times WBINVD was executed for user space.
    #[pin]
    _wbinvd_count: File<coherency::WbinvdCount>,
    /// `ioasid/pinned_pages`: the user pages pinned by the module now.
    #[pin]
    _pinned_pages: File<pages::PinnedPagesCount>,
    /// `ioasid/test_assume_noncoherent`, in test builds only (see [`test_seam`]).
    #[pin]
    _test_seam: test_seam::SeamFile,
    /// `ioasid/test_msi`, in test builds only (see [`test_seam`]).
    _test_msi: test_seam::MsiSeam,
    _debugfs: Dir,
}

impl kernel::InPlaceModule for IoasidModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // The node is created 0600 root:root; see Documentation/userspace-api/ioasid.rst for how an
        // administrator grants it to others.
        let options = MiscDeviceOptions { name: c"ioasid" };

        let debugfs = Dir::new(c"ioasid");

        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(options),
            _driver: driver::Registration::new()?,
            _iopte_counts <- debugfs.read_only_file(c"iopte_counts", io_pagetable::IopteCounts),
            _iommu_time <- debugfs.read_only_file(c"iommu_time", io_pagetable::IommuTime),
            _contexts <- debugfs.read_only_file(c"contexts", context::ContextsAlive),
            _wbinvd_count <- debugfs.read_only_file(c"wbinvd_count", coherency::WbinvdCount),
            _pinned_pages <- debugfs.read_only_file(c"pinned_pages", pages::PinnedPagesCount),
            _test_seam <- test_seam::file(&debugfs),
            _test_msi: test_seam::MsiSeam::new(),
            _debugfs: debugfs,
        })
        .pin_chain(|this| {
            // From now on ioasid files can be told from others (the KVM-facing interface).
            kvm::set_fops(this._miscdev.as_raw());
            Ok(())
        })
    }
}
