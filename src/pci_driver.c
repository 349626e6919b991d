// SPDX-License-Identifier: GPL-2.0
/*
 * The ioasid PCI driver's registration: the C half of src/driver.rs.
 *
 * ioasid is the driver of the devices user space owns through it, as vfio-pci
 * is for VFIO: an administrator hands a device over with driver_override, and
 * the driver core then keeps every other driver away from it and tells ioasid
 * (remove) before the device goes away. The driver has no ID table, so it only
 * ever binds to devices whose driver_override names it, and it is
 * driver_managed_dma: binding it leaves the device's DMA ownership free for
 * the context that binds the device later. The Rust side (src/driver.rs) does
 * all the work; this file only holds what Rust's PCI abstraction cannot
 * express today (driver_managed_dma, no ID table).
 */
#include <linux/device.h>
#include <linux/pci.h>

#include "helpers.h"

/*
 * The device is enabled (memory and I/O decoding) for as long as it is bound
 * to the driver, as its user-space driver needs; bus mastering stays off until
 * that user-space driver turns it on, and is turned off again on release.
 */
static int ioasid_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int ret;

	/*
	 * Endpoints only, as vfio-pci: a bridge's bus mastering gates the DMA of
	 * every device below it, which other contexts or kernel drivers may own.
	 */
	if (pdev->hdr_type != PCI_HEADER_TYPE_NORMAL)
		return -EINVAL;
	ret = pci_enable_device(pdev);
	if (ret)
		return ret;
	pci_clear_master(pdev);
	ret = ioasid_driver_probe(pdev);
	if (ret)
		pci_disable_device(pdev);
	return ret;
}

static void ioasid_pci_remove(struct pci_dev *pdev)
{
	ioasid_driver_remove(pdev);
	pci_disable_device(pdev);
}

/*
 * A function reset comes from ioasid itself (src/iommu.rs, PciDev::quiesce),
 * or from sysfs while user space owns the device: there is no kernel state to
 * save or restore around it. Having the handlers also tells the PCI core that
 * the driver expects resets (it warns at each reset of a driver without them).
 */
static void ioasid_pci_reset_prepare(struct pci_dev *pdev)
{
}

static void ioasid_pci_reset_done(struct pci_dev *pdev)
{
}

static const struct pci_error_handlers ioasid_pci_err_handlers = {
	.reset_prepare = ioasid_pci_reset_prepare,
	.reset_done = ioasid_pci_reset_done,
};

static struct pci_driver ioasid_pci_driver = {
	.name = "ioasid",
	.probe = ioasid_pci_probe,
	.remove = ioasid_pci_remove,
	.err_handler = &ioasid_pci_err_handlers,
	.driver_managed_dma = true,
};

int ioasid_pci_driver_register(void)
{
	return pci_register_driver(&ioasid_pci_driver);
}

void ioasid_pci_driver_unregister(void)
{
	pci_unregister_driver(&ioasid_pci_driver);
}

void *ioasid_pci_driver_data(struct pci_dev *pdev)
{
	device_lock_assert(&pdev->dev);
	if (pdev->dev.driver != &ioasid_pci_driver.driver)
		return NULL;
	return pci_get_drvdata(pdev);
}

void ioasid_pci_set_driver_data(struct pci_dev *pdev, void *data)
{
	pci_set_drvdata(pdev, data);
}

void ioasid_device_lock(struct pci_dev *pdev)
{
	device_lock(&pdev->dev);
}

void ioasid_device_unlock(struct pci_dev *pdev)
{
	device_unlock(&pdev->dev);
}
