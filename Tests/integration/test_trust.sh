#!/usr/bin/env bash
# Trust under faults (issue 12, items 1, 2, 6, 7, 12, 13): archive-get exits 1 only with positive
# evidence (meta absent AND repository.json read and matching this cluster AND not inside the range
# `walctl recover` planned); every other failure is 255 with one `walctl: error [CODE]` line. A real
# recovery whose repository vanishes mid-replay stops without promoting. Bad settings and targets are
# refused at load. Runs on PostgreSQL 15 (PG_VERSIONS picks the first listed).
source "$(dirname "$0")/lib.sh"

V="${PG_VERSIONS%% *}"

# ---------------------------------------------------------------------------------------------- helpers

# start_source: lib.sh's start_archiving_source on the first of PG_VERSIONS. Sets W, PORT, BIN.
start_source() { start_archiving_source "$V"; }

cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    local d; for d in "$W"/data "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    stop_moto
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}

sql() { psql_at "$V" "$W" "$PORT" "$@"; }

# get ARGS...: `walctl archive-get ARGS` as postgres in $CWD (default $W); sets RC and ERR (stderr).
get() {
    RC=0
    ERR="$(cd "${CWD:-$W}" && runuser -u postgres -- "$WALCTL" archive-get "$@" 2>&1 >/dev/null)" || RC=$?
}

# expect_get WANT_RC CODE ARGS...: archive-get exits WANT_RC; for 255, stderr is exactly one line
# `walctl: error [CODE]: ...`; for 1, stderr is empty.
expect_get() {
    local want="$1" code="$2"; shift 2
    get "$@"
    [ "$RC" = "$want" ] || fail "archive-get $* exited $RC, expected $want; stderr: $ERR"
    if [ "$want" = 255 ]; then
        [ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "expected one log line, got: $ERR"
        printf '%s\n' "$ERR" | grep -q "^walctl: error \[$code\]: " || fail "expected walctl: error [$code], got: $ERR"
    elif [ "$want" = 1 ]; then
        [ -z "$ERR" ] || fail "exit 1 must be quiet, got: $ERR"
    fi
}

ABSENT=000000010000000A00000001   # a segment no test archives

# ---------------------------------------------------------------------------------------------- item 2: each misconfiguration is 255

test_healthy_repository_absent_is_1_present_is_0() {
    start_source
    local seg; seg="$(switch_and_wait)"
    expect_get 0 "" --config "$W/walctl.conf" "$seg" "$W/out"
    expect_get 1 "" --config "$W/walctl.conf" "$ABSENT" "$W/out"
    expect_get 1 "" --config "$W/walctl.conf" 00000002.history "$W/out"
    # In the data directory (PostgreSQL's cwd) the binding is compared with pg_control: same cluster.
    CWD="$W/data" expect_get 1 "" --config "$W/walctl.conf" "$ABSENT" "$W/out"
}

test_repository_root_missing_is_255() {
    start_source
    pg_stop "$V" "$W/data"
    mv "$W/repo" "$W/repo.gone"
    expect_get 255 absence-unconfirmed --config "$W/walctl.conf" "$ABSENT" "$W/out"
    echo "$ERR" | grep -q "repository.json" || fail "the line does not name the missing binding: $ERR"
    expect_get 255 absence-unconfirmed --config "$W/walctl.conf" 00000002.history "$W/out"
}

test_repository_empty_is_255() {
    start_source
    mkdir -p "$W/empty"; chown postgres "$W/empty"
    expect_get 255 absence-unconfirmed --config "$W/walctl.conf" --repository "file://$W/empty" "$ABSENT" "$W/out"
}

test_repository_file_root_is_255() {
    start_source
    expect_get 255 absence-unconfirmed --config "$W/walctl.conf" --repository "file:///" "$ABSENT" "$W/out"
}

test_repository_other_cluster_is_255() {
    start_source
    init_cluster "$V" "$W/other"
    CWD="$W/other" expect_get 255 absence-unconfirmed --config "$W/walctl.conf" "$ABSENT" "$W/out"
    echo "$ERR" | grep -q "wrong repository" || fail "the line does not say the repository is another cluster's: $ERR"
}

test_on_error_not_found_keeps_its_meaning() {
    start_source
    mv "$W/repo" "$W/repo.gone"
    get --config "$W/walctl.conf" --set archive-get-on-error=not-found "$ABSENT" "$W/out"
    assert_eq "$RC" 1 "archive-get-on-error = not-found"
}

test_config_file_missing_is_255() {
    start_source
    expect_get 255 config --config "$W/nonexistent.conf" "$ABSENT" "$W/out"
}

test_config_file_unreadable_is_255() {
    start_source
    cp "$W/walctl.conf" "$W/root.conf"; chown root:root "$W/root.conf"; chmod 600 "$W/root.conf"
    expect_get 255 config --config "$W/root.conf" "$ABSENT" "$W/out"
}

test_config_unknown_key_is_255() {
    start_source
    echo "repositroy = file:///x" >> "$W/walctl.conf"
    expect_get 255 config --config "$W/walctl.conf" "$ABSENT" "$W/out"
    echo "$ERR" | grep -q "walctl.conf line" || fail "the line does not name file and line: $ERR"
}

test_config_syntax_error_is_255() {
    start_source
    echo "this is not a setting" >> "$W/walctl.conf"
    expect_get 255 config --config "$W/walctl.conf" "$ABSENT" "$W/out"
}

test_bad_set_is_255() {
    start_source
    expect_get 255 config --config "$W/walctl.conf" --set foo=bar "$ABSENT" "$W/out"
    expect_get 255 config --config "$W/walctl.conf" --set novalue "$ABSENT" "$W/out"
}

test_argument_errors_are_255() {
    start_source
    expect_get 255 usage --config "$W/walctl.conf" --bogus "$ABSENT" "$W/out"
    expect_get 255 usage --config "$W/walctl.conf" "$ABSENT"
    expect_get 255 usage --config "$W/walctl.conf" "$ABSENT" "$W/out" extra
    expect_get 255 usage --config
    # Other commands keep ArgumentParser's 64.
    local rc=0; "$WALCTL" info --bogus >/dev/null 2>&1 || rc=$?
    assert_eq "$rc" 64 "walctl info --bogus"
}

test_mistyped_s3_prefix_is_255() {
    start_source
    start_moto || fail "moto"
    trap cleanup EXIT   # start_moto set its own EXIT trap; cleanup stops moto and the cluster
    local good="s3://$MOTO_BUCKET/trust-$$"
    local s3=(--config "$W/walctl.conf" --repository "$good" --set "s3-endpoint=$MOTO_ENDPOINT" --set s3-uri-style=path
              --set "s3-key=$AWS_ACCESS_KEY_ID" --set "s3-key-secret=$AWS_SECRET_ACCESS_KEY")
    as_pg "$WALCTL" init "${s3[@]}" --pgdata "$W/data" >/dev/null || fail "init on S3"
    expect_get 1 "" "${s3[@]}" "$ABSENT" "$W/out"
    expect_get 255 absence-unconfirmed "${s3[@]}" --repository "s3://$MOTO_BUCKET/trust-$$-typo" "$ABSENT" "$W/out"
    stop_moto
}

test_walctl_fast_never_exits_1_on_failure() {
    local fast; fast="$(dirname "$WALCTL")/walctl-fast"
    [ -x "$fast" ] || fail "walctl-fast is not built beside $WALCTL"
    start_source
    mv "$W/repo" "$W/repo.gone"
    local rc=0
    ERR="$(cd "$W" && runuser -u postgres -- "$fast" archive-get --config "$W/walctl.conf" --set restore-prefetch=4 "$ABSENT" "$W/out" 2>&1)" || rc=$?
    assert_eq "$rc" 255 "walctl-fast archive-get with the repository gone"
    rc=0; printf 'repository = file://%s/repo   # inline comment\nrestore-prefetch = 4 # x\nlog-level = verbose\n' "$W" > "$W/bad.conf"; chown postgres "$W/bad.conf"
    ERR="$(cd "$W" && runuser -u postgres -- "$fast" archive-get --config "$W/bad.conf" "$ABSENT" "$W/out" 2>&1)" || rc=$?
    assert_eq "$rc" 255 "walctl-fast archive-get with log-level = verbose"
    echo "$ERR" | grep -q "log-level" || fail "no line naming log-level: $ERR"
}

# ---------------------------------------------------------------------------------------------- item 1 and the plan: real recoveries

# backup_and_batches: a walctl base backup (1000 rows), then 6 batches of 500 rows, each closed by a
# segment switch and archived. Sets SEGS (the segment closing each batch) and ROWS (4000).
backup_and_batches() {
    start_source
    sql "create table t(id int primary key, pad text)"
    sql "insert into t select g, repeat('x', 100) from generate_series(1, 1000) g"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label trust --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null 2>"$W/backup.err" \
        || { cat "$W/backup.err" >&2; fail "walctl backup failed"; }
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" >/dev/null || fail "catalog rebuild"
    SEGS=()
    local i
    for i in 1 2 3 4 5 6; do
        sql "insert into t select g, repeat('y', 100) from generate_series($((1000 + (i - 1) * 500 + 1)), $((1000 + i * 500))) g"
        SEGS+=("$(switch_and_wait)")
    done
    ROWS=4000
    assert_eq "$(sql "select count(*) from t")" "$ROWS" "rows on the source"
    pg_stop "$V" "$W/data"
}

test_repository_vanishes_mid_recovery_no_promotion() {
    backup_and_batches
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --latest --action promote >"$W/rec.out" 2>"$W/rec.err" \
        || { cat "$W/rec.err" >&2; fail "recover refused"; }
    # The repository goes away (`mv repo repo.gone`, as an unmounted volume) right after recovery
    # fetched the segment of batch 2, i.e. well past the backup's consistency point. A wrapper
    # around the restore_command walctl wrote does the move at that exact moment.
    local cmd; cmd="$(sed -n "s/^restore_command = '\(.*\)'$/\1/p" "$W/rec/postgresql.auto.conf" | tail -1)"
    [ -n "$cmd" ] || fail "no restore_command written"
    cmd="${cmd//%f/\"\$1\"}"; cmd="${cmd//%p/\"\$2\"}"
    cat > "$W/restore.sh" <<EOF
#!/bin/sh
$cmd
rc=\$?
if [ "\$1" = "${SEGS[1]}" ] && [ \$rc = 0 ] && [ ! -e "$W/moved" ]; then touch "$W/moved"; mv "$W/repo" "$W/repo.gone"; fi
exit \$rc
EOF
    chmod 755 "$W/restore.sh"
    echo "restore_command = '$W/restore.sh %f %p'" >> "$W/rec/postgresql.auto.conf"
    local port2; port2="$(free_port)"
    as_pg "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec.log" -o "-p $port2 -c archive_mode=off" start >/dev/null 2>&1 || true
    # The server must stop (FATAL from the restore_command's exit 255), not promote.
    wait_until 90 bash -c "! runuser -u postgres -- $BIN/pg_ctl -D $W/rec status" \
        || { tail -5 "$W/rec.log" >&2; fail "the server is still running after the repository vanished"; }
    [ -d "$W/repo.gone" ] || fail "the wrapper never moved the repository (recovery did not reach ${SEGS[1]})"
    grep -q "walctl: error \[absence-unconfirmed\]" "$W/rec.log" || { tail -20 "$W/rec.log" >&2; fail "the server log does not name walctl's error"; }
    [ ! -e "$W/rec/pg_wal/00000002.history" ] || fail "a timeline 2 history exists: the server promoted"
    ! grep -q "selected new timeline ID" "$W/rec.log" || fail "the server selected a new timeline"
    grep -qE "PANIC|FATAL" "$W/rec.log" || fail "no FATAL/PANIC in the server log"
    # The repository comes back: the same recovery then reaches the end with every row.
    mv "$W/repo.gone" "$W/repo"
    as_pg "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec.log" -o "-p $port2 -c archive_mode=off" start >/dev/null 2>&1 || true
    wait_until 90 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()' 2>/dev/null)\" = f ]" \
        || { tail -20 "$W/rec.log" >&2; fail "recovery did not complete once the repository was back"; }
    assert_eq "$(psql_at "$V" "$W" "$port2" "select count(*) from t")" "$ROWS" "rows after the recovery"
    pg_stop "$V" "$W/rec"
}

test_planned_segment_missing_is_255_after_range_is_1() {
    backup_and_batches
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --latest >"$W/rec.out" 2>"$W/rec.err" \
        || { cat "$W/rec.err" >&2; fail "recover refused"; }
    local last; last="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['lastSegment'])" "$W/rec/walctl_recovery_plan.json")"
    # A segment inside the plan loses its objects (meta and data) in the repository.
    local victim="${SEGS[2]}"
    rm -f "$W/repo/wal/${victim:0:16}/$victim".*
    CWD="$W/rec" expect_get 255 planned-segment-missing --config "$W/walctl.conf" "$victim" "$W/out"
    echo "$ERR" | grep -q "walctl_recovery_plan.json" || fail "the line does not name the plan: $ERR"
    # The segment after the planned range and an absent history file are the end of the archive: 1.
    local next; next="$(python3 -c "import sys; n=sys.argv[1]; s=int(n[8:16],16)*256+int(n[16:24],16)+1; print(n[:8]+'%08X%08X' % divmod(s,256))" "$last")"
    CWD="$W/rec" expect_get 1 "" --config "$W/walctl.conf" "$next" "$W/out"
    CWD="$W/rec" expect_get 1 "" --config "$W/walctl.conf" 00000002.history "$W/out"
    # Outside the data directory (no plan) the same segment is plainly absent.
    CWD="$W" expect_get 1 "" --config "$W/walctl.conf" "$victim" "$W/out"
}

# ---------------------------------------------------------------------------------------------- items 7, 12: settings refused at load

test_bad_settings_refused_by_every_command() {
    start_source
    local kv cmd
    for kv in log-level=verbose archive-get-on-error=ignore archive-workers=-1 archive-workers=0 archive-push-timeout=-5 \
              s3-part-size=0 archive-spool-max=99999999999999999999 "repository=s3://bucket/../../etc" "repository=s3://b/p/./q" \
              "s3-endpoint=http://198.51.100.7:9000"; do
        for cmd in "config" "info" "check" "verify" "catalog check"; do
            local rc=0 err
            # shellcheck disable=SC2086
            err="$(runuser -u postgres -- "$WALCTL" $cmd --config "$W/walctl.conf" --set "$kv" 2>&1 >/dev/null)" || rc=$?
            [ "$rc" != 0 ] || fail "walctl $cmd --set $kv exited 0"
            echo "$err" | grep -q "error \[config\]: setting ${kv%%=*} = " || fail "walctl $cmd --set $kv: no line naming the setting: $err"
            echo "$err" | grep -q "(from --set ${kv%%=*})" || fail "walctl $cmd --set $kv: no source: $err"
        done
    done
    # In the file: refused with file and line; the allowed values are listed.
    echo "log-level = verbose" >> "$W/walctl.conf"
    local n; n="$(wc -l < "$W/walctl.conf")"
    local err rc=0; err="$(runuser -u postgres -- "$WALCTL" info --config "$W/walctl.conf" 2>&1)" || rc=$?
    [ "$rc" != 0 ] || fail "info accepted log-level = verbose"
    echo "$err" | grep -q "from $W/walctl.conf line $n) is invalid: expected one of error, warning, info, debug" || fail "no file, line and allowed values: $err"
    # From the environment.
    sed -i '$d' "$W/walctl.conf"
    rc=0; err="$(WALCTL_ARCHIVE_WORKERS=0 runuser -u postgres -- env WALCTL_ARCHIVE_WORKERS=0 "$WALCTL" config --config "$W/walctl.conf" 2>&1)" || rc=$?
    [ "$rc" != 0 ] || fail "WALCTL_ARCHIVE_WORKERS=0 accepted"
    echo "$err" | grep -q "(from WALCTL_ARCHIVE_WORKERS)" || fail "no environment source: $err"
    # http:// to a loopback host is fine; to another host with s3-allow-http = true too.
    runuser -u postgres -- "$WALCTL" config --config "$W/walctl.conf" --set s3-endpoint=http://127.0.0.1:9000 >/dev/null || fail "loopback http refused"
    runuser -u postgres -- "$WALCTL" config --config "$W/walctl.conf" --set s3-endpoint=http://198.51.100.7:9000 --set s3-allow-http=true >/dev/null \
        || fail "s3-allow-http = true refused"
}

test_inline_comments_are_stripped() {
    start_source
    local seg; seg="$(switch_and_wait)"
    printf 'repository = file://%s/repo   # my repo\ncatalog = %s/catalog.db\t# the index\narchive-get-retry-time = 2 # short\n' "$W" "$W" > "$W/c.conf"
    chown postgres "$W/c.conf"
    runuser -u postgres -- "$WALCTL" config --config "$W/c.conf" | grep -qx "repository = file://$W/repo    # $W/c.conf line 1" \
        || fail "the comment is part of the value: $(runuser -u postgres -- "$WALCTL" config --config "$W/c.conf" 2>&1 | head -3)"
    expect_get 0 "" --config "$W/c.conf" "$seg" "$W/out"
    expect_get 1 "" --config "$W/c.conf" "$ABSENT" "$W/out"
}

test_log_levels() {
    start_source
    local seg; seg="$(switch_and_wait)"
    local err
    err="$(cd "$W" && runuser -u postgres -- "$WALCTL" archive-get -v --config "$W/walctl.conf" "$seg" "$W/out" 2>&1 >/dev/null)" || fail "get -v"
    echo "$err" | grep -q "debug: GET file://$W/repo/wal/" || fail "-v shows no repository request: $err"
    echo "$err" | grep -q "restored and verified" || fail "-v shows no decision: $err"
    err="$(cd "$W" && runuser -u postgres -- "$WALCTL" archive-get --log-level debug --config "$W/walctl.conf" "$ABSENT" "$W/out" 2>&1 >/dev/null)" || true
    echo "$err" | grep -q "repository.json" || fail "debug does not show the binding check: $err"
    echo "$err" | grep -q "exit 1 (not found)" || fail "debug does not show the decision: $err"
    # An identical re-push warns at the default level, prints nothing with -q.
    cp "$W/out" "$W/$seg"; chown postgres "$W/$seg"
    err="$(runuser -u postgres -- "$WALCTL" archive-push --config "$W/walctl.conf" "$W/$seg" 2>&1)" || fail "re-push"
    echo "$err" | grep -q "already archived" || fail "no warning at the default level: $err"
    err="$(runuser -u postgres -- "$WALCTL" archive-push -q --config "$W/walctl.conf" "$W/$seg" 2>&1)" || fail "re-push -q"
    [ -z "$err" ] || fail "-q printed: $err"
    err="$(runuser -u postgres -- "$WALCTL" archive-push -v --config "$W/walctl.conf" "$W/$seg" 2>&1)" || fail "re-push -v"
    echo "$err" | grep -q "debug: .*GET file://" || fail "-v on push shows no request: $err"
}

# ---------------------------------------------------------------------------------------------- items 6, 13: targets

test_impossible_targets_refused() {
    start_source
    local t rc err
    for t in "2026-11-31 10:48:08+00" "2026-02-30 10:00:00+00" "2026-11-20 10:48:08+99" "2026-11-20 10:48:08-99:00" "2026-11-20 10:48:08+16:00"; do
        rc=0; err="$(runuser -u postgres -- "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/x" --to "$t" --dry-run 2>&1)" || rc=$?
        [ "$rc" != 0 ] || fail "--to '$t' accepted"
        echo "$err" | grep -qiE "does not exist|no day|offset|day" || fail "--to '$t': no reason given: $err"
    done
    # A negative --time-zone offset is read as a value, not as an option.
    rc=0; err="$(runuser -u postgres -- "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/x" --to "2026-11-20 10:48:08" --time-zone -05:00 --dry-run 2>&1)" || rc=$?
    [ "$rc" != 64 ] || fail "--time-zone -05:00 rejected by the argument parser: $err"
    echo "$err" | grep -qi "missing value" && fail "--time-zone -05:00: $err"
    return 0
}

# An xid target whose transaction ended before the earliest backup's starting checkpoint is refused up
# front (exit 3, reason before-first-backup), not planned for PostgreSQL to fail on at the end.
test_xid_before_first_backup_refused() {
    start_source
    local early late rc out
    sql "create table x(id int)"
    early="$(sql "insert into x values (1) returning pg_current_xact_id()")"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label xid --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null 2>"$W/backup.err" \
        || { cat "$W/backup.err" >&2; fail "walctl backup failed"; }
    late="$(sql "insert into x values (2) returning pg_current_xact_id()")"
    switch_and_wait >/dev/null
    rc=0; out="$(runuser -u postgres -- "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/x" --to-xid "$early" --dry-run 2>&1)" || rc=$?
    [ "$rc" = 3 ] || fail "--to-xid $early (ended before the backup) exited $rc, expected 3: $out"
    echo "$out" | grep -q "before-first-backup" || fail "no reason code: $out"
    echo "$out" | grep -q "transaction $early ended before" || fail "the refusal does not say why: $out"
    rc=0; out="$(runuser -u postgres -- "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/x" --to-xid "$late" --dry-run 2>&1)" || rc=$?
    [ "$rc" = 0 ] || fail "--to-xid $late (after the backup) exited $rc: $out"
}

run_suite "$@"
