// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only (built with IOASID_TEST=1 only): count the MSIs of a device bound
 * to the ioasid driver, so that a test can prove an MSI reaches the CPU while
 * the device is attached to an IOASID (on SMMUv3 that needs the MSI cookie of
 * the IOASID's domain; see src/hw_pagetable.rs).
 *
 * debugfs ioasid/test_msi: write "SSSS:BB:DD.F" to allocate one MSI vector of
 * that device (bound to the ioasid driver, enabled) with a counting handler;
 * read it for the count; write "none" to free it. Setting it taints the
 * kernel (TAINT_TEST).
 */
#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/mutex.h>
#include <linux/pci.h>

#include "helpers.h"

static DEFINE_MUTEX(test_msi_lock);
static struct pci_dev *test_msi_pdev;	/* under test_msi_lock */
static atomic_t test_msi_count;
static struct dentry *test_msi_file;

static irqreturn_t test_msi_handler(int irq, void *data)
{
	atomic_inc(&test_msi_count);
	return IRQ_HANDLED;
}

static void test_msi_free_locked(void)
{
	if (!test_msi_pdev)
		return;
	free_irq(pci_irq_vector(test_msi_pdev, 0), &test_msi_count);
	pci_free_irq_vectors(test_msi_pdev);
	pci_dev_put(test_msi_pdev);
	test_msi_pdev = NULL;
}

static int test_msi_set(const char *bdf)
{
	unsigned int seg, bus, dev, fn;
	struct pci_dev *pdev;
	int ret;

	if (sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &dev, &fn) != 4 || dev > 31 || fn > 7)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(seg, bus, PCI_DEVFN(dev, fn));
	if (!pdev)
		return -ENODEV;
	if (!pdev->dev.driver || strcmp(pdev->dev.driver->name, "ioasid")) {
		pci_dev_put(pdev);
		return -ENXIO;
	}
	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (ret < 0) {
		pci_dev_put(pdev);
		return ret;
	}
	ret = request_irq(pci_irq_vector(pdev, 0), test_msi_handler, 0, "ioasid-test-msi",
			  &test_msi_count);
	if (ret) {
		pci_free_irq_vectors(pdev);
		pci_dev_put(pdev);
		return ret;
	}
	add_taint(TAINT_TEST, LOCKDEP_STILL_OK);
	atomic_set(&test_msi_count, 0);
	test_msi_pdev = pdev;
	return 0;
}

static ssize_t test_msi_write(struct file *file, const char __user *ubuf, size_t len,
			      loff_t *ppos)
{
	char buf[32];
	int ret = 0;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	strim(buf);
	mutex_lock(&test_msi_lock);
	test_msi_free_locked();
	if (strcmp(buf, "none"))
		ret = test_msi_set(buf);
	mutex_unlock(&test_msi_lock);
	return ret ? ret : len;
}

static ssize_t test_msi_read(struct file *file, char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[24];
	int n = scnprintf(buf, sizeof(buf), "%d\n", atomic_read(&test_msi_count));

	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations test_msi_fops = {
	.owner = THIS_MODULE,
	.read = test_msi_read,
	.write = test_msi_write,
	.llseek = default_llseek,
};

void ioasid_test_msi_init(void)
{
	struct dentry *dir = debugfs_lookup("ioasid", NULL);

	if (IS_ERR_OR_NULL(dir))
		return;
	test_msi_file = debugfs_create_file("test_msi", 0600, dir, NULL, &test_msi_fops);
	dput(dir);
}

/* The device is leaving the ioasid driver: its vector must go first. */
void ioasid_test_msi_forget(struct pci_dev *pdev)
{
	mutex_lock(&test_msi_lock);
	if (test_msi_pdev == pdev)
		test_msi_free_locked();
	mutex_unlock(&test_msi_lock);
}

void ioasid_test_msi_exit(void)
{
	debugfs_remove(test_msi_file);
	mutex_lock(&test_msi_lock);
	test_msi_free_locked();
	mutex_unlock(&test_msi_lock);
}
