#!/usr/bin/env bash
# Issue 19: consecutive recoveries to the end of a ~60-segment archive through the restore_command
# `walctl recover` writes (walctl-fast, restore-prefetch=8, recovery_end_command = walctl archive-get
# --cleanup), file repository and S3 (moto). The prefetcher stops at the end of its planned range
# and on the stop request of the call that finds the end of the archive, while PostgreSQL asks for
# that missing segment again: every recovery must reach the end and promote, with every row.
#
#   RACE_RUNS=3 (recoveries per repository), RACE_SEGMENTS=60, RACE_SEG_MB=16 (wal_segment_size)
#   Benchmarks/recover-race.sh runs this with RACE_RUNS=50 and tallies the outcomes.
source "$(dirname "$0")/lib.sh"

V="${RACE_PG_VERSION:-15}"
RUNS="${RACE_RUNS:-3}"
SEGMENTS="${RACE_SEGMENTS:-60}"
SEG_MB="${RACE_SEG_MB:-16}"

race_cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    local d; for d in "$W"/data "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}

# recoveries KIND: a source cluster archiving ~SEGMENTS segments after a base backup, then RUNS
# recoveries with --latest, each into a fresh directory. One line per run:
#   race run I/N KIND: promoted in S s (K segments restored)     or     race run I/N KIND: FAILED ...
recoveries() {
    local kind="$1"
    require_pg "$V"
    [ -x "$(dirname "$WALCTL")/walctl-fast" ] || fail "walctl-fast is not built next to $WALCTL"
    W="$(new_workdir)"; local port bin; port="$(free_port)"; bin="$(pg_bin "$V")"
    write_config "$W"
    init_cluster "$V" "$W/data" --wal-segsize="$SEG_MB"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || fail "walctl init"
    configure_cluster "$W/data" "$port" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'" "log_timezone = 'UTC'"
    pg_start "$V" "$W/data"
    psql_at "$V" "$W" "$port" "create table t(id int primary key, v text)"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label race --dbname "host=$W port=$port user=postgres dbname=postgres" >/dev/null 2>"$W/backup.err" \
        || fail "walctl backup take"
    as_pg "$WALCTL" catalog rebuild --config "$W/walctl.conf" >/dev/null || fail "catalog rebuild"
    local i sqlf="$W/fill.sql"
    for i in $(seq 1 "$SEGMENTS"); do
        echo "insert into t select g, md5(g::text) from generate_series(($i-1)*500+1, $i*500) g; select pg_switch_wal();"
    done > "$sqlf"
    chown postgres "$sqlf"
    as_pg "$bin/psql" -X -h "$W" -p "$port" -d postgres -qAt -v ON_ERROR_STOP=1 -f "$sqlf" >/dev/null || fail "filling WAL"
    local expected last
    expected="$(psql_at "$V" "$W" "$port" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    # The archive ends as pgbench WAL does, not on a switch: a transaction writes ~2.5 segments and
    # stays uncommitted in what is not archived, so the last archived segment ends inside a record
    # that continues in the first missing one (PostgreSQL then asks for that one more than once).
    psql_at "$V" "$W" "$port" "create table filler(id int, v text)"
    psql_at "$V" "$W" "$port" "begin; insert into filler select g, repeat(md5(g::text), 4) from generate_series(1, $((SEG_MB * 15000))) g; select pg_sleep(0.1); commit" >/dev/null
    last="$(psql_at "$V" "$W" "$port" "select pg_walfile_name(pg_current_wal_insert_lsn())")"
    last="$(printf '%s%08X' "${last:0:16}" $(( 16#${last:16:8} - 1 )))"
    wait_until 300 bash -c "a=\$(runuser -u postgres -- $bin/psql -X -h $W -p $port -d postgres -qAt -c 'select coalesce(last_archived_wal, \$\$\$\$) from pg_stat_archiver'); [ \"\$a\" = '$last' ] || [ \"\$a\" \\> '$last' ]" \
        || fail "archiver did not reach $last"
    pg_stop "$V" "$W/data" immediate
    echo "    $kind: source archived up to $last (${SEG_MB} MiB segments), $RUNS recoveries"

    local ok=0 bad=0 run
    for run in $(seq 1 "$RUNS"); do
        local rec="$W/rec$run" p2 start reason="" n
        p2="$(free_port)"
        if ! as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$rec" --latest >"$rec.out" 2>"$rec.err"; then
            reason="recover refused: $(tail -1 "$rec.err")"
        else
            grep -qE "restore_command = '/[^ ]*/walctl-fast archive-get .*--set restore-prefetch=8 %f %p'" "$rec/postgresql.auto.conf" \
                || reason="restore_command is not walctl-fast with restore-prefetch=8"
            grep -qE "recovery_end_command = '/[^ ]*/walctl archive-get --cleanup'" "$rec/postgresql.auto.conf" \
                || reason="no recovery_end_command"
        fi
        if [ -z "$reason" ]; then
            start=$SECONDS
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin runuser -u postgres -- "$bin/pg_ctl" -D "$rec" -l "$rec.log" \
                -o "-p $p2 -c archive_mode=off ${RACE_PG_OPTS:-}" -w -t 300 start >/dev/null 2>&1 || true
            if ! wait_until 300 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $W -p $p2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]"; then
                reason="did not promote: $(grep -E 'FATAL|PANIC|error' "$rec.log" | head -3 | tr '\n' ' ')"
            elif [ "$(psql_at "$V" "$W" "$p2" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")" != "$expected" ]; then
                reason="promoted without every row"
            elif grep -qE "FATAL|PANIC|walctl: error" "$rec.log"; then
                reason="error in the server log: $(grep -E 'FATAL|PANIC|walctl: error' "$rec.log" | head -2 | tr '\n' ' ')"
            elif ! wait_until 15 bash -c "[ ! -e '$rec/pg_wal/walctl_prefetch' ]"; then
                reason="the prefetch spool stayed in pg_wal: $(ls "$rec/pg_wal/walctl_prefetch" 2>&1 | tr '\n' ' ')"
            fi
        fi
        n="$(grep -c "restored log file" "$rec.log" 2>/dev/null || true)"
        if [ -z "$reason" ]; then
            ok=$((ok + 1)); echo "    race run $run/$RUNS $kind: promoted in $((SECONDS - start)) s ($n segments restored)"
        else
            bad=$((bad + 1)); echo "    race run $run/$RUNS $kind: FAILED: $reason"
            [ -n "${KEEP_TMP:-}" ] && echo "    (kept $rec, $rec.log)"
        fi
        pg_stop "$V" "$rec" immediate
        [ -n "${KEEP_TMP:-}" ] || rm -rf "$rec" "$rec.out" "$rec.err"
    done
    echo "    race outcomes $kind: $ok promoted, $bad failed of $RUNS"
    [ "$bad" -eq 0 ] || fail "$bad of $RUNS recoveries failed"
}

# fsync_calls ARGS...: how many fsync/fdatasync calls `walctl archive-get ARGS` makes (strace).
fsync_calls() {
    strace -f -qq -e trace=fsync,fdatasync -o "$W/strace.out" "$WALCTL" archive-get --config "$W/walctl.conf" "$@" >/dev/null 2>&1 \
        || { fail "archive-get $* failed under strace"; return 1; }
    grep -cE 'fsync|fdatasync' "$W/strace.out" || true
}

test_recover_race_file() {
    trap race_cleanup EXIT
    WALCTL_TEST_REPO=file recoveries file
    # archive-get-fsync (docs/recovery.md): off by default, PostgreSQL fsyncs what it keeps.
    command -v strace >/dev/null || fail "strace is not installed (scripts/install-deps.sh)"
    local seg; seg="$(ls "$W/repo/wal/0000000100000000" | grep -E '^[0-9A-F]{24}\.meta$' | sort | tail -1)"; seg="${seg%.meta}"
    rm -f "$W/got"; assert_eq "$(fsync_calls "$seg" "$W/got")" "0" "fsyncs of a default archive-get"
    [ -s "$W/got" ] || fail "archive-get did not restore $seg"
    rm -f "$W/got"; [ "$(fsync_calls --set archive-get-fsync=true "$seg" "$W/got")" -ge 1 ] || fail "archive-get-fsync=true did not fsync"
    rm -f "$W/got"; assert_eq "$(fsync_calls --set archive-get-fsync=false "$seg" "$W/got")" "0" "fsyncs with archive-get-fsync=false"
}

test_recover_race_s3() {
    WALCTL_TEST_REPO=s3
    start_moto || fail "moto_server did not start"
    trap 'race_cleanup; stop_moto' EXIT
    recoveries s3
}

run_suite "$@"
