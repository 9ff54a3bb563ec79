#!/usr/bin/env bash
# Randomized fault injection during real recoveries (issue 12): a base backup and >= 20 segments of
# WAL sit in a file repository; each run restores them with `walctl recover --latest` (the
# restore_command it writes, prefetching through walctl-fast when installed), starts the server, and
# at a random moment makes the repository unreachable (moved away, as an unmounted share), unreadable
# (chmod 000 on the root or one WAL directory) or partially deleted (one planned segment's meta or
# data object). Every run must end in one of two ways:
#   complete: the server promoted with exactly the rows of the source (the fault came too late to matter);
#   stopped:  the server stopped without promoting, its log naming walctl's error.
# A promotion with missing rows (recovery ended early: silent data loss) or a server still in
# recovery after the deadline fails the run.
#
#   FAULT_RUNS (default 4 here; Benchmarks/fault-recover.sh runs 20+), FAULT_SEED (default: random,
#   printed), FAULT_SEGMENTS (default 22).
source "$(dirname "$0")/lib.sh"

FAULT_RUNS="${FAULT_RUNS:-4}"
FAULT_SEED="${FAULT_SEED:-$(( $(date +%s) % 100000 ))}"
FAULT_SEGMENTS="${FAULT_SEGMENTS:-22}"
FAULT_KINDS="${FAULT_KINDS:-unmount unreadable-root unreadable-dir delete-object delete-meta}"

sql() { psql_at 15 "$W" "$PORT" "$@"; }

cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    chmod -R u+rwX "$W" 2>/dev/null || true
    pg_stop 15 "$W/data" immediate
    local d; for d in "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop 15 "$d" immediate; done
    pkill -u postgres -f "archive-get-prefetch-daemon --spool $W/" 2>/dev/null || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}

# The source: archives FAULT_SEGMENTS+ segments after a base backup, then stops. Sets ROWS.
prepare_archive() {
    require_pg 15
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin 15)"
    trap cleanup EXIT
    write_config "$W" "archive-get-retry-time = 1"
    init_cluster 15 "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'"
    pg_start 15 "$W/data"
    sql "create table f(id bigint, pad text)"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label base \
        --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null || fail "walctl backup take failed"
    local first cur
    first="$(sql "select pg_walfile_name(pg_current_wal_lsn())")"
    while :; do
        sql "insert into f select g, repeat('z', 300) from generate_series(1, 40000) g"
        cur="$(sql "select pg_walfile_name(pg_current_wal_lsn())")"
        [ $((16#${cur:16:8} - 16#${first:16:8})) -ge "$FAULT_SEGMENTS" ] && break
    done
    ROWS="$(sql "select count(*) from f")"
    local last; last="$(sql "select pg_walfile_name(pg_switch_wal())")"
    wait_until 120 bash -c "a=\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select coalesce(last_archived_wal, 0::text) from pg_stat_archiver'); [ \"\${a:0:24}\" \\> '$last' ] || [ \"\${a:0:24}\" = '$last' ]" \
        || fail "archiver did not reach $last"
    pg_stop 15 "$W/data"
    cp -a "$W/repo" "$W/repo.pristine"
    cp -a "$W/catalog.db" "$W/catalog.pristine" 2>/dev/null || true
}

# inject KIND: breaks the repository (KIND as in FAULT_KINDS); prints what it did.
inject() {
    local kind="$1" plan="$2" victim dirs
    case "$kind" in
        unmount) mv "$W/repo" "$W/repo.gone"; echo "repository moved away" ;;
        unreadable-root) chmod 000 "$W/repo"; echo "repository root chmod 000" ;;
        unreadable-dir)
            dirs=("$W"/repo/wal/0*); victim="${dirs[$((RANDOM % ${#dirs[@]}))]}"
            chmod 000 "$victim"; echo "chmod 000 $(basename "$victim")" ;;
        delete-object|delete-meta)
            victim="$(python3 - "$plan" "$RANDOM" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); names = []
for r in p["segmentRanges"]:
    for s in range(r["firstSegno"], r["lastSegno"] + 1):
        names.append(r["firstName"][:8] + "%08X%08X" % divmod(s, 256))
# From the second half of the plan: recovery (and the prefetcher 8 segments ahead of it) has
# usually not read those yet, so the deletion meets a segment that is still needed.
half = names[len(names) // 2:]
print(half[int(sys.argv[2]) % len(half)])
PY
)"
            if [ "$kind" = delete-meta ]; then rm -f "$W"/repo/wal/*/"$victim.meta"; else find "$W/repo/wal" -name "$victim.*" ! -name '*.meta' -delete; fi
            echo "$kind $victim" ;;
    esac
}

# One run: restore, start, break the repository after DELAY ms, classify the outcome.
one_run() {
    local i="$1" kind="$2" delay_ms="$3" rec="$W/rec$1" port what outcome rows
    rm -rf "$W/repo" "$W/repo.gone"; cp -a "$W/repo.pristine" "$W/repo"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$rec" --latest >"$rec.out" 2>"$rec.err" \
        || { cat "$rec.err" >&2; fail "run $i: recover refused"; return 1; }
    port="$(free_port)"
    as_pg "$BIN/pg_ctl" -D "$rec" -l "$rec/walctl_recovery.log" -o "-p $port -c archive_mode=off -c unix_socket_directories=$W" start >/dev/null 2>&1
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    what="$(inject "$kind" "$rec/walctl_recovery_plan.json")"
    # Wait until the server either promotes or stops.
    local end=$((SECONDS + 120)) state=""
    while [ $SECONDS -lt $end ]; do
        if ! as_pg "$BIN/pg_ctl" -D "$rec" status >/dev/null 2>&1; then state=stopped; break; fi
        if [ "$(psql_at 15 "$W" "$port" "select pg_is_in_recovery()" 2>/dev/null)" = f ]; then state=promoted; break; fi
        sleep 0.2
    done
    case "$state" in
        promoted)
            rows="$(psql_at 15 "$W" "$port" "select count(*) from f")"
            if [ "$rows" = "$ROWS" ]; then outcome=complete; else outcome="LOST-ROWS($rows/$ROWS)"; fi ;;
        stopped)
            if ls "$rec"/pg_wal/*.history >/dev/null 2>&1 && [ -n "$(ls "$rec"/pg_wal/0000000[2-9]*.history 2>/dev/null)" ]; then
                outcome="PROMOTED-THEN-STOPPED"
            elif grep -q "walctl: error" "$rec/walctl_recovery.log"; then
                outcome=stopped
            else
                outcome="STOPPED-WITHOUT-WALCTL-ERROR"
            fi ;;
        *) outcome=HUNG ;;
    esac
    pg_stop 15 "$rec" immediate
    chmod -R u+rwX "$W/repo" "$W/repo.gone" 2>/dev/null || true
    pkill -u postgres -f "archive-get-prefetch-daemon --spool $rec/" 2>/dev/null || true
    printf '    run %2d: %-16s after %4d ms: %-32s -> %s\n' "$i" "$kind" "$delay_ms" "$what" "$outcome"
    echo "$kind $outcome" >> "$W/outcomes"
    rm -rf "$rec"
    case "$outcome" in complete|stopped) return 0 ;; *) return 1 ;; esac
}

test_random_faults_during_recovery_pg15() {
    prepare_archive
    echo "    seed $FAULT_SEED, $FAULT_RUNS runs, $ROWS rows, kinds: $FAULT_KINDS"
    RANDOM="$FAULT_SEED"
    local kinds=($FAULT_KINDS) bad=0 i kind delay
    : > "$W/outcomes"
    for i in $(seq 1 "$FAULT_RUNS"); do
        kind="${kinds[$(( (i - 1) % ${#kinds[@]} ))]}"
        delay=$((RANDOM % 2500))
        one_run "$i" "$kind" "$delay" || bad=$((bad + 1))
    done
    echo "    outcomes: $(sort "$W/outcomes" | uniq -c | awk '{printf "%s %s=%s; ", $2, $3, $1}')"
    [ -n "${FAULT_REPORT:-}" ] && cp "$W/outcomes" "$FAULT_REPORT"
    [ "$bad" -eq 0 ] || fail "$bad of $FAULT_RUNS runs ended wrongly (seed $FAULT_SEED)"
}

run_suite "$@"
