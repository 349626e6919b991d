/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C functions of ioasid.ko that its Rust code calls, or that call it:
 * static inlines and macros the Rust bindings do not export (src/helpers.c),
 * the PCI driver glue (src/pci_driver.c) and the test-only MSI counter
 * (src/test_msi.c).
 */
#ifndef IOASID_HELPERS_H
#define IOASID_HELPERS_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/types.h>

struct mm_struct;
struct page;
struct pci_dev;
struct iommu_group;

unsigned long ioasid_page_to_pfn(struct page *page);
struct page *ioasid_pfn_to_page(unsigned long pfn);
unsigned long ioasid_totalram_pages(void);
struct folio;
unsigned long ioasid_folio_pfn(struct folio *folio);
unsigned long ioasid_folio_nr_pages(struct folio *folio);
struct page *ioasid_folio_page(struct folio *folio, unsigned long n);
void ioasid_init_list_head(struct list_head *list);
void ioasid_cond_resched(void);
void ioasid_group_clear_master(struct iommu_group *group);
/*
 * Whether another function of @pdev's slot is in another IOMMU group although
 * no ACS separates the two: the IOMMU core groups such functions together,
 * except a function hot-added by a rescan, which it probes before it marks the
 * slot multi-function; then @pdev's group is not the unit of isolation.
 */
bool ioasid_pci_slot_split(struct pci_dev *pdev);
int ioasid_page_refcount(struct page *page);
struct file;
/*
 * A writer's hold on a shmem or hugetlbfs @file (a reference, and a count of
 * its mapping's i_mmap_writable, as a shared writable mmap() holds): -EPERM if
 * it is sealed against writes, append-only or immutable. Released by
 * ioasid_file_writer_put().
 */
int ioasid_file_writer_get(struct file *file);
void ioasid_file_writer_put(struct file *file);
unsigned long ioasid_folio_index(struct folio *folio);
/*
 * Faults in [@start, @start + @len) of the current task's memory, for writing
 * if @write, through fixup_user_fault() (nothing is read or written); stops at
 * the first page that cannot be, and returns its error.
 */
int ioasid_fault_in(unsigned long start, size_t len, bool write);

/* src/pci_driver.c: the ioasid PCI driver (its Rust half is src/driver.rs). */
int ioasid_pci_driver_register(void);
void ioasid_pci_driver_unregister(void);
void *ioasid_pci_driver_data(struct pci_dev *pdev);
void ioasid_pci_set_driver_data(struct pci_dev *pdev, void *data);
void ioasid_device_lock(struct pci_dev *pdev);
void ioasid_device_unlock(struct pci_dev *pdev);
int ioasid_driver_probe(struct pci_dev *pdev);
void ioasid_driver_remove(struct pci_dev *pdev);

/* src/test_msi.c, in test builds only. */
void ioasid_test_msi_init(void);
void ioasid_test_msi_forget(struct pci_dev *pdev);
void ioasid_test_msi_exit(void);

struct user_struct;
/* get_current_user(): the current task's user, with a reference (free_uid()). */
struct user_struct *ioasid_get_current_user(void);
/* &user->locked_vm: the user's pages charged against RLIMIT_MEMLOCK. */
atomic_long_t *ioasid_user_locked_vm(struct user_struct *user);
/* &mm->pinned_vm: VmPin in /proc/<pid>/status. */
atomic64_t *ioasid_mm_pinned_vm(struct mm_struct *mm);
/* rlimit(): the current task's soft limit. */
unsigned long ioasid_rlimit(unsigned int limit);
bool ioasid_fatal_signal_pending(void);

#endif
