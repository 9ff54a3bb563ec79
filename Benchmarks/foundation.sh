#!/usr/bin/env bash
# Benchmarks/foundation.sh: the "Measure" figures of issue 2 (foundation), end to end, in one run.
#
#   Benchmarks/foundation.sh            # build, make real WAL, measure, print a markdown report
#
# 1. builds walctl release with the static Swift stdlib into its own scratch path ($SCRATCH);
# 2. starts a throwaway PostgreSQL 15 cluster as the `postgres` user, fills WAL with pgbench
#    (a bulk-load segment from `pgbench -i`, an OLTP segment from `pgbench -T`), archives them with cp;
# 3. creates a pgBackRest stanza (posix repository, zst level 3) against that cluster, then stops it;
# 4. runs hyperfine: start-up (walctl --version, archive-get of a missing file, pgbackrest version),
#    archive-push of each segment (walctl, pgbackrest, the zstd floor), archive-get vs `zstd -d`;
# 5. prints the machine description and a table of medians and ratios ($WORK/report.md).
#
# Environment: SCRATCH (build dir, default .build-bench), WORK (default /tmp/walctl-foundation-bench),
# RUNS (hyperfine runs per command, default 30), PGBIN (default /usr/lib/postgresql/15/bin),
# WALCTL (use this binary instead of building),
# BASELINE (another walctl binary, e.g. the previous release: its archive-get of a present and of a
#   missing file is measured in the same hyperfine groups, so a change's cost is a same-run ratio),
# LOAD=1 ("under I/O load"): a second PostgreSQL cluster on the same disk runs `pgbench -c 4` (fsync on)
#   for the whole measurement, as a busy primary's own I/O competes with its archive_command. Needs root (runuser to the postgres user) and hyperfine, zstd,
# pgbackrest, postgresql-15, jq. Safe to rerun: $WORK is recreated.
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh"   # pgBackRest, hyperfine, nginx, GNU time (and the test dependencies)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-bench}
WORK=${WORK:-/tmp/walctl-foundation-bench}
RUNS=${RUNS:-30}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54991}
LOADPORT=${LOADPORT:-54992}
BASELINE=${BASELINE:-}
LOAD=${LOAD:-}

for tool in hyperfine zstd pgbackrest jq runuser; do
    command -v "$tool" >/dev/null || { echo "foundation.sh: $tool is required" >&2; exit 2; }
done
[ -x "$PGBIN/initdb" ] || { echo "foundation.sh: PostgreSQL 15 not found in $PGBIN" >&2; exit 2; }

# shellcheck source=Benchmarks/lib.sh
source "$ROOT/Benchmarks/lib.sh"
# --- 1. build -------------------------------------------------------------------------------------
bench_walctl foundation.sh

# --- 2. a throwaway cluster and real WAL ------------------------------------------------------------
bench_fresh_work sock walsrc pgbr pgbr-lock pgbr-log tmp
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true; }
stop_load() {
    [ -n "${LOAD_PID:-}" ] && kill "$LOAD_PID" 2>/dev/null
    as_pg "$PGBIN/pg_ctl" -D "$WORK/loaddata" -m immediate stop >/dev/null 2>&1 || true
}
trap 'cleanup; stop_load' EXIT

echo "== PostgreSQL 15 cluster in $WORK/pgdata" >&2
bench_cluster 1GB
as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -U postgres -i -s 10 -q postgres >/dev/null 2>&1
BULK=$(as_pg "${PSQL[@]}" -c "select pg_walfile_name(pg_current_wal_lsn())")
as_pg "${PSQL[@]}" -c "select pg_switch_wal()" >/dev/null
# OLTP until at least two more segments are complete (a loaded machine writes WAL slowly).
for _ in $(seq 1 30); do
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -U postgres -c 2 -T 5 postgres >/dev/null 2>&1
    OLTP=$(as_pg "${PSQL[@]}" -c "select pg_walfile_name(pg_current_wal_lsn())")
    [ $(( 16#${OLTP:16:8} - 16#${BULK:16:8} )) -ge 3 ] && break
done
as_pg "${PSQL[@]}" -c "select pg_switch_wal()" >/dev/null
# The bulk segment: one filled by pgbench -i's COPY, the one before the last of that phase.
BULK=$(printf '%s%08X' "${BULK:0:16}" $(( 16#${BULK:16:8} - 1 )))
# The OLTP segment: the last complete one of the pgbench -T phase.
OLTP=$(printf '%s%08X' "${OLTP:0:16}" $(( 16#${OLTP:16:8} - 1 )))
for s in "$BULK" "$OLTP"; do
    for _ in $(seq 1 60); do [ -f "$WORK/walsrc/$s" ] && break; sleep 0.5; done
    [ -f "$WORK/walsrc/$s" ] || { echo "foundation.sh: segment $s was not archived" >&2; exit 1; }
done

echo "== pgBackRest stanza (posix, zst 3)" >&2
PGBR=(pgbackrest --stanza=bench --pg1-path="$WORK/pgdata"
      --repo1-path="$WORK/pgbr" --lock-path="$WORK/pgbr-lock" --log-path="$WORK/pgbr-log"
      --log-level-file=off --log-level-console=warn)
as_pg "${PGBR[@]}" --pg1-socket-path="$WORK/sock" --pg1-port="$PORT" stanza-create >&2
# pgBackRest runs as root from here (like walctl and zstd): no runuser wrapper in the timings.
chown -R root "$WORK/pgbr" "$WORK/pgbr-lock" "$WORK/pgbr-log"
cleanup   # the cluster is not needed any more: stop it so it does not disturb the measurements

echo "== walctl repository template" >&2
export WALCTL_CONFIG=/dev/null   # no config file: every setting from the environment below
export WALCTL_LOG_LEVEL=warning
export WALCTL_REPOSITORY="file://$WORK/repo" WALCTL_CATALOG="$WORK/repo-catalog.db"
"$WALCTL" init --pgdata "$WORK/pgdata" >&2
# One earlier segment already archived, so the catalog exists (WAL mode) as in a running setup:
# otherwise every measured push would also create the catalog schema (7 extra fdatasyncs).
"$WALCTL" archive-push "$WORK/walsrc/000000010000000000000001" >&2
cp -a "$WORK/repo" "$WORK/repo.template"
cp -a "$WORK/repo-catalog.db" "$WORK/repo-catalog.template"
fresh_repo="rm -rf $WORK/repo $WORK/repo-catalog.db* && cp -a $WORK/repo.template $WORK/repo && cp -a $WORK/repo-catalog.template $WORK/repo-catalog.db && sync"
chmod -R a+rwX "$WORK"

# --- 4. measurements -------------------------------------------------------------------------------
if [ -n "$LOAD" ]; then
    echo "== I/O load: a second cluster on the same disk, pgbench -c 4 for the whole run" >&2
    as_pg "$PGBIN/initdb" -D "$WORK/loaddata" -U postgres --no-sync >/dev/null
    cat >>"$WORK/loaddata/postgresql.conf" <<CONF
port = $LOADPORT
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
fsync = on
synchronous_commit = on
CONF
    as_pg "$PGBIN/pg_ctl" -D "$WORK/loaddata" -l "$WORK/load.log" -w start >/dev/null
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$LOADPORT" -U postgres -i -s 20 -q postgres >/dev/null 2>&1
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$LOADPORT" -U postgres -c 4 -T 86400 postgres >"$WORK/load-pgbench.log" 2>&1 &
    LOAD_PID=$!
    sleep 3
fi
J=$WORK/json; mkdir -p "$J"
HF=(hyperfine --style basic --warmup 3 --runs "$RUNS")
median() { jq -r ".results[$2].median * 1000" "$J/$1.json"; }

echo "== start-up" >&2
"${HF[@]}" -N -i --export-json "$J/startup.json" \
    -n "walctl --version" "$WALCTL --version" \
    -n "walctl archive-get (missing)" "$WALCTL archive-get 0000000100000000000000FE $WORK/tmp/missing" \
    -n "pgbackrest version" "pgbackrest version" >&2

for kind in bulk oltp; do
    if [ $kind = bulk ]; then seg=$BULK; else seg=$OLTP; fi
    SEG=$WORK/walsrc/$seg
    echo "== archive-push, $kind segment $seg" >&2
    # Shell mode (hyperfine subtracts the shell's own start-up) so that `a && sync` is measured like
    # the single commands. Each run starts from a fresh repository / an absent output.
    pgbr_clean="rm -rf $WORK/pgbr/archive/bench/15-1/0000000100000000 && sync"
    "${HF[@]}" --export-json "$J/push-$kind.json" \
        -n "walctl archive-push" --prepare "$fresh_repo" "$WALCTL archive-push $SEG" \
        -n "zstd -3 && sync" --prepare "rm -f $WORK/tmp/out.zst && sync" "zstd -3 -q $SEG -o $WORK/tmp/out.zst && sync" \
        -n "zstd -3 && sync FILE" --prepare "rm -f $WORK/tmp/out.zst && sync" "zstd -3 -q $SEG -o $WORK/tmp/out.zst && sync $WORK/tmp/out.zst" \
        -n "pgbackrest archive-push" --prepare "$pgbr_clean" "${PGBR[*]} --compress-type=zst --compress-level=3 archive-push $SEG" >&2

    echo "== archive-get, $kind segment" >&2
    eval "$fresh_repo"
    "$WALCTL" archive-push "$SEG"
    OBJ=$(find "$WORK/repo" -type f -name "$seg*.zst" | head -1)
    [ -n "$OBJ" ] || { echo "foundation.sh: no .zst object for $seg in $WORK/repo" >&2; exit 1; }
    BASE_ROWS=()
    [ -n "$BASELINE" ] && BASE_ROWS=(-n "baseline archive-get" --prepare "rm -f $WORK/tmp/restored" "$BASELINE archive-get $seg $WORK/tmp/restored"
                                     -n "baseline archive-get (missing)" --prepare "rm -f $WORK/tmp/missing" "$BASELINE archive-get 0000000100000000000000FE $WORK/tmp/missing"
                                     -n "walctl archive-get (missing)" --prepare "rm -f $WORK/tmp/missing" "$WALCTL archive-get 0000000100000000000000FE $WORK/tmp/missing")
    "${HF[@]}" -i --export-json "$J/get-$kind.json" \
        -n "walctl archive-get" --prepare "rm -f $WORK/tmp/restored" "$WALCTL archive-get $seg $WORK/tmp/restored" \
        -n "zstd -d" --prepare "rm -f $WORK/tmp/restored" "zstd -d -q $OBJ -o $WORK/tmp/restored" \
        -n "zstd -d && sync FILE" --prepare "rm -f $WORK/tmp/restored" "zstd -d -q $OBJ -o $WORK/tmp/restored && sync $WORK/tmp/restored" \
        "${BASE_ROWS[@]}" >&2
    "$WALCTL" archive-get "$seg" "$WORK/tmp/restored"
    cmp "$WORK/tmp/restored" "$SEG"   # zstd -d gave back the original bytes
    eval "$kind"_size=$(zstd -3 -q -c "$SEG" | wc -c)
done

# --- 5. report -------------------------------------------------------------------------------------
r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
f() { awk -v a="$1" 'BEGIN { printf "%.1f", a }'; }
{
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(grep -m1 PRETTY_NAME /etc/os-release | cut -d'"' -f2)"
    [ -n "$LOAD" ] && echo "UNDER I/O LOAD: a second cluster on the same disk ran pgbench -c 4 (fsync on) for the whole run (scale 20, synchronous_commit on)."
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). hyperfine $(hyperfine --version | cut -d' ' -f2), $RUNS runs each, medians in ms."
    echo "walctl: $("$WALCTL" --version), release, --static-swift-stdlib; $(pgbackrest version); $(zstd --version | head -1)"
    echo
    s0=$(median startup 0); s1=$(median startup 1); s2=$(median startup 2)
    echo "| start-up | median ms | vs pgbackrest version |"
    echo "|---|---:|---:|"
    echo "| walctl --version | $(f "$s0") | $(r "$s0" "$s2") |"
    echo "| walctl archive-get (missing file, exit 1) | $(f "$s1") | $(r "$s1" "$s2") |"
    echo "| pgbackrest version | $(f "$s2") | 1.00x |"
    echo
    echo "| 16 MiB segment | walctl archive-push | zstd -3 && sync | zstd -3 && sync FILE | pgbackrest archive-push | walctl / floor (sync) | walctl / floor (sync FILE) | pgbackrest / floor (sync) | walctl archive-get | zstd -d | get ratio | zstd -d && sync FILE | get ratio (same durability) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for kind in bulk oltp; do
        p0=$(median push-$kind 0); p1=$(median push-$kind 1); p2=$(median push-$kind 2)
        p3=$(median push-$kind 3)
        g0=$(median get-$kind 0); g1=$(median get-$kind 1); g2=$(median get-$kind 2)
        eval sz=\$"$kind"_size
        echo "| $kind ($(awk -v s="$sz" 'BEGIN { printf "%.1f MB zst", s / 1e6 }')) | $(f "$p0") | $(f "$p1") | $(f "$p2") | $(f "$p3") | $(r "$p0" "$p1") | $(r "$p0" "$p2") | $(r "$p3" "$p1") | $(f "$g0") | $(f "$g1") | $(r "$g0" "$g1") | $(f "$g2") | $(r "$g0" "$g2") |"
    done
    if [ -n "$BASELINE" ]; then
        echo
        echo "Same-run comparison with BASELINE ($BASELINE):"
        echo
        echo "| segment | archive-get present: walctl / baseline ms | ratio | archive-get missing: walctl / baseline ms | difference ms |"
        echo "|---|---:|---:|---:|---:|"
        for kind in bulk oltp; do
            g0=$(median get-$kind 0); b0=$(median get-$kind 3); bm=$(median get-$kind 4); wm=$(median get-$kind 5)
            echo "| $kind | $(f "$g0") / $(f "$b0") | $(r "$g0" "$b0") | $(f "$wm") / $(f "$bm") | $(awk -v a="$wm" -v b="$bm" 'BEGIN { printf "%+.2f", a - b }') |"
        done
    fi
    echo
    echo "Every command, wall median and CPU (user + system, mean; less sensitive to a loaded machine):"
    echo
    echo "| group | command | wall median ms | CPU ms |"
    echo "|---|---|---:|---:|"
    for g in startup push-bulk get-bulk push-oltp get-oltp; do
        jq -r --arg g "$g" '.results[] | "| \($g) | \(.command) | \(.median * 1000 * 10 | round / 10) | \((.user + .system) * 1000 * 10 | round / 10) |"' "$J/$g.json"
    done
    echo
    echo "Push and get rows run in hyperfine's shell mode (its shell start-up subtracted), start-up rows"
    echo "with -N. Every push starts from a fresh repository (hyperfine --prepare, then sync)."
    echo "walctl archive-get does not fsync the restored file by default (archive-get-fsync, docs/recovery.md:"
    echo "PostgreSQL syncs what it keeps), so zstd -d is its floor; zstd -d && sync FILE is the floor of"
    echo "archive-get-fsync = true."
} | tee "$WORK/report.md"
