#!/usr/bin/env bash
# Benchmarks/prove.sh: the cost of `walctl recover`'s proof against the repository (issue 12) at
# 10^4 segments, on a file repository and on S3 (moto_server).
#
#   Benchmarks/prove.sh                 # both stores; prints a markdown table
#   STORES=file Benchmarks/prove.sh     # one store
#
# The repository holds N (default 10000) fake archived segments on timeline 1 (a valid .meta with a
# summary, and a 64-byte data object each: the proof lists, it never reads a data object), and a
# base backup `first` (backup.json + a tiny base.tar.zst) that starts and stops in segment 1.
# The catalog is rebuilt from the repository. Then `walctl recover --dry-run` is timed for:
#   - --latest from `first`: the plan covers all N segments, the proof lists every wal/ directory
#     of the range (N/256 of them with 16 MiB segments) and backup/first/;
#   - --immediate from the same backup: the plan covers 1 segment, the proof lists one directory
#     and backup/first/.
# Both plans cost the same catalog seeks, so the difference is the proof of N segments (catalog
# range read of N rows plus the listings). RUNS (default 10) runs each; the medians of wall and CPU (user + system) time are printed.
# Environment: WALCTL (default .build-static/release/walctl), N, RUNS, STORES ("file s3").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WALCTL=${WALCTL:-$ROOT/.build-static/release/walctl}
N=${N:-10000}
RUNS=${RUNS:-10}
STORES=${STORES:-file s3}
WORK=$(mktemp -d /tmp/walctl-prove.XXXXXX)
MOTO_PID=""
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=Benchmarks/lib.sh
source "$ROOT/Benchmarks/lib.sh"


# time_dry_run CONFIG ARGS...: "WALL CPU", the medians of RUNS dry runs (seconds; CPU = user + system).
time_dry_run() {
    local conf="$1"; shift
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$WALCTL" recover --config "$conf" --dry-run --pgdata "$WORK/target" "$@" \
            >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        cat "$WORK/time"
    done > "$WORK/times"
    echo "$(awk '{print $1}' "$WORK/times" | bench_median) $(awk '{print $2 + $3}' "$WORK/times" | bench_median)"
}

echo "| store | segments | recover --latest --dry-run (proof of $N segments): wall / CPU | --immediate, same backup (proof of 1): wall / CPU | difference: wall / CPU |"
echo "|---|---|---|---|---|"
for store in $STORES; do
    conf="$WORK/$store.conf"
    if [ "$store" = s3 ]; then
        bench_moto walctl-prove 3600
        bench_s3_conf prove "$WORK/s3.db" > "$conf"
    else
        printf 'repository = file://%s/repo\ncatalog = %s\n' "$WORK" "$WORK/file.db" > "$conf"
    fi
    synthetic_repo "$store" "$N" 1 "$([ "$store" = s3 ] && echo prove || echo repo)" first:1
    "$WALCTL" catalog rebuild --config "$conf" >/dev/null
    read -r aw ac <<< "$(time_dry_run "$conf" --latest)"
    read -r ow oc <<< "$(time_dry_run "$conf" --immediate)"
    printf '| %s | %d | %.3f s / %.3f s | %.3f s / %.3f s | %.3f s / %.3f s |\n' "$store" "$N" "$aw" "$ac" "$ow" "$oc" \
        "$(echo "$aw - $ow" | bc -l)" "$(echo "$ac - $oc" | bc -l)"
done
