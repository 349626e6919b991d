// SPDX-License-Identifier: GPL-2.0

//! The per-open context of `/dev/ioasid`, and its ioctls.
//!
//! Every `open()` of the device creates one [`Context`]; it is the file's private data and lives
//! until the last reference to the file is dropped (`close()` of the last duplicate, or the exit of
//! the process). Every object user space creates through the file hangs off its context, so
//! dropping the context is what tears them down.
//!
//! # Teardown order
//!
//! When the context is dropped its tables are dropped in field order. That order is the one the
//! objects need: devices (which hold users of IOASIDs) before IOASIDs (which hold the mappings and
//! pinned pages), so that by the time an IOASID is destroyed nothing can DMA through it.
//!
//! # Privilege
//!
//! Opening the node is governed by its file mode. After that the context is usable by whoever
//! holds the file descriptor: `IOASID_GET_INFO`, `IOASID_ALLOC` and `IOASID_FREE` need nothing
//! more. Binding a device will additionally check the caller's `CAP_SYS_ADMIN` at call time,
//! because it takes a device away from the kernel.

use kernel::{
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceRegistration, //
    },
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow, //
    },
};

use crate::{
    ioasid::IoasidTable,
    uapi::{
        self,
        ioasid_alloc,
        ioasid_free,
        ioasid_info, //
    },
    ucopy::UserArg,
};

/// Serial number of the next context; starts at 1 so that 0 never names a context.
static NEXT_SERIAL: Atomic<u64> = Atomic::new(1);

/// Number of contexts currently alive, across all opens of the device.
static LIVE: Atomic<u64> = Atomic::new(0);

/// The state behind one open file of `/dev/ioasid`.
///
/// # Invariants
///
/// While a `Context` exists it is counted in [`LIVE`], exactly once.
#[pin_data(PinnedDrop)]
pub(crate) struct Context {
    /// Unique (per boot) serial number, shown in fdinfo and used to tell contexts apart in logs.
    serial: u64,
    /// The IOASIDs of this context.
    #[pin]
    ioasids: IoasidTable,
}

impl Context {
    /// Creates a new, empty context.
    pub(crate) fn new() -> Result<Arc<Self>> {
        let serial = NEXT_SERIAL.fetch_add(1, Relaxed);
        // INVARIANT: the context is counted only once it exists, and uncounted in `drop`.
        let ctx = Arc::pin_init(
            try_pin_init!(Context {
                serial,
                ioasids <- IoasidTable::new(),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        LIVE.add(1, Relaxed);
        Ok(ctx)
    }

    /// The serial number of this context.
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// The number of contexts currently alive.
    pub(crate) fn live() -> u64 {
        LIVE.load(Relaxed)
    }

    /// `IOASID_GET_INFO`: the uAPI version and the capabilities of this module.
    fn get_info(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_info>::read(arg)?;
        cmd.out_api_version = uapi::IOASID_API_VERSION;
        cmd.out_capabilities = u64::from(uapi::IOASID_CAP_IOASID);
        uarg.write(&cmd)?;
        Ok(0)
    }

    /// `IOASID_ALLOC`: creates an IOASID and returns its ID.
    fn alloc_ioasid(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_alloc>::read(arg)?;
        let id = self.ioasids.alloc()?;
        cmd.out_ioasid = id;
        if let Err(e) = uarg.write(&cmd) {
            // User space never learnt the ID: undo, so that nothing is left behind.
            let _ = self.ioasids.free(id);
            return Err(e);
        }
        Ok(0)
    }

    /// `IOASID_FREE`: frees an IOASID.
    fn free_ioasid(&self, arg: usize) -> Result<isize> {
        let (_, cmd) = UserArg::<ioasid_free>::read(arg)?;
        self.ioasids.free(cmd.ioasid)?;
        Ok(0)
    }
}

#[pinned_drop]
impl PinnedDrop for Context {
    fn drop(self: Pin<&mut Self>) {
        // By the type invariant this context was counted once; uncount it. The tables are
        // dropped after this, in field order (see the module documentation).
        LIVE.fetch_sub(1, Relaxed);
    }
}

#[vtable]
impl MiscDevice for Context {
    type Ptr = Arc<Context>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Context>> {
        Context::new()
    }

    fn ioctl(ctx: ArcBorrow<'_, Context>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        // Every argument struct has the same layout for 32-bit and 64-bit callers, so the
        // default `compat_ioctl` (`compat_ptr_ioctl`) lands here too.
        match cmd {
            uapi::IOASID_GET_INFO => ctx.get_info(arg),
            uapi::IOASID_ALLOC => ctx.alloc_ioasid(arg),
            uapi::IOASID_FREE => ctx.free_ioasid(arg),
            _ => Err(ENOTTY),
        }
    }

    fn show_fdinfo(ctx: ArcBorrow<'_, Context>, m: &SeqFile, _file: &File) {
        seq_print!(m, "ioasid-context:\t{}\n", ctx.serial());
        seq_print!(m, "ioasid-ids:\t{}\n", ctx.ioasids.ids_in_use());
    }
}

#[kunit_tests(ioasid_context)]
mod tests {
    use super::*;

    #[test]
    fn live_count_follows_contexts() -> Result {
        let before = Context::live();
        let a = Context::new()?;
        let b = Context::new()?;
        assert_eq!(Context::live(), before + 2);
        drop(a);
        assert_eq!(Context::live(), before + 1);
        drop(b);
        assert_eq!(Context::live(), before);
        Ok(())
    }

    #[test]
    fn serials_are_unique_and_nonzero() -> Result {
        let a = Context::new()?;
        let b = Context::new()?;
        assert_ne!(a.serial(), 0);
        assert!(b.serial() > a.serial());
        Ok(())
    }

    #[test]
    fn ids_are_per_context() -> Result {
        let a = Context::new()?;
        let b = Context::new()?;
        let id = a.ioasids.alloc()?;
        assert!(a.ioasids.get(id).is_ok());
        assert_eq!(b.ioasids.get(id).err(), Some(ENOENT));
        assert_eq!(b.ioasids.free(id).err(), Some(ENOENT));
        assert!(a.ioasids.get(id).is_ok());
        Ok(())
    }
}
