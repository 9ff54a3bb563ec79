#!/usr/bin/env bash
# PostgreSQL 17+ native incremental backups (issue 18), on PostgreSQL 18 only: summarize_wal = on;
# full -> pgbench -> incremental -> more -> incremental, each taken with UPLOAD_MANIFEST + BASE_BACKUP
# INCREMENTAL and stored like a full one. Each chain member restored (walctl's own combine) and
# recovered to its end gives exactly the table checksum taken just before it; PITR to a restore point
# between the members, from the full and from the first incremental, gives that point's checksum.
# Oracle: walctl's restored chain equals pg_combinebackup's output for the same members, file by file
# (pg_combinebackup runs only here, never in the product). Refusals: summarize_wal off -> refused
# with the reason (summarize-wal-off) and nothing stored; incremental-or-full -> a full backup, saying
# why; a damaged INCREMENTAL member -> refused before anything is written.
source "$(dirname "$0")/lib.sh"

cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    local d; for d in "$W/data" "$W"/r-*; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    return 0
}
sql() { psql_at "$V" "$W" "$PORT" "$@"; }
wc_() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
CONN() { echo "host=$W port=$PORT user=postgres dbname=postgres"; }

table_checksum() {
    psql_at "$V" "$W" "$1" "select (select count(*) || ':' || sum(abalance) || ':' || md5(string_agg(aid || '/' || abalance, ',' order by aid)) from pgbench_accounts)
        || '|' || (select count(*) || ':' || coalesce(sum(delta), 0) from pgbench_history)
        || '|' || (select count(*) || ':' || md5(coalesce(string_agg(v, ',' order by id), '')) from known)"
}

bench() { as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -c 2 -T "$1" -n postgres >/dev/null 2>&1 || fail "pgbench failed"; }

# restore_and_check LABEL NAME EXPECTED [recovery settings...]: restore LABEL into $W/r-NAME, recover
# with walctl archive-get, compare the table checksum.
restore_and_check() {
    local label="$1" name="$2" expected="$3"; shift 3
    local dir="$W/r-$name" port; port="$(free_port)"
    wc_ restore-backup "$label" --pgdata "$dir" > "$W/restore-$name.out" 2>&1 || fail "restore-backup $label: $(cat "$W/restore-$name.out")"
    configure_cluster "$dir" "$port" "$W" "archive_mode = off" \
        "restore_command = '$WALCTL archive-get --config $W/walctl.conf %f %p'" "recovery_target_action = promote" "$@"
    as_pg touch "$dir/recovery.signal"
    pg_start "$V" "$dir" || fail "restored $label ($name) does not start: $(tail -5 "$dir/../r-$name.log")"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "restored $label ($name) did not finish recovery"
    assert_eq "$(table_checksum "$port")" "$expected" "tables of $label recovered ($name)"
    pg_stop "$V" "$dir"
}

# unpack LABEL DIR: the member's archives as pg_basebackup -Fp would have written them, and its manifest.
unpack() {
    local label="$1" dir="$2" key
    mkdir -p "$dir"
    for key in $(repo_objects "$W" "(^|/)backup/$label/base\.tar"); do
        case "$key" in
            *.zst) repo_get "$W" "$key" | zstd -dc | tar -x -C "$dir" ;;
            *) repo_get "$W" "$key" | tar -x -C "$dir" ;;
        esac
    done
    repo_get "$W" "$(repo_key "$W" "backup/$label/backup_manifest")" > "$dir/backup_manifest"
    chown -R postgres:postgres "$dir"; chmod 700 "$dir"
}

test_native_chain_pg18() {
    start_archiving_source 18 "summarize_wal = on" "wal_summary_keep_time = '1d'"
    local out sums=()
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s 3 -q postgres >/dev/null 2>&1 || fail "pgbench -i failed"
    sql "create table known(id int primary key, v text)"
    sql "insert into known select g, md5(g::text) from generate_series(1, 2000) g"

    # F: the full one. The checksum just before each backup is what its restore must give.
    local cF; cF="$(table_checksum "$PORT")"
    out="$(wc_ backup --type full --label F --dbname "$(CONN)" --no-progress 2>&1)" || fail "full F: $out"

    bench 4
    sql "delete from known where id % 7 = 0"
    sql "create table grown as select g from generate_series(1, 50000) g"   # a new relation after F
    local c1; c1="$(table_checksum "$PORT")"
    out="$(wc_ backup --type incremental --label I1 --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental I1: $out"
    grep -q "incremental (native) on F" <<<"$out" || fail "I1 was not a native incremental on F: $out"

    bench 3
    sql "insert into known values (-1, 'between')"
    local cP; cP="$(table_checksum "$PORT")"
    sql "select pg_create_restore_point('p1')" >/dev/null
    sql "update known set v = 'later' where id < 100"
    sql "truncate grown"                                          # a truncated relation
    sql "vacuum full pgbench_branches"                            # a rewritten one (new relfilenode)
    bench 3
    local c2; c2="$(table_checksum "$PORT")"
    out="$(wc_ backup --type incremental --label I2 --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental I2: $out"
    grep -q "incremental (native) on I1" <<<"$out" || fail "I2 was not a native incremental on I1: $out"

    # The chain in backup list; the incrementals store much less than the full one.
    wc_ backup list --json > "$W/list.json"
    python3 - "$W/list.json" <<'PY' || fail "backup list: $(cat "$W/list.json")"
import json, sys
b = {x["label"]: x for x in json.load(open(sys.argv[1]))["backups"]}
assert b["F"]["type"] == "full" and b["F"]["parent"] is None, b["F"]
assert b["I1"]["type"] == "incremental" and b["I1"]["parent"] == "F", b["I1"]
assert b["I2"]["type"] == "incremental" and b["I2"]["parent"] == "I1", b["I2"]
assert b["I2"]["storedSize"] < b["F"]["storedSize"], (b["I2"]["storedSize"], b["F"]["storedSize"])
PY
    [ -n "$(repo_objects "$W" '(^|/)backup/I2/backup_manifest$')" ] || fail "I2 has no manifest"
    wc_ backup show I2 --json | grep -q '"incrementalMethod" *: *"native"' || fail "I2 is not recorded as native"

    # Oracle: pg_combinebackup of the same members, against walctl's restore of I2 (before recovery).
    local o="$W/oracle"; mkdir -p "$o"; chown postgres "$o"
    unpack F "$o/F"; unpack I1 "$o/I1"; unpack I2 "$o/I2"
    ls "$o/I2/base/"*/INCREMENTAL.* >/dev/null 2>&1 || fail "I2 holds no INCREMENTAL files"
    as_pg "$BIN/pg_combinebackup" -o "$o/combined" "$o/F" "$o/I1" "$o/I2" > "$W/combine.out" 2>&1 || fail "pg_combinebackup: $(cat "$W/combine.out")"
    wc_ restore-backup I2 --pgdata "$W/walctl-combined" > "$W/restore-oracle.out" 2>&1 || fail "restore-backup I2: $(cat "$W/restore-oracle.out")"
    local diffs
    diffs="$(diff -rq -x backup_manifest "$o/combined" "$W/walctl-combined" 2>&1)" || fail "walctl's combine differs from pg_combinebackup's: $(head -5 <<<"$diffs")"
    local nfiles; nfiles="$(find "$W/walctl-combined" -type f | wc -l)"
    echo "    walctl combine = pg_combinebackup on $nfiles files"

    # --delta of the native chain over the full backup's restore: byte for byte pg_combinebackup's
    # result; the combined files rewritten in place, block by block.
    local d="$W/r-delta" port out
    wc_ restore-backup F --pgdata "$d" > "$W/restore-delta-F.out" 2>&1 || fail "restore-backup F: $(cat "$W/restore-delta-F.out")"
    out="$(wc_ restore-backup I2 --pgdata "$d" --delta --no-progress 2>&1)" || fail "restore-backup I2 --delta over F: $out"
    grep -q "(in place: .* rewritten, .* already right)" <<<"$out" || fail "--delta rewrote no file in place: $out"
    diffs="$(diff -rq -x backup_manifest "$o/combined" "$d" 2>&1)" || fail "--delta over F differs from pg_combinebackup's: $(head -5 <<<"$diffs")"
    # Recovered and promoted, then a table dropped and another changed: --delta brings back exactly
    # the combined backup again (the server's new files, WAL and the dropped table's absence undone).
    port="$(free_port)"
    configure_cluster "$d" "$port" "$W" "archive_mode = off" \
        "restore_command = '$WALCTL archive-get --config $W/walctl.conf %f %p'" "recovery_target_action = promote" "recovery_target = 'immediate'"
    as_pg touch "$d/recovery.signal"
    pg_start "$V" "$d" || fail "the --delta result does not start"
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $port -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || fail "the --delta result did not finish recovery"
    assert_eq "$(table_checksum "$port")" "$c2" "tables of I2 recovered after --delta"
    psql_at "$V" "$W" "$port" "drop table known" >/dev/null
    psql_at "$V" "$W" "$port" "update pgbench_accounts set abalance = abalance - 7 where aid % 3 = 0" >/dev/null
    psql_at "$V" "$W" "$port" "create table junk as select generate_series(1, 10000) g; checkpoint" >/dev/null
    pg_stop "$V" "$d"
    out="$(wc_ restore-backup I2 --pgdata "$d" --delta --no-progress 2>&1)" || fail "second --delta of the native chain: $out"
    diffs="$(diff -rq -x backup_manifest "$o/combined" "$d" 2>&1)" || fail "--delta over a changed copy differs from pg_combinebackup's: $(head -5 <<<"$diffs")"
    # Planted at combined files' names: a symbolic link to a file outside, and a second hard link to
    # one whose first block was then changed (pg_upgrade --link leaves files shared so): --delta
    # replaces both, the outside names keep their bytes, the result is still pg_combinebackup's.
    local inc a b
    inc="$(cd "$o/I2" && ls base/*/INCREMENTAL.* | grep -v '_' | sed -n '1,2p')"   # sed reads to the end: no SIGPIPE for grep under pipefail
    a="$(sed -n 1p <<<"$inc" | sed 's/INCREMENTAL\.//')"; b="$(sed -n 2p <<<"$inc" | sed 's/INCREMENTAL\.//')"
    [ -n "$a" ] && [ -n "$b" ] || fail "no two INCREMENTAL relation files in I2"
    echo victim > "$W/victim"; chown postgres "$W/victim"
    rm -f "$d/$a"; ln -s "$W/victim" "$d/$a"
    ln "$d/$b" "$W/hardlinked"
    dd if=/dev/urandom of="$W/hardlinked" bs=8192 count=1 conv=notrunc status=none   # differs from the backup now
    cp "$W/hardlinked" "$W/hardlinked.orig"
    out="$(wc_ restore-backup I2 --pgdata "$d" --delta --no-progress 2>&1)" || fail "--delta over a planted link and a hard link: $out"
    assert_eq "$(cat "$W/victim")" "victim" "the file a planted link pointed at"
    cmp -s "$W/hardlinked" "$W/hardlinked.orig" || fail "--delta wrote through a second hard link"
    [ ! -L "$d/$a" ] || fail "$a is still a link after --delta"
    diffs="$(diff -rq -x backup_manifest "$o/combined" "$d" 2>&1)" || fail "--delta over planted links differs from pg_combinebackup's: $(head -5 <<<"$diffs")"
    rm -rf "$o" "$W/walctl-combined" "$d" "$W/victim" "$W/hardlinked" "$W/hardlinked.orig"

    # Each member restored and recovered to its end; PITR to p1 from F and from I1.
    restore_and_check F F "$cF" "recovery_target = 'immediate'"
    restore_and_check I1 I1 "$c1" "recovery_target = 'immediate'"
    restore_and_check I2 I2 "$c2" "recovery_target = 'immediate'"
    restore_and_check I1 p1-from-I1 "$cP" "recovery_target_name = 'p1'"
    restore_and_check F p1-from-F "$cP" "recovery_target_name = 'p1'"

    # A damaged INCREMENTAL file inside I1's archive: I2's restore is refused, the target left empty
    # of that file's combination (the archive's stored CRC-32C catches it before anything is written).
    local key; key="$(repo_objects "$W" '(^|/)backup/I1/base\.tar')"
    repo_damage "$W" "$key" flip
    if out="$(wc_ restore-backup I2 --pgdata "$W/r-damaged" 2>&1)"; then fail "a damaged chain was restored"; fi
    grep -q "chain-damaged" <<<"$out" || fail "unexpected refusal: $out"
    [ ! -e "$W/r-damaged/PG_VERSION" ] || fail "the refused restore wrote files"
    pg_stop "$V" "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_summarize_wal_off_pg18() {
    start_archiving_source 18
    local out rc=0
    sql "create table known(id int primary key, v text)"
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s 1 -q postgres >/dev/null 2>&1 || fail "pgbench -i failed"
    wc_ backup --label F --dbname "$(CONN)" --no-progress >/dev/null 2>&1 || fail "full backup failed"

    # summarize_wal off: refused with the reason and how to fix it; nothing stored.
    out="$(wc_ backup --type incremental --label I --dbname "$(CONN)" --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "an incremental backup with summarize_wal off succeeded: $out"
    grep -q "\[summarize-wal-off\]" <<<"$out" || fail "no [summarize-wal-off]: $out"
    grep -q "set summarize_wal = on (reload), then take a full backup: incremental backups need WAL summaries from the parent's start" <<<"$out" || fail "no advice: $out"
    [ -z "$(repo_objects "$W" '(^|/)backup/I/')" ] || fail "the refused backup stored objects"

    # incremental-or-full: a full one, saying why.
    out="$(wc_ backup --type incremental-or-full --label G --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental-or-full: $out"
    grep -q "summarize_wal is off" <<<"$out" || fail "incremental-or-full did not say why: $out"
    wc_ backup show G --json | grep -q '"type" *: *"full"' || fail "G is not a full backup"

    # Turned on (reload): the next backups build on G only if the summaries reach back to its start.
    # Here they are removed (as wal_summary_keep_time would): refused (wal-summaries-missing) with
    # --type incremental, a full one with incremental-or-full.
    sql "alter system set summarize_wal = on"; sql "select pg_reload_conf()" >/dev/null
    sql "checkpoint"; sql "select pg_switch_wal()" >/dev/null
    wait_until 30 bash -c "ls $W/data/pg_wal/summaries/*.summary" || fail "no WAL summary was written"
    rm -f "$W"/data/pg_wal/summaries/*.summary
    sql "insert into known values (2, 'y')"; sql "checkpoint"
    rc=0; out="$(wc_ backup --type incremental --label J --dbname "$(CONN)" --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "an incremental without the parent's WAL summaries succeeded: $out"
    grep -q "\[wal-summaries-missing\]" <<<"$out" || fail "no [wal-summaries-missing]: $out"
    [ -z "$(repo_objects "$W" '(^|/)backup/J/')" ] || fail "the refused backup J stored objects"
    out="$(wc_ backup --type incremental-or-full --label H --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental-or-full after the summaries were removed: $out"
    wc_ backup show H --json | grep -q '"type" *: *"full"' || fail "H is not a full backup: $out"
    # ... and the next one builds on H natively.
    sql "insert into known values (1, 'x')"
    out="$(wc_ backup --type incremental --label K --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental on H: $out"
    grep -q "incremental (native) on H" <<<"$out" || fail "K was not a native incremental on H: $out"
    pg_stop "$V" "$W/data"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# --delta of a native chain with a tablespace restored to a mapped location: the combined files in the
# tablespace are rewritten in place like the base's, a file planted in the tablespace's version
# directory is removed, and the result equals a fresh restore of the same chain, file by file, in the
# data directory and in the tablespace.
test_native_delta_with_tablespace_pg18() {
    start_archiving_source 18 "summarize_wal = on" "wal_summary_keep_time = '1d'"
    local out
    as_pg mkdir -m 700 "$W/ts"
    sql "create tablespace ts location '$W/ts'"
    sql "create table tt(id int primary key, v text) tablespace ts"
    sql "insert into tt select g, repeat('t', 100) || g from generate_series(1, 30000) g"
    sql "create table base_t as select g from generate_series(1, 30000) g"
    out="$(wc_ backup --type full --label F --dbname "$(CONN)" --no-progress 2>&1)" || fail "full F: $out"
    sql "update tt set v = v || 'u' where id % 10 = 0"
    sql "delete from base_t where g % 3 = 0"
    out="$(wc_ backup --type incremental --label I --dbname "$(CONN)" --no-progress 2>&1)" || fail "incremental I: $out"
    grep -q "incremental (native) on F" <<<"$out" || fail "I was not a native incremental on F: $out"
    pg_stop "$V" "$W/data"

    wc_ restore-backup F --pgdata "$W/r-d" --tablespace-mapping "$W/ts=$W/ts-d" --no-progress >/dev/null 2>&1 || fail "restore-backup F"
    local ver; ver="$(ls "$W/ts-d")"
    [ -n "$ver" ] || fail "no version directory in the restored tablespace"
    echo junk > "$W/ts-d/$ver/planted"; chown postgres "$W/ts-d/$ver/planted"
    out="$(wc_ restore-backup I --pgdata "$W/r-d" --tablespace-mapping "$W/ts=$W/ts-d" --delta --no-progress 2>&1)" || fail "--delta of I over F with a tablespace: $out"
    grep -q "(in place: .* rewritten, .* already right)" <<<"$out" || fail "--delta rewrote no file in place: $out"
    [ ! -e "$W/ts-d/$ver/planted" ] || fail "a file planted in the tablespace survived --delta"
    wc_ restore-backup I --pgdata "$W/r-f" --tablespace-mapping "$W/ts=$W/ts-f" --no-progress >/dev/null 2>&1 || fail "fresh restore-backup I"
    local diffs
    diffs="$(diff -rq -x pg_tblspc "$W/r-f" "$W/r-d" 2>&1)" || fail "the data directory after --delta differs from a fresh restore: $(head -5 <<<"$diffs")"
    diffs="$(diff -rq "$W/ts-f" "$W/ts-d" 2>&1)" || fail "the tablespace after --delta differs from a fresh restore: $(head -5 <<<"$diffs")"
    assert_eq "$(readlink "$W/r-d/pg_tblspc/$(ls "$W/r-d/pg_tblspc")")" "$W/ts-d" "the tablespace link after --delta"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

case " $PG_VERSIONS " in
    *" 18 "*) ;;
    # Not run, and not counted: a skipped test is never reported as passed.
    *) echo "  skip test_native_chain_pg18 test_summarize_wal_off_pg18 test_native_delta_with_tablespace_pg18 (18 not in PG_VERSIONS; not counted)"
       unset -f test_native_chain_pg18 test_summarize_wal_off_pg18 test_native_delta_with_tablespace_pg18 ;;
esac

run_suite "$@"
