#!/usr/bin/env bash
# Drill suite (issue 16): `walctl drill` restores the archive into a scratch directory, starts the
# backup's PostgreSQL version there, checks, reports RTO/RPO, records the drill and cleans up, also
# when a check fails or it is interrupted. The demo story runs on every version in PG_VERSIONS; the
# rest on the first one. One drill runs against S3 (moto).
source "$(dirname "$0")/lib.sh"

FIRST_V="${PG_VERSIONS%% *}"

# ---------------------------------------------------------------------------------------------- helpers

# start_source VERSION [extra postgresql.conf lines...]: a cluster archiving through walctl. Sets W, PORT, BIN, V.
start_source() {
    local v="$1"; shift
    start_archiving_source "$v" "walctl:pg-bin = $(pg_bin "$v")" "log_timezone = 'UTC'" "$@"
}

cleanup() {
    pg_stop "$V" "$W/data" immediate
    # No drill server may outlive a test, whatever happened.
    pkill -u postgres -f "postgres -D $W/" 2>/dev/null || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    stop_moto   # test_s3_drill's emulator (start_source replaced start_moto's EXIT trap)
}

sql() { psql_at "$V" "$W" "$PORT" "$@"; }

# story: the demo's orders, a backup, more orders, a target, an accident after it. Sets TARGET, EXPECTED.
story() {
    sql "create table orders(id int primary key, item text)"
    sql "insert into orders select g, 'item ' || g from generate_series(1, 20000) g"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label base --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || { fail "walctl backup take failed"; return 1; }
    sql "insert into orders select g, 'item ' || g from generate_series(20001, 30000) g"
    EXPECTED="$(sql "select count(*) from orders")"
    sleep 1.1; TARGET="$(now_utc)"; sleep 1.1
    sql "drop table orders"
    sql "create table later(x int); insert into later values (1)"
    switch_and_wait >/dev/null
}

# drill ARGS...: runs walctl drill as postgres with a private workdir; sets RC, OUT (stdout), ERR (stderr file), SECS (wall).
drill() {
    local t0 t1
    ERR="$W/drill.err"
    t0="$(date +%s.%N)"
    RC=0
    OUT="$(cd "$W" && as_pg "$WALCTL" drill --config "$W/walctl.conf" --workdir "$W/drills" "$@" 2>"$ERR")" || RC=$?
    t1="$(date +%s.%N)"
    SECS="$(echo "$t1 - $t0" | bc)"
    return 0
}

# no_leftovers: no drill server runs and the drill directory holds no scratch directory.
no_leftovers() {
    if pgrep -u postgres -f "postgres -D $W/drills" >/dev/null; then fail "a drill server is still running"; return 1; fi
    local left; left="$(ls -A "$W/drills" 2>/dev/null)"
    [ -z "$left" ] || { fail "scratch directory left behind: $left"; return 1; }
}

json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }

# ------------------------------------------------------------------------------------------------ tests

drill_story() {
    start_source "$1"
    story
    printf 'select count(*) = %s from orders;\nselect not exists (select 1 from pg_class where relname = %s);\n' "$EXPECTED" "'later'" > "$W/orders.sql"
    chown postgres "$W/orders.sql"
    drill --to "$TARGET" --check-sql "$W/orders.sql" --json --report "$W/report.md"
    [ "$RC" -eq 0 ] || { cat "$ERR" >&2; echo "$OUT" >&2; fail "drill exited $RC"; return 1; }
    assert_eq "$(echo "$OUT" | json_field 'd["passed"]')" "True" "passed"
    assert_eq "$(echo "$OUT" | json_field '[c["status"] for c in d["checks"] if c["name"]=="reached-target"][0]')" "passed" "reached-target"
    assert_eq "$(echo "$OUT" | json_field '[c["status"] for c in d["checks"] if c["name"]=="databases"][0]')" "passed" "databases check"
    local amcheck; amcheck="$(echo "$OUT" | json_field '[c["status"] for c in d["checks"] if c["name"]=="amcheck"][0]')"
    [ "$amcheck" = passed ] || [ "$amcheck" = skipped ] || fail "amcheck: $amcheck"
    assert_eq "$(echo "$OUT" | json_field '" ".join(p["name"] for p in d["phases"])')" "plan restore start-up wal-download replay checks shutdown record" "RTO parts"
    # The parts add up to the drill's wall time within 5%.
    local sum; sum="$(echo "$OUT" | json_field 'sum(p["seconds"] for p in d["phases"])')"
    python3 -c "import sys; s,w=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(w-s) <= 0.05*w else 1)" "$sum" "$SECS" \
        || fail "RTO parts add up to $sum s, the drill took $SECS s"
    local rpo; rpo="$(echo "$OUT" | json_field 'd["rpoSeconds"]')"
    python3 -c "import sys; sys.exit(0 if 1 <= float(sys.argv[1]) < 600 else 1)" "$rpo" || fail "RPO $rpo s"
    for h in "## Date and time" "## Cause" "## Actions taken" "## Recovery target" "## Restoration time (RTO)" "## Data loss (RPO)" "## Checks" "## Follow-up"; do
        grep -qF "$h" "$W/report.md" || fail "report lacks '$h'"
    done
    grep -q "| total |" "$W/report.md" || fail "report has no total"
    no_leftovers
    # History: the repository and the catalog; info shows it, also after a rebuild.
    [ -n "$(repo_objects "$W" '^drill/[0-9]{8}T[0-9]{6}Z\.json$')" ] || fail "no drill/<timestamp>.json in the repository"
    local info; info="$(as_pg "$WALCTL" info --config "$W/walctl.conf")"
    echo "$info" | grep -q "last drill: .* PASSED  target time" || { echo "$info" >&2; fail "info does not show the drill"; }
    echo "$info" | grep -q "WARNING: .*drill" && fail "info warns although the drill passed just now"
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" >/dev/null
    assert_eq "$(as_pg "$WALCTL" info --json --config "$W/walctl.conf" | json_field 'd["lastDrill"]["passed"]')" "True" "lastDrill after catalog rebuild"
    # drill-max-age: an old drill is warned about.
    as_pg "$WALCTL" info --config "$W/walctl.conf" --set drill-max-age=1s | grep -q "WARNING: the last successful drill" || { sleep 2; as_pg "$WALCTL" info --config "$W/walctl.conf" --set drill-max-age=1s | grep -q "WARNING: the last successful drill"; } \
        || fail "no warning with drill-max-age = 1s"
}

test_story() { for v in $PG_VERSIONS; do ( set -e; drill_story "$v" ) || return 1; done; }

test_check_sql_false_fails_and_cleans_up() {
    start_source "$FIRST_V"
    story
    echo "select count(*) = 2 from later;" > "$W/wrong.sql"; chown postgres "$W/wrong.sql"
    drill --latest --check-sql "$W/wrong.sql"
    assert_eq "$RC" 1 "exit status of a drill whose check returns false"
    echo "$OUT" | grep -q "FAILED sql:$W/wrong.sql" || { echo "$OUT" >&2; fail "the false check is not named"; }
    no_leftovers
    as_pg "$WALCTL" info --config "$W/walctl.conf" | grep -q "last drill: .* FAILED" || fail "info does not show the failed drill"
    # An SQL error fails it too.
    echo "select * from no_such_table;" > "$W/error.sql"; chown postgres "$W/error.sql"
    drill --latest --check-sql "$W/error.sql"
    assert_eq "$RC" 1 "exit status of a drill whose check errors"
    echo "$OUT" | grep -q 'no_such_table' || fail "the SQL error is not reported"
    no_leftovers
    # --keep: the scratch directory stays (the restored data directory in it), the server does not.
    drill --latest --keep
    assert_eq "$RC" 0 "exit status of a passing drill with --keep"
    [ -f "$(ls -d "$W"/drills/*/ | head -1)data/PG_VERSION" ] || fail "--keep did not keep the scratch directory"
    if pgrep -u postgres -f "postgres -D $W/drills" >/dev/null; then fail "a drill server is still running after --keep"; fi
}

test_sigterm_during_replay() {
    start_source "$FIRST_V"
    story
    # pg-bin: a postgres that appends recovery_min_apply_delay = 1h to the drill's settings (the
    # last -c wins), which holds replay at the first commit after consistency (it applies to archive
    # recovery too): the drill is in replay when it is terminated.
    mkdir "$W/bin"
    printf '#!/bin/sh\n[ "$1" = --version ] && exec %s/postgres --version\nexec %s/postgres "$@" -c recovery_min_apply_delay=1h\n' "$BIN" "$BIN" > "$W/bin/postgres"
    chmod 755 "$W/bin/postgres"; ln -s "$BIN/psql" "$W/bin/psql"; chown -R postgres "$W/bin"
    sed -i "/^pg-bin = /d" "$W/walctl.conf"; echo "pg-bin = $W/bin" >> "$W/walctl.conf"
    (cd "$W" && exec runuser -u postgres -- "$WALCTL" drill --config "$W/walctl.conf" --workdir "$W/drills" --latest > "$W/out" 2> "$W/err") &
    local runner=$!
    wait_until 60 bash -c "ls $W/drills/*/data/walctl_recovery_progress 2>/dev/null | grep -q . && grep -q 'consistent recovery state reached' $W/drills/*/data/walctl_recovery.log" \
        || { cat "$W/err" >&2; fail "the drill did not reach replay"; return 1; }
    pgrep -u postgres -f "postgres -D $W/drills" >/dev/null || fail "no drill server while replaying"
    local pid; pid="$(pgrep -u postgres -f "walctl drill --config $W/walctl.conf" | head -1)"
    kill -TERM "$pid"
    local rc=0; wait "$runner" || rc=$?
    assert_eq "$rc" 143 "exit status after SIGTERM"
    no_leftovers
}

test_damaged_segment_fails_with_reason() {
    start_source "$FIRST_V"
    story
    # A segment between the backup and the target, its stored object damaged.
    local seg key
    seg="$(as_pg "$WALCTL" recover --config "$W/walctl.conf" --to "$TARGET" --pgdata "$W/x" --dry-run --json | json_field 'd["lastSegment"]')"
    key="$(repo_objects "$W" "wal/.*/$seg\.[0-9a-f]{8}\.zst$" | head -1)"
    [ -n "$key" ] || { fail "no object for $seg"; return 1; }
    repo_damage "$W" "$key" flip
    local t0=$SECONDS
    drill --to "$TARGET"
    assert_eq "$RC" 1 "exit status with a damaged segment"
    [ $((SECONDS - t0)) -lt 60 ] || fail "took $((SECONDS - t0)) s"
    echo "$OUT" | grep -Eq "checksum-mismatch|object-corrupt" || { echo "$OUT" >&2; fail "archive-get's reason is not reported"; }
    no_leftovers
    # A missing object: the planner refuses (exit 3), nothing is started.
    rm -f "$W/repo/$key"
    drill --to "$TARGET"
    assert_eq "$RC" 3 "exit status with a missing segment"
    grep -q "missing-object" "$ERR" || echo "$OUT" | grep -q "missing-object" || fail "the refusal is not reported"
    no_leftovers
}

test_s3_drill() {
    WALCTL_TEST_REPO=s3
    start_moto || return 1
    start_source "$FIRST_V"
    story
    drill --to "$TARGET"
    [ "$RC" -eq 0 ] || { cat "$ERR" >&2; echo "$OUT" >&2; fail "S3 drill exited $RC"; return 1; }
    echo "$OUT" | grep -q "drill PASSED" || fail "not passed"
    [ -n "$(repo_objects "$W" 'drill/.*\.json$')" ] || fail "no drill record in the bucket"
    no_leftovers
}

test_incident_report() {
    start_source "$FIRST_V"
    story
    pg_stop "$V" "$W/data" immediate
    local r="$W/restored"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --to "$TARGET" --pgdata "$r" --action promote >/dev/null 2>&1 || { fail "recover failed"; return 1; }
    as_pg sed -i "s/^port = .*/port = $PORT/" "$r/postgresql.conf"
    as_pg "$BIN/pg_ctl" -D "$r" -l "$r/walctl_recovery.log" -w -t 120 start >/dev/null || { fail "the recovered server did not start"; return 1; }
    wait_until 60 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" || fail "not promoted"
    assert_eq "$(sql "select count(*) from orders")" "$EXPECTED" "rows recovered"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --status --pgdata "$r" --report "$W/incident.md" >/dev/null || { fail "recover --status --report failed"; return 1; }
    pg_stop "$V" "$r"
    for h in "## Date and time" "## Cause" "## Actions taken" "## Recovery target" "## Restoration time (RTO)" "## Data loss (RPO)" "## Follow-up"; do
        grep -qF "$h" "$W/incident.md" || fail "incident report lacks '$h'"
    done
    grep -q "_(fill in)_" "$W/incident.md" || fail "no fields left for the operator"
    for part in restore start-up wal-download replay total; do
        grep -Eq "^\| $part \| [0-9.]+ s" "$W/incident.md" || { cat "$W/incident.md" >&2; fail "no RTO part $part"; }
    done
    grep -q "| total | 0.00 s" "$W/incident.md" && fail "total not measured"
    # RPO: from the target to the last archived commit (the table created after the drop).
    grep -Eq "^[0-9.]+ s \([0-9]+ s\): time between the recovered point and the last commit" "$W/incident.md" || { sed -n '/Data loss/,/Checks/p' "$W/incident.md" >&2; fail "no RPO"; }
}

test_refuses_root() {
    start_source "$FIRST_V"
    local rc=0 err
    err="$("$WALCTL" drill --config "$W/walctl.conf" --latest 2>&1 >/dev/null)" || rc=$?
    assert_eq "$rc" 2 "exit status as root"
    echo "$err" | grep -q "runuser -u postgres" || fail "no hint: $err"
}

# A cluster with a tablespace: the drill restores it into its scratch directory, not into the
# source's location (on the same host: the live tablespace, which a restore must never touch), and
# removes it with the rest. Before, the restore aimed at the source's location and the drill failed.
test_tablespace_goes_into_the_scratch_directory() {
    start_source "$FIRST_V"
    install -d -o postgres -m 700 "$W/ts"
    sql "create tablespace ts1 location '$W/ts'"
    sql "create table t_ts(id int, v text) tablespace ts1"
    sql "insert into t_ts select g, md5(g::text) from generate_series(1, 5000) g"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label base --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "walctl backup take failed"
    sql "insert into t_ts select g, md5(g::text) from generate_series(5001, 8000) g"
    local expected; expected="$(sql "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t_ts")"
    sleep 1.1; local target; target="$(now_utc)"; sleep 1.1
    sql "delete from t_ts where id > 100"
    switch_and_wait >/dev/null
    local before; before="$(cd "$W/ts" && find . -printf '%p %s %T@\n' | sort | md5sum)"
    printf "select count(*) || ':' || md5(string_agg(v, ',' order by id)) = '%s' from t_ts;\n" "$expected" > "$W/ts.sql"
    chown postgres "$W/ts.sql"
    drill --to "$target" --check-sql "$W/ts.sql" --json --keep
    [ "$RC" -eq 0 ] || { cat "$ERR" >&2; echo "$OUT" >&2; fail "drill of a cluster with a tablespace exited $RC"; }
    assert_eq "$(echo "$OUT" | json_field 'd["passed"]')" "True" "passed"
    local scratch; scratch="$(echo "$OUT" | json_field 'd["scratchDirectory"]')"
    # The restored cluster's tablespace link points into the scratch directory.
    local oid; oid="$(sql "select oid from pg_tablespace where spcname = 'ts1'")"
    assert_eq "$(readlink "$scratch/data/pg_tblspc/$oid")" "$scratch/tablespaces/$oid" "the drill's tablespace link"
    [ -d "$scratch/tablespaces/$oid" ] || fail "no tablespace under the scratch directory"
    assert_eq "$(cd "$W/ts" && find . -printf '%p %s %T@\n' | sort | md5sum)" "$before" "the source's tablespace after the drill"
    # Without --keep, the tablespace is removed with the scratch directory.
    rm -rf "$scratch"
    drill --to "$target" --check-sql "$W/ts.sql"
    assert_eq "$RC" 0 "exit status of the second drill"
    no_leftovers
    assert_eq "$(cd "$W/ts" && find . -printf '%p %s %T@\n' | sort | md5sum)" "$before" "the source's tablespace after the second drill"
}

# A tablespace created after the backup: replaying its CREATE TABLESPACE would make the drill's
# server create it at the recorded location, on this host the live server's tablespace, and write
# its files there (found by an adversarial test: the live table came back with old rows after a
# restart). The drill reads the planned WAL first and refuses to start the server; the live
# tablespace is untouched; a drill to a time before the CREATE runs.
test_tablespace_created_after_the_backup_is_refused() {
    start_source "$FIRST_V"
    sql "create table t0(id int)"; sql "insert into t0 values (1)"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label base --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "walctl backup take failed"
    sql "insert into t0 values (2)"
    switch_and_wait >/dev/null
    sleep 1.1; local before_ts; before_ts="$(now_utc)"; sleep 1.1
    # The first commit after the target: recovery stops before it, so the CREATE TABLESPACE after
    # it is not replayed (without it, the CREATE's own commit would be the stop, and the CREATE
    # record, before it, would be replayed: the drill refuses that too).
    sql "insert into t0 values (3)"
    install -d -o postgres -m 700 "$W/late"
    sql "create tablespace late location '$W/late'"
    sql "create table t_late(id int, v text) tablespace late"
    sql "insert into t_late select g, md5(g::text) from generate_series(1, 5000) g"
    sql "checkpoint"
    switch_and_wait >/dev/null
    local live; live="$(cd "$W/late" && find . -type f -exec md5sum {} + | sort)"
    drill --latest --json
    assert_eq "$RC" 1 "exit status of a drill whose WAL creates a tablespace"
    echo "$OUT" | json_field 'd["failure"]' | grep -q "creates tablespace [0-9]* at $W/late" || { echo "$OUT" >&2; fail "the refusal does not name the tablespace"; }
    assert_eq "$(cd "$W/late" && find . -type f -exec md5sum {} + | sort)" "$live" "the live tablespace after the refused drill"
    no_leftovers
    # Before the CREATE TABLESPACE the drill runs (and still leaves the live tablespace alone).
    printf 'select count(*) = 2 from t0;\n' > "$W/t0.sql"; chown postgres "$W/t0.sql"
    drill --to "$before_ts" --check-sql "$W/t0.sql"
    assert_eq "$RC" 0 "exit status of a drill to a time before the tablespace"
    assert_eq "$(cd "$W/late" && find . -type f -exec md5sum {} + | sort)" "$live" "the live tablespace after the drill"
    no_leftovers
}

run_suite "$@"
