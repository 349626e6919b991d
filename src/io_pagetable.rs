// SPDX-License-Identifier: GPL-2.0

//! The I/O page table of an IOASID: what user space mapped, at which IOVAs, and in which domains.
//!
//! An [`IoPageTable`] keeps the *areas* user space mapped (IOVA range, protection, pinned pages)
//! in an `RBTree` keyed by IOVA, and mirrors every area into every [`Domain`] of its IOASID. It
//! also knows which IOVAs are usable: inside every domain's aperture, and outside every reserved
//! region of the devices attached. With no device attached every IOVA is usable: the constraints
//! are checked again when a device attaches.
//!
//! Physically contiguous runs of pinned pages are mapped with one `iommu_map` call each, which
//! uses the largest page sizes the domain supports for them (a 2 MiB huge page becomes one 2 MiB
//! IOPTE). Unmapping flushes the IOTLB of every domain before the pages are unpinned.

use kernel::{page::PAGE_SIZE, prelude::*, rbtree::RBTree, sync::Arc};

use crate::{
    iommu::Domain,
    pages::PinnedPages, //
};

/// One mapping made by user space.
struct Area {
    /// Length in bytes, a multiple of `PAGE_SIZE`.
    length: u64,
    /// `PROT_READ` and/or `PROT_WRITE`.
    prot: i32,
    pages: PinnedPages,
}

/// The inclusive end of `[start, start + length)`; `length` is nonzero and does not wrap.
fn last(start: u64, length: u64) -> u64 {
    start + (length - 1)
}

/// Whether `[a, a_last]` and `[b, b_last]` intersect.
fn overlaps(a: u64, a_last: u64, b: u64, b_last: u64) -> bool {
    a <= b_last && b <= a_last
}

/// The mappings of one IOASID and the domains they are mirrored into.
pub(crate) struct IoPageTable {
    areas: RBTree<u64, Area>,
    domains: KVec<Arc<Domain>>,
    /// Reserved regions of the attached devices: IOVAs that must not be mapped.
    reserved: KVec<(u64, u64)>,
}

impl IoPageTable {
    /// An empty I/O page table with no domain.
    pub(crate) fn new() -> Self {
        IoPageTable {
            areas: RBTree::new(),
            domains: KVec::new(),
            reserved: KVec::new(),
        }
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
        let (lo, hi) = self.aperture();
        iova >= lo
            && iova_last <= hi
            && !self
                .reserved
                .iter()
                .any(|&(s, l)| overlaps(iova, iova_last, s, l))
    }

    /// Whether `[iova, iova_last]` overlaps an existing area.
    fn occupied(&self, iova: u64, iova_last: u64) -> bool {
        // The first area starting at or after `iova`...
        if let Some(cursor) = self.areas.cursor_lower_bound(&iova) {
            let (&start, _) = cursor.current();
            if start <= iova_last {
                return true;
            }
            // ...and the one before it, which may reach into the range.
            if let Some((&start, area)) = cursor.peek_prev() {
                return last(start, area.length) >= iova;
            }
            return false;
        }
        // Every area starts before `iova`: only the last one can reach it.
        match self.areas.cursor_back() {
            Some(cursor) => {
                let (&start, area) = cursor.current();
                last(start, area.length) >= iova
            }
            None => false,
        }
    }

    /// Finds a free, usable IOVA range of `length` bytes aligned to `align`.
    fn find_iova(&self, length: u64, align: u64) -> Option<u64> {
        let (lo, hi) = self.aperture();
        // Never hand out IOVA 0: too easily confused with "no address".
        let mut candidate = lo.max(PAGE_SIZE as u64).checked_next_multiple_of(align)?;
        loop {
            let cand_last = candidate.checked_add(length - 1)?;
            if cand_last > hi {
                return None;
            }
            // Move past whatever blocks the candidate: an area or a reserved region.
            let areas = self.areas.iter().map(|(&s, a)| (s, last(s, a.length)));
            let blocker = Iterator::chain(areas, self.reserved.iter().copied())
                .filter(|&(s, l)| overlaps(candidate, cand_last, s, l))
                .map(|(_, l)| l)
                .max();
            match blocker {
                None => return Some(candidate),
                Some(l) => candidate = l.checked_add(1)?.checked_next_multiple_of(align)?,
            }
        }
    }

    /// Maps `length` bytes of the caller's memory at `user_va` with `prot`, at `iova` if given,
    /// else at an IOVA chosen here. Returns the IOVA.
    ///
    /// Errors: `EINVAL` for a zero, unaligned or wrapping range, `EEXIST` if it overlaps an
    /// existing mapping, `ERANGE` if it is not usable, `ENOSPC` if no IOVA range is free,
    /// `ENOMEM` past `RLIMIT_MEMLOCK`, `EFAULT` for memory that cannot be pinned.
    pub(crate) fn map(
        &mut self,
        user_va: u64,
        length: u64,
        iova: Option<u64>,
        prot: i32,
    ) -> Result<u64> {
        let page = PAGE_SIZE as u64;
        if length == 0 || length % page != 0 || user_va % page != 0 {
            return Err(EINVAL);
        }
        user_va.checked_add(length - 1).ok_or(EINVAL)?;
        let iova = match iova {
            Some(iova) => {
                if iova % page != 0 {
                    return Err(EINVAL);
                }
                let iova_last = iova.checked_add(length - 1).ok_or(EINVAL)?;
                if self.occupied(iova, iova_last) {
                    return Err(EEXIST);
                }
                if !self.usable(iova, iova_last) {
                    return Err(ERANGE);
                }
                iova
            }
            None => {
                // Keep the IOVA congruent with the user address up to 2 MiB, so that huge pages
                // can be mapped with huge IOPTEs.
                let align = if length >= (2 << 20) { 2 << 20 } else { page };
                let base = self
                    .find_iova(length + (user_va % align), align)
                    .ok_or(ENOSPC)?;
                base + user_va % align
            }
        };

        let npages = usize::try_from(length / page)?;
        let pages = PinnedPages::pin(user_va, npages, prot & crate::iommu::PROT_WRITE != 0)?;
        let area = Area {
            length,
            prot,
            pages,
        };
        for (i, domain) in self.domains.iter().enumerate() {
            if let Err(e) = map_area(domain, iova, &area) {
                for d in &self.domains[..i] {
                    d.unmap(iova, length as usize);
                }
                return Err(e);
            }
        }
        let node = kernel::rbtree::RBTreeNode::new(iova, area, GFP_KERNEL_ACCOUNT);
        match node {
            Ok(node) => {
                self.areas.insert(node);
                Ok(iova)
            }
            Err(e) => {
                for d in &self.domains {
                    d.unmap(iova, length as usize);
                }
                Err(e)
            }
        }
    }

    /// Unmaps every area inside `[iova, iova + length)` and returns the bytes unmapped.
    ///
    /// Errors: `EINVAL` for a zero, unaligned or wrapping range, or one that cuts an area;
    /// `ENOENT` if the range holds no area.
    pub(crate) fn unmap(&mut self, iova: u64, length: u64) -> Result<u64> {
        let page = PAGE_SIZE as u64;
        if length == 0 || length % page != 0 || iova % page != 0 {
            return Err(EINVAL);
        }
        let iova_last = iova.checked_add(length - 1).ok_or(EINVAL)?;
        // Every area that meets the range must lie inside it.
        let mut starts = KVec::new();
        for (&start, area) in self.areas.iter() {
            let area_last = last(start, area.length);
            if !overlaps(start, area_last, iova, iova_last) {
                continue;
            }
            if start < iova || area_last > iova_last {
                return Err(EINVAL);
            }
            starts.push(start, GFP_KERNEL)?;
        }
        if starts.is_empty() {
            return Err(ENOENT);
        }
        let mut unmapped = 0;
        for start in starts {
            if let Some(area) = self.areas.remove(&start) {
                unmapped += area.length;
                self.drop_area(start, area);
            }
        }
        Ok(unmapped)
    }

    /// Unmaps everything; returns the bytes unmapped.
    pub(crate) fn unmap_all(&mut self) -> u64 {
        let mut unmapped = 0;
        while let Some(cursor) = self.areas.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            let (start, area) = node.to_key_value();
            unmapped += area.length;
            self.drop_area(start, area);
        }
        unmapped
    }

    /// Removes `area`'s IOMMU mappings from every domain (each `iommu_unmap` waits for its
    /// IOTLB flush), then unpins its pages.
    fn drop_area(&self, start: u64, area: Area) {
        for d in &self.domains {
            d.unmap(start, area.length as usize);
        }
        drop(area);
    }

    /// Whether the IOVAs of every area are usable with `domain` and the `reserved` regions.
    pub(crate) fn fits(&self, domain: Option<&Domain>, reserved: &[(u64, u64)]) -> bool {
        let (lo, hi) = domain.map_or((0, u64::MAX), |d| d.aperture());
        self.areas.iter().all(|(&s, a)| {
            let l = last(s, a.length);
            s >= lo && l <= hi && !reserved.iter().any(|&(rs, rl)| overlaps(s, l, rs, rl))
        })
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
        let mut done = KVec::new();
        for (&start, area) in self.areas.iter() {
            if let Err(e) = map_area(&domain, start, area) {
                for (s, len) in done {
                    domain.unmap(s, len);
                }
                return Err(e);
            }
            done.push((start, area.length as usize), GFP_KERNEL)?;
        }
        self.domains.push(domain, GFP_KERNEL_ACCOUNT)?;
        Ok(())
    }

    /// Removes `domain`; its mappings go with it when it is freed.
    pub(crate) fn remove_domain(&mut self, domain: &Arc<Domain>) {
        self.domains.retain(|d| !Arc::ptr_eq(d, domain));
    }

    /// Replaces the reserved regions (those of every device attached).
    pub(crate) fn set_reserved(&mut self, reserved: KVec<(u64, u64)>) {
        self.reserved = reserved;
    }

    /// The usable IOVA ranges, inclusive, in ascending order: the first `max` of them go to
    /// `out`; returns how many there are in all.
    pub(crate) fn usable_ranges(&self, out: &mut KVec<(u64, u64)>, max: usize) -> Result<usize> {
        let (lo, hi) = self.aperture();
        let mut holes = KVec::new();
        for &(s, l) in self.reserved.iter() {
            if l >= lo && s <= hi {
                holes.push((s.max(lo), l.min(hi)), GFP_KERNEL)?;
            }
        }
        holes.sort_unstable();
        let mut count = 0;
        let mut emit = |range: (u64, u64)| -> Result {
            if count < max {
                out.push(range, GFP_KERNEL)?;
            }
            count += 1;
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
        Ok(count)
    }
}

impl Drop for IoPageTable {
    fn drop(&mut self) {
        self.unmap_all();
    }
}

/// Maps `area` at `iova` into `domain`, one `iommu_map` per physically contiguous run of pages.
/// On failure nothing of the area stays mapped in `domain`.
fn map_area(domain: &Domain, iova: u64, area: &Area) -> Result {
    let page = PAGE_SIZE as u64;
    let n = area.pages.len();
    let mut i = 0;
    while i < n {
        let start = area.pages.phys(i);
        let mut j = i + 1;
        while j < n && area.pages.phys(j) == start + (j - i) as u64 * page {
            j += 1;
        }
        let run_iova = iova + i as u64 * page;
        if let Err(e) = domain.map(run_iova, start, (j - i) * PAGE_SIZE, area.prot) {
            if i > 0 {
                domain.unmap(iova, i * PAGE_SIZE);
            }
            return Err(e);
        }
        i = j;
    }
    Ok(())
}
