#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kselftests and the demo program, static, for $ARCH, into
# build/$ARCH/bin/ (which scripts/vm.sh copies into the guest).

. "$(dirname "$0")/common.sh"
load_toolchain

OUT=$IOASID_REPO/build/$IOASID_ARCH/bin
mkdir -p "$OUT"
make -s -C "$IOASID_REPO/tools/selftests/ioasid" KSRC="$KSRC" OUTPUT="$OUT" CC="${CROSS_COMPILE}gcc"
make -s -C "$IOASID_REPO/tools/demo" OUTPUT="$OUT" CC="${CROSS_COMPILE}gcc"
