#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lint the module: rustfmt with the kernel's .rustfmt.toml, the agreement of
# the uAPI header, the module and the documentation (scripts/uapi_check.py),
# and a CLIPPY=1 build with the kernel's lints that must produce no warning.
# Prints one "PASS lint: ..." / "FAIL lint: ..." line per check and, with
# RESULTS=<file>, appends them there. Exits non-zero on any failure.
#
# Usage: lint.sh KDIR

. "$(dirname "$0")/common.sh"
load_toolchain

KDIR=${1:?usage: lint.sh KDIR}
RESULTS=${RESULTS:-/dev/null}
fail=0

result() { # verdict name
	echo "$1 [lint] $2" | tee -a "$RESULTS"
	[ "$1" = PASS ] || fail=1
}

mapfile -t rs_files < <(find "$IOASID_REPO/src" -name '*.rs' | sort)
if out=$(rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" "${rs_files[@]}" 2>&1); then
	result PASS "rustfmt (kernel .rustfmt.toml)"
else
	printf '%s\n' "$out" | head -n 60
	result FAIL "rustfmt (kernel .rustfmt.toml)"
fi

if out=$(python3 "$IOASID_REPO/scripts/uapi_check.py" "$IOASID_REPO" 2>&1); then
	result PASS "uAPI header, module and documentation agree"
else
	printf '%s\n' "$out"
	result FAIL "uAPI header, module and documentation agree"
fi

# Kbuild notices the changed command line (clippy-driver instead of rustc)
# and recompiles the crate, so every lint is really run: once as shipped, once
# as the tests build it (IOASID_TEST=1, with the test-only seam).
for test in 0 1; do
	name="clippy (CLIPPY=1, kernel lints, no warnings)"
	[ $test = 1 ] && name="clippy of the test build (IOASID_TEST=1)"
	out=$(make -C "$KDIR" M="$IOASID_REPO" CLIPPY=1 IOASID_TEST=$test modules 2>&1) && rc=0 || rc=$?
	if [ $rc = 0 ] && ! printf '%s\n' "$out" | grep -qE '(^|\s)(warning|error)(\[|:)'; then
		result PASS "$name"
	else
		printf '%s\n' "$out" | grep -vE '^make|^  (RUSTC|CC|LD|MODPOST|CLIPPY)' | head -n 80
		result FAIL "$name"
	fi
done
# Leave a normally built module behind.
make -s -C "$KDIR" M="$IOASID_REPO" modules >/dev/null
exit $fail
