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
};

/* Capabilities reported by IOASID_GET_INFO in out_capabilities. */
enum ioasid_capability {
	/* IOASID_ALLOC and IOASID_FREE. */
	IOASID_CAP_IOASID = 1 << 0,
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

/**
 * struct ioasid_alloc - ioctl(IOASID_ALLOC)
 * @argsz: sizeof(struct ioasid_alloc); minimum 12
 * @flags: no flags are defined; must be 0
 * @out_ioasid: the ID of the new IOASID
 * @__reserved: must be 0
 *
 * Creates an empty I/O address space in this context and returns its ID.
 * IDs are allocated cyclically from [1, IOASID_ID_MAX]: a freed ID is not
 * handed out again until the allocator has gone through every other ID.
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

#endif /* _UAPI_LINUX_IOASID_H */
