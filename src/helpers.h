/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of ioasid.ko, called from its Rust code (src/pages.rs,
 * src/iommu.rs): static inlines and macros the Rust bindings do not export.
 */
#ifndef IOASID_HELPERS_H
#define IOASID_HELPERS_H

#include <linux/list.h>
#include <linux/types.h>

struct page;

phys_addr_t ioasid_page_to_phys(struct page *page);
void ioasid_init_list_head(struct list_head *list);

#endif
