#!/usr/bin/env bash
# Benchmarks/throughput.sh: the "Measure" figures of issue 8 (asynchronous archive-push and
# prefetching archive-get) through a real PostgreSQL 15, in one run.
#
#   Benchmarks/throughput.sh           # build, make a WAL backlog, measure, print a markdown report
#
# 1. builds walctl (release, static Swift stdlib) into $SCRATCH unless WALCTL names a binary;
# 2. a PostgreSQL 15 cluster with archive_mode = on and an empty archive_command (the archiver
#    waits), a base backup, a pgBackRest stanza (posix, zst 3), then `pgbench -i` rounds until at
#    least $SEGS segments are .ready; the stopped cluster is kept as the template of every run;
# 3. archive throughput: per run a fresh copy of the template and a fresh repository, archive_command
#    set to the tool, the server started, the clock stopped when pg_stat_archiver counts every
#    backlog file archived. Tools: walctl async (local, and S3 on moto), pgBackRest async
#    process-max=2 zst (local; see REPORT for S3), walctl sync (local, for scale);
# 4. recovery wall time of the same segments from the base backup: the floor (segments already in
#    pg_wal, no restore_command), walctl sync, walctl prefetch (restore-prefetch = $PREFETCH), and
#    pgBackRest async archive-get; clock from `pg_ctl start` to pg_is_in_recovery() = false;
# 5. medians of $RUNS runs into $WORK/report.md (and stdout).
#
# Environment: SCRATCH (default .build-bench), WORK (default /tmp/walctl-throughput), SEGS (220),
# RUNS (3), PREFETCH (8), PGBIN (/usr/lib/postgresql/15/bin), WALCTL, S3=0 skips moto.
# Needs root (runuser to postgres), pgbackrest, pgbench, python3 with moto for S3. Rerunnable.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-bench}
WORK=${WORK:-/tmp/walctl-throughput}
SEGS=${SEGS:-220}
RUNS=${RUNS:-3}
PREFETCH=${PREFETCH:-8}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
S3=${S3:-1}
PORT=${PORT:-54993}

for tool in pgbackrest runuser python3; do command -v "$tool" >/dev/null || { echo "throughput.sh: $tool is required" >&2; exit 2; }; done
[ -x "$PGBIN/initdb" ] || { echo "throughput.sh: PostgreSQL 15 not found in $PGBIN" >&2; exit 2; }

if [ -z "${WALCTL:-}" ]; then
    echo "== building walctl (release, static Swift stdlib) into $SCRATCH" >&2
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product walctl >&2)
    WALCTL=$SCRATCH/release/walctl
fi

as_pg() { runuser -u postgres -- "$@"; }
stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$1" -m "${2:-immediate}" -w stop >/dev/null 2>&1 || true; }
for d in "$WORK"/tpl "$WORK"/run "$WORK"/rec; do [ -d "$d" ] && stop_pg "$d"; done
MOTO_PID=""
cleanup() {
    for d in "$WORK"/tpl "$WORK"/run "$WORK"/rec; do [ -d "$d" ] && stop_pg "$d"; done
    [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"/{sock,pgbr-lock,pgbr-log,pgbr-spool}
chown -R postgres "$WORK"
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
psql_q() { as_pg "$PGBIN/psql" -X -qAt -h "$WORK/sock" -p "$PORT" -d postgres -c "$1"; }

# --- 2. the template cluster with a backlog ----------------------------------------------------------
echo "== template cluster, base backup, pgBackRest stanza, $SEGS segments of pgbench WAL" >&2
as_pg "$PGBIN/initdb" -D "$WORK/tpl" -U postgres -A trust --no-sync >/dev/null
cat >>"$WORK/tpl/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
archive_mode = on
archive_command = ''
max_wal_size = 16GB
checkpoint_timeout = 1h
fsync = off
full_page_writes = on
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/tpl" -l "$WORK/tpl.log" -w start >/dev/null
PGBR_COMMON="--stanza=bench --repo1-path=$WORK/pgbr --lock-path=$WORK/pgbr-lock --log-path=$WORK/pgbr-log --log-level-console=warn --log-level-file=off"
PGBR_PUSH="$PGBR_COMMON --compress-type=zst --compress-level=3"
mkdir -p "$WORK/pgbr"; chown postgres "$WORK/pgbr"
as_pg pgbackrest $PGBR_COMMON --pg1-path="$WORK/tpl" --pg1-socket-path="$WORK/sock" --pg1-port="$PORT" stanza-create >&2
as_pg cp -a "$WORK/pgbr" "$WORK/pgbr-template"
as_pg "$PGBIN/pg_basebackup" -h "$WORK/sock" -p "$PORT" -D "$WORK/backup" -X fetch -c fast --no-sync 2>/dev/null
ready() { ls "$1/pg_wal/archive_status" | grep -c '\.ready$' || true; }
while [ "$(ready "$WORK/tpl")" -lt "$SEGS" ]; do
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -i -s 40 -I dtg -q postgres >/dev/null 2>&1
done
psql_q "select pg_switch_wal()" >/dev/null
sleep 1
EXPECTED=$(psql_q "select count(*) || ':' || sum(abalance) from pgbench_accounts")
stop_pg "$WORK/tpl" fast
N=$(ready "$WORK/tpl")
LAST=$(ls "$WORK/tpl/pg_wal/archive_status" | grep '\.ready$' | sed 's/\.ready$//' | sort | tail -1)
echo "== backlog: $N files ready (last $LAST), $(du -sm "$WORK/tpl/pg_wal" | cut -f1) MiB of pg_wal" >&2

if [ "$S3" = 1 ]; then
    envf=$(mktemp); log=$(mktemp)
    python3 "$ROOT/scripts/moto-server.py" --port 0 --bucket walctl-bench --env-file "$envf" --no-stdin-watch --max-seconds 7200 >"$log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 300); do grep -q '^READY' "$log" && break; sleep 0.2; done
    # shellcheck disable=SC1090
    source "$envf"
fi

# walctl_conf NAME KIND [extra lines]: a config for a fresh repository (KIND file or s3).
walctl_conf() {
    local name=$1 kind=$2; shift 2
    local c="$WORK/$name.conf"
    {
        if [ "$kind" = s3 ]; then
            echo "repository = s3://$MOTO_BUCKET/$name-$RANDOM$RANDOM"
            echo "s3-endpoint = $MOTO_ENDPOINT"; echo "s3-uri-style = path"
            echo "s3-key = $AWS_ACCESS_KEY_ID"; echo "s3-key-secret = $AWS_SECRET_ACCESS_KEY"
        else
            rm -rf "$WORK/repo-$name"; echo "repository = file://$WORK/repo-$name"
        fi
        echo "catalog = $WORK/catalog-$name.db"
        for l in "$@"; do echo "$l"; done
    } >"$c"
    rm -f "$WORK/catalog-$name.db"
    chown postgres "$c"
    echo "$c"
}

# --- 3. archive throughput --------------------------------------------------------------------------
# archive_run LABEL ARCHIVE_COMMAND: seconds until every backlog file is archived.
archive_run() {
    local cmd=$2
    stop_pg "$WORK/run"; rm -rf "$WORK/run"
    as_pg cp -a "$WORK/tpl" "$WORK/run"
    rm -rf "$WORK/run/walctl_spool"
    echo "archive_command = '$cmd'" >>"$WORK/run/postgresql.conf"
    sync
    local t0 t1 done=0
    t0=$(now)
    as_pg "$PGBIN/pg_ctl" -D "$WORK/run" -l "$WORK/run.log" -w start >/dev/null
    for _ in $(seq 1 6000); do
        done=$(psql_q "select archived_count from pg_stat_archiver" 2>/dev/null || echo 0)
        [ "${done:-0}" -ge "$N" ] && break
        sleep 0.05
    done
    t1=$(now)
    local failed; failed=$(psql_q "select failed_count from pg_stat_archiver")
    stop_pg "$WORK/run"
    # The walctl pusher exits after 3 s idle; make sure no background pusher outlives its run.
    local lockf="$WORK/run/walctl_spool/archive/daemon.lock"
    for _ in $(seq 1 100); do [ -f "$lockf" ] && ! flock -n "$lockf" true 2>/dev/null || break; sleep 0.1; done
    [ -f "$lockf" ] && ! flock -n "$lockf" true 2>/dev/null && kill "$(cat "$lockf")" 2>/dev/null || true
    # pgBackRest's async process likewise.
    for _ in $(seq 1 100); do pgrep -f "pgbackrest.*pg1-path=$WORK/run .*archive-push:async" >/dev/null || break; sleep 0.1; done
    [ "$done" -ge "$N" ] || { echo "archive run $1 did not finish ($done/$N)" >&2; echo "nan"; return; }
    echo "   $1: $(echo "$t1 - $t0" | bc) s ($failed failures)" >&2
    echo "$t1 - $t0" | bc
}

declare -A ARCH
measure_archive() {
    local label=$1 setup=$2 times=()
    for r in $(seq 1 "$RUNS"); do
        local cmd; cmd=$($setup)
        times+=("$(archive_run "$label" "$cmd")")
    done
    ARCH[$label]=$(printf '%s\n' "${times[@]}" | median)
}
setup_walctl_async_file() { local c; c=$(walctl_conf wa file "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_walctl_async_s3() { local c; c=$(walctl_conf wa3 s3 "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_walctl_sync_file() { local c; c=$(walctl_conf ws file); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_pgbr_async_file() {
    rm -rf "$WORK/pgbr" "$WORK/pgbr-spool"/*; as_pg cp -a "$WORK/pgbr-template" "$WORK/pgbr"
    echo "pgbackrest $PGBR_PUSH --pg1-path=$WORK/run --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-push %p"
}

echo "== archive throughput ($RUNS runs each, $N files)" >&2
measure_archive "walctl async, local" setup_walctl_async_file
setup_fast_async_file() { local c; c=$(walctl_conf wf file "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$(dirname "$WALCTL")/walctl-fast archive-push --config $c %p"; }
[ -x "$(dirname "$WALCTL")/walctl-fast" ] && measure_archive "walctl-fast async, local" setup_fast_async_file
measure_archive "pgBackRest async, local" setup_pgbr_async_file
measure_archive "walctl sync, local" setup_walctl_sync_file
[ "$S3" = 1 ] && measure_archive "walctl async, S3 (moto)" setup_walctl_async_s3

# --- 4. recovery --------------------------------------------------------------------------------------
# Repositories holding every segment: the last walctl and pgBackRest local runs.
WCONF=$(walctl_conf rec file); as_pg "$WALCTL" init --config "$WCONF" --pgdata "$WORK/tpl" >/dev/null
for f in $(ls "$WORK/tpl/pg_wal" | grep -E '^[0-9A-F]{24}$|\.history$'); do as_pg "$WALCTL" archive-push --config "$WCONF" "$WORK/tpl/pg_wal/$f" 2>/dev/null || true; done
rm -rf "$WORK/pgbr" "$WORK/pgbr-spool"/*; as_pg cp -a "$WORK/pgbr-template" "$WORK/pgbr"
for f in $(ls "$WORK/tpl/pg_wal" | grep -E '^[0-9A-F]{24}$'); do as_pg pgbackrest $PGBR_PUSH --pg1-path="$WORK/tpl" archive-push "$WORK/tpl/pg_wal/$f" >/dev/null 2>&1 || true; done

# recovery_run LABEL MODE [RESTORE_COMMAND]: seconds from start to the end of recovery.
recovery_run() {
    local mode=$2 cmd=${3:-}
    stop_pg "$WORK/rec"; rm -rf "$WORK/rec"
    as_pg cp -a "$WORK/backup" "$WORK/rec"; chmod 700 "$WORK/rec"
    {
        echo "port = $PORT"; echo "unix_socket_directories = '$WORK/sock'"; echo "listen_addresses = ''"
        echo "archive_mode = off"; echo "fsync = off"; echo "max_wal_size = 16GB"
        [ -n "$cmd" ] && echo "restore_command = '$cmd'" && echo "recovery_target_action = promote"
    } >>"$WORK/rec/postgresql.conf"
    if [ "$mode" = floor ]; then
        as_pg cp "$WORK"/tpl/pg_wal/0000* "$WORK/rec/pg_wal/"
    else
        as_pg touch "$WORK/rec/recovery.signal"
    fi
    sync
    local t0 t1
    t0=$(now)
    as_pg "$PGBIN/pg_ctl" -D "$WORK/rec" -l "$WORK/rec.log" -w -t 600 start >/dev/null
    for _ in $(seq 1 12000); do
        [ "$(psql_q "select pg_is_in_recovery()" 2>/dev/null)" = f ] && break
        sleep 0.02
    done
    t1=$(now)
    local got; got=$(psql_q "select count(*) || ':' || sum(abalance) from pgbench_accounts")
    stop_pg "$WORK/rec"
    [ "$got" = "$EXPECTED" ] || { echo "recovery $1 reached different data: $got vs $EXPECTED" >&2; echo nan; return; }
    echo "   $1: $(echo "$t1 - $t0" | bc) s" >&2
    echo "$t1 - $t0" | bc
}
declare -A REC
measure_recovery() {
    local label=$1; shift
    local times=()
    for r in $(seq 1 "$RUNS"); do times+=("$(recovery_run "$label" "$@")"); done
    REC[$label]=$(printf '%s\n' "${times[@]}" | median)
}
echo "== recovery ($RUNS runs each)" >&2
measure_recovery "floor (segments in pg_wal)" floor
measure_recovery "walctl sync" archive "$WALCTL archive-get --config $WCONF %f %p"
measure_recovery "walctl prefetch $PREFETCH" archive "$WALCTL archive-get --config $WCONF --set restore-prefetch=$PREFETCH %f %p"
FAST="$(dirname "$WALCTL")/walctl-fast"
[ -x "$FAST" ] && measure_recovery "walctl-fast prefetch $PREFETCH" archive "$FAST archive-get --config $WCONF --set restore-prefetch=$PREFETCH %f %p"
measure_recovery "pgBackRest async archive-get" archive "pgbackrest $PGBR_COMMON --pg1-path=$WORK/rec --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-get %f \"%p\""

# --- 5. report ---------------------------------------------------------------------------------------
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Backlog: $N files (pgbench -i WAL, 16 MiB segments), zstd level 3 everywhere, medians of $RUNS runs."
    echo
    echo "| archive_command | seconds | segments/s | vs pgBackRest async local |"
    echo "|---|---|---|---|"
    pb=${ARCH["pgBackRest async, local"]}
    for k in "walctl async, local" "walctl-fast async, local" "walctl async, S3 (moto)" "pgBackRest async, local" "walctl sync, local"; do
        [ -n "${ARCH[$k]:-}" ] || continue
        echo "| $k | ${ARCH[$k]} | $(echo "scale=1; $N / ${ARCH[$k]}" | bc) | $(echo "scale=2; $pb / ${ARCH[$k]}" | bc)x |"
    done
    echo
    echo "| recovery of $N segments | seconds | vs floor |"
    echo "|---|---|---|"
    fl=${REC["floor (segments in pg_wal)"]}
    for k in "floor (segments in pg_wal)" "walctl sync" "walctl prefetch $PREFETCH" "walctl-fast prefetch $PREFETCH" "pgBackRest async archive-get"; do
        [ -n "${REC[$k]:-}" ] || continue
        echo "| $k | ${REC[$k]} | $(echo "scale=2; ${REC[$k]} / $fl" | bc)x |"
    done
} | tee "$WORK/report.md"
