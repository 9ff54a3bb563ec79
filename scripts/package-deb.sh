#!/usr/bin/env bash
# Builds walctl_VERSION_ARCH.deb with dpkg-deb from a release build (static Swift standard library):
# scripts/install.sh with PREFIX=/usr into a staging tree, /etc/walctl/walctl.conf as a conffile, and
# a Depends line computed from what the binary needs at run time:
#   - linked: every library `ldd walctl-core` resolves (libzstd, zlib, libsqlite3, libc, ...), mapped to
#     its Debian package with `dpkg -S`;
#   - loaded on first use with dlopen() by Sources/CLazyLoad (libcurl.so.4, libpq.so.5,
#     libcrypto.so.3: the sonames are read from those sources), mapped the same way. They are hard
#     dependencies: S3 needs libcurl and libcrypto, backup and check need libpq.
# walctl and walctl-fast (the front, the same program) are static executables and need nothing.
#
#   scripts/package-deb.sh                 -> dist/walctl_0.1.0_amd64.deb
#   OUTDIR=/tmp scripts/package-deb.sh
#   BUILD=1 scripts/package-deb.sh         build first
#   DEB_COMPRESSION=xz scripts/package-deb.sh   smaller, slower (default gzip)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$REPO/.build-static/release}"
OUTDIR="${OUTDIR:-$REPO/dist}"
die() { printf 'package-deb: error: %s\n' "$*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg package)"

if [ "${BUILD:-0}" = 1 ]; then
    (cd "$REPO" && for p in walctl walctl-fast walctl-core; do
        swift build -c release --static-swift-stdlib --scratch-path "$(dirname "$BUILD_DIR")" --product "$p" 2>&1 | tail -1
    done)
fi
# walctl and walctl-fast (the front) are static executables; walctl-core is the one with libraries.
BIN="$BUILD_DIR/walctl-core"
[ -x "$BIN" ] || die "$BIN not found: build first (BUILD=1 $0)"
VERSION="$("$BIN" --version)"
ARCH="$(dpkg --print-architecture)"

# The Swift runtime must be inside the binary: no libswift*.so may be needed at run time.
if ldd "$BIN" | grep -q 'libswift\|libFoundation\|libdispatch'; then
    die "$BIN links the Swift runtime dynamically: build with --static-swift-stdlib"
fi

package_of() {  # package_of /path/to/lib.so: the Debian package that ships it (through /usr merges)
    local p="$1" real out
    out="$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)"
    if [ -z "$out" ]; then
        real="$(readlink -f "$p")"
        out="$(dpkg -S "$real" 2>/dev/null | head -1 | cut -d: -f1)"
        [ -n "$out" ] || out="$(dpkg -S "${real#/usr}" 2>/dev/null | head -1 | cut -d: -f1)"
        [ -n "$out" ] || out="$(dpkg -S "/usr$real" 2>/dev/null | head -1 | cut -d: -f1)"
    fi
    echo "$out"
}

deps=()
while read -r lib; do
    [ -n "$lib" ] || continue
    pkg="$(package_of "$lib")"
    [ -n "$pkg" ] || die "no Debian package ships $lib (linked by walctl)"
    deps+=("$pkg")
done < <(ldd "$BIN" | awk '/=> \// {print $3} /^\s*\/lib.*ld-linux/ {print $1}')

for soname in $(grep -ho '"lib[a-z0-9]*\.so\.[0-9.]*"' "$REPO"/Sources/CLazyLoad/*.c | tr -d '"' | sort -u); do
    path="$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|x86_64|aarch64|AArch64/ {print $NF; exit}')"
    [ -n "$path" ] || path="$(ldconfig -p | awk -v s="$soname" '$1 == s {print $NF; exit}')"
    if [ -z "$path" ]; then
        case "$soname" in libcrypto.so.1.1) continue ;; esac   # the fallback for older systems
        die "$soname (dlopened by walctl, Sources/CLazyLoad) is not installed here: install its runtime package (apt-get install libcurl4 libpq5 libssl3)"
    fi
    pkg="$(package_of "$path")"
    [ -n "$pkg" ] || die "no Debian package ships $path ($soname)"
    deps+=("$pkg")
done
DEPENDS="$(printf '%s\n' "${deps[@]}" | sed 's/:.*//' | sort -u | paste -sd, | sed 's/,/, /g')"

STAGE="$(mktemp -d /tmp/walctl-deb.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"
PREFIX=/usr DESTDIR="$STAGE" UNITDIR=/usr/lib/systemd/system BUILD_DIR="$BUILD_DIR" bash "$REPO/scripts/install.sh" >/dev/null
# Debian ships binaries without symbols (84 -> 62 MB for walctl; the Swift runtime's reflection
# metadata is not a symbol table and stays).
strip --strip-unneeded "$STAGE/usr/bin/walctl" "$STAGE/usr/bin/walctl-fast" "$STAGE/usr/bin/walctl-core"
"$STAGE/usr/bin/walctl" --version >/dev/null || die "the stripped walctl does not run"

install -d "$STAGE/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
cat > "$STAGE/DEBIAN/control" <<EOF
Package: walctl
Version: $VERSION
Section: database
Priority: optional
Architecture: $ARCH
Maintainer: walctl maintainers <walctl@localhost>
Installed-Size: $size
Depends: $DEPENDS
Recommends: postgresql-client
Description: PostgreSQL WAL archive manager and point-in-time recovery
 walctl archives WAL segments (archive_command / restore_command), keeps a
 catalog of what was archived, takes base backups and plans point-in-time
 recovery, on a local repository or S3. Includes systemd timers for backup,
 retention, verification and recovery drills (run as postgres), a man page
 and bash/zsh/fish completions.
EOF
echo "/etc/walctl/walctl.conf" > "$STAGE/DEBIAN/conffiles"
# The config may hold S3 credentials: readable by root and the postgres group only (when it exists).
cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if getent group postgres >/dev/null; then chgrp postgres /etc/walctl/walctl.conf; fi
    chmod 640 /etc/walctl/walctl.conf
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
EOF
cat > "$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
EOF
chmod 755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm"

mkdir -p "$OUTDIR"
DEB="$OUTDIR/walctl_${VERSION}_${ARCH}.deb"
# gzip: seconds instead of xz's minutes for ~70 MB on a busy machine, and every dpkg reads it
# (DEB_COMPRESSION=xz for a smaller file).
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-gzip}" --build "$STAGE" "$DEB" >/dev/null
echo "package-deb: $DEB (Depends: $DEPENDS)"
