#!/usr/bin/env bash
# Benchmarks/drill.sh: the overhead of `walctl drill` over a bare recovery of the same target
# (issue 16; goal: < 10% plus the checks' own time). One PostgreSQL source cluster archives through
# walctl into a file repository: a base backup, then DRILL_SEGMENTS segments of inserts, a target.
# Then DRILL_RUNS times, alternating:
#   bare:  walctl recover --to TARGET --action promote, pg_ctl start, wait until promoted, pg_ctl
#          stop -m fast, rm -rf (what an operator does by hand for a drill without walctl drill)
#   drill: walctl drill --to TARGET (the same restore, replay and promotion, plus its checks,
#          clean-up and the record in the repository and catalog)
# and prints the medians: bare, drill, drill minus its checks, the overhead, and the checks' time.
#
#   bash Benchmarks/drill.sh                       # PostgreSQL 15, 16 segments, 5 runs each
#   DRILL_SEGMENTS=48 DRILL_RUNS=7 PGV=16 bash Benchmarks/drill.sh
#
# Needs root (PostgreSQL runs as postgres) and the release build (WALCTL to override).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/Tests/integration/lib.sh"
V="${PGV:-15}"; SEGS="${DRILL_SEGMENTS:-16}"; RUNS="${DRILL_RUNS:-5}"
BIN="$(pg_bin "$V")"
W="$(mktemp -d /tmp/walctl-drill-bench.XXXXXX)"; chmod 755 "$W"; chown postgres:postgres "$W"
PORT="$(free_port)"
trap 'pg_stop "$V" "$W/data" immediate; pg_stop "$V" "$W/bare" immediate; rm -rf "$W"' EXIT
write_config "$W" "pg-bin = $BIN"
init_cluster "$V" "$W/data"
as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" \
    "timezone = 'UTC'" "log_timezone = 'UTC'" "max_wal_size = 4GB"
pg_start "$V" "$W/data"
sql() { psql_at "$V" "$W" "$PORT" "$@"; }
sql "create table t(id bigint primary key, v text)"
sql "insert into t select g, md5(g::text) from generate_series(1, 200000) g"
as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label base --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null 2>&1 || { echo "backup failed"; exit 1; }
start_lsn="$(sql "select pg_current_wal_lsn()")"
n=0
while [ "$(sql "select floor((pg_current_wal_lsn() - '$start_lsn'::pg_lsn) / 16777216)::int")" -lt "$SEGS" ]; do
    sql "insert into t select g, md5(g::text) from generate_series($((n * 100000 + 1000001)), $((n * 100000 + 1100000))) g"; n=$((n + 1))
done
sleep 1.1; TARGET="$(sql "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"; sleep 1.1
sql "insert into t values (0, 'after')"
last="$(sql "select pg_walfile_name(pg_switch_wal())")"
wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver')\" \\> '$last' ] || [ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver')\" = '$last' ]"
pg_stop "$V" "$W/data"
plan="$(as_pg "$WALCTL" recover --config "$W/walctl.conf" --to "$TARGET" --pgdata "$W/x" --dry-run --json)"
echo "== PostgreSQL $V, $(echo "$plan" | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["segmentCount"], "segments,", round(p["walBytes"]/1e6), "MB WAL,", round(p["backupStoredBytes"]/1e6,1), "MB backup stored")'); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
bare=(); drill=(); checks=(); nochecks=()
for i in $(seq 1 "$RUNS"); do
    t0="$(now)"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --to "$TARGET" --pgdata "$W/bare" --action promote >/dev/null 2>&1 || { echo "recover failed"; exit 1; }
    # As the drill does: no archiving from the recovered copy (its promotion would archive a new
    # timeline into the repository, and the next plan would follow it).
    as_pg sed -i "s/^port = .*/port = $PORT/; s/^archive_mode = .*/archive_mode = off/" "$W/bare/postgresql.conf"
    as_pg "$BIN/pg_ctl" -D "$W/bare" -l "$W/bare/walctl_recovery.log" -w -t 600 start >/dev/null
    until [ "$(sql "select pg_is_in_recovery()" 2>/dev/null)" = f ]; do sleep 0.05; done
    as_pg "$BIN/pg_ctl" -D "$W/bare" -w -m fast stop >/dev/null
    rm -rf "$W/bare"
    t1="$(now)"
    out="$(cd "$W" && as_pg "$WALCTL" drill --config "$W/walctl.conf" --workdir "$W/drills" --to "$TARGET" --json 2>/dev/null)" || { echo "drill failed"; echo "$out"; exit 1; }
    t2="$(now)"
    b="$(echo "$t1 - $t0" | bc)"; d="$(echo "$t2 - $t1" | bc)"
    c="$(echo "$out" | python3 -c 'import json,sys; print(sum(p["seconds"] for p in json.load(sys.stdin)["phases"] if p["name"]=="checks"))')"
    bare+=("$b"); drill+=("$d"); checks+=("$c"); nochecks+=("$(echo "$d - $c" | bc)")
    printf 'run %d: bare %.2f s, drill %.2f s (checks %.2f s, without them %.2f s)\n' "$i" "$b" "$d" "$c" "$(echo "$d - $c" | bc)"
    echo "$out" | python3 -c 'import json,sys; print("   drill parts: " + ", ".join("%s %.2f" % (p["name"], p["seconds"]) for p in json.load(sys.stdin)["phases"]))'
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mb="$(median "${bare[@]}")"; md="$(median "${drill[@]}")"; mc="$(median "${checks[@]}")"; mn="$(median "${nochecks[@]}")"
printf 'medians of %d: bare recovery %.2f s, drill %.2f s, checks %.2f s, drill without checks %.2f s: overhead %+.1f%% (goal < 10%%)\n' \
    "$RUNS" "$mb" "$md" "$mc" "$mn" "$(echo "($mn - $mb) * 100 / $mb" | bc -l)"
