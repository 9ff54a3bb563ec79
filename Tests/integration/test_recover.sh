#!/usr/bin/env bash
# Recovery planner suite (issue 7): real PostgreSQL archives through walctl, a base backup sits in the
# repository, and `walctl recover` brings a new data directory back to an instant; refusals leave the
# directory untouched. The demo story runs on 15, 16 and 18; the rest on 15.
source "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------------------------------------- helpers

# start_source VERSION: lib.sh's start_archiving_source with log_timezone = 'UTC'. Sets W, PORT, BIN, V.
start_source() { start_archiving_source "$1" "log_timezone = 'UTC'"; }

sql() { psql_at "$V" "$W" "$PORT" "$@"; }

# take_backup LABEL [PORT]: a base backup stored in the repository by `walctl backup take` and known to
# the catalog. No fallback: a failing walctl backup fails the suite (it is part of what is tested).
take_backup() {
    local label="$1" port="${2:-$PORT}"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label "$label" --dbname "host=$W port=$port user=postgres dbname=postgres" >/dev/null \
        || { fail "walctl backup take $label failed"; return 1; }
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" >/dev/null || { fail "catalog rebuild failed"; return 1; }
}

# recover_to DIR ARGS...: `walctl recover` as postgres into DIR; stdout in DIR.out, stderr in DIR.err.
recover_to() {
    local dir="$1"; shift
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$dir" "$@" >"$dir.out" 2>"$dir.err"
}

# start_recovered DIR PORT [settings...]: starts the recovered server the way walctl printed it, on PORT.
start_recovered() {
    local dir="$1" port="$2"; shift 2
    grep -q "pg_ctl" "$dir.out" || fail "no start command printed"
    local opts="-p $port -c archive_mode=off"
    for s in "$@"; do opts="$opts -c $s"; done
    as_pg "$BIN/pg_ctl" -D "$dir" -l "$dir/walctl_recovery.log" -o "$opts" -w -t 120 start >/dev/null 2>&1 || true
}

# wait_state DIR STATE: polls `walctl recover --status --json` until the state is STATE.
wait_state() {
    local dir="$1" want="$2"
    wait_until 120 bash -c "runuser -u postgres -- $WALCTL recover --status --json --pgdata $dir | grep -q '\"state\" : \"$want\"'" \
        || { as_pg "$WALCTL" recover --status --pgdata "$dir" >&2; tail -5 "$dir/walctl_recovery.log" >&2; fail "recovery in $dir did not reach $want"; }
}

count_rows() { psql_at "$V" "$W" "$1" "select count(*) from $2"; }
table_exists() { psql_at "$V" "$W" "$1" "select count(*) from pg_class where relname = '$2'"; }

cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    pg_stop "$V" "$W/data" immediate
    local d; for d in "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}

# ---------------------------------------------------------------------------------------------- the demo

demo_story() {
    start_source "$1"
    sql "create table accounts(id int primary key, owner text)"
    sql "insert into accounts select g, 'before-backup-' || g from generate_series(1, 1000) g"
    take_backup demo
    sql "insert into accounts select g, 'after-backup-' || g from generate_series(1001, 3000) g"
    switch_and_wait >/dev/null
    local target; target="$(now_utc)"
    sleep 0.3
    sql "insert into accounts select g, 'after-target-' || g from generate_series(3001, 3500) g"
    local dropped_at; dropped_at="$(now_utc)"
    sql "drop table accounts"   # the accident, at $dropped_at
    switch_and_wait >/dev/null
    echo "    target $target, DROP TABLE at $dropped_at"

    recover_to "$W/rec" --to "$target" || { cat "$W/rec.err" >&2; fail "recover refused"; }
    grep -q "walctl_recovery_plan.json" "$W/rec.out" || fail "plan not saved"
    grep -q "recovery_target_time = '$target'" "$W/rec/postgresql.auto.conf" || fail "recovery_target_time not written as $target"
    if [ "$1" -ge 12 ]; then [ -f "$W/rec/recovery.signal" ] || fail "no recovery.signal"; fi
    # walctl-fast when it is installed beside walctl, prefetching 8 segments unless configured.
    local prog=walctl; [ -x "$(dirname "$WALCTL")/walctl-fast" ] && prog=walctl-fast
    grep -qE "restore_command = '/[^ ]*/$prog archive-get --progress-file walctl_recovery_progress --config $W/walctl.conf .*--set restore-prefetch=8 %f %p'" "$W/rec/postgresql.auto.conf" \
        || fail "restore_command does not run $prog by absolute path with --config and restore-prefetch=8: $(grep restore_command "$W/rec/postgresql.auto.conf")"
    grep -qE "recovery_end_command = '/[^ ]*/walctl archive-get --cleanup'" "$W/rec/postgresql.auto.conf" || fail "no recovery_end_command cleaning the prefetch spool"
    local port2; port2="$(free_port)"
    # The server gets an empty environment: restore_command must need nothing from the shell.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin runuser -u postgres -- "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec/walctl_recovery.log" -o "-p $port2 -c archive_mode=off" -w -t 120 start >/dev/null 2>&1 || true
    wait_state "$W/rec" paused-at-target
    as_pg "$WALCTL" recover --status --pgdata "$W/rec" | grep -q "target reached: yes" || fail "status does not say the target was reached"
    assert_eq "$(count_rows "$port2" accounts)" "3000" "rows at the target"
    assert_eq "$(psql_at "$V" "$W" "$port2" "select count(*) from accounts where owner like 'after-target-%'")" "0" "rows after the target"
    psql_at "$V" "$W" "$port2" "select pg_wal_replay_resume()" >/dev/null
    wait_until 60 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" || fail "did not promote"
    # recovery_end_command stopped the prefetcher, which removed its spool from pg_wal.
    wait_until 10 bash -c "[ ! -e '$W/rec/pg_wal/walctl_prefetch' ]" || fail "the prefetch spool is still in pg_wal after recovery: $(ls "$W/rec/pg_wal/walctl_prefetch" 2>&1)"
    wait_state "$W/rec" promoted
    pg_stop "$V" "$W/rec"
    cleanup
}

test_demo_story_pg15() { demo_story 15; }
test_demo_story_pg16() { demo_story 16; }
test_demo_story_pg18() { demo_story 18; }

# ---------------------------------------------------------------------------------------------- timelines

test_timeline_fork_pg15() {
    start_source 15
    sql "create table t(id int, phase text)"
    take_backup tl
    sql "insert into t select g, 'tl1-early' from generate_series(1, 100) g"
    switch_and_wait >/dev/null
    local t0; t0="$(now_utc)"; sleep 0.3
    sql "insert into t select g, 'tl1-mid' from generate_series(1, 100) g"
    switch_and_wait >/dev/null
    local t1; t1="$(now_utc)"; sleep 0.3
    sql "insert into t select g, 'tl1-late' from generate_series(1, 100) g"
    switch_and_wait >/dev/null

    # Recover to t1 and promote: timeline 2, archiving into the same repository.
    recover_to "$W/rec1" --to "$t1" --action promote || { cat "$W/rec1.err" >&2; fail "recover to t1 refused"; }
    local p1; p1="$(free_port)"
    as_pg "$BIN/pg_ctl" -D "$W/rec1" -l "$W/rec1/walctl_recovery.log" -o "-p $p1" -w -t 120 start >/dev/null 2>&1 || true
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $p1 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" || fail "rec1 did not promote"
    assert_eq "$(psql_at 15 "$W" "$p1" "select timeline_id from pg_control_checkpoint()")" "2" "timeline after promotion"
    psql_at 15 "$W" "$p1" "insert into t select g, 'tl2-a' from generate_series(1, 100) g"
    switch_and_wait "$p1" >/dev/null
    local t2; t2="$(psql_at 15 "$W" "$p1" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"; sleep 0.3
    psql_at 15 "$W" "$p1" "insert into t select g, 'tl2-b' from generate_series(1, 100) g"
    switch_and_wait "$p1" >/dev/null
    wait_until 30 test -n "$(find "$W/repo/wal/history" -name '00000002.history*.meta' 2>/dev/null)" || true
    pg_stop 15 "$W/rec1"

    # A time on timeline 2 (latest): tl1-early, tl1-mid, tl2-a; not tl1-late, not tl2-b.
    recover_to "$W/rec2" --to "$t2" --dry-run --json || { cat "$W/rec2.err" >&2; fail "dry run on timeline 2 refused"; }
    grep -q '"timeline" : 2' "$W/rec2.out" || fail "plan is not on timeline 2"
    grep -q '00000002.history' "$W/rec2.out" || fail "plan does not name 00000002.history"
    rm -f "$W/rec2.out"
    recover_to "$W/rec2" --to "$t2" || { cat "$W/rec2.err" >&2; fail "recover to t2 refused"; }
    local p2; p2="$(free_port)"
    start_recovered "$W/rec2" "$p2"
    wait_state "$W/rec2" paused-at-target
    assert_eq "$(psql_at 15 "$W" "$p2" "select string_agg(phase || ':' || n, ',' order by phase) from (select phase, count(*) n from t group by phase) s")" \
        "tl1-early:100,tl1-mid:100,tl2-a:100" "rows on timeline 2 at t2"
    pg_stop 15 "$W/rec2"

    # The source goes on on timeline 1 past timeline 2's last commit: a time there is refused on the
    # default timeline (latest = 2) naming the flag that works, and plans with --timeline 1.
    sql "insert into t select g, 'tl1-later' from generate_series(1, 100) g"
    switch_and_wait >/dev/null
    local t3; t3="$(now_utc)"; sleep 0.3
    sql "insert into t select g, 'tl1-after' from generate_series(1, 10) g"
    switch_and_wait >/dev/null
    local rc=0
    recover_to "$W/rec4" --to "$t3" --dry-run || rc=$?
    assert_eq "$rc" 3 "a timeline-1 time on the default timeline"
    grep -q -- "add --timeline 1" "$W/rec4.err" || fail "the refusal does not suggest --timeline 1: $(cat "$W/rec4.err")"
    recover_to "$W/rec4" --to "$t3" --timeline 1 --dry-run || { cat "$W/rec4.err" >&2; fail "the timeline-1 time was refused with --timeline 1"; }

    # A time on timeline 1 before the fork: only tl1-early.
    recover_to "$W/rec3" --to "$t0" --timeline 1 || { cat "$W/rec3.err" >&2; fail "recover to t0 refused"; }
    grep -q "recovery_target_timeline = '1'" "$W/rec3/postgresql.auto.conf" || fail "timeline 1 not written"
    local p3; p3="$(free_port)"
    start_recovered "$W/rec3" "$p3"
    wait_state "$W/rec3" paused-at-target
    assert_eq "$(psql_at 15 "$W" "$p3" "select string_agg(phase || ':' || n, ',') from (select phase, count(*) n from t group by phase) s")" \
        "tl1-early:100" "rows on timeline 1 at t0"
    pg_stop 15 "$W/rec3"
    cleanup
}

# ---------------------------------------------------------------------------------------------- far target

test_target_far_from_backup_pg15() {
    start_source 15
    sql "create table big(id int, pad text)"
    take_backup far
    local i target="" expected=""
    for i in $(seq 1 24); do
        sql "insert into big select g, repeat('x', 200) from generate_series(($i-1)*80000+1, $i*80000) g"
        if [ "$i" -eq 18 ]; then expected="$(sql "select count(*) from big")"; target="$(now_utc)"; sleep 0.2; fi
    done
    switch_and_wait >/dev/null
    recover_to "$W/rec" --to "$target" --dry-run --json || { cat "$W/rec.err" >&2; fail "dry run refused"; }
    local n; n="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['segmentCount'])" "$W/rec.out")"
    [ "$n" -ge 20 ] || fail "only $n segments planned: target not far from the backup"
    rm -f "$W/rec.out"
    recover_to "$W/rec" --to "$target" || { cat "$W/rec.err" >&2; fail "recover refused"; }
    local p2; p2="$(free_port)"
    start_recovered "$W/rec" "$p2"
    wait_state "$W/rec" paused-at-target
    assert_eq "$(count_rows "$p2" big)" "$expected" "rows at a target $n segments from the backup"
    as_pg "$WALCTL" recover --status --pgdata "$W/rec" | grep -qE "segments restored: [0-9]+ of $n" || fail "status does not count restored segments"
    cleanup
}

# ---------------------------------------------------------------------------------------------- refusals

snapshot() { find "$1" -printf '%p %s %T@ %m %u\n' | sort | md5sum; }

# expect_refusal REASON ARGS...: recover into a non-empty DIR with --force: refused with REASON, DIR untouched.
expect_refusal() {
    local reason="$1"; shift
    local dir="$W/untouched"
    mkdir -p "$dir"; echo keep > "$dir/sentinel"; chown -R postgres:postgres "$dir"
    local before; before="$(snapshot "$dir")"
    local rc=0
    recover_to "$dir" --force "$@" || rc=$?
    assert_eq "$rc" "3" "exit code of a refused plan ($reason)"
    grep -q "error \[$reason\]" "$dir.err" || { cat "$dir.err" >&2; fail "not refused with $reason"; }
    grep -q "nothing was changed" "$dir.err" || fail "refusal does not say nothing changed"
    assert_eq "$(snapshot "$dir")" "$before" "directory touched by a refused recovery"
}

test_refusals_pg15() {
    start_source 15
    sql "create table r(id int)"
    local before_backup; before_backup="$(now_utc)"; sleep 1.2
    take_backup ref
    for i in $(seq 1 5); do sql "insert into r select generate_series(1, 10000)"; switch_and_wait >/dev/null; done
    local mid; mid="$(now_utc)"; sleep 0.2
    for i in $(seq 1 5); do sql "insert into r select generate_series(1, 10000)"; switch_and_wait >/dev/null; done
    local after_last; after_last="$(date -u -d '+1 hour' '+%Y-%m-%d %H:%M:%S+00')"

    expect_refusal before-first-backup --to "$before_backup"
    grep -q "nearest recoverable target after:  2" "$W/untouched.err" || fail "no nearest recoverable time after"
    expect_refusal after-last-commit --to "$after_last"
    grep -q "pg_switch_wal" "$W/untouched.err" || fail "no advice to archive a later commit"
    grep -q "nearest recoverable target before: 2" "$W/untouched.err" || fail "no nearest recoverable time before"
    # Time without a zone: refused unless one is named.
    local rc=0; recover_to "$W/untouched" --to "2026-01-01 00:00:00" --dry-run || rc=$?
    [ "$rc" -ne 0 ] && grep -q "no time zone" "$W/untouched.err" || fail "a time without zone was not refused"

    # Delete a segment between the backup and the target, then rebuild the catalog.
    local plan victim
    recover_to "$W/probe" --to "$mid" --dry-run --json || { cat "$W/probe.err" >&2; fail "dry run refused"; }
    victim="$(python3 -c "
import json,sys; p=json.load(open(sys.argv[1])); r=p['segmentRanges'][-1]
print(r['lastName'][:8] + '%08X%08X' % divmod(r['lastSegno'] - 1, 256))" "$W/probe.out")"
    find "$W/repo/wal" -name "$victim*" -delete
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" >/dev/null
    expect_refusal gap --to "$mid"
    grep -q "$victim" "$W/untouched.err" || fail "missing segment $victim not named"
    grep -q "nearest recoverable target before: 2" "$W/untouched.err" || fail "no nearest recoverable time before the gap"
    cleanup
}

# ---------------------------------------------------------------------------------------------- restore point

test_restore_point_pg15() {
    start_source 15
    sql "create table m(id int)"
    take_backup rp
    sql "insert into m select generate_series(1, 500)"
    sql "select pg_create_restore_point('before-migration')" >/dev/null
    sql "insert into m select generate_series(501, 800)"
    switch_and_wait >/dev/null
    recover_to "$W/rec" --to-name before-migration || { cat "$W/rec.err" >&2; fail "recover to a restore point refused"; }
    grep -q "recovery_target_name = 'before-migration'" "$W/rec/postgresql.auto.conf" || fail "recovery_target_name not written"
    local p2; p2="$(free_port)"
    start_recovered "$W/rec" "$p2"
    wait_state "$W/rec" paused-at-target
    assert_eq "$(count_rows "$p2" m)" "500" "rows at the restore point"
    expect_refusal restore-point-not-found --to-name no-such-point
    cleanup
}

# ---------------------------------------------------------------------------------------------- benchmark

# bench_recovery_pg15 (run by name only: `test_recover.sh bench_recovery_pg15`): the wall time of a
# real recovery of SEGMENTS (default 220) segments through walctl archive-get, against the floor:
# the same backup replaying the same segments already in pg_wal (restore_command = false). Each is
# timed from `pg_ctl start` until pg_is_in_recovery() is false (--latest: replay all, then promote).
bench_recovery_pg15() {
    start_source 15
    local want="${SEGMENTS:-220}"
    sql "create table w(id bigint, pad text)"
    take_backup bench
    local first; first="$(sql "select pg_walfile_name(pg_current_wal_lsn())")"
    local i=0
    while :; do
        i=$((i + 1))
        sql "insert into w select g, md5(g::text) || repeat('y', 100) from generate_series(1, 200000) g" 
        local cur; cur="$(sql "select pg_walfile_name(pg_current_wal_lsn())")"
        [ $((16#${cur:16:8} + 256 * 16#${cur:8:8} - 16#${first:16:8} - 256 * 16#${first:8:8})) -ge "$want" ] && break
    done
    sql "checkpoint" >/dev/null
    switch_and_wait >/dev/null
    local rows; rows="$(sql "select count(*) from w")"
    pg_stop 15 "$W/data"

    recover_to "$W/rec-walctl" --latest || { cat "$W/rec-walctl.err" >&2; fail "recover refused"; }
    local n; n="$(as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/x" --latest --dry-run --json | python3 -c "import json,sys; print(json.load(sys.stdin)['segmentCount'])")"
    echo "    planned segments: $n"
    # The floor: the same restore, every planned segment fetched into pg_wal beforehand.
    recover_to "$W/rec-floor" --latest || fail "recover refused"
    local names; names="$(python3 -c "
import json,sys; p=json.load(open(sys.argv[1]))
for r in p['segmentRanges']:
    for s in range(r['firstSegno'], r['lastSegno'] + 1): print(r['firstName'][:8] + '%08X%08X' % divmod(s, 256))" "$W/rec-floor/walctl_recovery_plan.json")"
    for nm in $names; do as_pg "$WALCTL" archive-get --config "$W/walctl.conf" "$nm" "$W/rec-floor/pg_wal/$nm" || fail "fetch $nm"; done
    echo "restore_command = 'false'" >> "$W/rec-floor/postgresql.auto.conf"
    local d port t0 t1 walctl_s floor_s
    for d in rec-floor rec-walctl; do
        port="$(free_port)"
        t0="$(date +%s.%N)"
        as_pg "$BIN/pg_ctl" -D "$W/$d" -l "$W/$d/walctl_recovery.log" -o "-p $port -c archive_mode=off" start >/dev/null
        wait_until 900 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port -d postgres -qAt -c 'select pg_is_in_recovery()' 2>/dev/null)\" = f ]" || fail "$d did not finish"
        t1="$(date +%s.%N)"
        assert_eq "$(psql_at 15 "$W" "$port" "select count(*) from w")" "$rows" "rows after $d"
        pg_stop 15 "$W/$d"
        echo "    $d: $(python3 -c "print('%.1f' % ($t1 - $t0))") s"
        [ "$d" = rec-floor ] && floor_s="$(python3 -c "print($t1 - $t0)")" || walctl_s="$(python3 -c "print($t1 - $t0)")"
    done
    grep -c "restored log file" "$W/rec-walctl/walctl_recovery.log" | sed 's/^/    segments restored through walctl: /'
    python3 -c "print('    ratio walctl/floor: %.2f' % ($walctl_s / $floor_s))"
    as_pg "$WALCTL" recover --status --pgdata "$W/rec-walctl"
}

# ---------------------------------------------------------------------------------------------- run as root

# Issue 13: `walctl recover` run as root gives everything it restores and writes to the owner of the
# target (or of its parent), refuses when both are root's, and the start command it prints works.
test_recover_as_root_pg15() {
    start_source 15
    sql "create table a(id int)"
    take_backup rootb
    sql "insert into a select generate_series(1, 1234)"
    switch_and_wait >/dev/null
    pg_stop "$V" "$W/data"   # the printed start command uses the backed-up server's port
    # A root-owned parent: refused before anything is touched, with the commands that fix it.
    mkdir -m 755 "$W/rootparent"
    local rc=0
    "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rootparent/rec" --latest >"$W/root1.out" 2>"$W/root1.err" || rc=$?
    assert_eq "$rc" "1" "exit code of recover as root into a root-owned parent ($(cat "$W/root1.err"))"
    grep -qF "install -d -o postgres -m 700 $W/rootparent/rec" "$W/root1.err" || fail "no install -d command: $(cat "$W/root1.err")"
    grep -qF "runuser -u postgres -- $WALCTL recover --config $W/walctl.conf --pgdata $W/rootparent/rec --latest" "$W/root1.err" \
        || fail "no runuser command: $(cat "$W/root1.err")"
    [ ! -e "$W/rootparent/rec" ] || fail "the refused recover created $W/rootparent/rec"
    # The printed fix, then recover run as root again: the target's owner gets everything.
    install -d -o postgres -m 700 "$W/rootparent/rec"
    "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rootparent/rec" --latest >"$W/root2.out" 2>"$W/root2.err" \
        || fail "recover into a postgres-owned target: $(cat "$W/root2.err")"
    # A postgres-owned parent: the parent's owner gets everything.
    "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --latest >"$W/rec.out" 2>"$W/rec.err" \
        || fail "recover into a postgres-owned parent: $(cat "$W/rec.err")"
    local d
    for d in "$W/rootparent/rec" "$W/rec"; do
        [ -z "$(find "$d" ! -user postgres | head -3)" ] || fail "not postgres's in $d: $(find "$d" ! -user postgres | head -3)"
    done
    [ -z "$(find "$W" -maxdepth 1 -name 'catalog.db*' ! -user postgres)" ] || fail "recover as root left a catalog file postgres does not own"
    # The start command, exactly as printed, run by root.
    local cmd; cmd="$(grep -A1 '^start the recovery:' "$W/rec.out" | tail -1 | sed 's/^  //')"
    echo "$cmd" | grep -q "^runuser -u postgres -- " || fail "the start command does not run as postgres: $cmd"
    bash -c "$cmd" >/dev/null 2>&1 || fail "the printed start command failed: $cmd ($(tail -3 "$W/rec/walctl_recovery.log" 2>&1))"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "the recovered server did not finish recovery: $(tail -3 "$W/rec/walctl_recovery.log")"
    assert_eq "$(count_rows "$PORT" a)" "1234" "rows recovered"
    pg_stop "$V" "$W/rec"
    cleanup
}

# A tablespace created after the backup: PostgreSQL's replay would create it at its recorded
# location (here: the live server's, on this host) whatever --tablespace-mapping says. recover
# reads the planned WAL while it restores and warns, naming the tablespace and what to do; a
# recovery to a time before the CREATE does not warn.
test_tablespace_created_after_the_backup_is_warned_about_pg15() {
    start_source 15
    sql "create table t0(id int)"; sql "insert into t0 values (1)"
    take_backup base
    sleep 1.1; local before; before="$(now_utc)"; sleep 1.1
    sql "insert into t0 values (2)"
    install -d -o postgres -m 700 "$W/late"
    sql "create tablespace late location '$W/late'"
    sql "create table t_late(id int) tablespace late"
    switch_and_wait >/dev/null
    recover_to "$W/rec" --latest || { cat "$W/rec.err" >&2; fail "recover refused"; }
    grep -q "WARNING: the WAL to replay creates tablespace [0-9]* at $W/late" "$W/rec.out" \
        || { cat "$W/rec.out" "$W/rec.err" >&2; fail "recover did not warn about the tablespace created after the backup"; }
    grep -q "creates tablespace" "$W/rec.err" || fail "the warning is not on stderr"
    [ -z "$(ls /tmp | grep "^walctl-recover-")" ] || fail "the WAL check's temporary directory was left: $(ls /tmp | grep walctl-recover-)"
    recover_to "$W/rec2" --to "$before" || { cat "$W/rec2.err" >&2; fail "recover to before the tablespace refused"; }
    ! grep -q "creates tablespace" "$W/rec2.out" "$W/rec2.err" || fail "a recovery to before the CREATE was warned about"
}

run_suite "$@"
