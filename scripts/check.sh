#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: from a fresh machine, install the toolchain, then for each
# architecture (ARCH if set, else both x86_64 and arm64) build (or reuse) the
# test kernel, build the module and the tests, and run everything in a VM
# behind each of its IOMMU models:
#
#   x86_64: intel (VT-d, snoop control on), intel-nosc (VT-d without snoop
#           control), intel-pt (VT-d with iommu.passthrough=1, the identity
#           default domain), amd (AMD-Vi), virtio (virtio-iommu)
#   arm64:  smmuv3 (SMMUv3 on the virt machine)
#
# IOMMU=... or IOMMUS="..." runs only those models (on the architectures that
# have them). The lint runs once, on the x86_64 build. Closes with
# "N passed, N failed" over everything; exits non-zero on any failure. Every
# result line is labelled ARCH/IOMMU; all of them are in build/results.txt,
# VM logs under build/ARCH/logs/IOMMU/.

. "$(dirname "$0")/common.sh"

ARCHES=${ARCH:-x86_64 arm64}
RESULTS=$IOASID_REPO/build/results.txt
mkdir -p "$IOASID_REPO/build"
: >"$RESULTS"
export RESULTS
t0=$(date +%s)

# The IOMMU models to run on architecture $1.
iommus_for() {
	local all want m out=
	case "$1" in
	x86_64) all="intel intel-nosc intel-pt amd virtio" ;;
	arm64) all="smmuv3" ;;
	esac
	want=${IOMMUS:-${IOMMU:-$all}}
	for m in $want; do
		case " $all " in *" $m "*) out+=" $m" ;; esac
	done
	echo $out
}

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
	slog=$IOASID_REPO/build/logs/$(echo "$name" | tr ' /' '__').log
	mkdir -p "$(dirname "$slog")"
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

for arch in $ARCHES; do
	iommus=$(iommus_for "$arch")
	[ -n "$iommus" ] || continue
	export ARCH=$arch
	step "$arch test kernel" "$IOASID_REPO/scripts/kernel.sh"
	step "$arch module build" "$IOASID_REPO/scripts/module.sh"
	step "$arch selftests build" "$IOASID_REPO/scripts/selftests.sh"
	if [ "$arch" = x86_64 ]; then
		log "lint"
		load_toolchain
		"$IOASID_REPO/scripts/lint.sh" "$("$IOASID_REPO/scripts/kernel.sh" --dir)" || true
	fi
	for iommu in $iommus; do
		logdir=$IOASID_REPO/build/$arch/logs/$iommu
		IOMMU=$iommu IOASID_LOGDIR=$logdir "$IOASID_REPO/scripts/vm.sh" check ||
			echo "FAIL [$arch/$iommu] vm: runner (see $logdir)" >>"$RESULTS"
		python3 "$IOASID_REPO/scripts/results.py" "$logdir" "$arch/$iommu" "$RESULTS" |
			grep -v '^PASS' || true
	done
done

summary
