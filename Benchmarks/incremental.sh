#!/usr/bin/env bash
# Incremental backup benchmark (issue 18): on a pgbench database after 5% of the rows change, walctl's
# file-level incremental (PostgreSQL 15) against its full backup, the chain restore against a full
# restore, and restore --delta against a full restore; pgBackRest 2.45 --type=incr and restore --delta
# in the same run, on the same data.
#
# Run as root (the cluster runs as the postgres OS user):  Benchmarks/incremental.sh
# Environment:
#   BENCH_SCALE=100     pgbench scale (100 is about 1.5 GB)
#   WALCTL=...          the walctl binary (default: .build-static/release/walctl of this checkout,
#                       built if missing; release, --static-swift-stdlib)
#   KEEP_TMP=1          keep the work directory
#   BENCH_RESTORE_RUNS=4 the full and the chain restore are each measured this many times, in
#                       alternating order (lib.sh bench_alternate), and their medians compared
#   BENCH_CHANGE=spread the 5% change: `spread` (aid % 20 = 0: every page of the table) or `range`
#                       (aid <= rows/20: the first 5% of the table's pages, plus the new row versions
#                       appended at its end), the two shapes a "5% of the rows changed" takes
#
# What it does: initdb a PostgreSQL 15 cluster, `pgbench -i -s $BENCH_SCALE` with archiving off, then
# archive_mode on, every segment pushed through walctl (file repository) and pgBackRest (posix repo,
# zst level 3, process-max 2). Then: walctl full backup, pgBackRest full backup; the change
# `update pgbench_accounts set abalance = abalance + 1 where aid % 20 = 0` (5% of the rows; they are
# spread over every page of the table, so every segment file of pgbench_accounts changes) and a
# checkpoint; walctl incremental and pgBackRest incr; walctl restore-backup of the full backup, of
# the incremental (its chain: full + incremental), pgBackRest restore of the incr; then into the
# directory holding the restored FULL backup (so exactly the 5% change differs): walctl
# restore-backup INCR --delta and pgBackRest restore --delta. Every command runs as postgres under
# /usr/bin/time; times are wall seconds, stored bytes `du -sb` of what the backup added.
# Prints a markdown table and writes it to $WORK/report.md.
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh" >&2   # pgBackRest, GNU time

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${BENCH_SCALE:-100}"
PGBIN=/usr/lib/postgresql/15/bin
# shellcheck source=Benchmarks/lib.sh
source "$REPO/Benchmarks/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
for t in /usr/bin/time "$PGBIN/postgres" pgbackrest; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }; done
if [ -z "${WALCTL:-}" ]; then
    WALCTL="$REPO/.build-static/release/walctl"
    for p in walctl walctl-core; do
        [ -x "$REPO/.build-static/release/$p" ] || (cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path .build-static --product "$p" >&2)
    done
fi

WORK="$(mktemp -d /tmp/walctl-ibench.XXXXXX)"
chmod 755 "$WORK"; mkdir -p "$WORK/bin"; bench_copy_walctl "$WORK/bin"
chown -R postgres:postgres "$WORK"
cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -w -m fast stop >/dev/null 2>&1 || true
    if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
PORT=$((20000 + RANDOM % 30000))
CONN="host=$WORK port=$PORT user=postgres dbname=postgres"
psql_() { as_pg "$PGBIN/psql" -X -h "$WORK" -p "$PORT" -d postgres -qAt -v ON_ERROR_STOP=1 -c "$*"; }

as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
bench_pg_conf "$WORK/data" "$WORK" "$PORT" "archive_mode = off"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
echo "== pgbench -i -s $SCALE" >&2
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -i -s "$SCALE" -q postgres >"$WORK/pgbench-init.log" 2>&1
psql_ "checkpoint"

cat > "$WORK/local.conf" <<EOF
repository = file://$WORK/repo
catalog = $WORK/catalog.db
archive-check-timeout = 600
EOF
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
[bench]
pg1-path=$WORK/data
pg1-socket-path=$WORK
pg1-port=$PORT
EOF
chown postgres:postgres "$WORK"/*.conf; chmod 600 "$WORK"/*.conf
PGBR=(pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench)
as_pg "$WALCTL" init --config "$WORK/local.conf" --pgdata "$WORK/data" >/dev/null
cat >> "$WORK/data/postgresql.conf" <<EOF
archive_mode = on
archive_command = '$WALCTL archive-push --config $WORK/local.conf %p && pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench archive-push %p'
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w restart >/dev/null
as_pg "${PGBR[@]}" stanza-create >/dev/null
as_pg "${PGBR[@]}" check >/dev/null
DATA_BYTES="$(du -sb --exclude=pg_wal "$WORK/data" | cut -f1)"
echo "== data directory without pg_wal: $((DATA_BYTES / 1000000)) MB" >&2

: > "$WORK/results.tsv"
echo "== full backups" >&2
bench_measure "walctl backup (full)" "$WORK/repo/backup" "$WALCTL" backup --config "$WORK/local.conf" --label F --dbname "$CONN" --no-progress
bench_measure "pgbackrest backup --type=full" "$WORK/pgbr-repo/backup" "${PGBR[@]}" backup --type=full

echo "== 5% of the rows change" >&2
psql_ "$(bench_change_sql "$SCALE")"
psql_ "checkpoint"
CHECK="$(bench_accounts_checksum "$WORK" "$PORT")"

echo "== incremental backups" >&2
bench_measure "walctl backup --type incremental" "$WORK/repo/backup" "$WALCTL" backup --config "$WORK/local.conf" --type incremental --label I --dbname "$CONN" --no-progress
bench_measure "pgbackrest backup --type=incr" "$WORK/pgbr-repo/backup" "${PGBR[@]}" backup --type=incr
grep -E "read .* unchanged since" "$WORK/out.txt" >&2 || true

echo "== restores" >&2
RESTORE_F=("$WALCTL" restore-backup --config "$WORK/local.conf" F --pgdata "$WORK/r-full" --no-progress)
RESTORE_I=("$WALCTL" restore-backup --config "$WORK/local.conf" I --pgdata "$WORK/r-chain" --no-progress)
bench_alternate "${BENCH_RESTORE_RUNS:-4}" "walctl restore-backup F (full)" "$WORK/r-full" RESTORE_F \
    "walctl restore-backup I (chain F -> I)" "$WORK/r-chain" RESTORE_I
rm -rf "$WORK/r-chain"
install -d -m 700 -o postgres -g postgres "$WORK/r-pgbr"
bench_measure "pgbackrest restore (incr)" - "${PGBR[@]}" --pg1-path="$WORK/r-pgbr" restore
rm -rf "$WORK/r-pgbr"
# --delta: into a directory holding the restored full backup (the 5% change differs).
cp -a "$WORK/r-full" "$WORK/r-full-pgbr"
cp -a "$WORK/r-full" "$WORK/r-full-cold"
bench_measure "walctl restore-backup I --delta (over F)" - "$WALCTL" restore-backup --config "$WORK/local.conf" I --pgdata "$WORK/r-full" --delta --no-progress
grep -E "kept" "$WORK/out.txt" >&2 || true
bench_measure "pgbackrest restore --delta (over F)" - "${PGBR[@]}" --pg1-path="$WORK/r-full-pgbr" --delta restore
# The same two restores with the page cache dropped before each (when this kernel lets root do it):
# the target of a real --delta (a failed upgrade, a standby to resync) is not always in memory, and
# neither is the repository.
COLD=""
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    rm -rf "$WORK/r-cold-full"
    sync; echo 3 > /proc/sys/vm/drop_caches
    bench_measure "walctl restore-backup F (full, caches dropped)" - "$WALCTL" restore-backup --config "$WORK/local.conf" F --pgdata "$WORK/r-cold-full" --no-progress
    rm -rf "$WORK/r-cold-full"
    # The floors of a --delta that trusts nothing but the bytes: decoding the incremental's archives
    # (the changed files come from them, whole), and reading the target once.
    sync; echo 3 > /proc/sys/vm/drop_caches
    bench_measure "zstd -dc of I's archives (caches dropped): --delta's decoding floor" - bash -c 'find "$1" -name "*.zst" -exec zstd -dcq {} + > /dev/null' _ "$WORK/repo/backup/I"
    sync; echo 3 > /proc/sys/vm/drop_caches
    bench_measure "read every file of the target once (cat, caches dropped): --delta's floor" - bash -c 'find "$1" -type f -exec cat {} + > /dev/null' _ "$WORK/r-full-cold"
    sync; echo 3 > /proc/sys/vm/drop_caches
    bench_measure "walctl restore-backup I --delta (over F, caches dropped)" - "$WALCTL" restore-backup --config "$WORK/local.conf" I --pgdata "$WORK/r-full-cold" --delta --no-progress
    COLD="- walctl --delta / full restore, caches dropped before each: $(bench_ratio "$(bench_result 'walctl restore-backup I --delta (over F, caches dropped)' 2)" "$(bench_result 'walctl restore-backup F (full, caches dropped)' 2)"); --delta / decoding I: $(bench_ratio "$(bench_result 'walctl restore-backup I --delta (over F, caches dropped)' 2)" "$(bench_result "zstd -dc of I's archives (caches dropped): --delta's decoding floor" 2)"); --delta / reading the target once: $(bench_ratio "$(bench_result 'walctl restore-backup I --delta (over F, caches dropped)' 2)" "$(bench_result "read every file of the target once (cat, caches dropped): --delta's floor" 2)")"
fi
rm -rf "$WORK/r-full-cold"
# The delta result recovers to the incremental's rows.
as_pg touch "$WORK/r-full/recovery.signal"
GOT="$(bench_restored_checksum "$WORK/r-full" "$WORK" $((PORT + 1)) \
    "restore_command = '$WALCTL archive-get --config $WORK/local.conf %f %p'" \
    "recovery_target = 'immediate'" "recovery_target_action = promote")"
[ "$GOT" = "$CHECK" ] && DELTA_OK="the --delta result recovered to exactly the incremental's rows" || DELTA_OK="MISMATCH after --delta"

r() { bench_result "$@"; }
ratio() { bench_ratio "$@"; }
{
    echo "Incremental backups, pgbench scale $SCALE ($((DATA_BYTES / 1000000)) MB without pg_wal), PostgreSQL 15, file repository, change ${BENCH_CHANGE:-spread}, $(nproc) cores, $(date -u +%Y-%m-%d)"
    echo
    bench_results_table
    echo
    echo "- walctl incremental / full: time $(ratio "$(r 'walctl backup --type incremental' 2)" "$(r 'walctl backup (full)' 2)"), stored $(ratio "$(r 'walctl backup --type incremental' 3)" "$(r 'walctl backup (full)' 3)")"
    echo "- pgBackRest incr / full: time $(ratio "$(r 'pgbackrest backup --type=incr' 2)" "$(r 'pgbackrest backup --type=full' 2)"), stored $(ratio "$(r 'pgbackrest backup --type=incr' 3)" "$(r 'pgbackrest backup --type=full' 3)")"
    echo "- walctl chain restore / full restore: $(ratio "$(r 'walctl restore-backup I (chain F -> I)' 2)" "$(r 'walctl restore-backup F (full)' 2)")"
    echo "- walctl --delta / full restore: $(ratio "$(r 'walctl restore-backup I --delta (over F)' 2)" "$(r 'walctl restore-backup F (full)' 2)"); pgBackRest --delta / its restore: $(ratio "$(r 'pgbackrest restore --delta (over F)' 2)" "$(r 'pgbackrest restore (incr)' 2)")"
    [ -z "$COLD" ] || echo "$COLD"
    echo "- $DELTA_OK"
} | tee "$WORK/report.md"
