/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of ioasid.ko, called from its Rust code (src/pages.rs,
 * src/iommu.rs): static inlines and macros the Rust bindings do not export.
 */
#ifndef IOASID_HELPERS_H
#define IOASID_HELPERS_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/types.h>

struct mm_struct;
struct page;
struct user_struct;

phys_addr_t ioasid_page_to_phys(struct page *page);
void ioasid_init_list_head(struct list_head *list);
/* get_current_user(): the current task's user, with a reference (free_uid()). */
struct user_struct *ioasid_get_current_user(void);
/* &user->locked_vm: the user's pages charged against RLIMIT_MEMLOCK. */
atomic_long_t *ioasid_user_locked_vm(struct user_struct *user);
/* &mm->pinned_vm: VmPin in /proc/<pid>/status. */
atomic64_t *ioasid_mm_pinned_vm(struct mm_struct *mm);
/* rlimit(): the current task's soft limit. */
unsigned long ioasid_rlimit(unsigned int limit);

#endif
