// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for ioasid.ko: the static inlines and macros its Rust code needs
 * and the kernel's Rust bindings do not export.
 */
#include <linux/cred.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/pagemap.h>
#include <linux/pci.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mm_types.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>
#include <linux/shmem_fs.h>

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

/*
 * Whether ACS isolates @pdev from the other functions of its slot, as the
 * IOMMU core asks when it groups functions (REQ_ACS_FLAGS in
 * drivers/iommu/iommu.c; the capability's unimplemented controls are not
 * required). The PCI core's device-specific ACS quirks are not exported, so a
 * function isolated only by a quirk counts as not isolated here: a refusal,
 * never a missed split.
 */
static bool ioasid_acs_isolated(struct pci_dev *pdev)
{
	u16 flags = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
	int pos = pci_find_ext_capability(pdev, PCI_EXT_CAP_ID_ACS);
	u16 cap = 0, ctrl = 0;

	if (!pos)
		return false;
	pci_read_config_word(pdev, pos + PCI_ACS_CAP, &cap);
	pci_read_config_word(pdev, pos + PCI_ACS_CTRL, &ctrl);
	flags &= cap | PCI_ACS_EC;
	return (ctrl & flags) == flags;
}

bool ioasid_pci_slot_split(struct pci_dev *pdev)
{
	struct iommu_group *group = iommu_group_get(&pdev->dev);
	bool split = false;
	int fn;

	for (fn = 0; fn < 8 && !split; fn++) {
		unsigned int devfn = PCI_DEVFN(PCI_SLOT(pdev->devfn), fn);
		struct iommu_group *other;
		struct pci_dev *sibling;

		if (devfn == pdev->devfn)
			continue;
		sibling = pci_get_slot(pdev->bus, devfn);
		if (!sibling)
			continue;
		if (!ioasid_acs_isolated(pdev) && !ioasid_acs_isolated(sibling)) {
			other = iommu_group_get(&sibling->dev);
			split = other != group;
			iommu_group_put(other);
		}
		pci_dev_put(sibling);
	}
	iommu_group_put(group);
	return split;
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

int ioasid_page_refcount(struct page *page)
{
	return folio_ref_count(page_folio(page));
}

bool ioasid_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

static bool file_write_sealed(struct file *file)
{
	unsigned int seals = 0;

	if (shmem_file(file))
		seals = READ_ONCE(SHMEM_I(file_inode(file))->seals);
#ifdef CONFIG_HUGETLBFS
	else if (is_file_hugepages(file))
		seals = READ_ONCE(HUGETLBFS_I(file_inode(file))->seals);
#endif
	return seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
}

int ioasid_file_writer_get(struct file *file)
{
	struct inode *inode = file_inode(file);

	/* As mmap() refuses a shared writable mapping of such a file. */
	if (IS_APPEND(inode) || IS_IMMUTABLE(inode))
		return -EPERM;
	/*
	 * A shared writable mapping's count: fails once F_SEAL_WRITE is set,
	 * and makes F_ADD_SEALS of it fail with EBUSY until dropped.
	 */
	if (mapping_map_writable(file->f_mapping))
		return -EPERM;
	/* F_SEAL_FUTURE_WRITE refuses new writable mappings only. */
	if (file_write_sealed(file)) {
		mapping_unmap_writable(file->f_mapping);
		return -EPERM;
	}
	get_file(file);
	return 0;
}

void ioasid_file_writer_put(struct file *file)
{
	mapping_unmap_writable(file->f_mapping);
	fput(file);
}

int ioasid_fault_in(unsigned long start, size_t len, bool write)
{
	struct mm_struct *mm = current->mm;
	unsigned long cur, end = start + len;
	bool unlocked = false;
	int ret = 0;

	/*
	 * Through the fault handler only, never by touching the memory: a
	 * load from a device's MMIO mapped into the process can end in an
	 * external abort that no uaccess fixup catches (arm64).
	 */
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	for (cur = start; cur < end; cur += PAGE_SIZE) {
		ret = fixup_user_fault(mm, cur, write ? FAULT_FLAG_WRITE : 0,
				       &unlocked);
		if (ret)
			break;
	}
	mmap_read_unlock(mm);
	return ret;
}

unsigned long ioasid_folio_index(struct folio *folio)
{
	return folio->index;
}
