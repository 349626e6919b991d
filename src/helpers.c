// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for ioasid.ko: the static inlines and macros its Rust code needs
 * and the kernel's Rust bindings do not export.
 */
#include <linux/cred.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/pci.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>

#include "helpers.h"

/* The per-user counter of pinned pages exists only with one of its users. */
#if !(defined(CONFIG_NET) || defined(CONFIG_IO_URING) || \
      defined(CONFIG_VFIO_PCI_ZDEV_KVM) || IS_ENABLED(CONFIG_IOMMUFD) || \
      defined(CONFIG_SECRETMEM))
#error "ioasid charges pinned memory to user_struct::locked_vm, which needs CONFIG_NET, CONFIG_IO_URING or CONFIG_IOMMUFD"
#endif

unsigned long ioasid_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

struct page *ioasid_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long ioasid_folio_pfn(struct folio *folio)
{
	return folio_pfn(folio);
}

unsigned long ioasid_folio_nr_pages(struct folio *folio)
{
	return folio_nr_pages(folio);
}

struct page *ioasid_folio_page(struct folio *folio, unsigned long n)
{
	return folio_page(folio, n);
}

unsigned long ioasid_totalram_pages(void)
{
	return totalram_pages();
}

void ioasid_init_list_head(struct list_head *list)
{
	INIT_LIST_HEAD(list);
}

void ioasid_cond_resched(void)
{
	cond_resched();
}

/*
 * Endpoints only: a PCI-to-PCI bridge in the group (devices behind a
 * conventional bridge alias to it) is the kernel's, and clearing its bus
 * mastering would stop it forwarding its devices' DMA for good.
 */
static int ioasid_clear_master_one(struct device *dev, void *data)
{
	if (dev_is_pci(dev) && !pci_is_bridge(to_pci_dev(dev)))
		pci_clear_master(to_pci_dev(dev));
	return 0;
}

void ioasid_group_clear_master(struct iommu_group *group)
{
	iommu_group_for_each_dev(group, NULL, ioasid_clear_master_one);
}

struct user_struct *ioasid_get_current_user(void)
{
	return get_current_user();
}

atomic_long_t *ioasid_user_locked_vm(struct user_struct *user)
{
	return &user->locked_vm;
}

atomic64_t *ioasid_mm_pinned_vm(struct mm_struct *mm)
{
	return &mm->pinned_vm;
}

unsigned long ioasid_rlimit(unsigned int limit)
{
	return rlimit(limit);
}

bool ioasid_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}
