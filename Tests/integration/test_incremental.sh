#!/usr/bin/env bash
# Incremental backups and the backup chain (issue 18, docs/backup.md), PostgreSQL 15's file-level
# path: full -> pgbench -> incremental -> more -> incremental; each chain member restored and
# recovered to its own consistency point gives exactly the rows it had (table checksums); PITR
# between members through `walctl recover` (which restores the chain); a damaged member (deleted
# object; a flipped byte of the same size: CRC-32C on a file repository, ETag on S3) is refused before anything is written; --delta after
# dropping a table and changing another restores exactly; expire keeps chains whole; a chain of a
# group-access cluster with a tablespace restores with the source's modes (its archives at once).
# test_incremental_s3.sh runs it again on S3 (moto).
source "$(dirname "$0")/lib.sh"

cleanup() {
    local d
    for d in "$W"/r-* "$W/data"; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

w() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
sql() { psql_at "$V" "$W" "$PORT" "$@"; }
checksum_at() {
    psql_at "$V" "$W" "$1" "select md5(string_agg(t::text, ',' order by aid)) from pgbench_accounts t" &&
        psql_at "$V" "$W" "$1" "select coalesce(md5(string_agg(t::text, ',' order by x)), 'none') from extra t"
}

# start_recovered DIR [recovery settings...]: configures DIR (restored, no server) for recovery through
# walctl archive-get on a free port, starts it and waits for it to be promoted. Sets RPORT.
start_recovered() {
    local dir="$1"; shift
    RPORT="$(free_port)"
    configure_cluster "$dir" "$RPORT" "$W" "archive_mode = off" \
        "restore_command = '$WALCTL archive-get --config $W/walctl.conf %f %p'" "recovery_target_action = promote" "$@"
    as_pg touch "$dir/recovery.signal"
    pg_start "$V" "$dir" || { tail -20 "$dir/../$(basename "$dir").log" >&2; fail "restored $dir did not start"; }
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $RPORT -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" \
        || { tail -20 "$dir/../$(basename "$dir").log" >&2; fail "recovery of $dir did not finish"; }
}

test_incremental_chain() {
    start_archiving_source 15
    local conn="host=$W port=$PORT user=postgres dbname=postgres" out rc

    # No backup yet: incremental is refused with its code; incremental-or-full takes a full one and says so.
    rc=0; out="$(w backup --type incremental --dbname "$conn" --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "incremental without a parent succeeded"
    grep -q "\[no-parent-backup\]" <<<"$out" || fail "no [no-parent-backup]: $out"
    [ -z "$(repo_objects "$W" '/backup/|^backup/')" ] || fail "a refused incremental left objects"

    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s 2 -q postgres >/dev/null 2>&1 || fail "pgbench -i"
    sql "create table extra(x int primary key, v text)"
    sql "insert into extra select g, 'a' || g from generate_series(1, 1000) g"
    out="$(w backup --type incremental-or-full --label F --dbname "$conn" --no-progress 2>&1)" || fail "incremental-or-full: $out"
    grep -q "taking a full backup instead" <<<"$out" || fail "incremental-or-full did not say it took a full backup: $out"
    local cF; cF="$(checksum_at "$PORT")"

    # Changes, then the first incremental.
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -t 300 -c 2 -n postgres >/dev/null 2>&1 || fail "pgbench -t 300"
    sql "insert into extra select g, 'b' || g from generate_series(1001, 1500) g"
    switch_and_wait >/dev/null
    local tF; tF="$(now_utc)"; local cTF; cTF="$(checksum_at "$PORT")"
    sql "update extra set v = v || 'x' where x % 3 = 0"
    out="$(w backup --type incremental --label I1 --dbname "$conn" --no-progress 2>&1)" || fail "incremental I1: $out"
    # pgbench_accounts (over 1 MiB) changed: it is stored in a part of the base archive (files only),
    # restored below with the rest of the chain.
    [ -n "$(repo_objects "$W" 'backup/I1/base\.part1\.tar')" ] || fail "I1 stored no part of its base archive: $(repo_objects "$W" 'backup/I1/')"
    local cI1; cI1="$(checksum_at "$PORT")"

    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -t 200 -c 2 -n postgres >/dev/null 2>&1 || fail "pgbench -t 200"
    switch_and_wait >/dev/null
    local tA; tA="$(now_utc)"; local cA; cA="$(checksum_at "$PORT")"
    sql "delete from extra where x > 1400"
    sql "update pgbench_accounts set abalance = abalance + 7 where aid % 50 = 0"
    out="$(w backup --type incremental --label I2 --dbname "$conn" --no-progress 2>&1)" || fail "incremental I2: $out"
    local cI2; cI2="$(checksum_at "$PORT")"
    sql "insert into extra values (99999, 'after I2')"
    switch_and_wait >/dev/null

    # The chain in backup list --json / show.
    w backup list --json > "$W/list.json" || fail "backup list --json"
    python3 - "$W/list.json" <<'PY' || fail "backup list types/parents"
import json, sys
b = {x["label"]: x for x in json.load(open(sys.argv[1]))["backups"]}
assert b["F"]["type"] == "full" and b["F"]["parent"] is None, b["F"]
assert b["I1"]["type"] == "incremental" and b["I1"]["parent"] == "F", b["I1"]
assert b["I2"]["type"] == "incremental" and b["I2"]["parent"] == "I1", b["I2"]
assert b["I1"]["storedSize"] < b["F"]["storedSize"] / 2, (b["I1"]["storedSize"], b["F"]["storedSize"])
PY
    w backup list | grep -qE "^I2 +incremental +I1 " || fail "backup list has no TYPE/PARENT columns: $(w backup list)"
    w backup show I2 | grep -q "chain: *F -> I1 -> I2" || fail "backup show I2 has no chain: $(w backup show I2)"
    w backup show I2 --json > "$W/show.json" || fail "backup show --json"
    python3 "$REPO/Tests/integration/json_schema.py" "$REPO/docs/json.md" backup-show "$W/show.json" || fail "backup show --json vs docs/json.md"
    python3 "$REPO/Tests/integration/json_schema.py" "$REPO/docs/json.md" backup-list "$W/list.json" || fail "backup list --json vs docs/json.md"

    # Each member restored (its chain), checked against its manifest, recovered to its consistency point.
    local member expect
    for member in F I1 I2; do
        case "$member" in F) expect="$cF" ;; I1) expect="$cI1" ;; I2) expect="$cI2" ;; esac
        out="$(w restore-backup "$member" --pgdata "$W/r-$member" --no-progress 2>&1)" || fail "restore-backup $member: $out"
        [ "$member" = F ] || grep -q "chain F" <<<"$out" || fail "restore of $member did not show its chain: $out"
        as_pg "$BIN/pg_verifybackup" -n "$W/r-$member" >/dev/null || fail "pg_verifybackup -n $member"
        start_recovered "$W/r-$member" "recovery_target = 'immediate'"
        assert_eq "$(checksum_at "$RPORT")" "$expect" "rows of $member after restore"
        pg_stop "$V" "$W/r-$member"
    done

    # PITR between members: recover plans I1 for a time after it (restoring F + I1), F before it.
    out="$(w recover --to "$tA" --pgdata "$W/r-pitrA" --dry-run 2>&1)" || fail "recover --dry-run: $out"
    grep -q "chain: *F -> I1" <<<"$out" || fail "the plan does not show the chain: $out"
    w recover --to "$tA" --pgdata "$W/r-pitrA" --action promote --no-progress >/dev/null 2>&1 || fail "recover --to tA"
    start_recovered "$W/r-pitrA"
    assert_eq "$(checksum_at "$RPORT")" "$cA" "rows at tA (between I1 and I2)"
    pg_stop "$V" "$W/r-pitrA"
    w recover --to "$tF" --pgdata "$W/r-pitrF" --action promote --no-progress >/dev/null 2>&1 || fail "recover --to tF"
    start_recovered "$W/r-pitrF"
    assert_eq "$(checksum_at "$RPORT")" "$cTF" "rows at tF (between F and I1)"
    pg_stop "$V" "$W/r-pitrF"

    # --delta into r-I2 (a recovered, then changed copy of the cluster): drop a table, change another.
    as_pg rm -f "$W/r-I2/recovery.signal"
    pg_start "$V" "$W/r-I2" || fail "r-I2 does not start again"
    RPORT="$(grep "^port = " "$W/r-I2/postgresql.conf" | tail -1 | cut -d' ' -f3)"
    psql_at "$V" "$W" "$RPORT" "drop table extra"
    psql_at "$V" "$W" "$RPORT" "update pgbench_accounts set abalance = abalance - 1 where aid < 500"
    psql_at "$V" "$W" "$RPORT" "create table junk as select generate_series(1, 10000) g"
    psql_at "$V" "$W" "$RPORT" "checkpoint"
    rc=0; out="$(w restore-backup I2 --pgdata "$W/r-I2" --delta --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "--delta over a running server succeeded"
    grep -qi "running" <<<"$out" || fail "unexpected --delta refusal: $out"
    pg_stop "$V" "$W/r-I2"
    out="$(w restore-backup I2 --pgdata "$W/r-I2" --delta --no-progress 2>&1)" || fail "restore-backup --delta: $out"
    grep -qE "[1-9][0-9]* kept" <<<"$out" || fail "--delta kept nothing: $out"
    grep -q "(in place: .* rewritten, .* already right)" <<<"$out" || fail "--delta rewrote no file in place: $out"
    as_pg "$BIN/pg_verifybackup" -n "$W/r-I2" >/dev/null || fail "pg_verifybackup -n after --delta"
    # Again over its own result: every file of the older members is already right, so their
    # archives are not read at all (only the newest member's, which gives the directories).
    out="$(w restore-backup I2 --pgdata "$W/r-I2" --delta --no-progress 2>&1)" || fail "second restore-backup --delta: $out"
    grep -qE "chain F -> I1 -> I2, .* from [0-9]+ archive\(s\) of 1 member\(s\)" <<<"$out" || fail "a --delta over a right target read older members' archives: $out"
    as_pg "$BIN/pg_verifybackup" -n "$W/r-I2" >/dev/null || fail "pg_verifybackup -n after the second --delta"
    # What an operator (or another user of the account) may have left in the target: a database
    # directory replaced by a link to a copy elsewhere, a directory at a relation file's name. The
    # link is replaced (its files restored, the copy untouched), the directory too.
    mkdir -p "$W/outside"; mv "$W/r-I2/base/1" "$W/outside/base1"; ln -s "$W/outside/base1" "$W/r-I2/base/1"
    local nout; nout="$(ls "$W/outside/base1" | wc -l)"
    local rel; rel="$(cd "$W/r-I2" && ls base/5 | grep -E '^[0-9]+$' | head -1)"
    rm "$W/r-I2/base/5/$rel"; as_pg mkdir "$W/r-I2/base/5/$rel"; as_pg touch "$W/r-I2/base/5/$rel/junk"
    out="$(w restore-backup I2 --pgdata "$W/r-I2" --delta --no-progress 2>&1)" || fail "--delta over a planted link and directory: $out"
    [ -d "$W/r-I2/base/1" ] && [ ! -L "$W/r-I2/base/1" ] || fail "base/1 is still a link after --delta"
    [ -f "$W/r-I2/base/5/$rel" ] || fail "base/5/$rel is not a file after --delta"
    assert_eq "$(ls "$W/outside/base1" | wc -l)" "$nout" "files of the copy a planted link pointed at"
    as_pg "$BIN/pg_verifybackup" -n "$W/r-I2" >/dev/null || fail "pg_verifybackup -n after --delta over a planted link and directory"
    # A full backup whose archive has a flipped byte: --delta refuses before changing the target.
    local fobj; fobj="$(repo_objects "$W" 'backup/F/base\.tar' | head -1)"
    if [ "$WALCTL_TEST_REPO" = file ]; then
        cp "$W/repo/$fobj" "$W/saved-F"
        repo_damage "$W" "$fobj" flip
        local tree; tree="$(cd "$W/r-I2" && find . -type f -exec md5sum {} + | sort | md5sum)"
        rc=0; out="$(w restore-backup F --pgdata "$W/r-I2" --delta --no-progress 2>&1)" || rc=$?
        [ "$rc" -ne 0 ] || fail "--delta from a damaged full backup succeeded"
        assert_eq "$(cd "$W/r-I2" && find . -type f -exec md5sum {} + | sort | md5sum)" "$tree" "the target after a refused --delta"
        cp "$W/saved-F" "$W/repo/$fobj"; chown postgres "$W/repo/$fobj"
    fi
    [ ! -e "$W/r-I2/recovery.signal" ] || fail "--delta left recovery.signal (not in the backup)"
    start_recovered "$W/r-I2" "recovery_target = 'immediate'"
    assert_eq "$(checksum_at "$RPORT")" "$cI2" "rows after --delta"
    assert_eq "$(psql_at "$V" "$W" "$RPORT" "select count(*) from pg_class where relname = 'junk'")" 0 "table created after the backup is gone after --delta"
    pg_stop "$V" "$W/r-I2"
    # recover --delta: the same directory to a point in time.
    w recover --to "$tA" --pgdata "$W/r-I2" --delta --action promote --no-progress >/dev/null 2>&1 || fail "recover --delta"
    start_recovered "$W/r-I2"
    assert_eq "$(checksum_at "$RPORT")" "$cA" "rows after recover --delta to tA"
    pg_stop "$V" "$W/r-I2"
    # --delta refuses another cluster's directory.
    init_cluster 15 "$W/r-other"
    rc=0; out="$(w restore-backup I2 --pgdata "$W/r-other" --delta --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] && grep -q "database system" <<<"$out" || fail "--delta into another cluster: rc $rc: $out"

    # expire never breaks a chain: with retention-full = 1 the one chain stays whole.
    w expire --set retention-full=1 >/dev/null 2>&1 || fail "expire (one chain)"
    w backup list --json > "$W/list2.json"
    python3 -c 'import json,sys; l=sorted(b["label"] for b in json.load(open(sys.argv[1]))["backups"]); assert l==["F","I1","I2"], l' "$W/list2.json" \
        || fail "expire broke the only chain"

    # A damaged member is refused before anything is written: a deleted object of I1...
    local obj; obj="$(repo_objects "$W" 'backup/I1/base\.tar' | head -1)"
    [ -n "$obj" ] || fail "no base archive of I1"
    local key="${obj#./}"
    if [ "$WALCTL_TEST_REPO" = file ]; then cp "$W/repo/$key" "$W/saved-object"; fi
    repo_delete "$W" "$key"
    rc=0; out="$(w restore-backup I2 --pgdata "$W/r-damaged" --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "restore of a chain with a deleted object succeeded"
    grep -q "\[chain-damaged\]" <<<"$out" && grep -q "I1" <<<"$out" || fail "deleted object: unexpected message: $out"
    [ ! -e "$W/r-damaged" ] || fail "a refused chain restore created the target"
    # ... and one flipped byte in the full backup's archive, the size unchanged: on a file repository
    # its CRC-32C is read through, on S3 the listing's ETag differs from the one the backup recorded
    # (F is proven before I1, whose object stays deleted on S3: putting it back would change its ETag).
    if [ "$WALCTL_TEST_REPO" = file ]; then cp "$W/saved-object" "$W/repo/$key"; chown postgres "$W/repo/$key"; fi
    obj="$(repo_objects "$W" 'backup/F/base\.tar' | head -1)"
    repo_damage "$W" "${obj#./}" flip
    rc=0; out="$(w restore-backup I2 --pgdata "$W/r-damaged" --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "restore of a chain with a flipped byte succeeded"
    grep -q "\[chain-damaged\]" <<<"$out" && grep -q "backup F" <<<"$out" || fail "flipped byte: unexpected message: $out"
    [ ! -e "$W/r-damaged" ] || fail "a refused chain restore created the target"
    pg_stop "$V" "$W/data"
}

test_expire_keeps_chains_whole() {
    start_archiving_source 15
    local conn="host=$W port=$PORT user=postgres dbname=postgres"
    sql "create table t(x int)"
    local l
    for l in A B C D E; do
        sql "insert into t select generate_series(1, 1000)"
        case "$l" in
            A|C) w backup --label "$l" --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "full $l" ;;
            *) w backup --type incremental --label "$l" --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "incremental $l" ;;
        esac
        switch_and_wait >/dev/null
    done
    # Chains: A <- B, C <- D <- E. retention-full = 1 counts chains: C's chain stays, A's goes whole.
    w backup pin B >/dev/null || fail "pin B"
    w expire --set retention-full=1 >/dev/null 2>&1 || fail "expire"
    w backup list --json > "$W/l.json"
    python3 -c 'import json,sys; l=sorted(b["label"] for b in json.load(open(sys.argv[1]))["backups"]); assert l==["A","B","C","D","E"], l' "$W/l.json" \
        || fail "a pinned incremental did not keep its chain: $(cat "$W/l.json" | grep label)"
    w backup unpin B >/dev/null || fail "unpin B"
    w expire --set retention-full=1 >/dev/null 2>&1 || fail "expire (2)"
    w backup list --json > "$W/l.json"
    python3 -c 'import json,sys; l=sorted(b["label"] for b in json.load(open(sys.argv[1]))["backups"]); assert l==["C","D","E"], l' "$W/l.json" \
        || fail "expire did not remove A's chain whole: $(grep label "$W/l.json")"
    w restore-backup E --pgdata "$W/r-E" --no-progress >/dev/null 2>&1 || fail "the kept chain does not restore"
    pg_stop "$V" "$W/data"
}

# A chain of three members of a cluster with group access (directories 0750, files 0640) and a
# tablespace, restored with its archives at once (one thread per core, docs/backup.md): the rows of
# I2 in both tablespaces, pg_verifybackup clean, and every directory, file and link with the mode and
# owner the source has, whichever archive wrote first.
test_chain_with_tablespace() {
    start_archiving_source 15
    local conn="host=$W port=$PORT user=postgres dbname=postgres" out
    # Group access, as PostgreSQL documents turning it on for an existing cluster.
    pg_stop "$V" "$W/data"
    chmod 750 "$W/data"; find "$W/data" -type d -exec chmod 750 {} +; find "$W/data" -type f -exec chmod 640 {} +
    pg_start "$V" "$W/data"
    as_pg mkdir -m 750 "$W/ts"
    as_pg "$BIN/pgbench" -h "$W" -p "$PORT" -i -s 1 -q postgres >/dev/null 2>&1 || fail "pgbench -i"
    sql "create tablespace ts location '$W/ts'"
    sql "create table tt(id int primary key, v text) tablespace ts"
    sql "insert into tt select g, repeat('t', 100) || g from generate_series(1, 20000) g"
    sql "create table small(x int) tablespace ts"
    sql "insert into small values (1)"
    w backup --label F --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "full backup F"
    sql "update tt set v = v || 'u' where id % 10 = 0"
    sql "update pgbench_accounts set abalance = abalance + 1 where aid % 7 = 0"
    w backup --type incremental --label I1 --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "incremental I1"
    sql "delete from tt where id % 5 = 0"
    sql "update pgbench_accounts set abalance = abalance - 3 where aid % 11 = 0"
    w backup --type incremental --label I2 --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "incremental I2"
    local sum="select md5(string_agg(t::text, ',' order by aid)) from pgbench_accounts t union all select md5(string_agg(t::text, ',' order by id)) from tt t union all select count(*)::text from small"
    local cI2; cI2="$(sql "$sum")"
    # The restore puts the tablespace back at its location: stop the source and move its tablespace aside.
    pg_stop "$V" "$W/data"
    mv "$W/ts" "$W/ts-src"

    out="$(w restore-backup I2 --pgdata "$W/r-ts" --no-progress -v 2>&1)" || fail "restore-backup I2: $out"
    grep -q "chain F -> I1 -> I2" <<<"$out" || fail "the restore did not show its chain: $out"
    if [ "$(nproc)" -ge 2 ]; then
        grep -qE "archive\(s\) on [2-9][0-9]* threads" <<<"$out" || fail "the chain's archives were not restored at once: $out"
    fi
    assert_eq "$(readlink "$W/r-ts/pg_tblspc/$(ls "$W/r-ts/pg_tblspc")")" "$W/ts" "the tablespace link"
    as_pg "$BIN/pg_verifybackup" -n "$W/r-ts" >/dev/null || fail "pg_verifybackup -n of the chain with a tablespace"

    # Modes and owners: every entry of the restore that the source has (backup_label and
    # backup_manifest are the restore's own), directories and links included.
    python3 - "$W/data" "$W/r-ts" "$W/ts-src" "$W/ts" <<'PY' || fail "modes or owners differ from the source"
import os, stat, sys
def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out
bad, compared = [], 0
for src, dst in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    s, d = tree(src), tree(dst)
    for p, v in d.items():
        if p in ("backup_label", "backup_manifest") or p.startswith("pg_tblspc/"):
            continue
        if p not in s:
            assert not stat.S_ISDIR(v[0]), f"directory {p} of the restore is not in the source"
            continue
        compared += 1
        if stat.S_ISLNK(v[0]):
            continue
        if s[p] != v:
            bad.append((p, oct(s[p][1]), oct(v[1]), s[p][2:], v[2:]))
    dirs = [p for p, v in d.items() if stat.S_ISDIR(v[0]) and not p.startswith("pg_tblspc/")]
    assert all(d[p][1] == 0o750 for p in dirs), [(p, oct(d[p][1])) for p in dirs if d[p][1] != 0o750][:5]
assert compared > 500, compared
assert not bad, bad[:10]
PY
    start_recovered "$W/r-ts" "recovery_target = 'immediate'"
    assert_eq "$(psql_at "$V" "$W" "$RPORT" "$sum")" "$cI2" "rows of I2 (both tablespaces) after the chain restore"
    pg_stop "$V" "$W/r-ts"

    # --delta never works in a tablespace location that is not the target's own: a copy of the
    # source whose link points at the source's moved tablespace, while the backup's location ($W/ts)
    # holds r-ts's. Refused before anything changes; neither location is touched.
    local oid; oid="$(ls "$W/r-ts/pg_tblspc")"
    cp -a "$W/data" "$W/copy"; ln -sfn "$W/ts-src" "$W/copy/pg_tblspc/$oid"
    as_pg touch "$W/ts-src/keepme"
    local before; before="$(cd "$W/ts" && find . -type f -exec md5sum {} + | sort | md5sum)"
    rc=0; out="$(w restore-backup I2 --pgdata "$W/copy" --delta --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "--delta into a copy whose tablespace link points elsewhere succeeded: $out"
    grep -q "is not this data directory's" <<<"$out" || fail "unexpected refusal: $out"
    [ -e "$W/ts-src/keepme" ] || fail "--delta swept the location the copy's link points at"
    assert_eq "$(cd "$W/ts" && find . -type f -exec md5sum {} + | sort | md5sum)" "$before" "another cluster's tablespace after a refused --delta"
    # Into r-ts itself (its link is the location): works, and leaves another major version's
    # directory in the location alone (pg_upgrade puts PG_16_* beside PG_15_*).
    as_pg mkdir "$W/ts/PG_16_202307071"; as_pg touch "$W/ts/PG_16_202307071/other-version"
    out="$(w restore-backup I2 --pgdata "$W/r-ts" --delta --no-progress 2>&1)" || fail "--delta into r-ts: $out"
    [ -e "$W/ts/PG_16_202307071/other-version" ] || fail "--delta removed another major version's tablespace directory"
    rm -r "$W/ts/PG_16_202307071"  # pg_verifybackup counts it as an extra file
    out="$(as_pg "$BIN/pg_verifybackup" -n "$W/r-ts" 2>&1)" || fail "pg_verifybackup -n after --delta with a tablespace: $out"
    # --force empties a non-empty tablespace location only when it is the target's own: into a new
    # directory it is refused ($W/ts is r-ts's), into r-ts itself it is allowed.
    before="$(cd "$W/ts" && find . -type f -exec md5sum {} + | sort | md5sum)"
    rc=0; out="$(w restore-backup I2 --pgdata "$W/fresh" --force --no-progress 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "--force emptied another cluster's tablespace location: $out"
    grep -q "is not empty and is not" <<<"$out" || fail "unexpected --force refusal: $out"
    assert_eq "$(cd "$W/ts" && find . -type f -exec md5sum {} + | sort | md5sum)" "$before" "another cluster's tablespace after a refused --force"
    out="$(w restore-backup I2 --pgdata "$W/r-ts" --force --no-progress 2>&1)" || fail "--force into r-ts (its own location): $out"
    out="$(as_pg "$BIN/pg_verifybackup" -n "$W/r-ts" 2>&1)" || fail "pg_verifybackup -n after --force with a tablespace: $out"
}

run_suite "$@"
