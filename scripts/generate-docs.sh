#!/usr/bin/env bash
# Generates walctl's man page and its bash/zsh/fish completion scripts from the argument definitions
# of a built walctl (scripts/install.sh and scripts/package-deb.sh call it).
#
#   man/walctl.1          swift-argument-parser's `generate-manual` tool (the tool behind its
#                         GenerateManual plugin), run on the built binary: it reads the
#                         `--experimental-dump-help` JSON, so every subcommand, option, help text and
#                         example (`discussion`) in the page comes from the code.
#   completions/walctl.bash, _walctl, walctl.fish   `walctl --generate-completion-script SHELL`
#
# Why not `swift package generate-manual`: the plugin first builds the whole package again with its
# own parameters (a second release build without --static-swift-stdlib, minutes on two cores);
# building only the `generate-manual` product into the same scratch directory and running it on the
# binary already built gives the same page.
#
# Environment: BUILD_DIR (default .build-static/release), OUT (default: share/ beside BUILD_DIR),
# SOURCE_DATE_EPOCH (the page's date; default: the last commit's).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$REPO/.build-static/release}"
OUT="${OUT:-$(dirname "$BUILD_DIR")/share}"
WALCTL_BIN="$BUILD_DIR/walctl"
[ -x "$WALCTL_BIN" ] || { echo "generate-docs: $WALCTL_BIN not found: build walctl first" >&2; exit 1; }

mkdir -p "$OUT/man" "$OUT/completions"
for sh in bash zsh fish; do
    case "$sh" in bash) f=walctl.bash ;; zsh) f=_walctl ;; fish) f=walctl.fish ;; esac
    "$WALCTL_BIN" --generate-completion-script "$sh" > "$OUT/completions/$f.tmp"
    [ -s "$OUT/completions/$f.tmp" ] || { echo "generate-docs: empty $sh completion script" >&2; exit 1; }
    mv "$OUT/completions/$f.tmp" "$OUT/completions/$f"
done

TOOL="$BUILD_DIR/generate-manual"
if [ ! -x "$TOOL" ]; then
    # The same flags as walctl's build: other flags in the same scratch directory would rebuild everything.
    (cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path "$(dirname "$BUILD_DIR")" --product generate-manual 2>&1 | tail -1)
fi
[ -x "$TOOL" ] || { echo "generate-docs: could not build swift-argument-parser's generate-manual" >&2; exit 1; }
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}"
"$TOOL" "$WALCTL_BIN" --date "$(date -u -d "@$epoch" +%Y-%m-%d)" --section 1 \
    --authors "walctl maintainers" --output-directory "$OUT/man"
[ -s "$OUT/man/walctl.1" ] || { echo "generate-docs: generate-manual wrote no walctl.1" >&2; exit 1; }
# A blank line inside a discussion (before its Examples) is an empty input line to mdoc, which man
# warns about: make it the paragraph break it is meant to be.
sed -i 's/^$/.Pp/' "$OUT/man/walctl.1"
echo "generate-docs: $OUT/man/walctl.1, $OUT/completions/{walctl.bash,_walctl,walctl.fish}"
