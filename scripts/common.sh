# SPDX-License-Identifier: GPL-2.0
#
# Shared settings for the ioasid build and test scripts. Sourced, never run.
#
# Everything the scripts install or build lives under $IOASID_CACHE, outside
# the repository, so that a fresh clone reuses it and `rm -rf` of that one
# directory returns the machine to a clean state (apart from the Debian
# packages installed system-wide).

set -euo pipefail

IOASID_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IOASID_CACHE=${IOASID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ioasid}
IOASID_ARCH=${ARCH:-x86_64}

# Pinned versions: the recipe in shared/notes/toolchain.md was verified with these.
LINUX_SOURCE_PKG=linux-source-7.3
BINDGEN_VERSION=0.72.1
LIBCLANG_VERSION=18.1.1

# rustup's toolchain lives here on these machines; CI may not have it on PATH.
if [ -d "$HOME/.cargo/bin" ]; then
	PATH=$HOME/.cargo/bin:$PATH
fi
export PATH

log() { printf '\033[1m[ioasid]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[ioasid] error:\033[0m %s\n' "$*" >&2; exit 1; }

# The environment file written by toolchain.sh: KSRC, RUST_LIB_SRC,
# LIBCLANG_PATH, BINDGEN and the linux-source package version.
toolchain_env() {
	echo "$IOASID_CACHE/toolchain.env"
}

load_toolchain() {
	local env
	env=$(toolchain_env)
	[ -f "$env" ] || die "toolchain not installed: run scripts/toolchain.sh (or make toolchain)"
	# shellcheck disable=SC1090
	. "$env"
	export KSRC RUST_LIB_SRC LIBCLANG_PATH BINDGEN LINUX_SOURCE_VERSION ARM64_BUSYBOX
	PATH=$(dirname "$BINDGEN"):$PATH
	export PATH
}

case "$IOASID_ARCH" in
x86_64)
	KARCH=x86_64
	KIMAGE=arch/x86/boot/bzImage
	CROSS_COMPILE=
	;;
arm64)
	KARCH=arm64
	KIMAGE=arch/arm64/boot/Image
	CROSS_COMPILE=aarch64-linux-gnu-
	;;
*)
	die "unsupported ARCH=$IOASID_ARCH (x86_64 or arm64)"
	;;
esac

# make for kernel trees of $IOASID_ARCH: the architecture and cross compiler.
kbuild() {
	make ARCH="$KARCH" ${CROSS_COMPILE:+CROSS_COMPILE=$CROSS_COMPILE} "$@"
}
