/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * /dev/ioasid: user-owned I/O address spaces.
 *
 * This header is the single source of truth for the binary interface; the
 * module's Rust mirror (src/uapi.rs) is checked against it by a test, and
 * Documentation/userspace-api/ioasid.rst explains the semantics.
 *
 * Every ioctl takes a pointer to a struct that begins with
 *
 *	__u32 argsz;	size of the struct as the caller knows it
 *	__u32 flags;	request flags, IOASID_<CMD>_* bits
 *
 * and is numbered _IO(IOASID_TYPE, nr): the size is not part of the number,
 * so a struct can grow without a new ioctl. The extension rules, applied
 * the same way by every ioctl:
 *
 *  - argsz below the size of the struct's first version (the "minimum
 *    size" given with each struct): EINVAL.
 *  - argsz between the minimum and the kernel's size (an older caller):
 *    the fields the caller does not know read as zero.
 *  - argsz above the kernel's size (a newer caller): accepted only if
 *    every byte the kernel does not know is zero, else E2BIG. argsz above
 *    IOASID_ARGSZ_MAX is E2BIG without looking at the bytes.
 *  - a flags bit the kernel does not define, or a nonzero __reserved
 *    field: EOPNOTSUPP.
 *  - output fields are written only within the caller's argsz.
 *  - a pointer that cannot be read or written: EFAULT.
 *  - an ioctl number the kernel does not define: ENOTTY.
 *
 * New fields are only ever added at the end of a struct, or in place of a
 * __reserved field (which callers must set to zero), and always come with a
 * new flags bit or capability bit that says they are there.
 *
 * All fields have fixed widths and explicit padding, user addresses are
 * __u64, and no struct contains a pointer or a long: 32-bit and 64-bit
 * callers use the same layout, and compat_ioctl takes the same path.
 */
#ifndef _UAPI_LINUX_IOASID_H
#define _UAPI_LINUX_IOASID_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define IOASID_TYPE		'?'

/* The uAPI version reported by IOASID_GET_INFO. */
#define IOASID_API_VERSION	1

/* The largest argsz any ioctl accepts; larger is E2BIG. */
#define IOASID_ARGSZ_MAX	4096

/* IDs of IOASIDs are in [1, IOASID_ID_MAX]; 0 never names an object. */
#define IOASID_ID_MAX		0x7fffffff

enum {
	IOASID_CMD_GET_INFO = 0x00,
	IOASID_CMD_ALLOC = 0x01,
	IOASID_CMD_FREE = 0x02,
	IOASID_CMD_DEVICE_BIND = 0x03,
	IOASID_CMD_DEVICE_UNBIND = 0x04,
	IOASID_CMD_DEVICE_ATTACH = 0x05,
	IOASID_CMD_DEVICE_DETACH = 0x06,
	IOASID_CMD_MAP = 0x07,
	IOASID_CMD_UNMAP = 0x08,
	IOASID_CMD_IOVA_RANGES = 0x09,
	IOASID_CMD_DEVICE_GET_INFO = 0x0a,
	IOASID_CMD_GET_COHERENCY = 0x0b,
	IOASID_CMD_EXECUTE_WBINVD = 0x0c,
	IOASID_CMD_MAP_FILE = 0x0d,
};

/* Capabilities reported by IOASID_GET_INFO in out_capabilities. */
enum ioasid_capability {
	/* IOASID_ALLOC and IOASID_FREE. */
	IOASID_CAP_IOASID = 1 << 0,
	/* IOASID_DEVICE_BIND, _UNBIND, _ATTACH, _DETACH and _GET_INFO. */
	IOASID_CAP_DEVICE = 1 << 1,
	/* IOASID_MAP, IOASID_UNMAP and IOASID_IOVA_RANGES. */
	IOASID_CAP_DMA = 1 << 2,
	/*
	 * The cache coherency model: IOASID_ALLOC_COHERENT, the device
	 * capabilities IOASID_DEVICE_CAP_ENFORCE_COHERENCY and
	 * IOASID_DEVICE_CAP_COHERENT_ONLY, IOASID_GET_COHERENCY and
	 * IOASID_EXECUTE_WBINVD.
	 */
	IOASID_CAP_COHERENCY = 1 << 3,
	/* IOASID_MAP_FILE. */
	IOASID_CAP_MAP_FILE = 1 << 4,
};

/**
 * struct ioasid_info - ioctl(IOASID_GET_INFO)
 * @argsz: sizeof(struct ioasid_info); minimum 24
 * @flags: no flags are defined; must be 0
 * @out_api_version: IOASID_API_VERSION
 * @__reserved: must be 0
 * @out_capabilities: bitmap of enum ioasid_capability: the features this
 *	kernel supports. A feature that is not reported is absent, not
 *	partially present: a VMM checks here before it starts.
 *
 * Reports the uAPI version and the features of the running module. Works on
 * any open /dev/ioasid, before anything else is done with it.
 *
 * Errors: the common ones only (EINVAL, E2BIG, EOPNOTSUPP, EFAULT).
 */
struct ioasid_info {
	__u32 argsz;
	__u32 flags;
	__u32 out_api_version;
	__u32 __reserved;
	__aligned_u64 out_capabilities;
};
#define IOASID_GET_INFO		_IO(IOASID_TYPE, IOASID_CMD_GET_INFO)

/* Flags of IOASID_ALLOC. */
enum ioasid_alloc_flags {
	/*
	 * A coherent IOASID: every mapping is made cache-coherent
	 * (IOMMU_CACHE) and its IOMMU domains block no-snoop DMA, so no
	 * device attached to it can make WBINVD necessary. Only devices whose
	 * IOMMU can enforce this (IOASID_DEVICE_CAP_ENFORCE_COHERENCY) can be
	 * attached to it.
	 */
	IOASID_ALLOC_COHERENT = 1 << 0,
};

/**
 * struct ioasid_alloc - ioctl(IOASID_ALLOC)
 * @argsz: sizeof(struct ioasid_alloc); minimum 12
 * @flags: enum ioasid_alloc_flags
 * @out_ioasid: the ID of the new IOASID
 * @__reserved: must be 0
 *
 * Creates an empty I/O address space in this context and returns its ID.
 * IDs are allocated cyclically from [1, IOASID_ID_MAX]: a freed ID is not
 * handed out again until the allocator has gone through every other ID.
 * Without IOASID_ALLOC_COHERENT the IOASID is non-coherent: any device can
 * be attached, and a device that may emit no-snoop DMA makes WBINVD needed
 * (see IOASID_GET_COHERENCY).
 *
 * Errors: the common ones, and
 *  ENOSPC: every ID is in use in this context.
 *  ENOMEM: out of memory (charged to the caller's memory cgroup).
 */
struct ioasid_alloc {
	__u32 argsz;
	__u32 flags;
	__u32 out_ioasid;
	__u32 __reserved;
};
#define IOASID_ALLOC		_IO(IOASID_TYPE, IOASID_CMD_ALLOC)

/**
 * struct ioasid_free - ioctl(IOASID_FREE)
 * @argsz: sizeof(struct ioasid_free); minimum 12
 * @flags: no flags are defined; must be 0
 * @ioasid: the IOASID to free
 * @__reserved: must be 0
 *
 * Frees an IOASID. From the moment this returns, the ID no longer names
 * anything for user space: every later use of it fails with ENOENT. If the
 * IOASID still has users inside the kernel (devices attached to it), DMA
 * through it is blocked now and its ID stays reserved ("parked") until the
 * last of them lets go; only then can the ID be allocated again.
 *
 * Errors: the common ones, and
 *  ENOENT: @ioasid does not name a live IOASID of this context (never
 *	allocated, already freed, or belonging to another context).
 */
struct ioasid_free {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__u32 __reserved;
};
#define IOASID_FREE		_IO(IOASID_TYPE, IOASID_CMD_FREE)

/**
 * struct ioasid_device_bind - ioctl(IOASID_DEVICE_BIND)
 * @argsz: sizeof(struct ioasid_device_bind); minimum 24
 * @flags: no flags are defined; must be 0
 * @pci_segment: the PCI segment (domain) of the device
 * @pci_bus: its bus number
 * @pci_devfn: its device and function, PCI_DEVFN(slot, function)
 * @__reserved: must be 0
 * @out_dev_id: the ID of the bound device in this context
 * @out_group_id: the number of the device's IOMMU group, as in
 *	/sys/kernel/iommu_groups/
 *
 * Binds a PCI device to this context and claims its DMA ownership: from now
 * on no kernel driver and no other context can use the device, or any
 * device of its IOMMU group, until it is unbound, removed or the context is
 * closed. The device must have been handed to the "ioasid" PCI driver by the
 * administrator (driver_override, as for vfio-pci). The group's DMA is
 * blocked until a device of it is attached to an IOASID. Needs CAP_SYS_ADMIN
 * at call time.
 *
 * Errors: the common ones, and
 *  EPERM: the caller lacks CAP_SYS_ADMIN; or the IOMMU cannot isolate the
 *	device's MSIs (no interrupt remapping) and the module was not loaded
 *	with allow_unsafe_interrupts=1; or the device's IOMMU group lacks a
 *	function of its slot that no ACS separates from it (a function
 *	hot-added by a PCI rescan gets a group of its own), so the group
 *	cannot isolate it.
 *  ENODEV: there is no such PCI device, it is not behind an IOMMU, or it is
 *	being removed.
 *  ENXIO: the device has no driver: it was not handed to the ioasid driver.
 *  EEXIST: the device is already bound in this context.
 *  EBUSY: another driver than ioasid is bound to the device, a kernel
 *	driver uses a device of its group, or another context has the device
 *	or its group.
 *  ENOSPC, ENOMEM: as for IOASID_ALLOC.
 */
struct ioasid_device_bind {
	__u32 argsz;
	__u32 flags;
	__u32 pci_segment;
	__u8 pci_bus;
	__u8 pci_devfn;
	__u16 __reserved;
	__u32 out_dev_id;
	__u32 out_group_id;
};
#define IOASID_DEVICE_BIND	_IO(IOASID_TYPE, IOASID_CMD_DEVICE_BIND)

/**
 * struct ioasid_device_unbind - ioctl(IOASID_DEVICE_UNBIND)
 * @argsz: sizeof(struct ioasid_device_unbind); minimum 12
 * @flags: no flags are defined; must be 0
 * @dev_id: the device to unbind
 * @__reserved: must be 0
 *
 * Detaches the device if it is attached (the last attached device of its
 * group blocks the group's DMA), clears its bus mastering and resets it
 * where possible, releases its DMA ownership and the ioasid driver's claim,
 * and frees its ID. On a device that was removed (on which the other device
 * ioctls fail with ENODEV) it only frees the ID, and succeeds.
 *
 * Errors: the common ones, and
 *  ENOENT: @dev_id is not a device bound in this context.
 */
struct ioasid_device_unbind {
	__u32 argsz;
	__u32 flags;
	__u32 dev_id;
	__u32 __reserved;
};
#define IOASID_DEVICE_UNBIND	_IO(IOASID_TYPE, IOASID_CMD_DEVICE_UNBIND)

/**
 * struct ioasid_device_attach - ioctl(IOASID_DEVICE_ATTACH)
 * @argsz: sizeof(struct ioasid_device_attach); minimum 16
 * @flags: no flags are defined; must be 0
 * @dev_id: the device to attach
 * @ioasid: the IOASID to attach it to
 *
 * Makes the device's DMA go through the IOASID. The IOMMU group is the unit
 * of isolation: attaching the first device of a group attaches the whole
 * group, and every device of the group bound in this context must be
 * attached to the same IOASID. The IOASID gets an IOMMU domain for the
 * device's IOMMU (shared by all compatible devices), into which every
 * existing mapping is replayed before the device can use it.
 *
 * Errors: the common ones, and
 *  ENOENT: @dev_id or @ioasid does not name a live object of this context.
 *  ENODEV: the device was removed.
 *  EBUSY: the device is attached already.
 *  EXDEV: another device of its IOMMU group is attached to another IOASID.
 *  ERANGE: an existing mapping of the IOASID lies outside the IOVAs the
 *	device can use (its IOMMU's aperture, the reserved regions of its
 *	IOMMU group).
 *  EMEDIUMTYPE: @ioasid is coherent (IOASID_ALLOC_COHERENT) and the
 *	device's IOMMU cannot block its no-snoop DMA (the device lacks
 *	IOASID_DEVICE_CAP_ENFORCE_COHERENCY). Nothing was changed.
 *  ENOMEM: out of memory.
 */
struct ioasid_device_attach {
	__u32 argsz;
	__u32 flags;
	__u32 dev_id;
	__u32 ioasid;
};
#define IOASID_DEVICE_ATTACH	_IO(IOASID_TYPE, IOASID_CMD_DEVICE_ATTACH)

/**
 * struct ioasid_device_detach - ioctl(IOASID_DEVICE_DETACH)
 * @argsz: sizeof(struct ioasid_device_detach); minimum 12
 * @flags: no flags are defined; must be 0
 * @dev_id: the device to detach
 * @__reserved: must be 0
 *
 * Detaches the device from its IOASID. When the last device of its group
 * is detached, the group's DMA is blocked.
 *
 * Errors: the common ones, and
 *  ENOENT: @dev_id is not a device bound in this context.
 *  ENODEV: the device was removed.
 *  EINVAL: the device is not attached.
 */
struct ioasid_device_detach {
	__u32 argsz;
	__u32 flags;
	__u32 dev_id;
	__u32 __reserved;
};
#define IOASID_DEVICE_DETACH	_IO(IOASID_TYPE, IOASID_CMD_DEVICE_DETACH)

/* Flags of IOASID_MAP. */
enum ioasid_map_flags {
	/* The device may read the memory. */
	IOASID_MAP_READ = 1 << 0,
	/* The device may write the memory. */
	IOASID_MAP_WRITE = 1 << 1,
	/* Map at @iova; without it the kernel picks the IOVA. */
	IOASID_MAP_FIXED_IOVA = 1 << 2,
};

/**
 * struct ioasid_map - ioctl(IOASID_MAP)
 * @argsz: sizeof(struct ioasid_map); minimum 40
 * @flags: enum ioasid_map_flags; IOASID_MAP_READ, IOASID_MAP_WRITE or both
 * @ioasid: the IOASID to map into
 * @__reserved: must be 0
 * @user_va: the start of the memory to map, page aligned
 * @length: its length in bytes, a nonzero multiple of the page size
 * @iova: with IOASID_MAP_FIXED_IOVA the IOVA to map at (page aligned);
 *	otherwise the IOVA the kernel chose, on return
 *
 * Pins the memory and maps it into every IOMMU domain of the IOASID. The
 * pinning holds no lock other ioctls on the IOASID need; the range is placed
 * again after it.
 * Pinned memory is charged to the caller's locked memory (RLIMIT_MEMLOCK)
 * unless the caller has CAP_IPC_LOCK. Physically contiguous memory is
 * mapped with the largest page sizes the IOMMU supports. If @iova cannot be
 * written back (EFAULT), exactly the mapping this call made is undone.
 *
 * Errors: the common ones, and
 *  ENOENT: @ioasid does not name a live IOASID of this context.
 *  EINVAL: neither IOASID_MAP_READ nor IOASID_MAP_WRITE, a zero length, an
 *	unaligned address or length, or a range (@user_va or a fixed @iova,
 *	plus @length) that wraps around the end of the 64-bit space.
 *  EEXIST: the IOVA range overlaps an existing mapping.
 *  ERANGE: the IOVA range is not usable: outside an attached device's
 *	IOMMU aperture, or in the reserved regions of its IOMMU group
 *	(IOASID_IOVA_RANGES).
 *  ENOSPC: no free IOVA range is large enough (kernel-chosen IOVA), which
 *	includes a @length that overflows 64 bits when the IOVA alignment
 *	less one page is added.
 *  EFAULT: the memory cannot be pinned (not mapped, not writable for
 *	IOASID_MAP_WRITE, or memory no device may pin: DAX, another device's
 *	memory).
 *  ENOMEM: RLIMIT_MEMLOCK would be exceeded, out of memory, or a page of
 *	the range is pinned so often already (mapped many times over) that
 *	one more pin could overflow its reference count.
 *  EINTR: a fatal signal arrived while the memory was being pinned.
 */
struct ioasid_map {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__u32 __reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOASID_MAP		_IO(IOASID_TYPE, IOASID_CMD_MAP)

/**
 * struct ioasid_map_file - ioctl(IOASID_MAP_FILE)
 * @argsz: sizeof(struct ioasid_map_file); minimum 40
 * @flags: enum ioasid_map_flags, as for IOASID_MAP
 * @ioasid: the IOASID to map into
 * @fd: a memfd (memfd_create(), with or without MFD_HUGETLB) or another
 *	shmem or hugetlbfs file
 * @start: the offset in the file of the memory to map, page aligned
 * @length: its length in bytes, a nonzero multiple of the page size; the
 *	range must lie within the file's size
 * @iova: as for IOASID_MAP
 *
 * Pins the pages of the file in [@start, @start + @length) (allocating
 * those it does not have yet) and maps them as IOASID_MAP does. Nothing
 * here goes through the caller's page tables: the file need not be mapped,
 * and the mapping stays as it is when the caller unmaps the memory, execs,
 * exits or passes the /dev/ioasid descriptor on. The pinned pages are
 * charged to the caller's user (RLIMIT_MEMLOCK, unless CAP_IPC_LOCK) until
 * they are unmapped, as for IOASID_MAP.
 *
 * @fd must be open for reading (the device reads what it maps). With
 * IOASID_MAP_WRITE the device writes the file: @fd must be open for
 * writing too, and the file not sealed against writes (F_SEAL_WRITE or
 * F_SEAL_FUTURE_WRITE), append-only or immutable; from the start of the
 * call until it is unmapped, adding F_SEAL_WRITE to the file fails with
 * EBUSY, as while a shared writable mmap() of it exists. A read-only
 * mapping holds pinned pages, for which F_SEAL_WRITE waits and then fails
 * with EBUSY too. A later truncation or hole punch of a mapped range
 * takes the pages out of the file but not out of the IOASID: the device
 * keeps reading and writing the pinned pages the mapping holds, which the
 * file no longer shows; they are freed when the mapping is unmapped.
 *
 * Errors: the common ones, and
 *  ENOENT, EEXIST, ERANGE, EINTR: as for IOASID_MAP.
 *  ENOMEM: as for IOASID_MAP, or no huge page is left in the hugetlb pool
 *	for a page the range did not have yet.
 *  EINVAL: as for IOASID_MAP (with @start for @user_va), a file that is
 *	neither shmem nor hugetlbfs, or a range that ends past the end of the
 *	file.
 *  ENOSPC: as for IOASID_MAP, or a tmpfs has no room (or the caller's
 *	quota none) for a page the range did not have yet.
 *  EBADF: @fd is not an open file descriptor, it is not open for reading,
 *	or it is not open for writing and IOASID_MAP_WRITE was asked for.
 *  EPERM: IOASID_MAP_WRITE on a file sealed against writes, append-only
 *	or immutable.
 *  EFAULT: also: a page of the file could not be read in (an I/O error).
 */
struct ioasid_map_file {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__s32 fd;
	__aligned_u64 start;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOASID_MAP_FILE		_IO(IOASID_TYPE, IOASID_CMD_MAP_FILE)

/* Flags of IOASID_UNMAP. */
enum ioasid_unmap_flags {
	/* Unmap everything; @iova and @length must be 0. */
	IOASID_UNMAP_ALL = 1 << 0,
};

/**
 * struct ioasid_unmap - ioctl(IOASID_UNMAP)
 * @argsz: sizeof(struct ioasid_unmap); minimum 40
 * @flags: enum ioasid_unmap_flags
 * @ioasid: the IOASID to unmap from
 * @__reserved: must be 0
 * @iova: the start of the range to unmap
 * @length: its length in bytes
 * @out_unmapped: the number of bytes unmapped
 *
 * Unmaps every mapping inside the range; the range must not cut a mapping.
 * The IOTLB is flushed before the pages are unpinned and uncharged. If the
 * IOMMU driver unmaps less than asked, the pages of that mapping stay
 * pinned until no device can reach them any more, i.e. until the domain
 * that may still hold them has no group attached (the kernel logs a
 * warning once).
 *
 * Errors: the common ones, and
 *  ENOENT: @ioasid does not name a live IOASID of this context, or the
 *	range holds no mapping.
 *  EINVAL: a zero length, an unaligned or wrapping range, a range that cuts
 *	a mapping, or nonzero @iova or @length with IOASID_UNMAP_ALL.
 */
struct ioasid_unmap {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__u32 __reserved;
	__aligned_u64 iova;
	__aligned_u64 length;
	__aligned_u64 out_unmapped;
};
#define IOASID_UNMAP		_IO(IOASID_TYPE, IOASID_CMD_UNMAP)

/* A range of IOVAs, both ends inclusive. */
struct ioasid_iova_range {
	__aligned_u64 start;
	__aligned_u64 last;
};

/**
 * struct ioasid_iova_ranges - ioctl(IOASID_IOVA_RANGES)
 * @argsz: sizeof(struct ioasid_iova_ranges); minimum 32
 * @flags: no flags are defined; must be 0
 * @ioasid: the IOASID to query
 * @num_ranges: in: how many struct ioasid_iova_range fit at @ranges_uptr;
 *	out: how many usable ranges there are, of which the first
 *	min(in, out) are written
 * @ranges_uptr: user address of an array of struct ioasid_iova_range
 * @out_pgsize_bitmap: the page sizes every domain of the IOASID supports,
 *	one bit per size; 0 while no device is attached
 *
 * Reports the IOVA ranges that can be mapped, given the devices attached
 * now: the intersection of their IOMMUs' apertures, minus the reserved
 * regions of their IOMMU groups (such as the MSI window). With no device
 * attached, all of the 64-bit space is reported; attaching a device later
 * fails with ERANGE if a mapping lies outside what it can use.
 *
 * Errors: the common ones, and
 *  ENOENT: @ioasid does not name a live IOASID of this context.
 *  EMSGSIZE: there are more than @num_ranges ranges; the first @num_ranges
 *	were written and @num_ranges holds the total (exactly when the total
 *	is larger than @num_ranges; there is no other limit).
 *  ENOMEM: out of memory.
 */
struct ioasid_iova_ranges {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__u32 num_ranges;
	__aligned_u64 ranges_uptr;
	__aligned_u64 out_pgsize_bitmap;
};
#define IOASID_IOVA_RANGES	_IO(IOASID_TYPE, IOASID_CMD_IOVA_RANGES)

/* IOMMU capabilities of a device, in ioasid_device_info.out_capabilities. */
enum ioasid_device_capability {
	/* The IOMMU keeps the device's DMA cache-coherent (IOMMU_CAP_CACHE_COHERENCY). */
	IOASID_DEVICE_CAP_CACHE_COHERENCY = 1 << 0,
	/* The IOMMU isolates the device's MSIs (interrupt remapping). */
	IOASID_DEVICE_CAP_ISOLATED_MSI = 1 << 1,
	/*
	 * The IOMMU can block the device's no-snoop DMA
	 * (IOMMU_CAP_ENFORCE_CACHE_COHERENCY): the device can be attached to a
	 * coherent IOASID.
	 */
	IOASID_DEVICE_CAP_ENFORCE_COHERENCY = 1 << 2,
	/*
	 * The device cannot emit no-snoop DMA: it is not PCI Express (nor
	 * PCI-X), or the Enable No Snoop bit of its PCIe Device Control
	 * register is hardwired to 0. Without this bit the device is "assumed
	 * non-coherent".
	 */
	IOASID_DEVICE_CAP_COHERENT_ONLY = 1 << 3,
};

/**
 * struct ioasid_device_info - ioctl(IOASID_DEVICE_GET_INFO)
 * @argsz: sizeof(struct ioasid_device_info); minimum 56
 * @flags: no flags are defined; must be 0
 * @dev_id: a device bound in this context
 * @num_regions: in: how many struct ioasid_iova_range fit at @regions_uptr;
 *	out: how many reserved regions there are, of which the first
 *	min(in, out) are written
 * @regions_uptr: user address of an array of struct ioasid_iova_range: the
 *	reserved IOVA regions of the device's IOMMU group (such as the MSI
 *	window), which no IOASID it is attached to can map
 * @out_pgsize_bitmap: the page sizes its IOMMU supports, one bit per size
 * @out_aperture_start: the first IOVA its IOMMU can map
 * @out_aperture_last: the last IOVA its IOMMU can map
 * @out_capabilities: enum ioasid_device_capability
 *
 * Reports what the device's IOMMU offers it, before it is attached
 * anywhere: what a VMM needs to lay out a guest's IOVA space.
 *
 * Errors: the common ones, and
 *  ENOENT: @dev_id is not a device bound in this context.
 *  ENODEV: the device was removed.
 *  EMSGSIZE: there are more than @num_regions reserved regions; the first
 *	@num_regions were written and @num_regions holds the total (exactly
 *	when the total is larger than @num_regions; there is no other limit).
 *  ENOMEM: out of memory.
 */
struct ioasid_device_info {
	__u32 argsz;
	__u32 flags;
	__u32 dev_id;
	__u32 num_regions;
	__aligned_u64 regions_uptr;
	__aligned_u64 out_pgsize_bitmap;
	__aligned_u64 out_aperture_start;
	__aligned_u64 out_aperture_last;
	__aligned_u64 out_capabilities;
};
#define IOASID_DEVICE_GET_INFO	_IO(IOASID_TYPE, IOASID_CMD_DEVICE_GET_INFO)

/* Per-IOASID coherency, in ioasid_coherency.out_ioasid_flags. */
enum ioasid_coherency_flags {
	/* A coherent IOASID (IOASID_ALLOC_COHERENT): no-snoop is blocked. */
	IOASID_COHERENCY_ENFORCED = 1 << 0,
	/*
	 * A non-coherent IOASID with at least one IOMMU group attached through
	 * which an assumed non-coherent device was attached: DMA through it may
	 * bypass the CPU caches. The group counts until it is detached or the
	 * IOASID freed.
	 */
	IOASID_COHERENCY_NONCOHERENT_DMA = 1 << 1,
};

/* Whether WBINVD is needed, in ioasid_coherency.out_wbinvd. */
enum ioasid_wbinvd_state {
	/*
	 * No non-coherent IOASID of this context has such a group attached
	 * (IOASID_COHERENCY_NONCOHERENT_DMA): IOASID_EXECUTE_WBINVD does
	 * nothing (ENODATA).
	 */
	IOASID_WBINVD_NOT_NEEDED = 0,
	/* At least one has: IOASID_EXECUTE_WBINVD flushes the caches. */
	IOASID_WBINVD_NEEDED = 1,
	/* The administrator forbade WBINVD (module parameter forbid_wbinvd). */
	IOASID_WBINVD_FORBIDDEN = 2,
	/* The CPU architecture has no WBINVD (anything but x86). */
	IOASID_WBINVD_UNSUPPORTED = 3,
};

/**
 * struct ioasid_coherency - ioctl(IOASID_GET_COHERENCY)
 * @argsz: sizeof(struct ioasid_coherency); minimum 24
 * @flags: no flags are defined; must be 0
 * @ioasid: an IOASID of this context to report on, or 0 for none
 * @out_ioasid_flags: enum ioasid_coherency_flags of @ioasid (0 if @ioasid
 *	is 0)
 * @out_wbinvd: enum ioasid_wbinvd_state of this context
 * @__reserved: must be 0
 *
 * Reports whether an IOASID enforces coherency and whether non-coherent DMA
 * goes through it, and whether WBINVD is needed for this context: exactly
 * what IOASID_EXECUTE_WBINVD and the in-kernel KVM interface act on.
 *
 * Errors: the common ones, and
 *  ENOENT: @ioasid is neither 0 nor a live IOASID of this context.
 */
struct ioasid_coherency {
	__u32 argsz;
	__u32 flags;
	__u32 ioasid;
	__u32 out_ioasid_flags;
	__u32 out_wbinvd;
	__u32 __reserved;
};
#define IOASID_GET_COHERENCY	_IO(IOASID_TYPE, IOASID_CMD_GET_COHERENCY)

/**
 * struct ioasid_wbinvd - ioctl(IOASID_EXECUTE_WBINVD)
 * @argsz: sizeof(struct ioasid_wbinvd); minimum 8
 * @flags: no flags are defined; must be 0
 *
 * Writes back and invalidates the caches of all CPUs (WBINVD on each),
 * but only while WBINVD is needed: while a non-coherent IOASID of this
 * context has an assumed non-coherent device attached (IOASID_WBINVD_NEEDED).
 * A program that owns such a device uses this where a driver would flush
 * around no-snoop DMA.
 *
 * Errors: the common ones, and
 *  ENODATA: WBINVD is not needed (IOASID_WBINVD_NOT_NEEDED); nothing done.
 *  EPERM: the administrator forbade WBINVD (IOASID_WBINVD_FORBIDDEN).
 *  EOPNOTSUPP: the architecture has no WBINVD (IOASID_WBINVD_UNSUPPORTED).
 */
struct ioasid_wbinvd {
	__u32 argsz;
	__u32 flags;
};
#define IOASID_EXECUTE_WBINVD	_IO(IOASID_TYPE, IOASID_CMD_EXECUTE_WBINVD)

#endif /* _UAPI_LINUX_IOASID_H */
