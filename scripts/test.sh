#!/usr/bin/env bash
# Runs every walctl test: unit tests (swift test) and the integration suites against real PostgreSQL
# 15, 16 and 18 servers and a real S3 API (moto_server, started by the suites themselves).
# Installs what it needs first (apt packages, PyPI wheels). Safe to run twice. Needs root (the
# suites start PostgreSQL as the `postgres` OS user): run as a user, it re-runs itself through sudo
# when sudo is installed (scripts/as-root.sh).
#
#   scripts/test.sh                 everything
#   SKIP_UNIT=1 scripts/test.sh     integration suites only
#   SUITES="archive" scripts/test.sh    only Tests/integration/test_archive.sh
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/as-root.sh
source scripts/as-root.sh
as_root test "$REPO/scripts/test.sh" "$@"

bash scripts/install-deps.sh || { echo "test: dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

echo "== build (release) =="
# Static Swift standard library: half the start-up cost of each archive-push/get process.
# generate-manual: swift-argument-parser's man page generator, for test_package.sh (scripts/generate-docs.sh).
for product in walctl walctl-fast walctl-core generate-manual; do
    swift build -c release --static-swift-stdlib --scratch-path .build-static --product "$product" 2>&1 | tail -2
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "test: release build of $product failed"; echo "0 passed, 1 failed"; exit 1; }
done
export WALCTL="$REPO/.build-static/release/walctl"

passed=0
failed=0

if [ -z "${SKIP_UNIT:-}" ]; then
    echo "== unit tests (swift test) =="
    unit_start=$SECONDS
    log="$(mktemp)"
    swift test 2>&1 | tee "$log" | grep -E "^(✘|✔ Test run|Test Suite 'All tests'|Executed|error:)|failed|FAIL" | grep -v "^✔ Test .* passed" | tail -40
    rc="${PIPESTATUS[0]}"
    # Swift Testing: "✔ Test run with N tests in M suites passed" / "✘ Test run with N tests ... failed ... with K issues".
    st_total="$(grep -E '^. Test run with [0-9]+ tests?' "$log" | tail -1 | sed -E 's/^. Test run with ([0-9]+) tests?.*/\1/')"
    st_failed="$(grep -cE '^✘ Test [^r].* failed' "$log")"
    # XCTest: "Executed N tests, with K failures" or "Executed N tests, with S tests skipped and K
    # failures" (the last such line is the whole run's).
    xc="$(grep -E "^\s*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -1)"
    xc_total="$(echo "$xc" | sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p')"
    xc_skipped="$(echo "$xc" | sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p')"
    xc_failed="$(echo "$xc" | sed -nE 's/.* ([0-9]+) failures?.*/\1/p')"
    st_total="${st_total:-0}"; xc_total="${xc_total:-0}"; xc_skipped="${xc_skipped:-0}"; xc_failed="${xc_failed:-0}"
    [ -n "$xc" ] || { echo "no XCTest summary line found"; failed=$((failed + 1)); }
    # Skipped XCTests are opt-in benchmarks (BackupBenchmarkTests); they count as neither.
    xc_total=$((xc_total - xc_skipped))
    passed=$((passed + st_total - st_failed + xc_total - xc_failed))
    failed=$((failed + st_failed + xc_failed))
    if [ "$rc" -ne 0 ] && [ $((st_failed + xc_failed)) -eq 0 ]; then failed=$((failed + 1)); echo "swift test exited $rc"; fi
    echo "unit tests took $((SECONDS - unit_start)) s"
    echo "unit: $((st_total - st_failed + xc_total - xc_failed)) passed, $((st_failed + xc_failed)) failed ($st_total Swift Testing, $xc_total XCTest; $xc_skipped opt-in benchmark skipped)"
    rm -f "$log"
fi

# Integration suites run TEST_JOBS at a time (default 2; 1 = one after another). Each suite's output
# is printed whole when it ends, so lanes never interleave. A suite whose first 20 lines contain
# `test.sh: alone` (timing-sensitive ones) runs after the others, by itself.
JOBS="${TEST_JOBS:-2}"
OUTDIR="$(mktemp -d /tmp/walctl-test-out.XXXXXX)"
selected=(); alone=()
for suite in Tests/integration/test_*.sh; do
    name="$(basename "$suite" .sh)"; name="${name#test_}"
    if [ -n "${SUITES:-}" ] && [[ " $SUITES " != *" $name "* ]]; then continue; fi
    if head -20 "$suite" | grep -q "test.sh: alone"; then alone+=("$suite"); else selected+=("$suite"); fi
done

# tally NAME: adds the summary line of NAME's output to the counts.
tally() {
    local name="$1" out="$OUTDIR/$1.out" line p f
    line="$(grep -E '^[a-z0-9_-]+(\.sh)?(\[s3\])?: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1)"
    if [ -z "$line" ]; then
        echo "suite $name printed no summary"; failed=$((failed + 1))
    else
        p="$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')"
        f="$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')"
        passed=$((passed + p)); failed=$((failed + f))
    fi
}

# run_one SUITE: runs it, output into $OUTDIR/NAME.out, its wall time appended.
run_one() {
    local suite="$1" name start
    name="$(basename "$suite" .sh)"; name="${name#test_}"
    start=$SECONDS
    bash "$suite" >"$OUTDIR/$name.out" 2>&1
    echo "($name took $((SECONDS - start)) s)" >>"$OUTDIR/$name.out"
    touch "$OUTDIR/$name.done"
}

# show_done: prints and tallies every suite that has finished since the last call.
show_done() {
    local d name
    for d in "$OUTDIR"/*.done; do
        [ -e "$d" ] || continue
        name="$(basename "$d" .done)"
        echo "== integration: $name ($SECONDS s since start) =="
        cat "$OUTDIR/$name.out"
        tally "$name"
        rm -f "$d"
    done
}

for suite in "${selected[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; show_done; done
    run_one "$suite" &
done
wait
show_done
for suite in "${alone[@]}"; do
    run_one "$suite"
    show_done
done
rm -rf "$OUTDIR"

echo "all tests took $SECONDS s"
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
