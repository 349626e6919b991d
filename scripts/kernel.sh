#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the test kernel for $ARCH (default x86_64) from tinyconfig plus
# kernel/$ARCH.config, and cache it under $IOASID_CACHE/kernel/, keyed by the
# linux-source package version, the rustc version and a hash of the fragment.
# With nothing changed, a second run rebuilds nothing.
#
# Usage: kernel.sh          build if needed, print the build directory
#        kernel.sh --dir    print the build directory only (no build)

. "$(dirname "$0")/common.sh"
load_toolchain

FRAGMENT=$IOASID_REPO/kernel/$IOASID_ARCH.config
[ -f "$FRAGMENT" ] || die "no kernel config fragment $FRAGMENT"

key_input=$(printf 'arch=%s\nlinux-source=%s\nrustc=%s\nfragment=%s\n' \
	"$IOASID_ARCH" "$LINUX_SOURCE_VERSION" "$RUSTC_VERSION" "$(sha256sum <"$FRAGMENT" | cut -c1-64)")
KEY=$(printf '%s' "$key_input" | sha256sum | cut -c1-16)
OUT=$IOASID_CACHE/kernel/$IOASID_ARCH-$KEY

if [ "${1:-}" = --dir ]; then
	echo "$OUT"
	exit 0
fi

if [ -f "$OUT/.complete" ]; then
	log "test kernel cached: $OUT"
	echo "$OUT"
	exit 0
fi

kmake() {
	kbuild -C "$KSRC" O="$OUT" "$@"
}

log "building the $IOASID_ARCH test kernel in $OUT (about 8 minutes on 2 cores)"
rm -rf "$OUT"
mkdir -p "$OUT"
printf '%s' "$key_input" >"$OUT/.key"
kmake -s tinyconfig >/dev/null
KCONFIG_CONFIG=$OUT/.config "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" \
	"$OUT/.config" "$FRAGMENT" >/dev/null
kmake -s olddefconfig >/dev/null

# merge_config and olddefconfig silently drop options whose dependencies are
# missing: insist that every requested option is really there.
dropped=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$OUT/.config" || dropped+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$OUT/.config" || echo unset))")
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		if grep -qE "^$opt=" "$OUT/.config"; then
			dropped+=("$line (got: $(grep -E "^$opt=" "$OUT/.config"))")
		fi
		;;
	esac
done <"$FRAGMENT"
if [ ${#dropped[@]} -gt 0 ]; then
	printf '  %s\n' "${dropped[@]}" >&2
	die "kernel/$IOASID_ARCH.config: ${#dropped[@]} requested option(s) dropped by olddefconfig (listed above)"
fi

start=$(date +%s)
kmake -j"$(nproc)" "$(basename "$KIMAGE")" modules >"$OUT/build.log" 2>&1 || {
	tail -n 40 "$OUT/build.log" >&2
	die "kernel build failed; full log: $OUT/build.log"
}
log "kernel built in $(($(date +%s) - start)) s"
touch "$OUT/.complete"

# Keep only the newest build of this architecture: each one is about a GiB.
for old in "$IOASID_CACHE/kernel/$IOASID_ARCH"-*; do
	[ "$old" = "$OUT" ] || rm -rf "$old"
done
echo "$OUT"
