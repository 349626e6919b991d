#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the module the tests load, for $ARCH, against the cached test kernel:
# ioasid.ko with the test-only seam (IOASID_TEST=1, see src/test_seam.rs) and
# the test-only KVM stand-in ioasid_kvm_probe.ko. Both go to
# build/$ARCH/module/, a copy of the module's sources, so that builds for two
# architectures (and the production build in the tree, `make`) never mix
# their objects.

. "$(dirname "$0")/common.sh"
load_toolchain

KOUT=$("$IOASID_REPO/scripts/kernel.sh" --dir)
[ -f "$KOUT/.complete" ] || die "test kernel not built: run scripts/kernel.sh"
DEST=$IOASID_REPO/build/$IOASID_ARCH/module
mkdir -p "$DEST/tools/selftests/ioasid"
# Copy only what changed, keeping times: an unchanged module is not rebuilt.
cp -a -u "$IOASID_REPO/Kbuild" "$IOASID_REPO/src" "$IOASID_REPO/include" "$DEST/"
cp -a -u "$IOASID_REPO/tools/selftests/ioasid/kvm_probe" "$DEST/tools/selftests/ioasid/"

kbuild -C "$KOUT" M="$DEST" IOASID_TEST=1 modules
kbuild -C "$KOUT" M="$DEST/tools/selftests/ioasid/kvm_probe" \
	KBUILD_EXTRA_SYMBOLS="$DEST/Module.symvers" modules
