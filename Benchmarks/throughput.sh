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
#    set to the tool, the server started, the clock stopped when PostgreSQL has marked the last
#    backlog file `.done` (then pg_stat_archiver is checked to count every file). Tools: walctl
#    async (local; S3 over plain http to moto and over TLS through nginx), pgBackRest async
#    process-max=2 zst (local; S3 over the same TLS endpoint), walctl sync (local, for scale), and
#    the CPU floor: the zstd CLI at level 3 over the same files, two processes, no fsync;
# 4. recovery wall time of the same segments from the base backup: the floor (segments already in
#    pg_wal, no restore_command), the `mv` floor (every segment already decompressed in a
#    directory beside pg_wal, restore_command = mv: one process start and one rename per segment,
#    what the issue says a prefetched call should cost), walctl sync, walctl-fast sync (no
#    prefetching: the front restores each segment from the file repository), walctl prefetch
#    (restore-prefetch = $PREFETCH) through walctl and walctl-fast, and pgBackRest async
#    archive-get; clock from `pg_ctl start` to "ready to accept connections" in the server log;
#    encrypted rows (issue 17): walctl-fast async into, and walctl-fast prefetch from, a file
#    repository with repository-cipher = aes-256-gcm (passphrase file, key cache warm from init),
#    otherwise set up as the plain rows, in the same run;
# 5. medians of $RUNS runs into $WORK/report.md (and stdout).
#
# The harness itself stays off the CPU while a run is timed: it waits with bash builtins (a read
# with a timeout on a FIFO; no `sleep`, `psql` or `runuser` processes), because on two cores a
# psql poll every 50 ms took ~10% of the CPU the tools compete for.
#
# Environment: SCRATCH (default .build-bench), WORK (default /tmp/walctl-throughput), SEGS (220),
# RUNS (3), PREFETCH (8), PGBIN (/usr/lib/postgresql/15/bin), WALCTL, S3=0 skips moto.
# Needs root (runuser to postgres), pgbackrest, pgbench, python3 with moto for S3. Rerunnable.
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh"   # pgBackRest, hyperfine, nginx, GNU time (and the test dependencies)

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
    for p in walctl walctl-fast walctl-core; do
        (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product "$p" >&2)
    done
    WALCTL=$SCRATCH/release/walctl
fi

as_pg() { runuser -u postgres -- "$@"; }
stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$1" -m "${2:-immediate}" -w stop >/dev/null 2>&1 || true; }
for d in "$WORK"/tpl "$WORK"/run "$WORK"/rec; do [ -d "$d" ] && stop_pg "$d"; done
# shellcheck source=Benchmarks/s3-tls.sh
source "$ROOT/Benchmarks/s3-tls.sh"
cleanup() {
    for d in "$WORK"/tpl "$WORK"/run "$WORK"/rec; do [ -d "$d" ] && stop_pg "$d"; done
    stop_moto_tls
}
trap cleanup EXIT
if [ "${KEEP_TEMPLATE:-0}" = 1 ] && [ -f "$WORK/template.env" ]; then
    # Rerun on the backlog of an earlier run (same segments): keep the template, drop the rest.
    find "$WORK" -mindepth 1 -maxdepth 1 ! -name tpl ! -name backup ! -name pgbr-template ! -name template.env ! -name tpl.log -exec rm -rf {} +
else
    rm -rf "$WORK"
fi
mkdir -p "$WORK"/{sock,pgbr-lock,pgbr-log,pgbr-spool}
# The encrypted rows' passphrase file (docs/encryption.md), the server user's, 0600.
echo "walctl throughput benchmark passphrase" >"$WORK/passphrase"; chmod 600 "$WORK/passphrase"
ENCRYPTED=("repository-cipher = aes-256-gcm" "repository-cipher-pass-file = $WORK/passphrase")
chown -R postgres "$WORK"
now() { echo "$EPOCHREALTIME"; }
# nap SECONDS: sleep without starting a process (read with a timeout on a FIFO nobody writes).
mkfifo "$WORK/nap.fifo"; exec 9<>"$WORK/nap.fifo"
nap() { read -r -t "$1" -u 9 _ || true; }
# wait_log FILE TEXT TIMEOUT: returns when a line of FILE contains TEXT (builtins only).
wait_log() {
    local file=$1 text=$2 end=$((SECONDS + $3)) line fd
    until [ -e "$file" ]; do nap 0.005; [ $SECONDS -lt $end ] || return 1; done
    exec {fd}<"$file"
    while [ $SECONDS -lt $end ]; do
        while IFS= read -r -u "$fd" line; do
            [[ $line == *"$text"* ]] && { exec {fd}<&-; return 0; }
        done
        nap 0.005
    done
    exec {fd}<&-
    return 1
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
psql_q() { as_pg "$PGBIN/psql" -X -qAt -h "$WORK/sock" -p "$PORT" -d postgres -c "$1"; }

# --- 2. the template cluster with a backlog ----------------------------------------------------------
PGBR_COMMON="--stanza=bench --repo1-path=$WORK/pgbr --lock-path=$WORK/pgbr-lock --log-path=$WORK/pgbr-log --log-level-console=warn --log-level-file=off"
PGBR_PUSH="$PGBR_COMMON --compress-type=zst --compress-level=3"
# pgbr_s3 N: the options of pgBackRest S3 repository N (through nginx TLS to moto); the settings,
# secrets included, go to a config file (pgBackRest refuses secrets on the command line).
pgbr_s3() {
    local c="$WORK/pgbr-s3-$1.conf"
    if [ ! -f "$c" ]; then
        { echo "[global]"; pgbr_s3_repo 1 "/pgbr-$1"
          printf '%s\n' "lock-path=$WORK/pgbr-lock" "log-path=$WORK/pgbr-log" "log-level-console=warn" "log-level-file=off"; } >"$c"
        chown postgres "$c"; chmod 600 "$c"
    fi
    echo "--config=$c --stanza=bench"
}
ready() { ls "$1/pg_wal/archive_status" | grep -c '\.ready$' || true; }
if [ ! -f "$WORK/template.env" ]; then
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
mkdir -p "$WORK/pgbr"; chown postgres "$WORK/pgbr"
as_pg pgbackrest $PGBR_COMMON --pg1-path="$WORK/tpl" --pg1-socket-path="$WORK/sock" --pg1-port="$PORT" stanza-create >&2
as_pg cp -a "$WORK/pgbr" "$WORK/pgbr-template"
as_pg "$PGBIN/pg_basebackup" -h "$WORK/sock" -p "$PORT" -D "$WORK/backup" -X fetch -c fast --no-sync 2>/dev/null
while [ "$(ready "$WORK/tpl")" -lt "$SEGS" ]; do
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -i -s 40 -I dtg -q postgres >/dev/null 2>&1
done
psql_q "select pg_switch_wal()" >/dev/null
sleep 1
echo "EXPECTED='$(psql_q "select count(*) || ':' || sum(abalance) from pgbench_accounts")'" >"$WORK/template.env"
stop_pg "$WORK/tpl" fast
fi
# shellcheck disable=SC1091
source "$WORK/template.env"
N=$(ready "$WORK/tpl")
LAST=$(ls "$WORK/tpl/pg_wal/archive_status" | grep '\.ready$' | sed 's/\.ready$//' | sort | tail -1)
echo "== backlog: $N files ready (last $LAST), $(du -sm "$WORK/tpl/pg_wal" | cut -f1) MiB of pg_wal" >&2

if [ "$S3" = 1 ]; then
    start_moto_tls "$WORK/s3" walctl-bench
    if [ -n "$TLS_PORT" ]; then
        # One pgBackRest S3 repository per run (a fresh archive each time), created while the
        # template cluster runs (stanza-create needs it).
        as_pg "$PGBIN/pg_ctl" -D "$WORK/tpl" -l "$WORK/tpl.log" -w start >/dev/null
        rm -f "$WORK/pgbr-s3-run"   # the runs count from 1 again: the emulator starts empty
        for r in $(seq 1 "$RUNS"); do
            as_pg pgbackrest $(pgbr_s3 "$r") --pg1-path="$WORK/tpl" --pg1-socket-path="$WORK/sock" --pg1-port="$PORT" stanza-create >&2
        done
        stop_pg "$WORK/tpl" fast
    fi
fi

# walctl_conf NAME KIND [extra lines]: a config for a fresh repository (KIND file or s3).
walctl_conf() {
    local name=$1 kind=$2; shift 2
    local c="$WORK/$name.conf"
    {
        if [ "$kind" = s3 ] || [ "$kind" = s3tls ]; then
            echo "repository = s3://$MOTO_BUCKET/$name-$RANDOM$RANDOM"
            if [ "$kind" = s3tls ]; then echo "s3-endpoint = $TLS_ENDPOINT"; echo "s3-ca-file = $TLS_CA"
            else echo "s3-endpoint = $MOTO_ENDPOINT"; fi
            echo "s3-uri-style = path"
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

declare -A ARCH
# --- 3. archive throughput --------------------------------------------------------------------------
# archive_run LABEL ARCHIVE_COMMAND: seconds until every backlog file is archived.
archive_run() {
    local cmd=$2
    stop_pg "$WORK/run"; rm -rf "$WORK/run"
    as_pg cp -a "$WORK/tpl" "$WORK/run"
    rm -rf "$WORK/run/walctl_spool"
    echo "archive_command = '$cmd'" >>"$WORK/run/postgresql.conf"
    sync
    local t0 t1 done=0 flag="$WORK/run/pg_wal/archive_status/$LAST.done" end m0=0 m1=0
    # CPU the S3 emulator spent during the run (it shares the two cores with the tools).
    [ -n "${MOTO_PID:-}" ] && m0=$(awk '{print $14+$15}' "/proc/$MOTO_PID/stat")
    t0=$(now)
    as_pg "$PGBIN/pg_ctl" -D "$WORK/run" -l "$WORK/run.log" -W start >/dev/null
    # PostgreSQL archives the oldest first: the last backlog file is marked .done last.
    end=$((SECONDS + 300))
    until [ -e "$flag" ] || [ $SECONDS -ge $end ]; do nap 0.005; done
    t1=$(now)
    [ -n "${MOTO_PID:-}" ] && m1=$(awk '{print $14+$15}' "/proc/$MOTO_PID/stat")
    for _ in $(seq 1 100); do
        done=$(psql_q "select archived_count from pg_stat_archiver" 2>/dev/null || echo 0)
        [ "${done:-0}" -ge "$N" ] && break
        sleep 0.1
    done
    local failed; failed=$(psql_q "select failed_count from pg_stat_archiver")
    stop_pg "$WORK/run"
    # The walctl pusher exits after 3 s idle; make sure no background pusher outlives its run.
    local lockf="$WORK/run/walctl_spool/archive/daemon.lock"
    for _ in $(seq 1 100); do [ -f "$lockf" ] && ! flock -n "$lockf" true 2>/dev/null || break; sleep 0.1; done
    [ -f "$lockf" ] && ! flock -n "$lockf" true 2>/dev/null && kill "$(cat "$lockf")" 2>/dev/null || true
    # pgBackRest's async process likewise.
    for _ in $(seq 1 100); do pgrep -f "pgbackrest.*pg1-path=$WORK/run .*archive-push:async" >/dev/null || break; sleep 0.1; done
    [ "$done" -ge "$N" ] || { echo "archive run $1 did not finish ($done/$N)" >&2; echo "nan"; return; }
    echo "   $1: $(echo "$t1 - $t0" | bc) s ($failed failures; moto CPU $(echo "scale=2; ($m1 - $m0) / $(getconf CLK_TCK)" | bc) s)" >&2
    echo "$t1 - $t0" | bc
}

# ROWS (a bash regex): measure only the rows whose label matches (e.g. ROWS='floor|walctl-fast').
want_row() { [ -z "${ROWS:-}" ] || [[ $1 =~ $ROWS ]]; }
measure_archive() {
    local label=$1 setup=$2 times=()
    want_row "$label" || return 0
    for r in $(seq 1 "$RUNS"); do
        local cmd; cmd=$($setup)
        times+=("$(archive_run "$label" "$cmd")")
    done
    ARCH[$label]=$(printf '%s\n' "${times[@]}" | median)
}
# measure_pair archive|recovery LABEL1 ARG1 LABEL2 ARG2: both rows (ARG: the row's setup function for
# archive rows, its restore_command for recovery rows), their runs interleaved (1 2, 2 1, 1 2, ...)
# so a change of the machine's load between runs hits both rows alike: for a same-run ratio such as
# encrypted vs plain (issue 17's goal is 5%). A row not wanted leaves the other measured alone.
measure_one() { if [ "$1" = archive ]; then measure_archive "$2" "$3"; else measure_recovery "$2" archive "$3"; fi; }
run_one() { if [ "$1" = archive ]; then archive_run "$2" "$($3)"; else recovery_run "$2" archive "$3"; fi; }
measure_pair() {
    local kind=$1 l1=$2 a1=$3 l2=$4 a2=$5 t1=() t2=() r m1 m2
    if ! want_row "$l1" || ! want_row "$l2"; then measure_one "$kind" "$l1" "$a1"; measure_one "$kind" "$l2" "$a2"; return 0; fi
    for r in $(seq 1 "$RUNS"); do
        if [ $((r % 2)) = 1 ]; then
            t1+=("$(run_one "$kind" "$l1" "$a1")"); t2+=("$(run_one "$kind" "$l2" "$a2")")
        else
            t2+=("$(run_one "$kind" "$l2" "$a2")"); t1+=("$(run_one "$kind" "$l1" "$a1")")
        fi
    done
    m1=$(printf '%s\n' "${t1[@]}" | median); m2=$(printf '%s\n' "${t2[@]}" | median)
    if [ "$kind" = archive ]; then ARCH[$l1]=$m1; ARCH[$l2]=$m2; else REC[$l1]=$m1; REC[$l2]=$m2; fi
}
setup_walctl_async_file() { local c; c=$(walctl_conf wa file "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_walctl_async_s3() { local c; c=$(walctl_conf wa3 s3 "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_walctl_sync_file() { local c; c=$(walctl_conf ws file); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$WALCTL archive-push --config $c %p"; }
setup_pgbr_async_file() {
    rm -rf "$WORK/pgbr" "$WORK/pgbr-spool"/*; as_pg cp -a "$WORK/pgbr-template" "$WORK/pgbr"
    echo "pgbackrest $PGBR_PUSH --pg1-path=$WORK/run --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-push %p"
}

setup_pgbr_async_s3() {
    # A fresh S3 repository per run (the setups run in a subshell: the counter lives in a file).
    local run=$(( $(cat "$WORK/pgbr-s3-run" 2>/dev/null || echo 0) + 1 ))
    echo "$run" >"$WORK/pgbr-s3-run"
    rm -rf "$WORK/pgbr-spool"/*
    echo "pgbackrest $(pgbr_s3 "$run") --compress-type=zst --compress-level=3 --pg1-path=$WORK/run --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-push %p"
}
setup_walctl_async_s3tls() { local c; c=$(walctl_conf wt s3tls "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$(dirname "$WALCTL")/walctl-fast archive-push --config $c %p"; }

# The CPU floor: zstd -3 (the CLI, content checksum on as in walctl's frames) over the backlog's
# files, two processes, output to the same disk without fsync.
zstd_floor_run() {
    rm -rf "$WORK/zfloor"; mkdir -p "$WORK/zfloor"
    local t0 t1
    t0=$(now)
    (cd "$WORK/tpl/pg_wal" && ls | grep -E '^[0-9A-F]{24}$' | xargs -P2 -n 24 zstd -q -3 -f --output-dir-flat "$WORK/zfloor")
    t1=$(now)
    echo "   zstd -3 floor: $(echo "$t1 - $t0" | bc) s" >&2
    echo "$t1 - $t0" | bc
}

echo "== archive throughput ($RUNS runs each, $N files)" >&2
if want_row "zstd -3 CLI, 2 processes (CPU floor)"; then
    times=(); for r in $(seq 1 "$RUNS"); do times+=("$(zstd_floor_run)"); done
    ARCH["zstd -3 CLI, 2 processes (CPU floor)"]=$(printf '%s\n' "${times[@]}" | median)
fi
measure_archive "walctl async, local" setup_walctl_async_file
setup_fast_async_file() { local c; c=$(walctl_conf wf file "archive-async = true" "archive-workers = 2"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$(dirname "$WALCTL")/walctl-fast archive-push --config $c %p"; }
# The same into an encrypted file repository (issue 17): only the cipher and its passphrase differ.
setup_fast_async_file_enc() { local c; c=$(walctl_conf wfe file "archive-async = true" "archive-workers = 2" "${ENCRYPTED[@]}"); as_pg "$WALCTL" init --config "$c" --pgdata "$WORK/tpl" >/dev/null; echo "$(dirname "$WALCTL")/walctl-fast archive-push --config $c %p"; }
[ -x "$(dirname "$WALCTL")/walctl-fast" ] && measure_pair archive "walctl-fast async, local" setup_fast_async_file "walctl-fast async, local, encrypted" setup_fast_async_file_enc
measure_archive "pgBackRest async, local" setup_pgbr_async_file
measure_archive "walctl sync, local" setup_walctl_sync_file
if [ "$S3" = 1 ]; then
    measure_archive "walctl async, S3 (moto, http)" setup_walctl_async_s3
    if [ -n "$TLS_PORT" ]; then
        measure_archive "walctl-fast async, S3 (moto via nginx TLS)" setup_walctl_async_s3tls
        measure_archive "pgBackRest async, S3 (moto via nginx TLS)" setup_pgbr_async_s3
    fi
fi

# --- 4. recovery --------------------------------------------------------------------------------------
# Repositories holding every segment (walctl and pgBackRest, local), filled synchronously.
# fill_walctl_repo CONF: every segment and history file of the template pushed by walctl (the
# repositories the recovery rows restore from).
fill_walctl_repo() { local f; for f in $(ls "$WORK/tpl/pg_wal" | grep -E '^[0-9A-F]{24}$|\.history$'); do as_pg "$WALCTL" archive-push --config "$1" "$WORK/tpl/pg_wal/$f" 2>/dev/null || true; done; }
WCONF=$(walctl_conf rec file); as_pg "$WALCTL" init --config "$WCONF" --pgdata "$WORK/tpl" >/dev/null
if [ -z "${ROWS:-}" ] || [[ $ROWS == *walctl* ]]; then
    fill_walctl_repo "$WCONF"
fi
# The encrypted twin of WCONF (issue 17), filled the same way.
FAST="$(dirname "$WALCTL")/walctl-fast"
ENC_REC_LABEL="walctl-fast prefetch $PREFETCH, file, encrypted"
if [ -x "$FAST" ] && want_row "$ENC_REC_LABEL"; then
    WCONF_ENC=$(walctl_conf recenc file "${ENCRYPTED[@]}"); as_pg "$WALCTL" init --config "$WCONF_ENC" --pgdata "$WORK/tpl" >/dev/null
    fill_walctl_repo "$WCONF_ENC"
fi
rm -rf "$WORK/pgbr" "$WORK/pgbr-spool"/*; as_pg cp -a "$WORK/pgbr-template" "$WORK/pgbr"
if [ -z "${ROWS:-}" ] || [[ $ROWS == *pgBackRest* ]]; then
    for f in $(ls "$WORK/tpl/pg_wal" | grep -E '^[0-9A-F]{24}$'); do as_pg pgbackrest $PGBR_PUSH --pg1-path="$WORK/tpl" archive-push "$WORK/tpl/pg_wal/$f" >/dev/null 2>&1 || true; done
fi

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
        [ "$mode" = mv ] && as_pg mkdir "$WORK/rec/mvspool" && as_pg cp "$WORK"/tpl/pg_wal/0000* "$WORK/rec/mvspool/"
        as_pg touch "$WORK/rec/recovery.signal"
    fi
    rm -f "$WORK/rec.log"
    sync
    local t0 t1
    t0=$(now)
    as_pg "$PGBIN/pg_ctl" -D "$WORK/rec" -l "$WORK/rec.log" -W start >/dev/null
    wait_log "$WORK/rec.log" "database system is ready to accept connections" 900 || { echo "recovery $1 did not finish" >&2; echo nan; return; }
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
    want_row "$label" || return 0
    for r in $(seq 1 "$RUNS"); do times+=("$(recovery_run "$label" "$@")"); done
    REC[$label]=$(printf '%s\n' "${times[@]}" | median)
}
echo "== recovery ($RUNS runs each)" >&2
measure_recovery "floor (segments in pg_wal)" floor
measure_recovery "mv floor (decompressed beside pg_wal, restore_command = mv)" mv "mv $WORK/rec/mvspool/%f %p"
measure_recovery "walctl sync" archive "$WALCTL archive-get --config $WCONF %f %p"
# walctl-fast without prefetching: it restores each segment from the file repository itself.
[ -x "$FAST" ] && measure_recovery "walctl-fast sync" archive "$FAST archive-get --config $WCONF %f %p"
measure_recovery "walctl prefetch $PREFETCH" archive "$WALCTL archive-get --config $WCONF --set restore-prefetch=$PREFETCH %f %p"
if [ -n "${WCONF_ENC:-}" ]; then
    measure_pair recovery "walctl-fast prefetch $PREFETCH" "$FAST archive-get --config $WCONF --set restore-prefetch=$PREFETCH %f %p" \
        "$ENC_REC_LABEL" "$FAST archive-get --config $WCONF_ENC --set restore-prefetch=$PREFETCH %f %p"
elif [ -x "$FAST" ]; then
    measure_recovery "walctl-fast prefetch $PREFETCH" archive "$FAST archive-get --config $WCONF --set restore-prefetch=$PREFETCH %f %p"
fi
measure_recovery "pgBackRest async archive-get" archive "pgbackrest $PGBR_COMMON --pg1-path=$WORK/rec --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-get %f \"%p\""
# From S3 through TLS: the repositories the last S3 archive runs filled (walctl-fast's, and
# pgBackRest's first S3 stanza), so those archive rows must have run in this invocation.
if [ "$S3" = 1 ] && [ -n "${TLS_PORT:-}" ]; then
    [ -x "$FAST" ] && [ -f "$WORK/wt.conf" ] && measure_recovery "walctl-fast prefetch $PREFETCH, S3 (TLS)" archive "$FAST archive-get --config $WORK/wt.conf --set restore-prefetch=$PREFETCH %f %p"
    [ -f "$WORK/pgbr-s3-1.conf" ] && measure_recovery "pgBackRest async archive-get, S3 (TLS)" archive "pgbackrest $(pgbr_s3 1) --pg1-path=$WORK/rec --archive-async --spool-path=$WORK/pgbr-spool --process-max=2 archive-get %f \"%p\""
fi

# --- 5. report ---------------------------------------------------------------------------------------
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Backlog: $N files (pgbench -i WAL, 16 MiB segments), zstd level 3 everywhere, medians of $RUNS runs."
    echo
    echo "| archive_command | seconds | segments/s | vs pgBackRest async, same store |"
    echo "|---|---|---|---|"
    for k in "zstd -3 CLI, 2 processes (CPU floor)" "walctl async, local" "walctl-fast async, local" "walctl-fast async, local, encrypted" "pgBackRest async, local" "walctl sync, local" \
             "walctl async, S3 (moto, http)" "walctl-fast async, S3 (moto via nginx TLS)" "pgBackRest async, S3 (moto via nginx TLS)"; do
        [ -n "${ARCH[$k]:-}" ] || continue
        pb=${ARCH["pgBackRest async, local"]:-}
        [[ $k == *S3* ]] && pb=${ARCH["pgBackRest async, S3 (moto via nginx TLS)"]:-}
        ratio="-"; [ -n "$pb" ] && [ "$pb" != nan ] && ratio="$(echo "scale=2; $pb / ${ARCH[$k]}" | bc)x"
        echo "| $k | ${ARCH[$k]} | $(echo "scale=1; $N / ${ARCH[$k]}" | bc) | $ratio |"
    done
    echo
    echo "| recovery of $N segments | seconds | vs floor |"
    echo "|---|---|---|"
    fl=${REC["floor (segments in pg_wal)"]:-}
    for k in "floor (segments in pg_wal)" "mv floor (decompressed beside pg_wal, restore_command = mv)" "walctl sync" "walctl-fast sync" "walctl prefetch $PREFETCH" "walctl-fast prefetch $PREFETCH" "$ENC_REC_LABEL" "pgBackRest async archive-get" \
             "walctl-fast prefetch $PREFETCH, S3 (TLS)" "pgBackRest async archive-get, S3 (TLS)"; do
        [ -n "${REC[$k]:-}" ] || continue
        ratio="-"; [ -n "$fl" ] && [ "$fl" != nan ] && ratio="$(echo "scale=2; ${REC[$k]} / $fl" | bc)x"
        echo "| $k | ${REC[$k]} | $ratio |"
    done
    # Issue 17's goal (encrypted within 5% of plain), when both rows of a pair ran.
    header=0
    for pair in "walctl-fast async, local|walctl-fast async, local, encrypted|A" "walctl-fast prefetch $PREFETCH|$ENC_REC_LABEL|R"; do
        IFS='|' read -r plain enc kind <<<"$pair"
        if [ "$kind" = A ]; then p=${ARCH[$plain]:-}; e=${ARCH[$enc]:-}; else p=${REC[$plain]:-}; e=${REC[$enc]:-}; fi
        if [ -z "$p" ] || [ -z "$e" ] || [ "$p" = nan ] || [ "$e" = nan ]; then continue; fi
        if [ $header = 0 ]; then header=1; echo; echo "| encrypted vs plain (same run, runs interleaved) | plain s | encrypted s | ratio |"; echo "|---|---|---|---|"; fi
        echo "| $enc | $p | $e | $(echo "scale=3; $e / $p" | bc)x |"
    done
} | tee "$WORK/report.md"
