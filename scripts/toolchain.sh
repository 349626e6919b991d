#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything needed to build a Rust-enabled test kernel and the
# ioasid module, idempotently and without asking:
#
#  - the Debian build packages, busybox-static and QEMU 10 (bookworm-backports);
#  - linux-source-7.3 and the rust-src that matches `rustc --version`, both from
#    trixie-backports through a private apt state (the system's apt
#    configuration is not touched for these);
#  - libclang from PyPI into a venv, bindgen-cli from crates.io into a prefix;
#
# then check `make rustavailable` and write $IOASID_CACHE/toolchain.env.
# The Debian mirror is taken from the machine's own apt sources: no host name
# is written anywhere.

. "$(dirname "$0")/common.sh"

mkdir -p "$IOASID_CACHE"

# Print "URI|SIGNED_BY" of the machine's main Debian archive (the stanza that
# carries the plain release suite, not -security), from deb822 or one-line
# sources.
debian_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() {
				if (uri ~ /\/debian\/?$/ && suites ~ /(^| )(bookworm|trixie|stable)( |$)/ && !done) {
					print uri "|" signed; done = 1
				}
				uri = ""; suites = ""; signed = ""
			}
			/^[[:space:]]*$/ { flush(); next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { $1 = ""; suites = substr($0, 2) }
			/^Signed-By:/ { signed = $2 }
			END { flush() }
		' "$f"
	done | head -n1
	if [ -f /etc/apt/sources.list ]; then
		awk '$1 == "deb" && $0 !~ /security/ {
			for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i "|"; exit }
		}' /etc/apt/sources.list
	fi
}

MIRROR_LINE=$(debian_mirror | head -n1)
[ -n "$MIRROR_LINE" ] || die "cannot find the Debian mirror in /etc/apt/sources.list{,.d}"
MIRROR=${MIRROR_LINE%%|*}
SIGNED_BY=${MIRROR_LINE#*|}
[ -n "$SIGNED_BY" ] || SIGNED_BY=/usr/share/keyrings/debian-archive-keyring.gpg

# --- 1. System packages (bookworm + bookworm-backports) -------------------

BPO_SOURCES=/etc/apt/sources.list.d/ioasid-bookworm-backports.sources
bpo_content=$(printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
	"$MIRROR" "$SIGNED_BY")

# Both architectures are always installed: `make check` runs the suite on both.
# gcc-12-multilib, not gcc-multilib: the latter only adds a /usr/include/asm
# symlink and declares Conflicts with gcc-12-aarch64-linux-gnu, so apt would
# refuse the pair; the -m32 build adds the x86_64 asm directory itself.
BUILD_PKGS=(flex bison bc libelf-dev libssl-dev cpio busybox-static gcc make xz-utils python3-venv
	gcc-12-multilib gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
QEMU_PKGS=(qemu-system-x86 qemu-system-arm)

need_install=
for p in "${BUILD_PKGS[@]}" "${QEMU_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_install=1
done
qemu_ok() {
	local q
	for q in qemu-system-x86_64 qemu-system-aarch64; do
		command -v $q >/dev/null && $q --version | grep -Eq 'version (1[0-9]|[2-9][0-9])\.' || return 1
	done
}
qemu_ok || need_install=1

if [ -n "$need_install" ] || [ "$(cat "$BPO_SOURCES" 2>/dev/null)" != "$bpo_content" ]; then
	[ "$(id -u)" = 0 ] || die "installing Debian packages needs root"
	if [ "$(cat "$BPO_SOURCES" 2>/dev/null)" != "$bpo_content" ]; then
		log "adding bookworm-backports from $MIRROR"
		printf '%s\n' "$bpo_content" >"$BPO_SOURCES"
	fi
	log "apt-get update"
	apt-get update -qq
	log "installing ${BUILD_PKGS[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${BUILD_PKGS[@]}" >/dev/null
	log "installing ${QEMU_PKGS[*]} from bookworm-backports"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-t bookworm-backports "${QEMU_PKGS[@]}" >/dev/null
	qemu_ok || die "QEMU >= 10 was not installed (got: $(qemu-system-x86_64 --version | head -n1); $(qemu-system-aarch64 --version 2>&1 | head -n1))"
fi

# --- 2. linux-source and rust-src from trixie-backports (private apt state) -

APT=$IOASID_CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/debs"
cat >"$APT/sources.list" <<EOT
deb [signed-by=$SIGNED_BY] $MIRROR trixie-backports main
EOT
apt_priv() {
	apt-get -q \
		-o Dir::Etc::SourceList="$APT/sources.list" \
		-o Dir::Etc::SourceParts=- \
		-o Dir::State::Lists="$APT/lists" \
		-o Dir::Cache="$APT" \
		-o Dir::Cache::archives="$APT/archives" \
		-o Dir::State::status=/dev/null \
		-o Debug::NoLocking=1 \
		-o APT::Sandbox::User=root \
		"$@"
}
apt_cache_priv() {
	apt-cache \
		-o Dir::Etc::SourceList="$APT/sources.list" \
		-o Dir::Etc::SourceParts=- \
		-o Dir::State::Lists="$APT/lists" \
		-o Dir::Cache="$APT" \
		-o Dir::State::status=/dev/null \
		"$@"
}

RUSTC_VERSION=$(rustc --version | awk '{print $2}')
[ -n "$RUSTC_VERSION" ] || die "rustc not found on PATH"

# Refresh the private lists at most once a day.
if [ -z "$(find "$APT/lists" -name '*Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
	log "updating private apt lists (trixie-backports)"
	apt_priv update >/dev/null
fi

pkg_version() { apt_cache_priv madison "$1" | awk -F'|' '{gsub(/ /, "", $2); print $2}'; }

LINUX_SOURCE_VERSION=$(pkg_version "$LINUX_SOURCE_PKG" | sort -V | tail -n1)
[ -n "$LINUX_SOURCE_VERSION" ] || die "$LINUX_SOURCE_PKG is not in trixie-backports"

RUST_SRC_VERSION=$(pkg_version rust-src | grep -E "^${RUSTC_VERSION//./\\.}\+" | sort -V | tail -n1 || true)
if [ -z "$RUST_SRC_VERSION" ]; then
	die "rustc is $RUSTC_VERSION but trixie-backports has rust-src $(pkg_version rust-src | tr '\n' ' ')- none matches; install a rustc whose version one of them has"
fi

fetch_deb() { # name version -> path of the .deb
	local name=$1 ver=$2 deb
	deb=$(find "$APT/debs" -name "${name}_${ver//[:]/%3a}_*.deb" | head -n1)
	if [ -z "$deb" ]; then
		log "downloading $name $ver"
		(cd "$APT/debs" && apt_priv download "$name=$ver" >/dev/null)
		deb=$(find "$APT/debs" -name "${name}_*.deb" -newer "$APT/sources.list" | head -n1)
		[ -n "$deb" ] || deb=$(ls -t "$APT/debs/${name}_"*.deb | head -n1)
	fi
	echo "$deb"
}

KSRC=$IOASID_CACHE/src/linux-$LINUX_SOURCE_VERSION
if [ ! -f "$KSRC/.extracted" ]; then
	deb=$(fetch_deb "$LINUX_SOURCE_PKG" "$LINUX_SOURCE_VERSION")
	log "extracting $LINUX_SOURCE_PKG $LINUX_SOURCE_VERSION"
	rm -rf "$KSRC" "$KSRC.tmp"
	mkdir -p "$KSRC.tmp/deb"
	dpkg-deb -x "$deb" "$KSRC.tmp/deb"
	tar -C "$KSRC.tmp" -xf "$KSRC.tmp"/deb/usr/src/linux-source-*.tar.xz
	src=$(find "$KSRC.tmp" -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
	mv "$src" "$KSRC"
	rm -rf "$KSRC.tmp"
	touch "$KSRC/.extracted"
fi

RUST_SRC_DIR=$IOASID_CACHE/src/rust-src-$RUST_SRC_VERSION
if [ ! -f "$RUST_SRC_DIR/.extracted" ]; then
	deb=$(fetch_deb rust-src "$RUST_SRC_VERSION")
	log "extracting rust-src $RUST_SRC_VERSION"
	rm -rf "$RUST_SRC_DIR"
	mkdir -p "$RUST_SRC_DIR"
	dpkg-deb -x "$deb" "$RUST_SRC_DIR"
	touch "$RUST_SRC_DIR/.extracted"
fi
RUST_LIB_SRC=$(find "$RUST_SRC_DIR/usr/src" -maxdepth 2 -type d -name library | head -n1)
[ -d "$RUST_LIB_SRC/core" ] || die "rust-src $RUST_SRC_VERSION has no library/core"

# --- 2b. A static arm64 busybox for the arm64 guest (private apt state) -----
#
# Downloaded and unpacked, not installed: the system gains no foreign
# architecture.

ARM64_BUSYBOX=$IOASID_CACHE/arm64/busybox
if [ ! -x "$ARM64_BUSYBOX" ]; then
	APT_TRIXIE=$APT
	APT=$IOASID_CACHE/apt-arm64
	mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/debs"
	echo "deb [arch=arm64 signed-by=$SIGNED_BY] $MIRROR bookworm main" >"$APT/sources.list"
	log "downloading busybox-static:arm64 (bookworm)"
	apt_priv -o APT::Architecture=arm64 -o APT::Architectures=arm64 update >/dev/null
	bb_ver=$(apt_cache_priv -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
		madison busybox-static | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -V | tail -n1)
	[ -n "$bb_ver" ] || die "busybox-static:arm64 not found in bookworm"
	rm -f "$APT/debs"/busybox-static_*.deb
	(cd "$APT/debs" && apt_priv -o APT::Architecture=arm64 -o APT::Architectures=arm64 \
		download "busybox-static:arm64=$bb_ver" >/dev/null)
	rm -rf "$APT/x"
	dpkg-deb -x "$APT"/debs/busybox-static_*_arm64.deb "$APT/x"
	mkdir -p "$(dirname "$ARM64_BUSYBOX")"
	cp "$APT/x/bin/busybox" "$ARM64_BUSYBOX"
	rm -rf "$APT/x"
	APT=$APT_TRIXIE
fi

# --- 3. libclang (PyPI) and bindgen (crates.io) ---------------------------

VENV=$IOASID_CACHE/venv
if ! "$VENV/bin/python" -c "import clang, sys; sys.exit(0)" 2>/dev/null ||
	! "$VENV/bin/pip" show libclang 2>/dev/null | grep -q "^Version: $LIBCLANG_VERSION$"; then
	log "installing libclang $LIBCLANG_VERSION from PyPI"
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q "libclang==$LIBCLANG_VERSION"
fi
LIBCLANG_PATH=$("$VENV/bin/python" -c 'import clang, os; print(os.path.join(os.path.dirname(clang.__file__), "native"))')
[ -f "$LIBCLANG_PATH/libclang.so" ] || die "libclang.so not found in $LIBCLANG_PATH"

CARGO_PREFIX=$IOASID_CACHE/cargo
BINDGEN=$CARGO_PREFIX/bin/bindgen
if ! "$BINDGEN" --version 2>/dev/null | grep -q " $BINDGEN_VERSION$"; then
	log "installing bindgen-cli $BINDGEN_VERSION from crates.io (about 2 minutes)"
	cargo install -q --locked bindgen-cli --version "$BINDGEN_VERSION" --root "$CARGO_PREFIX"
fi

# --- 4. Check and record ----------------------------------------------------

export RUST_LIB_SRC LIBCLANG_PATH
PATH=$CARGO_PREFIX/bin:$PATH
if ! out=$(make -s -C "$KSRC" LLVM= rustavailable 2>&1); then
	printf '%s\n' "$out" >&2
	die "make rustavailable failed in $KSRC"
fi

tmp=$(toolchain_env).tmp
cat >"$tmp" <<EOT
# Written by scripts/toolchain.sh; sourced by the other scripts.
KSRC=$KSRC
LINUX_SOURCE_VERSION=$LINUX_SOURCE_VERSION
RUSTC_VERSION=$RUSTC_VERSION
RUST_SRC_VERSION=$RUST_SRC_VERSION
RUST_LIB_SRC=$RUST_LIB_SRC
LIBCLANG_PATH=$LIBCLANG_PATH
BINDGEN=$BINDGEN
ARM64_BUSYBOX=$ARM64_BUSYBOX
EOT
mv "$tmp" "$(toolchain_env)"
log "toolchain ready: $LINUX_SOURCE_PKG $LINUX_SOURCE_VERSION, rustc $RUSTC_VERSION, rust-src $RUST_SRC_VERSION, bindgen $BINDGEN_VERSION, libclang $LIBCLANG_VERSION"
