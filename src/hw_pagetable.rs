// SPDX-License-Identifier: GPL-2.0

//! Which hardware page table a group attaches to: the domain choice of an IOASID.
//!
//! An IOASID is one I/O address space, mirrored into one or more IOMMU domains (upstream
//! iommufd calls them hardware page tables): groups behind the same IOMMU share a domain, and a
//! group that no existing domain accepts (another IOMMU instance, another aperture) gets a new
//! one, into which every mapping of the IOASID is replayed before the group can reach it.
//! [`attach`] makes that choice and attaches the group, or changes nothing.

use kernel::{
    prelude::*,
    sync::Arc, //
};

use crate::{
    io_pagetable::IoPageTable,
    iommu::{
        Attachment,
        DmaOwnership,
        Domain,
        Group,
        PciDev, //
    },
};

/// Attaches `group` (through its device `pdev`, whose DMA ownership is `ownership`) to a domain
/// of `iopt`: the first existing one that accepts it, else a new one, made to enforce cache
/// coherency if `coherent`, given an MSI cookie at `sw_msi` if the IOMMU wants one, and holding
/// every mapping of `iopt`. On failure `iopt` is as it was.
///
/// Errors: `ERANGE` if a mapping lies outside a new domain's aperture; `EMEDIUMTYPE` if the new
/// domain cannot enforce coherency; `ENOMEM`; errors of the IOMMU driver.
pub(crate) fn attach(
    iopt: &mut IoPageTable,
    group: &Group,
    pdev: &PciDev,
    ownership: &DmaOwnership,
    coherent: bool,
    sw_msi: Option<u64>,
) -> Result<Attachment> {
    for d in iopt.domains().iter() {
        if !iopt.fits(Some(d), &[]) {
            continue;
        }
        // A domain of another IOMMU refuses the group; try the next one.
        if let Ok(a) = d.attach(group, ownership) {
            return Ok(a);
        }
    }
    let domain: Arc<Domain> = pdev.alloc_domain()?;
    if !iopt.fits(Some(&domain), &[]) {
        return Err(ERANGE);
    }
    // SAFETY: a new domain: nothing is mapped in it or attached to it yet.
    if coherent && !unsafe { domain.enforce_cache_coherency() } {
        return Err(EMEDIUMTYPE);
    }
    if let Some(base) = sw_msi {
        domain.set_msi_cookie(base)?;
    }
    iopt.add_domain(domain.clone())?;
    match domain.attach(group, ownership) {
        Ok(a) => Ok(a),
        Err(e) => {
            iopt.remove_domain(&domain);
            reblock(&domain, group, ownership);
            Err(e)
        }
    }
}

/// Makes sure `group` is on its blocking domain again after attaching it to `domain` failed,
/// once `domain` was emptied.
///
/// The IOMMU core assumes a driver whose `attach_dev` fails left the device where it was, and
/// does not move it back. virtio-iommu breaks that: it sends the device its ATTACH request and
/// then replays the domain's mappings, and when a replay request fails (an allocation) it
/// returns the error with the endpoint attached, in the device, to `domain` and part of its
/// mappings. Its driver then forgets them (they were in no endpoint's domain, as far as it
/// knew), so freeing `domain` would not remove them, and the device could reach those pages
/// after the IOASID unpinned them. Attaching the now-empty `domain` once more and detaching it
/// replaces whatever a driver left with an empty domain and then the blocking one. A driver
/// that kept its promise sees one harmless attach and detach. If even this attach fails
/// (memory), nothing better can be done here, and the IOMMU driver's own failure stands.
fn reblock(domain: &Arc<Domain>, group: &Group, ownership: &DmaOwnership) {
    if let Ok(attachment) = domain.attach(group, ownership) {
        drop(attachment);
    }
}
