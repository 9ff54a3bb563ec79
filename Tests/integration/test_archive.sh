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
    # Real WAL through the real archiver (segments closed by pg_switch_wal, records crossing
    # segments) is never reported as damaged.
    if grep -q "DAMAGED WAL" "$w/data.log"; then fail "sound WAL reported damaged: $(grep "DAMAGED WAL" "$w/data.log" | head -3)"; fi
    local n
    n="$(repo_objects "$w" '/[0-9A-F]{24}\.meta$' | wc -l)"
    [ "$n" -ge 10 ] || fail "only $n segments archived"
    pg_stop "$v" "$w/data" immediate   # the disaster

    # Recover into a new directory from the base backup plus the archive.
    as_pg cp -a "$w/backup" "$w/restored"
    chmod 700 "$w/restored"
    rm -f "$w/restored/postmaster.pid"
    local port2; port2="$(free_port)"
    configure_cluster "$w/restored" "$port2" "$w" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $w/walctl.conf %p'" \
        "restore_command = '$WALCTL archive-get --config $w/walctl.conf %f %p'" "recovery_target_action = promote"
    as_pg touch "$w/restored/recovery.signal"
    pg_start "$v" "$w/restored"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $bin/psql -X -h $w -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "recovery did not finish"
    local got
    got="$(psql_at "$v" "$w" "$port2" "select count(*) || ':' || md5(string_agg(v, ',' order by id)) from t")"
    assert_eq "$got" "$expected" "recovered table"
    grep -q "restored log file \"$last\" from archive" "$w/restored.log" || fail "segment $last was not restored through walctl"
    # The promoted server archives its new timeline into the same repository: the real history file
    # passes validation, and the segments of timeline 2 are not reported damaged.
    psql_at "$v" "$w" "$port2" "create table after_promotion(x int)"
    local l2; l2="$(psql_at "$v" "$w" "$port2" "select pg_walfile_name(pg_switch_wal())")"
    wait_until 60 bash -c "a=\$(runuser -u postgres -- $bin/psql -X -h $w -p $port2 -d postgres -qAt -c 'select coalesce(last_archived_wal, 0::text) from pg_stat_archiver'); [ \"\$a\" = '$l2' ] || [ \"\$a\" \\> '$l2' ]" \
        || fail "promoted server did not archive $l2"
    assert_eq "$(psql_at "$v" "$w" "$port2" "select failed_count from pg_stat_archiver")" "0" "archive failures after promotion"
    [ -n "$(repo_objects "$w" '/00000002\.history\.meta$')" ] || fail "00000002.history not archived"
    [ -n "$(repo_objects "$w" "/$l2\.meta$")" ] || fail "$l2 not archived"
    if grep -q "DAMAGED WAL" "$w/restored.log"; then fail "sound WAL of the new timeline reported damaged: $(grep "DAMAGED WAL" "$w/restored.log" | head -3)"; fi
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

# --- Issue 12: what archive-push is handed is checked (trust-push) ---

# meta_field DIR NAME FIELD: a field of NAME's meta summary ("None" when absent).
meta_field() {
    local meta; meta="$(repo_objects "$1" "/$2\.meta$")"
    [ -n "$meta" ] || { echo "no-meta"; return; }
    repo_get "$1" "$meta" | python3 -c "import json,sys; print((json.load(sys.stdin).get('summary') or {}).get(sys.argv[1]))" "$3"
}

# wal_server: a PostgreSQL 15 server that keeps its WAL (archive_command = true, wal_keep_size) with
# at least segments 2..6 written by inserts and segment 6 closed by pg_switch_wal(). Sets W, P, B,
# WALCTL_CONFIG (a repository bound to it). The caller stops it with pg_stop 15 "$W/data".
wal_server() {
    W="$(new_workdir)"; P="$(free_port)"; B="$(pg_bin 15)"
    write_config "$W"
    init_cluster 15 "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$P" "$W" "archive_mode = on" "archive_command = 'true'" "wal_keep_size = '1GB'"
    pg_start 15 "$W/data"
    export WALCTL_CONFIG="$W/walctl.conf"
    psql_at 15 "$W" "$P" "create table t(id int, v text)"
    while [ "$(psql_at 15 "$W" "$P" "select pg_walfile_name(pg_current_wal_insert_lsn())")" \< 000000010000000000000006 ]; do
        psql_at 15 "$W" "$P" "insert into t select g, md5(g::text) from generate_series(1, 100000) g" >/dev/null
    done
    psql_at 15 "$W" "$P" "insert into t values (0, 'last')" >/dev/null
    SWITCHED="$(psql_at 15 "$W" "$P" "select pg_walfile_name(pg_switch_wal())")"
    mkdir -p "$W/in"
}

test_damaged_wal_is_archived_with_a_warning() {
    require_pg 15
    wal_server
    local s out rc
    # Sound segments: ending in a switch record (zeroed after it), or with a record continued in the
    # next segment: no warning, nothing recorded.
    for s in 000000010000000000000003 000000010000000000000004 "$SWITCHED"; do
        cp "$W/data/pg_wal/$s" "$W/in/$s"
        out="$("$WALCTL" archive-push "$W/in/$s" 2>&1)" || fail "push of sound $s: $out"
        echo "$out" | grep -q "DAMAGED" && fail "sound segment $s reported damaged: $out"
        assert_eq "$(meta_field "$W" "$s" damagedAt)" "None" "damagedAt of sound $s"
    done
    assert_eq "$(meta_field "$W" "$SWITCHED" endsWithSwitch)" "True" "the switch segment ends with a switch"
    [ "$(meta_field "$W" 000000010000000000000003 continuesIntoNext)" = True ] || [ "$(meta_field "$W" 000000010000000000000004 continuesIntoNext)" = True ] \
        || fail "neither segment 3 nor 4 ends inside a record continued in the next"
    # Flipped bytes inside the records of segment 5 (8 bytes: more than alignment padding can hold);
    # segment 2 keeps its first page, then random bytes.
    cp "$W/data/pg_wal/000000010000000000000005" "$W/in/"
    printf '\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a' | dd of="$W/in/000000010000000000000005" bs=1 seek=$((5 * 1048576 + 3001)) conv=notrunc 2>/dev/null
    cp "$W/data/pg_wal/000000010000000000000002" "$W/in/"
    head -c $((16 * 1048576 - 8192)) /dev/urandom | dd of="$W/in/000000010000000000000002" bs=8192 seek=1 conv=notrunc 2>/dev/null
    pg_stop 15 "$W/data"
    for s in 000000010000000000000005 000000010000000000000002; do
        # PostgreSQL's own reader stops inside the segment: the damage is real.
        out="$("$B/pg_waldump" -p "$W/in" "$s" 2>&1 >/dev/null || true)"
        echo "$out" | grep -q "error in WAL record" || fail "pg_waldump reads damaged $s: $out"
        out="$("$WALCTL" archive-push "$W/in/$s" 2>&1)" && rc=0 || rc=$?
        assert_eq "$rc" "0" "exit code for damaged $s (stored anyway)"
        local at; at="$(meta_field "$W" "$s" damagedAt)"
        [ "$at" != None ] && [ "$at" != no-meta ] || fail "meta of $s does not record the damage"
        echo "$out" | grep -q "WARNING: DAMAGED WAL in $s .* at $at" || fail "no DAMAGED WAL warning naming $at for $s: $out"
        "$WALCTL" archive-get "$s" "$W/back" && cmp -s "$W/back" "$W/in/$s" || fail "damaged $s not stored as it is"
        rm -f "$W/back"
    done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# The asynchronous path: the pusher logs the warning, and the foreground puts it in PostgreSQL's log.
test_damaged_wal_async_push_warns() {
    require_pg 15
    setup_idle_cluster
    mkdir -p "$W/a/pg_wal/archive_status"
    cp "$W/data/pg_wal/$SEG" "$W/a/pg_wal/$SEG"
    printf '\xa5\x5a\xa5\x5a\xa5\x5a\xa5\x5a' | dd of="$W/a/pg_wal/$SEG" bs=1 seek=$((1048576 + 4001)) conv=notrunc 2>/dev/null
    touch "$W/a/pg_wal/archive_status/$SEG.ready"
    # As the archiver runs it: the postgres user, in its own tree (walctl refuses a spool whose
    # parents another user owns, issue 13).
    chown -R postgres:postgres "$W/a"
    local out rc
    out="$(as_pg env WALCTL_ARCHIVE_ASYNC=true "$WALCTL" archive-push "$W/a/pg_wal/$SEG" 2>&1)" && rc=0 || rc=$?
    assert_eq "$rc" "0" "async push of a damaged segment"
    echo "$out" | grep -q "WARNING: DAMAGED WAL in $SEG" || fail "async foreground did not warn: $out"
    wait_until 10 grep -q "WARNING: DAMAGED WAL in $SEG" "$W/a/walctl_spool/archive/daemon.log" || fail "daemon.log has no warning"
    [ "$(meta_field "$W" "$SEG" damagedAt)" != None ] || fail "async meta does not record the damage"
}

test_special_files_are_refused_at_once() {
    require_pg 15
    setup_idle_cluster
    mkdir -p "$W/sp/archive_status"
    mkfifo "$W/sp/000000010000000000000009"
    mkdir "$W/sp/00000001000000000000000A"
    ln -s /dev/zero "$W/sp/00000001000000000000000B"
    python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$W/sp/00000001000000000000000C"
    local f out rc start mode
    for mode in sync async; do
        for f in 09 0A 0B 0C; do
            start=$SECONDS
            out="$(WALCTL_ARCHIVE_ASYNC=$([ $mode = async ] && echo true || echo false) timeout 20 "$WALCTL" archive-push "$W/sp/0000000100000000000000$f" 2>&1)" && rc=0 || rc=$?
            [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$mode push of special file $f exited $rc"
            [ $((SECONDS - start)) -le 2 ] || fail "$mode push of special file $f took $((SECONDS - start)) s"
            echo "$out" | grep -q "invalid-wal.*not a regular file" || fail "$mode message for $f: $out"
        done
    done
    # The segment itself may be a symlink to a regular file (and pg_wal a symlink to a directory).
    ln -s "$W/data/pg_wal" "$W/linked"
    "$WALCTL" archive-push "$W/linked/$SEG" 2>/dev/null || fail "push through a symlinked pg_wal"
    [ -z "$(repo_objects "$W" '0000000100000000000000(09|0A|0B|0C)')" ] || fail "a special file was stored"
}

test_history_files_are_validated() {
    require_pg 15
    setup_idle_cluster
    mkdir -p "$W/h"
    local out
    refuse() {   # refuse NAME CONTENT WHY
        printf "$2" > "$W/h/$1"
        out="$("$WALCTL" archive-push "$W/h/$1" 2>&1)" && fail "$1 ($3) was archived"
        echo "$out" | grep -q "invalid-wal" || fail "$1 ($3): $out"
        [ -z "$(repo_objects "$W" "/$1\.meta$")" ] || fail "$1 ($3) stored"
    }
    refuse 00000001.history '1\t0/3000000\tno recovery target specified\n' "timeline 1"
    refuse 00000002.history '' "empty"
    refuse 00000002.history '# only a comment\n\n' "no ancestor line"
    refuse 00000003.history '1\t0/3000000\tx\n2\t0/5000000\ty\n' "parent 2 not archived"
    refuse 00000002.history '2\t0/3000000\tx\n' "parent not below the timeline"
    printf '1\t0/3000000\tno recovery target specified\n' > "$W/h/00000002.history"
    "$WALCTL" archive-push "$W/h/00000002.history" || fail "a valid history file was refused"
    refuse 00000004.history '1\t0/5000000\tx\n2\t0/3000000\ty\n' "switch points not increasing"
    refuse 00000004.history '2\t0/3000000\tx\n1\t0/5000000\ty\n' "parents not increasing"
    printf '1\t0/3000000\tx\n2\t0/5000000\ty\n' > "$W/h/00000003.history"
    "$WALCTL" archive-push "$W/h/00000003.history" || fail "history with an archived parent refused"
    # A parent missing from the repository but beside the file (pg_wal keeps every history file) is
    # archived first.
    mkdir -p "$W/h2"
    printf '1\t0/3000000\tx\n2\t0/5000000\ty\n3\t0/7000000\tz\n' > "$W/h2/00000004.history"
    printf '1\t0/3000000\tx\n2\t0/5000000\ty\n3\t0/7000000\tz\n4\t0/9000000\tw\n' > "$W/h2/00000005.history"
    out="$("$WALCTL" archive-push "$W/h2/00000005.history" 2>&1)" || fail "parent beside the file not archived first: $out"
    [ -n "$(repo_objects "$W" '/00000004\.history\.meta$')" ] || fail "00000004.history was not archived"
}

test_backup_history_file_must_match_its_name() {
    require_pg 15
    wal_server
    as_pg "$B/pg_basebackup" -h "$W" -p "$P" -D "$W/bb" -X none -c fast -Fp --no-sync >/dev/null 2>&1 || fail "pg_basebackup"
    local f; f="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$' | tail -1)"
    [ -n "$f" ] || fail "no backup history file in pg_wal"
    cp "$W/data/pg_wal/$f" "$W/in/$f"
    pg_stop 15 "$W/data"
    local seg="${f:0:24}" off="${f:25:8}" out
    # Another offset, another segment, another timeline: the content does not match the name.
    for wrong in "$seg.$(printf '%08X' $((16#$off + 8))).backup" \
                 "${seg:0:16}$(printf '%08X' $((16#${seg:16:8} + 1))).$off.backup" \
                 "00000002${seg:8:16}.$off.backup"; do
        cp "$W/in/$f" "$W/in/$wrong"
        out="$("$WALCTL" archive-push "$W/in/$wrong" 2>&1)" && fail "$wrong archived with the content of $f"
        echo "$out" | grep -q "invalid-wal.*does not match its name" || fail "$wrong: $out"
    done
    "$WALCTL" archive-push "$W/in/$f" || fail "the real $f was refused"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_repush_heals_a_missing_object() {
    require_pg 15
    setup_idle_cluster
    "$WALCTL" archive-push "$W/data/pg_wal/$SEG" 2>/dev/null || fail "first push"
    local obj; obj="$(repo_objects "$W" "/$SEG\.[0-9a-f]{8}\.zst$")"
    [ -n "$obj" ] || fail "no object"
    repo_delete "$W" "$obj"
    local out rc
    out="$("$WALCTL" archive-push "$W/data/pg_wal/$SEG" 2>&1)" && rc=0 || rc=$?
    assert_eq "$rc" "0" "re-push with the data object missing"
    echo "$out" | grep -q "missing from the repository: stored it again" || fail "heal message: $out"
    assert_eq "$(repo_objects "$W" "/$SEG\.[0-9a-f]{8}\.zst$")" "$obj" "object stored again under its key"
    "$WALCTL" archive-get "$SEG" "$W/back" && cmp -s "$W/back" "$W/data/pg_wal/$SEG" || fail "healed object does not restore"
    # A different file under the name is still refused (no healing with other bytes).
    repo_delete "$W" "$obj"
    cp "$W/data/pg_wal/$SEG" "$W/other"; mkdir -p "$W/o"; mv "$W/other" "$W/o/$SEG"
    printf '\x42' | dd of="$W/o/$SEG" bs=1 seek=$((3 * 8192 + 100)) conv=notrunc 2>/dev/null
    out="$("$WALCTL" archive-push "$W/o/$SEG" 2>&1)" && fail "healed with different bytes"
    echo "$out" | grep -q "archive-mismatch" || fail "mismatch message: $out"
}

if [ "$WALCTL_TEST_REPO" != s3 ]; then
# Leftovers of interrupted writes (file repository; S3 has no equivalent objects, see the operator guide).
# A kill -9 in the middle of an archive-get leaves its temporary file beside %p (16 MiB in pg_wal,
# which nothing else removes). The next "not found" (the end of the archive, a history probe)
# removes those of writers that are gone; a hit does not look, a live writer's file stays.
test_killed_get_leftovers_in_pg_wal_are_removed_at_the_end_of_the_archive() {
    require_pg 15
    setup_idle_cluster
    local seg wal="$W/data/pg_wal"; seg="$(ls "$wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    "$WALCTL" archive-push "$wal/$seg" || fail "push"
    local gone; sh -c 'exit 0' & gone=$!; wait "$gone"
    local dead="$wal/.RECOVERYXLOG.tmp.$gone.00112233aabbccdd" live="$wal/.RECOVERYXLOG.tmp.$$.00112233aabbccdd"
    head -c 16777216 /dev/zero > "$dead"; head -c 100 /dev/zero > "$live"
    touch -d '1 minute ago' "$dead" "$live"
    "$WALCTL" archive-get "$seg" "$wal/RECOVERYXLOG" || fail "get of an archived segment"
    [ -e "$dead" ] || fail "a hit removed the leftover (only a miss looks)"
    local rc=0; "$WALCTL" archive-get 0000000100000000000000FE "$wal/RECOVERYXLOG" || rc=$?
    assert_eq "$rc" "1" "exit code of the end of the archive"
    [ ! -e "$dead" ] || fail "the killed writer's leftover is still in pg_wal: $(ls -a "$wal")"
    [ -e "$live" ] || fail "the leftover of a running process was removed"
    [ -e "$wal/$seg" ] && [ -e "$wal/RECOVERYXLOG" ] || fail "something else in pg_wal was removed"
}

test_leftover_temp_objects_are_swept() {
    require_pg 15
    setup_idle_cluster
    # A cluster whose WAL starts at segment 0x10 (a multiple of 16: that push sweeps).
    as_pg "$(pg_bin 15)/pg_resetwal" -l 000000010000000000000010 -D "$W/data" >/dev/null 2>&1 || fail "pg_resetwal"
    local dir="$W/repo/wal/0000000100000000" seg=000000010000000000000010
    mkdir -p "$dir"
    # What a push killed between fsync and link leaves: hidden temporary objects.
    head -c 1000000 /dev/urandom > "$dir/.$seg.5f3e2a10.zst.tmp.4242.k3j2"
    head -c 100 /dev/urandom > "$dir/.$seg.meta.tmp.4242.a1b2"
    head -c 100 /dev/urandom > "$dir/.000000010000000000000011.meta.tmp.4243.zz"
    touch -d '2 hours ago' "$dir/.$seg.5f3e2a10.zst.tmp.4242.k3j2" "$dir/.$seg.meta.tmp.4242.a1b2"
    head -c 100 /dev/urandom > "$dir/.not-a-temp-object"; touch -d '2 hours ago' "$dir/.not-a-temp-object"
    local out
    out="$("$WALCTL" archive-push "$W/data/pg_wal/$seg" 2>&1)" || fail "push: $out"
    [ ! -e "$dir/.$seg.5f3e2a10.zst.tmp.4242.k3j2" ] && [ ! -e "$dir/.$seg.meta.tmp.4242.a1b2" ] || fail "old leftovers not removed: $(ls -a "$dir")"
    [ -e "$dir/.000000010000000000000011.meta.tmp.4243.zz" ] || fail "a young temporary object (a push in progress) was removed"
    [ -e "$dir/.not-a-temp-object" ] || fail "a file that is no temporary object was removed"
    echo "$out" | grep -q "removed 2 temporary object(s) older than an hour" || fail "sweep not logged: $out"
}
fi

# init on a data directory whose pg_wal holds no segment (a base backup restored without WAL).
test_init_reads_segment_size_from_pg_control() {
    local v w
    for v in $PG_VERSIONS; do
        require_pg "$v"
        w="$(new_workdir)"
        write_config "$w"
        init_cluster "$v" "$w/data" --wal-segsize=32
        local want; want="$(as_pg "$(pg_bin "$v")/pg_controldata" "$w/data" | awk -F: '/Bytes per WAL segment/ {gsub(/ /, "", $2); print $2}')"
        assert_eq "$want" "33554432" "pg_controldata of PostgreSQL $v"
        find "$w/data/pg_wal" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}' -delete
        local out; out="$(as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" 2>&1)" || fail "init on PostgreSQL $v without segments: $out"
        echo "$out" | grep -q "32 MiB segments" || fail "init on PostgreSQL $v: $out"
        [ -n "${KEEP_TMP:-}" ] || rm -rf "$w"
    done
}

run_suite "$@"
