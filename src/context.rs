// SPDX-License-Identifier: GPL-2.0

//! The per-open context of `/dev/ioasid`.
//!
//! Every `open()` of the device creates one [`Context`]; it is the file's private data and lives
//! until the last reference to the file is dropped (`close()` of the last duplicate, or the exit of
//! the process). Every object user space creates through the file hangs off its context, so
//! dropping the context is what tears them down.

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

/// Serial number of the next context; starts at 1 so that 0 never names a context.
static NEXT_SERIAL: Atomic<u64> = Atomic::new(1);

/// Number of contexts currently alive, across all opens of the device.
static LIVE: Atomic<u64> = Atomic::new(0);

/// The state behind one open file of `/dev/ioasid`.
///
/// # Invariants
///
/// While a `Context` exists it is counted in [`LIVE`], exactly once.
pub(crate) struct Context {
    /// Unique (per boot) serial number, shown in fdinfo and used to tell contexts apart in logs.
    serial: u64,
}

impl Context {
    /// Creates a new, empty context.
    pub(crate) fn new() -> Result<Arc<Self>> {
        let serial = NEXT_SERIAL.fetch_add(1, Relaxed);
        // INVARIANT: the context is counted here and uncounted in `Drop`. If the allocation below
        // fails, `ctx` is never created and `LIVE` is not touched.
        let ctx = Arc::new(Context { serial }, GFP_KERNEL_ACCOUNT)?;
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
}

impl Drop for Context {
    fn drop(&mut self) {
        // By the type invariant this context was counted once; uncount it.
        LIVE.fetch_sub(1, Relaxed);
    }
}

#[vtable]
impl MiscDevice for Context {
    type Ptr = Arc<Context>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Context>> {
        Context::new()
    }

    fn ioctl(_ctx: ArcBorrow<'_, Context>, _file: &File, _cmd: u32, _arg: usize) -> Result<isize> {
        // No ioctl is defined yet.
        Err(ENOTTY)
    }

    fn show_fdinfo(ctx: ArcBorrow<'_, Context>, m: &SeqFile, _file: &File) {
        seq_print!(m, "ioasid-context:\t{}\n", ctx.serial());
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
}
