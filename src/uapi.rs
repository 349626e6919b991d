// SPDX-License-Identifier: GPL-2.0

//! The binary interface of `/dev/ioasid`, from `include/uapi/linux/ioasid.h`.
//!
//! The header is the single source of truth: Kbuild runs the kernel's bindgen over it, and the
//! structs and constants here are the generated ones. This file adds what bindgen cannot say:
//! that the structs may be copied from and to user space as bytes, and the properties the shared
//! extension-rule code in [`crate::ucopy`] needs ([`UserStruct`]). Every such property is checked
//! against the generated layout at compile time.

use kernel::{
    ioctl::_IO,
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// The types and constants bindgen generated from `include/uapi/linux/ioasid.h`.
#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod generated {
    include!("uapi_generated.rs");
}

pub(crate) use generated::{
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
    ioasid_wbinvd,
    IOASID_ALLOC_COHERENT,
    IOASID_API_VERSION,
    IOASID_ARGSZ_MAX,
    IOASID_CAP_COHERENCY,
    IOASID_CAP_DEVICE,
    IOASID_CAP_DMA,
    IOASID_CAP_IOASID,
    IOASID_CAP_MAP_FILE,
    IOASID_COHERENCY_ENFORCED,
    IOASID_COHERENCY_NONCOHERENT_DMA,
    IOASID_DEVICE_CAP_CACHE_COHERENCY,
    IOASID_DEVICE_CAP_COHERENT_ONLY,
    IOASID_DEVICE_CAP_ENFORCE_COHERENCY,
    IOASID_DEVICE_CAP_ISOLATED_MSI,
    IOASID_ID_MAX,
    IOASID_MAP_FIXED_IOVA,
    IOASID_MAP_READ,
    IOASID_MAP_WRITE,
    IOASID_UNMAP_ALL,
    IOASID_WBINVD_FORBIDDEN,
    IOASID_WBINVD_NEEDED,
    IOASID_WBINVD_NOT_NEEDED,
    IOASID_WBINVD_UNSUPPORTED, //
};

/// The ioctl type letter, `IOASID_TYPE`.
const IOASID_TYPE: u32 = generated::IOASID_TYPE as u32;

/// `IOASID_GET_INFO`.
pub(crate) const IOASID_GET_INFO: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_GET_INFO);
/// `IOASID_ALLOC`.
pub(crate) const IOASID_ALLOC: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_ALLOC);
/// `IOASID_FREE`.
pub(crate) const IOASID_FREE: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_FREE);
/// `IOASID_DEVICE_BIND`.
pub(crate) const IOASID_DEVICE_BIND: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_DEVICE_BIND);
/// `IOASID_DEVICE_UNBIND`.
pub(crate) const IOASID_DEVICE_UNBIND: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_DEVICE_UNBIND);
/// `IOASID_DEVICE_ATTACH`.
pub(crate) const IOASID_DEVICE_ATTACH: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_DEVICE_ATTACH);
/// `IOASID_DEVICE_DETACH`.
pub(crate) const IOASID_DEVICE_DETACH: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_DEVICE_DETACH);
/// `IOASID_MAP`.
pub(crate) const IOASID_MAP: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_MAP);
/// `IOASID_UNMAP`.
pub(crate) const IOASID_UNMAP: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_UNMAP);
/// `IOASID_DEVICE_GET_INFO`.
pub(crate) const IOASID_DEVICE_GET_INFO: u32 =
    _IO(IOASID_TYPE, generated::IOASID_CMD_DEVICE_GET_INFO);
/// `IOASID_IOVA_RANGES`.
pub(crate) const IOASID_IOVA_RANGES: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_IOVA_RANGES);
/// `IOASID_GET_COHERENCY`.
pub(crate) const IOASID_GET_COHERENCY: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_GET_COHERENCY);
/// `IOASID_EXECUTE_WBINVD`.
pub(crate) const IOASID_EXECUTE_WBINVD: u32 =
    _IO(IOASID_TYPE, generated::IOASID_CMD_EXECUTE_WBINVD);
/// `IOASID_MAP_FILE`.
pub(crate) const IOASID_MAP_FILE: u32 = _IO(IOASID_TYPE, generated::IOASID_CMD_MAP_FILE);

/// An ioctl argument struct: begins with `argsz` and `flags` and obeys the extension rules.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]`, begin with the two `u32` fields `argsz` and `flags` in that
/// order, consist of integer fields only and have no padding bytes. [`user_struct!`] checks all
/// of this at compile time.
pub(crate) unsafe trait UserStruct: FromBytes + AsBytes + Default {
    /// Size of the struct's first version: the smallest `argsz` accepted.
    const MIN_SIZE: usize;

    /// The `flags` bits this module defines for the struct.
    const FLAGS: u32;

    /// The `flags` field.
    fn flags(&self) -> u32;

    /// Whether every `__reserved` field is zero.
    fn reserved_is_zero(&self) -> bool;
}

/// Size of a field of a struct, without a value of the struct.
const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// Implements [`FromBytes`], [`AsBytes`] and [`UserStruct`] for a generated uAPI struct.
///
/// `fields` must list every field of the struct, in order; the compile-time checks below fail if
/// it does not, or if the header ever gains padding or a field this file does not know of.
macro_rules! user_struct {
    (
        $ty:ident,
        fields = [$($field:ident),+],
        min_end = $min_field:ident,
        flags = $flags:expr,
        reserved = [$($res:ident),*] $(,)?
    ) => {
        // SAFETY: the struct is `#[repr(C)]` (generated by bindgen), its fields are integers and
        // it has no padding (checked below), so every bit pattern is a valid value.
        unsafe impl FromBytes for $ty {}
        // SAFETY: as above: no padding, so every byte of a value is initialised.
        unsafe impl AsBytes for $ty {}
        // SAFETY: `#[repr(C)]`, integer fields only, no padding, and `argsz` and `flags` are the
        // first two `u32` fields: all checked below.
        unsafe impl UserStruct for $ty {
            const MIN_SIZE: usize = core::mem::offset_of!($ty, $min_field)
                + field_size(|s: &$ty| &s.$min_field);
            const FLAGS: u32 = $flags;

            fn flags(&self) -> u32 {
                self.flags
            }

            fn reserved_is_zero(&self) -> bool {
                true $(&& self.$res == 0)*
            }
        }
        const _: () = {
            // The listed fields cover the whole struct: no padding, nothing unknown.
            assert!(core::mem::size_of::<$ty>() == 0 $(+ field_size(|s: &$ty| &s.$field))+);
            assert!(core::mem::offset_of!($ty, argsz) == 0);
            assert!(core::mem::offset_of!($ty, flags) == 4);
            assert!(field_size(|s: &$ty| &s.argsz) == 4);
            assert!(field_size(|s: &$ty| &s.flags) == 4);
            assert!(<$ty as UserStruct>::MIN_SIZE <= core::mem::size_of::<$ty>());
            // The same layout for 32-bit and 64-bit callers: a multiple of 8 bytes.
            assert!(core::mem::size_of::<$ty>() % 8 == 0);
        };
    };
}

user_struct!(
    ioasid_info,
    fields = [argsz, flags, out_api_version, __reserved, out_capabilities],
    min_end = out_capabilities,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_alloc,
    fields = [argsz, flags, out_ioasid, __reserved],
    min_end = out_ioasid,
    flags = IOASID_ALLOC_COHERENT,
    reserved = [__reserved],
);

user_struct!(
    ioasid_free,
    fields = [argsz, flags, ioasid, __reserved],
    min_end = ioasid,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_device_bind,
    fields = [
        argsz,
        flags,
        pci_segment,
        pci_bus,
        pci_devfn,
        __reserved,
        out_dev_id,
        out_group_id
    ],
    min_end = out_group_id,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_device_unbind,
    fields = [argsz, flags, dev_id, __reserved],
    min_end = dev_id,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_device_attach,
    fields = [argsz, flags, dev_id, ioasid],
    min_end = ioasid,
    flags = 0,
    reserved = [],
);

user_struct!(
    ioasid_device_detach,
    fields = [argsz, flags, dev_id, __reserved],
    min_end = dev_id,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_map,
    fields = [argsz, flags, ioasid, __reserved, user_va, length, iova],
    min_end = iova,
    flags = IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA,
    reserved = [__reserved],
);

user_struct!(
    ioasid_map_file,
    fields = [argsz, flags, ioasid, fd, start, length, iova],
    min_end = iova,
    flags = IOASID_MAP_READ | IOASID_MAP_WRITE | IOASID_MAP_FIXED_IOVA,
    reserved = [],
);

user_struct!(
    ioasid_unmap,
    fields = [argsz, flags, ioasid, __reserved, iova, length, out_unmapped],
    min_end = out_unmapped,
    flags = IOASID_UNMAP_ALL,
    reserved = [__reserved],
);

user_struct!(
    ioasid_iova_ranges,
    fields = [
        argsz,
        flags,
        ioasid,
        num_ranges,
        ranges_uptr,
        out_pgsize_bitmap
    ],
    min_end = out_pgsize_bitmap,
    flags = 0,
    reserved = [],
);

user_struct!(
    ioasid_device_info,
    fields = [
        argsz,
        flags,
        dev_id,
        num_regions,
        regions_uptr,
        out_pgsize_bitmap,
        out_aperture_start,
        out_aperture_last,
        out_capabilities
    ],
    min_end = out_capabilities,
    flags = 0,
    reserved = [],
);

user_struct!(
    ioasid_coherency,
    fields = [
        argsz,
        flags,
        ioasid,
        out_ioasid_flags,
        out_wbinvd,
        __reserved
    ],
    min_end = __reserved,
    flags = 0,
    reserved = [__reserved],
);

user_struct!(
    ioasid_wbinvd,
    fields = [argsz, flags],
    min_end = flags,
    flags = 0,
    reserved = [],
);

// SAFETY: two `u64`s, `#[repr(C)]`, no padding (checked below): every bit pattern is valid.
unsafe impl FromBytes for ioasid_iova_range {}
// SAFETY: as above: no padding, every byte initialised.
unsafe impl AsBytes for ioasid_iova_range {}
const _: () = assert!(core::mem::size_of::<ioasid_iova_range>() == 16);

// The documented minimum sizes (header and Documentation/userspace-api/ioasid.rst).
const _: () = {
    assert!(<ioasid_info as UserStruct>::MIN_SIZE == 24);
    assert!(<ioasid_alloc as UserStruct>::MIN_SIZE == 12);
    assert!(<ioasid_free as UserStruct>::MIN_SIZE == 12);
    assert!(<ioasid_device_bind as UserStruct>::MIN_SIZE == 24);
    assert!(<ioasid_device_unbind as UserStruct>::MIN_SIZE == 12);
    assert!(<ioasid_device_attach as UserStruct>::MIN_SIZE == 16);
    assert!(<ioasid_device_detach as UserStruct>::MIN_SIZE == 12);
    assert!(<ioasid_map as UserStruct>::MIN_SIZE == 40);
    assert!(<ioasid_map_file as UserStruct>::MIN_SIZE == 40);
    assert!(<ioasid_unmap as UserStruct>::MIN_SIZE == 40);
    assert!(<ioasid_iova_ranges as UserStruct>::MIN_SIZE == 32);
    assert!(<ioasid_device_info as UserStruct>::MIN_SIZE == 56);
    assert!(<ioasid_coherency as UserStruct>::MIN_SIZE == 24);
    assert!(<ioasid_wbinvd as UserStruct>::MIN_SIZE == 8);
};
