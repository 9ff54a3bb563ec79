#!/usr/bin/env bash
# Issue 8: asynchronous parallel archive-push and prefetching archive-get through a real
# PostgreSQL 15. A burst of >= 50 segments is archived with archive-async = true, every one is
# byte-identical when fetched back, and a recovery with restore-prefetch = 8 reaches the same data
# as a synchronous one. WALCTL_TEST_REPO=s3 runs it against moto (test_async_s3.sh).
source "$(dirname "$0")/lib.sh"

V=15
last_archived() { psql_at $V "$1" "$2" "select coalesce(last_archived_wal, '') from pg_stat_archiver"; }

# start_async_primary: cluster W/data archiving through walctl with archive-async on.
start_async_primary() {
    require_pg $V
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin $V)"
    write_config "$W" "archive-async = true" "archive-workers = 2" "$@"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "max_wal_size = 4GB"
    pg_start $V "$W/data"
}

# burst N: N segments of real data, each closed by pg_switch_wal.
burst() {
    psql_at $V "$W" "$PORT" "create table if not exists t(id int primary key, v text)"
    local base; base="$(psql_at $V "$W" "$PORT" "select coalesce(max(id), 0) from t")"
    for i in $(seq 1 "$1"); do
        psql_at $V "$W" "$PORT" "insert into t select g, md5(g::text) from generate_series($base+($i-1)*2000+1, $base+$i*2000) g; select pg_switch_wal()" >/dev/null
    done
}

wait_archived() {
    local target="$1"
    wait_until 300 bash -c "a=\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select coalesce(last_archived_wal, \$\$\$\$) from pg_stat_archiver'); [ \"\$a\" = '$target' ] || [ \"\$a\" \\> '$target' ]"
}

test_async_burst_archives_every_segment_byte_identical() {
    start_async_primary
    as_pg "$BIN/pg_basebackup" -h "$W" -p "$PORT" -D "$W/backup" -X none -c fast -Fp --no-sync >/dev/null 2>&1 || fail "pg_basebackup"
    burst 60
    local expected last
    expected="$(psql_at $V "$W" "$PORT" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    psql_at $V "$W" "$PORT" "create table marker(x int)"
    last="$(psql_at $V "$W" "$PORT" "select pg_walfile_name(pg_switch_wal())")"
    wait_archived "$last" || fail "archiver did not reach $last ($(last_archived "$W" "$PORT"))"
    assert_eq "$(psql_at $V "$W" "$PORT" "select failed_count from pg_stat_archiver")" "0" "archive failures"
    # Every segment still in pg_wal that PostgreSQL marked .done is byte-identical in the archive.
    local n=0 s
    for s in $(ls "$W/data/pg_wal/archive_status" | grep -E '^[0-9A-F]{24}\.done$' | sed 's/\.done$//'); do
        [ -f "$W/data/pg_wal/$s" ] || continue
        "$WALCTL" archive-get --config "$W/walctl.conf" "$s" "$W/back" || fail "get $s"
        cmp -s "$W/back" "$W/data/pg_wal/$s" || fail "$s differs"
        n=$((n + 1))
    done
    local metas; metas="$(repo_objects "$W" '/[0-9A-F]{24}\.meta$' | wc -l)"
    [ "$metas" -ge 55 ] || fail "only $metas segments archived"
    echo "    $metas segments archived, $n compared byte for byte" >&2
    # info shows the (empty) backlog.
    "$WALCTL" info --config "$W/walctl.conf" --set pgdata="$W/data" | grep -q "archive backlog: 0 files ready" || fail "info backlog: $("$WALCTL" info --config "$W/walctl.conf" --set pgdata="$W/data" 2>&1)"
    pg_stop $V "$W/data" immediate

    # Recovery twice from the same backup: synchronous, and with restore-prefetch = 8.
    local mode port2 got
    for mode in sync prefetch; do
        as_pg cp -a "$W/backup" "$W/r-$mode"; chmod 700 "$W/r-$mode"; rm -f "$W/r-$mode/postmaster.pid"
        port2="$(free_port)"
        local cmd="$WALCTL archive-get --config $W/walctl.conf %f %p"
        [ $mode = prefetch ] && cmd="$WALCTL archive-get --config $W/walctl.conf --set restore-prefetch=8 %f %p"
        configure_cluster "$W/r-$mode" "$port2" "$W" "archive_mode = off" "restore_command = '$cmd'" "recovery_target_action = promote"
        as_pg touch "$W/r-$mode/recovery.signal"
        pg_start $V "$W/r-$mode"
        wait_until 180 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
            || fail "$mode recovery did not finish"
        got="$(psql_at $V "$W" "$port2" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
        assert_eq "$got" "$expected" "$mode recovered table"
        grep -q "restored log file \"$last\" from archive" "$W/r-$mode.log" || fail "$mode: $last not restored through walctl"
        pg_stop $V "$W/r-$mode"
    done
    # The prefetch spool is cleaned when recovery ends (asked for a segment that is not archived).
    local left; left="$(ls "$W/r-prefetch/pg_wal/walctl_prefetch" 2>/dev/null | grep -cE '^[0-9A-F]{24}$' || true)"
    assert_eq "$left" "0" "segments left in the prefetch spool"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_async_failure_is_reported_for_that_segment() {
    start_async_primary
    # A segment of another cluster planted as ready: its push fails, with the reason, for it alone.
    init_cluster $V "$W/other"
    psql_at $V "$W" "$PORT" "select pg_switch_wal()" >/dev/null
    local seg; seg="$(ls "$W/other/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    local fake=000000010000000000000099
    mkdir -p "$W/fake/archive_status"; cp "$W/other/pg_wal/$seg" "$W/fake/$fake"
    touch "$W/fake/archive_status/$fake.ready"
    chown -R postgres:postgres "$W/fake"
    local out rc=0
    out="$(cd "$W" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" --set archive-push-timeout=20 --set spool-path="$W/fake-spool" "fake/$fake" 2>&1)" || rc=$?
    assert_eq "$rc" "1" "exit code of a failing async push"
    echo "$out" | grep -q "asynchronous push of $fake failed" || fail "message: $out"
    echo "$out" | grep -qi "database system\|page address" || fail "reason missing: $out"
    # The primary's own archiving is unaffected.
    psql_at $V "$W" "$PORT" "create table x(i int); select pg_switch_wal()" >/dev/null
    assert_eq "$(psql_at $V "$W" "$PORT" "select failed_count from pg_stat_archiver")" "0" "primary failures"
    pg_stop $V "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_one_pusher_per_cluster() {
    start_async_primary
    burst 8
    # While pushers may be running, count walctl daemons per spool: never more than one at a time.
    local max=0 i c
    for i in $(seq 1 50); do
        c="$(pgrep -f "archive-push-async-daemon --wal-dir $W/data/pg_wal" | wc -l || true)"
        if [ "$c" -gt "$max" ]; then max=$c; fi
        sleep 0.05
    done
    [ "$max" -le 1 ] || fail "$max pushers ran at once"
    pg_stop $V "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_safety_valve_lets_go_while_push_hangs() {
    require_pg $V
    # An S3 endpoint that accepts connections and never answers: every push hangs.
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin $V)"
    # Past archive-push-max-age the valve lets the file go once its push has not completed within
    # archive-push-timeout (issue 13: never before its own push failed or timed out).
    write_config "$W" "archive-async = true" "archive-push-max-age = 3" "archive-push-timeout = 4"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    # The kernel picks the stub's port (bind to 0) and the stub writes it down: a port probed free
    # first can be taken by another suite's connection before the stub binds it.
    local hang portfile="$W/hang.port"
    python3 -c "
import socket,time,sys,os
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(50)
open('$portfile.tmp','w').write(str(s.getsockname()[1])); os.rename('$portfile.tmp','$portfile')
cs=[]
end=time.time()+120
while time.time()<end:
    s.settimeout(1)
    try: cs.append(s.accept()[0])
    except Exception: pass
" & local hp=$!
    wait_until 10 test -s "$portfile" || fail "the hanging stub did not start"
    hang="$(cat "$portfile")"
    local seg; seg="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    mkdir -p "$W/data/pg_wal/archive_status"; touch "$W/data/pg_wal/archive_status/$seg.ready"; chown -R postgres:postgres "$W/data/pg_wal"
    local start=$SECONDS out rc=0
    out="$(cd "$W/data" && as_pg env WALCTL_REPOSITORY=s3://walctl-hang/x WALCTL_S3_ENDPOINT=http://127.0.0.1:$hang WALCTL_S3_URI_STYLE=path \
        WALCTL_S3_KEY=k WALCTL_S3_KEY_SECRET=s WALCTL_S3_STALL_TIMEOUT=600 WALCTL_S3_CONNECT_TIMEOUT=600 \
        "$WALCTL" archive-push --config "$W/walctl.conf" "pg_wal/$seg" 2>&1)" || rc=$?
    kill $hp 2>/dev/null || true
    assert_eq "$rc" "0" "valve exit code ($out)"
    [ $((SECONDS - start)) -le 15 ] || fail "valve took $((SECONDS - start)) s"
    echo "$out" | grep -q "SAFETY VALVE" || fail "no loud warning: $out"
    [ -f "$W/data/walctl_spool/archive/skipped/$seg.json" ] || fail "no skip record"
    "$WALCTL" info --config "$W/walctl.conf" --set pgdata="$W/data" 2>/dev/null | grep -q "SKIPPED  $seg" || fail "info does not show the skip: $("$WALCTL" info --config "$W/walctl.conf" --set pgdata="$W/data" 2>&1)"
    local dpid; dpid="$(cat "$W/data/walctl_spool/archive/daemon.lock" 2>/dev/null)"
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# break_repo / heal_repo: the repository fails (file: unreadable; s3: a port nobody listens on).
break_repo() {
    cp -p "$W/walctl.conf" "$W/walctl.conf.healthy"
    if [ "$WALCTL_TEST_REPO" = s3 ]; then
        sed -i 's|^s3-endpoint = .*|s3-endpoint = http://127.0.0.1:9|' "$W/walctl.conf"
    else
        stat -c %a "$W/repo" > "$W/repo.mode"; chmod 000 "$W/repo"
    fi
}
heal_repo() {
    if [ "$WALCTL_TEST_REPO" = s3 ]; then cp -p "$W/walctl.conf.healthy" "$W/walctl.conf"; else chmod "$(cat "$W/repo.mode")" "$W/repo"; fi
}

# json_names FILE KEY: the `name` of every element of the top-level array KEY in a JSON file, one a line.
json_names() { python3 -c 'import json,sys; [print(e["name"]) for e in json.load(open(sys.argv[1]))[sys.argv[2]]]' "$1" "$2"; }

test_safety_valve_gap_is_known_to_info_verify_recover_and_rebuild() {
    require_pg $V
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin $V)"
    write_config "$W"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'"
    pg_start $V "$W/data"
    local now="select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"
    # switch: a committed insert, then the segment holding it closed (two statements, so the commit
    # record is in the segment that is closed, not in the next one); prints that segment's name.
    switch() {
        psql_at $V "$W" "$PORT" "insert into t select g from generate_series(1, 1000) g" >/dev/null
        psql_at $V "$W" "$PORT" "select pg_walfile_name(pg_switch_wal())"
    }
    psql_at $V "$W" "$PORT" "create table t(i int)"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label before --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "backup failed"
    sleep 1
    local t_before; t_before="$(psql_at $V "$W" "$PORT" "$now")"
    wait_archived "$(switch)" || fail "archiving before the skip"
    # For one segment the valve's backlog limit is below any segment and the repository is down:
    # its push fails and it is let go, not stored (a healthy repository never causes a skip).
    echo "archive-push-queue-max = 1" >> "$W/walctl.conf"
    break_repo
    local skipped; skipped="$(switch)"
    wait_archived "$skipped" || fail "the valve did not let $skipped go"
    heal_repo
    # The next push, with the valve still on, is stored (no skip) and stores the skip marker.
    local next; next="$(switch)"
    wait_archived "$next" || fail "archiving with the valve on and a healthy repository"
    [ -n "$(repo_objects "$W" "/$next\.meta\$")" ] || fail "$next was not stored by a healthy repository with the valve on"
    sed -i '/archive-push-queue-max/d' "$W/walctl.conf"
    grep -q "SAFETY VALVE: $skipped" "$W/data.log" || fail "no SAFETY VALVE line for $skipped in the server log"
    [ -z "$(repo_objects "$W" "/$skipped\.meta\$")" ] || fail "$skipped was stored"
    [ -n "$(repo_objects "$W" "/$skipped\.skipped\$")" ] || fail "no skip marker for $skipped in the repository"
    local t_after; t_after="$(psql_at $V "$W" "$PORT" "$now")"
    switch >/dev/null
    wait_archived "$(switch)" || fail "archiving after the skip"
    assert_eq "$(psql_at $V "$W" "$PORT" "select failed_count from pg_stat_archiver")" "0" "archive failures"

    # info: the skip in JSON, and the loud line in text.
    as_pg "$WALCTL" info --config "$W/walctl.conf" --json > "$W/info.json" || fail "info --json"
    assert_eq "$(json_names "$W/info.json" skippedSegments)" "$skipped" "info --json skippedSegments"
    as_pg "$WALCTL" info --config "$W/walctl.conf" | grep -q "PITR broken: 1 segment skipped by the safety valve on timeline 1 ($skipped..$skipped)" \
        || fail "info text: $(as_pg "$WALCTL" info --config "$W/walctl.conf" 2>&1)"
    # verify: exit 1, naming it; --json too.
    local out rc=0
    out="$(as_pg "$WALCTL" verify --config "$W/walctl.conf" 2>&1)" || rc=$?
    assert_eq "$rc" "1" "verify exit code ($out)"
    echo "$out" | grep -q "^SKIPPED  $skipped " || fail "verify does not name $skipped: $out"
    rc=0; as_pg "$WALCTL" verify --config "$W/walctl.conf" --json --deep > "$W/verify.json" || rc=$?
    assert_eq "$rc" "1" "verify --json exit code"
    assert_eq "$(json_names "$W/verify.json" skipped)" "$skipped" "verify --json skipped"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["ok"] is False and d["deep"] and d["readObjectCount"] >= 3 and not d["corrupt"] else 1)' "$W/verify.json" \
        || fail "verify --json: $(cat "$W/verify.json")"
    # recover: a target after the skip is refused (exit 3, code skipped); one before it still plans.
    rc=0; as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --dry-run --to "$t_after" >/dev/null 2>"$W/rec.err" || rc=$?
    assert_eq "$rc" "3" "recover across the skip ($(cat "$W/rec.err"))"
    grep -q "error \[skipped\]:.*$skipped" "$W/rec.err" || fail "refusal: $(cat "$W/rec.err")"
    [ ! -e "$W/rec" ] || fail "the refused recovery touched $W/rec"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --dry-run --to "$t_before" >/dev/null 2>"$W/rec.err" \
        || fail "recovery before the skip refused: $(cat "$W/rec.err")"
    # A catalog rebuilt from the repository alone knows the skip (from the marker).
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" --catalog "$W/fresh.db" >/dev/null || fail "catalog rebuild"
    as_pg "$WALCTL" info --config "$W/walctl.conf" --catalog "$W/fresh.db" --json > "$W/fresh.json" || fail "info on the rebuilt catalog"
    assert_eq "$(json_names "$W/fresh.json" skippedSegments)" "$skipped" "rebuilt catalog skippedSegments"
    as_pg "$WALCTL" catalog check --config "$W/walctl.conf" --catalog "$W/fresh.db" >/dev/null || fail "catalog check after the rebuild"
    pg_stop $V "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

run_suite "$@"
