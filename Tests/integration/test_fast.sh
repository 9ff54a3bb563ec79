#!/usr/bin/env bash
# The fast front (walctl-fast, docs/async.md) as archive_command and restore_command of a real
# PostgreSQL 15: async archiving of a burst and a prefetching recovery reach the same data as the
# primary; a segment the spool does not hold is handed to walctl and restored all the same.
source "$(dirname "$0")/lib.sh"

V=15
FAST="${WALCTL_FAST:-$(dirname "$WALCTL")/walctl-fast}"

test_fast_front_archive_and_prefetch_recovery() {
    require_pg $V
    [ -x "$FAST" ] || fail "walctl-fast not built next to $WALCTL"
    local w port bin
    w="$(new_workdir)"; port="$(free_port)"; bin="$(pg_bin $V)"
    write_config "$w" "archive-async = true" "archive-workers = 2"
    init_cluster $V "$w/data"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    configure_cluster "$w/data" "$port" "$w" "archive_mode = on" \
        "archive_command = '$FAST archive-push --config $w/walctl.conf %p'"
    pg_start $V "$w/data"
    psql_at $V "$w" "$port" "create table t(id int primary key, v text)"
    as_pg "$bin/pg_basebackup" -h "$w" -p "$port" -D "$w/backup" -X none -c fast -Fp --no-sync >/dev/null 2>&1 || fail "pg_basebackup"
    for i in $(seq 1 30); do
        psql_at $V "$w" "$port" "insert into t select g, md5(g::text) from generate_series(($i-1)*2000+1, $i*2000) g; select pg_switch_wal()" >/dev/null
    done
    local expected last
    expected="$(psql_at $V "$w" "$port" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    psql_at $V "$w" "$port" "create table marker(x int)"
    last="$(psql_at $V "$w" "$port" "select pg_walfile_name(pg_switch_wal())")"
    wait_until 180 bash -c "a=\$(runuser -u postgres -- $bin/psql -X -h $w -p $port -d postgres -qAt -c 'select coalesce(last_archived_wal, \$\$\$\$) from pg_stat_archiver'); [ \"\$a\" = '$last' ] || [ \"\$a\" \\> '$last' ]" \
        || fail "archiver did not reach $last"
    assert_eq "$(psql_at $V "$w" "$port" "select failed_count from pg_stat_archiver")" "0" "archive failures"
    pg_stop $V "$w/data" immediate

    # Recovery through the front with prefetching.
    as_pg cp -a "$w/backup" "$w/restored"; chmod 700 "$w/restored"; rm -f "$w/restored/postmaster.pid"
    local port2; port2="$(free_port)"
    configure_cluster "$w/restored" "$port2" "$w" "archive_mode = off" \
        "restore_command = '$FAST archive-get --config $w/walctl.conf --set restore-prefetch=4 --progress-file walctl_progress %f %p'" \
        "recovery_target_action = promote"
    as_pg touch "$w/restored/recovery.signal"
    pg_start $V "$w/restored"
    wait_until 180 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "recovery did not finish"
    assert_eq "$(psql_at $V "$w" "$port2" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")" "$expected" "recovered table"
    local restored; restored="$(wc -l < "$w/restored/walctl_progress")"
    [ "$restored" -ge 30 ] || fail "only $restored segments restored through the front"
    pg_stop $V "$w/restored"

    # A segment the spool does not hold: the front hands over to walctl, which restores it.
    "$FAST" archive-get --config "$w/walctl.conf" "$last" "$w/direct" || fail "front fallback"
    "$WALCTL" archive-get --config "$w/walctl.conf" "$last" "$w/direct2" || fail "walctl get"
    cmp -s "$w/direct" "$w/direct2" || fail "front fallback gave different bytes"
    local rc=0; "$FAST" archive-get --config "$w/walctl.conf" 0000000100000000000000FE "$w/none" 2>/dev/null || rc=$?
    assert_eq "$rc" "1" "missing segment through the front"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}

# Issue 12: a FIFO (or another special file) named like a segment is refused at once through the
# front too, with and without archive-async (before: the front waited, then walctl blocked forever).
test_fast_front_refuses_special_files_at_once() {
    require_pg $V
    [ -x "$FAST" ] || fail "walctl-fast not built next to $WALCTL"
    local w; w="$(new_workdir)"
    write_config "$w"
    init_cluster $V "$w/data"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    mkdir -p "$w/sp/pg_wal/archive_status" "$w/sp/walctl_spool/archive/skipped"
    mkfifo "$w/sp/pg_wal/000000010000000000000009"
    touch "$w/sp/pg_wal/archive_status/000000010000000000000009.ready"
    ln -s /dev/zero "$w/sp/pg_wal/00000001000000000000000A"
    local async f out rc start
    for async in false true; do
        for f in 09 0A; do
            start=$SECONDS
            out="$(WALCTL_ARCHIVE_ASYNC=$async timeout 30 "$FAST" archive-push --config "$w/walctl.conf" "$w/sp/pg_wal/0000000100000000000000$f" 2>&1)" && rc=0 || rc=$?
            [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "front push of special file $f (async $async) exited $rc"
            [ $((SECONDS - start)) -le 2 ] || fail "front push of special file $f (async $async) took $((SECONDS - start)) s"
            echo "$out" | grep -q "invalid-wal.*not a regular file" || fail "front message for $f (async $async): $out"
        done
    done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}

# Issue 12: the pusher's result for a damaged segment is not consumed silently by the front: walctl
# reports it, so `WARNING: DAMAGED WAL` reaches PostgreSQL's log.
test_fast_front_reports_damaged_wal() {
    require_pg $V
    [ -x "$FAST" ] || fail "walctl-fast not built next to $WALCTL"
    local w; w="$(new_workdir)"
    write_config "$w" "archive-async = true"
    init_cluster $V "$w/data"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    local seg; seg="$(ls "$w/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    mkdir -p "$w/a/pg_wal/archive_status"
    cp "$w/data/pg_wal/$seg" "$w/a/pg_wal/$seg"
    printf '\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a' | dd of="$w/a/pg_wal/$seg" bs=1 seek=$((1048576 + 4001)) conv=notrunc 2>/dev/null
    touch "$w/a/pg_wal/archive_status/$seg.ready"
    # As the archiver runs: the postgres user in its own tree (a spool below another user's
    # directory is refused, issue 13).
    chown -R postgres:postgres "$w/a"
    # The pusher stores it before PostgreSQL asks (it exits once idle).
    as_pg "$WALCTL" archive-push-async-daemon --config "$w/walctl.conf" --wal-dir "$w/a/pg_wal" --spool "$w/a/walctl_spool" 2>"$w/daemon.err" \
        || fail "daemon: $(cat "$w/daemon.err")"
    [ -f "$w/a/walctl_spool/archive/$seg.ok" ] || fail "no result for $seg in the spool"
    local out rc
    out="$(as_pg "$FAST" archive-push --config "$w/walctl.conf" "$w/a/pg_wal/$seg" 2>&1)" && rc=0 || rc=$?
    assert_eq "$rc" "0" "front push of a stored damaged segment"
    echo "$out" | grep -q "WARNING: DAMAGED WAL in $seg" || fail "the front consumed the damaged result silently: '$out'"
    [ ! -e "$w/a/walctl_spool/archive/$seg.ok" ] || fail "result not consumed"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}

run_suite "$@"
