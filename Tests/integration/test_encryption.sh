#!/usr/bin/env bash
# Client-side encryption (issue 17, docs/encryption.md): real PostgreSQL 15 archiving into encrypted
# repositories. The archive/recover story once on an encrypted S3 repository (moto), with a key
# rotation before the recovery; on a file repository: nothing stored in plaintext, `walctl decrypt`,
# tampered objects refused by archive-get (255, %p never written) and restore-backup, wrong or
# missing passphrases refused at start with one `[cipher-key]` line. Async archiving and a recovery
# through walctl-fast: the prefetched, decrypted segments are served without starting walctl.
source "$(dirname "$0")/lib.sh"

V=15
BIN="$(pg_bin $V)"

# setup [s3|file]: a cluster archiving into an encrypted repository. Sets W, PORT, PASSF.
setup() {
    WALCTL_TEST_REPO="$1"
    # The passphrase file exists before walctl init (in start_archiving_source): beside the work directory.
    PASSF="$(mktemp /tmp/walctl-it-pass.XXXXXX)"; echo "first passphrase" > "$PASSF"; chown postgres "$PASSF"; chmod 600 "$PASSF"
    start_archiving_source $V "walctl:repository-cipher = aes-256-gcm" "walctl:repository-cipher-pass-file = $PASSF" "log_timezone = 'UTC'"
}
cleanup() {
    [ -n "${W:-}" ] && [ -d "$W" ] || return 0
    local d; for d in "$W"/data "$W"/rec*; do [ -f "$d/postmaster.pid" ] && pg_stop $V "$d" immediate; done
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W" "${PASSF:-}"
    return 0
}
sql() { psql_at $V "$W" "$PORT" "$@"; }
wc_() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
# object_key NAME: the data object's key of an archived segment (from its decrypted meta).
object_key() {
    local name="$1"
    wc_ decrypt "wal/${name:0:16}/$name.meta" | python3 -c "import json,sys; m=json.load(sys.stdin); print('wal/%s/%s.%s.zst' % (m['name'][:16], m['name'], m['crc32c']))"
}
# get_refused NAME WHY: archive-get exits 255 with one error line naming [object-tampered] and %p does not exist.
get_refused() {
    local name="$1" why="$2" rc=0
    rm -f "$W/out.seg"
    as_pg "$WALCTL" archive-get --config "$W/walctl.conf" --set archive-get-retry-time=0 "$name" "$W/out.seg" 2>"$W/get.err" || rc=$?
    [ "$rc" = 255 ] || fail "$why: archive-get exited $rc, not 255 ($(cat "$W/get.err"))"
    [ ! -e "$W/out.seg" ] || fail "$why: archive-get wrote %p"
    grep -q "error \[object-tampered\]" "$W/get.err" || fail "$why: no [object-tampered] error: $(cat "$W/get.err")"
    [ "$(wc -l < "$W/get.err")" = 1 ] || fail "$why: more than one line on stderr: $(cat "$W/get.err")"
}

# ------------------------------------------------------------------------------ the story on S3

test_story_encrypted_s3() {
    setup s3
    sql "create table accounts(id int primary key, owner text)"
    sql "insert into accounts select g, 'before-backup-' || g from generate_series(1, 1000) g"
    wc_ backup take --label enc --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null || fail "backup take on an encrypted repository failed"
    sql "insert into accounts select g, 'after-backup-' || g from generate_series(1001, 3000) g"
    switch_and_wait >/dev/null
    local target; target="$(now_utc)"
    sleep 0.3
    sql "insert into accounts select g, 'after-target-' || g from generate_series(3001, 3500) g"
    sql "drop table accounts"
    LAST_SEGMENT="$(switch_and_wait)"
    # Nothing but the binding is stored in plaintext: every object starts with the format's magic.
    local k n=0
    for k in $(repo_objects "$W" '/(wal|backup)/'); do
        [ "$(repo_get "$W" "$k" | head -c 7)" = WCTLENC ] || fail "$k is not encrypted"
        n=$((n + 1))
    done
    [ "$n" -gt 6 ] || fail "only $n objects"
    repo_get "$W" "$(basename "$W")/repository.json" | grep -q '"wrappedKey"' || fail "the binding has no wrapped key"
    repo_get "$W" "$(basename "$W")/repository.json" | grep -q '"scrypt"' || fail "the binding does not name its KDF"
    # decrypt | zstd -d gives the segment archive-get restores (verified against its CRC-32C).
    local key; key="$(object_key "$LAST_SEGMENT")"
    wc_ decrypt "$key" | zstd -dq > "$W/dec.seg" || fail "walctl decrypt $key | zstd -d failed"
    wc_ archive-get "$LAST_SEGMENT" "$W/got.seg" || fail "archive-get $LAST_SEGMENT failed"
    cmp -s "$W/dec.seg" "$W/got.seg" || fail "decrypt | zstd -d differs from the restored segment"
    [ "$(stat -c %s "$W/dec.seg")" = 16777216 ] || fail "decrypted segment is not 16 MiB"
    # Rotate the passphrase; the old one is then refused, the new one recovers.
    echo "second passphrase" > "$W/newpass"; chown postgres "$W/newpass"
    wc_ repository rotate-key --new-pass-file "$W/newpass" >/dev/null || fail "rotate-key failed"
    local rc=0
    wc_ archive-get --set archive-get-retry-time=0 "$LAST_SEGMENT" "$W/old.seg" 2>"$W/old.err" || rc=$?
    [ "$rc" = 255 ] && grep -q "error \[cipher-key\]: wrong passphrase" "$W/old.err" || fail "the old passphrase was not refused after rotate-key (exit $rc: $(cat "$W/old.err"))"
    [ ! -e "$W/old.seg" ] || fail "archive-get with the old passphrase wrote %p"
    cp "$W/newpass" "$PASSF"
    pg_stop $V "$W/data"
    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --to "$target" >"$W/rec.out" 2>"$W/rec.err" || { cat "$W/rec.err" >&2; fail "recover refused"; }
    local port2; port2="$(free_port)"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin runuser -u postgres -- "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec/walctl_recovery.log" -o "-p $port2 -c archive_mode=off" -w -t 120 start >/dev/null 2>&1 || true
    wait_until 120 bash -c "runuser -u postgres -- $WALCTL recover --status --json --pgdata $W/rec | grep -q '\"state\" : \"paused-at-target\"'" \
        || { tail -5 "$W/rec/walctl_recovery.log" >&2; fail "recovery did not reach the target"; }
    assert_eq "$(psql_at $V "$W" "$port2" "select count(*) from accounts")" "3000" "rows at the target"
    assert_eq "$(psql_at $V "$W" "$port2" "select count(*) from accounts where owner like 'after-target-%'")" "0" "rows after the target"
    pg_stop $V "$W/rec" immediate
}

# ------------------------------------------------------------------------------ file repository

test_tamper_and_passphrases_file() {
    setup file
    sql "create table t(id int, v text)"
    sql "insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 60000) g"   # > 64 KiB compressed
    local a; a="$(switch_and_wait)"
    sql "insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 60000) g"
    local b; b="$(switch_and_wait)"
    wc_ backup take --label b1 --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null || fail "backup take failed"
    local ka kb; ka="$(object_key "$a")"; kb="$(object_key "$b")"
    local f="$W/repo/$ka" size; size="$(stat -c %s "$f")"
    [ "$size" -gt $((2 * 65552 + 36)) ] || fail "object $ka has $size bytes: fewer than three chunks"
    head -c 7 "$f" | grep -q WCTLENC || fail "data object not encrypted"
    ! grep -q '"crc32c"' "$W/repo/wal/${a:0:16}/$a.meta" || fail "meta stored in plaintext"
    # decrypt by key and by local path, both equal to the restored segment.
    wc_ archive-get "$a" "$W/a.seg" || fail "archive-get $a failed"
    wc_ decrypt "$ka" | zstd -dq | cmp -s - "$W/a.seg" || fail "decrypt KEY | zstd -d differs from the segment"
    wc_ decrypt "$f" | zstd -dq | cmp -s - "$W/a.seg" || fail "decrypt PATH | zstd -d differs from the segment"
    cp "$f" "$W/copy.zst"; chown postgres "$W/copy.zst"
    wc_ decrypt "$W/copy.zst" >/dev/null 2>&1 && fail "a copy outside the repository was decrypted without --name"
    wc_ decrypt "$W/copy.zst" --name "$ka" | zstd -dq | cmp -s - "$W/a.seg" || fail "decrypt COPY --name KEY differs"
    wc_ decrypt "$W/copy.zst" --name "$kb" >/dev/null 2>&1 && fail "a copy decrypted under another object's name"

    # Tampering: each case changes the stored object, archive-get refuses it, the original is put back.
    cp "$f" "$W/orig"
    local chunk=$((65536 + 16)) h=36 pos
    for pos in 0 7 11 20 30 $((h + 5)) $((h + 65535)) $((h + 65540)) $((h + chunk + 100)) $((size - 17)) $((size - 1)); do
        cp "$W/orig" "$f"
        printf "$(printf '\\x%02x' $(( $(od -An -tu1 -j "$pos" -N1 "$W/orig") ^ 1 )))" | dd of="$f" bs=1 seek="$pos" conv=notrunc 2>/dev/null
        get_refused "$a" "bit flipped at byte $pos"
    done
    local cut
    for cut in 10 $h $((h + chunk)) $((h + 2 * chunk)) $((h + 100)) $((h + chunk + 3000)) $((size - 1)); do
        cp "$W/orig" "$f"; truncate -s "$cut" "$f"
        get_refused "$a" "truncated to $cut bytes"
    done
    # Two chunks swapped.
    python3 -c "import sys; b=open(sys.argv[1],'rb').read(); h=$h; c=$chunk; sys.stdout.buffer.write(b[:h] + b[h+c:h+2*c] + b[h:h+c] + b[h+2*c:])" "$W/orig" > "$f"
    [ "$(stat -c %s "$f")" = "$size" ] || fail "swap test built a wrong-sized object"
    get_refused "$a" "two chunks swapped"
    # Another segment's object (a valid encrypted object, another name) put under this name.
    cp "$W/repo/$kb" "$f"
    get_refused "$a" "another object's bytes under this name"
    cp "$W/orig" "$f"
    # Another segment's meta under this name.
    cp "$W/repo/wal/${a:0:16}/$a.meta" "$W/meta.orig"
    cp "$W/repo/wal/${b:0:16}/$b.meta" "$W/repo/wal/${a:0:16}/$a.meta"
    get_refused "$a" "another segment's meta under this name"
    cp "$W/meta.orig" "$W/repo/wal/${a:0:16}/$a.meta"
    wc_ archive-get "$a" "$W/a2.seg" && cmp -s "$W/a.seg" "$W/a2.seg" || fail "the restored original is not served again"

    # restore-backup refuses a tampered backup object and a tampered backup.json.
    local bk; bk="$(cd "$W/repo" && ls backup/b1/ | grep -v -e backup.json -e backup_manifest | head -1)"
    cp "$W/repo/backup/b1/$bk" "$W/bk.orig"
    printf '\x00' | dd of="$W/repo/backup/b1/$bk" bs=1 seek=100 conv=notrunc 2>/dev/null
    local rc=0
    wc_ restore-backup b1 --pgdata "$W/restored" >/dev/null 2>"$W/rb.err" || rc=$?
    [ "$rc" != 0 ] && grep -q "object-tampered" "$W/rb.err" || fail "restore-backup of a tampered object: exit $rc, $(cat "$W/rb.err")"
    cp "$W/bk.orig" "$W/repo/backup/b1/$bk"; rm -rf "$W/restored"
    wc_ restore-backup b1 --pgdata "$W/restored" >/dev/null || fail "restore-backup of the intact backup failed"

    # Wrong passphrase: refused at start, one line, archive-get 255 without %p, archive-push 1.
    rc=0; rm -f "$W/x.seg"
    WALCTL_REPOSITORY_CIPHER_PASS=wrong as_pg env WALCTL_REPOSITORY_CIPHER_PASS=wrong "$WALCTL" archive-get --config "$W/walctl.conf" "$a" "$W/x.seg" 2>"$W/wp.err" || rc=$?
    [ "$rc" = 255 ] && [ ! -e "$W/x.seg" ] || fail "archive-get with a wrong passphrase: exit $rc"
    grep -q "^walctl: error \[cipher-key\]: wrong passphrase" "$W/wp.err" && [ "$(wc -l < "$W/wp.err")" = 1 ] || fail "wrong passphrase message: $(cat "$W/wp.err")"
    mkdir -p "$W/pw"; cp "$W/a.seg" "$W/pw/$a"; chown -R postgres "$W/pw"
    rc=0; as_pg env WALCTL_REPOSITORY_CIPHER_PASS=wrong "$WALCTL" archive-push --config "$W/walctl.conf" "$W/pw/$a" 2>"$W/wpp.err" || rc=$?
    [ "$rc" = 1 ] && grep -q "\[cipher-key\]" "$W/wpp.err" || fail "archive-push with a wrong passphrase: exit $rc, $(cat "$W/wpp.err")"
    # The repository is encrypted but the configuration says nothing of it: refused, nothing stored in plaintext.
    rc=0; wc_ archive-get --set repository-cipher=none --set archive-get-retry-time=0 "$a" "$W/x.seg" 2>"$W/np.err" || rc=$?
    [ "$rc" = 255 ] && [ ! -e "$W/x.seg" ] && grep -q "\[cipher-key\]" "$W/np.err" || fail "archive-get without the cipher: exit $rc, $(cat "$W/np.err")"
    rc=0; wc_ archive-push --set repository-cipher=none "$W/pw/$a" 2>"$W/npp.err" || rc=$?
    [ "$rc" = 1 ] && grep -q "\[cipher-key\]" "$W/npp.err" || fail "archive-push without the cipher: exit $rc, $(cat "$W/npp.err")"
    # A cipher without a passphrase is a configuration error.
    rc=0; wc_ archive-get --set repository-cipher-pass-file= "$a" "$W/x.seg" 2>"$W/nop.err" || rc=$?
    [ "$rc" = 255 ] && grep -q "repository-cipher" "$W/nop.err" || fail "cipher without a passphrase: exit $rc, $(cat "$W/nop.err")"
    # The right passphrase from the environment works too (and walctl-fast's fallback serves it).
    as_pg env WALCTL_REPOSITORY_CIPHER_PASS="first passphrase" "$WALCTL" archive-get --config "$W/walctl.conf" --set repository-cipher-pass-file= "$b" "$W/b.seg" \
        || fail "archive-get with the passphrase in WALCTL_REPOSITORY_CIPHER_PASS failed"
    if [ -x "$(dirname "$WALCTL")/walctl-fast" ]; then
        as_pg "$(dirname "$WALCTL")/walctl-fast" archive-get --config "$W/walctl.conf" "$b" "$W/bf.seg" && cmp -s "$W/b.seg" "$W/bf.seg" || fail "walctl-fast archive-get on an encrypted repository"
    fi
    # A plaintext repository is not turned into an encrypted one by configuration.
    local P="$W/plain"; mkdir -p "$P"; chown postgres "$P"
    rc=0; as_pg "$WALCTL" init --repository "file://$P/repo" --config "$W/walctl.conf" --set repository-cipher=none --pgdata "$W/data" >/dev/null || fail "plain init failed"
    as_pg "$WALCTL" archive-push --repository "file://$P/repo" --config "$W/walctl.conf" "$W/pw/$a" 2>"$W/pe.err" && fail "archive-push encrypted into a plaintext repository"
    grep -q "is not encrypted" "$W/pe.err" || fail "plaintext repository with the cipher set: $(cat "$W/pe.err")"
}

# ------------------------------------------------------------------------------ async push, prefetch

test_async_push_and_prefetch_encrypted_file() {
    setup file
    # Switch the running cluster to asynchronous archiving (the pusher writes through the encrypted store).
    echo "archive-async = true" >> "$W/walctl.conf"
    echo "archive-workers = 2" >> "$W/walctl.conf"
    as_pg "$BIN/pg_ctl" -D "$W/data" reload >/dev/null
    sql "create table t(id int, v text)"
    local i first=""
    for i in 1 2 3 4 5 6; do
        sql "insert into t select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
        local last; last="$(switch_and_wait)"; [ -n "$first" ] || first="$last"
    done
    local k n=0
    for k in $(repo_objects "$W" '^wal/'); do
        head -c 7 "$W/repo/$k" | grep -q WCTLENC || fail "async push stored $k unencrypted"
        n=$((n + 1))
    done
    [ "$n" -ge 12 ] || fail "only $n objects"
    # Prefetching archive-get (as recovery runs it, in a data directory): every segment restored
    # and equal to what a direct get restores.
    local R="$W/restore"; mkdir -p "$R/pg_wal"; chown -R postgres "$R"
    local seg=$first name
    # The 4th segment's object has a bit flipped before the prefetcher runs: the prefetcher must
    # refuse it (nothing in the spool), and the request goes to walctl, which refuses it too (255).
    local t4 k4; t4="$(printf '%s%08X' "${seg:0:16}" $(( 16#${seg:16:8} + 3 )))"; k4="$(object_key "$t4")"
    cp "$W/repo/$k4" "$W/k4.orig"
    printf '\x01' | dd of="$W/repo/$k4" bs=1 seek=$(( $(stat -c %s "$W/repo/$k4") / 2 )) conv=notrunc 2>/dev/null
    cmp -s "$W/repo/$k4" "$W/k4.orig" && printf '\x02' | dd of="$W/repo/$k4" bs=1 seek=$(( $(stat -c %s "$W/repo/$k4") / 2 )) conv=notrunc 2>/dev/null
    for i in 1 2 3 4 5 6; do
        name="$(printf '%s%08X' "${seg:0:16}" $(( 16#${seg:16:8} + i - 1 )))"
        if [ "$i" = 4 ]; then
            wait_until 10 grep -q "prefetch of $name failed.*fails authentication" "$R/pg_wal/walctl_prefetch/daemon.log" \
                || fail "the prefetcher did not refuse the tampered $name: $(cat "$R/pg_wal/walctl_prefetch/daemon.log" 2>/dev/null)"
            [ ! -e "$R/pg_wal/walctl_prefetch/$name" ] || fail "a tampered segment is in the spool"
            rm -f "$R/pg_wal/RECOVERYXLOG"
            local rc=0
            (cd "$R" && as_pg "$(dirname "$WALCTL")/walctl-fast" archive-get --config "$W/walctl.conf" --set restore-prefetch=4 \
                --set archive-get-retry-time=0 "$name" "$R/pg_wal/RECOVERYXLOG") 2>"$W/t4.err" || rc=$?
            [ "$rc" = 255 ] && grep -q "object-tampered" "$W/t4.err" || fail "tampered $name through walctl-fast: exit $rc, $(cat "$W/t4.err")"
            [ ! -e "$R/pg_wal/RECOVERYXLOG" ] || fail "tampered $name was written to %p"
            cp "$W/k4.orig" "$W/repo/$k4"
        fi
        (cd "$R" && as_pg "$(dirname "$WALCTL")/walctl-fast" archive-get --config "$W/walctl.conf" --set restore-prefetch=4 "$name" "$R/pg_wal/RECOVERYXLOG") \
            || fail "prefetching archive-get $name failed"
        wc_ archive-get "$name" "$W/direct.seg" || fail "direct get $name"
        cmp -s "$R/pg_wal/RECOVERYXLOG" "$W/direct.seg" || fail "$name: prefetched and direct restores differ"
    done
    [ -d "$R/pg_wal/walctl_prefetch" ] || fail "no prefetch spool was used"
    as_pg "$WALCTL" archive-get --cleanup "$R/pg_wal" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------------------ walctl-fast serves

# Issue 17: a recovery from an encrypted file repository through the restore_command `walctl
# recover` writes (walctl-fast, restore-prefetch = 8). The long-lived prefetcher decrypts, checks
# and spools the segments; walctl-fast serves them by rename without starting walctl (no libcrypto
# per segment). WALCTL_FULL is a wrapper that logs each start of the full binary: most segments must
# be served without one (before, walctl-fast left every encrypted request to walctl). The archiver
# runs walctl-fast with archive-async, whose answers from the pusher's results are counted too.
test_recovery_served_by_walctl_fast_encrypted_file() {
    local FAST; FAST="$(dirname "$WALCTL")/walctl-fast"
    [ -x "$FAST" ] || fail "walctl-fast not built next to $WALCTL"
    setup file
    printf '#!/bin/sh\necho "$*" >> "%s"\nexec "%s" "$@"\n' "$W/full.calls" "$WALCTL_CORE" > "$W/full.sh"
    chmod 755 "$W/full.sh"; touch "$W/full.calls"; chown postgres "$W/full.sh" "$W/full.calls"
    printf '%s\n' "archive-async = true" "archive-workers = 2" >> "$W/walctl.conf"
    sql "alter system set archive_command = '$FAST archive-push --config $W/walctl.conf %p'"
    pg_stop $V "$W/data"
    as_pg env WALCTL_FULL="$W/full.sh" "$BIN/pg_ctl" -D "$W/data" -l "$W/data.log" -w -t 120 start >/dev/null || fail "restart with walctl-fast"
    sql "create table t(id int, v text)"
    wc_ backup take --label f1 --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null || fail "backup take failed"
    : > "$W/full.calls"
    # ~20 segments of real rows (replay takes real time per segment, as in production).
    local i
    for i in 1 2 3 4 5 6; do
        sql "insert into t select g, repeat(md5(g::text), 3) from generate_series(($i - 1) * 250000 + 1, $i * 250000) g"
    done
    switch_and_wait >/dev/null
    local target; target="$(now_utc)"
    sleep 0.3
    sql "insert into t select g, 'after-target' from generate_series(1, 1000) g"
    switch_and_wait >/dev/null
    local pushed full_pushes
    pushed="$(sql "select archived_count from pg_stat_archiver")"
    full_pushes="$(grep -c '^archive-push ' "$W/full.calls" || true)"
    # The pusher stays up while the archiver keeps up: walctl starts only to start a pusher.
    [ "$pushed" -ge 12 ] || fail "only $pushed files archived"
    [ $((full_pushes * 3)) -le "$pushed" ] || fail "walctl-fast handed $full_pushes of $pushed archive-push calls to walctl"
    assert_eq "$(sql "select failed_count from pg_stat_archiver")" "0" "archive failures"
    local expected; expected="$(sql "select count(*) || ':' || sum(id) from t where v <> 'after-target'")"
    pg_stop $V "$W/data"

    as_pg "$WALCTL" recover --config "$W/walctl.conf" --pgdata "$W/rec" --to "$target" >"$W/rec.out" 2>"$W/rec.err" || { cat "$W/rec.err" >&2; fail "recover refused"; }
    grep -qs "walctl-fast" "$W/rec/postgresql.auto.conf" "$W/rec/postgresql.conf" || fail "recover did not write walctl-fast into restore_command"
    : > "$W/full.calls"
    local port2; port2="$(free_port)"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin WALCTL_FULL="$W/full.sh" runuser -u postgres -- "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec/walctl_recovery.log" \
        -o "-p $port2 -c archive_mode=off" -w -t 120 start >/dev/null 2>&1 || true
    wait_until 120 bash -c "runuser -u postgres -- $WALCTL recover --status --json --pgdata $W/rec | grep -q '\"state\" : \"paused-at-target\"'" \
        || { tail -5 "$W/rec/walctl_recovery.log" >&2; fail "recovery did not reach the target"; }
    assert_eq "$(psql_at $V "$W" "$port2" "select count(*) || ':' || sum(id) from t")" "$expected" "rows at the target"
    assert_eq "$(psql_at $V "$W" "$port2" "select count(*) from t where v = 'after-target'")" "0" "rows after the target"
    # Segments PostgreSQL restored (the progress file: walctl-fast and walctl both append) against
    # starts of walctl for a segment (history files are always walctl's).
    local restored full_gets
    restored="$(grep -cE '^[0-9A-F]{24} ' "$W/rec/walctl_recovery_progress" || true)"
    full_gets="$(grep -cE '^archive-get .* [0-9A-F]{24} [^ ]+$' "$W/full.calls" || true)"
    echo "    $restored segments restored, $full_gets of them by walctl; $pushed archived, $full_pushes archive-push calls by walctl" >&2
    [ "$restored" -ge 12 ] || fail "only $restored segments restored"
    [ $((full_gets * 4)) -le "$restored" ] || fail "walctl-fast handed $full_gets of $restored segments to walctl (encrypted prefetched segments not served)"
    pg_stop $V "$W/rec" immediate
}

start_moto || { echo "test_encryption: 0 passed, 1 failed (moto_server did not start)"; exit 1; }
run_suite "$@"
