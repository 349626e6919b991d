// SPDX-License-Identifier: GPL-2.0

//! The I/O page table of an IOASID: what user space mapped, at which IOVAs, and in which domains.
//!
//! An [`IoPageTable`] keeps the *areas* user space mapped (IOVA range, protection, pinned pages)
//! in an [`IovaTree`], and mirrors every area into every [`Domain`] of its IOASID. It also knows
//! which IOVAs are usable: inside every domain's aperture, and outside every reserved region of
//! the devices attached. With no device attached every IOVA is usable: the constraints are
//! checked again when a device attaches.
//!
//! With n areas and k reserved regions, an overlap check is O(log n), a kernel-chosen placement
//! O((k + 1) log n) ([`find_iova`]), and an unmap O((m + 1) log n) for the m areas it removes;
//! every loop whose length user space decides yields the CPU.
//!
//! A map is made in three steps, so that pinning, which may take long (slow memory, faults that
//! user space resolves), runs with no lock held: the request is checked and placed under the
//! IOASID's lock ([`IoPageTable::place`]), its memory is pinned with no lock
//! ([`PinnedArea::pin`]), then, under the lock again, placed again and mapped
//! ([`IoPageTable::insert`]).
//!
//! Physically contiguous runs of pinned pages are split into segments of one page size each, the
//! way the IOMMU core's `iommu_pgsize()` does (the largest size the domain supports that the
//! alignment of the IOVA and the physical address and the remaining length allow), and each
//! segment is mapped with one `iommu_map` call: a 2 MiB huge page becomes one 2 MiB IOPTE. The
//! IOPTEs in all domains are counted by page size in [`IOPTES`], which debugfs shows as
//! `ioasid/iopte_counts`. Unmapping flushes the IOTLB of every domain before the pages are
//! unpinned. A domain whose last group was detached is not emptied area by area: it leaves the
//! table with its mappings, which go with its page table ([`IoPageTable::retire_domain`]); no
//! device can reach them any more.

use core::{
    cmp::{
        max,
        min, //
    },
    fmt,
};
use kernel::{
    fs::LocalFile,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

use crate::{
    iommu::{
        cond_resched,
        Domain, //
    },
    iova_tree::{
        IovaNode,
        IovaTree, //
    },
    pages::{
        PinnedPages,
        Run, //
    },
};

/// The serial number of the next area: tells a mapping from a later one at the same IOVA.
static NEXT_SERIAL: Atomic<u64> = Atomic::new(1);

/// The IOPTEs in the domains of all IOASIDs, by page size: 4 KiB, 2 MiB, 1 GiB, any other.
pub(crate) static IOPTES: [Atomic<u64>; 4] = [
    Atomic::new(0),
    Atomic::new(0),
    Atomic::new(0),
    Atomic::new(0),
];

fn iopte_bucket(pgsize: u64) -> usize {
    match pgsize {
        0x1000 => 0,
        0x20_0000 => 1,
        0x4000_0000 => 2,
        _ => 3,
    }
}

/// What the debugfs file `ioasid/iopte_counts` shows: [`IOPTES`].
pub(crate) struct IopteCounts;

impl fmt::Debug for IopteCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "4K: {}\n2M: {}\n1G: {}\nother: {}",
            IOPTES[0].load(Relaxed),
            IOPTES[1].load(Relaxed),
            IOPTES[2].load(Relaxed),
            IOPTES[3].load(Relaxed)
        )
    }
}

/// Time spent in the IOMMU core for all IOASIDs: `iommu_map` calls and nanoseconds, then
/// `iommu_unmap` calls and nanoseconds. Shown by debugfs as `ioasid/iommu_time`, so that a
/// benchmark can tell the cost of the IOMMU driver from the cost of the ioctls around it.
pub(crate) static IOMMU_TIME: [Atomic<u64>; 4] = [
    Atomic::new(0),
    Atomic::new(0),
    Atomic::new(0),
    Atomic::new(0),
];

/// What the debugfs file `ioasid/iommu_time` shows: [`IOMMU_TIME`].
pub(crate) struct IommuTime;

impl fmt::Debug for IommuTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "iommu_map: {} calls {} ns\niommu_unmap: {} calls {} ns",
            IOMMU_TIME[0].load(Relaxed),
            IOMMU_TIME[1].load(Relaxed),
            IOMMU_TIME[2].load(Relaxed),
            IOMMU_TIME[3].load(Relaxed)
        )
    }
}

/// Runs `f`, adding one call and its duration to `IOMMU_TIME[slot..slot + 2]`.
fn timed<T>(slot: usize, f: impl FnOnce() -> T) -> T {
    let start = Instant::<Monotonic>::now();
    let ret = f();
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
    IOMMU_TIME[slot].fetch_add(1, Relaxed);
    IOMMU_TIME[slot + 1].fetch_add(ns, Relaxed);
    ret
}

/// Mask of the bits `0..=bit`.
fn bits_upto(bit: u32) -> u64 {
    if bit >= 63 {
        u64::MAX
    } else {
        (1u64 << (bit + 1)) - 1
    }
}

/// The first segment of mapping `size` bytes at `iova` to `paddr` in a domain with page sizes
/// `bitmap`, as `iommu_pgsize()` splits it: `(page size, count)`. `None` if no page size fits.
fn segment(iova: u64, paddr: u64, size: u64, bitmap: u64) -> Option<(u64, u64)> {
    // Page sizes no larger than the size, and that both addresses are aligned to.
    let mut sizes = bitmap & bits_upto(63 - size.leading_zeros());
    let merged = iova | paddr;
    if merged != 0 {
        sizes &= bits_upto(merged.trailing_zeros());
    }
    if sizes == 0 {
        return None;
    }
    let idx = 63 - sizes.leading_zeros();
    let pgsize = 1u64 << idx;
    let mut len = size;
    // Stop where the next larger page size could take over.
    let larger = bitmap & !bits_upto(idx);
    if larger != 0 {
        let next = 1u64 << larger.trailing_zeros();
        if (iova ^ paddr) & (next - 1) == 0 {
            let offset = next - (merged & (next - 1));
            if offset.checked_add(next).is_some_and(|end| end <= size) {
                len = offset;
            }
        }
    }
    Some((pgsize, len >> idx))
}

/// One mapping made by user space.
///
/// # Invariants
///
/// `pages` (nonempty) stay pinned for as long as any part of the area is mapped in any domain
/// a group is or may be attached to: an area is dropped only after it was unmapped from every
/// domain of the table it was mapped into, or that domain was retired (no group attached, none
/// ever again: [`IoPageTable::retire_domain`]); one whose unmap came up short is never dropped
/// ([`IoPageTable::drop_area`]) but while that domain is in use. In the table, the
/// area at `start` covers `[start, start + length() - 1]`, which does not wrap.
struct Area {
    /// `PROT_READ` and/or `PROT_WRITE`, and `PROT_CACHE`.
    prot: i32,
    /// Unique per mapping: tells it from a later mapping at the same IOVA.
    serial: u64,
    pages: PinnedPages,
}

impl Area {
    /// The length in bytes: a nonzero multiple of `PAGE_SIZE`.
    fn length(&self) -> u64 {
        // At most `u64::MAX / PAGE_SIZE` pages: they were pinned at a user address range that
        // does not wrap.
        self.pages.len() as u64 * PAGE_SIZE as u64
    }
}

/// A mapping made by [`IoPageTable::insert`]: its IOVA, and what tells it from any later one.
#[derive(Clone, Copy)]
pub(crate) struct Mapped {
    pub(crate) iova: u64,
    pub(crate) serial: u64,
}

/// The inclusive end of `[start, start + length)`; `length` is nonzero and does not wrap.
fn last(start: u64, length: u64) -> u64 {
    start + (length - 1)
}

/// Whether `[a, a_last]` and `[b, b_last]` intersect.
fn overlaps(a: u64, a_last: u64, b: u64, b_last: u64) -> bool {
    a <= b_last && b <= a_last
}

/// Whether `[iova, iova_last]` lies inside `aperture` and clear of every `reserved` region.
fn allowed(iova: u64, iova_last: u64, aperture: (u64, u64), reserved: &[(u64, u64)]) -> bool {
    iova >= aperture.0
        && iova_last <= aperture.1
        && !reserved
            .iter()
            .any(|&(s, l)| overlaps(iova, iova_last, s, l))
}

/// The alignment of a kernel-chosen IOVA for a mapping of `length` bytes: the IOVA is kept
/// congruent with the user address modulo it, so that huge pages can be mapped with huge IOPTEs.
fn placement_align(length: u64) -> u64 {
    if length >= (2 << 20) {
        2 << 20
    } else {
        PAGE_SIZE as u64
    }
}

/// The kernel-chosen IOVA of `length` bytes congruent with `offset` modulo `align` (a power of
/// two, at least `PAGE_SIZE`; `offset` page aligned): in the lowest free run of
/// `length + align - PAGE_SIZE` bytes of `areas` (any such run holds a suitable IOVA, as mm's
/// `vm_unmapped_area` reasons) inside `aperture`, above IOVA 0, and outside the `reserved`
/// regions (sorted by start), at the lowest suitable IOVA of that run.
///
/// O((k + 1) log n) for k reserved regions and n areas. `None` if there is no such run.
fn find_iova<V>(
    areas: &IovaTree<V>,
    aperture: (u64, u64),
    reserved: &[(u64, u64)],
    length: u64,
    align: u64,
    offset: u64,
) -> Option<u64> {
    let page = PAGE_SIZE as u64;
    let need = length.checked_add(align - page)?;
    let (lo, hi) = aperture;
    // The lowest free run of `need` bytes in `[from, to]`, from a page boundary.
    let run = |from: u64, to: u64| {
        let from = from.checked_next_multiple_of(page)?;
        if from > to {
            return None;
        }
        areas.free_run(from, to, need)
    };
    // Never hand out IOVA 0: too easily confused with "no address".
    let mut from = Some(lo.max(page));
    let mut found = None;
    // The usable windows in ascending order: between the reserved regions.
    for &(s, l) in reserved {
        let Some(f) = from else { break };
        if s > hi {
            break;
        }
        if s > f {
            found = run(f, s - 1);
            if found.is_some() {
                break;
            }
        }
        if l >= f {
            from = l.checked_add(1);
        }
    }
    if found.is_none() {
        found = from.and_then(|f| run(f, hi));
    }
    // `s` and `offset` are page aligned: at most `align - PAGE_SIZE` is skipped, and
    // `[iova, iova + length - 1]` stays inside the run.
    found.map(|s| s + (offset.wrapping_sub(s) & (align - 1)))
}

/// Where the memory of a [`MapRequest`] comes from.
pub(crate) enum MapSource {
    /// The caller's memory from this user address (`IOASID_MAP`).
    Va(u64),
    /// The pages of a shmem or hugetlbfs file from this byte offset (`IOASID_MAP_FILE`).
    File(ARef<LocalFile>, u64),
}

impl MapSource {
    /// Where the memory starts in its source: the user address or the file offset.
    fn start(&self) -> u64 {
        match self {
            MapSource::Va(va) => *va,
            MapSource::File(_, offset) => *offset,
        }
    }
}

/// A checked `IOASID_MAP` or `IOASID_MAP_FILE` request.
///
/// # Invariants
///
/// `length` is a nonzero multiple of `PAGE_SIZE`; the start of `source` (a user address or a
/// file offset) is page aligned and `start + length - 1` does not wrap; so for a fixed `iova`,
/// which is page aligned.
pub(crate) struct MapRequest {
    source: MapSource,
    length: u64,
    iova: Option<u64>,
    prot: i32,
}

impl MapRequest {
    /// A request to map `length` bytes of `source` with `prot`, at `iova` if given, else at an
    /// IOVA the kernel chooses.
    ///
    /// Every number comes from user space and is checked here, before any arithmetic: `EINVAL`
    /// for a zero, unaligned or wrapping range.
    pub(crate) fn new(
        source: MapSource,
        length: u64,
        iova: Option<u64>,
        prot: i32,
    ) -> Result<Self> {
        let page = PAGE_SIZE as u64;
        let start = source.start();
        if length == 0 || length % page != 0 || start % page != 0 {
            return Err(EINVAL);
        }
        start.checked_add(length - 1).ok_or(EINVAL)?;
        if let Some(iova) = iova {
            if iova % page != 0 {
                return Err(EINVAL);
            }
            iova.checked_add(length - 1).ok_or(EINVAL)?;
        }
        // INVARIANT: checked above.
        Ok(MapRequest {
            source,
            length,
            iova,
            prot,
        })
    }

    /// Where the memory starts in its source (a user address or a file offset): physically
    /// contiguous memory is contiguous there too, so an IOVA placed at the same offset from an
    /// alignment can be mapped with pages of that size.
    fn start(&self) -> u64 {
        self.source.start()
    }
}

/// The memory of a [`MapRequest`], pinned and accounted, in a node ready to be inserted into a
/// table without allocating. Made with no lock held; dropping it unpins the memory.
pub(crate) struct PinnedArea(IovaNode<Area>);

impl PinnedArea {
    /// Pins the memory of `req` (see [`PinnedPages::pin`]): `ENOMEM` past `RLIMIT_MEMLOCK`,
    /// `EFAULT` for memory that cannot be pinned, `EINTR` if a fatal signal came first.
    pub(crate) fn pin(req: &MapRequest) -> Result<Self> {
        let npages = usize::try_from(req.length / PAGE_SIZE as u64).map_err(|_| ENOMEM)?;
        let writable = req.prot & crate::iommu::PROT_WRITE != 0;
        let pages = match &req.source {
            // GUP says `EOVERFLOW` for a range that ends at the very top of the address space:
            // memory that cannot be pinned, as any other address no user memory is at.
            MapSource::Va(va) => PinnedPages::pin(*va, npages, writable).map_err(|e| {
                if e == EOVERFLOW {
                    EFAULT
                } else {
                    e
                }
            })?,
            MapSource::File(file, offset) => {
                PinnedPages::pin_file(file, *offset, npages, writable)?
            }
        };
        // INVARIANT: not mapped anywhere yet; `npages` is nonzero.
        let area = Area {
            prot: req.prot,
            serial: NEXT_SERIAL.fetch_add(1, Relaxed),
            pages,
        };
        Ok(PinnedArea(IovaNode::new(area, GFP_KERNEL_ACCOUNT)?))
    }
}

/// An area an IOMMU driver failed to unmap wholly from some domains (virtio-iommu's unmap
/// allocates a request to its device, and can fail for memory): gone from the IOASID, but a
/// device attached to one of `domains` may still reach part of it.
///
/// # Invariants
///
/// `area` is unmapped from every domain of the table but `domains`. It is dropped, and its
/// pages unpinned, only once all of `domains` left the table, which they do after their last
/// group was detached ([`IoPageTable::retire_domain`]) or with the table itself.
struct Stuck {
    domains: KVec<Arc<Domain>>,
    area: Area,
}

/// The mappings of one IOASID and the domains they are mirrored into.
pub(crate) struct IoPageTable {
    areas: IovaTree<Area>,
    domains: KVec<Arc<Domain>>,
    /// Reserved regions of the attached devices, sorted by start: IOVAs that must not be
    /// mapped.
    reserved: KVec<(u64, u64)>,
    /// Areas whose pages stay pinned for the domains that may still hold them.
    stuck: KVec<Stuck>,
}

impl IoPageTable {
    /// An empty I/O page table with no domain.
    pub(crate) fn new() -> Self {
        IoPageTable {
            areas: IovaTree::new(),
            domains: KVec::new(),
            reserved: KVec::new(),
            stuck: KVec::new(),
        }
    }

    /// The number of mappings.
    pub(crate) fn len(&self) -> usize {
        self.areas.len()
    }

    /// The usable aperture: the intersection of every domain's.
    fn aperture(&self) -> (u64, u64) {
        self.domains.iter().fold((0, u64::MAX), |(lo, hi), d| {
            let (s, e) = d.aperture();
            (lo.max(s), hi.min(e))
        })
    }

    /// Whether `[iova, iova_last]` may be mapped: inside the aperture, outside reserved regions.
    fn usable(&self, iova: u64, iova_last: u64) -> bool {
        allowed(iova, iova_last, self.aperture(), &self.reserved)
    }

    /// The IOVA at which `req` would be mapped now: its fixed IOVA, or one chosen by
    /// [`find_iova`]. Errors: `EEXIST` if a fixed range overlaps an existing mapping, `ERANGE`
    /// if it is not usable, `ENOSPC` if no IOVA range is free. O((k + 1) log n).
    pub(crate) fn place(&self, req: &MapRequest) -> Result<u64> {
        match req.iova {
            Some(iova) => {
                // No wrap (type invariant of `MapRequest`).
                let iova_last = last(iova, req.length);
                if self.areas.overlaps(iova, iova_last) {
                    return Err(EEXIST);
                }
                if !self.usable(iova, iova_last) {
                    return Err(ERANGE);
                }
                Ok(iova)
            }
            None => {
                let align = placement_align(req.length);
                find_iova(
                    &self.areas,
                    self.aperture(),
                    &self.reserved,
                    req.length,
                    align,
                    req.start() % align,
                )
                .ok_or(ENOSPC)
            }
        }
    }

    /// Maps `pinned`, the memory of `req`, at the IOVA [`IoPageTable::place`] finds now (it is
    /// checked again here: another thread may have mapped there since), into every domain.
    /// On failure the table is as it was, and the memory is given back if it was never mapped
    /// (for the caller to drop, unpinning it, after releasing the lock), else unpinned (or
    /// kept pinned if an IOMMU driver failed to unmap it). Errors: those of `place`, and of
    /// the IOMMU drivers.
    pub(crate) fn insert(
        &mut self,
        req: &MapRequest,
        pinned: PinnedArea,
    ) -> core::result::Result<Mapped, (Error, Option<PinnedArea>)> {
        let iova = match self.place(req) {
            Ok(iova) => iova,
            Err(e) => return Err((e, Some(pinned))),
        };
        let iova_last = last(iova, req.length);
        let node = pinned.0;
        let area = node.value();
        let serial = area.serial;
        let mut failed = None;
        for (i, domain) in self.domains.iter().enumerate() {
            if let Err((e, clean)) = map_area(domain, iova, area) {
                let mut short = Short::default();
                if !clean {
                    short.add(domain);
                }
                for d in &self.domains[..i] {
                    if !unmap_area(d, iova, area, area.length()) {
                        short.add(d);
                    }
                }
                failed = Some((e, short));
                break;
            }
        }
        if let Some((e, short)) = failed {
            self.release(node.into_value(), short);
            return Err((e, None));
        }
        match self.areas.insert(node, iova, iova_last) {
            Ok(()) => Ok(Mapped { iova, serial }),
            // Not reached: placed above, under the same lock. Undone all the same.
            Err((e, node)) => {
                self.drop_area(iova, node.into_value());
                Err((e, None))
            }
        }
    }

    /// Unmaps the mapping `m` made by [`IoPageTable::insert`], if it is still there: never a
    /// later one at the same IOVA. Returns whether it did.
    pub(crate) fn unmap_exact(&mut self, m: Mapped) -> bool {
        if self
            .areas
            .get(m.iova)
            .is_none_or(|(_, a)| a.serial != m.serial)
        {
            return false;
        }
        match self.areas.remove(m.iova) {
            Some((_, area)) => {
                self.drop_area(m.iova, area);
                true
            }
            None => false,
        }
    }

    /// Unmaps every area inside `[iova, iova + length)` and returns the bytes unmapped.
    /// O((m + 1) log n) for m areas unmapped.
    ///
    /// Errors: `EINVAL` for a zero, unaligned or wrapping range, or one that cuts an area;
    /// `ENOENT` if the range holds no area.
    pub(crate) fn unmap(&mut self, iova: u64, length: u64) -> Result<u64> {
        let page = PAGE_SIZE as u64;
        if length == 0 || length % page != 0 || iova % page != 0 {
            return Err(EINVAL);
        }
        let iova_last = iova.checked_add(length - 1).ok_or(EINVAL)?;
        // The lowest area that meets the range...
        let first = |areas: &IovaTree<Area>| {
            areas
                .first_from(iova)
                .filter(|&(s, _, _)| s <= iova_last)
                .map(|(s, _, _)| s)
        };
        let start = first(&self.areas).ok_or(ENOENT)?;
        // ...and the one holding its last IOVA are the only ones that can stick out of it
        // (checked before anything changes).
        if start < iova
            || self
                .areas
                .first_from(iova_last)
                .is_some_and(|(s, l, _)| s <= iova_last && l > iova_last)
        {
            return Err(EINVAL);
        }
        // Then each area inside it goes, lowest first; nothing here allocates (unless an IOMMU
        // driver fails to unmap, see `release`).
        let mut unmapped: u64 = 0;
        while let Some(start) = first(&self.areas) {
            let Some((_, area)) = self.areas.remove(start) else {
                break;
            };
            // Areas are disjoint within a 64-bit space: the sum cannot wrap.
            unmapped = unmapped.saturating_add(area.length());
            self.drop_area(start, area);
            cond_resched();
        }
        Ok(unmapped)
    }

    /// Unmaps everything; returns the bytes unmapped. O(n log n), allocation-free.
    pub(crate) fn unmap_all(&mut self) -> u64 {
        let mut unmapped: u64 = 0;
        while let Some((start, _, _)) = self.areas.first() {
            let Some((_, area)) = self.areas.remove(start) else {
                break;
            };
            unmapped = unmapped.saturating_add(area.length());
            self.drop_area(start, area);
            cond_resched();
        }
        unmapped
    }

    /// Removes `area`'s IOMMU mappings from every domain (each `iommu_unmap` waits for its
    /// IOTLB flush), then unpins its pages; if an IOMMU driver failed to unmap all of it, the
    /// pages stay pinned for as long as that domain is in use ([`IoPageTable::release`]).
    fn drop_area(&mut self, start: u64, area: Area) {
        let mut short = Short::default();
        for d in &self.domains {
            if !unmap_area(d, start, &area, area.length()) {
                short.add(d);
            }
        }
        self.release(area, short);
    }

    /// Unpins `area`, unmapped from every domain but `short`, whose IOMMU drivers failed to
    /// unmap all of it: then it is kept, pinned, until those domains left the table.
    fn release(&mut self, area: Area, short: Short) {
        if short.domains.is_empty() && !short.lost {
            // INVARIANT: unmapped from every domain: the pages may be unpinned.
            drop(area);
            return;
        }
        warn_unmap_short();
        if short.lost || self.stuck.reserve(1, GFP_KERNEL).is_err() {
            // Out of memory to even record it: the pages stay pinned for good.
            keep_pinned(area);
            return;
        }
        // INVARIANT: unmapped from every domain but `short`, which are in the table.
        let stuck = Stuck {
            domains: short.domains,
            area,
        };
        if let Err(e) = self.stuck.push_within_capacity(stuck) {
            // Cannot happen (reserved above); never unpin it then either.
            keep_pinned(e.0.area);
        }
    }

    /// Whether the IOVAs of every area are usable with `domain` and the `reserved` regions.
    /// O((k + 1) log n).
    pub(crate) fn fits(&self, domain: Option<&Domain>, reserved: &[(u64, u64)]) -> bool {
        let Some((lo, hi)) = self.areas.bounds() else {
            return true;
        };
        let aperture = domain.map_or((0, u64::MAX), |d| d.aperture());
        lo >= aperture.0
            && hi <= aperture.1
            && !reserved.iter().any(|&(s, l)| self.areas.overlaps(s, l))
    }

    /// Whether `domain` is one of this table's domains.
    pub(crate) fn has_domain(&self, domain: &Arc<Domain>) -> bool {
        self.domains.iter().any(|d| Arc::ptr_eq(d, domain))
    }

    /// The domains, for attaching a group to one of them.
    pub(crate) fn domains(&self) -> &[Arc<Domain>] {
        &self.domains
    }

    /// Adds `domain`, mapping every existing area into it.
    pub(crate) fn add_domain(&mut self, domain: Arc<Domain>) -> Result {
        let mut result = Ok(());
        for (start, _, area) in self.areas.iter() {
            if let Err((e, _)) = map_area(&domain, start, area) {
                // What is left in `domain` goes with it: no group is attached to it yet.
                result = Err(e);
                break;
            }
            cond_resched();
        }
        if result.is_ok() {
            result = self
                .domains
                .push(domain.clone(), GFP_KERNEL_ACCOUNT)
                .map_err(Into::into);
        }
        if result.is_err() {
            self.unmap_domain(&domain);
        }
        result
    }

    /// Removes `domain`, unmapping every area from it. No group may be attached to it any more:
    /// the areas stuck in it alone are then unpinned.
    pub(crate) fn remove_domain(&mut self, domain: &Arc<Domain>) {
        self.domains.retain(|d| !Arc::ptr_eq(d, domain));
        self.unmap_domain(domain);
        self.unstick(domain);
    }

    /// Unpins the areas stuck only in `domain`, which left the table and which no group can
    /// reach any more.
    fn unstick(&mut self, domain: &Arc<Domain>) {
        for s in self.stuck.iter_mut() {
            s.domains.retain(|d| !Arc::ptr_eq(d, domain));
        }
        // INVARIANT: an area stuck in no domain that is still in use may be unpinned.
        self.stuck.retain(|s| !s.domains.is_empty());
    }

    /// Removes `domain`, to which no group is attached any more, leaving its mappings to be
    /// freed with its page table when its last reference goes, instead of unmapping the areas
    /// from it one by one (an `iommu_unmap` per area, when a context with 10^6 of them closes);
    /// only their IOPTEs are uncounted. The areas stuck in it alone are then unpinned.
    ///
    /// # Safety
    ///
    /// No group is attached to `domain`, and none will be again (its users detached it from
    /// their last group, and it leaves the table, which alone offers domains to groups): the
    /// IOMMU no longer walks its page table, which may then keep pointing at pages unpinned
    /// after this.
    pub(crate) unsafe fn retire_domain(&mut self, domain: Arc<Domain>) {
        self.domains.retain(|d| !Arc::ptr_eq(d, &domain));
        let bitmap = domain.pgsize_bitmap();
        for (i, (start, _, area)) in self.areas.iter().enumerate() {
            // What `map_area` counted for it: the areas in the table are mapped in each of its
            // domains.
            let _ = map_segments(
                start,
                area.pages.runs(),
                bitmap,
                area.length(),
                |_, _, pg, n| {
                    IOPTES[iopte_bucket(pg)].fetch_sub(n, Relaxed);
                    Ok(())
                },
            );
            if i % 1024 == 1023 {
                cond_resched();
            }
        }
        self.unstick(&domain);
    }

    /// Unmaps from `domain` every area that is mapped in it (all of them; or, after a failed
    /// replay, those before the failure: `iommu_unmap` of what is not mapped does nothing).
    fn unmap_domain(&self, domain: &Domain) {
        for (start, _, area) in self.areas.iter() {
            if domain.iova_to_phys(start) == 0 {
                continue;
            }
            if !unmap_area(domain, start, area, area.length()) {
                // The area stays in the table, pinned, for the other domains; this one is
                // being dropped by its last user and cannot reach it once detached.
                warn_unmap_short();
            }
            cond_resched();
        }
    }

    /// Replaces the reserved regions (those of every device attached).
    pub(crate) fn set_reserved(&mut self, mut reserved: KVec<(u64, u64)>) {
        reserved.sort_unstable();
        self.reserved = reserved;
    }

    /// The usable IOVA ranges, inclusive, in ascending order, to `out`. There are at most one
    /// more than the reserved regions.
    pub(crate) fn usable_ranges(&self, out: &mut KVec<(u64, u64)>) -> Result {
        let (lo, hi) = self.aperture();
        let mut holes = KVec::new();
        for &(s, l) in self.reserved.iter() {
            if l >= lo && s <= hi {
                holes.push((s.max(lo), l.min(hi)), GFP_KERNEL)?;
            }
        }
        holes.sort_unstable();
        let mut emit = |range: (u64, u64)| -> Result {
            out.push(range, GFP_KERNEL)?;
            Ok(())
        };
        // The start of the next usable range; `None` once past `u64::MAX`.
        let mut next = Some(lo);
        for (s, l) in holes {
            let Some(n) = next else { break };
            if s > n {
                emit((n, s - 1))?;
            }
            if l >= n {
                next = l.checked_add(1);
            }
        }
        if let Some(n) = next {
            if n <= hi {
                emit((n, hi))?;
            }
        }
        Ok(())
    }
}

impl Drop for IoPageTable {
    fn drop(&mut self) {
        self.unmap_all();
    }
}

/// Calls `f(iova, paddr, pgsize, count)` for every segment of the pages `runs` mapped at `iova`
/// in a domain with page sizes `bitmap`, in order, up to `limit` bytes of them; stops at the
/// first error.
///
/// Runs that follow each other physically (a contiguous range longer than a [`Run`] holds, or
/// split where the memory map is not contiguous) are taken together, so that the segments are
/// those of the maximal physically contiguous ranges, page by page.
fn map_segments(
    iova: u64,
    runs: &[Run],
    bitmap: u64,
    limit: u64,
    mut f: impl FnMut(u64, u64, u64, u64) -> Result,
) -> Result {
    // The byte offset in the area of the next range, and the index of its first run.
    let mut at: u64 = 0;
    let mut i = 0;
    while i < runs.len() && at < limit {
        // A physically contiguous range of pages...
        let start = runs[i].phys();
        let mut len = runs[i].bytes();
        i += 1;
        while i < runs.len() && runs[i].phys() == start + len {
            len += runs[i].bytes();
            i += 1;
        }
        // ...split into segments of one page size each.
        let mut off = 0;
        while off < len && at + off < limit {
            let (pgsize, count) =
                segment(iova + at + off, start + off, len - off, bitmap).ok_or(EINVAL)?;
            f(iova + at + off, start + off, pgsize, count)?;
            off += pgsize * count;
        }
        at += len;
        cond_resched();
    }
    Ok(())
}

/// Maps `area` at `iova` into `domain`, one `iommu_map` per segment, counting the IOPTEs. On
/// failure it unmaps what it mapped, and says whether that left `domain` clean: if not, part
/// of the area may still be mapped there, and its pages must stay pinned.
fn map_area(domain: &Domain, iova: u64, area: &Area) -> core::result::Result<(), (Error, bool)> {
    let mut mapped = 0;
    let ret = map_segments(
        iova,
        area.pages.runs(),
        domain.pgsize_bitmap(),
        area.length(),
        |va, pa, pg, count| {
            let mut done = 0;
            while done < count {
                let n = min(count - done, max(CALL_BYTES / pg, 1));
                let len = usize::try_from(pg * n)?;
                let (va, pa) = (va + done * pg, pa + done * pg);
                // SAFETY: `pa..pa + len` is part of `area`'s pinned pages, which stay pinned
                // while the area is mapped in any domain (type invariant of `Area`);
                // `va..va + len` is free in this domain: the table keeps areas disjoint.
                timed(0, || unsafe { domain.map(va, pa, len, area.prot) })?;
                IOPTES[iopte_bucket(pg)].fetch_add(n, Relaxed);
                mapped += pg * n;
                done += n;
                if done < count {
                    cond_resched();
                }
            }
            Ok(())
        },
    );
    match ret {
        Ok(()) => Ok(()),
        Err(e) => Err((e, mapped == 0 || unmap_area(domain, iova, area, mapped))),
    }
}

/// The domains an IOMMU driver failed to unmap an area from wholly.
#[derive(Default)]
struct Short {
    domains: KVec<Arc<Domain>>,
    /// A domain could not be recorded (no memory): the area must stay pinned for good.
    lost: bool,
}

impl Short {
    /// Records that `domain` may still hold part of the area.
    fn add(&mut self, domain: &Arc<Domain>) {
        if self.domains.push(domain.clone(), GFP_KERNEL).is_err() {
            self.lost = true;
        }
    }
}

/// Unmaps the first `length` bytes of `area` (mapped at `iova`) from `domain`, flushing the
/// IOTLB, and uncounts their IOPTEs. Returns `false` if the IOMMU driver unmapped less: then
/// part of it may still be mapped, and its pages must stay pinned.
fn unmap_area(domain: &Domain, iova: u64, area: &Area, length: u64) -> bool {
    // Whole IOPTEs from `at`, about `CALL_BYTES` of them, per `iommu_unmap` call.
    let mut at = iova;
    let mut span: u64 = 0;
    let mut unmapped: u64 = 0;
    let mut flush = |at: &mut u64, span: &mut u64| {
        if let Ok(size) = usize::try_from(*span) {
            // SAFETY: `at..at + span` covers whole IOPTEs mapped by `map_area` (of the first
            // `length` bytes of the area, split the same way).
            let done = timed(2, || unsafe { domain.unmap(*at, size) });
            unmapped += done as u64;
        }
        *at += *span;
        *span = 0;
    };
    let _ = map_segments(
        iova,
        area.pages.runs(),
        domain.pgsize_bitmap(),
        length,
        |_, _, pg, count| {
            let mut done = 0;
            while done < count {
                let n = min(count - done, max(CALL_BYTES / pg, 1));
                span += pg * n;
                done += n;
                if span >= CALL_BYTES {
                    flush(&mut at, &mut span);
                    cond_resched();
                }
            }
            IOPTES[iopte_bucket(pg)].fetch_sub(count, Relaxed);
            Ok(())
        },
    );
    if span > 0 {
        flush(&mut at, &mut span);
    }
    unmapped == length
}

/// The bytes one `iommu_map` or `iommu_unmap` call covers at most (or one IOPTE, if larger):
/// the IOMMU driver walks its page table in one go, without yielding the CPU.
const CALL_BYTES: u64 = 1 << 30;

/// Says once that an IOMMU driver failed to unmap, which leaves pages pinned for good.
fn warn_unmap_short() {
    static WARNED: Atomic<bool> = Atomic::new(false);
    if !WARNED.xchg(true, Relaxed) {
        pr_warn!("ioasid: the IOMMU driver unmapped less than asked; the pages stay pinned\n");
    }
}

/// Keeps `area`'s pages pinned for good: an IOMMU driver failed to unmap all of it, and a
/// device may still reach them. Leaking the pin is the only safe answer (as iommufd does).
fn keep_pinned(area: Area) {
    warn_unmap_short();
    // INVARIANT: never dropped, so the pages are never unpinned.
    core::mem::forget(area);
}

#[kunit_tests(ioasid_io_pagetable)]
mod tests {
    use super::*;
    use crate::iommu::PROT_READ;

    const PAGE: u64 = PAGE_SIZE as u64;

    /// A map as `IOASID_MAP` makes it: checked, placed, pinned, then inserted.
    fn map(
        t: &mut IoPageTable,
        user_va: u64,
        length: u64,
        iova: Option<u64>,
        prot: i32,
    ) -> Result<Mapped> {
        let req = MapRequest::new(MapSource::Va(user_va), length, iova, prot)?;
        t.place(&req)?;
        let pinned = PinnedArea::pin(&req)?;
        t.insert(&req, pinned).map_err(|(e, _)| e)
    }

    /// Every number of a MAP is checked before any arithmetic: these used to overflow (a kernel
    /// BUG with `CONFIG_RUST_OVERFLOW_CHECKS`, the IOASID's mutex held). None of them may get
    /// as far as pinning (this KUnit thread has no user memory: that would be `EFAULT`).
    #[test]
    fn map_rejects_every_wrapping_request_before_pinning() -> Result {
        let mut t = IoPageTable::new();
        let max = u64::MAX;
        // Kernel-chosen IOVA: `length + align - PAGE_SIZE` wraps.
        assert_eq!(
            map(&mut t, PAGE, max - PAGE + 1, None, PROT_READ).err(),
            Some(ENOSPC)
        );
        assert_eq!(
            map(&mut t, 2 * PAGE, max - 2 * PAGE + 1, None, PROT_READ).err(),
            Some(ENOSPC)
        );
        // The alignment alone pushes a large map past the end of the IOVA space: it must
        // start at 2 MiB at the lowest.
        assert_eq!(
            map(&mut t, 0, max - 0x20_0000 + PAGE + 1, None, PROT_READ).err(),
            Some(ENOSPC)
        );
        // `user_va + length` wraps.
        assert_eq!(
            map(&mut t, max - PAGE + 1, 2 * PAGE, None, PROT_READ).err(),
            Some(EINVAL)
        );
        // Fixed IOVA: `iova + length` wraps.
        assert_eq!(
            map(&mut t, 0, 2 * PAGE, Some(max - PAGE + 1), PROT_READ).err(),
            Some(EINVAL)
        );
        assert_eq!(
            map(&mut t, 0, max - PAGE + 1, Some(2 * PAGE), PROT_READ).err(),
            Some(EINVAL)
        );
        // Zero, unaligned.
        assert_eq!(map(&mut t, 0, 0, None, PROT_READ).err(), Some(EINVAL));
        assert_eq!(map(&mut t, 0, max, None, PROT_READ).err(), Some(EINVAL));
        assert_eq!(map(&mut t, 1, PAGE, None, PROT_READ).err(), Some(EINVAL));
        // A sane request gets as far as pinning, which fails here for want of user memory.
        assert_eq!(map(&mut t, PAGE, PAGE, None, PROT_READ).err(), Some(EFAULT));
        assert_eq!(t.areas.len(), 0);
        Ok(())
    }

    use crate::test_rng::Rng;

    /// The reference of [`find_iova`]: the same rule, by a linear walk over every IOVA of
    /// interest, of sorted areas in a vector.
    fn ref_find_iova(
        areas: &[(u64, u64)],
        aperture: (u64, u64),
        reserved: &[(u64, u64)],
        length: u64,
        align: u64,
        offset: u64,
    ) -> Option<u64> {
        let need = length.checked_add(align - PAGE)?;
        let free = |s: u64, l: u64| {
            s >= aperture.0.max(PAGE)
                && l <= aperture.1
                && !Iterator::chain(areas.iter(), reserved.iter())
                    .any(|&(a, b)| overlaps(s, l, a, b))
        };
        // Candidate run starts: the aperture, and just after every area and reserved region.
        let mut starts = KVec::new();
        starts.push(aperture.0.max(PAGE), GFP_KERNEL).ok()?;
        for &(_, l) in Iterator::chain(areas.iter(), reserved.iter()) {
            if let Some(s) = l.checked_add(1) {
                starts.push(s, GFP_KERNEL).ok()?;
            }
        }
        starts.sort_unstable();
        let s = starts
            .iter()
            .map(|&s| s.checked_next_multiple_of(PAGE))
            .find(|s| {
                s.and_then(|s| Some((s, s.checked_add(need - 1)?)))
                    .is_some_and(|(s, l)| free(s, l))
            })??;
        let iova = s + (offset.wrapping_sub(s) & (align - 1));
        assert_eq!(iova % align, offset % align);
        Some(iova)
    }

    /// Kernel-chosen placement against the reference, with random areas (fixed and placed),
    /// apertures, reserved regions and sizes, some of which need 2 MiB alignment; every area
    /// placed lies inside the aperture, outside reserved regions, clear of the others, congruent
    /// with its offset; then random removals.
    /// Inserts `[s, l]` into both the tree (with value `v`) and the sorted reference `model`.
    fn insert_both(
        tree: &mut IovaTree<u64>,
        model: &mut KVec<(u64, u64)>,
        v: u64,
        s: u64,
        l: u64,
    ) -> Result {
        if tree.insert(IovaNode::new(v, GFP_KERNEL)?, s, l).is_err() {
            return Err(EINVAL);
        }
        let i = model
            .iter()
            .position(|&(ms, _)| ms > s)
            .unwrap_or(model.len());
        model.reserve(1, GFP_KERNEL)?;
        model
            .insert_within_capacity(i, (s, l))
            .map_err(|_| ENOMEM)?;
        Ok(())
    }

    #[test]
    fn placement_against_reference() -> Result {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..40u64 {
            // 64 MiB of IOVA space somewhere, the top of the 64-bit space included.
            let base = match round % 3 {
                0 => 0,
                1 => 0x1_0000_0000,
                _ => u64::MAX - 0x400_0000 + 1,
            };
            let aperture = (
                base + rng.below(64) * PAGE,
                base + (0x400_0000 - 1) - rng.below(64) * PAGE,
            );
            let mut reserved = KVec::new();
            for _ in 0..rng.below(4) {
                let s = base + rng.below(0x4000) * PAGE;
                let l = s.saturating_add((1 + rng.below(600)) * PAGE - 1);
                reserved.push((s, l), GFP_KERNEL)?;
            }
            reserved.sort_unstable();
            let mut tree = IovaTree::new();
            let mut model: KVec<(u64, u64)> = KVec::new();
            for step in 0..300u64 {
                let pages = match rng.below(8) {
                    0 => 512 + rng.below(1024),
                    1 => 1 + rng.below(64),
                    _ => 1 + rng.below(4),
                };
                let length = pages * PAGE;
                let align = placement_align(length);
                let offset = rng.below(512) * PAGE % align;
                if rng.below(4) == 0 {
                    // A fixed area, where it is free.
                    let s = base + rng.below(0x4000) * PAGE;
                    let Some(l) = s.checked_add(length - 1) else {
                        continue;
                    };
                    if tree.overlaps(s, l) {
                        continue;
                    }
                    insert_both(&mut tree, &mut model, step, s, l)?;
                } else {
                    let got = find_iova(&tree, aperture, &reserved, length, align, offset);
                    let expect = ref_find_iova(&model, aperture, &reserved, length, align, offset);
                    assert_eq!(got, expect);
                    let Some(s) = got else { continue };
                    let l = s + (length - 1);
                    assert!(allowed(s, l, aperture, &reserved));
                    assert!(s != 0 && s % align == offset % align);
                    insert_both(&mut tree, &mut model, step, s, l)?;
                }
                if rng.below(3) == 0 && !model.is_empty() {
                    let i = rng.below(model.len() as u64) as usize;
                    let (s, l) = model.remove(i)?;
                    assert_eq!(tree.remove(s).map(|(l, _)| l), Some(l));
                }
                assert!(tree.check());
                assert_eq!(tree.len(), model.len());
            }
        }
        Ok(())
    }

    /// The segments as `map_segments` computed them from a page list, before runs: the
    /// reference.
    fn ref_map_segments(
        iova: u64,
        phys: &[u64],
        bitmap: u64,
        limit: u64,
        out: &mut KVec<(u64, u64, u64, u64)>,
    ) -> Result {
        let n = phys.len();
        let mut i = 0;
        while i < n && (i as u64) * PAGE < limit {
            let start = phys[i];
            let mut j = i + 1;
            while j < n && phys[j] == start + (j - i) as u64 * PAGE {
                j += 1;
            }
            let run = (j - i) as u64 * PAGE;
            let mut off = 0;
            while off < run && (i as u64) * PAGE + off < limit {
                let (pgsize, count) =
                    segment(iova + i as u64 * PAGE + off, start + off, run - off, bitmap)
                        .ok_or(EINVAL)?;
                out.push(
                    (iova + i as u64 * PAGE + off, start + off, pgsize, count),
                    GFP_KERNEL,
                )?;
                off += pgsize * count;
            }
            i = j;
        }
        Ok(())
    }

    /// `map_segments` over runs gives the segments the per-page computation gave, for random
    /// mixes of 4 KiB pages, 2 MiB and 1 GiB huge pages (whole or cut), contiguous or not, at
    /// IOVAs aligned or not, with the page sizes of several IOMMUs, whole or up to a limit, and
    /// with runs cut short (as at the end of a run's capacity or of a memory map section).
    #[test]
    fn map_segments_over_runs_against_pages() -> Result {
        use crate::pages::RunBuilder;
        const M2: u64 = 512;
        const G1: u64 = 512 * 512;
        let stride = core::mem::size_of::<kernel::bindings::page>();
        let bitmaps = [
            PAGE | 0x20_0000 | 0x4000_0000,
            PAGE,
            PAGE | 0x20_0000,
            PAGE | 0x1_0000 | 0x20_0000 | 0x2000_0000,
            u64::MAX << 12,
        ];
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for round in 0..120u64 {
            let mut pfns: KVec<u64> = KVec::new();
            let mut pfn = rng.below(1 << 26);
            // One round in ten maps a whole 1 GiB page, and some more.
            let target = if round % 10 == 0 {
                G1 + 700
            } else {
                1 + rng.below(4000)
            };
            while (pfns.len() as u64) < target {
                let n = match rng.below(6) {
                    // A 1 GiB page first.
                    _ if round % 10 == 0 && pfns.is_empty() => {
                        pfn = (1 + rng.below(64)) * G1;
                        G1
                    }
                    // A 2 MiB page, aligned, whole or from somewhere inside it.
                    0 | 1 => {
                        pfn = rng.below(1 << 18) * M2;
                        if rng.below(3) == 0 {
                            let skip = rng.below(M2);
                            pfn += skip;
                            M2 - skip
                        } else {
                            M2
                        }
                    }
                    // 4 KiB pages, going on from the last frame, or elsewhere.
                    3 => 1 + rng.below(40),
                    _ => {
                        pfn = rng.below(1 << 26);
                        1 + rng.below(3)
                    }
                };
                for _ in 0..n.min(target - pfns.len() as u64) {
                    pfns.push(pfn, GFP_KERNEL)?;
                    pfn += 1;
                }
            }
            let phys: KVec<u64> = {
                let mut v = KVec::with_capacity(pfns.len(), GFP_KERNEL)?;
                for &p in pfns.iter() {
                    v.push(p * PAGE, GFP_KERNEL)?;
                }
                v
            };
            let max_run = if round % 3 == 0 {
                1 + rng.below(600) as usize
            } else {
                usize::MAX
            };
            let mut b = RunBuilder::new(max_run);
            b.reserve(pfns.len())?;
            for &p in pfns.iter() {
                b.add(p, 0x1000_0000 + p as usize * stride)?;
            }
            let runs = b.into_runs();
            let len = pfns.len() as u64 * PAGE;
            for &bitmap in bitmaps.iter() {
                let iova = match rng.below(4) {
                    0 => rng.below(1 << 20) * PAGE,
                    1 => rng.below(1 << 10) * 0x20_0000 + (pfns[0] % M2) * PAGE,
                    2 => rng.below(1 << 4) * 0x4000_0000 + (pfns[0] % G1) * PAGE,
                    _ => 0x4000_0000,
                };
                let limit = if rng.below(2) == 0 {
                    len
                } else {
                    (1 + rng.below(pfns.len() as u64)) * PAGE
                };
                let mut expect = KVec::new();
                ref_map_segments(iova, &phys, bitmap, limit, &mut expect)?;
                let mut got = KVec::new();
                map_segments(iova, &runs, bitmap, limit, |va, pa, pg, count| {
                    got.push((va, pa, pg, count), GFP_KERNEL)?;
                    Ok(())
                })?;
                assert_eq!(got.len(), expect.len());
                assert!(got.iter().zip(expect.iter()).all(|(a, b)| a == b));
            }
        }
        Ok(())
    }

    /// `IOASID_IOVA_RANGES` used to gather at most 256 ranges; every one is returned now.
    #[test]
    fn usable_ranges_are_all_returned() -> Result {
        let mut t = IoPageTable::new();
        let mut holes = KVec::new();
        for i in 0..300u64 {
            holes.push(
                (i * 4 * PAGE + PAGE, i * 4 * PAGE + 2 * PAGE - 1),
                GFP_KERNEL,
            )?;
        }
        t.set_reserved(holes);
        let mut out = KVec::new();
        t.usable_ranges(&mut out)?;
        assert_eq!(out.len(), 301);
        assert_eq!(out[0], (0, PAGE - 1));
        assert_eq!(out[300], (299 * 4 * PAGE + 2 * PAGE, u64::MAX));
        for w in out.windows(2) {
            assert!(w[0].1 < w[1].0);
        }
        Ok(())
    }
}
