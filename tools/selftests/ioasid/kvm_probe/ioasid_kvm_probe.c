// SPDX-License-Identifier: GPL-2.0
/*
 * ioasid_kvm_probe: a test-only module that uses ioasid's KVM-facing
 * interface (include/linux/ioasid_kvm.h) exactly as KVM would, and reports
 * what it saw through debugfs. Built with the tests, never loaded in
 * production.
 *
 * /sys/kernel/debug/ioasid_kvm_probe/ctl (write):
 *   "get FD"  like KVM being handed an ioasid fd (KVM_DEV_VFIO_FILE_ADD for
 *             VFIO): take a context reference from the writer's FD, watch
 *             it, and register "non-coherent DMA" with the simulated VM if
 *             the answer is yes. EBADF if FD is not an ioasid file, EBUSY
 *             if a context is held already.
 *   "put"     like the fd being removed or the VM being destroyed: unwatch,
 *             unregister, drop the reference. ENOENT if none is held.
 *   "reset"   zero the counters.
 * /sys/kernel/debug/ioasid_kvm_probe/state (read), one line:
 *   held=H answer=A query=Q events=E spurious=S vm_noncoherent=N
 *   H: a context is held; A: the last answer the watch reported (or got at
 *   registration); Q: ioasid_ctx_noncoherent_dma() asked now; E: calls of
 *   changed(); S: calls that did not change the answer (must stay 0);
 *   N: the simulated kvm->arch.noncoherent_dma_count (0 or 1).
 */
#include <linux/debugfs.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ioasid_kvm.h>
#include <linux/kstrtox.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>

static DEFINE_MUTEX(probe_lock);
static struct dentry *probe_dir;

static struct {
	struct ioasid_ctx *ctx;
	struct ioasid_coherency_watch watch;
	bool answer;
	unsigned int events, spurious;
	int vm_noncoherent;	/* kvm_arch_{,un}register_noncoherent_dma() */
} probe;

/* What KVM's callback would do: follow the answer with its registration. */
static void probe_changed(struct ioasid_coherency_watch *watch, bool noncoherent)
{
	probe.events++;
	if (noncoherent == probe.answer)
		probe.spurious++;
	probe.answer = noncoherent;
	probe.vm_noncoherent += noncoherent ? 1 : -1;
}

static int probe_get(int fd)
{
	struct ioasid_ctx *ctx;
	struct file *file;
	int ret;

	if (probe.ctx)
		return -EBUSY;
	file = fget(fd);
	if (!file)
		return -EBADF;
	ctx = ioasid_ctx_get_file(file);
	/* Like KVM, keep the context, not the file. */
	fput(file);
	if (!ctx)
		return -EBADF;
	probe.watch.changed = probe_changed;
	/*
	 * The first answer is stored under ioasid's lock, before any change
	 * can be reported: the callback always sees the previous answer.
	 */
	ret = ioasid_ctx_watch_coherency(ctx, &probe.watch, &probe.answer);
	if (ret) {
		ioasid_ctx_put(ctx);
		return ret;
	}
	probe.ctx = ctx;
	if (probe.answer)
		probe.vm_noncoherent++;
	return 0;
}

static int probe_put(void)
{
	if (!probe.ctx)
		return -ENOENT;
	ioasid_ctx_unwatch_coherency(probe.ctx, &probe.watch);
	if (probe.answer)
		probe.vm_noncoherent--;
	probe.answer = false;
	ioasid_ctx_put(probe.ctx);
	probe.ctx = NULL;
	return 0;
}

static ssize_t ctl_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[32];
	int fd, ret;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	strim(buf);
	mutex_lock(&probe_lock);
	if (!strncmp(buf, "get ", 4))
		ret = kstrtoint(buf + 4, 10, &fd) ?: probe_get(fd);
	else if (!strcmp(buf, "put"))
		ret = probe_put();
	else if (!strcmp(buf, "reset")) {
		probe.events = 0;
		probe.spurious = 0;
		ret = 0;
	} else
		ret = -EINVAL;
	mutex_unlock(&probe_lock);
	return ret ?: len;
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.write = ctl_write,
};

static int state_show(struct seq_file *m, void *unused)
{
	mutex_lock(&probe_lock);
	seq_printf(m, "held=%d answer=%d query=%d events=%u spurious=%u vm_noncoherent=%d\n",
		   !!probe.ctx, probe.answer,
		   probe.ctx ? ioasid_ctx_noncoherent_dma(probe.ctx) : 0,
		   probe.events, probe.spurious, probe.vm_noncoherent);
	mutex_unlock(&probe_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(state);

static int __init probe_init(void)
{
	probe_dir = debugfs_create_dir("ioasid_kvm_probe", NULL);
	debugfs_create_file("ctl", 0200, probe_dir, NULL, &ctl_fops);
	debugfs_create_file("state", 0400, probe_dir, NULL, &state_fops);
	return 0;
}

static void __exit probe_exit(void)
{
	debugfs_remove_recursive(probe_dir);
	mutex_lock(&probe_lock);
	probe_put();
	mutex_unlock(&probe_lock);
}

module_init(probe_init);
module_exit(probe_exit);
MODULE_DESCRIPTION("Test-only user of ioasid's KVM-facing interface");
MODULE_LICENSE("GPL");
