#!/usr/bin/env bash
# Base backup benchmark (issue 6): backup and restore throughput and peak memory of walctl against
# pg_basebackup and pgBackRest, on the same pgbench database in the same run.
#
# Run as root (clusters run as the postgres OS user):  Benchmarks/backup.sh
# Environment:
#   BENCH_SCALE=100     pgbench scale (100 is about 1.5 GB)
#   BENCH_RUNS=2        runs of every command (the report gives medians)
#   BENCH_S3=1          also back up to / restore from moto (walctl over plain http, pgBackRest through
#                       nginx terminating TLS: pgBackRest speaks only https to S3); 0 = local only
#   WALCTL=...          use this binary instead of building
#   BENCH_SCRATCH=...   SwiftPM scratch path for the walctl release build (default .build-bbench)
#   KEEP_TMP=1          keep the work directory
#   BENCH_ONLY=progress only walctl, local: backup and restore-backup with progress (a line every
#                       second: --set progress-interval=1) and with --no-progress, alternating in the
#                       same run (issue 15: progress must cost < 2%); no pgBackRest, pg_basebackup, S3
#
# What it does: builds walctl `-c release --static-swift-stdlib`; starts moto (scripts/moto-server.py)
# and nginx-light in front of it; initdb a throwaway PostgreSQL 15 cluster on a unix socket, runs
# `pgbench -i -s $BENCH_SCALE` with archiving off (so the bulk load's WAL is not archived three
# times), then turns archive_mode on with an archive_command that pushes every segment through
# walctl to the local repository, through walctl to S3, and through pgBackRest (posix repo1 and S3
# repo2), and restarts. Then, per run: walctl backup (local, S3), pg_basebackup -Ft -X none with
# --compress=server-zstd and with -z, pgbackrest backup --type=full (repo1, repo2; zst level 3,
# process-max=2); then walctl restore-backup and pgbackrest restore of the backups just taken. Every
# command runs as postgres under `/usr/bin/time -v` (peak RSS of the process, or of its largest
# child process for pgBackRest's workers). Throughput = data directory size without pg_wal / wall
# time, in MB/s (10^6 bytes). Every backup includes its fast checkpoint and its wait for the WAL
# (walctl's archive check, pgBackRest's archive-check; pg_basebackup -X none waits for nothing).
# The database fits in the page cache: reads are warm for every tool alike.
# Prints a markdown report and writes it to $WORK/report.md.
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh"   # pgBackRest, hyperfine, nginx, GNU time (and the test dependencies)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${BENCH_SCALE:-100}"
RUNS="${BENCH_RUNS:-2}"
WITH_S3="${BENCH_S3:-1}"
ONLY="${BENCH_ONLY:-}"
[ "$ONLY" = progress ] && WITH_S3=0
SCRATCH="${BENCH_SCRATCH:-$REPO/.build-bbench}"
PGBIN=/usr/lib/postgresql/15/bin

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
for t in /usr/bin/time "$PGBIN/postgres" $([ "$ONLY" = progress ] || echo pgbackrest); do command -v "$t" >/dev/null || { echo "missing $t (Benchmarks/install-bench-deps.sh)" >&2; exit 1; }; done
if [ "$WITH_S3" = 1 ] && ! command -v nginx >/dev/null; then
    echo "nginx not found (apt-get install nginx-light): S3 runs skipped for pgBackRest" >&2
fi

if [ -n "${WALCTL:-}" ]; then
    BUILT="$WALCTL"
else
    echo "== building walctl (release, static stdlib) into $SCRATCH" >&2
    for p in walctl walctl-core; do
        (cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product "$p" >&2)
    done
    BUILT="$SCRATCH/release/walctl"
fi

WORK="$(mktemp -d /tmp/walctl-bbench.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/bin"
cp "$BUILT" "$WORK/bin/walctl"
cp "$(dirname "$BUILT")/walctl-core" "$WORK/bin/walctl-core"   # the front hands backup and restore to it
WALCTL="$WORK/bin/walctl"
chown -R postgres:postgres "$WORK"
as_pg() { runuser -u postgres -- "$@"; }

# shellcheck source=Benchmarks/s3-tls.sh
source "$REPO/Benchmarks/s3-tls.sh"
cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -w -m fast stop >/dev/null 2>&1 || true
    stop_moto_tls
    if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "$WORK/.s.PGSQL.$p" ]; then echo "$p"; return; fi
    done
}

# --- S3: moto, and nginx terminating TLS in front of it for pgBackRest ------------------------------
S3_PGBR=0
if [ "$WITH_S3" = 1 ]; then
    echo "== starting moto" >&2
    start_moto_tls "$WORK" bench
    [ -n "$TLS_PORT" ] && S3_PGBR=1
fi

# --- the cluster ------------------------------------------------------------------------------------
PORT="$(free_port)"
CONN="host=$WORK port=$PORT user=postgres dbname=postgres"
psql_() { as_pg "$PGBIN/psql" -X -h "$WORK" -p "$PORT" -d postgres -qAt -v ON_ERROR_STOP=1 -c "$*"; }
as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
cat >> "$WORK/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
wal_level = replica
max_wal_senders = 10
max_wal_size = 4GB
shared_buffers = 256MB
archive_mode = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
echo "== pgbench -i -s $SCALE" >&2
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -i -s "$SCALE" -q postgres >"$WORK/pgbench-init.log" 2>&1
psql_ "checkpoint"

# Repositories: walctl local + S3, pgBackRest posix (repo1) + S3 (repo2).
cat > "$WORK/local.conf" <<EOF
repository = file://$WORK/repo-local
catalog = $WORK/catalog-local.db
EOF
if [ "$WITH_S3" = 1 ]; then
    cat > "$WORK/s3.conf" <<EOF
repository = s3://$MOTO_BUCKET/walctl
s3-endpoint = $MOTO_ENDPOINT
s3-region = us-east-1
s3-uri-style = path
s3-key = $AWS_ACCESS_KEY_ID
s3-key-secret = $AWS_SECRET_ACCESS_KEY
catalog = $WORK/catalog-s3.db
EOF
fi
cat > "$WORK/pgbackrest.conf" <<EOF
[global]
repo1-path=$WORK/pgbr-repo
repo1-retention-full=99
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-level-console=warn
log-level-file=off
lock-path=$WORK/pgbr-lock
spool-path=$WORK/pgbr-spool
EOF
if [ "$S3_PGBR" = 1 ]; then
    { pgbr_s3_repo 2 /pgbackrest; echo "repo2-retention-full=99"; } >> "$WORK/pgbackrest.conf"
fi
cat >> "$WORK/pgbackrest.conf" <<EOF
[bench]
pg1-path=$WORK/data
pg1-socket-path=$WORK
pg1-port=$PORT
EOF
chown postgres:postgres "$WORK"/*.conf; chmod 600 "$WORK"/*.conf
PGBR=(pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench)

as_pg "$WALCTL" init --config "$WORK/local.conf" --pgdata "$WORK/data" >/dev/null
ARCHIVE="$WALCTL archive-push --config $WORK/local.conf %p"
if [ "$WITH_S3" = 1 ]; then
    as_pg "$WALCTL" init --config "$WORK/s3.conf" --pgdata "$WORK/data" >/dev/null
    ARCHIVE="$ARCHIVE && $WALCTL archive-push --config $WORK/s3.conf %p"
fi
[ "$ONLY" = progress ] || ARCHIVE="$ARCHIVE && pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench archive-push %p"
cat >> "$WORK/data/postgresql.conf" <<EOF
archive_mode = on
archive_command = '$ARCHIVE'
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w restart >/dev/null
if [ "$ONLY" != progress ]; then
    as_pg "${PGBR[@]}" stanza-create >/dev/null
    as_pg "${PGBR[@]}" check >/dev/null
fi

DATA_BYTES="$(du -sb --exclude=pg_wal "$WORK/data" | cut -f1)"
DATA_MB="$(awk -v b="$DATA_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }')"
echo "== data directory without pg_wal: $DATA_MB MB" >&2

# tree_rss PID: summed RSS in kB of every process below PID (the time/runuser wrappers excluded).
tree_rss() {
    ps -e -o pid=,ppid=,rss=,comm= | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1; rss[$1] = $3; comm[$1] = $4 }
        END { n = split(root, q, " "); s = 0
              while (n > 0) { p = q[n]; n--; if (comm[p] != "time" && comm[p] != "runuser") s += rss[p]
                              m = split(kids[p], k, " "); for (i = 1; i <= m; i++) q[++n] = k[i] }
              print s }'
}

# measure NAME STORED_PATH|- COMMAND...: one timed run as postgres; appends to results.tsv
# (name, wall s, peak RSS kB of the largest process, peak summed RSS kB of all its processes, stored bytes).
measure() {
    local name="$1" stored="$2"; shift 2
    sync
    local t0 t1 pid rc=0 sum=0 cur
    t0="$(date +%s.%N)"
    as_pg /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        cur="$(tree_rss "$pid")"; [ "${cur:-0}" -gt "$sum" ] && sum="$cur"
        sleep 0.1
    done
    wait "$pid" || rc=$?
    t1="$(date +%s.%N)"
    if [ "$rc" -ne 0 ]; then echo "FAILED: $name: $*" >&2; tail -20 "$WORK/out.txt" >&2; return 1; fi
    local rss sb="-" cpu
    rss="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")"
    cpu="$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.3f", s }' "$WORK/time.txt")"
    [ "$stored" != "-" ] && sb="$(du -sb "$stored" | cut -f1)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$rss" "$sum" "$sb" "$cpu" >> "$WORK/results.tsv"
    echo "   $name: $(tail -1 "$WORK/results.tsv" | cut -f2) s, $rss kB, all processes $sum kB" >&2
}

: > "$WORK/results.tsv"
# progress_run RUN: walctl backup and restore-backup, local, with and without progress; the order
# alternates per run so that neither side always runs on a warmer cache.
progress_run() {
    local run="$1" modes=("progress" "no-progress") m
    [ $((run % 2)) -eq 0 ] && modes=("no-progress" "progress")
    for m in "${modes[@]}"; do
        local flags=(--set progress-interval=1) label="p$run"
        [ "$m" = no-progress ] && { flags=(--no-progress); label="n$run"; }
        measure "walctl backup, local, $m" "$WORK/repo-local/backup/$label" \
            "$WALCTL" backup --config "$WORK/local.conf" --label "$label" --dbname "$CONN" "${flags[@]}"
        measure "walctl restore-backup, local, $m" - \
            "$WALCTL" restore-backup --config "$WORK/local.conf" "$label" --pgdata "$WORK/restore" "${flags[@]}"
        rm -rf "$WORK/restore"
    done
}
for run in $(seq 1 "$RUNS"); do
    if [ "$ONLY" = progress ]; then echo "== run $run" >&2; progress_run "$run"; continue; fi
    echo "== run $run" >&2
    measure "walctl backup, local" "$WORK/repo-local/backup/l$run" \
        "$WALCTL" backup --config "$WORK/local.conf" --label "l$run" --dbname "$CONN"
    measure "pg_basebackup -Ft --compress=server-zstd" "$WORK/pgbb-zstd-$run" \
        "$PGBIN/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/pgbb-zstd-$run" -Ft -X none -c fast --compress=server-zstd
    measure "pgbackrest backup, posix" - "${PGBR[@]}" --repo=1 --type=full backup
    if [ "$WITH_S3" = 1 ]; then
        measure "walctl backup, S3 (moto)" - \
            "$WALCTL" backup --config "$WORK/s3.conf" --label "s$run" --dbname "$CONN"
        # The memory lever: S3 buffers (s3-upload-threads + 1) x s3-part-size; 1 x 8 MiB here.
        WALCTL_S3_UPLOAD_THREADS=1 WALCTL_S3_PART_SIZE=8388608 measure "walctl backup, S3 (moto), s3-upload-threads=1 s3-part-size=8MiB" - \
            env WALCTL_S3_UPLOAD_THREADS=1 WALCTL_S3_PART_SIZE=8388608 "$WALCTL" backup --config "$WORK/s3.conf" --label "m$run" --dbname "$CONN"
    fi
    if [ "$S3_PGBR" = 1 ]; then
        measure "pgbackrest backup, S3 (moto via nginx TLS)" - "${PGBR[@]}" --repo=2 --type=full backup
    fi
    measure "pg_basebackup -Ft -z" "$WORK/pgbb-gz-$run" \
        "$PGBIN/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/pgbb-gz-$run" -Ft -X none -c fast -z
    rm -rf "$WORK/pgbb-zstd-$run" "$WORK/pgbb-gz-$run"

    # Restores of the backups just taken.
    measure "walctl restore-backup, local" - \
        "$WALCTL" restore-backup --config "$WORK/local.conf" "l$run" --pgdata "$WORK/restore"
    rm -rf "$WORK/restore"
    install -d -m 700 -o postgres -g postgres "$WORK/restore"
    measure "pgbackrest restore, posix" - "${PGBR[@]}" --repo=1 --pg1-path="$WORK/restore" restore
    rm -rf "$WORK/restore"
    if [ "$WITH_S3" = 1 ]; then
        measure "walctl restore-backup, S3 (moto)" - \
            "$WALCTL" restore-backup --config "$WORK/s3.conf" "s$run" --pgdata "$WORK/restore"
        rm -rf "$WORK/restore"
    fi
    if [ "$S3_PGBR" = 1 ]; then
        install -d -m 700 -o postgres -g postgres "$WORK/restore"
        measure "pgbackrest restore, S3 (moto via nginx TLS)" - "${PGBR[@]}" --repo=2 --pg1-path="$WORK/restore" restore
        rm -rf "$WORK/restore"
    fi
done
LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report -----------------------------------------------------------------------------------------
python3 - "$WORK/results.tsv" "$DATA_BYTES" "$SCALE" "$RUNS" "$LOAD" "$("$WALCTL" --version 2>&1 | head -1)" \
    "$(pgbackrest version)" "$("$PGBIN/postgres" --version)" "$WITH_S3" "$S3_PGBR" > "$WORK/report.md" <<'PY'
import sys, statistics, platform, os, collections
tsv, data_bytes, scale, runs, load, wv, bv, pv, s3, s3pgbr = sys.argv[1:]
data_bytes = int(data_bytes)
rows = collections.OrderedDict()
for line in open(tsv):
    name, secs, rss, tree, stored, cpu = line.rstrip("\n").split("\t")
    r = rows.setdefault(name, {"s": [], "rss": [], "tree": [], "stored": [], "cpu": []})
    r["s"].append(float(secs)); r["rss"].append(int(rss)); r["tree"].append(int(tree)); r["cpu"].append(float(cpu))
    if stored != "-": r["stored"].append(int(stored))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Machine: {os.cpu_count()} cores, {cpu}, kernel {platform.release()}; shared with other engineers' builds and")
print(f"tests (noisy); load average at the end {load}. pgbench scale {scale}, data directory without pg_wal")
print(f"{data_bytes / 1e6:.0f} MB. {runs} run(s) per command, medians. {wv}; {bv}; {pv}.")
print()
print("| command | wall s (median) | runs (s) | MB/s | peak RSS MiB, largest process | peak RSS MiB, all processes (sampled) | stored MB |")
print("|---|---:|---:|---:|---:|---:|---:|")
med = {}
for name, r in rows.items():
    m = statistics.median(r["s"]); med[name] = data_bytes / 1e6 / m
    st = f"{statistics.median(r['stored']) / 1e6:.0f}" if r["stored"] else "-"
    print(f"| {name} | {m:.1f} | {', '.join(f'{x:.1f}' for x in r['s'])} | {med[name]:.0f} | {max(r['rss']) / 1024:.1f} | {max(r['tree']) / 1024:.1f} | {st} |")
print()
def ratio(a, b, goal):
    if a in med and b in med:
        print(f"- {a} / {b}: {med[a] / med[b]:.2f}x (goal {goal})")
ratio("walctl backup, local", "pg_basebackup -Ft --compress=server-zstd", ">= 0.9x")
ratio("walctl backup, local", "pgbackrest backup, posix", "-")
ratio("walctl backup, S3 (moto)", "pgbackrest backup, S3 (moto via nginx TLS)", ">= 1.5x")
ratio("walctl restore-backup, local", "pgbackrest restore, posix", ">= 1x")
ratio("walctl restore-backup, S3 (moto)", "pgbackrest restore, S3 (moto via nginx TLS)", ">= 1x")
for what in ("backup", "restore-backup"):
    a, b = f"walctl {what}, local, progress", f"walctl {what}, local, no-progress"
    if a in rows and b in rows:
        ma, mb = statistics.median(rows[a]["s"]), statistics.median(rows[b]["s"])
        print(f"- walctl {what}: with progress {ma:.2f} s, --no-progress {mb:.2f} s (medians): progress costs {100 * (ma / mb - 1):+.1f}% (goal < 2%)")
        # The walctl process's own CPU (user + sys, from wait4 via time -v): where a progress line costs
        # anything at all, and far less noisy than wall time on a shared disk. Paired: run i with
        # progress against run i without (same run of the loop, alternating order).
        ca, cb = statistics.median(rows[a]["cpu"]), statistics.median(rows[b]["cpu"])
        pairs = [x / y for x, y in zip(rows[a]["cpu"], rows[b]["cpu"]) if y > 0]
        pw = [x / y for x, y in zip(rows[a]["s"], rows[b]["s"]) if y > 0]
        print(f"  walctl's CPU: with progress {ca:.3f} s, --no-progress {cb:.3f} s (medians): {100 * (ca / cb - 1):+.1f}%; "
              f"median of paired ratios: CPU {100 * (statistics.median(pairs) - 1):+.1f}%, wall {100 * (statistics.median(pw) - 1):+.1f}% ({len(pairs)} pairs)")
PY
cat "$WORK/report.md"
