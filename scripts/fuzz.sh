#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make fuzz`: the same set-up as `make check`, then boot the VM and run only
# fuzz_test, long: FUZZ_ITERS random calls (default 100000, about 4 minutes
# under x86_64 TCG) from seed FUZZ_SEED (default: the test's own). Exits
# non-zero on any failure; the seed and the failing calls are in the log.
#
#   make fuzz [ARCH=x86_64|arm64] [IOMMU=intel|...] [FUZZ_ITERS=N] [FUZZ_SEED=N]

. "$(dirname "$0")/common.sh"

"$IOASID_REPO/scripts/toolchain.sh"
"$IOASID_REPO/scripts/kernel.sh" >/dev/null
"$IOASID_REPO/scripts/module.sh" >/dev/null
"$IOASID_REPO/scripts/selftests.sh"

BUILD=$IOASID_REPO/build/$IOASID_ARCH
if [ "$IOASID_ARCH" = arm64 ]; then
	IOMMU=${IOMMU:-smmuv3}
else
	IOMMU=${IOMMU:-intel}
fi
FUZZ_ITERS=${FUZZ_ITERS:-100000}
# About 2.5 ms per random call under TCG, plus the sweeps and the boot; a hang
# is still caught by the test's own limit, which scales the same way.
VM_TIMEOUT=${VM_TIMEOUT:-$((900 + FUZZ_ITERS / 100))}
export IOMMU FUZZ_ITERS FUZZ_SEED VM_TIMEOUT
LOGDIR=$BUILD/logs/fuzz-$IOMMU
TESTS=fuzz_test IOASID_LOGDIR=$LOGDIR "$IOASID_REPO/scripts/vm.sh" check
RESULTS=$BUILD/fuzz-results.txt
: >"$RESULTS"
python3 "$IOASID_REPO/scripts/results.py" "$LOGDIR" "$IOASID_ARCH/$IOMMU" "$RESULTS" | grep -v '^PASS' || true
grep -h 'seed\|random calls' "$LOGDIR/tests.log" | tr -d '\r' || true
if grep -q '^FAIL' "$RESULTS"; then
	die "the fuzz run found failures; logs in $LOGDIR"
fi
log "fuzz: $(grep -c '^PASS' "$RESULTS") passed; logs in $LOGDIR"
