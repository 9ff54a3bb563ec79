#!/usr/bin/env bash
# Benchmarks/encryption.sh [WALCTL]: same-run cost of client-side encryption (issue 17,
# docs/benchmarks.md "Encryption"). One walctl binary, two file repositories that differ only in
# `repository-cipher` (none / aes-256-gcm): archive-push and archive-get of one real 16 MiB segment
# (pgbench WAL), hyperfine -N, the two variants interleaved in one group, listed in both orders; then
# `walctl backup take` of the same cluster into each (RUNS_BACKUP each, alternating), bytes/s.
# The key cache is warm (the first command after init or rotate-key pays scrypt once).
# Environment: RUNS (default 40), RUNS_BACKUP (default 3), PGBIN (default /usr/lib/postgresql/15/bin),
# WORK (default /tmp/walctl-enc-bench).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
W=${1:-$REPO/.build-static/release/walctl}; RUNS=${RUNS:-40}; RUNS_BACKUP=${RUNS_BACKUP:-3}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}; WORK=${WORK:-/tmp/walctl-enc-bench}
as_pg() { runuser -u postgres -- "$@"; }
[ -f "$WORK/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$WORK"; mkdir -p "$WORK/seg"; chown -R postgres "$WORK"
trap 'as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
echo "benchmark passphrase" > "$WORK/pass"; chmod 600 "$WORK/pass"; chown postgres "$WORK/pass"
conf() {   # conf NAME CIPHER
    { echo "repository = file://$WORK/$1"; echo "catalog = $WORK/$1.db"
      if [ "$2" != none ]; then echo "repository-cipher = $2"; echo "repository-cipher-pass-file = $WORK/pass"; fi; } > "$WORK/$1.conf"
    chown postgres "$WORK/$1.conf"
}
conf plain none; conf enc aes-256-gcm; conf bplain none; conf benc aes-256-gcm
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --no-sync >/dev/null
PORT=$((20000 + RANDOM % 30000))
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
archive_mode = on
archive_command = '$W archive-push -q --config $WORK/bplain.conf %p && $W archive-push -q --config $WORK/benc.conf %p'
max_wal_senders = 4
CONF
for c in plain enc bplain benc; do as_pg "$W" init --config "$WORK/$c.conf" --pgdata "$WORK/data" >/dev/null; done
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
as_pg pgbench -h "$WORK" -p "$PORT" -i -s 20 -q postgres >/dev/null 2>&1
as_pg pgbench -h "$WORK" -p "$PORT" -n -T 15 -c 2 postgres >/dev/null 2>&1
# A full segment of pgbench WAL, copied while it is still in pg_wal.
S="$(as_pg "$PGBIN/psql" -h "$WORK" -p "$PORT" -d postgres -qAtX -c "select pg_walfile_name(pg_current_wal_lsn() - 20000000)")"
cp "$WORK/data/pg_wal/$S" "$WORK/seg/$S"; chown postgres "$WORK/seg/$S"
echo "segment $S: $(zstd -3 -c "$WORK/seg/$S" | wc -c) bytes with zstd -3" >&2
# The segment archived in each push/get repository; the key cache warmed.
for c in plain enc; do as_pg "$W" archive-push -q --config "$WORK/$c.conf" "$WORK/seg/$S"; done
D="wal/${S:0:16}"
cd "$WORK"
push() { echo "rm -f $WORK/$1/$D/$S.* $WORK/$1.db $WORK/$1.db-*"; }
hf() {
    as_pg hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/$1.json" "${@:2}" >&2
    jq -r '.results[] | "| \(.command) | \(.median * 1000 * 10 | round / 10) | \((.user + .system) * 1000 * 10 | round / 10) |"' "$WORK/$1.json"
}
echo "| command | median wall ms | mean CPU ms |"
echo "|---|---:|---:|"
hf push1 -n "push plain" --prepare "$(push plain)" "$W archive-push -q --config $WORK/plain.conf $WORK/seg/$S" \
         -n "push encrypted" --prepare "$(push enc)" "$W archive-push -q --config $WORK/enc.conf $WORK/seg/$S"
hf push2 -n "push encrypted" --prepare "$(push enc)" "$W archive-push -q --config $WORK/enc.conf $WORK/seg/$S" \
         -n "push plain" --prepare "$(push plain)" "$W archive-push -q --config $WORK/plain.conf $WORK/seg/$S"
# `walctl` is the front: it restores a plaintext file repository's segment itself and hands an
# encrypted one to walctl-core; "walctl-core" rows run the full binary directly (the same code
# path for both repositories: the cost of the encryption alone).
C="$(dirname "$W")/walctl-core"
hf get1 -n "get plain" --prepare "rm -f $WORK/out" "$W archive-get --config $WORK/plain.conf $S $WORK/out" \
        -n "get encrypted" --prepare "rm -f $WORK/out" "$W archive-get --config $WORK/enc.conf $S $WORK/out" \
        -n "get plain, walctl-core" --prepare "rm -f $WORK/out" "$C archive-get --config $WORK/plain.conf $S $WORK/out" \
        -n "get encrypted, walctl-core" --prepare "rm -f $WORK/out" "$C archive-get --config $WORK/enc.conf $S $WORK/out"
hf get2 -n "get encrypted, walctl-core" --prepare "rm -f $WORK/out" "$C archive-get --config $WORK/enc.conf $S $WORK/out" \
        -n "get plain, walctl-core" --prepare "rm -f $WORK/out" "$C archive-get --config $WORK/plain.conf $S $WORK/out" \
        -n "get encrypted" --prepare "rm -f $WORK/out" "$W archive-get --config $WORK/enc.conf $S $WORK/out" \
        -n "get plain" --prepare "rm -f $WORK/out" "$W archive-get --config $WORK/plain.conf $S $WORK/out"
# Backups: alternating, each into its own repository (removed before the next run of that variant).
echo
echo "| backup | run | seconds | bytes | MB/s |"
echo "|---|---:|---:|---:|---:|"
for i in $(seq 1 "$RUNS_BACKUP"); do
    for c in bplain benc; do
        rm -rf "$WORK/$c/backup"; rm -f "$WORK/$c.db"*
        t0=$(date +%s.%N)
        as_pg "$W" backup take --config "$WORK/$c.conf" --label "b$i" --dbname "host=$WORK port=$PORT user=postgres dbname=postgres" >/dev/null 2>"$WORK/backup.err"
        t1=$(date +%s.%N)
        grep -q ': complete, ' "$WORK/backup.err" || { echo "backup failed:" >&2; cat "$WORK/backup.err" >&2; exit 1; }
        size=$(du -sb --exclude=pg_wal "$WORK/data" | cut -f1)   # the database backed up (the completion line prints binary units)
        python3 -c "print('| %s | %d | %.2f | %d | %.1f |' % ('$c', $i, $t1 - $t0, $size, $size / ($t1 - $t0) / 1e6))"
    done
done
