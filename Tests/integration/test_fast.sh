#!/usr/bin/env bash
# The fast front (walctl-fast, docs/async.md) as archive_command and restore_command of a real
# PostgreSQL 15: async archiving of a burst, a prefetching recovery and one without prefetching
# (walctl-fast restoring from the file repository itself) reach the same data as the primary.
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

    # WALCTL_FULL is a wrapper that logs each start of the full binary.
    printf '#!/bin/sh\necho "$*" >> "%s"\nexec "%s" "$@"\n' "$w/full.calls" "$WALCTL_CORE" > "$w/full.sh"
    chmod 755 "$w/full.sh"; touch "$w/full.calls"; chown postgres "$w/full.sh" "$w/full.calls"
    # recover_from_backup DIR SETS: the base backup into DIR, recovered to the end of the archive
    # and promoted through the front with `SETS` on its restore_command, the table checked.
    recover_from_backup() {
        local dir="$1" sets="$2" p; p="$(free_port)"
        as_pg cp -a "$w/backup" "$dir"; chmod 700 "$dir"; rm -f "$dir/postmaster.pid"
        configure_cluster "$dir" "$p" "$w" "archive_mode = off" \
            "restore_command = '$FAST archive-get --config $w/walctl.conf $sets --progress-file walctl_progress %f %p'" \
            "recovery_target_action = promote"
        as_pg touch "$dir/recovery.signal"
        : > "$w/full.calls"
        as_pg env WALCTL_FULL="$w/full.sh" "$bin/pg_ctl" -D "$dir" -l "$dir.log" -w -t 120 start >/dev/null \
            || { tail -5 "$dir.log" >&2; fail "start of the recovery in $dir"; }
        wait_until 180 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $p -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
            || fail "recovery in $dir did not finish"
        assert_eq "$(psql_at $V "$w" "$p" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")" "$expected" "table recovered in $dir"
        local restored; restored="$(wc -l < "$dir/walctl_progress")"
        [ "$restored" -ge 30 ] || fail "only $restored segments restored through the front in $dir"
        pg_stop $V "$dir"
    }

    # Recovery through the front with prefetching.
    recover_from_backup "$w/restored" "--set restore-prefetch=4"

    # Without prefetching (a hand-written restore_command): walctl-fast restores each segment from
    # the plaintext file repository itself (FastFront.getDirect); only what is not a plain hit (the
    # end of the archive, history files) may reach walctl.
    recover_from_backup "$w/direct-rec" ""
    local full_gets
    full_gets="$(grep -cE '^archive-get .*[0-9A-F]{24} [^ ]+$' "$w/full.calls" || true)"
    echo "    without prefetching: walctl started for $full_gets segment requests" >&2
    [ "$full_gets" -le 2 ] || fail "walctl-fast handed $full_gets segment requests to walctl: $(head -5 "$w/full.calls")"

    # Restored by the front from the repository (no prefetching configured) and by walctl: the same bytes.
    "$FAST" archive-get --config "$w/walctl.conf" "$last" "$w/direct" || fail "front fallback"
    "$WALCTL_CORE" archive-get --config "$w/walctl.conf" "$last" "$w/direct2" || fail "walctl-core get"
    cmp -s "$w/direct" "$w/direct2" || fail "the front's restore gave different bytes"
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

# `walctl` is the front and hands every other command to walctl-core beside it (argv, PID and
# environment kept). A front without walctl-core fails with one `[file-io]` line (archive-get: 255,
# never 1). WALCTL_FULL naming a front (the full binary's old name) still reaches the core beside
# that front; a core that is itself a front fails instead of exec'ing for ever. A hand-over mark left
# in the environment by someone else is ignored.
test_front_hands_over_to_walctl_core() {
    local w out rc; w="$(new_workdir)"
    assert_eq "$("$WALCTL" version)" "walctl $("$WALCTL_CORE" --version)" "walctl version through the front"
    rc=0; out="$("$WALCTL" recover --config /nonexistent/walctl.conf --pgdata "$w/x" --to now 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "recover with a missing config succeeded"
    echo "$out" | grep -q '\[config\]' || fail "the core's error did not come through the front: $out"
    mkdir "$w/alone"; cp "$WALCTL" "$w/alone/walctl"
    rc=0; out="$("$w/alone/walctl" archive-get 000000010000000000000001 "$w/seg" 2>&1)" || rc=$?
    assert_eq "$rc" "255" "archive-get through a front without walctl-core"
    echo "$out" | grep -q '^walctl: error \[file-io\]: cannot run the full walctl binary .*walctl-core' || fail "message: $out"
    [ ! -e "$w/seg" ] || fail "a front without its core wrote %p"
    rc=0; "$w/alone/walctl" backup list >/dev/null 2>&1 || rc=$?
    assert_eq "$rc" "1" "another command through a front without walctl-core"
    # WALCTL_FULL naming a front: the hand-over goes on to the walctl-core beside that front.
    assert_eq "$(WALCTL_FULL="$FAST" timeout 20 "$WALCTL" version)" "walctl $("$WALCTL_CORE" --version)" "version with WALCTL_FULL naming a front"
    # A front installed as walctl-core: refused after one more hop, not an endless exec loop.
    mkdir "$w/loop"; cp "$WALCTL" "$w/loop/walctl"; cp "$WALCTL" "$w/loop/walctl-core"
    rc=0; out="$(timeout 20 "$w/loop/walctl" archive-get 000000010000000000000001 "$w/seg" 2>&1)" || rc=$?
    assert_eq "$rc" "255" "archive-get when walctl-core is a front"
    echo "$out" | grep -q "hand-over reached a front again: $w/loop/walctl-core is a walctl front" || fail "message: $out"
    rc=0; timeout 20 "$w/loop/walctl" version >/dev/null 2>&1 || rc=$?
    assert_eq "$rc" "1" "version when walctl-core is a front"
    # A mark someone left in the environment (a unit file, a shell) changes nothing.
    assert_eq "$(WALCTL_FRONT_HANDOFF=1:1:/x "$WALCTL" version)" "walctl $("$WALCTL_CORE" --version)" "version with a stray hand-over mark"
    assert_eq "$(WALCTL_FRONT_HANDOFF= "$WALCTL" version)" "walctl $("$WALCTL_CORE" --version)" "version with an empty hand-over mark"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}

run_suite "$@"
