# Benchmarks/lib.sh: what the benchmark scripts share. Source it after setting ROOT, SCRATCH, WORK,
# PGBIN and PORT.

as_pg() { runuser -u postgres -- "$@"; }

# bench_walctl NAME: sets WALCTL, building walctl release (static Swift stdlib) into $SCRATCH unless
# WALCTL is already set. NAME prefixes the progress line.
bench_walctl() {
    [ -n "${WALCTL:-}" ] && return 0
    echo "== $1: building walctl (release, static Swift stdlib) into $SCRATCH" >&2
    (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product walctl >&2)
    WALCTL=$SCRATCH/release/walctl
}

# bench_fresh_work DIR...: stops a cluster left in $WORK/pgdata by an earlier run, recreates $WORK
# with the subdirectories DIR..., owned by postgres.
bench_fresh_work() {
    if [ -d "$WORK/pgdata" ]; then as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
    local d; for d in "$@"; do mkdir -p "$WORK/$d"; done
    chown -R postgres "$WORK"
}

# bench_cluster MAX_WAL_SIZE: a PostgreSQL cluster in $WORK/pgdata on $PORT (socket in $WORK/sock)
# archiving with cp into $WORK/walsrc, started. Sets PSQL (psql -At as an array; run it with as_pg).
bench_cluster() {
    as_pg "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --no-sync >/dev/null
    cat >>"$WORK/pgdata/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK/sock'
archive_mode = on
archive_command = 'cp %p $WORK/walsrc/%f'
max_wal_size = $1
CONF
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pg.log" -w start >/dev/null
    PSQL=("$PGBIN/psql" -X -q -h "$WORK/sock" -p "$PORT" -U postgres -d postgres -At)
}
