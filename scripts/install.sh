#!/usr/bin/env bash
# Installs walctl from a release build: the binaries, the man page, bash/zsh/fish completions, an
# example configuration and the systemd units (walctl-backup, -expire, -verify, -drill: .service +
# .timer, run as postgres). docs/operator-guide.md, "Installing".
#
#   scripts/install.sh                         into /usr/local (needs root)
#   PREFIX=/usr DESTDIR=/tmp/stage scripts/install.sh    a staged tree (scripts/package-deb.sh does this)
#
# Environment:
#   PREFIX     /usr/local        binaries in PREFIX/bin, man page in PREFIX/share/man/man1, ...
#   DESTDIR    (empty)           prepended to every path (staging for a package)
#   SYSCONFDIR /etc              the config goes to SYSCONFDIR/walctl/walctl.conf, only when none exists
#   UNITDIR    PREFIX/lib/systemd/system   (systemd reads /usr/local/lib/systemd/system and /usr/lib/systemd/system)
#   BUILD_DIR  .build-static/release       where walctl and walctl-fast were built
#   BUILD=1    build first (swift build -c release --static-swift-stdlib)
#
# The man page and completions are generated from walctl's argument definitions by
# scripts/generate-docs.sh (into share/ beside BUILD_DIR), which this script runs when they are missing
# or older than the binary.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
SYSCONFDIR="${SYSCONFDIR:-/etc}"
UNITDIR="${UNITDIR:-$PREFIX/lib/systemd/system}"
BUILD_DIR="${BUILD_DIR:-$REPO/.build-static/release}"
SHARE_OUT="${SHARE_OUT:-$(dirname "$BUILD_DIR")/share}"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

# Writing under a system prefix needs root; a DESTDIR staging tree does not.
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ] && [ ! -w "$PREFIX" ]; then
    if command -v sudo >/dev/null 2>&1; then
        say "re-running through sudo (installing into $PREFIX needs root)"
        exec sudo --preserve-env=PREFIX,SYSCONFDIR,UNITDIR,BUILD_DIR,SHARE_OUT,BUILD bash "$0" "$@"
    fi
    die "installing into $PREFIX needs root: run this as root (sudo is not installed), or set DESTDIR/PREFIX to a directory you can write"
fi

if [ "${BUILD:-0}" = 1 ]; then
    (cd "$REPO" && for p in walctl walctl-fast walctl-core; do
        swift build -c release --static-swift-stdlib --scratch-path "$(dirname "$BUILD_DIR")" --product "$p" 2>&1 | tail -1
    done)
fi
for b in walctl walctl-fast walctl-core; do
    [ -x "$BUILD_DIR/$b" ] || die "$BUILD_DIR/$b not found: build first (BUILD=1 $0, or swift build -c release --static-swift-stdlib --scratch-path .build-static)"
done

if [ ! -f "$SHARE_OUT/man/walctl.1" ] || [ "$BUILD_DIR/walctl-core" -nt "$SHARE_OUT/man/walctl.1" ]; then
    BUILD_DIR="$BUILD_DIR" OUT="$SHARE_OUT" bash "$REPO/scripts/generate-docs.sh"
fi

bindir="$PREFIX/bin"
mandir="$PREFIX/share/man/man1"
docdir="$PREFIX/share/doc/walctl"
bashdir="$PREFIX/share/bash-completion/completions"
# Debian's zsh reads /usr/share/zsh/vendor-completions; /usr/local/share/zsh/site-functions elsewhere.
if [ "$PREFIX" = /usr ]; then zshdir="$PREFIX/share/zsh/vendor-completions"; else zshdir="$PREFIX/share/zsh/site-functions"; fi
fishdir="$PREFIX/share/fish/vendor_completions.d"

D="$DESTDIR"
install -d "$D$bindir" "$D$mandir" "$D$docdir/examples" "$D$bashdir" "$D$zshdir" "$D$fishdir" "$D$UNITDIR"
# walctl and walctl-fast: the front; walctl-core: the full binary it runs, found beside it.
install -m 755 "$BUILD_DIR/walctl" "$BUILD_DIR/walctl-fast" "$BUILD_DIR/walctl-core" "$D$bindir/"
install -m 644 "$SHARE_OUT/man/walctl.1" "$D$mandir/walctl.1"
gzip -9nf "$D$mandir/walctl.1"
install -m 644 "$SHARE_OUT/completions/walctl.bash" "$D$bashdir/walctl"
install -m 644 "$SHARE_OUT/completions/_walctl" "$D$zshdir/_walctl"
install -m 644 "$SHARE_OUT/completions/walctl.fish" "$D$fishdir/walctl.fish"
install -m 644 "$REPO/config/walctl.conf" "$D$docdir/examples/walctl.conf"
for f in README.md docs/operator-guide.md docs/configuration.md docs/errors.md docs/metrics.md; do
    [ -f "$REPO/$f" ] && install -m 644 "$REPO/$f" "$D$docdir/$(basename "$f")"
done
for u in "$REPO"/config/systemd/*.service "$REPO"/config/systemd/*.timer; do
    sed "s|@BINDIR@|$bindir|g" "$u" > "$D$UNITDIR/$(basename "$u")"
    chmod 644 "$D$UNITDIR/$(basename "$u")"
done

# The configuration: never overwritten. 0640 root:postgres when the postgres user exists (it may
# hold S3 credentials); a package ships it as a conffile instead (scripts/package-deb.sh).
conf="$D$SYSCONFDIR/walctl/walctl.conf"
if [ "${INSTALL_CONFIG:-1}" = 1 ] && [ ! -e "$conf" ]; then
    install -d -m 755 "$D$SYSCONFDIR/walctl"
    install -m 640 "$REPO/config/walctl.conf" "$conf"
    if [ -z "$D" ] && id postgres >/dev/null 2>&1; then chgrp postgres "$conf"; fi
    say "example configuration installed at $conf: set \`repository\` before enabling the timers"
fi

say "installed walctl $("$BUILD_DIR/walctl" --version) into ${D:+$D}$PREFIX"
if [ -z "$D" ]; then
    command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && systemctl daemon-reload || true
    say "scheduled jobs: systemctl enable --now walctl-backup.timer walctl-expire.timer walctl-verify.timer walctl-drill.timer"
fi
