#!/usr/bin/env bash
# Issue 13: the one local-filesystem layer, tried as an attacker and as a careless operator would.
#
# - An open(2) audit: push, get, async push, prefetching get, backup, restore-backup and recover run
#   under strace; no open of a path in a directory another user can write (checked at test time:
#   mode and owner of the directory) may lack O_NOFOLLOW, and no create there may lack O_EXCL.
# - Item 2's attack: a second unprivileged OS user (walctl-attacker) pre-creates symbolic links at
#   every temporary name archive-get could use beside %p in a shared directory; walctl must not follow
#   them (the postgres-owned file they point to stays intact) and must still restore correctly.
# - Item 6's catalog parts: a missing catalog directory is refused (never created), the catalog and its
#   -wal/-shm are 0600, and a root run never leaves a root-owned catalog behind.
# PostgreSQL 15 (the layer is not version-sensitive).
source "$(dirname "$0")/lib.sh"

V=15
TRACED=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat
ATTACKER=walctl-attacker

# traced NAME CWD ARGS...: `walctl ARGS` as postgres in CWD under strace -f (one log per process,
# W/trace/NAME.PID; W/trace/NAME.cwd records the directory relative paths are taken from).
traced() {
    local name="$1" cwd="$2"; shift 2
    echo "$cwd" > "$W/trace/$name.cwd"
    (cd "$cwd" && as_pg strace -f -ff -y -qq -e trace="$TRACED" -o "$W/trace/$name" "$WALCTL" "$@")
}

# audit: checks every traced open; prints the violations and fails when there is one.
audit() {
    python3 - "$W/trace" <<'PY'
import glob, grp, os, pwd, re, stat, sys
tdir = sys.argv[1]
pg = pwd.getpwnam("postgres")
def writable_by_another(d):
    try: st = os.stat(d)
    except OSError: return None                      # gone (a spool removed at the end): unknown
    if st.st_mode & stat.S_IWOTH: return True
    if st.st_mode & stat.S_IWGRP:
        try: g = grp.getgrgid(st.st_gid)
        except KeyError: return True
        if st.st_gid != pg.pw_gid or any(m != "postgres" for m in g.gr_mem): return True
    if st.st_uid not in (0, pg.pw_uid) and st.st_mode & stat.S_IWUSR: return True
    return False
call = re.compile(r'^(open|openat|openat2|creat)\((.*)\)\s+= ')
bad, shared_opens, total, unknown = [], 0, 0, 0
for cwdf in glob.glob(tdir + "/*.cwd"):
    name = os.path.basename(cwdf)[:-4]
    cwd = open(cwdf).read().strip()
    for log in glob.glob(f"{tdir}/{name}.*"):
        if log.endswith(".cwd"): continue
        for line in open(log, errors="replace"):
            m = call.match(line)
            if not m: continue
            sc, args = m.group(1), m.group(2)
            base = cwd
            if sc in ("openat", "openat2"):
                # -y prints the directory of a descriptor: AT_FDCWD</cwd>, 3</dir>.
                dm = re.match(r'(AT_FDCWD|\d+)(?:<([^>]*)>)?, "((?:[^"\\]|\\.)*)", (.*)$', args)
                if not dm: continue
                if dm.group(2) is not None: base = dm.group(2)
                elif dm.group(1) != "AT_FDCWD": unknown += 1; continue
                path, rest = dm.group(3), dm.group(4)
            else:
                dm = re.match(r'"((?:[^"\\]|\\.)*)", (.*)$', args)
                if not dm: continue
                path, rest = dm.group(1), dm.group(2)
            total += 1
            full = path if path.startswith("/") else os.path.join(base, path)
            w = writable_by_another(os.path.dirname(os.path.normpath(full)))
            if w is None: unknown += 1; continue
            if not w: continue
            shared_opens += 1
            flags = "O_CREAT|O_TRUNC" if sc == "creat" else rest
            why = []
            if "O_NOFOLLOW" not in flags: why.append("no O_NOFOLLOW")
            if "O_CREAT" in flags and "O_EXCL" not in flags: why.append("creates without O_EXCL")
            if why: bad.append(f"{name}: {line.strip()}  [{', '.join(why)}]")
print(f"    audit: {total} opens traced, {shared_opens} in directories another user can write, {unknown} not resolvable", file=sys.stderr)
for b in bad: print("    VIOLATION " + b, file=sys.stderr)
if total == 0: print("    nothing traced", file=sys.stderr); sys.exit(1)
sys.exit(1 if bad else 0)
PY
}

# ensure_attacker: a second unprivileged OS user, created once.
ensure_attacker() {
    id "$ATTACKER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ATTACKER" \
        || fail "cannot create the $ATTACKER user"
}

# a fresh cluster (not started) with its first segment archived: W, SEG.
setup_archived_segment() {
    require_pg $V
    W="$(new_workdir)"
    write_config "$W"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || fail "walctl init"
    SEG="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    (cd "$W/data" && as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "pg_wal/$SEG") || fail "archive-push $SEG"
}

test_archive_get_does_not_follow_an_attackers_symlinks() {
    ensure_attacker
    setup_archived_segment
    # A directory shared with other users (0777: no sticky bit, so the kernel's protected_symlinks
    # does not hide the attack), and a file of the postgres user the attacker cannot write.
    local S="$W/shared"; mkdir "$S"; chmod 777 "$S"
    local victim="$W/victim"
    echo "precious postgres data" > "$victim"; chown postgres:postgres "$victim"; chmod 600 "$victim"
    local before; before="$(sha256sum < "$victim")"
    # The attacker links every name archive-get used for its temporary file (.NAME.walctl-tmp.PID,
    # the next 20000 pids) and the target itself to the victim (a rename replaces that link).
    runuser -u "$ATTACKER" -- python3 - "$S" "$SEG" "$victim" <<'PY' || fail "attacker could not plant links"
import os, sys
s, seg, victim = sys.argv[1:]
last = int(open("/proc/sys/kernel/ns_last_pid").read()) if os.path.exists("/proc/sys/kernel/ns_last_pid") else os.getpid()
for pid in range(last + 1, last + 20001):
    os.symlink(victim, f"{s}/.{seg}.walctl-tmp.{pid}")
os.symlink(victim, f"{s}/{seg}")
PY
    as_pg "$WALCTL" archive-get --config "$W/walctl.conf" "$SEG" "$S/$SEG" || fail "archive-get into the shared directory failed"
    assert_eq "$(sha256sum < "$victim")" "$before" "the postgres-owned file the attacker's links point to"
    [ -f "$S/$SEG" ] && [ ! -L "$S/$SEG" ] || fail "$S/$SEG is not a regular file"
    cmp -s "$S/$SEG" "$W/data/pg_wal/$SEG" || fail "restored segment differs"
    assert_eq "$(stat -c %U "$S/$SEG")" "postgres" "owner of the restored file"
    # Nothing of walctl's is left in the shared directory but the restored file.
    local left; left="$(find "$S" -mindepth 1 ! -type l ! -name "$SEG" | wc -l)"
    assert_eq "$left" "0" "files walctl left in the shared directory"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_catalog_directory_is_never_created_and_files_are_private() {
    setup_archived_segment
    # archive-push as postgres made the catalog: it and its -wal/-shm are 0600.
    assert_eq "$(stat -c %a "$W/catalog.db")" "600" "catalog.db mode"
    as_pg "$WALCTL" info --config "$W/walctl.conf" >/dev/null || fail "info as postgres"
    local f
    for f in "$W/catalog.db-wal" "$W/catalog.db-shm"; do
        [ ! -e "$f" ] || assert_eq "$(stat -c %a "$f")" "600" "$(basename "$f") mode"
    done
    # Run as root with a catalog in a missing directory: refused, the fix named, nothing created.
    local out rc=0
    out="$("$WALCTL" info --config "$W/walctl.conf" --catalog /nonexist/dir/cat.db 2>&1)" || rc=$?
    [ $rc -ne 0 ] || fail "info with a missing catalog directory succeeded: $out"
    echo "$out" | grep -q "install -d -o postgres -m 700 /nonexist/dir" || fail "message does not name the fix: $out"
    [ ! -e /nonexist ] || fail "/nonexist was created"
    # Run as root with a new catalog in postgres's directory: the file belongs to postgres, 0600,
    # so the commands run as postgres afterwards still work.
    mkdir -m 700 "$W/cat2"; chown postgres:postgres "$W/cat2"
    "$WALCTL" info --config "$W/walctl.conf" --catalog "$W/cat2/cat.db" >/dev/null || fail "info as root in postgres's directory"
    assert_eq "$(stat -c '%U %a' "$W/cat2/cat.db")" "postgres 600" "owner and mode of a catalog root created"
    for f in "$W/cat2/cat.db-wal" "$W/cat2/cat.db-shm"; do
        [ ! -e "$f" ] || assert_eq "$(stat -c '%U' "$f")" "postgres" "owner of $(basename "$f")"
    done
    as_pg "$WALCTL" info --config "$W/walctl.conf" --catalog "$W/cat2/cat.db" >/dev/null || fail "info as postgres after root"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"
}

test_no_open_in_a_shared_directory_follows_links_or_reuses_a_file() {
    require_pg $V
    command -v strace >/dev/null || fail "strace is not installed (scripts/install-deps.sh)"
    # Everything in a directory of postgres's own (mktemp's directory sits in /tmp, which another user
    # can write: SQLite opens the catalog's directory read-only to fsync it), but the shared one.
    local top; top="$(new_workdir)"; W="$top/w"; mkdir -m 755 "$W"; chown postgres:postgres "$W"
    local PORT BIN; PORT="$(free_port)"; BIN="$(pg_bin $V)"
    write_config "$W"
    init_cluster $V "$W/data"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start $V "$W/data"
    trap "pg_stop $V '$W/data' immediate" EXIT
    mkdir -m 700 "$W/trace"; chown postgres:postgres "$W/trace"
    local S="$W/shared"; mkdir -m 1777 "$S"   # as /tmp
    local sql="$BIN/psql -X -h $W -p $PORT -d postgres -qAt"
    as_pg $sql -c "create table t as select g, md5(g::text) v from generate_series(1, 20000) g; select pg_switch_wal()" >/dev/null

    traced backup "$W" backup take --config "$W/walctl.conf" --label b1 --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null \
        || fail "backup take"
    local i last
    for i in 1 2 3 4; do last="$(as_pg $sql -c "insert into t select g, 'x' from generate_series(1, 5000) g; select pg_walfile_name(pg_switch_wal())" | tail -1)"; done
    wait_until 60 bash -c "a=\$(runuser -u postgres -- $sql -c 'select coalesce(last_archived_wal, \$\$\$\$) from pg_stat_archiver'); [ \"\$a\" = '$last' ] || [ \"\$a\" \\> '$last' ]" \
        || fail "archiver did not reach $last"

    # Push and async push into a second repository of the same cluster, from a WAL directory of
    # copies whose segments are marked ready.
    sed "s|$W/repo|$W/repo2|; s|$W/catalog.db|$W/catalog2.db|" "$W/walctl.conf" > "$W/walctl2.conf"
    chown postgres:postgres "$W/walctl2.conf"; chmod 600 "$W/walctl2.conf"
    as_pg "$WALCTL" init --config "$W/walctl2.conf" --pgdata "$W/data" >/dev/null || fail "init repo2"
    as_pg mkdir -p -m 700 "$W/fake/pg_wal/archive_status"
    local segs; segs="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | tail -4 | head -3)"
    for s in $segs; do as_pg cp "$W/data/pg_wal/$s" "$W/fake/pg_wal/$s"; as_pg touch "$W/fake/pg_wal/archive_status/$s.ready"; done
    local s1 s2; s1="$(echo "$segs" | sed -n 1p)"; s2="$(echo "$segs" | sed -n 2p)"
    traced push "$W/fake" archive-push --config "$W/walctl2.conf" "pg_wal/$s1" || fail "archive-push"
    traced async "$W/fake" archive-push --config "$W/walctl2.conf" --set archive-async=true "pg_wal/$s2" || fail "async archive-push"

    # archive-get into the shared directory (the case of item 2), and a prefetching get.
    traced get "$W" archive-get --config "$W/walctl.conf" "$s1" "$S/$s1" || fail "archive-get"
    cmp -s "$S/$s1" "$W/data/pg_wal/$s1" || fail "restored segment differs"
    as_pg mkdir -p -m 700 "$W/pf/pg_wal"
    traced prefetch "$W/pf" archive-get --config "$W/walctl.conf" --set restore-prefetch=2 "$s1" pg_wal/RECOVERYXLOG &
    local pf=$!
    wait_until 60 test -f "$W/pf/pg_wal/RECOVERYXLOG" || fail "prefetching get did not restore"
    sleep 1
    traced cleanup "$W/pf" archive-get --config "$W/walctl.conf" --cleanup || fail "archive-get --cleanup"
    wait $pf || fail "prefetching archive-get"
    cmp -s "$W/pf/pg_wal/RECOVERYXLOG" "$W/data/pg_wal/$s1" || fail "prefetched segment differs"

    traced restore "$W" restore-backup --config "$W/walctl.conf" b1 --pgdata "$W/restored" >/dev/null || fail "restore-backup"
    traced recover "$W" recover --config "$W/walctl.conf" --pgdata "$W/rec" --latest >/dev/null || fail "recover"
    pg_stop $V "$W/data" immediate; trap - EXIT

    audit || fail "opens in directories another user can write without O_NOFOLLOW / creates without O_EXCL"
    # The audit saw the shared directory (it is not vacuous).
    grep -h "\"$S/" "$W"/trace/get.* | grep -q O_CREAT || fail "the audit did not see archive-get create its file in $S"
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$top"
}

run_suite "$@"
