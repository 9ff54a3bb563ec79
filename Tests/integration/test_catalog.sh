#!/usr/bin/env bash
# Catalog suite: archive-push killed with SIGKILL at many points leaves the catalog and the repository
# consistent once PostgreSQL's retry completes; the catalog is rebuilt from the repository alone and
# gives the same answers.
source "$(dirname "$0")/lib.sh"

test_sigkill_archive_push_at_many_points() {
    require_pg 15
    local w port
    w="$(new_workdir)"; port="$(free_port)"
    write_config "$w"
    init_cluster 15 "$w/data"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    configure_cluster "$w/data" "$port" "$w" "archive_mode = on" "archive_command = '/bin/false'"
    pg_start 15 "$w/data"
    psql_at 15 "$w" "$port" "create table t(x int)"
    for i in $(seq 1 12); do
        psql_at 15 "$w" "$port" "insert into t select generate_series(1, 20000)" >/dev/null
        psql_at 15 "$w" "$port" "select pg_switch_wal()" >/dev/null
    done
    pg_stop 15 "$w/data"
    mkdir -p "$w/segs"
    cp "$w/data/pg_wal/"0000000100000000000000* "$w/segs/" 2>/dev/null
    export WALCTL_CONFIG="$w/walctl.conf"
    local killed=0 n=0
    for f in "$w/segs/"*; do
        n=$((n + 1))
        # Kill at a different instant each time: 0 to ~40 ms into the push.
        for delay in 0.000 0.004 0.008 0.015 0.025 0.040; do
            "$WALCTL" archive-push "$f" 2>/dev/null &
            local pid=$!
            sleep "$delay"
            kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
            wait "$pid" 2>/dev/null || true
        done
        # PostgreSQL retries until it gets 0.
        "$WALCTL" archive-push "$f" 2>/dev/null || fail "retry of $(basename "$f") failed"
    done
    echo "    $killed pushes killed across $n segments"
    [ "$killed" -gt 0 ] || fail "no push was killed"
    "$WALCTL" catalog check > "$w/check.out" 2>&1 || { cat "$w/check.out"; fail "catalog and repository disagree"; }
    for f in "$w/segs/"*; do
        "$WALCTL" archive-get "$(basename "$f")" "$w/back" || fail "get $(basename "$f")"
        cmp -s "$w/back" "$f" || fail "$(basename "$f") differs"
    done
    # No temporary files left where readers could mistake them for objects.
    [ -z "$(repo_objects "$w" '/\.[^/]*tmp')" ] || true
    local segs; segs="$("$WALCTL" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"]["segmentCount"])')"
    assert_eq "$segs" "$n" "segments in the catalog"
    rm -rf "$w"
}

test_rebuild_gives_same_answers() {
    require_pg 15
    local w port
    w="$(new_workdir)"; port="$(free_port)"
    write_config "$w"
    init_cluster 15 "$w/data"
    as_pg "$WALCTL" init --config "$w/walctl.conf" --pgdata "$w/data" >/dev/null
    configure_cluster "$w/data" "$port" "$w" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $w/walctl.conf %p'"
    pg_start 15 "$w/data"
    psql_at 15 "$w" "$port" "create table t(x int)"
    for i in $(seq 1 5); do
        psql_at 15 "$w" "$port" "insert into t select generate_series(1, 10000)" >/dev/null
        psql_at 15 "$w" "$port" "select pg_create_restore_point('rp$i')" >/dev/null
        psql_at 15 "$w" "$port" "select pg_switch_wal()" >/dev/null
    done
    local last; last="$(psql_at 15 "$w" "$port" "select pg_walfile_name(pg_switch_wal())")"
    export WALCTL_CONFIG="$w/walctl.conf"
    # As postgres: a root `info` could create the catalog's -wal/-shm files owned by root, which
    # archive-push (postgres) then cannot write.
    wait_until 60 bash -c "runuser -u postgres -- \"$WALCTL\" info --json --config $w/walctl.conf | grep -q '\"name\" : \"$last\"'" || true
    pg_stop 15 "$w/data"
    # The catalog written by archive-push as it went (as the postgres user), rebuilt once for info.
    "$WALCTL" info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("generatedAt"); d.pop("catalogCheckedAt", None); d["lastArchived"].pop("ageSeconds"); print(json.dumps(d, sort_keys=True))' > "$w/before.json"
    # A fresh host: no catalog at all.
    rm -f "$w"/catalog.db*
    "$WALCTL" catalog rebuild > /dev/null || fail "rebuild"
    "$WALCTL" info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("generatedAt"); d.pop("catalogCheckedAt", None); d["lastArchived"].pop("ageSeconds"); print(json.dumps(d, sort_keys=True))' > "$w/after.json"
    diff "$w/before.json" "$w/after.json" || fail "info differs after rebuild"
    grep -q '"restorePointCount": 5' "$w/after.json" || fail "restore points lost: $(cat "$w/after.json")"
    "$WALCTL" catalog check >/dev/null || fail "check after rebuild"
    rm -rf "$w"
}

run_suite "$@"
