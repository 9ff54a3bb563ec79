#!/usr/bin/env bash
# Benchmarks/expire.sh: `walctl expire` (issue 14) on a file repository and on S3 (moto_server).
#
#   Benchmarks/expire.sh                       # both stores, N=100000; then the planning step at 10^6
#   STORES=file N=10000 PLAN_N=0 Benchmarks/expire.sh
#
# Expire: the repository holds N fake archived segments on timeline 1 (a valid .meta with a summary
# and a 64-byte data object each) and two backups: `old` (segment 1) and `new` (segment N-9). With
# retention-full = 1, expire removes `old` and segments 1 .. N-10: 2(N-10) WAL objects + 2 backup
# objects. One run per store (it is destructive); the catalog is rebuilt from the repository first.
# Printed: wall time, objects removed, requests sent (DeleteObjects batches on S3, one unlink per
# object on a file repository), objects per second.
#
# Planning: PLAN_N (default 1000000) segments as metas only in a file repository (the plan reads
# the catalog, never an object), catalog rebuilt, then `expire --dry-run` (process start, catalog
# open, one listing of backup/ and locks/, the plan) RUNS (default 5) times: the median wall time.
# S3: moto with `--fast-list` (a sorted key index behind ListObjectsV2; stock moto scans and sorts the
# whole bucket for every page, seconds a page at 2 x 10^5 objects; MOTO_FAST_LIST=0 measures stock)
# and `--stats`: below the table, per store, the preparation times (objects generated, moto's
# preload), `catalog rebuild` and `expire` (wall, walctl's CPU), and on S3 the requests moto
# answered in each step by kind with the seconds it spent answering them and its CPU time.
# Environment: WALCTL (default .build-static/release/walctl), N, PLAN_N, RUNS, STORES ("file s3"),
# MOTO_FAST_LIST (1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WALCTL=${WALCTL:-$ROOT/.build-static/release/walctl}
N=${N:-100000}
PLAN_N=${PLAN_N:-1000000}
RUNS=${RUNS:-5}
STORES=${STORES:-file s3}
MOTO_FAST_LIST=${MOTO_FAST_LIST:-1}
WORK=$(mktemp -d /tmp/walctl-expire.XXXXXX)
MOTO_PID=""
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=Benchmarks/lib.sh
source "$ROOT/Benchmarks/lib.sh"


echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo
echo "| store | segments | objects removed | requests | wall | objects/s |"
echo "|---|---|---|---|---|---|"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# timed NAME COMMAND...: runs COMMAND (stdout to $WORK/NAME.out); $WORK/NAME.time: wall, user, sys.
timed() { local name="$1"; shift; /usr/bin/time -f "%e %U %S" -o "$WORK/$name.time" "$@" > "$WORK/$name.out"; }
walctl_time() { awk '{ printf "%.1f s wall, walctl CPU %.1f s", $1, $2 + $3 }' "$WORK/$1.time"; }
# moto_delta A B: what moto did between two bench_moto_stats snapshots.
moto_delta() {
    python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
kinds = []
for k, v in sorted(b["kinds"].items()):
    n = v["requests"] - a["kinds"].get(k, {}).get("requests", 0)
    t = v["seconds"] - a["kinds"].get(k, {}).get("seconds", 0.0)
    if n: kinds.append("%d %s (%.1f s)" % (n, k, t))
print("moto answered %d requests in %.1f s (%s), moto CPU %.1f s" % (
    b["requests"] - a["requests"], b["seconds"] - a["seconds"], ", ".join(kinds) or "none", b["cpuSeconds"] - a["cpuSeconds"]))
PY
}
: > "$WORK/notes"
for store in $STORES; do
    conf="$WORK/$store.conf"
    t0=$(now)
    if [ "$store" = s3 ]; then
        synthetic_repo jsonl "$N" 1 expire old:1 new:$((N - 9))
        prep="objects generated in $(since "$t0") s"
        t0=$(now)
        BENCH_MOTO_ARGS="--stats $WORK/moto-stats.json$([ "$MOTO_FAST_LIST" = 1 ] && echo " --fast-list")" \
            bench_moto walctl-expire 7200 "$WORK/expire.jsonl"
        prep="$prep, moto started and preloaded in $(since "$t0") s ($([ "$MOTO_FAST_LIST" = 1 ] && echo "--fast-list" || echo "stock listing"))"
        bench_s3_conf expire "$WORK/s3.db" "retention-full = 1" > "$conf"
        bench_moto_stats "$WORK/moto-stats.json" > "$WORK/stats0.json"
    else
        printf 'repository = file://%s/repo\ncatalog = %s\nretention-full = 1\n' "$WORK" "$WORK/file.db" > "$conf"
        synthetic_repo file "$N" 1 repo old:1 new:$((N - 9))
        prep="objects written in $(since "$t0") s"
    fi
    timed rebuild "$WALCTL" catalog rebuild --config "$conf"
    [ "$store" = s3 ] && bench_moto_stats "$WORK/moto-stats.json" > "$WORK/stats1.json"
    timed expire "$WALCTL" expire --config "$conf" --json
    cp "$WORK/expire.out" "$WORK/$store.json"
    python3 - "$WORK/$store.json" "$store" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %s | %d | %d | %.2f s | %.0f |" % (sys.argv[2], sys.argv[3], r["objectsRemoved"], r["requests"], r["seconds"], r["objectsRemoved"] / max(r["seconds"], 1e-9)))
PY
    {
        echo "- $store: $prep"
        if [ "$store" = s3 ]; then
            bench_moto_stats "$WORK/moto-stats.json" > "$WORK/stats2.json"
            echo "  - catalog rebuild: $(walctl_time rebuild); $(moto_delta "$WORK/stats0.json" "$WORK/stats1.json")"
            echo "  - expire: $(walctl_time expire); $(moto_delta "$WORK/stats1.json" "$WORK/stats2.json")"
            kill "$MOTO_PID"; MOTO_PID=""
        else
            echo "  - catalog rebuild: $(walctl_time rebuild); expire: $(walctl_time expire)"
        fi
    } >> "$WORK/notes"
done
echo
cat "$WORK/notes"

if [ "$PLAN_N" -gt 0 ]; then
    printf 'repository = file://%s/plan\ncatalog = %s\nretention-full = 1\n' "$WORK" "$WORK/plan.db" > "$WORK/plan.conf"
    synthetic_repo file "$PLAN_N" 0 plan old:1 new:$((PLAN_N - 9))
    start=$(date +%s.%N); "$WALCTL" catalog rebuild --config "$WORK/plan.conf" >/dev/null; end=$(date +%s.%N)
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f "%e" -o "$WORK/time" "$WALCTL" expire --config "$WORK/plan.conf" --dry-run --json > "$WORK/plan.json"
        cat "$WORK/time"
    done > "$WORK/times"
    segs=$(python3 -c "import json,sys; print(sum(r['segments'] for r in json.load(open(sys.argv[1]))['plan']['walRemoved']))" "$WORK/plan.json")
    echo
    echo "planning at $PLAN_N segments in the catalog (catalog rebuild took $(echo "$end - $start" | bc) s): expire --dry-run median of $RUNS: $(bench_median < "$WORK/times") s (plan removes $segs segments)"
fi
