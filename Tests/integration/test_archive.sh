#!/usr/bin/env bash
# Foundation suite: a real PostgreSQL archives through `walctl archive-push`, and a real recovery
# restores every segment through `walctl archive-get`; bad input is refused. Runs per version in
# PG_VERSIONS (15 from Debian, 16 and 18 from the PyPI wheels).
source "$(dirname "$0")/lib.sh"

# archive_and_recover VERSION [initdb args]: the whole story on one server version.
archive_and_recover() {
    local v="$1"; shift
    require_pg "$v"
    local w port bin
    w="$(new_workdir)"; port="$(free_port)"; bin="$(pg_bin "$v")"
    write_config "$w"
    init_cluster "$v" "$w/data" "$@"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    configure_cluster "$w/data" "$port" "$w" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $w/walctl.conf %p'"
    pg_start "$v" "$w/data"

    psql_at "$v" "$w" "$port" "create table t(id int primary key, v text)"
    as_pg "$bin/pg_basebackup" -h "$w" -p "$port" -D "$w/backup" -X none -c fast -Fp --no-sync >/dev/null 2>&1 \
        || fail "pg_basebackup failed"
    # At least 10 segments through the real archiver after the backup.
    for i in $(seq 1 12); do
        psql_at "$v" "$w" "$port" "insert into t select g, md5(g::text) from generate_series(($i-1)*20000+1, $i*20000) g" >/dev/null
        psql_at "$v" "$w" "$port" "select pg_switch_wal()" >/dev/null
    done
    local expected last
    expected="$(psql_at "$v" "$w" "$port" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    psql_at "$v" "$w" "$port" "create table marker(x int)"   # so the final switch closes a non-empty segment
    last="$(psql_at "$v" "$w" "$port" "select pg_walfile_name(pg_switch_wal())")"
    wait_until 60 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $port -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver')\" \\> '$last' ] || [ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $port -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver')\" = '$last' ]" \
        || fail "archiver did not reach $last"
    local failed
    failed="$(psql_at "$v" "$w" "$port" "select failed_count from pg_stat_archiver")"
    assert_eq "$failed" "0" "archive failures"
    local n
    n="$(repo_objects "$w" '/[0-9A-F]{24}\.meta$' | wc -l)"
    [ "$n" -ge 10 ] || fail "only $n segments archived"
    pg_stop "$v" "$w/data" immediate   # the disaster

    # Recover into a new directory from the base backup plus the archive.
    as_pg cp -a "$w/backup" "$w/restored"
    chmod 700 "$w/restored"
    rm -f "$w/restored/postmaster.pid"
    local port2; port2="$(free_port)"
    configure_cluster "$w/restored" "$port2" "$w" "archive_mode = off" \
        "restore_command = '$WALCTL archive-get --config $w/walctl.conf %f %p'" "recovery_target_action = promote"
    as_pg touch "$w/restored/recovery.signal"
    pg_start "$v" "$w/restored"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "recovery did not finish"
    local got
    got="$(psql_at "$v" "$w" "$port2" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    assert_eq "$got" "$expected" "recovered table"
    grep -q "restored log file \"$last\" from archive" "$w/restored.log" || fail "segment $last was not restored through walctl"
    pg_stop "$v" "$w/restored"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
}

test_archive_and_recover_pg15() { archive_and_recover 15; }
test_archive_and_recover_pg16() { archive_and_recover 16; }
test_archive_and_recover_pg18() { archive_and_recover 18; }
test_archive_and_recover_pg15_64mb_segments() { archive_and_recover 15 --wal-segsize=64; }

# A cluster with archive_command pointing at walctl, but no server running: push/get by hand.
setup_idle_cluster() {
    W="$(new_workdir)"
    write_config "$W"
    init_cluster 15 "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    SEG="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    export WALCTL_CONFIG="$W/walctl.conf"
}

test_bad_input_is_refused() {
    require_pg 15
    setup_idle_cluster
    local out rc
    # Unknown names, paths in %f.
    for bad in "foo" "00000001000000000000000G" "../000000010000000000000001" "a/000000010000000000000001" "000000010000000000000001.zst"; do
        out="$("$WALCTL" archive-get "$bad" "$W/x" 2>&1)" && rc=0 || rc=$?
        [ $rc -ne 0 ] && [ $rc -ne 1 ] || fail "archive-get '$bad' exited $rc"
        echo "$out" | grep -q "invalid-name" || fail "archive-get '$bad' said: $out"
    done
    cp "$W/data/postgresql.conf" "$W/notwal"
    "$WALCTL" archive-push "$W/notwal" 2>/dev/null && fail "pushed a non-WAL name"
    # Wrong size.
    head -c 4096 "$W/data/pg_wal/$SEG" > "$W/$SEG"
    out="$("$WALCTL" archive-push "$W/$SEG" 2>&1)" && fail "pushed a short segment"
    echo "$out" | grep -q "16777216" || fail "wrong-size message: $out"
    # Right bytes under the wrong name.
    cp "$W/data/pg_wal/$SEG" "$W/0000000100000000000000AA"
    out="$("$WALCTL" archive-push "$W/0000000100000000000000AA" 2>&1)" && fail "pushed a misnamed segment"
    echo "$out" | grep -q "page address" || fail "misnamed message: $out"
    # A segment from another cluster.
    init_cluster 15 "$W/other"
    local oseg; oseg="$(ls "$W/other/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    out="$("$WALCTL" archive-push "$W/other/pg_wal/$oseg" 2>&1)" && fail "pushed a foreign segment"
    echo "$out" | grep -q "database system" || fail "foreign message: $out"
    [ -z "$(repo_objects "$W" '\.meta$')" ] || fail "something was stored"
    # Missing file.
    "$WALCTL" archive-push "$W/nope/$SEG" 2>/dev/null && fail "pushed a missing file"
    true
}

test_missing_object_exits_1_quickly() {
    require_pg 15
    setup_idle_cluster
    local start=$SECONDS rc out
    out="$("$WALCTL" archive-get 00000002.history "$W/data/pg_wal/RECOVERYHISTORY" 2>&1)" && rc=0 || rc=$?
    assert_eq "$rc" "1" "exit code for a missing file"
    assert_eq "$out" "" "output for a missing file"
    [ $((SECONDS - start)) -le 1 ] || fail "missing file took $((SECONDS - start)) s"
    [ ! -e "$W/data/pg_wal/RECOVERYHISTORY" ] || fail "target written for a missing file"
}

test_repush_identical_ok_and_different_refused() {
    require_pg 15
    setup_idle_cluster
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" || fail "first push"
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" 2>/dev/null || fail "identical re-push"
    local meta before
    meta="$(repo_objects "$W" "/$SEG\.meta$")"
    before="$(repo_get "$W" "$meta" | md5sum)"
    cp "$W/data/pg_wal/$SEG" "$W/$SEG"
    # Flip one byte well inside the segment (page 3): header still valid, content differs.
    printf '\x42' | dd of="$W/$SEG" bs=1 seek=$((3 * 8192 + 100)) conv=notrunc 2>/dev/null
    local out
    out="$("$WALCTL" archive-push "$W/$SEG" 2>&1)" && fail "overwrote with different content"
    echo "$out" | grep -q "archive-mismatch" || fail "mismatch message: $out"
    assert_eq "$(repo_get "$W" "$meta" | md5sum)" "$before" "meta changed"
    "$WALCTL" archive-get "$SEG" "$W/back" || fail "get after refused overwrite"
    cmp -s "$W/back" "$W/data/pg_wal/$SEG" || fail "archived copy changed"
}

test_corrupt_object_is_never_restored() {
    require_pg 15
    setup_idle_cluster
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" || fail "push"
    local obj; obj="$(repo_objects "$W" "/$SEG\.[0-9a-f]{8}\.zst$")"
    [ -n "$obj" ] || fail "no object for $SEG"
    repo_damage "$W" "$obj" flip   # the middle of the compressed object
    local rc out
    out="$("$WALCTL" archive-get "$SEG" "$W/restored" 2>&1)" && rc=0 || rc=$?
    [ $rc -gt 125 ] || fail "corrupt object exit code $rc (must be > 125 so PostgreSQL aborts recovery)"
    echo "$out" | grep -q -E "object-corrupt|checksum-mismatch" || fail "corrupt message: $out"
    [ ! -e "$W/restored" ] || fail "a corrupt file was written to the target"
    ls -a "$W" | grep -q "walctl-tmp" && fail "temporary file left behind"
    # With archive-get-on-error = not-found (standby), the same failure exits 1.
    rc=0; WALCTL_ARCHIVE_GET_ON_ERROR=not-found "$WALCTL" archive-get "$SEG" "$W/restored" 2>/dev/null || rc=$?
    assert_eq "$rc" "1" "standby-mode exit code"
}

test_truncated_object_is_never_restored() {
    require_pg 15
    setup_idle_cluster
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" || fail "push"
    local obj; obj="$(repo_objects "$W" "/$SEG\.[0-9a-f]{8}\.zst$")"
    repo_damage "$W" "$obj" truncate
    "$WALCTL" archive-get "$SEG" "$W/restored" 2>/dev/null && fail "truncated object restored"
    [ ! -e "$W/restored" ] || fail "a truncated file was written"
}

test_unwritable_target() {
    require_pg 15
    setup_idle_cluster
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" || fail "push"
    local rc out
    out="$("$WALCTL" archive-get "$SEG" /proc/walctl-cannot-write 2>&1)" && rc=0 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 1 ] || fail "unwritable target exit code $rc"
    echo "$out" | grep -q "cannot create" || fail "unwritable message: $out"
}

test_gzip_and_none_codecs_are_standard() {
    require_pg 15
    setup_idle_cluster
    local segs; segs=($(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$'))
    WALCTL_COMPRESS_TYPE=gzip "$WALCTL" archive-push "$W/data/pg_wal/$SEG" || fail "gzip push"
    local obj; obj="$(repo_objects "$W" "/$SEG\.[0-9a-f]{8}\.gz$")"
    [ -n "$obj" ] || fail "no .gz object"
    repo_get "$W" "$obj" | gunzip -c | cmp -s - "$W/data/pg_wal/$SEG" || fail "gunzip does not give the original"
    "$WALCTL" archive-get "$SEG" "$W/back" && cmp -s "$W/back" "$W/data/pg_wal/$SEG" || fail "gzip round trip"
}

test_config_precedence() {
    local w; w="$(new_workdir)"
    printf 'repository = file:///from-file\ncompress-type = gzip\n' > "$w/c.conf"
    local out
    out="$("$WALCTL" config --config "$w/c.conf")"
    echo "$out" | grep -q "^repository = file:///from-file" || fail "file value: $out"
    out="$(WALCTL_REPOSITORY=file:///from-env "$WALCTL" config --config "$w/c.conf")"
    echo "$out" | grep -q "^repository = file:///from-env" || fail "env over file: $out"
    out="$(WALCTL_REPOSITORY=file:///from-env "$WALCTL" config --config "$w/c.conf" --repository file:///from-flag)"
    echo "$out" | grep -q "^repository = file:///from-flag" || fail "flag over env: $out"
    out="$(WALCTL_CONFIG="$w/c.conf" "$WALCTL" config)"
    echo "$out" | grep -q "^compress-type = gzip" || fail "WALCTL_CONFIG: $out"
    printf 'repositry = x\n' > "$w/typo.conf"
    out="$("$WALCTL" config --config "$w/typo.conf" 2>&1)" && fail "typo accepted"
    echo "$out" | grep -q "unknown setting 'repositry'" || fail "typo message: $out"
    out="$(WALCTL_S3_KEY_SECRET=supersecret "$WALCTL" config --config "$w/c.conf")"
    echo "$out" | grep -q supersecret && fail "secret printed"
    rm -rf "$w"
}

run_suite "$@"
