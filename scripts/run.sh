#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run` (MODE=run) or `make bench` (MODE=bench): the same set-up as
# `make check`, then boot the VM with the module loaded, run the demo or the
# benchmark (its output appears here) and power off. Exits non-zero if the
# kernel log shows an oops, WARNING, leak, etc.

. "$(dirname "$0")/common.sh"

"$IOASID_REPO/scripts/toolchain.sh"
"$IOASID_REPO/scripts/kernel.sh" >/dev/null
"$IOASID_REPO/scripts/module.sh" >/dev/null
"$IOASID_REPO/scripts/selftests.sh"

BUILD=$IOASID_REPO/build/$IOASID_ARCH
MODE=${MODE:-run}
if [ "$IOASID_ARCH" = arm64 ]; then
	IOMMU=${IOMMU:-smmuv3}
else
	IOMMU=${IOMMU:-intel}
fi
export IOMMU
LOGDIR=$BUILD/logs/$MODE-$IOMMU
IOASID_LOGDIR=$LOGDIR "$IOASID_REPO/scripts/vm.sh" "$MODE"
RESULTS=$BUILD/run-results.txt
: >"$RESULTS"
python3 "$IOASID_REPO/scripts/results.py" "$LOGDIR" "$IOASID_ARCH/$IOMMU" "$RESULTS" >/dev/null
if ! tr -d '\r' <"$LOGDIR/tests.log" | grep -q "^IOASID-PROGRAM $MODE rc=0"; then
	echo "FAIL [$IOASID_ARCH/$IOMMU] $MODE: the program failed" >>"$RESULTS"
fi
if grep -q '^FAIL' "$RESULTS"; then
	grep '^FAIL' "$RESULTS"
	die "the $MODE run was not clean; logs in $LOGDIR"
fi
log "$MODE finished cleanly; full logs in $LOGDIR"
