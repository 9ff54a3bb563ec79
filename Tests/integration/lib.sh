# Shared helpers for walctl's integration suites: throwaway PostgreSQL clusters run as the postgres
# OS user (PostgreSQL refuses root), a walctl config per test, and pass/fail bookkeeping.
#
# A suite sources this file, defines functions named test_*, and ends with `run_suite "$@"`.
# Environment: WALCTL (the binary, default: release build), PG_VERSIONS (default "15 16 18"),
# WALCTL_PG15_BIN / WALCTL_PG16_BIN / WALCTL_PG18_BIN (server bin dirs), KEEP_TMP=1 keeps temp dirs.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WALCTL="${WALCTL:-$REPO/.build-static/release/walctl}"
# The full binary the front (walctl, walctl-fast) hands over to; a WALCTL_FULL wrapper must exec it.
WALCTL_CORE="$(dirname "$WALCTL")/walctl-core"
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

# WALCTL_TEST_REPO=s3 runs a suite against moto_server (S3 API with signature checking on) instead
# of a file repository. start_moto starts one emulator for the whole suite.
WALCTL_TEST_REPO="${WALCTL_TEST_REPO:-file}"
MOTO_PID=""
start_moto() {
    local envf log
    envf="$(mktemp /tmp/walctl-moto-env.XXXXXX)"; log="$(mktemp /tmp/walctl-moto-log.XXXXXX)"
    python3 "$REPO/scripts/moto-server.py" --port 0 --bucket walctl-test --env-file "$envf" \
        --no-stdin-watch --max-seconds 3600 > "$log" 2>&1 &
    MOTO_PID=$!
    # Replaces any EXIT trap: a test that starts moto after its cluster sets its cleanup trap again.
    trap 'stop_moto' EXIT
    local end=$((SECONDS + 60))
    until grep -q '^READY' "$log"; do
        if [ $SECONDS -ge $end ] || ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "moto_server did not start:"; cat "$log"; return 1
        fi
        sleep 0.2
    done
    # shellcheck disable=SC1090
    source "$envf"
    unset WALCTL_REPOSITORY WALCTL_S3_ENDPOINT WALCTL_S3_REGION WALCTL_S3_URI_STYLE WALCTL_S3_KEY WALCTL_S3_KEY_SECRET
    export MOTO_ENDPOINT MOTO_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
}
stop_moto() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; MOTO_PID=""; }

# write_config DIR [extra lines...]: a walctl config at DIR/walctl.conf for a repository in DIR/repo
# (file) or under a fresh prefix of the moto bucket (s3). REPO_URL is set to the repository URL.
write_config() {
    local dir="$1"; shift
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        REPO_URL="s3://$MOTO_BUCKET/$(basename "$dir")"
    else
        REPO_URL="file://$dir/repo"
    fi
    {
        echo "repository = $REPO_URL"
        if [ "$WALCTL_TEST_REPO" = s3 ]; then
            echo "s3-endpoint = $MOTO_ENDPOINT"
            echo "s3-region = us-east-1"
            echo "s3-uri-style = path"
            echo "s3-key = $AWS_ACCESS_KEY_ID"
            echo "s3-key-secret = $AWS_SECRET_ACCESS_KEY"
        fi
        echo "catalog = $dir/catalog.db"
        echo "archive-get-retry-time = 2"
        for l in "$@"; do echo "$l"; done
    } > "$dir/walctl.conf"
    chmod 600 "$dir/walctl.conf"
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

# repo_objects DIR PATTERN: keys of the repository objects whose name matches the grep -E PATTERN.
repo_objects() {
    local dir="$1" pat="$2"
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        python3 - "$MOTO_BUCKET" "$(basename "$dir")/" <<'PY' | grep -E "$pat" || true
import sys, boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    for o in page.get("Contents", []): print(o["Key"])
PY
    else
        (cd "$dir/repo" 2>/dev/null && find . -type f | sed 's|^\./||' | grep -E "$pat") || true
    fi
}

# repo_damage DIR KEY MODE: MODE=flip overwrites 4 bytes in the middle, MODE=truncate drops the last 100.
repo_damage() {
    local dir="$1" key="$2" mode="$3"
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        python3 - "$MOTO_BUCKET" "$key" "$mode" <<'PY'
import sys, boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
b = bytearray(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read())
if sys.argv[3] == "flip":
    m = len(b) // 2; b[m:m + 4] = b"\xff\xff\xff\xff"
else:
    b = b[:-100]
s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=bytes(b))
PY
    else
        local f="$dir/repo/$key"
        if [ "$mode" = flip ]; then
            printf '\xff\xff\xff\xff' | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") / 2 )) conv=notrunc 2>/dev/null
        else
            truncate -s $(( $(stat -c %s "$f") - 100 )) "$f"
        fi
    fi
}

# repo_key DIR KEY: the key repo_objects, repo_get, repo_damage and repo_delete take for the
# repository-relative KEY (on S3 the repository's prefix comes first).
repo_key() {
    if [ "$WALCTL_TEST_REPO" = s3 ]; then echo "$(basename "$1")/$2"; else echo "$2"; fi
}

# repo_get DIR KEY: the raw object bytes on stdout.
repo_get() {
    local dir="$1" key="$2"
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        python3 -c 'import sys,boto3,os; sys.stdout.buffer.write(boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1").get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read())' "$MOTO_BUCKET" "$key"
    else
        cat "$dir/repo/$key"
    fi
}

# start_archiving_source VERSION [CONF...]: a cluster of PostgreSQL VERSION archiving through walctl
# into the suite's repository (write_config), with `timezone = 'UTC'` and any further postgresql.conf
# lines; a CONF written `walctl:LINE` is a walctl.conf line instead (`walctl:archive-check-timeout = 60`).
# Sets W, PORT, BIN, V. Installs `trap cleanup EXIT`: the suite defines cleanup.
start_archiving_source() {
    V="$1"; shift
    require_pg "$V"
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin "$V")"
    local walctl_lines=() pg_lines=() l
    for l in "$@"; do
        if [ "${l#walctl:}" != "$l" ]; then walctl_lines+=("${l#walctl:}"); else pg_lines+=("$l"); fi
    done
    write_config "$W" "${walctl_lines[@]}"
    init_cluster "$V" "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || { fail "walctl init failed"; return 1; }
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'" "${pg_lines[@]}"
    pg_start "$V" "$W/data"
    trap cleanup EXIT   # each test runs in its own subshell: stop its servers however it ends
}

# now_utc: the clock_timestamp of the cluster at $W:$PORT (version $V) as `YYYY-MM-DD HH:MM:SS.ffffff+00`.
now_utc() { psql_at "$V" "$W" "$PORT" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"; }

# switch_and_wait [PORT]: closes the current segment of the cluster at $W:PORT (default $PORT) and
# waits until its archiver has stored it; prints the segment's name.
switch_and_wait() {
    local port="${1:-$PORT}" last
    last="$(psql_at "$V" "$W" "$port" "select pg_walfile_name(pg_switch_wal())")"
    wait_until 60 bash -c "a=\$(runuser -u postgres -- $(pg_bin "$V")/psql -X -h $W -p $port -d postgres -qAt -c 'select coalesce(last_archived_wal, 0::text) from pg_stat_archiver'); [ \"\${a:0:24}\" \\> '$last' ] || [ \"\${a:0:24}\" = '$last' ]" \
        || fail "archiver did not reach $last"
    echo "$last"
}

# repo_delete DIR KEY: removes one repository object (file or S3).
repo_delete() {
    local dir="$1" key="$2"
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        python3 -c 'import sys,boto3,os; boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1").delete_object(Bucket=sys.argv[1], Key=sys.argv[2])' "$MOTO_BUCKET" "$key"
    else
        rm -f "$dir/repo/$key"
    fi
}

# run_suite: runs every test_* function (or those named in $@); each in its own subshell.
run_suite() {
    if [ "$WALCTL_TEST_REPO" = s3 ] && [ -z "$MOTO_PID" ]; then
        start_moto || { echo "$(basename "$0" .sh)[s3]: 0 passed, 1 failed"; return 1; }
    fi
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
    local label; label="$(basename "$0" .sh)"; [ "$WALCTL_TEST_REPO" = s3 ] && label="$label-s3"
    echo "$label: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

require_pg() {
    local v="$1"
    if [ ! -x "$(pg_bin "$v")/postgres" ]; then
        fail "PostgreSQL $v binaries not found at $(pg_bin "$v") (run scripts/install-deps.sh)"
        return 1
    fi
}
