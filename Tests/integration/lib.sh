# Shared helpers for walctl's integration suites: throwaway PostgreSQL clusters run as the postgres
# OS user (PostgreSQL refuses root), a walctl config per test, and pass/fail bookkeeping.
#
# A suite sources this file, defines functions named test_*, and ends with `run_suite "$@"`.
# Environment: WALCTL (the binary, default: release build), PG_VERSIONS (default "15 16 18"),
# WALCTL_PG15_BIN / WALCTL_PG16_BIN / WALCTL_PG18_BIN (server bin dirs), KEEP_TMP=1 keeps temp dirs.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WALCTL="${WALCTL:-$REPO/.build/release/walctl}"
PG_VERSIONS="${PG_VERSIONS:-15 16 18}"
PASSED=0
FAILED=0
FAILED_NAMES=()

pg_bin() {
    case "$1" in
        15) echo "${WALCTL_PG15_BIN:-/usr/lib/postgresql/15/bin}" ;;
        16) echo "${WALCTL_PG16_BIN:-$REPO/.deps/pg16/bin}" ;;
        18) echo "${WALCTL_PG18_BIN:-$REPO/.deps/pg18/bin}" ;;
        *) echo "/nonexistent" ;;
    esac
}

as_pg() { runuser -u postgres -- "$@"; }

# A fresh working directory for one test, owned by postgres.
new_workdir() {
    local d
    d="$(mktemp -d /tmp/walctl-it.XXXXXX)"
    chmod 755 "$d"
    chown postgres:postgres "$d"
    echo "$d"
}

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p" ]; then echo "$p"; return; fi
    done
}

# write_config DIR [extra lines...]: a walctl config at DIR/walctl.conf for a file repository in DIR/repo.
write_config() {
    local dir="$1"; shift
    {
        echo "repository = file://$dir/repo"
        echo "catalog = $dir/catalog.db"
        echo "archive-get-retry-time = 2"
        for l in "$@"; do echo "$l"; done
    } > "$dir/walctl.conf"
    chmod 644 "$dir/walctl.conf"
    chown postgres:postgres "$dir/walctl.conf"
}

# init_cluster VERSION DATADIR [initdb args...]
init_cluster() {
    local v="$1" data="$2"; shift 2
    as_pg "$(pg_bin "$v")/initdb" -D "$data" -A trust -U postgres --no-sync "$@" >/dev/null
}

# configure_cluster DATADIR PORT SOCKETDIR [extra settings...]
configure_cluster() {
    local data="$1" port="$2" sock="$3"; shift 3
    {
        echo "port = $port"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$sock'"
        echo "fsync = off"
        echo "max_wal_senders = 4"
        echo "wal_level = replica"
        for l in "$@"; do echo "$l"; done
    } >> "$data/postgresql.conf"
}

pg_start() { local v="$1" data="$2"; as_pg "$(pg_bin "$v")/pg_ctl" -D "$data" -l "$data/../$(basename "$data").log" -w -t 120 start >/dev/null; }
pg_stop() { local v="$1" data="$2"; as_pg "$(pg_bin "$v")/pg_ctl" -D "$data" -w -t 60 -m "${3:-fast}" stop >/dev/null 2>&1 || true; }
# psql_at VERSION SOCKDIR PORT SQL: one value per line, unaligned.
psql_at() { local v="$1" sock="$2" port="$3"; shift 3; as_pg "$(pg_bin "$v")/psql" -X -h "$sock" -p "$port" -d postgres -qAt -v ON_ERROR_STOP=1 -c "$*"; }

# wait_until TIMEOUT_SECONDS COMMAND...: polls until the command succeeds.
wait_until() {
    local t="$1"; shift
    local end=$((SECONDS + t))
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}

fail() { echo "    FAIL: $*" >&2; return 1; }
assert_eq() { [ "$1" == "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"; }

# run_suite: runs every test_* function (or those named in $@); each in its own subshell.
run_suite() {
    local names
    if [ $# -gt 0 ]; then names="$*"; else names="$(declare -F | awk '{print $3}' | grep '^test_')"; fi
    for t in $names; do
        local start=$SECONDS
        # Not inside an `if`: bash ignores `set -e` in conditions.
        ( set -e; "$t" )
        local rc=$?
        if [ $rc -eq 0 ]; then
            PASSED=$((PASSED + 1)); echo "  ok   $t ($((SECONDS - start)) s)"
        else
            FAILED=$((FAILED + 1)); FAILED_NAMES+=("$t"); echo "  FAIL $t ($((SECONDS - start)) s)"
        fi
    done
    echo "$(basename "$0"): $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

require_pg() {
    local v="$1"
    if [ ! -x "$(pg_bin "$v")/postgres" ]; then
        fail "PostgreSQL $v binaries not found at $(pg_bin "$v") (run scripts/install-deps.sh)"
        return 1
    fi
}
