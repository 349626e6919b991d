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

mod context;
mod device;
mod id_table;
mod io_pagetable;
mod ioasid;
mod iommu;
mod pages;
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
    },
}

/// The module: owns the `/dev/ioasid` registration and the debugfs files for as long as it is
/// loaded.
#[pin_data]
struct IoasidModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<context::Context>,
    /// `ioasid/iopte_counts`: the IOPTEs in all domains, by page size.
    #[pin]
    _iopte_counts: File<io_pagetable::IopteCounts>,
    /// `ioasid/iommu_time`: the time spent in `iommu_map` and `iommu_unmap`.
    #[pin]
    _iommu_time: File<io_pagetable::IommuTime>,
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
            _iopte_counts <- debugfs.read_only_file(c"iopte_counts", io_pagetable::IopteCounts),
            _iommu_time <- debugfs.read_only_file(c"iommu_time", io_pagetable::IommuTime),
            _debugfs: debugfs,
        })
    }
}
