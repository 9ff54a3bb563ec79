#!/usr/bin/env bash
# Benchmarks/archive-get-evidence.sh NEW BASELINE: same-run cost of archive-get's positive-evidence
# check (issue 12, docs/benchmarks.md): archive-get of a present segment and of a missing file, run in
# a PostgreSQL data directory (as restore_command is), NEW against BASELINE (e.g. the same tree with
# ArchiveGet.confirmAbsent returning at once). Run it twice with the binaries swapped: hyperfine's
# first command in a group tends to run slower on a shared machine.
# Environment: RUNS (default 60), PGBIN (default /usr/lib/postgresql/15/bin), WORK (default /tmp/walctl-evidence-bench).
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh"   # pgBackRest, hyperfine, nginx, GNU time (and the test dependencies)
NEW=$1; BASE=$2; RUNS=${RUNS:-60}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}; WORK=${WORK:-/tmp/walctl-evidence-bench}
rm -rf "$WORK"; mkdir -p "$WORK"; chown postgres "$WORK"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --no-sync >/dev/null
printf 'repository = file://%s/repo\ncatalog = %s/catalog.db\n' "$WORK" "$WORK" > "$WORK/c.conf"; chown postgres "$WORK/c.conf"
as_pg "$NEW" init --config "$WORK/c.conf" --pgdata "$WORK/data" >/dev/null
S=000000010000000000000001; M=0000000100000000000000FE
as_pg "$NEW" archive-push -q --config "$WORK/c.conf" "$WORK/data/pg_wal/$S"
cd "$WORK/data"
as_pg hyperfine -N -w 5 -r "$RUNS" -i --export-json "$WORK/h.json" \
  -n "new present"  --prepare "rm -f $WORK/out" "$NEW archive-get --config $WORK/c.conf $S $WORK/out" \
  -n "base present" --prepare "rm -f $WORK/out" "$BASE archive-get --config $WORK/c.conf $S $WORK/out" \
  -n "new missing"  --prepare true "$NEW archive-get --config $WORK/c.conf $M $WORK/out2" \
  -n "base missing" --prepare true "$BASE archive-get --config $WORK/c.conf $M $WORK/out2" >&2
jq -r '.results[] | "| \(.command) | \(.median * 1000 * 100 | round / 100) | \((.user + .system) * 1000 * 100 | round / 100) |"' "$WORK/h.json"
