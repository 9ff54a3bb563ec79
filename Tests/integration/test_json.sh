#!/usr/bin/env bash
# JSON suite (issue 15): every read command's --json on a real archive is ONE document that matches
# its section of docs/json.md (Tests/integration/json_schema.py: no undocumented key, no missing key,
# no wrong type, no escaped slash, `formatVersion` as documented), first on a clean archive, then
# with a gap (a deleted segment), so the lists of problems are checked too. Also the human forms of the
# same commands: tables with a header, binary prefixes, singular/plural, no raw Swift values.
source "$(dirname "$0")/lib.sh"

CHECK="$REPO/Tests/integration/json_schema.py"
DOC="$REPO/docs/json.md"

# check_doc NAME FILE: FILE holds the stdout of one command; validated against section NAME.
check_doc() {
    [ -n "${JSON_DUMP:-}" ] && return 0
    python3 "$CHECK" "$DOC" "$1" "$2" || fail "$1: $(head -c 600 "$2")"
}

test_every_read_command_matches_docs_json() {
    require_pg 15
    local port
    W="$(new_workdir)"; port="$(free_port)"
    trap 'pg_stop 15 "$W/data" immediate' EXIT
    write_config "$W" "archive-check-timeout = 60"
    init_cluster 15 "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$port" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start 15 "$W/data"
    local conn="host=$W port=$port user=postgres dbname=postgres"
    w() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
    sql() { psql_at 15 "$W" "$port" "$@"; }
    sql "create table t(x int)"
    sql "insert into t select generate_series(1, 1000)"
    sql "select pg_switch_wal()" >/dev/null
    w backup --label b1 --dbname "$conn" --no-progress >/dev/null 2>&1 || fail "backup b1"
    local i
    for i in 1 2 3 4; do
        sql "insert into t select generate_series(1, 1000)"
        [ "$i" = 2 ] && sql "select pg_create_restore_point('rp1')" >/dev/null
        sql "select pg_switch_wal()" >/dev/null
    done
    local last; last="$(sql "select pg_walfile_name(pg_switch_wal())")"
    wait_until 60 bash -c "[ -n \"\$(find '$W/repo/wal' -name '$last.meta')\" ]" || fail "archiver did not reach $last"
    local o="$W/out"; as_pg mkdir -p "$o" "$W/target"

    # The clean archive.
    w info --json > "$o/info.json" || fail "info --json"
    check_doc info "$o/info.json"
    w backup list --json > "$o/backup-list.json" || fail "backup list --json"
    check_doc backup-list "$o/backup-list.json"
    w backup show b1 --json > "$o/backup-show.json" || fail "backup show --json"
    check_doc backup-show "$o/backup-show.json"
    w catalog find --name "$last" --json > "$o/find-name.json" || fail "catalog find --name --json"
    check_doc catalog-find "$o/find-name.json"
    local lsn; lsn="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["segment"]["firstLSN"])' "$o/find-name.json")"
    w catalog find --lsn "$lsn" --json > "$o/find-lsn.json" || fail "catalog find --lsn --json"
    check_doc catalog-find "$o/find-lsn.json"
    local seg; seg="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    cp "$W/data/pg_wal/$seg" "$o/seg"; chown postgres "$o/seg"
    as_pg "$WALCTL" wal show "$o/seg" --json > "$o/wal-show.json" || fail "wal show --json"
    check_doc wal-show "$o/wal-show.json"
    w verify --json > "$o/verify.json" || fail "verify --json (clean archive)"
    check_doc verify "$o/verify.json"
    w verify --deep --json --no-progress > "$o/verify-deep.json" || fail "verify --deep --json"
    check_doc verify "$o/verify-deep.json"
    w recover --latest --dry-run --json --pgdata "$W/target" > "$o/plan.json" || fail "recover --dry-run --json"
    check_doc recover-plan "$o/plan.json"
    w recover --to-name rp1 --dry-run --json --pgdata "$W/target" > "$o/plan-name.json" || fail "recover --to-name --dry-run --json"
    check_doc recover-plan "$o/plan-name.json"
    local rc=0
    w recover --to "2000-01-01 00:00:00+00" --dry-run --json --pgdata "$W/target" > "$o/refusal.json" 2>/dev/null || rc=$?
    assert_eq "$rc" 3 "recover before the first backup: exit status"
    check_doc recover-refusal "$o/refusal.json"
    w recover --status --json --pgdata "$W/target" > "$o/status.json" || fail "recover --status --json"
    check_doc recover-status "$o/status.json"
    w catalog check --json > "$o/check.json" || fail "catalog check --json (clean)"
    check_doc catalog-check "$o/check.json"
    w catalog rebuild --json --no-progress > "$o/rebuild.json" || fail "catalog rebuild --json"
    check_doc catalog-rebuild "$o/rebuild.json"

    # The human forms of the same commands: tables with a header, binary prefixes, singular and
    # plural right, no Swift value printed raw (catalog check printed `CatalogDrift(...)`).
    w catalog check > "$o/check.txt" || fail "catalog check"
    grep -q "^catalog .* matches file://.*: ok$" "$o/check.txt" || fail "catalog check text: $(cat "$o/check.txt")"
    w catalog rebuild --no-progress > "$o/rebuild.txt" || fail "catalog rebuild"
    grep -qE "^catalog .* rebuilt from .* in [0-9.]+ s: [0-9]+ segments, 0 partial segments, 0 history files, 1 backup history file, 1 backup$" "$o/rebuild.txt" \
        || fail "catalog rebuild text: $(cat "$o/rebuild.txt")"
    w backup list > "$o/list.txt" || fail "backup list"
    head -1 "$o/list.txt" | grep -qE "^LABEL +TYPE +PARENT +STATUS +TL +START LSN +STOP LSN +STARTED +STOPPED +SIZE +STORED$" || fail "backup list header: $(cat "$o/list.txt")"
    grep -qE "^b1 +full +- +complete +1 +0/[0-9A-F]+ .* [0-9.]+ MiB +[0-9.]+ [KM]iB$" "$o/list.txt" || fail "backup list row: $(cat "$o/list.txt")"
    w backup show b1 > "$o/show.txt" || fail "backup show"
    grep -q "^backup b1: complete" "$o/show.txt" || fail "backup show text: $(cat "$o/show.txt")"
    w info > "$o/info.txt" || fail "info"
    grep -qE "^timeline 1: [0-9]+ segments, [0-9.]+ MiB \([0-9.]+ [KM]iB stored\)$" "$o/info.txt" || fail "info timeline line: $(cat "$o/info.txt")"
    w verify --deep --no-progress > "$o/verify.txt" || fail "verify --deep"
    grep -qE "^verify: timeline 1, WAL .*, 1 backup, [0-9]+ objects read back$" "$o/verify.txt" || fail "verify text: $(cat "$o/verify.txt")"
    ! grep -hE "[A-Z][A-Za-z]+\([a-zA-Z]+: |\b1 (segments|backups|files|objects)\b|\(0 MiB" "$o"/*.txt || fail "raw Swift values or wrong plurals above"

    # A gap: one archived segment after the backup deleted from the repository.
    local victim; victim="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["segmentRanges"][-1]; print(r["lastName"][:8] + "%08X%08X" % divmod(r["lastSegno"] - 2, 256))' "$o/plan.json")"
    find "$W/repo/wal" -name "$victim*" -delete
    rc=0; w catalog check --json > "$o/check-drift.json" || rc=$?
    assert_eq "$rc" 1 "catalog check with drift: exit status"
    check_doc catalog-check "$o/check-drift.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["clean"] and d["drift"]["missingFromRepository"] == [sys.argv[2]], d' "$o/check-drift.json" "$victim" \
        || fail "catalog check --json does not name $victim"
    rc=0; w verify --json > "$o/verify-missing.json" || rc=$?
    assert_eq "$rc" 1 "verify with a missing object: exit status"
    check_doc verify "$o/verify-missing.json"
    w catalog rebuild --json --no-progress > "$o/rebuild-gap.json" || fail "catalog rebuild --json (gap)"
    check_doc catalog-rebuild "$o/rebuild-gap.json"
    w info --json > "$o/info-gap.json" || fail "info --json (gap)"
    check_doc info "$o/info-gap.json"
    rc=0; w verify --json > "$o/verify-gap.json" || rc=$?
    assert_eq "$rc" 1 "verify with a gap: exit status"
    check_doc verify "$o/verify-gap.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); g=d["gaps"]; assert len(g) == 1 and g[0]["firstName"] == sys.argv[2] and g[0]["segmentCount"] == 1, g' "$o/verify-gap.json" "$victim" \
        || fail "verify --json gaps"
    rc=0; w recover --latest --dry-run --json --pgdata "$W/target" > "$o/refusal-gap.json" 2>/dev/null || rc=$?
    assert_eq "$rc" 3 "recover across a gap: exit status"
    check_doc recover-refusal "$o/refusal-gap.json"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

# The checker itself fails on what it must catch (a checker that passes everything proves nothing).
test_checker_rejects_bad_documents() {
    local d; d="$(mktemp -d)"
    printf '{"formatVersion": 1, "backups": [], "extra": 1}\n' > "$d/undocumented.json"
    printf '{"formatVersion": 1}\n' > "$d/missing.json"
    printf '{"formatVersion": 1, "backups": "b1"}\n' > "$d/type.json"
    printf '{"formatVersion": 1, "backups": []}\n{"formatVersion": 1, "backups": []}\n' > "$d/two.json"
    printf '{"formatVersion": 2, "backups": []}\n' > "$d/version.json"
    local f
    for f in undocumented missing type two version; do
        if python3 "$CHECK" "$DOC" backup-list "$d/$f.json" 2>/dev/null; then fail "checker accepted $f.json"; fi
    done
    printf '{\n  "formatVersion" : 1,\n  "catalogPath" : "\\/var\\/lib\\/walctl\\/catalog.db",\n  "repository" : "file:\\/\\/\\/r",\n  "rebuild" : {}\n}\n' > "$d/slash.json"
    if python3 "$CHECK" "$DOC" catalog-rebuild "$d/slash.json" 2>"$d/slash.err"; then fail "checker accepted escaped slashes"; fi
    grep -q "escaped slash" "$d/slash.err" || fail "checker did not name the escaped slash: $(cat "$d/slash.err")"
    printf '{"formatVersion": 1, "backups": []}\n' > "$d/good.json"
    python3 "$CHECK" "$DOC" backup-list "$d/good.json" || fail "checker refused a good document"
    rm -rf "$d"
}

run_suite "$@"
