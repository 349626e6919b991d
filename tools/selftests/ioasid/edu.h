/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A user-space driver for QEMU's edu device (PCI 1234:11e8), whose DMA
 * engine goes through the VM's IOMMU: used by the DMA kselftests and the
 * demo. See QEMU's docs/specs/edu.rst. Root can drive it with no kernel
 * driver: enable it through sysfs, set bus mastering in its config space,
 * and mmap BAR0 through resource0.
 */
#ifndef IOASID_EDU_H
#define IOASID_EDU_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EDU_BUF 0x40000		/* the device's own 4 KiB buffer */
#define EDU_BUF_SIZE 4096

struct edu {
	unsigned int seg, bus, devfn;
	char bdf[32];
	volatile uint8_t *bar;
	unsigned long glitches;	/* BAR accesses edu_dma had to redo */
};

static inline int edu_setup(struct edu *e, const char *bdf)
{
	char path[128];
	unsigned int dev, fn;
	uint16_t cmd;
	int fd;

	snprintf(e->bdf, sizeof(e->bdf), "%s", bdf);
	if (sscanf(bdf, "%x:%x:%x.%x", &e->seg, &e->bus, &dev, &fn) != 4)
		return -1;
	e->devfn = (dev << 3) | fn;

	/*
	 * Memory decoding: the ioasid driver enables the devices handed to it
	 * (sysfs then refuses the write); a device without a driver is
	 * enabled here.
	 */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/enable", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	if (write(fd, "1", 1) != 1) {
		char on = 0;

		if (pread(fd, &on, 1, 0) != 1 || on != '1') {
			close(fd);
			return -1;
		}
	}
	close(fd);
	/* Bus mastering and memory decoding in the command register. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2)
		return -1;
	cmd |= 0x6;
	if (pwrite(fd, &cmd, 2, 4) != 2)
		return -1;
	close(fd);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return -1;
	e->bar = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (e->bar == MAP_FAILED)
		return -1;
	/* The identification register: 0xRRrr00ed. */
	return (*(volatile uint32_t *)e->bar & 0xff) == 0xed ? 0 : -1;
}

static inline void edu_teardown(struct edu *e)
{
	if (e->bar && e->bar != MAP_FAILED)
		munmap((void *)e->bar, 1 << 20);
}

/*
 * Whether the engine is busy. Under TCG, QEMU 10.0 can lose a vCPU's access
 * to a BAR while another device's memory decoding is switched off and on
 * (the PCI core does that around a function reset): a read then returns 0
 * and a write is dropped. storm_test saw it as a transfer that "finished"
 * before it ran, and as a transfer programmed while the previous one still
 * ran (which the engine ignores). So idle is believed only when read twice,
 * the identification register right in between.
 */
static inline int edu_busy(struct edu *e)
{
	volatile uint64_t *reg = (volatile uint64_t *)(e->bar + 0x80);

	if (reg[3] & 1)
		return 1;
	if ((*(volatile uint32_t *)e->bar & 0xff) != 0xed || (reg[3] & 1)) {
		e->glitches++;
		return 1;
	}
	return 0;
}

/*
 * One DMA of the edu engine: to_ram = 0 reads RAM at src into the device
 * buffer at dst, to_ram = 1 writes the device buffer at src to RAM at dst.
 * Returns 0 when the engine finished, -1 if it did not within 5 s. Every
 * register written is read back and written again if it did not take (see
 * edu_busy; the engine ignores writes while it is busy, so a repeated start
 * of a running transfer is harmless); e->glitches counts what was redone.
 */
static inline int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint32_t count, int to_ram)
{
	volatile uint64_t *reg = (volatile uint64_t *)(e->bar + 0x80);
	struct timespec ts = { 0, 1000000 };
	uint64_t cmd = 1 | (to_ram ? 2 : 0);
	int i, tries;

	/* A transfer still running would ignore the new one's registers. */
	for (i = 0; edu_busy(e); i++) {
		if (i == 5000)
			return -1;
		nanosleep(&ts, NULL);
	}
	for (tries = 0;; tries++) {
		reg[0] = src;
		reg[1] = dst;
		reg[2] = count;
		if (reg[0] == src && reg[1] == dst && reg[2] == count)
			break;
		if (tries == 100)
			return -1;
		e->glitches++;
	}
	/* Started: the transfer takes 100 ms of virtual time, so it shows as running. */
	reg[3] = cmd;
	for (tries = 0; !(reg[3] & 1) && !(reg[3] & 1); tries++) {
		if (tries == 100)
			return -1;
		e->glitches++;
		reg[3] = cmd;
	}
	for (i = 0; i < 5000; i++) {
		if (!edu_busy(e))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

#endif
