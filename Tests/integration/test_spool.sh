#!/usr/bin/env bash
# Issue 13, the archive spool and the safety valve through a real PostgreSQL 15, as an attacker (a
# second OS user, walctl-attacker) and a careless operator would try them:
#   - a spool another user prepared (symlinks to postgres-owned files) is refused, nothing is followed
#     through a symlink, and a pusher that cannot start is restarted with exponential back-off;
#   - the safety valve never lets a file go while a healthy repository keeps up (200 MiB backlog over
#     a 32 MiB limit: zero skips), still lets files go when the repository is down, and never hides
#     an archive-mismatch;
#   - a manual re-push in async mode of a file without `.ready` pushes directly, and starts no daemon.
source "$(dirname "$0")/lib.sh"

V=15
ATTACKER=walctl-attacker

ensure_attacker() {
    id "$ATTACKER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ATTACKER" >/dev/null 2>&1 \
        || fail "cannot create the OS user $ATTACKER"
}
as_attacker() { runuser -u "$ATTACKER" -- "$@"; }

# primary [walctl.conf lines...]: a cluster in W/data whose archive_command is ARCHIVE_CMD (default:
# walctl archive-push with W/walctl.conf); sets W, PORT, BIN.
primary() {
    require_pg $V
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin $V)"
    write_config "$W" "$@"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '${ARCHIVE_CMD:-$WALCTL archive-push --config $W/walctl.conf %p}'" "max_wal_size = 4GB" "wal_keep_size = 0"
    pg_start $V "$W/data"
    trap cleanup EXIT
}
cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    [ -e "$W/repo.mode" ] && chmod "$(cat "$W/repo.mode")" "$W/repo" 2>/dev/null
    pg_stop $V "$W/data" immediate
    local p; for p in $(pgrep -f "archive-push-async-daemon --wal-dir $W/" || true); do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}
sql() { psql_at $V "$W" "$PORT" "$@"; }
last_archived() { sql "select coalesce(last_archived_wal, '') from pg_stat_archiver"; }
wait_archived() {
    wait_until "${2:-120}" bash -c "a=\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select coalesce(last_archived_wal, \$\$\$\$) from pg_stat_archiver'); [ \"\$a\" = '$1' ] || [ \"\$a\" \\> '$1' ]"
}
# segments N: N segments with a little data each, closed by pg_switch_wal; prints the last name.
segments() {
    sql "create table if not exists t(i int)" >/dev/null
    local i last
    for i in $(seq 1 "$1"); do
        sql "insert into t select g from generate_series(1, 100) g" >/dev/null
        last="$(sql "select pg_walfile_name(pg_switch_wal())")"
    done
    echo "$last"
}
ready_bytes() {
    local n=0 f
    for f in "$W"/data/pg_wal/archive_status/*.ready; do
        [ -e "$f" ] || continue
        n=$((n + $(stat -c %s "$W/data/pg_wal/$(basename "$f" .ready)")))
    done
    echo $n
}
set_archive_command() {
    sed -i '/^archive_command/d' "$W/data/postgresql.conf"
    echo "archive_command = '$1'" >> "$W/data/postgresql.conf"
    sql "select pg_reload_conf()" >/dev/null
}
# max_daemons SECONDS PATTERN: the most pushers matching PATTERN seen at once while sampling, and
# the number of distinct ones (pids) seen: "MAX DISTINCT".
daemon_sampler() {
    local end=$((SECONDS + $1)) max=0 c pids=" " p
    while [ $SECONDS -lt $end ]; do
        c=0
        for p in $(pgrep -f "$2" || true); do c=$((c + 1)); case "$pids" in *" $p "*) ;; *) pids="$pids$p ";; esac; done
        [ $c -gt $max ] && max=$c
        sleep 0.05
    done
    echo "$max $(echo $pids | wc -w)"
}

# ------------------------------------------------------------------------------ spools nobody else can touch

test_attacker_prepared_spool_is_refused() {
    ensure_attacker
    require_pg $V
    W="$(new_workdir)"
    # A shared directory (sticky, like /tmp) holding spool-path; the attacker got there first.
    mkdir -m 1777 "$W/shared"
    echo "precious lock" > "$W/victim1"; echo "precious log" > "$W/victim2"
    chown postgres:postgres "$W/victim1" "$W/victim2"; chmod 600 "$W/victim1" "$W/victim2"
    local before; before="$(md5sum "$W/victim1" "$W/victim2")"
    as_attacker mkdir -m 777 "$W/shared/spool" "$W/shared/spool/archive"
    as_attacker ln -s "$W/victim1" "$W/shared/spool/archive/daemon.lock"
    as_attacker ln -s "$W/victim2" "$W/shared/spool/archive/daemon.log"
    trap cleanup EXIT
    primary_in_place "archive-async = true" "spool-path = $W/shared/spool" "archive-push-timeout = 5"
    local seg; seg="$(segments 1)"
    local seen; seen="$(daemon_sampler 6 "archive-push-async-daemon --wal-dir $W/data/pg_wal")"
    assert_eq "$seen" "0 0" "pushers started (most at once, distinct) while the spool is the attacker's"
    assert_eq "$(md5sum "$W/victim1" "$W/victim2")" "$before" "victim files"
    [ "$(sql "select failed_count from pg_stat_archiver")" -ge 1 ] || fail "PostgreSQL saw no failure (it must keep the segment and retry)"
    [ -z "$(repo_objects "$W" "/$seg\.meta\$")" ] || fail "$seg archived through the attacker's spool"
    grep -q "error \[refused\]: spool directory $W/shared/spool is owned by $ATTACKER, not by postgres" "$W/data.log" \
        || fail "no clear refusal in the server log: $(grep walctl "$W/data.log" | tail -3)"
    grep -q "install -d -o postgres -m 700 $W/shared/spool" "$W/data.log" || fail "the refusal does not say how to fix it"
    # The operator removes the attacker's directory: walctl creates its own (0700) and archives.
    rm -rf "$W/shared/spool"
    seg="$(segments 1)"   # wakes the archiver
    wait_archived "$seg" 60 || fail "archiving did not resume once the attacker's spool was gone"
    assert_eq "$(stat -c '%U %a' "$W/shared/spool" "$W/shared/spool/archive" | sort -u)" "postgres 700" "the spool walctl created"
    assert_eq "$(md5sum "$W/victim1" "$W/victim2")" "$before" "victim files"
}

# primary_in_place [walctl.conf lines...]: `primary` in an existing W.
primary_in_place() {
    PORT="$(free_port)"; BIN="$(pg_bin $V)"
    write_config "$W" "$@"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start $V "$W/data"
}

test_group_writable_spool_is_refused() {
    primary "archive-async = true" "spool-path = SPOOL"
    sed -i "s|^spool-path = SPOOL|spool-path = $W/spool|" "$W/walctl.conf"
    install -d -o postgres -g postgres -m 770 "$W/spool"
    local seg; seg="$(segments 1)"
    wait_until 20 grep -q "spool directory $W/spool is writable by group or others (mode 770): run \`chmod go-w $W/spool\`" "$W/data.log" \
        || fail "no refusal of a group-writable spool: $(grep walctl "$W/data.log" | tail -3)"
    [ ! -e "$W/spool/archive" ] || fail "walctl created files in a spool it refused"
    chmod 700 "$W/spool"
    seg="$(segments 1)"   # wakes the archiver
    wait_archived "$seg" 60 || fail "archiving did not resume after chmod go-w"
}

test_symlinks_in_spool_are_not_followed_and_starts_back_off() {
    primary "archive-async = true" "archive-push-timeout = 2"
    # A symlink in the spool (here: planted in our own spool): never opened through.
    echo "precious" > "$W/victim"; chown postgres:postgres "$W/victim"; chmod 600 "$W/victim"
    local before; before="$(md5sum < "$W/victim")"
    as_pg mkdir -p -m 700 "$W/data/walctl_spool/archive/skipped"
    as_pg ln -s "$W/victim" "$W/data/walctl_spool/archive/daemon.lock"
    # A file PostgreSQL marked ready, pushed by hand as the archiver would, for ~8 s.
    pg_stop $V "$W/data"
    local seg; seg="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    as_pg touch "$W/data/pg_wal/archive_status/$seg.ready"
    local began=$SECONDS end=$((SECONDS + 8)) calls=0 out
    while [ $SECONDS -lt $end ]; do
        out="$(cd "$W/data" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "pg_wal/$seg" 2>&1)" && fail "archive-push exited 0 through a symlinked lock"
        calls=$((calls + 1))
        sleep 0.2
    done
    assert_eq "$(md5sum < "$W/victim")" "$before" "victim file"
    local log="$W/data/walctl_spool/archive/daemon.log" starts logged
    starts="$(grep -c "^walctl: error \[file-io\]: cannot open lock file" "$log" || true)"
    logged="$(grep -c "start failed ([0-9]* in a row): \[file-io\] cannot open lock file .*; the next start waits" "$log" || true)"
    echo "    $calls archive-push calls in $((SECONDS - began)) s started the pusher $starts times" >&2
    [ "$starts" -ge 3 ] || fail "only $starts pusher starts: the calls did not retry after the back-off"
    assert_eq "$logged" "$starts" "failed starts logged once each"
    # Start n+1 comes at least 2^(n-1) s after start n (1, 2, 4, 8 ...; log times are whole seconds).
    python3 - "$log" <<'PY' || fail "starts not spaced by the back-off: $(grep 'start failed' "$log" | cut -c1-60)"
import re, sys, datetime
t = [datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ").timestamp()
     for m in (re.match(r"(\S+) walctl\[\d+\]: start failed", l) for l in open(sys.argv[1])) if m]
sys.exit(0 if all(t[i + 1] - t[i] >= 2 ** i - 1 for i in range(len(t) - 1)) else 1)
PY
    echo "$out" | grep -q "the background pusher failed to start" || fail "the last call does not report the failed start: $out"
    [ -f "$W/data/walctl_spool/archive/daemon.failed" ] || fail "no record of the failed start in the spool"
    # Fixed (the link removed): the next start after the back-off works and clears it.
    rm -f "$W/data/walctl_spool/archive/daemon.lock" "$W/data/walctl_spool/archive/daemon.failed"
    (cd "$W/data" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" --set archive-push-timeout=30 "pg_wal/$seg") || fail "push after the fix"
}

# ------------------------------------------------------------------------------ the valve

# backlog_with_archiving_off N: N segments ready while archiving fails (archive_command = false).
backlog_with_archiving_off() {
    set_archive_command "/bin/false"
    segments "$1"
}

test_valve_never_skips_for_a_healthy_repository() {
    ARCHIVE_CMD=/bin/false primary "archive-push-queue-max = 33554432" "archive-push-timeout = 60"
    local mode last bytes start
    for mode in true false; do
        last="$(backlog_with_archiving_off 13)"
        bytes="$(ready_bytes)"
        [ "$bytes" -ge $((200 * 1048576)) ] || fail "backlog only $bytes bytes"
        start=$SECONDS
        set_archive_command "$WALCTL archive-push --config $W/walctl.conf --set archive-async=$mode %p"
        wait_archived "$last" 120 || fail "async=$mode: archiver did not reach $last ($(last_archived))"
        echo "    async=$mode: $((bytes / 1048576)) MiB backlog over a 32 MiB limit archived in $((SECONDS - start)) s" >&2
    done
    ! grep -q "SAFETY VALVE" "$W/data.log" || fail "the valve fired on a healthy repository: $(grep -m3 "SAFETY VALVE" "$W/data.log")"
    assert_eq "$(ls "$W/data/walctl_spool/archive/skipped" 2>/dev/null | wc -l)" "0" "skip records"
    [ -z "$(repo_objects "$W" '\.skipped$')" ] || fail "skip markers in the repository"
    local metas; metas="$(repo_objects "$W" '/[0-9A-F]{24}\.meta$' | wc -l)"
    [ "$metas" -ge 26 ] || fail "only $metas segments stored"
}

test_valve_lets_go_when_the_repository_is_down() {
    ARCHIVE_CMD=/bin/false primary "archive-push-queue-max = 33554432" "archive-push-timeout = 5"
    local mode first last
    for mode in true false; do
        first="$(backlog_with_archiving_off 1)"; last="$(segments 3)"
        if [ $mode = true ]; then
            stat -c %a "$W/repo" > "$W/repo.mode"; chmod 000 "$W/repo"          # unreadable
        else
            mv "$W/repo" "$W/repo.away"                                        # moved away
        fi
        set_archive_command "$WALCTL archive-push --config $W/walctl.conf --set archive-async=$mode %p"
        # 64 MiB ready: the first two are let go (backlog over 32 MiB after their push failed).
        wait_archived "$first" 60 || fail "async=$mode: the valve did not let files go while the repository is down ($(last_archived))"
        [ -f "$W/data/walctl_spool/archive/skipped/$first.json" ] || fail "async=$mode: no skip record for $first"
        grep -q "SAFETY VALVE: $first reported as archived WITHOUT being stored" "$W/data.log" || fail "async=$mode: no SAFETY VALVE line for $first"
        grep -q "SAFETY VALVE: $first .*its push failed" "$W/data.log" || fail "async=$mode: the reason does not say its push failed"
        # Once the backlog is under the limit the rest waits (exit 1, PostgreSQL keeps it).
        sleep 3
        [ "$(last_archived)" \< "$last" ] || fail "async=$mode: files let go under the limit"
        set_archive_command "/bin/false"
        if [ $mode = true ]; then chmod "$(cat "$W/repo.mode")" "$W/repo"; rm -f "$W/repo.mode"; else mv "$W/repo.away" "$W/repo"; fi
        # The manual re-push the operator guide recommends stores it and settles the record.
        (cd "$W/data" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" --set archive-async=$mode "pg_wal/$first") \
            || fail "async=$mode: manual re-push of $first"
        [ -n "$(repo_objects "$W" "/$first\.meta\$")" ] || fail "async=$mode: $first not stored by the manual re-push"
        [ ! -e "$W/data/walctl_spool/archive/skipped/$first.json" ] || fail "async=$mode: the skip record of $first stayed after it was stored"
        set_archive_command "$WALCTL archive-push --config $W/walctl.conf --set archive-async=$mode %p"
        wait_archived "$last" 60 || fail "async=$mode: archiving did not resume"
        # The pusher exits when idle (else it would push the next round's backlog itself).
        wait_until 15 bash -c "! pgrep -f '[a]rchive-push-async-daemon --wal-dir $W/data/pg_wal'" || fail "the pusher did not exit"
    done
}

test_archive_mismatch_is_never_skipped() {
    primary "spool-path = SPOOL"
    sed -i "s|^spool-path = SPOOL|spool-path = $W/spool|" "$W/walctl.conf"
    sql "create table t(i int)"
    sql "select pg_switch_wal()" >/dev/null
    sql "insert into t values (1)" >/dev/null
    local seg; seg="$(sql "select pg_walfile_name(pg_switch_wal())")"
    wait_archived "$seg" || fail "archiving $seg"
    local meta before; meta="$(repo_objects "$W" "/$seg\.meta\$")"; before="$(repo_get "$W" "$meta" | md5sum)"
    # Another file under the archived name (one byte differs after the last record), marked ready.
    mkdir -p "$W/fake/archive_status"; cp "$W/data/pg_wal/$seg" "$W/fake/$seg"
    printf '\x42' | dd of="$W/fake/$seg" bs=1 seek=$((3 * 8192 + 100)) conv=notrunc 2>/dev/null
    touch "$W/fake/archive_status/$seg.ready"; chown -R postgres:postgres "$W/fake"
    local valve async out rc
    for valve in "" "--set archive-push-queue-max=1"; do
        for async in true false; do
            rc=0
            # shellcheck disable=SC2086
            out="$(cd "$W" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" $valve --set archive-async=$async --set archive-push-timeout=10 "fake/$seg" 2>&1)" || rc=$?
            assert_eq "$rc" "1" "exit code (valve '${valve:-off}', async $async): $out"
            echo "$out" | grep -q "archive-mismatch" || fail "not reported as an archive-mismatch (valve '${valve:-off}', async $async): $out"
            ! echo "$out" | grep -q "SAFETY VALVE" || fail "the valve let a mismatch go: $out"
        done
    done
    [ -z "$(ls "$W/spool/archive/skipped" 2>/dev/null)" ] || fail "skip records for a mismatch"
    assert_eq "$(repo_get "$W" "$meta" | md5sum)" "$before" "archived meta"
    grep -q "archive-mismatch" "$W/spool/archive/daemon.log" || fail "the pusher did not log the mismatch"
}

# ------------------------------------------------------------------------------ manual re-push

test_manual_repush_in_async_mode_pushes_directly() {
    primary "archive-async = true" "archive-push-timeout = 8"
    local seg; seg="$(segments 1)"
    wait_archived "$seg" || fail "archiving $seg"
    [ -f "$W/data/pg_wal/archive_status/$seg.done" ] || fail "$seg is not .done"
    # The repository lost it (as after a valve skip): the operator pushes it again by hand.
    local k; for k in $(repo_objects "$W" "/$seg\."); do rm -f "$W/repo/$k"; done
    local start=$SECONDS rc=0 out
    out="$(cd "$W/data" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "pg_wal/$seg" 2>&1)" || rc=$?
    assert_eq "$rc" "0" "manual re-push of a .done file ($out)"
    [ $((SECONDS - start)) -le 4 ] || fail "the manual re-push took $((SECONDS - start)) s"
    [ -n "$(repo_objects "$W" "/$seg\.meta\$")" ] || fail "$seg not stored again"
    # A file outside any archive_status, 50 times: pushed directly each time, no pusher started.
    mkdir -p "$W/loose"; cp "$W/data/pg_wal/$seg" "$W/loose/"; chown -R postgres:postgres "$W/loose"
    daemon_sampler 12 "archive-push-async-daemon --wal-dir $W/loose" > "$W/sampled" &
    local sampler=$! i
    for i in $(seq 1 50); do
        start=$SECONDS
        as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "$W/loose/$seg" 2>/dev/null || fail "call $i failed"
        [ $((SECONDS - start)) -le 3 ] || fail "call $i took $((SECONDS - start)) s (waited for a pusher?)"
    done
    wait $sampler
    assert_eq "$(cat "$W/sampled")" "0 0" "pushers started for a file outside archive_status (most at once, distinct)"
    ! ls /var/lib/postgresql/.local/state/walctl 2>/dev/null | grep -q '^spool-loose-' || fail "a spool was created for a manual push"
}

run_suite "$@"
