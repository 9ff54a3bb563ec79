# Sourced by the scripts that need root (demo.sh, test.sh, install-deps.sh, Benchmarks/install-bench-deps.sh):
#
#   source "$REPO/scripts/as-root.sh"; as_root NAME "$0" "$@"
#
# Root: returns and the script goes on. Not root, sudo installed: re-runs the script through
# `sudo -E` (environment kept: SUITES, PG_VERSIONS, ...). Not root and no sudo (a fresh Debian
# machine where you logged in as a user): one clear line and exit 1. Nothing else here needs sudo.
as_root() {
    local name="$1" script="$2"; shift 2
    [ "$(id -u)" -eq 0 ] && return 0
    if command -v sudo >/dev/null 2>&1; then
        printf '%s: not running as root: re-running through sudo\n' "$name" >&2
        exec sudo -E bash "$script" "$@"
    fi
    printf '%s: must run as root (it installs packages and starts PostgreSQL as the postgres user), and sudo is not installed: log in as root (su -) and run: bash %s\n' "$name" "$script" >&2
    exit 1
}
