#!/usr/bin/env bash
# Benchmarks/fault-recover.sh: the full randomized fault run of issue 12 (reliability), N recoveries
# of >= 22 segments each with the repository moved away, made unreadable, or partly deleted at a
# random moment (Tests/integration/test_faults.sh, which scripts/test.sh runs with N=4).
#
#   bash Benchmarks/fault-recover.sh            # N=20, a random seed (printed)
#   FAULT_RUNS=40 FAULT_SEED=7 bash Benchmarks/fault-recover.sh
#
# Prints each run (fault, delay, outcome) and the counts per fault kind and outcome: the numbers that
# go into docs/benchmarks.md ("Reliability"). Needs root and the release build (WALCTL to override).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export FAULT_RUNS="${FAULT_RUNS:-20}"
export FAULT_REPORT="${FAULT_REPORT:-$(mktemp /tmp/walctl-faults.XXXXXX)}"
bash "$ROOT/Tests/integration/test_faults.sh"
echo "== outcomes (kind outcome count) on $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
sort "$FAULT_REPORT" | uniq -c | awk '{print $2, $3, $1}'
