#!/usr/bin/env bash
# Retention suite (issue 14): real PostgreSQL 15 archiving through walctl, four backups over a
# workload with spaced commit times, `walctl expire` with retention-window between backup 2's and
# backup 3's stop. `expire --now` moves "now" instead of waiting minutes for a 1-minute window.
# KILLS=N sets how many SIGKILLed expires test_expire_killed_pg15 runs (default 3; Benchmarks/expire-kill.sh: 20).
source "$(dirname "$0")/lib.sh"

V=15
start_source() {
    require_pg "$V"
    W="$(new_workdir)"; PORT="$(free_port)"; BIN="$(pg_bin "$V")"
    write_config "$W" "$@"
    init_cluster "$V" "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'" "log_timezone = 'UTC'"
    pg_start "$V" "$W/data"
    trap cleanup EXIT
}
cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    pg_stop "$V" "$W/data" immediate
    local d; for d in "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop "$V" "$d" immediate; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
    return 0
}
sql() { psql_at "$V" "$W" "$PORT" "$@"; }
wc_() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
# some_segments N: N more archived segments, each with a commit.
some_segments() {
    local i; for i in $(seq 1 "$1"); do sql "insert into t select g, 'filler' from generate_series(1, 10) g"; sql "select pg_switch_wal()" >/dev/null; done
    switch_and_wait >/dev/null
}
take_backup() {
    wc_ backup take --label "$1" --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null 2>&1 || { fail "walctl backup take $1 failed"; return 1; }
}
stop_time() { wc_ backup list --json | python3 -c "import json,sys; print([b['stopTime'] for b in json.load(sys.stdin)['backups'] if b['label']==sys.argv[1]][0])" "$1"; }
first_wal() { wc_ backup show "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['contents']['firstWALSegment'])"; }
# mid_plus SECONDS T1 T2: the instant halfway between T1 and T2, plus SECONDS (ISO 8601 with zone).
mid_plus() { python3 -c "
import sys, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace(' ', 'T'))
a, b = p(sys.argv[2]), p(sys.argv[3])
print((a + (b - a) / 2 + datetime.timedelta(seconds=float(sys.argv[1]))).isoformat())" "$@"; }
wal_metas() { repo_objects "$W" '^([^/]+/)?wal/[0-9A-F]{16}/[0-9A-F]{24}\.meta$' | sed -E 's|.*/([0-9A-F]{24})\.meta|\1|' | sort; }
recover_to() { local dir="$1"; shift; as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$dir" "$@" >"$dir.out" 2>"$dir.err"; }
wait_state() {
    wait_until 120 bash -c "runuser -u postgres -- $WALCTL recover --status --json --pgdata $1 | grep -q '\"state\" : \"$2\"'" \
        || { tail -5 "$1/walctl_recovery.log" >&2; fail "recovery in $1 did not reach $2"; }
}
# recover_rows TARGET EXPECTED: recovers a new data directory to TARGET and compares the rows.
recover_rows() {
    local dir; dir="$W/rec$RANDOM"
    recover_to "$dir" --to "$1" || { cat "$dir.err" >&2; fail "recover to $1 refused"; return 1; }
    local p2; p2="$(free_port)"
    as_pg "$BIN/pg_ctl" -D "$dir" -l "$dir/walctl_recovery.log" -o "-p $p2 -c archive_mode=off" -w -t 120 start >/dev/null 2>&1 || true
    wait_state "$dir" paused-at-target
    assert_eq "$(psql_at "$V" "$W" "$p2" "select string_agg(phase || ':' || n, ',' order by phase) from (select phase, count(*) n from t where phase <> 'filler' group by phase) s")" "$2" "rows at $1"
    pg_stop "$V" "$dir" immediate
}
info_summary() {
    wc_ info --json "$@" | python3 -c "
import json, sys
i = json.load(sys.stdin)
print(json.dumps({'backups': [(b['label'], b['status']) for b in i['backups']], 'counts': i['counts'],
                  'timelines': [(t['timeline'], t['segmentCount'], t['ranges']) for t in i['timelines']],
                  'windows': i['recoverableWindows']}, sort_keys=True))"
}

# ---------------------------------------------------------------------------------------------- the window

test_window_pg15() {
    start_source "retention-window = 1m"
    sql "create table t(id int, phase text)"
    take_backup b1
    sql "insert into t select g, 'p1' from generate_series(1, 100) g"; some_segments 3
    local before_window; before_window="$(now_utc)"; sleep 0.2
    take_backup b2
    sql "insert into t select g, 'p2' from generate_series(1, 100) g"; some_segments 2
    local s2; s2="$(stop_time b2)"
    sleep 2
    local t_a; t_a="$(now_utc)"; sleep 0.2        # inside the window, before backup 3: from b2
    sql "insert into t select g, 'p3' from generate_series(1, 100) g"; some_segments 2
    take_backup b3
    sql "insert into t select g, 'p4' from generate_series(1, 100) g"; some_segments 2
    take_backup b4
    sql "insert into t select g, 'p5' from generate_series(1, 100) g"; some_segments 1
    local t_b; t_b="$(now_utc)"; sleep 0.2         # after backup 4
    sql "insert into t select g, 'p6' from generate_series(1, 100) g"; switch_and_wait >/dev/null
    local s3; s3="$(stop_time b3)"
    # The window (1 minute) starts halfway between b2's and b3's stop.
    local now; now="$(mid_plus 60 "$s2" "$s3")"
    local b2wal; b2wal="$(first_wal b2)"
    echo "    window start between $s2 and $s3; expire --now $now; b2 starts at $b2wal"

    wc_ expire --dry-run --now "$now" > "$W/dry.out" || { cat "$W/dry.out"; fail "expire --dry-run failed"; }
    grep -q "backup b1: REMOVE (retention-window" "$W/dry.out" || { cat "$W/dry.out"; fail "dry run does not release b1 by retention-window"; }
    grep -q "backup b2: keep (retention-window: the newest backup that stopped at or before" "$W/dry.out" || { cat "$W/dry.out"; fail "b2 is not the window's anchor"; }
    grep -qE "WAL timeline 1: REMOVE 0+1[0-9A-F]+ \.\. [0-9A-F]{24}: [0-9]+ segments" "$W/dry.out" || { cat "$W/dry.out"; fail "no WAL range in the dry run"; }
    [ -n "$(repo_objects "$W" 'backup/b1/backup.json')" ] || fail "--dry-run removed b1"

    wc_ expire --now "$now" --json > "$W/exp.json" || { cat "$W/exp.json"; fail "expire failed"; }
    python3 - "$W/exp.json" <<'PY' || fail "expire --json lacks what it removed"
import json, sys
r = json.load(open(sys.argv[1]))
p = r["plan"]
assert [b["label"] for b in p["backups"] if b["action"] == "remove"] == ["b1"], p["backups"]
assert p["walRemoved"] and all(x["segments"] > 0 and x["storedBytes"] > 0 for x in p["walRemoved"]), p["walRemoved"]
assert p["recoverableFromBackup"] == "b2" and p["bytesFreed"] > 0 and r["objectsRemoved"] > 0 and r["requests"] > 0
PY
    [ -z "$(repo_objects "$W" 'backup/b1/')" ] || fail "objects of b1 remain: $(repo_objects "$W" 'backup/b1/')"
    wc_ backup list | grep -q '^b1 ' && fail "b1 still listed"
    local early; early="$(wal_metas | awk -v f="$b2wal" '$0 < f')"
    [ -z "$early" ] || fail "WAL before b2's start remains: $early"
    [ -n "$(wal_metas | grep -x "$b2wal")" ] || fail "b2's first segment $b2wal was removed"
    wc_ verify > "$W/verify.out" 2>&1 || { cat "$W/verify.out"; fail "verify not clean after expire"; }

    # Inside the window: exact rows. Before it: refused with the nearest recoverable time.
    recover_rows "$t_a" "p1:100,p2:100"
    recover_rows "$t_b" "p1:100,p2:100,p3:100,p4:100,p5:100"
    local rdir="$W/recold"
    if recover_to "$rdir" --to "$before_window" --dry-run; then fail "a target before the window was planned"; fi
    grep -q "before-first-backup" "$rdir.err" || { cat "$rdir.err"; fail "refusal is not before-first-backup"; }
    grep -q "(b2, stopped at $(echo "$s2" | cut -c1-10) $(echo "$s2" | cut -c12-19)" "$rdir.err" && grep -q "The earliest recoverable target is 20" "$rdir.err" \
        || { cat "$rdir.err"; fail "refusal does not name the nearest recoverable time (b2's stop $s2)"; }

    # A fresh host: the catalog rebuilt from the repository gives the same info.
    local a b; a="$(info_summary)"; b="$(info_summary --catalog "$W/fresh.db")"
    assert_eq "$b" "$a" "info from a rebuilt catalog"
    # A second expire has nothing left to do.
    wc_ expire --now "$now" > "$W/exp2.out" || fail "second expire failed"
    grep -q "WAL: nothing to remove" "$W/exp2.out" || { cat "$W/exp2.out"; fail "second expire removed WAL again"; }
    cleanup
}

test_expire_refuses_without_settings_pg15() {
    start_source
    local out rc=0
    out="$(wc_ expire 2>&1)" || rc=$?
    [ "$rc" -ne 0 ] || fail "expire without settings succeeded"
    echo "$out" | grep -q "error \[retention-unset\].*retention-window.*retention-full" || fail "refusal does not name the settings: $out"
    out="$(wc_ expire --set retention-window=14x 2>&1)" && fail "a bad duration was accepted"
    echo "$out" | grep -q "retention-window" || fail "bad duration not named: $out"
    cleanup
}

# ---------------------------------------------------------------------------------------------- pins, annotations

test_pin_and_annotations_pg15() {
    start_source "retention-full = 1"
    sql "create table t(id int, phase text)"
    wc_ backup take --label a1 --annotation ticket=OPS-1 --annotation "note=before upgrade" --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "backup with annotations failed"
    wc_ backup show a1 | grep -q 'annotation: *ticket=OPS-1' || fail "backup show lacks the annotation"
    wc_ backup show a1 --json | grep -q '"ticket" : "OPS-1"' || fail "backup show --json lacks the annotation"
    wc_ backup list --json | grep -q '"note" : "before upgrade"' || fail "backup list --json lacks the annotation"
    some_segments 2; take_backup a2
    some_segments 2; take_backup a3
    wc_ backup pin a1 >/dev/null || fail "pin failed"
    wc_ backup list | grep -E '^a1 .*pinned' >/dev/null || fail "backup list does not show a1 pinned"
    wc_ expire > "$W/exp.out" || { cat "$W/exp.out"; fail "expire failed"; }
    grep -q "backup a1: keep (pinned)" "$W/exp.out" || { cat "$W/exp.out"; fail "pinned a1 not kept"; }
    grep -q "backup a2: REMOVE (retention-full" "$W/exp.out" || { cat "$W/exp.out"; fail "a2 not released by retention-full"; }
    [ -n "$(repo_objects "$W" 'backup/a1/backup.json')" ] || fail "pinned a1 was removed"
    wc_ verify > "$W/v.out" 2>&1 || { cat "$W/v.out"; fail "verify not clean"; }
    wc_ backup unpin a1 >/dev/null || fail "unpin failed"
    wc_ expire > "$W/exp2.out" || fail "expire after unpin failed"
    grep -q "backup a1: REMOVE" "$W/exp2.out" || { cat "$W/exp2.out"; fail "unpinned a1 not released"; }
    [ -z "$(repo_objects "$W" 'backup/a1/')" ] || fail "a1's objects remain after unpin + expire"
    wc_ verify >/dev/null 2>&1 || fail "verify not clean after the second expire"
    cleanup
}

# ---------------------------------------------------------------------------------------------- kills, concurrency

test_expire_killed_pg15() {
    local kills="${KILLS:-3}" i
    start_source
    sql "create table t(id int, phase text)"
    for i in $(seq 1 $((kills + 2))); do some_segments 8; take_backup "k$i"; done
    sql "insert into t select g, 'tail' from generate_series(1, 10) g"; switch_and_wait >/dev/null
    # On a file repository every unlink is slowed by 20 ms (strace fault injection, no change to
    # walctl), so that the removal phase lasts long enough for random kill points to land inside it.
    local slow=()
    [ "$WALCTL_TEST_REPO" = file ] && command -v strace >/dev/null && slow=(strace -f -qq -o /dev/null -e trace=unlink,unlinkat -e inject=unlink,unlinkat:delay_enter=20000)
    local t0 t1; t0="$(date +%s%N)"
    as_pg "${slow[@]}" "$WALCTL" expire --dry-run --config "$W/walctl.conf" --set retention-full=$((kills + 2)) >/dev/null
    t1="$(date +%s%N)"
    # Kill points: from the end of planning (a dry run's time) through the removal phase (~20 objects, 20+ ms each).
    local dry_ms=$(( (t1 - t0) / 1000000 )) span_ms=450
    for i in $(seq 1 "$kills"); do
        local keep=$((kills + 2 - i)) delay=$(( (i == 1 ? RANDOM % dry_ms : dry_ms + RANDOM % span_ms) ))
        as_pg "${slow[@]}" "$WALCTL" expire --config "$W/walctl.conf" --set retention-full=$keep >/dev/null 2>&1 &
        local pid=$! target=""
        local w; for w in $(seq 1 200); do target="$(walctl_under "$pid")"; [ -n "$target" ] && break; sleep 0.01; done
        [ -n "$target" ] || fail "no walctl process under $pid"
        if [ "$WALCTL_TEST_REPO" = s3 ] && [ $((i % 2)) -eq 0 ]; then
            # Even rounds on S3: a random instant (0-30 ms) after the released backup's backup.json is gone.
            delay="after backup.json + $((RANDOM % 30))"
            kill_after_gone "backup/k$i/backup.json" "${target:-0}" "${delay##* }"
        else
            sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
            [ -n "$target" ] && kill -9 "$target" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        wc_ verify > "$W/v$i.out" 2>&1 || { cat "$W/v$i.out"; fail "verify not clean after expire was killed at ${delay} ms (round $i)"; }
        # The killed expire's lease is still there: its process is gone, so the next one takes it over.
        wc_ expire --set retention-full=$keep > "$W/e$i.out" 2>&1 || { cat "$W/e$i.out"; fail "second expire failed (round $i)"; }
        wc_ verify > "$W/v$i.out" 2>&1 || { cat "$W/v$i.out"; fail "verify not clean after the second expire (round $i)"; }
        local n; n="$(wc_ backup list | grep -c '^k')"
        assert_eq "$n" "$keep" "backups left after round $i (killed at $delay of ~$span_ms ms)"
        [ -z "$(repo_objects "$W" "backup/k$i/")" ] || fail "objects of k$i remain after round $i"
        local state="before the lease, or after the end"
        grep -q "taking over" "$W/e$i.out" && state="holding the lease, before the journal"
        grep -q "finishing" "$W/e$i.out" && state="mid-removal: the second expire finished the journal"
        echo "    round $i: killed at ${delay} ms (planning ~${dry_ms} ms; $state); verify clean; second expire finished"
        [ -n "${DEBUG_KILLS:-}" ] && head -3 "$W/e$i.out" && ls "$W/repo/locks" "$W/repo/backup"
    done
    local tt; tt="$(now_utc)"; sleep 0.2
    sql "insert into t select g, 'after' from generate_series(1, 10) g"; switch_and_wait >/dev/null
    recover_rows "$tt" "tail:10"
    cleanup
}

# catalog check knows what expire journaled: an expire interrupted after its journal (every unlink
# from the 4th on fails, by strace fault injection) leaves a released backup without backup.json
# and WAL half removed; catalog check is clean and lists them as expiring. A segment deleted by
# hand (no expire record) is still reported missing. The next expire finishes; check clean again.
# File repository only (the interruption is strace's fault injection on unlink): not defined on S3,
# so it is neither run nor counted there.
[ "$WALCTL_TEST_REPO" = file ] && test_catalog_check_after_interrupted_expire_pg15() {
    start_source
    command -v strace >/dev/null || { fail "strace is needed to interrupt expire"; return 1; }
    sql "create table t(id int, phase text)"
    some_segments 4; take_backup c1
    some_segments 4; take_backup c2
    some_segments 2
    local rc=0
    as_pg strace -f -qq -o /dev/null -e trace=unlink,unlinkat -e inject=unlink,unlinkat:error=EIO:when=4+ \
        "$WALCTL" expire --config "$W/walctl.conf" --set retention-full=1 > "$W/e1.out" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat "$W/e1.out"; fail "expire with failing unlinks succeeded"; return 1; }
    [ -z "$(repo_objects "$W" 'backup/c1/backup.json')" ] || { cat "$W/e1.out"; fail "the interruption came before c1's backup.json went"; }
    rc=0; wc_ catalog check --json > "$W/check1.json" 2>"$W/check1.err" || rc=$?
    assert_eq "$rc" 0 "catalog check exit after an interrupted expire ($(cat "$W/check1.json" "$W/check1.err" | head -c 600))"
    python3 - "$W/check1.json" <<'PY' || fail "catalog check --json does not list what expire is removing: $(head -c 800 "$W/check1.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["clean"], d
e = d["drift"]["expiring"]
assert "backup c1" in e and any(len(n) == 24 for n in e), e
PY
    wc_ catalog check > "$W/check1.txt" 2>&1 || fail "catalog check (text) after an interrupted expire: $(cat "$W/check1.txt")"
    grep -q "^expiring: .* an interrupted walctl expire has not finished removing" "$W/check1.txt" || fail "no expiring line: $(cat "$W/check1.txt")"
    # Missing without an expire record: still drift.
    local victim; victim="$(wal_metas | tail -2 | head -1)"
    mkdir -p "$W/aside"; mv "$W/repo/wal/${victim:0:16}/$victim".* "$W/aside/"
    rc=0; wc_ catalog check --json > "$W/check2.json" 2>/dev/null || rc=$?
    assert_eq "$rc" 1 "catalog check exit with a segment deleted by hand"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["drift"]["missingFromRepository"] == [sys.argv[2]], d["drift"]' "$W/check2.json" "$victim" \
        || fail "catalog check does not report $victim: $(head -c 800 "$W/check2.json")"
    mv "$W/aside/"* "$W/repo/wal/${victim:0:16}/"
    # The next expire finishes the journal; nothing is expiring any more.
    wc_ expire --set retention-full=1 > "$W/e2.out" 2>&1 || { cat "$W/e2.out"; fail "second expire failed"; }
    wc_ catalog check --json > "$W/check3.json" 2>&1 || fail "catalog check after the second expire: $(head -c 800 "$W/check3.json")"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["clean"] and d["drift"]["expiring"] == [], d' "$W/check3.json" || fail "still expiring after the second expire"
    [ -z "$(repo_objects "$W" 'backup/c1/')" ] || fail "objects of c1 remain"
    cleanup
}

# walctl_under PID: the walctl process in PID's tree (runuser -> [strace ->] walctl).
walctl_under() {
    local p="$1" c n
    for n in 1 2 3; do
        case "$(cat /proc/$p/comm 2>/dev/null)" in walctl|walctl-core) echo "$p"; return ;; esac   # the front execs walctl-core in the same process
        c="$(ps -o pid= --ppid "$p" | tr -d ' ' | head -1)"
        [ -n "$c" ] || return 0
        p="$c"
    done
    case "$(cat /proc/$p/comm 2>/dev/null)" in walctl|walctl-core) echo "$p" ;; esac
}

# kill_after_gone KEY PID DELAY_MS: SIGKILLs PID DELAY_MS after the repository object KEY disappears.
kill_after_gone() {
    [ "$2" != 0 ] || return 0
    python3 - "$@" "$WALCTL_TEST_REPO" "$W" "${MOTO_BUCKET:-}" <<'PY'
import os, signal, sys, time
key, pid, delay, kind, work, bucket = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
if kind == "s3":
    import boto3
    s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
    def present():
        try: s3.head_object(Bucket=bucket, Key=os.path.basename(work) + "/" + key); return True
        except Exception: return False
else:
    present = lambda: os.path.exists(os.path.join(work, "repo", key))
end = time.time() + 20
while present() and time.time() < end:
    try: os.kill(pid, 0)
    except ProcessLookupError: sys.exit(0)
time.sleep(delay / 1000)
try: os.kill(pid, signal.SIGKILL)
except ProcessLookupError: pass
PY
}

test_backup_during_expire_pg15() {
    start_source "retention-full = 1"
    sql "create table t(id int, phase text)"
    sql "insert into t select g, repeat('x', 300) from generate_series(1, 200000) g"
    take_backup d1; some_segments 6; take_backup d2; some_segments 6
    wc_ backup take --label d3 --dbname "host=$W port=$PORT user=postgres dbname=postgres" > "$W/b3.out" 2>&1 &
    local bpid=$!
    wait_until 30 bash -c "[ -n \"\$(ls $W/repo/backup/d3 2>/dev/null)\" ] || [ \"$WALCTL_TEST_REPO\" = s3 ]" || true
    wc_ expire > "$W/exp.out" 2>&1 || { cat "$W/exp.out"; fail "expire during a backup failed"; }
    wait "$bpid" || { cat "$W/b3.out"; fail "the backup running during expire failed"; }
    grep -q "backup d1: REMOVE" "$W/exp.out" || { cat "$W/exp.out"; fail "d1 not released"; }
    wc_ backup list | grep -q '^d3 ' || fail "d3 not listed"
    wc_ verify > "$W/v.out" 2>&1 || { cat "$W/v.out"; fail "verify not clean"; }
    cleanup
}

test_recovery_during_expire_pg15() {
    start_source "retention-full = 1"
    sql "create table t(id int, phase text)"
    take_backup r1; some_segments 6
    take_backup r2
    sql "insert into t select g, 'p1' from generate_series(1, 100) g"
    local tt; tt="$(now_utc)"; sleep 0.2
    sql "insert into t select g, 'p2' from generate_series(1, 100) g"; some_segments 6
    # A slow expire (every unlink delayed 50 ms on a file repository) holds the lease while recover plans.
    local slow=()
    [ "$WALCTL_TEST_REPO" = file ] && command -v strace >/dev/null && slow=(strace -f -qq -o /dev/null -e trace=unlink,unlinkat -e inject=unlink,unlinkat:delay_enter=50000)
    as_pg "${slow[@]}" "$WALCTL" expire --config "$W/walctl.conf" > "$W/exp.out" 2>&1 &
    local epid=$!
    wait_until 10 bash -c "[ -n \"\$(ls $W/repo/locks/expire.lease 2>/dev/null)\" ] || [ \"$WALCTL_TEST_REPO\" = s3 ]" || true
    recover_rows "$tt" "p1:100"
    wait "$epid" || { cat "$W/exp.out"; fail "expire failed"; }
    grep -q "backup r1: REMOVE" "$W/exp.out" || { cat "$W/exp.out"; fail "r1 not released"; }
    [ "$WALCTL_TEST_REPO" = s3 ] || grep -q "waiting for the expire" "$W"/rec*.err || echo "    (the recovery did not overlap the expire's lease)"
    wc_ verify > "$W/v.out" 2>&1 || { cat "$W/v.out"; fail "verify not clean"; }
    cleanup
}

# A fork inside the window: timeline 2 from a point after b2. Expire keeps what reaching both
# timelines needs: timeline 1 from b2's start, timeline 2 from the fork, 00000002.history.
test_fork_pg15() {
    start_source "retention-window = 1m"
    sql "create table t(id int, phase text)"
    take_backup f1; some_segments 3
    take_backup f2
    sql "insert into t select g, 'a' from generate_series(1, 100) g"; some_segments 1
    local s2; s2="$(stop_time f2)"
    sleep 2
    local t1; t1="$(now_utc)"; sleep 0.2
    sql "insert into t select g, 'b' from generate_series(1, 100) g"; some_segments 2
    # Recover to t1 and promote: timeline 2 archives into the same repository.
    local rec="$W/recfork"
    recover_to "$rec" --to "$t1" --action promote || { cat "$rec.err" >&2; fail "recover to t1 refused"; }
    local p1; p1="$(free_port)"
    as_pg "$BIN/pg_ctl" -D "$rec" -l "$rec/walctl_recovery.log" -o "-p $p1" -w -t 120 start >/dev/null 2>&1 || true
    wait_until 120 bash -c "[ \"\$(runuser -u postgres -- $BIN/psql -X -h $W -p $p1 -d postgres -qAt -c 'select pg_is_in_recovery()')\" = f ]" || fail "did not promote"
    psql_at "$V" "$W" "$p1" "insert into t select g, 'tl2' from generate_series(1, 100) g"
    local t2; t2="$(psql_at "$V" "$W" "$p1" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"; sleep 0.2
    psql_at "$V" "$W" "$p1" "insert into t select g, 'tl2-late' from generate_series(1, 100) g"
    local i; for i in 1 2; do psql_at "$V" "$W" "$p1" "select pg_switch_wal()" >/dev/null; psql_at "$V" "$W" "$p1" "insert into t select 1, 'filler'"; done
    psql_at "$V" "$W" "$p1" "select pg_switch_wal()" >/dev/null
    wait_until 60 bash -c "runuser -u postgres -- $BIN/psql -X -h $W -p $p1 -d postgres -qAt -c 'select last_archived_wal from pg_stat_archiver' | grep -q '^00000002'" || fail "timeline 2 not archived"
    sleep 1
    pg_stop "$V" "$rec"
    local now; now="$(python3 -c "import sys,datetime; print((datetime.datetime.fromisoformat(sys.argv[1]) + datetime.timedelta(seconds=61)).isoformat())" "$s2")"
    wc_ expire --now "$now" > "$W/exp.out" || { cat "$W/exp.out"; fail "expire failed"; }
    grep -q "backup f1: REMOVE" "$W/exp.out" || { cat "$W/exp.out"; fail "f1 not released"; }
    grep -q "backup f2: keep" "$W/exp.out" || { cat "$W/exp.out"; fail "f2 not kept"; }
    grep -q "WAL timeline 2: keep from" "$W/exp.out" || { cat "$W/exp.out"; fail "timeline 2 not kept"; }
    [ -n "$(repo_objects "$W" 'wal/history/00000002\.history\.meta')" ] || fail "00000002.history was removed"
    wc_ verify > "$W/v.out" 2>&1 || { cat "$W/v.out"; fail "verify not clean"; }
    recover_rows "$t2" "a:100,tl2:100"
    local d="$W/rectl1"
    recover_to "$d" --to "$t1" --timeline 1 --dry-run || { cat "$d.err"; fail "a target on timeline 1 in the window is refused"; }
    cleanup
}

# Benchmarks/expire.sh measures S3 against `moto-server.py --fast-list` (a sorted key index behind
# ListObjectsV2): its listings must be stock moto's, page for page (Tests/integration/moto_fast_list.py).
[ "$WALCTL_TEST_REPO" = s3 ] && test_moto_fast_list() {
    python3 "$REPO/Tests/integration/moto_fast_list.py" || fail "moto-server.py --fast-list lists differently from moto"
}

run_suite "$@"
