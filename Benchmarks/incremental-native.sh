#!/usr/bin/env bash
# Native incremental backup benchmark (issue 18, PostgreSQL 17+ path, run on PostgreSQL 18): on a
# pgbench database after 5% of the rows change, walctl's native incremental (UPLOAD_MANIFEST +
# BASE_BACKUP INCREMENTAL, summarize_wal = on) against its full backup, and the chain restore
# (walctl's own combine) against a full restore; PostgreSQL's own pg_basebackup --incremental and
# pg_combinebackup on the same data and the same change, for reference. pgBackRest is not compared:
# 2.45 does not support PostgreSQL 18.
#
# Run as root (the cluster runs as the postgres OS user):  Benchmarks/incremental-native.sh
# Environment:
#   BENCH_SCALE=100     pgbench scale (100 is about 1.5 GB)
#   WALCTL=...          the walctl binary (default: .build-static/release/walctl of this checkout,
#                       built if missing; release, --static-swift-stdlib)
#   PG18BIN=...         PostgreSQL 18 binaries (default: .deps/pg18/bin of this checkout)
#   KEEP_TMP=1          keep the work directory
#   BENCH_RESTORE_RUNS=4 each restore (walctl's full and chain, pg_combinebackup's copy and chain) is
#                       measured this many times, pairs in alternating order (lib.sh bench_alternate)
#   BENCH_CHANGE=spread the 5% change: `spread` (aid % 20 = 0: every page of the table) or `range`
#                       (aid <= rows/20: the first 5% of the table's pages, plus the new row versions
#                       appended at its end); Benchmarks/lib.sh bench_change_sql
#
# What it does: initdb a PostgreSQL 18 cluster with summarize_wal = on, `pgbench -i -s $BENCH_SCALE`
# with archiving off, then archive_mode on, every segment pushed through walctl (file repository).
# Then: walctl full backup F and pg_basebackup -Fp (plain, uncompressed: pg_combinebackup needs
# plain directories); the change `update pgbench_accounts set abalance = abalance + 1 where aid % 20 =
# 0` (5% of the rows, spread over every page of the table) and a checkpoint; walctl backup --type
# incremental I (must report the native path) and pg_basebackup --incremental on the plain full's
# manifest; one more walctl incremental with nothing changed (the fixed cost of an incremental);
# walctl restore-backup F, restore-backup I (the chain F -> I), restore-backup I --delta over a copy
# of the restored F, pg_combinebackup of the plain full
# alone (a full "restore" with PostgreSQL's tool) and of full + incremental. Every restore is started
# and its pgbench_accounts checksum compared with the source's at that backup. Every command runs as
# postgres under /usr/bin/time; times are wall seconds, stored bytes `du -sb` of what a step added.
# Prints a markdown table and writes it to $WORK/report.md.
set -euo pipefail
LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${BENCH_SCALE:-100}"
PGBIN="${PG18BIN:-$REPO/.deps/pg18/bin}"
# shellcheck source=Benchmarks/lib.sh
source "$REPO/Benchmarks/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
for t in /usr/bin/time "$PGBIN/postgres" "$PGBIN/pg_basebackup" "$PGBIN/pg_combinebackup"; do
    [ -x "$t" ] || { echo "missing $t" >&2; exit 1; }
done
"$PGBIN/postgres" --version | grep -qE ' (1[7-9]|[2-9][0-9])\.' || { echo "$PGBIN is not PostgreSQL 17+" >&2; exit 1; }
if [ -z "${WALCTL:-}" ]; then
    WALCTL="$REPO/.build-static/release/walctl"
    for p in walctl walctl-core; do
        [ -x "$REPO/.build-static/release/$p" ] || (cd "$REPO" && swift build -c release --static-swift-stdlib --scratch-path .build-static --product "$p" >&2)
    done
fi

WORK="$(mktemp -d /tmp/walctl-nbench.XXXXXX)"
chmod 755 "$WORK"; mkdir -p "$WORK/bin" "$WORK/pgb"; bench_copy_walctl "$WORK/bin"
chown -R postgres:postgres "$WORK"
cleanup() {
    local d; for d in "$WORK/data" "$WORK"/r-*; do
        [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -w -m fast stop >/dev/null 2>&1 || true
    done
    if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
PORT=$((20000 + RANDOM % 30000))
CONN="host=$WORK port=$PORT user=postgres dbname=postgres"
psql_() { as_pg "$PGBIN/psql" -X -h "$WORK" -p "$PORT" -d postgres -qAt -v ON_ERROR_STOP=1 -c "$*"; }
PGB=("$PGBIN/pg_basebackup" -h "$WORK" -p "$PORT" -U postgres -Fp -X stream -c fast)

as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -U postgres >/dev/null
cat > "$WORK/local.conf" <<EOF
repository = file://$WORK/repo
catalog = $WORK/catalog.db
archive-check-timeout = 600
EOF
chown postgres:postgres "$WORK/local.conf"; chmod 600 "$WORK/local.conf"
# Before the first start, as the integration suites do: on a running PostgreSQL 18 cluster pg_wal
# may hold a preallocated, still zero-filled next segment, which `walctl init --pgdata` refuses.
as_pg "$WALCTL" init --config "$WORK/local.conf" --pgdata "$WORK/data" >/dev/null
bench_pg_conf "$WORK/data" "$WORK" "$PORT" "summarize_wal = on" "wal_summary_keep_time = '1d'" "archive_mode = off"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
echo "== pgbench -i -s $SCALE (PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'))" >&2
as_pg "$PGBIN/pgbench" -h "$WORK" -p "$PORT" -i -s "$SCALE" -q postgres >"$WORK/pgbench-init.log" 2>&1
psql_ "checkpoint"

cat >> "$WORK/data/postgresql.conf" <<EOF
archive_mode = on
archive_command = '$WALCTL archive-push --config $WORK/local.conf %p'
EOF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w restart >/dev/null
[ "$(psql_ "show summarize_wal")" = on ] || { echo "summarize_wal is not on" >&2; exit 1; }
DATA_BYTES="$(du -sb --exclude=pg_wal "$WORK/data" | cut -f1)"
echo "== data directory without pg_wal: $((DATA_BYTES / 1000000)) MB" >&2

: > "$WORK/results.tsv"
echo "== full backups" >&2
CHECK_F="$(bench_accounts_checksum "$WORK" "$PORT")"
bench_measure "walctl backup take (full F)" "$WORK/repo/backup" "$WALCTL" backup take --config "$WORK/local.conf" --label F --dbname "$CONN" --no-progress
bench_measure "pg_basebackup -Fp (full)" "$WORK/pgb" "${PGB[@]}" -D "$WORK/pgb/full"

echo "== 5% of the rows change" >&2
psql_ "$(bench_change_sql "$SCALE")"
psql_ "checkpoint"
CHECK_I="$(bench_accounts_checksum "$WORK" "$PORT")"
[ "$CHECK_I" != "$CHECK_F" ] || { echo "the change changed nothing" >&2; exit 1; }

echo "== incremental backups" >&2
bench_measure "walctl backup take --type incremental (I on F)" "$WORK/repo/backup" "$WALCTL" backup take --config "$WORK/local.conf" --type incremental --label I --dbname "$CONN" --no-progress
grep -q "incremental (native) on F" "$WORK/out.txt" || { echo "I is not a native incremental on F:" >&2; cat "$WORK/out.txt" >&2; exit 1; }
grep -E "incremental \(native\)" "$WORK/out.txt" >&2 || true
bench_measure "pg_basebackup -Fp --incremental (on the plain full)" "$WORK/pgb" "${PGB[@]}" --incremental="$WORK/pgb/full/backup_manifest" -D "$WORK/pgb/incr"
bench_measure "walctl backup take --type incremental, nothing changed (N on I)" "$WORK/repo/backup" "$WALCTL" backup take --config "$WORK/local.conf" --type incremental --label N --dbname "$CONN" --no-progress
grep -q "incremental (native) on I" "$WORK/out.txt" || { echo "N is not a native incremental on I:" >&2; cat "$WORK/out.txt" >&2; exit 1; }
# What the server counted as changed: the relation files in the plain incremental, whole (the server
# sends a file whole when most of its blocks changed) or INCREMENTAL.* (the changed blocks only).
REL_RE='.*/base/.*/\(INCREMENTAL\.\)?[0-9]+\(_[a-z]+\)?\(\.[0-9]+\)?$'
rel_bytes() { find "$1/base" -type f -regex "$REL_RE" ${2:+-name "$2"} -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
FULL_REL_BYTES="$(rel_bytes "$WORK/pgb/full")"
INCR_REL_BYTES="$(rel_bytes "$WORK/pgb/incr")"
INCR_PARTIAL_BYTES="$(rel_bytes "$WORK/pgb/incr" 'INCREMENTAL.*')"
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -w -m fast stop >/dev/null

echo "== restores" >&2
RESTORE_F=("$WALCTL" restore-backup --config "$WORK/local.conf" F --pgdata "$WORK/r-full" --no-progress)
RESTORE_I=("$WALCTL" restore-backup --config "$WORK/local.conf" I --pgdata "$WORK/r-chain" --no-progress)
COMBINE_F=("$PGBIN/pg_combinebackup" -o "$WORK/r-pgfull" "$WORK/pgb/full")
COMBINE_I=("$PGBIN/pg_combinebackup" -o "$WORK/r-pgchain" "$WORK/pgb/full" "$WORK/pgb/incr")
RUNS="${BENCH_RESTORE_RUNS:-4}"
bench_alternate "$RUNS" "walctl restore-backup F (full)" "$WORK/r-full" RESTORE_F \
    "walctl restore-backup I (chain F -> I, walctl's combine)" "$WORK/r-chain" RESTORE_I
bench_alternate "$RUNS" "pg_combinebackup full (copy of the plain full)" "$WORK/r-pgfull" COMBINE_F \
    "pg_combinebackup full + incr" "$WORK/r-pgchain" COMBINE_I
# --delta of the native chain into a copy of the restored full backup (the 5% change differs): the
# combine compares each block in place and writes only those that differ (docs/backup.md).
rm -rf "$WORK/r-delta"; cp -a "$WORK/r-full" "$WORK/r-delta"
bench_measure "walctl restore-backup I --delta (native chain, over F)" - "$WALCTL" restore-backup --config "$WORK/local.conf" I --pgdata "$WORK/r-delta" --delta --no-progress

echo "== verifying each restore (started, pgbench_accounts checksum)" >&2
P2=$((PORT + 1))
RECOVERY=("restore_command = '$WALCTL archive-get --config $WORK/local.conf %f %p'" "recovery_target = 'immediate'" "recovery_target_action = promote")
VERIFY=()
verify() {   # verify NAME DIR EXPECTED [archive]
    local got
    [ "${4:-}" = archive ] && as_pg touch "$2/recovery.signal"
    if [ "${4:-}" = archive ]; then got="$(bench_restored_checksum "$2" "$WORK" "$P2" "${RECOVERY[@]}")"
    else got="$(bench_restored_checksum "$2" "$WORK" "$P2")"; fi
    if [ "$got" = "$3" ]; then VERIFY+=("$1: pgbench_accounts checksum equals the source's ($got)")
    else VERIFY+=("$1: MISMATCH: got '$got', expected '$3'"); VERIFY_FAILED=1; fi
    echo "   ${VERIFY[-1]}" >&2
    rm -rf "$2" "$2.log"
}
VERIFY_FAILED=0
verify "walctl restore of F" "$WORK/r-full" "$CHECK_F" archive
verify "walctl restore of I (chain)" "$WORK/r-chain" "$CHECK_I" archive
verify "pg_combinebackup full" "$WORK/r-pgfull" "$CHECK_F"
verify "pg_combinebackup full + incr" "$WORK/r-pgchain" "$CHECK_I"
verify "walctl --delta of I over F" "$WORK/r-delta" "$CHECK_I" archive

r() { bench_result "$@"; }
ratio() { bench_ratio "$@"; }
WF='walctl backup take (full F)'; WI='walctl backup take --type incremental (I on F)'; WN='walctl backup take --type incremental, nothing changed (N on I)'
PF='pg_basebackup -Fp (full)'; PI='pg_basebackup -Fp --incremental (on the plain full)'
{
    echo "Native incremental backups, pgbench scale $SCALE ($((DATA_BYTES / 1000000)) MB without pg_wal), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), summarize_wal = on, file repository, change ${BENCH_CHANGE:-spread}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), load average before/after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    bench_results_table
    echo
    echo "- walctl incremental / full: time $(ratio "$(r "$WI" 2)" "$(r "$WF" 2)"), stored $(ratio "$(r "$WI" 3)" "$(r "$WF" 3)"); fixed cost (incremental with nothing changed) / full: time $(ratio "$(r "$WN" 2)" "$(r "$WF" 2)"), stored $(ratio "$(r "$WN" 3)" "$(r "$WF" 3)")"
    echo "- pg_basebackup incremental / full (plain, uncompressed, WAL included): time $(ratio "$(r "$PI" 2)" "$(r "$PF" 2)"), stored $(ratio "$(r "$PI" 3)" "$(r "$PF" 3)")"
    echo "- changed fraction as the server sees it (plain incremental): relation files $INCR_REL_BYTES bytes ($INCR_PARTIAL_BYTES of them in INCREMENTAL.* files, the rest files sent whole) of $FULL_REL_BYTES bytes in the full = $(ratio "$INCR_REL_BYTES" "$FULL_REL_BYTES"), for 5% of the rows"
    echo "- walctl chain restore / full restore: $(ratio "$(r "walctl restore-backup I (chain F -> I, walctl's combine)" 2)" "$(r 'walctl restore-backup F (full)' 2)"); pg_combinebackup full + incr / full alone: $(ratio "$(r 'pg_combinebackup full + incr' 2)" "$(r 'pg_combinebackup full (copy of the plain full)' 2)")"
    echo "- walctl --delta (native chain over F) / full restore (median; each full restore's time is in the table): $(ratio "$(r 'walctl restore-backup I --delta (native chain, over F)' 2)" "$(r 'walctl restore-backup F (full)' 2)")"
    for v in "${VERIFY[@]}"; do echo "- $v"; done
    echo "- pgBackRest: not compared, 2.45 does not support PostgreSQL 18"
} | tee "$WORK/report.md"
[ "$VERIFY_FAILED" -eq 0 ] || { echo "a restore did not give the source's rows" >&2; exit 1; }
