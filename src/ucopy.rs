// SPDX-License-Identifier: GPL-2.0

//! Copying ioctl argument structs from and to user space, by the extension rules.
//!
//! This is the one place where the rules of `include/uapi/linux/ioasid.h` are applied; every
//! ioctl reads its argument through [`UserArg::read`] and answers through [`UserArg::write`]:
//!
//! | what the caller passed                              | result                     |
//! |-----------------------------------------------------|----------------------------|
//! | `argsz` < the struct's first-version size           | `EINVAL`                   |
//! | `argsz` > `IOASID_ARGSZ_MAX`                        | `E2BIG`, nothing read      |
//! | `argsz` < the kernel's size (older caller)          | missing fields read as 0   |
//! | `argsz` > the kernel's size, tail all zero          | accepted                   |
//! | `argsz` > the kernel's size, a nonzero tail byte    | `E2BIG`                    |
//! | an undefined `flags` bit, a nonzero `__reserved`    | `EOPNOTSUPP`               |
//! | an unreadable or unwritable pointer                 | `EFAULT`                   |
//!
//! Output is written only within the caller's `argsz`.

use core::{
    cmp::min,
    marker::PhantomData,
    mem::size_of, //
};
use kernel::{
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use crate::uapi::{
    UserStruct,
    IOASID_ARGSZ_MAX, //
};

/// The user-space location of an ioctl's argument struct, with the size its caller gave.
///
/// # Invariants
///
/// `T::MIN_SIZE <= argsz <= IOASID_ARGSZ_MAX`.
pub(crate) struct UserArg<T: UserStruct> {
    addr: usize,
    argsz: usize,
    _type: PhantomData<T>,
}

impl<T: UserStruct> UserArg<T> {
    /// Reads the argument struct at user address `addr` by the extension rules.
    ///
    /// Returns the location (for [`UserArg::write`]) and the struct as the kernel knows it, with
    /// its `flags` and `__reserved` fields already checked.
    pub(crate) fn read(addr: usize) -> Result<(Self, T)> {
        let argsz = UserSlice::new(UserPtr::from_addr(addr), size_of::<u32>())
            .reader()
            .read::<u32>()?;
        let argsz = usize::try_from(argsz)?;
        if argsz < T::MIN_SIZE {
            return Err(EINVAL);
        }
        if argsz > IOASID_ARGSZ_MAX as usize {
            return Err(E2BIG);
        }

        let mut reader = UserSlice::new(UserPtr::from_addr(addr), argsz).reader();
        let mut value = T::default();
        let known = min(argsz, size_of::<T>());
        reader.read_slice(&mut value.as_bytes_mut()[..known])?;

        // A newer caller: everything this kernel does not know must be zero. The tail is at most
        // `IOASID_ARGSZ_MAX` bytes, read in small chunks.
        let mut chunk = [0u8; 64];
        while !reader.is_empty() {
            let n = min(reader.len(), chunk.len());
            reader.read_slice(&mut chunk[..n])?;
            if chunk[..n].iter().any(|&b| b != 0) {
                return Err(E2BIG);
            }
        }

        if value.flags() & !T::FLAGS != 0 || !value.reserved_is_zero() {
            return Err(EOPNOTSUPP);
        }

        // INVARIANT: `argsz` was checked against both bounds above.
        Ok((
            Self {
                addr,
                argsz,
                _type: PhantomData,
            },
            value,
        ))
    }

    /// Writes `value` back to the caller, within the caller's `argsz`.
    pub(crate) fn write(&self, value: &T) -> Result {
        let n = min(self.argsz, size_of::<T>());
        UserSlice::new(UserPtr::from_addr(self.addr), n)
            .writer()
            .write_slice(&value.as_bytes()[..n])
    }
}
