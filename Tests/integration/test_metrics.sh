#!/usr/bin/env bash
# Metrics suite: `walctl metrics --listen` scraped with curl while a real PostgreSQL 15 archives into
# a file repository, every scrape parsed by Python's prometheus_client (Debian's
# python3-prometheus-client, so /usr/bin/python3), and the values must move: segments archived, the
# archive backlog while archiving fails and after it recovers, the newest backup. Plus the one-shot
# form for node_exporter's textfile collector, an unreachable repository (up 0, exit 0) and the
# HTTP edges (404, loopback bind, a bad --listen).
source "$(dirname "$0")/lib.sh"

V=15
PARSE=/usr/bin/python3

# metric TEXTFILE NAME [LABEL=VALUE...]: the value of one sample, parsed by prometheus_client
# (which also rejects malformed exposition: a missing TYPE, a bad value, a sample out of family).
metric() {
    "$PARSE" - "$@" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
name = sys.argv[2]
want = dict(a.split("=", 1) for a in sys.argv[3:])
families = list(text_string_to_metric_families(text))
for f in families:
    if not f.documentation:
        sys.exit(f"family {f.name} has no HELP")
for f in families:
    for s in f.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in want.items()):
            v = s.value
            print(int(v) if v == int(v) else v)
            sys.exit(0)
print("absent")
PY
}

# as_pg_exec COMMAND... &: COMMAND as postgres in place of the background subshell (exec, and setpriv
# execs too, where runuser would fork and stay the parent), so $! is the server and `kill $!` stops
# it. Only for background use: in the foreground it would replace the test's shell.
as_pg_exec() { exec setpriv --reuid postgres --regid postgres --init-groups -- "$@"; }

scrape() { curl -sf --max-time 20 "http://127.0.0.1:$MPORT/metrics" -o "$1"; }

setup() {
    require_pg "$V"
    W="$(new_workdir)"; PORT="$(free_port)"; MPORT="$(free_port)"; BIN="$(pg_bin "$V")"
    CONN="host=$W port=$PORT user=postgres dbname=postgres"
    write_config "$W"
    init_cluster "$V" "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" "archive_timeout = 0" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start "$V" "$W/data"
    MPID=""
    trap '[ -n "$MPID" ] && kill "$MPID" 2>/dev/null; [ -f "$W/data/postmaster.pid" ] && pg_stop "$V" "$W/data" immediate' EXIT
}

start_server() {
    as_pg_exec "$WALCTL" metrics --config "$W/walctl.conf" --pgdata "$W/data" --listen "127.0.0.1:$MPORT" >"$W/metrics.out" 2>"$W/metrics.err" &
    MPID=$!
    wait_until 20 curl -sf --max-time 5 "http://127.0.0.1:$MPORT/" || fail "metrics server did not answer: $(cat "$W/metrics.err")"
}

switch_segments() {  # switch_segments N: N non-empty segments closed
    for i in $(seq 1 "$1"); do
        psql_at "$V" "$W" "$PORT" "set client_min_messages = warning; create table if not exists t(x int); insert into t values ($i)" >/dev/null
        psql_at "$V" "$W" "$PORT" "select pg_switch_wal()" >/dev/null
    done
}

# finish: stops the metrics server and the cluster, removes the work directory (KEEP_TMP=1 keeps it).
finish() {
    [ -n "$MPID" ] && { kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null || true; MPID=""; }
    pg_stop "$V" "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

ready_count() { find "$W/data/pg_wal/archive_status" -name '*.ready' | wc -l; }

test_scrape_values_move() {
    setup; start_server
    switch_segments 2
    wait_until 60 bash -c "[ \$(find $W/data/pg_wal/archive_status -name '*.ready' | wc -l) -eq 0 ]" || fail "archiver did not catch up"
    scrape "$W/s1" || fail "scrape 1 failed"
    assert_eq "$(metric "$W/s1" walctl_repository_up)" 1 "repository up"
    assert_eq "$(metric "$W/s1" walctl_catalog_up)" 1 "catalog up"
    assert_eq "$(metric "$W/s1" walctl_status code=ok)" 1 "status ok"
    assert_eq "$(metric "$W/s1" walctl_archive_backlog_ready_files)" 0 "backlog before"
    local seg1 commit1 age1
    seg1="$(metric "$W/s1" walctl_archived_segments timeline=1)"
    commit1="$(metric "$W/s1" walctl_last_archived_commit_timestamp_seconds)"
    age1="$(metric "$W/s1" walctl_last_archived_segment_age_seconds)"
    [ "$seg1" != absent ] && [ "$seg1" -ge 2 ] || fail "archived segments after 2 switches: $seg1"
    [ "$commit1" != absent ] || fail "no last archived commit"
    "$PARSE" -c "import sys; sys.exit(0 if 0 <= float('$age1') < 120 else 1)" || fail "last archived age $age1"
    sleep 1.1   # commit timestamps have microseconds; make the next one distinguishable for sure

    # Archiving fails: the backlog grows in pg_wal and the metrics show it.
    psql_at "$V" "$W" "$PORT" "alter system set archive_command = 'false'" >/dev/null
    psql_at "$V" "$W" "$PORT" "select pg_reload_conf()" >/dev/null
    sleep 0.5
    switch_segments 3
    wait_until 30 bash -c "[ \$(find $W/data/pg_wal/archive_status -name '*.ready' | wc -l) -ge 3 ]" || fail "no .ready backlog built up"
    scrape "$W/s2" || fail "scrape 2 failed"
    local ready bytes
    ready="$(metric "$W/s2" walctl_archive_backlog_ready_files)"
    bytes="$(metric "$W/s2" walctl_archive_backlog_ready_bytes)"
    [ "$ready" -ge 3 ] || fail "backlog ready files $ready (pg_wal has $(ready_count))"
    [ "$bytes" -ge $((3 * 16 * 1024 * 1024)) ] || fail "backlog bytes $bytes"
    assert_eq "$(metric "$W/s2" walctl_archived_segments timeline=1)" "$seg1" "segments while archiving fails"

    # Archiving works again: the backlog drains, segments and the last commit move forward.
    psql_at "$V" "$W" "$PORT" "alter system reset archive_command" >/dev/null
    psql_at "$V" "$W" "$PORT" "select pg_reload_conf()" >/dev/null
    wait_until 90 bash -c "[ \$(find $W/data/pg_wal/archive_status -name '*.ready' | wc -l) -eq 0 ]" || fail "backlog did not drain"
    scrape "$W/s3" || fail "scrape 3 failed"
    assert_eq "$(metric "$W/s3" walctl_archive_backlog_ready_files)" 0 "backlog after"
    local seg3 commit3
    seg3="$(metric "$W/s3" walctl_archived_segments timeline=1)"
    commit3="$(metric "$W/s3" walctl_last_archived_commit_timestamp_seconds)"
    [ "$seg3" -ge $((seg1 + 3)) ] || fail "segments did not move: $seg1 -> $seg3"
    "$PARSE" -c "import sys; sys.exit(0 if float('$commit3') > float('$commit1') else 1)" || fail "last commit did not move: $commit1 -> $commit3"

    # A backup: the newest backup's age and size, and the recoverable window opens.
    assert_eq "$(metric "$W/s3" walctl_backups status=complete)" 0 "backups before"
    assert_eq "$(metric "$W/s3" walctl_newest_backup_size_bytes)" absent "newest backup before"
    as_pg "$WALCTL" backup --config "$W/walctl.conf" --label m1 --dbname "$CONN" >/dev/null 2>"$W/backup.err" || fail "backup failed: $(cat "$W/backup.err")"
    switch_segments 1
    wait_until 60 bash -c "[ \$(find $W/data/pg_wal/archive_status -name '*.ready' | wc -l) -eq 0 ]" || fail "archiver did not catch up after the backup"
    scrape "$W/s4" || fail "scrape 4 failed"
    assert_eq "$(metric "$W/s4" walctl_backups status=complete)" 1 "backups after"
    local size bage start end
    size="$(metric "$W/s4" walctl_newest_backup_size_bytes)"
    bage="$(metric "$W/s4" walctl_newest_backup_age_seconds)"
    start="$(metric "$W/s4" walctl_recoverable_window_start_timestamp_seconds timeline=1)"
    end="$(metric "$W/s4" walctl_recoverable_window_end_timestamp_seconds timeline=1)"
    [ "$size" != absent ] && [ "$size" -gt 1000000 ] || fail "newest backup size $size"
    "$PARSE" -c "import sys; sys.exit(0 if 0 <= float('$bage') < 300 else 1)" || fail "newest backup age $bage"
    [ "$start" != absent ] && [ "$end" != absent ] || fail "recoverable window $start .. $end"
    "$PARSE" -c "import sys; sys.exit(0 if float('$end') > float('$start') else 1)" || fail "window end $end not after start $start"
    # No drill table in this catalog: no drill metrics (not zeros).
    assert_eq "$(metric "$W/s4" walctl_last_drill_success)" absent "drill metrics without drills"

    # HTTP edges: the content type, a 404, HEAD, and a loopback-only bind.
    curl -sf -D "$W/headers" -o /dev/null "http://127.0.0.1:$MPORT/metrics" || fail "scrape with headers"
    grep -qi '^content-type: text/plain; version=0.0.4' "$W/headers" || fail "content type: $(cat "$W/headers")"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/nope")" 404 "unknown path"
    assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MPORT/metrics")" 405 "POST"
    finish
}

test_default_listen_is_loopback_and_bad_address_refused() {
    setup
    as_pg_exec "$WALCTL" metrics --config "$W/walctl.conf" --listen "$MPORT" >/dev/null 2>"$W/err" &
    MPID=$!
    wait_until 20 curl -sf --max-time 5 "http://127.0.0.1:$MPORT/metrics" -o "$W/s" || fail "port-only --listen did not serve: $(cat "$W/err")"
    ss -ltnH "sport = :$MPORT" | awk '{print $4}' | grep -qx "127.0.0.1:$MPORT" || fail "not bound to loopback only: $(ss -ltnH "sport = :$MPORT")"
    # A second server on the same port: a one-line [refused] error, non-zero exit.
    local out rc=0
    out="$(as_pg "$WALCTL" metrics --config "$W/walctl.conf" --listen "127.0.0.1:$MPORT" 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "second bind succeeded"
    echo "$out" | grep -q 'error \[refused\]: cannot listen on 127.0.0.1:'"$MPORT"': Address already in use' || fail "bind error: $out"
    kill "$MPID"; wait "$MPID" 2>/dev/null || true; MPID=""
    rc=0; out="$("$WALCTL" metrics --config "$W/walctl.conf" --listen "example.com:80" 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "a host name was accepted"
    echo "$out" | grep -q -- '--listen expects' || fail "bad address message: $out"
    finish
}

test_oneshot_textfile_and_unreachable_repository() {
    setup
    switch_segments 1
    wait_until 60 bash -c "[ \$(find $W/data/pg_wal/archive_status -name '*.ready' | wc -l) -eq 0 ]" || fail "archiver did not catch up"
    as_pg "$WALCTL" metrics --config "$W/walctl.conf" --pgdata "$W/data" >"$W/walctl.prom" 2>"$W/err" || fail "one-shot metrics failed: $(cat "$W/err")"
    assert_eq "$(metric "$W/walctl.prom" walctl_repository_up)" 1 "one-shot up"
    [ "$(metric "$W/walctl.prom" walctl_archived_segments timeline=1)" -ge 1 ] || fail "one-shot segments"
    grep -q "^walctl_build_info{version=\"$("$WALCTL" version | awk '{print $2}')\"} 1$" "$W/walctl.prom" || fail "build info: $(grep build_info "$W/walctl.prom")"
    assert_eq "$(metric "$W/walctl.prom" walctl_archive_push_failures_total)" 0 "sync push failures before"
    assert_eq "$(metric "$W/walctl.prom" walctl_archive_push_last_failure_timestamp_seconds)" absent "last push failure before"
    # The repository goes away (unmounted): still exit 0 and parseable, up 0, the reason on stderr.
    mv "$W/repo" "$W/repo.away"
    # Synchronous archive-push fails meanwhile (twice, as PostgreSQL retries): counted beside the catalog.
    local seg; seg="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | tail -1)"
    cp "$W/data/pg_wal/$seg" "$W/$seg"; chown postgres "$W/$seg"
    as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "$W/$seg" 2>/dev/null && fail "archive-push succeeded without its repository"
    as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "$W/$seg" 2>/dev/null && fail "archive-push succeeded without its repository"
    local rc=0
    as_pg "$WALCTL" metrics --config "$W/walctl.conf" --pgdata "$W/data" >"$W/down.prom" 2>"$W/err" || rc=$?
    mv "$W/repo.away" "$W/repo"
    assert_eq "$(metric "$W/down.prom" walctl_archive_push_failures_total)" 2 "sync push failures counted"
    grep -q '^walctl_archive_push_last_failure_timestamp_seconds{.*code="[a-z-]*"' "$W/down.prom" || fail "last push failure's code: $(grep push_last "$W/down.prom")"
    local lastf; lastf="$(metric "$W/down.prom" walctl_archive_push_last_failure_timestamp_seconds)"
    "$PARSE" -c "import sys,time; sys.exit(0 if abs(time.time() - float('$lastf')) < 120 else 1)" || fail "last push failure time $lastf"
    assert_eq "$rc" 0 "exit with the repository away"
    assert_eq "$(metric "$W/down.prom" walctl_repository_up)" 0 "repository up while away"
    [ "$(metric "$W/down.prom" walctl_archive_backlog_ready_files)" != absent ] || fail "backlog missing while the repository is away"
    grep -q 'repo-not-initialised' "$W/err" || fail "no reason on stderr: $(cat "$W/err")"
    finish
}

run_suite "$@"
