#!/usr/bin/env bash
# walctl's main job, end to end, on a throwaway PostgreSQL 15 cluster and a local repository:
#   archive through walctl -> base backup -> more writes -> an accidental DROP TABLE ->
#   disaster (the data directory is gone) -> walctl recover --to a moment before the drop ->
#   the table and its rows are back, and nothing written after that moment.
# Installs only what it needs (build libraries, PostgreSQL 15: install-deps.sh --demo) and builds
# walctl. Safe to run twice. Needs root (PostgreSQL itself runs as the postgres OS user): run as a
# user, it re-runs itself through sudo when sudo is installed (scripts/as-root.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/as-root.sh
source scripts/as-root.sh
as_root demo "$REPO/scripts/demo.sh" "$@"
DEMO="${WALCTL_DEMO_DIR:-/tmp/walctl-demo}"
PGBIN=/usr/lib/postgresql/15/bin
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_pg() { runuser -u postgres -- "$@"; }

step "installing dependencies"
bash scripts/install-deps.sh --demo

step "building walctl (release)"
for product in walctl walctl-fast walctl-core; do
    swift build -c release --static-swift-stdlib --scratch-path .build-static --product "$product" 2>&1 | tail -1
done
W="$DEMO/bin/walctl"

# A previous run may have left a server running.
for d in "$DEMO/data" "$DEMO/restored"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
done
rm -rf "$DEMO"
mkdir -p "$DEMO/bin"
cp .build-static/release/walctl .build-static/release/walctl-fast .build-static/release/walctl-core "$DEMO/bin/"   # walctl runs walctl-core beside it; recover writes walctl-fast into restore_command
chown -R postgres:postgres "$DEMO"
chmod 755 "$DEMO"
PORT=55432
cat > "$DEMO/walctl.conf" <<CONF
repository = file://$DEMO/repo
catalog = $DEMO/catalog.db
CONF
chown postgres "$DEMO/walctl.conf"
export WALCTL_CONFIG="$DEMO/walctl.conf"
export PGHOST="$DEMO" PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql() { as_pg env PGHOST="$DEMO" PGPORT=$PORT "$PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 "$@"; }

step "a PostgreSQL 15 cluster archiving through walctl"
as_pg "$PGBIN/initdb" -D "$DEMO/data" -A trust -U postgres >/dev/null
as_pg "$W" init --pgdata "$DEMO/data"
cat >> "$DEMO/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DEMO'
archive_mode = on
archive_command = '$W archive-push --config $DEMO/walctl.conf %p'
CONF
as_pg "$PGBIN/pg_ctl" -D "$DEMO/data" -l "$DEMO/server.log" -w start >/dev/null
as_pg "$W" check

step "some data, then a base backup"
psql -c "create table orders(id int primary key, item text, placed_at timestamptz default now())"
psql -c "insert into orders(id, item) select g, 'item ' || g from generate_series(1, 50000) g"
psql -c "select pg_switch_wal()" >/dev/null
as_pg "$W" backup
"$W" backup list

step "more orders, then an accident"
psql -c "insert into orders(id, item) select g, 'item ' || g from generate_series(50001, 80000) g"
psql -c "select pg_switch_wal()" >/dev/null
EXPECTED="$(psql -c "select count(*) || ' rows, checksum ' || md5(string_agg(item, ',' order by id)) from orders")"
sleep 1
TARGET="$(psql -c "select to_char(now() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")"
sleep 1
psql -c "insert into orders(id, item) values (90001, 'written after the target: must not come back')"
psql -c "drop table orders"
echo "orders before the accident: $EXPECTED"
echo "recovery target:            $TARGET"
psql -c "create table later(x int); insert into later values (1)"
psql -c "select pg_switch_wal()" >/dev/null
sleep 2
"$W" info

step "disaster: the server dies and its data directory is lost"
as_pg "$PGBIN/pg_ctl" -D "$DEMO/data" -m immediate stop >/dev/null
rm -rf "$DEMO/data"

step "one segment back from the archive, byte for byte"
SEG="$(ls "$DEMO/repo/wal/"*/ | grep -E '^[0-9A-F]{24}\.meta$' | head -1 | cut -c1-24)"
"$W" archive-get "$SEG" "$DEMO/$SEG"
OBJ="$(ls "$DEMO/repo/wal/"*/"$SEG".*.zst)"
zstd -d -q -c "$OBJ" | cmp - "$DEMO/$SEG" && echo "$SEG: archive-get and zstd -d agree ($(stat -c %s "$DEMO/$SEG") bytes)"

step "walctl recover --to '$TARGET' (the plan first, then for real)"
"$W" recover --to "$TARGET" --pgdata "$DEMO/restored" --dry-run
"$W" recover --to "$TARGET" --pgdata "$DEMO/restored" --action promote
chown -R postgres:postgres "$DEMO/restored"
as_pg "$PGBIN/pg_ctl" -D "$DEMO/restored" -l "$DEMO/restored/walctl_recovery.log" -w -t 300 start >/dev/null
for _ in $(seq 1 300); do [ "$(psql -c 'select pg_is_in_recovery()')" = f ] && break; sleep 0.2; done
"$W" recover --status --pgdata "$DEMO/restored" || true

step "the data is back"
GOT="$(psql -c "select count(*) || ' rows, checksum ' || md5(string_agg(item, ',' order by id)) from orders")"
LATER="$(psql -c "select count(*) from orders where id = 90001")"
echo "orders before the accident: $EXPECTED"
echo "orders after recovery:      $GOT"
echo "row written after target:   $LATER (expected 0)"
as_pg "$PGBIN/pg_ctl" -D "$DEMO/restored" -w stop >/dev/null
if [ "$GOT" = "$EXPECTED" ] && [ "$LATER" = 0 ]; then
    echo; echo "demo: recovered to $TARGET: every order is back, nothing after the target. ($DEMO)"
else
    echo; echo "demo: FAILED: the recovered data differs"; exit 1
fi
