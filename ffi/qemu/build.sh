#!/usr/bin/env bash
# Build a minimal qemu-system-x86_64 (QEMU 10.0.x from Debian bookworm-backports' source
# package) with ffi/qemu/patches/*.patch applied and ffi/qemu/src/* copied in.
#
# Idempotent; everything lives under ${VIOMMU_CACHE:-$HOME/.cache/viommu}, outside the repo:
#   qemu/dl/          the orig tarball fetched with apt-get source
#   qemu/pristine-V/  that tarball unpacked, never modified
#   qemu/tree/        pristine + patches + src (synced by content, so mtimes only move
#                     for files that really changed and ninja rebuilds incrementally)
#   qemu-build/       the out-of-tree build; qemu-build/qemu-system-x86_64 is the binary
#   venv/             meson 1.5.0 + pycotap from PyPI (the +ds tarball drops QEMU's wheels)
# The last line printed on stdout is the path of the binary.
#
# Env: VIOMMU_CACHE (cache root), VIOMMU_QEMU_JOBS (ninja -j, default nproc),
#      VIOMMU_QEMU_FULL_DEVICES=1 (build QEMU's default x86 device set instead of the
#      minimal one in src/configs/devices/x86_64-softmmu/viommu-min.mak),
#      VIOMMU_QEMU_FORCE=1 (ignore the stamp and run ninja anyway).
set -euo pipefail
LOG_TAG=build
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

QDIR=$CACHE/qemu
BUILD=$CACHE/qemu-build
VENV=$CACHE/venv
mkdir -p "$QDIR/dl"
exec 9>"$CACHE/qemu.lock"
flock 9

# --- 1. host packages --------------------------------------------------------------------
# gcc-multilib: configure builds QEMU's x86 option ROMs (linuxboot_dma.bin, used by -kernel)
# only when `cc -m32 ... -lgcc` links; the +ds tarball has no prebuilt ROMs.
BUILD_DEPS=(build-essential gcc-multilib ninja-build pkg-config libglib2.0-dev libpixman-1-dev
    libslirp-dev flex bison python3-venv dpkg-dev rsync xz-utils bzip2 patch ca-certificates)
apt_install "${BUILD_DEPS[@]}"

# --- 2. QEMU 10.0.x source from bookworm-backports ---------------------------------------
if write_apt_source /etc/apt/sources.list.d/viommu-src.sources deb-src; then APT_UPDATED=0; apt_update; fi

pick_version() {
    apt-cache showsrc qemu 2>/dev/null | awk '/^Version: 1:10\.0\./ { print $2 }' | sort -V | tail -n1
}
QVER=${VIOMMU_QEMU_VERSION:-$(pick_version)}
if [ -z "$QVER" ]; then APT_UPDATED=0; apt_update; QVER=$(pick_version); fi
[ -n "$QVER" ] || die "no qemu 1:10.0.x source package in the apt index (bookworm-backports deb-src)"

# Orig tarball name and sha256 from the Sources index (Checksums-Sha256 of that version).
read -r ORIG_SHA ORIG_TAR < <(apt-cache showsrc qemu | awk -v v="$QVER" '
    /^Package:/ { p = 0 } /^Version:/ { p = ($2 == v) }
    p && /^Checksums-Sha256:/ { s = 1; next } /^[A-Z]/ { s = 0 }
    p && s && $3 ~ /\.orig\.tar\.(xz|gz|bz2)$/ { print $1, $3; exit }')
[ -n "${ORIG_TAR:-}" ] || die "cannot find the orig tarball of qemu $QVER in the index"
UPVER=${ORIG_TAR#qemu_}; UPVER=${UPVER%.orig.tar.*}   # e.g. 10.0.2+ds

have_orig() { [ -f "$QDIR/dl/$ORIG_TAR" ] && echo "$ORIG_SHA  $QDIR/dl/$ORIG_TAR" | sha256sum -c --status; }
if ! have_orig; then
    log "apt-get source --download-only qemu=$QVER"
    # The .dsc/.debian.tar.xz are not always on the mirror (404 seen here): we only need
    # the orig tarball, whose checksum we verify against the signed index ourselves.
    (cd "$QDIR/dl" && apt-get source --download-only "qemu=$QVER" >"$QDIR/dl/apt-source.log" 2>&1) ||
        log "apt-get source reported errors (see $QDIR/dl/apt-source.log); checking the orig tarball"
    have_orig || die "orig tarball $ORIG_TAR missing or sha256 mismatch (want $ORIG_SHA)"
fi

PRISTINE=$QDIR/pristine-$UPVER
if [ ! -f "$PRISTINE/.complete" ]; then
    log "unpacking $ORIG_TAR"
    rm -rf "$PRISTINE" "$PRISTINE.tmp"; mkdir -p "$PRISTINE.tmp"
    tar -xf "$QDIR/dl/$ORIG_TAR" -C "$PRISTINE.tmp" --strip-components=1
    touch "$PRISTINE.tmp/.complete"; mv "$PRISTINE.tmp" "$PRISTINE"
    # old pristine trees of other versions are useless
    find "$QDIR" -maxdepth 1 -name 'pristine-*' ! -name "pristine-$UPVER" -exec rm -rf {} +
fi

# --- 2b. libviommu: the engine the viommu-vtd device links ------------------------------
# Built from this checkout, then staged at a fixed path in the cache (the patch's
# meson.build reads VIOMMU_ROOT, at configure and every automatic reconfigure, for
# target/release/libviommu.a and include/viommu.h): a build cached from another checkout
# stays valid, and copying only what changed keeps ninja incremental.
REPO_ROOT=$(cd "$VIOMMU_QEMU_DIR/../.." && pwd)
log "cargo build --release -p viommu-ffi"
(cd "$REPO_ROOT" && cargo build --release -q -p viommu-ffi) || die "building libviommu failed"
VIOMMU_ROOT=$CACHE/libviommu
export VIOMMU_ROOT
mkdir -p "$VIOMMU_ROOT/target/release" "$VIOMMU_ROOT/include"
for f in target/release/libviommu.a include/viommu.h; do
    cmp -s "$REPO_ROOT/$f" "$VIOMMU_ROOT/$f" || cp "$REPO_ROOT/$f" "$VIOMMU_ROOT/$f"
done
LIBVIOMMU_DIGEST=$(cat "$VIOMMU_ROOT/target/release/libviommu.a" "$VIOMMU_ROOT/include/viommu.h" |
    sha256sum | cut -d' ' -f1)

# --- 3. the stamp: version + configure flags + every patch and src file -------------------
DEVICES=viommu-min
[ "${VIOMMU_QEMU_FULL_DEVICES:-0}" = 1 ] && DEVICES=default
CONFIGURE_ARGS=(
    --python="$VENV/bin/python3" --disable-download
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm --enable-tcg --enable-slirp --enable-pixman
    --disable-docs --disable-install-blobs --disable-werror
)
if [ "$DEVICES" != default ]; then
    CONFIGURE_ARGS+=(--without-default-devices --with-devices-x86_64="$DEVICES")
fi
inputs_digest() {
    {
        echo "qemu $QVER $ORIG_SHA"
        echo "configure ${CONFIGURE_ARGS[*]}"
        echo "libviommu $LIBVIOMMU_DIGEST at $VIOMMU_ROOT"
        (cd "$VIOMMU_QEMU_DIR" && find patches src -type f \( -name '*.patch' -o -path 'src/*' \) 2>/dev/null |
            LC_ALL=C sort | xargs -r sha256sum)
    } | sha256sum | cut -d' ' -f1
}
DIGEST=$(inputs_digest)
STAMP=$BUILD/.viommu-stamp
if [ "${VIOMMU_QEMU_FORCE:-0}" != 1 ] && [ -x "$BUILD/qemu-system-x86_64" ] &&
    [ "$(cat "$STAMP" 2>/dev/null)" = "$DIGEST" ]; then
    log "up to date (qemu $QVER, inputs $DIGEST)"
    echo "$BUILD/qemu-system-x86_64"
    exit 0
fi

# --- 4. compose the tree: pristine + patches/*.patch (-p1, sorted) + src/* ---------------
STAGE=$QDIR/stage
rm -rf "$STAGE"
cp -a "$PRISTINE" "$STAGE"   # cheap enough (~300 MB, a few seconds)
shopt -s nullglob
for p in "$VIOMMU_QEMU_DIR"/patches/*.patch; do
    log "patch -p1 < ${p#"$VIOMMU_QEMU_DIR"/}"
    patch -p1 -s --no-backup-if-mismatch -d "$STAGE" <"$p" || die "patch ${p##*/} does not apply to qemu $UPVER"
done
shopt -u nullglob
# Debian's +ds tarball drops the EDK2 images, but QEMU's meson unpacks them whenever bzip2
# is installed (independently of --disable-install-blobs). We boot with SeaBIOS, so give
# meson empty placeholders rather than editing its build files.
for f in $(sed -n "s/^ *'\(edk2-[a-z0-9_-]*\.fd\)',\$/\1/p" "$STAGE/pc-bios/meson.build"); do
    [ -e "$STAGE/pc-bios/$f.bz2" ] || bzip2 -c </dev/null >"$STAGE/pc-bios/$f.bz2"
done
if [ -d "$VIOMMU_QEMU_DIR/src" ]; then
    # src/ mirrors the QEMU tree: src/hw/i386/foo.c -> hw/i386/foo.c (README.md excluded)
    (cd "$VIOMMU_QEMU_DIR/src" && find . -type f ! -path './README.md' -print0 |
        while IFS= read -r -d '' f; do
            mkdir -p "$STAGE/$(dirname "$f")"; cp "$f" "$STAGE/$f"
        done)
fi
# Sync by checksum so untouched files keep their mtimes (ninja stays incremental), and
# without -t so every file that does change gets a fresh mtime, even when it goes back to
# its pristine content (a dropped patch); files that disappeared are deleted.
mkdir -p "$QDIR/tree"
rsync -rlpD --checksum --delete "$STAGE/" "$QDIR/tree/"
rm -rf "$STAGE"
TREE=$QDIR/tree
# ninja does not track the static library the device links: when it changed, touch the
# device's source so it is recompiled and the binary relinked.
if [ "$(cat "$BUILD/.viommu-lib" 2>/dev/null)" != "$LIBVIOMMU_DIGEST" ] && [ -f "$TREE/hw/i386/viommu-vtd.c" ]; then
    touch "$TREE/hw/i386/viommu-vtd.c"
fi

# --- 5. meson 1.5.0 venv (PyPI) ----------------------------------------------------------
if ! "$VENV/bin/python3" -c 'import mesonbuild, pycotap' 2>/dev/null ||
    [ "$("$VENV/bin/meson" --version 2>/dev/null)" != 1.5.0 ]; then
    log "creating $VENV (meson 1.5.0, pycotap 1.3.1 from PyPI)"
    rm -rf "$VENV"
    # Debian's interpreter, not whatever python3 is first in PATH (pyenv etc.).
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q meson==1.5.0 pycotap==1.3.1
fi

# --- 6. configure (only when its inputs changed) + ninja ---------------------------------
CFG_DIGEST=$(printf '%s\n' "$QVER" "${CONFIGURE_ARGS[@]}" "${BUILD_DEPS[@]}" "VIOMMU_ROOT=$VIOMMU_ROOT" | sha256sum | cut -d' ' -f1)
run_configure() {
    (cd "$BUILD" && "$TREE/configure" "${CONFIGURE_ARGS[@]}") >"$CACHE/qemu-configure.log" 2>&1
}
if [ ! -f "$BUILD/build.ninja" ] || [ "$(cat "$BUILD/.viommu-configure" 2>/dev/null)" != "$CFG_DIGEST" ]; then
    log "configure ${CONFIGURE_ARGS[*]} (log: $CACHE/qemu-configure.log)"
    mkdir -p "$BUILD"
    rm -f "$BUILD/.viommu-configure" "$STAMP"
    # Re-configure in place first (keeps the objects); start from scratch if that fails.
    if ! run_configure; then
        log "configure failed in the existing build dir; retrying in a clean one"
        rm -rf "$BUILD"; mkdir -p "$BUILD"
        run_configure || { tail -n 40 "$CACHE/qemu-configure.log" >&2; die "configure failed (log: $CACHE/qemu-configure.log)"; }
    fi
    grep -q 'pc-bios/optionrom' "$BUILD/config-host.mak" ||
        die "configure will not build the x86 option ROMs (cc -m32 -lgcc must link: gcc-multilib)"
    echo "$CFG_DIGEST" >"$BUILD/.viommu-configure"
fi
JOBS=${VIOMMU_QEMU_JOBS:-$(nproc)}
log "building qemu-system-x86_64 and the x86 option ROMs, -j$JOBS (log: $CACHE/qemu-build.log)"
start=$SECONDS
# Only what the harness runs (ninja's default target would also build ~400 test objects).
# nice: the QEMU build must not starve whatever else the machine is compiling.
if ! { nice -n 10 ninja -C "$BUILD" -j"$JOBS" qemu-system-x86_64 &&
       nice -n 10 make -C "$BUILD" -j"$JOBS" pc-bios/optionrom/all; } >"$CACHE/qemu-build.log" 2>&1; then
    grep -E 'error|FAILED' "$CACHE/qemu-build.log" | head -n 40 >&2
    die "build failed (log: $CACHE/qemu-build.log)"
fi
[ -f "$BUILD/pc-bios/optionrom/linuxboot_dma.bin" ] || die "no pc-bios/optionrom/linuxboot_dma.bin after the build"
log "built in $((SECONDS - start)) s"
echo "$DIGEST" >"$STAMP"
echo "$LIBVIOMMU_DIGEST" >"$BUILD/.viommu-lib"
echo "$BUILD/qemu-system-x86_64"
