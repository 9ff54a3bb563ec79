#!/usr/bin/env bash
# Base backup suite (issue 6): `walctl backup` of a real PostgreSQL while pgbench writes, with walctl
# as archive_command; `walctl restore-backup` into a new directory; `pg_verifybackup` on the result
# (without and with the archived WAL); PostgreSQL started on it with `walctl archive-get` as
# restore_command reaches the same table checksum as the source at a known point. Also: a killed
# backup (SIGKILL while streaming, and while waiting for WAL) is never listed nor restorable; a
# repository bound to another cluster is refused; a non-empty target is refused without --force.
# On S3 (WALCTL_TEST_REPO=s3, see test_backup_s3.sh) the base archive must be a multipart upload.
# Runs per version: test_backup_restore_pg15 / pg16 / pg18 (16 and 18 compress in walctl: the
# PyPI builds lack zstd).
source "$(dirname "$0")/lib.sh"

# Scale of the pgbench database on 15: its base.tar.zst must exceed the 16 MiB S3 part size.
BACKUP_TEST_SCALE="${BACKUP_TEST_SCALE:-12}"

# start_source VERSION [extra settings...]: W, PORT, BIN, CONN set; a running cluster archiving via walctl.
start_source() {
    local v="$1"; shift
    require_pg "$v"
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin "$v")"
    CONN="host=$W port=$PORT user=postgres dbname=postgres"
    # Each test runs in its own subshell: a failing one still stops every server it started.
    trap 'for d in "$W/data" "$W/restored" "$W/other/data"; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done' EXIT
    write_config "$W" "archive-check-timeout = 60"
    init_cluster "$v" "$W/data" --data-checksums
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    local extra=() l
    for l in "$@"; do extra+=("${l//@W@/$W}"); done
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" "${extra[@]}"
    if ! grep -q '^archive_command' "$W/data/postgresql.conf"; then
        echo "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" >> "$W/data/postgresql.conf"
    fi
    pg_start "$v" "$W/data"
}

sql() { psql_at "$V" "$W" "$PORT" "$@"; }
wc_() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }

# checksum of the pgbench tables and the marker table.
table_checksum() {
    local port="$1"
    psql_at "$V" "$W" "$port" "select (select count(*) || ':' || sum(abalance) || ':' || md5(string_agg(aid || '/' || abalance, ',' order by aid)) from pgbench_accounts)
        || '|' || (select count(*) || ':' || coalesce(sum(delta), 0) from pgbench_history)
        || '|' || (select md5(string_agg(v, ',' order by id)) from known)"
}

# wait_archived SEGMENT: until pg_stat_archiver's last archived WAL is SEGMENT or later.
wait_archived() {
    local seg="$1"
    wait_until 90 bash -c "a=\$(runuser -u postgres -- $BIN/psql -X -h $W -p $PORT -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver'); [ \"\$a\" = '$seg' ] || [ \"\$a\" \\> '$seg' ]"
}

# backup_restore VERSION SCALE: the whole story on one server version.
backup_restore() {
    V="$1"; local scale="$2"
    start_source "$V"
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s "$scale" -q postgres >/dev/null 2>&1 || fail "pgbench -i failed"
    if [ "$scale" -ge 10 ]; then
        # pgbench data compresses about 15:1; 25 MB of random bytes make base.tar.zst cross the
        # 16 MiB S3 part size (multipart upload).
        sql "create table noise as select g as id, decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') as b from generate_series(1, 400000) g"
    fi
    sql "create table known(id int primary key, v text)"
    sql "insert into known select g, md5(g::text) from generate_series(1, 20000) g"

    # The backup runs while pgbench writes.
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -c 2 -T 30 -n postgres > "$W/pgbench.out" 2>&1 &
    local bench=$!
    sleep 2
    local out
    out="$(wc_ backup --label b1 --dbname "$CONN" 2>&1)" || { kill "$bench" 2>/dev/null; fail "walctl backup failed: $out"; }
    kill -0 "$bench" 2>/dev/null || fail "pgbench had already stopped when the backup ended (not a concurrent backup)"
    wait "$bench" || fail "pgbench failed: $(tail -3 "$W/pgbench.out")"
    grep -q "complete" <<<"$out" || fail "no completion line: $out"

    # The known point: writes stopped, every WAL file up to here archived.
    sql "insert into known values (0, 'after-backup')"
    local expected last
    expected="$(table_checksum "$PORT")"
    last="$(sql "select pg_walfile_name(pg_switch_wal())")"
    wait_archived "$last" || fail "archiver did not reach $last"
    assert_eq "$(sql "select failed_count from pg_stat_archiver")" "0" "archive failures"

    # backup list --json: the keys the planner and operators rely on.
    wc_ backup list --json > "$W/list.json"
    python3 - "$W/list.json" <<'PY' || fail "backup list --json: $(cat "$W/list.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["formatVersion"] == 1, d
l = d["backups"]
assert isinstance(l, list) and len(l) == 1, l
b = l[0]
for k in ("label", "startLSN", "stopLSN", "startTime", "stopTime", "timeline", "size", "storedSize"):
    assert k in b, "missing key " + k
assert b["label"] == "b1" and b["timeline"] == 1 and b["size"] > 0, b
PY
    wc_ backup show b1 --json > "$W/show.txt" || fail "backup show failed"
    grep -q '"firstWALSegment"' "$W/show.txt" || fail "backup show has no contents"

    if [ "$WALCTL_TEST_REPO" = s3 ] && [ "$scale" -ge 10 ]; then
        # The base archive is bigger than one 16 MiB part: it must have gone up as a multipart upload.
        local obj; obj="$(repo_objects "$W" '/backup/b1/base\.tar' | head -1)"
        [ -n "$obj" ] || fail "no base archive object"
        python3 - "$MOTO_BUCKET" "$obj" <<'PY' || fail "$obj was not a multipart upload"
import sys, boto3, os
h = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1").head_object(Bucket=sys.argv[1], Key=sys.argv[2])
etag = h["ETag"].strip('"')
print("    %s: %d bytes, ETag %s" % (sys.argv[2], h["ContentLength"], etag))
assert "-" in etag and h["ContentLength"] > 16 << 20, etag
PY
    fi

    # Restore into a new directory; check it with pg_verifybackup, first alone, then with the WAL.
    wc_ restore-backup b1 --pgdata "$W/restored" >/dev/null || fail "restore-backup failed"
    [ "$(stat -c %a "$W/restored")" = 700 ] || fail "restored data directory mode $(stat -c %a "$W/restored")"
    [ "$(stat -c %U "$W/restored/global/pg_control")" = postgres ] || fail "restored files not owned by postgres"
    as_pg "$BIN/pg_verifybackup" -n "$W/restored" >/dev/null || fail "pg_verifybackup -n failed"
    mkdir -p "$W/wal"; chown postgres "$W/wal"
    local seg
    for seg in $(python3 - "$W/show.txt" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["contents"]   # backup show --json: one document
a, b = c["firstWALSegment"], c["lastWALSegment"]
per = 0x100000000 // c["walSegmentSize"]
n = lambda s: int(s[8:16], 16) * per + int(s[16:24], 16)
for x in range(n(a), n(b) + 1):
    print("%s%08X%08X" % (a[:8], x // per, x % per))
PY
); do
        wc_ archive-get "$seg" "$W/wal/$seg" || fail "archive-get $seg"
    done
    as_pg "$BIN/pg_verifybackup" -w "$W/wal" "$W/restored" >/dev/null || fail "pg_verifybackup with the WAL failed"

    # Start PostgreSQL on it: walctl archive-get as restore_command, replay to the end of the archive.
    local port2; port2="$(free_port)"
    configure_cluster "$W/restored" "$port2" "$W" "archive_mode = off" \
        "restore_command = '$WALCTL archive-get --config $W/walctl.conf %f %p'" "recovery_target_action = promote"
    as_pg touch "$W/restored/recovery.signal"
    pg_start "$V" "$W/restored"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port2 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "recovery did not finish"
    grep -q "restored log file \"$last\" from archive" "$W/restored.log" || fail "segment $last was not restored through walctl"
    assert_eq "$(table_checksum "$port2")" "$expected" "table checksum after recovery"

    # A non-empty target: refused without --force, and --force never touches a running server.
    if out="$(wc_ restore-backup b1 --pgdata "$W/restored" --force 2>&1)"; then fail "restore over a running server succeeded"; fi
    grep -qi "running" <<<"$out" || fail "unexpected message: $out"
    pg_stop "$V" "$W/restored"
    if out="$(wc_ restore-backup b1 --pgdata "$W/restored" 2>&1)"; then fail "restore into a non-empty directory succeeded"; fi
    grep -q "not empty" <<<"$out" || fail "unexpected message: $out"
    [ -f "$W/restored/PG_VERSION" ] || fail "a refused restore touched the target"
    wc_ restore-backup b1 --pgdata "$W/restored" --force >/dev/null || fail "restore --force failed"
    as_pg "$BIN/pg_verifybackup" -n "$W/restored" >/dev/null || fail "pg_verifybackup after --force failed"

    pg_stop "$V" "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_backup_restore_pg15() { backup_restore 15 "$BACKUP_TEST_SCALE"; }
test_backup_restore_pg16() { backup_restore 16 1; }
test_backup_restore_pg18() { backup_restore 18 1; }

# kill_backup PID: SIGKILL to the walctl process started by background job PID (a subshell running
# runuser, which forwards no SIGKILL): walks down the process tree from PID.
kill_backup() {
    local child="" p="$1" i
    for i in 1 2 3 4; do
        p="$(pgrep -P "$p" | head -1)" || break
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in walctl|walctl-core) child="$p"; break ;; esac   # the front execs walctl-core in the same process
    done
    [ -n "$child" ] || fail "no walctl process under $1"
    kill -KILL "$child"
    wait "$1" 2>/dev/null || true
    ! kill -0 "$child" 2>/dev/null || fail "walctl $child survived SIGKILL"
}

# A backup killed with SIGKILL, while streaming and while waiting for its WAL, is never listed, never
# restorable, and a later backup still works.
test_killed_backup_is_not_listed_pg15() {
    V=15
    # archive_command fails while $W/hold exists, so a backup can be caught waiting for its WAL.
    start_source 15 "archive_command = 'test ! -e @W@/hold && $WALCTL archive-push --config @W@/walctl.conf %p'"
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s 20 -q postgres >/dev/null 2>&1 || fail "pgbench -i failed"

    # 1. Killed while streaming: as soon as the first archive is being written.
    as_pg "$WALCTL" backup --config "$W/walctl.conf" --label k1 --dbname "$CONN" --compress-where client >"$W/k1.out" 2>&1 &
    local pid=$!
    local end=$((SECONDS + 30)) seen=""
    while [ $SECONDS -lt $end ] && kill -0 "$pid" 2>/dev/null; do
        # the server is sending files (pg_stat_progress_basebackup), or a temporary object exists
        if [ "$(sql "select phase from pg_stat_progress_basebackup" 2>/dev/null)" = "streaming database files" ] \
            || ls -A "$W/repo/backup/k1" 2>/dev/null | grep -q '^\.'; then seen=1; break; fi
        sleep 0.05
    done
    [ -n "$seen" ] || fail "never saw backup k1 writing (it took: $(cat "$W/k1.out"))"
    kill_backup "$pid"

    # 2. Killed while waiting for its WAL: the archives are stored, backup.json is not.
    touch "$W/hold"
    as_pg "$WALCTL" backup --config "$W/walctl.conf" --label k2 --dbname "$CONN" >"$W/k2.out" 2>&1 &
    pid=$!
    wait_until 60 grep -q "streamed" "$W/k2.out" || fail "backup k2 did not finish streaming: $(cat "$W/k2.out")"
    sleep 0.5
    kill -0 "$pid" 2>/dev/null || fail "backup k2 did not wait for its WAL: $(cat "$W/k2.out")"
    kill_backup "$pid"
    [ -n "$(repo_objects "$W" '/?backup/k2/base\.tar')" ] || fail "k2 stored no archive before it was killed"
    [ -z "$(repo_objects "$W" '/?backup/k[12]/backup\.json$')" ] || fail "a killed backup wrote backup.json"

    local list
    list="$(wc_ backup list --json)"
    assert_eq "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["backups"]))' <<<"$list")" "0" "backups listed after the kills"
    local out
    for l in k1 k2; do
        if out="$(wc_ restore-backup "$l" --pgdata "$W/r-$l" 2>&1)"; then fail "killed backup $l was restored"; fi
        [ ! -e "$W/r-$l/PG_VERSION" ] || fail "restore of killed backup $l wrote files"
    done
    if out="$(wc_ backup show k2 2>&1)"; then fail "backup show k2 succeeded: $out"; fi

    # The archiver catches up; the next backup is complete and the only one listed.
    rm -f "$W/hold"
    wc_ backup --label b2 --dbname "$CONN" >/dev/null 2>&1 || fail "backup after the kills failed"
    list="$(wc_ backup list --json)"
    assert_eq "$(python3 -c 'import json,sys; print(",".join(b["label"] for b in json.load(sys.stdin)["backups"]))' <<<"$list")" "b2" "backups listed"
    pg_stop 15 "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# A repository bound to one cluster refuses a backup of another.
test_other_cluster_is_refused_pg15() {
    V=15
    start_source 15
    local w2="$W/other" port2; port2="$(free_port)"
    mkdir -p "$w2"; chown postgres "$w2"
    init_cluster 15 "$w2/data"
    configure_cluster "$w2/data" "$port2" "$W" "archive_mode = on" "archive_command = '/bin/true'"
    pg_start 15 "$w2/data"
    local out rc=0
    out="$(wc_ backup --label x --dbname "host=$W port=$port2 user=postgres dbname=postgres" 2>&1)" || rc=$?
    pg_stop 15 "$w2/data"
    [ "$rc" -ne 0 ] || fail "a backup of another cluster succeeded"
    grep -q "refusing to mix clusters" <<<"$out" || fail "unexpected message: $out"
    [ -z "$(repo_objects "$W" 'backup/')" ] || fail "the refused backup stored objects"
    # and the right cluster is accepted
    wc_ backup --label ok --dbname "$CONN" >/dev/null 2>&1 || fail "backup of the bound cluster failed"
    pg_stop 15 "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# Versions outside PG_VERSIONS are not run and not counted.
for v in 15 16 18; do
    # Not run, and not counted: a skipped test is never reported as passed.
    case " $PG_VERSIONS " in *" $v "*) ;; *) echo "  skip test_backup_restore_pg$v (not in PG_VERSIONS; not counted)"; unset -f "test_backup_restore_pg$v" ;; esac
done

run_suite "$@"
