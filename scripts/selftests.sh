#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kselftests, the demo and the benchmark, static, for $ARCH, into
# build/$ARCH/bin/ (which scripts/vm.sh copies into the guest).

. "$(dirname "$0")/common.sh"
load_toolchain

OUT=$IOASID_REPO/build/$IOASID_ARCH/bin
mkdir -p "$OUT"
M32=0
# The uAPI tests are also built as 32-bit programs, to exercise compat_ioctl.
[ "$IOASID_ARCH" = x86_64 ] && M32=1
make -s -C "$IOASID_REPO/tools/selftests/ioasid" KSRC="$KSRC" OUTPUT="$OUT" CC="${CROSS_COMPILE}gcc" M32=$M32
make -s -C "$IOASID_REPO/tools/demo" OUTPUT="$OUT" CC="${CROSS_COMPILE}gcc"
make -s -C "$IOASID_REPO/tools/bench" KSRC="$KSRC" OUTPUT="$OUT" CC="${CROSS_COMPILE}gcc"
