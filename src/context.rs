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
//! When the file is released (the last `close()`, or the death of the process), every device is
//! unbound first (detaching its group, whose DMA is then blocked, and releasing its DMA
//! ownership), then the IOASIDs are freed with their domains, mappings and pinned pages: by the
//! time memory is unpinned, nothing can DMA to it. The context itself may live on a little
//! longer, empty, while the KVM-facing interface ([`crate::kvm`]) still holds a reference; its
//! memory goes with the last reference.
//!
//! # Privilege
//!
//! Opening the node is governed by its file mode. After that the context is usable by whoever
//! holds the file descriptor: `IOASID_GET_INFO`, `IOASID_ALLOC` and `IOASID_FREE` need nothing
//! more. Binding a device will additionally check the caller's `CAP_SYS_ADMIN` at call time,
//! because it takes a device away from the kernel.

use kernel::{
    fs::{
        File,
        LocalFile, //
    },
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
    coherency::Coherency,
    device::DeviceTable,
    driver::{
        DriverDevice,
        Owner, //
    },
    io_pagetable::MapSource,
    ioasid::IoasidTable,
    iommu::{
        PROT_READ,
        PROT_WRITE, //
    },
    uapi::{
        self,
        ioasid_alloc,
        ioasid_coherency,
        ioasid_device_attach,
        ioasid_device_bind,
        ioasid_device_detach,
        ioasid_device_info,
        ioasid_device_unbind,
        ioasid_free,
        ioasid_info,
        ioasid_iova_range,
        ioasid_iova_ranges,
        ioasid_map,
        ioasid_map_file,
        ioasid_unmap,
        ioasid_wbinvd, //
    },
    ucopy::UserArg,
};
use kernel::{
    transmute::AsBytes,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// Serial number of the next context; starts at 1 so that 0 never names a context.
static NEXT_SERIAL: Atomic<u64> = Atomic::new(1);

/// Number of contexts currently alive, across all opens of the device.
static LIVE: Atomic<u64> = Atomic::new(0);

/// The debugfs file `ioasid/contexts`: how many contexts are alive (open files, and closed ones
/// the KVM-facing interface still holds).
pub(crate) struct ContextsAlive;

impl core::fmt::Debug for ContextsAlive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", LIVE.load(Relaxed))
    }
}

/// The state behind one open file of `/dev/ioasid`.
///
/// # Invariants
///
/// While a `Context` exists it is counted in [`LIVE`], exactly once.
#[pin_data(PinnedDrop)]
pub(crate) struct Context {
    /// Unique (per boot) serial number, shown in fdinfo and used to tell contexts apart in logs.
    serial: u64,
    /// The devices bound to this context.
    #[pin]
    devices: DeviceTable,
    /// The IOASIDs of this context.
    #[pin]
    ioasids: IoasidTable,
    /// Whether DMA through the context may be non-coherent; shared with its IOASIDs.
    coherency: Arc<Coherency>,
}

impl Context {
    /// Creates a new, empty context.
    pub(crate) fn new() -> Result<Arc<Self>> {
        let serial = NEXT_SERIAL.fetch_add(1, Relaxed);
        let coherency = Coherency::new()?;
        // INVARIANT: the context is counted only once it exists, and uncounted in `drop`.
        let ctx = Arc::pin_init(
            try_pin_init!(Context {
                serial,
                devices <- DeviceTable::new(),
                ioasids <- IoasidTable::new(coherency.clone()),
                coherency,
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

    /// The coherency state of the context.
    pub(crate) fn coherency(&self) -> &Coherency {
        &self.coherency
    }

    /// Tears down everything in the context: its file is being released.
    fn close(&self) {
        self.devices.unbind_all(&self.ioasids);
        self.ioasids.free_all();
    }

    /// The number of contexts currently alive.
    pub(crate) fn live() -> u64 {
        LIVE.load(Relaxed)
    }

    /// `IOASID_GET_INFO`: the uAPI version and the capabilities of this module.
    fn get_info(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_info>::read(arg)?;
        cmd.out_api_version = uapi::IOASID_API_VERSION;
        cmd.out_capabilities = u64::from(
            uapi::IOASID_CAP_IOASID
                | uapi::IOASID_CAP_DEVICE
                | uapi::IOASID_CAP_DMA
                | uapi::IOASID_CAP_COHERENCY
                | uapi::IOASID_CAP_MAP_FILE,
        );
        uarg.write(&cmd)?;
        Ok(0)
    }

    /// `IOASID_ALLOC`: creates an IOASID and returns its ID.
    fn alloc_ioasid(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_alloc>::read(arg)?;
        let id = self
            .ioasids
            .alloc(cmd.flags & uapi::IOASID_ALLOC_COHERENT != 0)?;
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

    /// `IOASID_DEVICE_BIND`: binds a PCI device and claims its DMA ownership.
    fn bind_device(ctx: ArcBorrow<'_, Self>, arg: usize) -> Result<isize> {
        let this: &Context = &ctx;
        let (uarg, mut cmd) = UserArg::<ioasid_device_bind>::read(arg)?;
        // The context's address is its DMA ownership cookie: unique while it is alive.
        let cookie = core::ptr::from_ref(this).cast::<core::ffi::c_void>();
        // The ioasid driver records the context as the device's owner, to tell it of removal.
        let owner: Arc<dyn Owner> = Arc::<Context>::from(ctx);
        let (id, group) =
            this.devices
                .bind(owner, cookie, cmd.pci_segment, cmd.pci_bus, cmd.pci_devfn)?;
        cmd.out_dev_id = id;
        cmd.out_group_id = group;
        if let Err(e) = uarg.write(&cmd) {
            let _ = this.devices.unbind(&this.ioasids, id);
            return Err(e);
        }
        Ok(0)
    }

    /// `IOASID_DEVICE_UNBIND`.
    fn unbind_device(&self, arg: usize) -> Result<isize> {
        let (_, cmd) = UserArg::<ioasid_device_unbind>::read(arg)?;
        self.devices.unbind(&self.ioasids, cmd.dev_id)?;
        Ok(0)
    }

    /// `IOASID_DEVICE_ATTACH`.
    fn attach_device(&self, arg: usize) -> Result<isize> {
        let (_, cmd) = UserArg::<ioasid_device_attach>::read(arg)?;
        self.devices.attach(&self.ioasids, cmd.dev_id, cmd.ioasid)?;
        Ok(0)
    }

    /// `IOASID_DEVICE_DETACH`.
    fn detach_device(&self, arg: usize) -> Result<isize> {
        let (_, cmd) = UserArg::<ioasid_device_detach>::read(arg)?;
        self.devices.detach(&self.ioasids, cmd.dev_id)?;
        Ok(0)
    }

    /// `IOASID_DEVICE_GET_INFO`: what the device's IOMMU offers it.
    fn device_info(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_device_info>::read(arg)?;
        let mut regions = KVec::new();
        let info = self.devices.info(cmd.dev_id, &mut regions)?;
        let mut ranges = KVec::with_capacity(regions.len(), GFP_KERNEL)?;
        for r in regions.iter() {
            ranges.push((r.start, r.last), GFP_KERNEL)?;
        }
        let fits = write_ranges(cmd.regions_uptr, cmd.num_regions, &ranges)?;
        cmd.num_regions = u32::try_from(ranges.len())?;
        cmd.out_pgsize_bitmap = info.pgsize_bitmap;
        (cmd.out_aperture_start, cmd.out_aperture_last) = info.aperture;
        cmd.out_capabilities = 0;
        if info.cache_coherent {
            cmd.out_capabilities |= u64::from(uapi::IOASID_DEVICE_CAP_CACHE_COHERENCY);
        }
        if info.isolated_msi {
            cmd.out_capabilities |= u64::from(uapi::IOASID_DEVICE_CAP_ISOLATED_MSI);
        }
        if info.enforce_coherency {
            cmd.out_capabilities |= u64::from(uapi::IOASID_DEVICE_CAP_ENFORCE_COHERENCY);
        }
        if info.coherent_only {
            cmd.out_capabilities |= u64::from(uapi::IOASID_DEVICE_CAP_COHERENT_ONLY);
        }
        uarg.write(&cmd)?;
        if !fits {
            return Err(EMSGSIZE);
        }
        Ok(0)
    }

    /// `IOASID_MAP`: pins user memory and maps it into an IOASID.
    fn map(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_map>::read(arg)?;
        let prot = map_prot(cmd.flags)?;
        let fixed = (cmd.flags & uapi::IOASID_MAP_FIXED_IOVA != 0).then_some(cmd.iova);
        let ioasid = self.ioasids.get(cmd.ioasid)?;
        let mapped = ioasid.map(MapSource::Va(cmd.user_va), cmd.length, fixed, prot)?;
        cmd.iova = mapped.iova;
        if let Err(e) = uarg.write(&cmd) {
            // Exactly this mapping: another thread may have replaced it meanwhile.
            ioasid.undo_map(mapped);
            return Err(e);
        }
        Ok(0)
    }

    /// `IOASID_MAP_FILE`: pins pages of a shmem or hugetlbfs file and maps them into an IOASID.
    fn map_file(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_map_file>::read(arg)?;
        let prot = map_prot(cmd.flags)?;
        let fixed = (cmd.flags & uapi::IOASID_MAP_FIXED_IOVA != 0).then_some(cmd.iova);
        let ioasid = self.ioasids.get(cmd.ioasid)?;
        // A negative descriptor names no file.
        let fd = u32::try_from(cmd.fd).map_err(|_| EBADF)?;
        let file = LocalFile::fget(fd)?;
        let mapped = ioasid.map(MapSource::File(file, cmd.start), cmd.length, fixed, prot)?;
        cmd.iova = mapped.iova;
        if let Err(e) = uarg.write(&cmd) {
            // As in `map`.
            ioasid.undo_map(mapped);
            return Err(e);
        }
        Ok(0)
    }

    /// `IOASID_UNMAP`.
    fn unmap(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_unmap>::read(arg)?;
        let ioasid = self.ioasids.get(cmd.ioasid)?;
        cmd.out_unmapped = if cmd.flags & uapi::IOASID_UNMAP_ALL != 0 {
            if cmd.iova != 0 || cmd.length != 0 {
                return Err(EINVAL);
            }
            ioasid.unmap_all()?
        } else {
            ioasid.unmap(cmd.iova, cmd.length)?
        };
        uarg.write(&cmd)?;
        Ok(0)
    }

    /// `IOASID_IOVA_RANGES`: the usable IOVA ranges of an IOASID.
    fn iova_ranges(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_iova_ranges>::read(arg)?;
        let ioasid = self.ioasids.get(cmd.ioasid)?;
        let mut ranges = KVec::new();
        let pgsizes = ioasid.ranges(&mut ranges)?;
        let fits = write_ranges(cmd.ranges_uptr, cmd.num_ranges, &ranges)?;
        cmd.num_ranges = u32::try_from(ranges.len())?;
        cmd.out_pgsize_bitmap = pgsizes;
        uarg.write(&cmd)?;
        if !fits {
            return Err(EMSGSIZE);
        }
        Ok(0)
    }

    /// `IOASID_GET_COHERENCY`: an IOASID's coherency and whether WBINVD is needed.
    fn get_coherency(&self, arg: usize) -> Result<isize> {
        let (uarg, mut cmd) = UserArg::<ioasid_coherency>::read(arg)?;
        cmd.out_ioasid_flags = match cmd.ioasid {
            0 => 0,
            id => self.ioasids.get(id)?.coherency_flags()?,
        };
        cmd.out_wbinvd = self.coherency.wbinvd_state().to_uapi();
        uarg.write(&cmd)?;
        Ok(0)
    }

    /// `IOASID_EXECUTE_WBINVD`: flushes the CPU caches, if needed.
    fn execute_wbinvd(&self, arg: usize) -> Result<isize> {
        let _ = UserArg::<ioasid_wbinvd>::read(arg)?;
        self.coherency.execute_wbinvd()?;
        Ok(0)
    }
}

/// The IOMMU protection of `enum ioasid_map_flags` `flags`: `EINVAL` if it allows no access.
fn map_prot(flags: u32) -> Result<i32> {
    let mut prot = 0;
    if flags & uapi::IOASID_MAP_READ != 0 {
        prot |= PROT_READ;
    }
    if flags & uapi::IOASID_MAP_WRITE != 0 {
        prot |= PROT_WRITE;
    }
    if prot == 0 {
        return Err(EINVAL);
    }
    Ok(prot)
}

/// Writes the first `room` of `ranges` (all of them if they fit) to user space at `uptr`, as
/// an array of `struct ioasid_iova_range`, and returns whether all of them fit. Nothing is
/// written past `room` entries.
fn write_ranges(uptr: u64, room: u32, ranges: &[(u64, u64)]) -> Result<bool> {
    let n = ranges.len().min(room as usize);
    let mut writer = UserSlice::new(
        UserPtr::from_addr(usize::try_from(uptr).map_err(|_| EFAULT)?),
        n * core::mem::size_of::<ioasid_iova_range>(),
    )
    .writer();
    for &(start, last) in &ranges[..n] {
        writer.write_slice(ioasid_iova_range { start, last }.as_bytes())?;
    }
    Ok(n == ranges.len())
}

#[pinned_drop]
impl PinnedDrop for Context {
    fn drop(self: Pin<&mut Self>) {
        // Devices first: their groups are detached (DMA blocked) and their ownership released
        // before the IOASIDs, with their mappings and pinned pages, are dropped with the fields.
        self.close();
        // By the type invariant this context was counted once; uncount it.
        LIVE.fetch_sub(1, Relaxed);
    }
}

impl Owner for Context {
    fn device_removed(&self, dev: &DriverDevice) {
        self.devices.removed(&self.ioasids, dev);
    }
}

#[vtable]
impl MiscDevice for Context {
    type Ptr = Arc<Context>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Context>> {
        Context::new()
    }

    fn release(ctx: Arc<Context>, _file: &File) {
        // Whoever else holds the context (the KVM-facing interface) keeps an empty one.
        ctx.close();
    }

    fn ioctl(ctx: ArcBorrow<'_, Context>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        // Every argument struct has the same layout for 32-bit and 64-bit callers, so the
        // default `compat_ioctl` (`compat_ptr_ioctl`) lands here too.
        match cmd {
            uapi::IOASID_GET_INFO => ctx.get_info(arg),
            uapi::IOASID_ALLOC => ctx.alloc_ioasid(arg),
            uapi::IOASID_FREE => ctx.free_ioasid(arg),
            uapi::IOASID_DEVICE_BIND => Context::bind_device(ctx, arg),
            uapi::IOASID_DEVICE_UNBIND => ctx.unbind_device(arg),
            uapi::IOASID_DEVICE_ATTACH => ctx.attach_device(arg),
            uapi::IOASID_DEVICE_DETACH => ctx.detach_device(arg),
            uapi::IOASID_MAP => ctx.map(arg),
            uapi::IOASID_MAP_FILE => ctx.map_file(arg),
            uapi::IOASID_UNMAP => ctx.unmap(arg),
            uapi::IOASID_IOVA_RANGES => ctx.iova_ranges(arg),
            uapi::IOASID_DEVICE_GET_INFO => ctx.device_info(arg),
            uapi::IOASID_GET_COHERENCY => ctx.get_coherency(arg),
            uapi::IOASID_EXECUTE_WBINVD => ctx.execute_wbinvd(arg),
            _ => Err(ENOTTY),
        }
    }

    fn show_fdinfo(ctx: ArcBorrow<'_, Context>, m: &SeqFile, _file: &File) {
        seq_print!(m, "ioasid-context:\t{}\n", ctx.serial());
        seq_print!(m, "ioasid-ids:\t{}\n", ctx.ioasids.ids_in_use());
        seq_print!(m, "ioasid-devices:\t{}\n", ctx.devices.len());
        seq_print!(m, "ioasid-areas:\t{}\n", ctx.ioasids.areas());
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
        let id = a.ioasids.alloc(false)?;
        assert!(a.ioasids.get(id).is_ok());
        assert_eq!(b.ioasids.get(id).err(), Some(ENOENT));
        assert_eq!(b.ioasids.free(id).err(), Some(ENOENT));
        assert!(a.ioasids.get(id).is_ok());
        Ok(())
    }
}
