#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: from a fresh machine, install the toolchain, build (or reuse)
# the test kernel, build and lint the module, build the kselftests, run
# everything in the VM behind each IOMMU model in $IOMMUS (default: $IOMMU if
# set, else all four: intel intel-nosc amd virtio), and close with "N passed, N failed". Exits non-zero on any
# failure. Per-test lines are in build/$ARCH/results.txt, VM logs under
# build/$ARCH/logs/<iommu>/.

. "$(dirname "$0")/common.sh"

BUILD=$IOASID_REPO/build/$IOASID_ARCH
RESULTS=$BUILD/results.txt
IOMMUS=${IOMMUS:-${IOMMU:-intel intel-nosc amd virtio}}
mkdir -p "$BUILD/logs"
: >"$RESULTS"
export RESULTS
t0=$(date +%s)

summary() {
	local passed failed
	passed=$(grep -c '^PASS' "$RESULTS" || true)
	failed=$(grep -c '^FAIL' "$RESULTS" || true)
	if [ "$failed" -gt 0 ]; then
		echo
		echo "Failed:"
		grep '^FAIL' "$RESULTS" | sed 's/^/  /'
	fi
	echo
	log "total wall time $(($(date +%s) - t0)) s; results in $RESULTS"
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

# step NAME COMMAND...: run a set-up step; on failure record it, show the
# end of its log and stop with the summary.
step() {
	local name=$1 slog start
	shift
	slog=$BUILD/logs/$(echo "$name" | tr ' /' '__').log
	start=$(date +%s)
	log "$name"
	if "$@" >"$slog" 2>&1; then
		log "$name: done in $(($(date +%s) - start)) s"
	else
		tail -n 40 "$slog"
		echo "FAIL [setup] $name (log: $slog)" >>"$RESULTS"
		summary
		exit 1
	fi
}

step "toolchain" "$IOASID_REPO/scripts/toolchain.sh"
step "test kernel" "$IOASID_REPO/scripts/kernel.sh"
load_toolchain
KOUT=$("$IOASID_REPO/scripts/kernel.sh" --dir)
step "module build" "$IOASID_REPO/scripts/module.sh"
step "selftests build" "$IOASID_REPO/scripts/selftests.sh"

log "lint"
"$IOASID_REPO/scripts/lint.sh" "$KOUT" || true

for iommu in $IOMMUS; do
	logdir=$BUILD/logs/$iommu
	IOMMU=$iommu IOASID_LOGDIR=$logdir "$IOASID_REPO/scripts/vm.sh" check ||
		echo "FAIL [$IOASID_ARCH/$iommu] vm: runner (see $logdir)" >>"$RESULTS"
	python3 "$IOASID_REPO/scripts/results.py" "$logdir" "$IOASID_ARCH/$iommu" "$RESULTS" |
		grep -v '^PASS' || true
done

summary
