# SPDX-License-Identifier: GPL-2.0
#
# ioasid: user-facing entry points. The module's own build rules are in Kbuild.
#
#   make check          set up everything, build, lint, run all tests in VMs (x86_64 and arm64)
#   make run            set up everything, boot the VM and run the demo
#   make bench          set up everything, boot the VM and run the benchmark against iommufd
#   make fuzz           set up everything, boot the VM and run fuzz_test long (FUZZ_ITERS, FUZZ_SEED)
#   make lint           rustfmt (kernel .rustfmt.toml) + CLIPPY=1 build, no warnings allowed
#   make                build ioasid.ko against KDIR (default: the cached test kernel)
#   make KDIR=/lib/modules/$(uname -r)/build   build against your own Rust-enabled kernel
#
# Variables: ARCH=x86_64|arm64 (`make check` default: both; else x86_64); IOMMU=intel|
# intel-nosc|amd|virtio|smmuv3, the one IOMMU model to test (`make check` default: all;
# `make run` default: intel, or smmuv3 on arm64); IOMMUS="..." several;
# KVM=1 (opt-in acceleration); VM_TIMEOUT (s); IOASID_CACHE (default ~/.cache/ioasid);
# FUZZ_ITERS (default 100000), FUZZ_SEED for `make fuzz`; BENCH (the benchmark's
# arguments, e.g. BENCH="throughput scale max-areas=10000") and BENCH_MEM (default 4G) for `make bench`.

# ARCH unset: `make check` runs both architectures, everything else x86_64.
ifdef ARCH
export ARCH
endif
export IOMMU IOMMUS FUZZ_ITERS FUZZ_SEED BENCH BENCH_MEM

SCRIPTS := $(CURDIR)/scripts

# Without KDIR, build against the test kernel (installing and building it if needed).
ifeq ($(KDIR),)
KDIR_DEP := kernel
KDIR_CMD = $$($(SCRIPTS)/kernel.sh --dir)
else
KDIR_DEP :=
KDIR_CMD = $(KDIR)
endif

.PHONY: all modules toolchain kernel lint selftests check run bench fuzz clean help

all: modules

help:
	@sed -n '3,18p' Makefile | sed 's/^# \{0,1\}//'

toolchain:
	$(SCRIPTS)/toolchain.sh

kernel: toolchain
	$(SCRIPTS)/kernel.sh >/dev/null

modules: $(KDIR_DEP)
	$(MAKE) -C "$(KDIR_CMD)" M=$(CURDIR) modules

lint: $(KDIR_DEP)
	$(SCRIPTS)/lint.sh "$(KDIR_CMD)"

selftests: toolchain
	$(SCRIPTS)/selftests.sh

check:
	$(SCRIPTS)/check.sh

run:
	$(SCRIPTS)/run.sh

bench:
	MODE=bench $(SCRIPTS)/run.sh

fuzz:
	$(SCRIPTS)/fuzz.sh

clean:
	@if [ -n "$(KDIR)" ] || [ -f "$$($(SCRIPTS)/kernel.sh --dir 2>/dev/null)/.complete" ]; then \
		$(MAKE) -C "$(KDIR_CMD)" M=$(CURDIR) clean; fi
	rm -rf build
