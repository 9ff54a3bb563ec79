#!/usr/bin/env bash
# Benchmarks/recover-race.sh: the reliability check of issue 19. N consecutive recoveries to the end
# of a 60-segment archive through the restore_command `walctl recover` writes (walctl-fast,
# restore-prefetch=8, recovery_end_command = walctl archive-get --cleanup), on a file repository
# and on S3 (moto), counting how many reach the end and promote with every row.
#
#   Benchmarks/recover-race.sh                 # 50 runs each, file then S3
#   RACE_RUNS=10 KINDS="file" Benchmarks/recover-race.sh
#
# It is Tests/integration/test_recover_race.sh with more runs (that suite runs 3 of each); each run
# prints one line (`race run I/N KIND: promoted in S s` or `... FAILED: reason`) and each kind a
# `race outcomes KIND: A promoted, B failed of N` line, collected into $OUT (default
# /tmp/walctl-recover-race.md) with the machine and load. Needs root (the clusters run as
# `postgres`), PostgreSQL 15, and walctl + walctl-fast built (WALCTL, default the release build).
# RACE_SEG_MB (16), RACE_SEGMENTS (60) and KEEP_TMP=1 (keep failed runs' directories) pass through.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export RACE_RUNS="${RACE_RUNS:-50}"
KINDS="${KINDS:-file s3}"
OUT="${OUT:-/tmp/walctl-recover-race.md}"
LOG="${OUT%.md}.log"

: > "$LOG"
start=$(date -u '+%Y-%m-%d %H:%M UTC')
for kind in $KINDS; do
    bash "$ROOT/Tests/integration/test_recover_race.sh" "test_recover_race_$kind" 2>&1 | tee -a "$LOG"
done
{
    echo "Run of $start: \`RACE_RUNS=$RACE_RUNS Benchmarks/recover-race.sh\` ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| repository | runs | promoted with every row | failed | recovery wall s (median, min-max) |"
    echo "|---|---:|---:|---:|---|"
    for kind in $KINDS; do
        line=$(grep "race outcomes $kind:" "$LOG" | tail -1)
        ok=$(echo "$line" | sed -nE 's/.*: ([0-9]+) promoted.*/\1/p'); bad=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
        secs=$(grep -E "race run [0-9]+/[0-9]+ $kind: promoted in" "$LOG" | sed -nE 's/.*promoted in ([0-9]+) s.*/\1/p' | sort -n)
        med=$(echo "$secs" | awk 'NF { a[n++] = $1 } END { if (n) print (n % 2 ? a[int(n/2)] : (a[n/2-1] + a[n/2]) / 2) " (" a[0] "-" a[n-1] ")"; else print "-" }')
        echo "| $kind | $RACE_RUNS | ${ok:-?} | ${bad:-?} | $med |"
    done
    failures=$(grep -E "race run .*FAILED" "$LOG")
    if [ -n "$failures" ]; then echo; echo "Failures:"; echo; echo "$failures" | sed 's/^ */- /'; fi
} > "$OUT"
cat "$OUT"
! grep -qE "race run .*FAILED|race outcomes .* [1-9][0-9]* failed" "$LOG"
