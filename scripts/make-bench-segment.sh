#!/usr/bin/env bash
# Makes real 16 MiB WAL segments for the WALScan benchmark with a throwaway PostgreSQL 15 cluster.
#
# Usage: scripts/make-bench-segment.sh [OUTDIR]     (default OUTDIR: /tmp/walctl-bench)
#
# Writes two segment files to OUTDIR:
#   oltp.wal  a segment written entirely during a pgbench run (many small records, commits)
#   bulk.wal  a segment written during `pgbench -i` (COPY and index build: large records, few commits)
# and prints the line to use them: export WALCTL_BENCH_SEGMENT=OUTDIR  (the benchmark reads every
# *.wal file in a directory, or the one file named).
#
# PostgreSQL 15 binaries come from WALCTL_PG15_BIN (default /usr/lib/postgresql/15/bin). PostgreSQL
# refuses to run as root, so as root the server programs run as the `postgres` OS user.
set -euo pipefail

OUT="${1:-/tmp/walctl-bench}"
BIN="${WALCTL_PG15_BIN:-/usr/lib/postgresql/15/bin}"
for p in initdb pg_ctl psql pgbench; do
    [ -x "$BIN/$p" ] || { echo "make-bench-segment: $BIN/$p not found (set WALCTL_PG15_BIN)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/walctl-benchpg.XXXXXX)"
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$WORK"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
chmod 700 "$WORK"
PORT=$((20000 + RANDOM % 30000))
export PGHOST="$WORK" PGPORT="$PORT" PGUSER=postgres TZ=UTC LC_ALL=C
cleanup() {
    as_pg env PGHOST="$WORK" "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

sql() { as_pg env PGHOST="$WORK" PGPORT="$PORT" "$BIN/psql" -X -A -t -q -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$1"; }

as_pg "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
as_pg mkdir "$WORK/archive"
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PORT
fsync = off
archive_mode = on
archive_command = 'cp %p $WORK/archive/%f'
max_wal_size = '4GB'
checkpoint_timeout = '1h'
EOF
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null

# Bulk phase: pgbench -i writes ~150 MB of WAL; take a segment from its middle.
bulk_start="$(sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")"
as_pg env PGHOST="$WORK" PGPORT="$PORT" "$BIN/pgbench" -i -q -s 10 -U postgres postgres >/dev/null 2>&1
bulk_end="$(sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")"
sql "CHECKPOINT" >/dev/null

# OLTP phase: full-page images after the checkpoint, then small updates and commits.
oltp_start="$(sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")"
as_pg env PGHOST="$WORK" PGPORT="$PORT" "$BIN/pgbench" -n -c 4 -j 2 -T 25 -U postgres postgres >/dev/null 2>&1
oltp_end="$(sql "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")"
last="$(sql "SELECT pg_walfile_name(pg_switch_wal())")"
for _ in $(seq 1 600); do
    [ "$(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" = "$last" ] && break
    sleep 0.1
done

# A segment strictly inside each phase (the hex names sort in WAL order on one timeline).
pick() {  # FIRST LAST: the middle archived segment strictly between them
    local list
    list=($(ls "$WORK/archive" | grep -E '^[0-9A-F]{24}$' | sort | awk -v a="$1" -v b="$2" '$0 > a && $0 < b'))
    [ "${#list[@]}" -gt 0 ] || { echo "make-bench-segment: no archived segment between $1 and $2" >&2; exit 1; }
    echo "${list[$(( ${#list[@]} / 2 ))]}"
}
bulk="$(pick "$bulk_start" "$bulk_end")"
oltp="$(pick "$oltp_start" "$oltp_end")"
mkdir -p "$OUT"
cp "$WORK/archive/$bulk" "$OUT/bulk.wal"
cp "$WORK/archive/$oltp" "$OUT/oltp.wal"
echo "make-bench-segment: bulk.wal = $bulk, oltp.wal = $oltp (PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'))" >&2
echo "export WALCTL_BENCH_SEGMENT=$OUT"
