// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for ioasid.ko: the static inlines and macros its Rust code needs
 * and the kernel's Rust bindings do not export.
 */
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/pci.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/sched.h>

#include "helpers.h"

phys_addr_t ioasid_page_to_phys(struct page *page)
{
	return page_to_phys(page);
}

void ioasid_init_list_head(struct list_head *list)
{
	INIT_LIST_HEAD(list);
}

void ioasid_cond_resched(void)
{
	cond_resched();
}

static int ioasid_clear_master_one(struct device *dev, void *data)
{
	if (dev_is_pci(dev))
		pci_clear_master(to_pci_dev(dev));
	return 0;
}

void ioasid_group_clear_master(struct iommu_group *group)
{
	iommu_group_for_each_dev(group, NULL, ioasid_clear_master_one);
}
