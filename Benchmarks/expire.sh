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
# Environment: WALCTL (default .build-static/release/walctl), N, PLAN_N, RUNS, STORES ("file s3").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WALCTL=${WALCTL:-$ROOT/.build-static/release/walctl}
N=${N:-100000}
PLAN_N=${PLAN_N:-1000000}
RUNS=${RUNS:-5}
STORES=${STORES:-file s3}
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
for store in $STORES; do
    conf="$WORK/$store.conf"
    if [ "$store" = s3 ]; then
        synthetic_repo jsonl "$N" 1 expire old:1 new:$((N - 9))
        bench_moto walctl-expire 7200 "$WORK/expire.jsonl"
        bench_s3_conf expire "$WORK/s3.db" "retention-full = 1" > "$conf"
    else
        printf 'repository = file://%s/repo\ncatalog = %s\nretention-full = 1\n' "$WORK" "$WORK/file.db" > "$conf"
        synthetic_repo file "$N" 1 repo old:1 new:$((N - 9))
    fi
    "$WALCTL" catalog rebuild --config "$conf" >/dev/null
    "$WALCTL" expire --config "$conf" --json > "$WORK/$store.json"
    python3 - "$WORK/$store.json" "$store" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %s | %d | %d | %.2f s | %.0f |" % (sys.argv[2], sys.argv[3], r["objectsRemoved"], r["requests"], r["seconds"], r["objectsRemoved"] / max(r["seconds"], 1e-9)))
PY
    if [ "$store" = s3 ]; then kill "$MOTO_PID"; MOTO_PID=""; fi
done

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
