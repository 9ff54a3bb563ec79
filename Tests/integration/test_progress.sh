#!/usr/bin/env bash
# Progress suite (issue 15): backup, restore-backup, recover's restore step, catalog rebuild and
# verify --deep show a live progress line (`\r`-redrawn, erased at the end) when stderr is a terminal
# (captured with util-linux `script`), a plain `walctl: ...` line every progress-interval seconds when
# it is not, and nothing with --no-progress; restore-backup prints its result once; archive-push and
# archive-get never show progress (and do not take --no-progress).
source "$(dirname "$0")/lib.sh"

cleanup() { pg_stop "$V" "$W/data" immediate; }

# on_tty OUT CMD...: runs CMD (as postgres) with stdin, stdout and stderr on a pseudo-terminal; the
# transcript goes to OUT.
on_tty() {
    local out="$1"; shift
    local cmd; printf -v cmd '%q ' "$@"
    script -qefc "runuser -u postgres -- $cmd" "$out" >/dev/null 2>&1 </dev/null
}

# has_live_line FILE TITLE: FILE has a line redrawn in place: `\rTITLE: X of Y (P%)...ESC[K`.
has_live_line() {
    python3 - "$1" "$2" <<'PY'
import re, sys
t = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
ok = re.search("\r" + re.escape(sys.argv[2]) + r": [^\r\n]* of [^\r\n]* \(\d+%\)[^\r\n]*\x1b\[K", t)
sys.exit(0 if ok else 1)
PY
}

test_progress_on_a_terminal_in_a_log_and_off() {
    start_archiving_source 15 "walctl:archive-check-timeout = 60"
    local port="$PORT"
    local conn="host=$W port=$port user=postgres dbname=postgres" c="$W/walctl.conf"
    psql_at 15 "$W" "$port" "create table t as select g, md5(g::text) as m from generate_series(1, 100000) g"

    # A terminal: a live line, redrawn with \r, erased at the end; the result line after it.
    on_tty "$W/backup.tty" "$WALCTL" backup --label t1 --dbname "$conn" --config "$c" || fail "backup on a terminal: $(cat "$W/backup.tty")"
    has_live_line "$W/backup.tty" "backup t1" || fail "no live progress line for backup: $(cat -v "$W/backup.tty" | head -c 800)"
    grep -q "backup t1 complete" "$W/backup.tty" || fail "no result line"
    # --no-progress: none.
    on_tty "$W/quiet.tty" "$WALCTL" backup --label t2 --dbname "$conn" --config "$c" --no-progress || fail "backup --no-progress"
    ! grep -q $'\r'"backup t2:" "$W/quiet.tty" || fail "--no-progress showed progress: $(cat -v "$W/quiet.tty")"
    grep -q "backup t2 complete" "$W/quiet.tty" || fail "no result line with --no-progress"

    # Not a terminal: a plain line every progress-interval (1 s here) on stderr; the backup is slowed
    # down to 1 MB/s (5 MB compressed by the server: about 5 s) so that lines must come.
    as_pg "$WALCTL" backup --label t3 --dbname "$conn" --config "$c" --max-rate 1024 --set progress-interval=1 \
        > "$W/t3.out" 2> "$W/t3.err" || fail "backup t3: $(cat "$W/t3.err")"
    local n; n="$(grep -cE '^walctl: backup t3: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]i?B \([0-9]+%\), [0-9.]+ [KMG]?i?B/s' "$W/t3.err")"
    [ "$n" -ge 2 ] || fail "expected at least 2 progress lines in ~5 s, got $n: $(cat "$W/t3.err")"
    ! grep -q $'\r' "$W/t3.err" || fail "carriage return in a log"
    as_pg "$WALCTL" backup --label t4 --dbname "$conn" --config "$c" --max-rate 2048 --set progress-interval=1 --no-progress \
        > "$W/t4.out" 2> "$W/t4.err" || fail "backup t4"
    ! grep -qE "backup t4: [0-9.]+ [KMG]?i?B( of|,|$)" "$W/t4.err" || fail "--no-progress printed progress lines: $(cat "$W/t4.err")"
    grep -q "backup t4: complete" "$W/t4.err" || fail "no log lines with --no-progress: $(cat "$W/t4.err")"

    # restore-backup: live on a terminal; its result printed once (it was printed twice).
    on_tty "$W/restore.tty" "$WALCTL" restore-backup t1 --pgdata "$W/r1" --config "$c" || fail "restore-backup: $(cat "$W/restore.tty")"
    has_live_line "$W/restore.tty" "restore t1" || fail "no live progress line for restore-backup: $(cat -v "$W/restore.tty" | head -c 800)"
    as_pg "$WALCTL" restore-backup t1 --pgdata "$W/r2" --config "$c" > "$W/r2.out" 2>&1 || fail "restore-backup (log)"
    assert_eq "$(grep -c "verified against the manifest" "$W/r2.out")" "1" "restore-backup result lines: $(cat "$W/r2.out")"
    grep -q "^restored backup t1 into $W/r2: " "$W/r2.out" || fail "no result line: $(cat "$W/r2.out")"

    # catalog rebuild, verify --deep, recover's restore step.
    on_tty "$W/rebuild.tty" "$WALCTL" catalog rebuild --config "$c" || fail "catalog rebuild: $(cat "$W/rebuild.tty")"
    has_live_line "$W/rebuild.tty" "catalog rebuild" || fail "no live progress line for catalog rebuild: $(cat -v "$W/rebuild.tty")"
    grep -q "rebuilt from" "$W/rebuild.tty" || fail "no rebuild result"
    on_tty "$W/verify.tty" "$WALCTL" verify --deep --config "$c" || fail "verify --deep: $(cat "$W/verify.tty")"
    has_live_line "$W/verify.tty" "verify --deep" || fail "no live progress line for verify --deep: $(cat -v "$W/verify.tty")"
    on_tty "$W/recover.tty" "$WALCTL" recover --latest --pgdata "$W/rec" --config "$c" || fail "recover: $(cat "$W/recover.tty")"
    has_live_line "$W/recover.tty" "restore t4" || fail "no live progress line for recover's restore: $(cat -v "$W/recover.tty" | head -c 800)"

    # Never on archive-push / archive-get: no line on a terminal, and no --no-progress option.
    local seg; seg="$(ls "$W/repo/wal/0000000100000000/" | grep -E '^[0-9A-F]{24}\.meta$' | head -1)"; seg="${seg%.meta}"
    on_tty "$W/get.tty" "$WALCTL" archive-get "$seg" "$W/got" --config "$c" || fail "archive-get on a terminal: $(cat "$W/get.tty")"
    ! grep -q $'\r'. "$W/get.tty" || fail "archive-get printed a live line: $(cat -v "$W/get.tty")"
    if as_pg "$WALCTL" archive-push --no-progress "$W/got" --config "$c" 2>/dev/null; then fail "archive-push took --no-progress"; fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

run_suite "$@"
