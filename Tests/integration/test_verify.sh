#!/usr/bin/env bash
# verify / info / recover against the repository, not only the catalog (issue 12, cases 3, 4, 5):
# a segment's objects deleted while the catalog lists it; pushes that could not write the catalog;
# a damaged segment. Real PostgreSQL 15; file repository, or S3 (moto) with WALCTL_TEST_REPO=s3.
source "$(dirname "$0")/lib.sh"

# A PostgreSQL 15 cluster archiving through walctl with base backup b1 taken and a few segments
# archived after it. Sets W, PORT, WC (walctl as postgres with the suite's config).
setup() {
    require_pg 15
    W="$(new_workdir)"; PORT="$(free_port)"
    trap teardown EXIT   # each test runs in its own subshell: a failing one stops its server too
    write_config "$W"
    init_cluster 15 "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || fail "walctl init"
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start 15 "$W/data"
    psql_at 15 "$W" "$PORT" "create table t(x int)"
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label b1 --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "walctl backup take b1"
    switch_segments 3
}

wv() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }

# switch_segments N: N segments with rows, each switched and archived.
switch_segments() {
    local last=""
    SEGMENTS=()
    for _ in $(seq 1 "$1"); do
        psql_at 15 "$W" "$PORT" "insert into t select generate_series(1, 20000)" >/dev/null
        last="$(psql_at 15 "$W" "$PORT" "select pg_walfile_name(pg_switch_wal())")"
        SEGMENTS+=("$last")
    done
    local end=$((SECONDS + 60))
    until [ -n "$(repo_objects "$W" "$last\\.meta\$")" ]; do
        [ $SECONDS -lt $end ] || fail "segment $last was not archived"
        sleep 0.3
    done
    LAST_SEGMENT="$last"
}

teardown() { [ -d "$W" ] || return 0; pg_stop 15 "$W/data"; rm -rf "$W"; }

test_deleted_segment_is_missing_and_recover_refuses() {
    setup
    wv verify > "$W/v0.out" 2>&1 || { cat "$W/v0.out"; fail "verify of an intact archive exited $?"; }
    # A segment after the backup, inside the range recovery reads: delete its meta and data object.
    local victim="${SEGMENTS[1]}" keys
    keys="$(repo_objects "$W" "/$victim\\.")"
    [ "$(echo "$keys" | wc -l)" -eq 2 ] || fail "expected a meta and a data object for $victim, got: $keys"
    for k in $keys; do repo_delete "$W" "$k"; done
    local rc=0
    wv verify > "$W/v1.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "verify exit status with deleted objects"
    grep -q "^MISSING  $victim: .*meta" "$W/v1.out" || { cat "$W/v1.out"; fail "no MISSING line for $victim's meta"; }
    grep -q "^MISSING  $victim: .*data object" "$W/v1.out" || { cat "$W/v1.out"; fail "no MISSING line for $victim's data object"; }
    wv verify --json > "$W/v1.json" 2>/dev/null || true
    python3 - "$W/v1.json" "$victim" <<'PY' || fail "verify --json missingObjects"
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["ok"], d
assert sorted({m["name"] for m in d["missingObjects"]}) == [sys.argv[2]], d["missingObjects"]
assert d["staleCatalog"] == [], d["staleCatalog"]
PY
    # recover proves the plan against the repository: refused, nothing touched.
    rc=0
    as_pg mkdir -p "$W/restore"
    wv recover --latest --dry-run --json --pgdata "$W/restore" > "$W/r.json" 2> "$W/r.err" || rc=$?
    assert_eq "$rc" 3 "recover --latest --dry-run exit status"
    grep -q "error \[missing-object\]" "$W/r.err" || { cat "$W/r.err"; fail "no [missing-object] error"; }
    python3 - "$W/r.json" "$victim" <<'PY' || fail "refusal JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reason"] == "missing-object", d
assert any(sys.argv[2] in k for k in d["missingObjects"]), d["missingObjects"]
assert d["missingSegments"] == [sys.argv[2]], d
PY
    [ -z "$(ls -A "$W/restore")" ] || fail "recover touched the target directory"
    # --repair removes the rows whose objects are gone, saying so; the hole is then a GAP (still exit 1).
    rc=0
    wv verify --repair > "$W/v2.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "verify --repair exit status (the segment is gone: a gap)"
    grep -q "^REPAIRED $victim: removed from the catalog" "$W/v2.out" || { cat "$W/v2.out"; fail "no REPAIRED line"; }
    grep -q "^GAP      $victim" "$W/v2.out" || { cat "$W/v2.out"; fail "no GAP after the repair"; }
    teardown
}

test_unwritable_catalog_is_stale_then_repaired() {
    setup
    # Whatever PostgreSQL's archiver is still pushing (a meta whose catalog row is not yet in is rightly
    # STALE for that moment) is done before verify.
    wait_until 60 bash -c "! ls '$W/data/pg_wal/archive_status' | grep -q '\.ready\$'" || fail "the archiver did not finish"
    wv verify > "$W/v0.out" 2>&1 || { cat "$W/v0.out"; fail "verify of an intact archive"; }
    wv info > "$W/i0.out" 2>&1 || fail "info"
    head -1 "$W/i0.out" | grep -qx "status: ok" || { cat "$W/i0.out"; fail "info status of a healthy archive"; }
    # archive-push cannot write the catalog: it warns and exits 0 (the segment is durable).
    # (Owned by root: walctl puts its own catalog back to 0600, so a chmod alone would not hold.)
    chown root:root "$W/catalog.db"; chmod 0644 "$W/catalog.db"
    switch_segments 2
    local stale="$LAST_SEGMENT"
    grep -q "catalog" "$W/data.log" || fail "archive-push did not warn about the catalog in the server log"
    # The operator's fix: the catalog back to its owner (and -wal/-shm, should SQLite have made any).
    chown postgres:postgres "$W"/catalog.db*; chmod 0600 "$W"/catalog.db*
    wv info > "$W/i1.out" 2>&1 || fail "info"
    head -1 "$W/i1.out" | grep -q "^status: STALE CATALOG: 2 archived objects missing from the catalog" \
        || { cat "$W/i1.out"; fail "info does not report the stale catalog first"; }
    wv info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["statusCode"] == "stale-catalog", d["status"]; assert d["status"].startswith("STALE CATALOG"), d["status"]; assert "catalogCheckedAt" in d, d' \
        || fail "info --json status"
    local rc=0
    wv verify > "$W/v1.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "verify exit status with a stale catalog"
    grep -q "^STALE    $stale: " "$W/v1.out" || { cat "$W/v1.out"; fail "no STALE line for $stale"; }
    wv verify --repair > "$W/v2.out" 2>&1 || { cat "$W/v2.out"; fail "verify --repair did not end clean"; }
    grep -q "^REPAIRED $stale: inserted" "$W/v2.out" || { cat "$W/v2.out"; fail "no REPAIRED line for $stale"; }
    wv verify > "$W/v3.out" 2>&1 || { cat "$W/v3.out"; fail "verify after the repair"; }
    wv info > "$W/i2.out" 2>&1 || fail "info"
    head -1 "$W/i2.out" | grep -qx "status: ok" || { cat "$W/i2.out"; fail "info status after the repair"; }
    wv info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["catalogCheckedAt"], d' || fail "catalogCheckedAt after verify"
    teardown
}

test_damaged_segment_until_a_later_backup() {
    setup
    # Stop archiving, make three segments, push them by hand with one byte flipped inside a record of
    # the middle one, and tell PostgreSQL they are done.
    psql_at 15 "$W" "$PORT" "alter system set archive_command = '/bin/false'" >/dev/null
    psql_at 15 "$W" "$PORT" "select pg_reload_conf()" >/dev/null
    sleep 1
    local segs=()
    for _ in 1 2 3; do
        psql_at 15 "$W" "$PORT" "insert into t select generate_series(1, 20000)" >/dev/null
        segs+=("$(psql_at 15 "$W" "$PORT" "select pg_walfile_name(pg_switch_wal())")")
    done
    mkdir -p "$W/copy"; chown postgres "$W/copy"
    local s
    for s in "${segs[@]}"; do cp "$W/data/pg_wal/$s" "$W/copy/$s"; done
    chown postgres "$W/copy/"*
    # 64 KiB + 1000: inside the insert records (not a page header), far from the segment's end.
    printf '\x5a' | dd of="$W/copy/${segs[1]}" bs=1 seek=$((65536 + 1000)) conv=notrunc 2>/dev/null
    for s in "${segs[@]}"; do
        as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "$W/copy/$s" 2> "$W/push-$s.err" || { cat "$W/push-$s.err"; fail "push of $s"; }
        as_pg touch "$W/data/pg_wal/archive_status/$s.done"; rm -f "$W/data/pg_wal/archive_status/$s.ready"
    done
    psql_at 15 "$W" "$PORT" "alter system set archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" >/dev/null
    psql_at 15 "$W" "$PORT" "select pg_reload_conf()" >/dev/null
    local rc=0
    wv verify > "$W/v1.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "verify exit status with a damaged segment"
    grep -q "^DAMAGED  ${segs[1]} at [0-9A-F]*/[0-9A-F]*: " "$W/v1.out" || { cat "$W/v1.out"; fail "no DAMAGED line for ${segs[1]}"; }
    [ "$(grep -c '^DAMAGED' "$W/v1.out")" -eq 1 ] || { cat "$W/v1.out"; fail "intact segments reported DAMAGED"; }
    wv verify --json > "$W/v1.json" 2>&1 || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); assert [x["name"] for x in d["damaged"]] == [sys.argv[1]], d["damaged"]' "${segs[1]}" "$W/v1.json" \
        || { cat "$W/v1.json"; fail "verify --json damaged"; }
    wv info > "$W/i1.out" 2>&1 || fail "info"
    head -1 "$W/i1.out" | grep -q "^status: DAMAGED WAL: ${segs[1]}" || { cat "$W/i1.out"; fail "info status with a damaged segment"; }
    # The damage survives a rebuild from the repository alone (the meta's summary).
    rm -f "$W"/catalog.db*
    rc=0
    wv verify > "$W/v2.out" 2>&1 || rc=$?
    assert_eq "$rc" 1 "verify exit status after a rebuild"
    grep -q "^DAMAGED  ${segs[1]}" "$W/v2.out" || { cat "$W/v2.out"; fail "damage lost by the rebuild"; }
    # A base backup taken after the damage: recovery from it never reads the damaged WAL.
    as_pg "$WALCTL" backup take --config "$W/walctl.conf" --label b2 --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "walctl backup take b2"
    # The backup history file b2's stop wrote is archived by PostgreSQL's archiver after the backup
    # returns: until that push has ended (its .ready gone), verify rightly sees its meta without its
    # catalog row (STALE).
    wait_until 60 bash -c "! ls '$W/data/pg_wal/archive_status' | grep -q '\.ready\$'" || fail "the archiver did not finish b2's files"
    wv verify > "$W/v3.out" 2>&1 || { cat "$W/v3.out"; fail "verify after a later backup"; }
    teardown
}

test_leftover_temp_objects_are_listed_not_errors() {
    [ "$WALCTL_TEST_REPO" = s3 ] && { echo "    (file repository only: S3 writes no temporary object, and moto cannot backdate one)"; return 0; }
    setup
    local dir; dir="$(dirname "$(repo_objects "$W" "$LAST_SEGMENT\\.meta\$")")"
    local tmp="$W/repo/$dir/.$LAST_SEGMENT.1a2b3c4d.zst.tmp.4242.abc"
    as_pg head -c 4096 /dev/urandom > "$tmp"
    touch -d '2 hours ago' "$tmp"
    as_pg head -c 100 /dev/urandom > "$W/repo/$dir/.fresh.tmp.1.x"
    wv verify > "$W/v.out" 2>&1 || { cat "$W/v.out"; fail "a leftover made verify fail"; }
    grep -q "^LEFTOVER $dir/.$LAST_SEGMENT.1a2b3c4d.zst.tmp.4242.abc " "$W/v.out" || { cat "$W/v.out"; fail "no LEFTOVER line"; }
    grep -q "fresh" "$W/v.out" && { cat "$W/v.out"; fail "a temporary object younger than an hour was listed"; }
    teardown
}

run_suite "$@"
