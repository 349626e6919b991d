// SPDX-License-Identifier: GPL-2.0

//! A test-only seam: mark a device as assumed non-coherent.
//!
//! No device QEMU emulates can emit no-snoop DMA, so every emulated device is coherent-only and
//! the assumed non-coherent paths (attach rules, WBINVD, the KVM-facing answer) could not be
//! tested. When the module is built for the tests (`make IOASID_TEST=1`, which passes
//! `--cfg ioasid_test`), debugfs has a write-only file `ioasid/test_assume_noncoherent`: writing
//! a PCI address `SSSS:BB:DD.F` to it makes the next binds of that device treat it as assumed
//! non-coherent, whatever [`crate::iommu::PciDev::may_emit_no_snoop`] found; writing `none`
//! clears it. The seam only ever adds "assumed non-coherent" (the safe side), and setting it
//! taints the kernel (`TAINT_TEST`). Everything downstream of the detection is the production
//! code.
//!
//! The test build also has `ioasid/test_msi` (`src/test_msi.c`): it counts the MSIs of a device
//! bound to the ioasid driver, so that a test can see an MSI reach the CPU through an attached
//! IOASID. A module built without `IOASID_TEST=1` has neither file nor this code.

pub(crate) use imp::*;

/// Production builds: no seam.
#[cfg(not(ioasid_test))]
mod imp {
    use kernel::{
        debugfs::Dir,
        prelude::*, //
    };

    /// Whether the test seam marks the PCI device `segment:bus:devfn` as assumed non-coherent.
    pub(crate) fn assume_noncoherent(_segment: u32, _bus: u8, _devfn: u8) -> bool {
        false
    }

    /// The debugfs file of the seam: nothing.
    pub(crate) type SeamFile = ();

    /// Creates the seam's debugfs file: nothing.
    pub(crate) fn file(_dir: &Dir) -> impl PinInit<SeamFile, Error> + '_ {
        Ok(())
    }

    /// The MSI counter of the test build: nothing.
    pub(crate) struct MsiSeam;

    impl MsiSeam {
        /// Creates nothing.
        pub(crate) fn new() -> Self {
            MsiSeam
        }
    }

    /// A device leaves the ioasid driver: nothing to do.
    pub(crate) fn device_leaving(_pdev: &crate::iommu::PciDev) {}
}

/// Test builds: the seam.
#[cfg(ioasid_test)]
mod imp {
    use kernel::{
        bindings,
        debugfs::{
            Dir,
            File,
            Reader, //
        },
        prelude::*,
        sync::atomic::{
            Atomic,
            Relaxed, //
        },
        uaccess::UserSliceReader,
    };

    /// The marked device as `1 << 40 | segment << 16 | bus << 8 | devfn`, or 0 for none.
    static MARKED: Atomic<u64> = Atomic::new(0);

    fn key(segment: u32, bus: u8, devfn: u8) -> u64 {
        1 << 40 | u64::from(segment) << 16 | u64::from(bus) << 8 | u64::from(devfn)
    }

    /// Whether the test seam marks the PCI device `segment:bus:devfn` as assumed non-coherent.
    pub(crate) fn assume_noncoherent(segment: u32, bus: u8, devfn: u8) -> bool {
        MARKED.load(Relaxed) == key(segment, bus, devfn)
    }

    /// Parses `SSSS:BB:DD.F` (hexadecimal, as in sysfs).
    fn parse(s: &str) -> Option<u64> {
        let (segment, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let segment = u32::from_str_radix(segment, 16).ok()?;
        let bus = u8::from_str_radix(bus, 16).ok()?;
        let dev = u8::from_str_radix(dev, 16).ok().filter(|d| *d < 32)?;
        let func = u8::from_str_radix(func, 16).ok().filter(|f| *f < 8)?;
        (segment <= 0xffff).then(|| key(segment, bus, dev << 3 | func))
    }

    /// The write-only debugfs file `ioasid/test_assume_noncoherent`.
    pub(crate) struct AssumeNoncoherent;

    impl Reader for AssumeNoncoherent {
        fn read_from_slice(&self, reader: &mut UserSliceReader) -> Result {
            let mut buf = [0u8; 32];
            let n = reader.len();
            if n > buf.len() {
                return Err(EINVAL);
            }
            reader.read_slice(&mut buf[..n])?;
            let s = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim();
            let marked = if s == "none" {
                0
            } else {
                parse(s).ok_or(EINVAL)?
            };
            if marked != 0 {
                // SAFETY: no precondition; it sets a taint flag.
                unsafe {
                    bindings::add_taint(bindings::TAINT_TEST, bindings::lockdep_ok_LOCKDEP_STILL_OK)
                };
            }
            MARKED.store(marked, Relaxed);
            Ok(())
        }
    }

    /// The debugfs file of the seam.
    pub(crate) type SeamFile = File<AssumeNoncoherent>;

    /// Creates the seam's debugfs file in `dir`.
    pub(crate) fn file(dir: &Dir) -> impl PinInit<SeamFile, Error> + '_ {
        dir.write_only_file(
            c"test_assume_noncoherent",
            Ok::<_, Error>(AssumeNoncoherent),
        )
    }

    // `struct pci_dev` is only ever passed by pointer.
    #[allow(improper_ctypes)]
    extern "C" {
        fn ioasid_test_msi_init();
        fn ioasid_test_msi_exit();
        fn ioasid_test_msi_forget(pdev: *mut bindings::pci_dev);
    }

    /// The debugfs file `ioasid/test_msi` of `src/test_msi.c`; removed, with any MSI vector it
    /// allocated, when dropped.
    ///
    /// # Invariants
    ///
    /// `ioasid_test_msi_init` was called, and `ioasid_test_msi_exit` is called once, in `drop`.
    pub(crate) struct MsiSeam(());

    impl MsiSeam {
        /// Creates `ioasid/test_msi` (the `ioasid` debugfs directory must exist).
        pub(crate) fn new() -> Self {
            // SAFETY: no precondition; undone in `drop`.
            unsafe { ioasid_test_msi_init() };
            // INVARIANT: initialised above.
            MsiSeam(())
        }
    }

    impl Drop for MsiSeam {
        fn drop(&mut self) {
            // SAFETY: initialised (type invariant); called once.
            unsafe { ioasid_test_msi_exit() };
        }
    }

    /// A device leaves the ioasid driver: the MSI vector the seam allocated on it goes first.
    pub(crate) fn device_leaving(pdev: &crate::iommu::PciDev) {
        // SAFETY: `pdev` is a valid PCI device (type invariant of `PciDev`).
        unsafe { ioasid_test_msi_forget(pdev.as_raw()) };
    }
}
