#!/usr/bin/env bash
# Benchmarks/per-segment.sh: archive-push and archive-get per segment the way PostgreSQL calls them
# (issue 19). 64 distinct real 16 MiB segments from one pgbench run are pushed one after another
# into ONE repository that grows, each push its own process, then each is fetched back by its own
# process. Every call's wall time and CPU time (user + system of the process, from wait4) are
# recorded; the report gives medians and ratios. In the same run, interleaved segment by segment:
#
#   floors      zstd -3 -q -f SEG -o OUT (push), zstd -d -q -f OBJ -o OUT (get, walctl's object)
#   pgBackRest  archive-push / archive-get, posix repository (zst level 3), and S3 through TLS
#   walctl      archive-push / archive-get, file repository, and S3 through the same TLS endpoint;
#               archive-get also with archive-get-fsync = true (the fsync it no longer does by default)
#               (`walctl` is the front: it restores a plain file-repository hit itself and hands
#               everything else, S3 and pushes included, to walctl-core beside it)
#   walctl-core archive-push / archive-get, file repository: the full binary run directly (the
#               hand-over's cost, and what a bare `walctl` cost before the front took its name)
#   walctl-fast archive-get from the file repository (beside WALCTL; the front's own restore, with
#               WALCTL_FULL=/bin/false so that a call handed to walctl-core fails the run). The same
#               program as `walctl`: the two rows' difference is the method's own noise.
#
#   Benchmarks/per-segment.sh                 # build (unless WALCTL), make WAL, measure, report
#
# Environment: WALCTL (binary; default: build release into $SCRATCH), SCRATCH (.build-bench), WORK
# (/tmp/walctl-per-segment), SEGMENTS (64), S3 (auto: when nginx and moto are available; 0 = off),
# PGBIN (/usr/lib/postgresql/15/bin), SCALE (pgbench -i scale, 70), BASELINE (another walctl binary, e.g. the
# previous commit's: pushed into its own file repository and fetched back, interleaved with walctl, for a
# same-run before/after). Needs root, pgbackrest, zstd, python3, postgresql-15.
# The durable floor: `zstd -3 -q -f SEG -o OUT`, then fsync of OUT and of its directory (what a push that
# promises durability must at least do; the plain floor syncs nothing).
# Writes $WORK/report.md and $WORK/calls.csv (one line per call).
set -euo pipefail
bash "$(dirname "${BASH_SOURCE[0]}")/install-bench-deps.sh"   # pgBackRest, hyperfine, nginx, GNU time (and the test dependencies)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-bench}
WORK=${WORK:-/tmp/walctl-per-segment}
SEGMENTS=${SEGMENTS:-64}
S3=${S3:-auto}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54993}

for tool in zstd pgbackrest python3 runuser; do
    command -v "$tool" >/dev/null || { echo "per-segment.sh: $tool is required" >&2; exit 2; }
done
[ -x "$PGBIN/initdb" ] || { echo "per-segment.sh: PostgreSQL 15 not found in $PGBIN" >&2; exit 2; }
# shellcheck source=Benchmarks/lib.sh
source "$ROOT/Benchmarks/lib.sh"
bench_walctl per-segment.sh
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- a throwaway cluster and real WAL ------------------------------------------------------------
bench_fresh_work sock walsrc pgbr pgbr-lock pgbr-log out
# shellcheck source=Benchmarks/s3-tls.sh
source "$ROOT/Benchmarks/s3-tls.sh"
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate stop >/dev/null 2>&1 || true; stop_moto_tls; }
trap cleanup EXIT

echo "== PostgreSQL 15 cluster and pgbench WAL in $WORK" >&2
bench_cluster 4GB
first=$(as_pg "${PSQL[@]}" -c "select pg_walfile_name(pg_current_wal_lsn())")
as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -U postgres -i -s "${SCALE:-70}" -q postgres >/dev/null 2>&1
# OLTP (at least 5 s) until SEGMENTS + 2 segments are complete: the end of the load, then OLTP.
for _ in $(seq 1 200); do
    as_pg "$PGBIN/pgbench" -h "$WORK/sock" -p "$PORT" -U postgres -c 4 -T 5 postgres >/dev/null 2>&1
    cur=$(as_pg "${PSQL[@]}" -c "select pg_walfile_name(pg_current_wal_lsn())")
    [ $(( 16#${cur:16:8} - 16#${first:16:8} )) -ge $((SEGMENTS + 2)) ] && break
done
as_pg "${PSQL[@]}" -c "select pg_switch_wal()" >/dev/null
sleep 2
echo "== pgBackRest stanzas (posix; S3 when available)" >&2
PGBR=(pgbackrest --stanza=bench --pg1-path="$WORK/pgdata" --repo1-path="$WORK/pgbr" --lock-path="$WORK/pgbr-lock"
      --log-path="$WORK/pgbr-log" --log-level-file=off --log-level-console=warn)
as_pg "${PGBR[@]}" --pg1-socket-path="$WORK/sock" --pg1-port="$PORT" stanza-create >&2
if [ "$S3" != 0 ] && command -v nginx >/dev/null && start_moto_tls "$WORK/s3" walctl-bench && [ -n "$TLS_PORT" ]; then
    { echo "[global]"; pgbr_s3_repo 1 "/pgbr-seg"; echo "lock-path=$WORK/pgbr-lock"; echo "log-path=$WORK/pgbr-log"; } > "$WORK/pgbr-s3.conf"
    chmod 644 "$WORK/pgbr-s3.conf"
    as_pg pgbackrest --config="$WORK/pgbr-s3.conf" --stanza=bench --pg1-path="$WORK/pgdata" --pg1-socket-path="$WORK/sock" \
        --pg1-port="$PORT" --log-level-console=warn stanza-create >&2
    S3=1
else
    S3=0
fi
# pgBackRest runs as root from here, like walctl and zstd: no runuser in the timings.
chown -R root "$WORK/pgbr" "$WORK/pgbr-lock" "$WORK/pgbr-log"
as_pg "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m fast stop >/dev/null

# The segments: the last SEGMENTS complete ones (the end of the load, then OLTP).
mapfile -t SEGS < <(ls "$WORK/walsrc" | grep -E '^[0-9A-F]{24}$' | sort | tail -n "$SEGMENTS")
[ "${#SEGS[@]}" -eq "$SEGMENTS" ] || { echo "per-segment.sh: only ${#SEGS[@]} segments archived" >&2; exit 1; }

echo "== walctl repositories" >&2
cat > "$WORK/walctl-file.conf" <<CONF
repository = file://$WORK/repo
catalog = $WORK/catalog-file.db
CONF
"$WALCTL" init --config "$WORK/walctl-file.conf" --pgdata "$WORK/pgdata" >&2
# walctl-core's pushes go into their own repository (into walctl's they would find each segment
# already archived); its gets read walctl's.
CORE="$(dirname "$WALCTL")/walctl-core"
if [ -x "$CORE" ]; then
    printf 'repository = file://%s/repo-core\ncatalog = %s/catalog-core.db\n' "$WORK" "$WORK" > "$WORK/walctl-core.conf"
    "$CORE" init --config "$WORK/walctl-core.conf" --pgdata "$WORK/pgdata" >&2
    "$CORE" archive-push --config "$WORK/walctl-core.conf" "$WORK/walsrc/000000010000000000000001" >&2
fi
if [ -n "${BASELINE:-}" ]; then
    printf 'repository = file://%s/repo-base\ncatalog = %s/catalog-base.db\n' "$WORK" "$WORK" > "$WORK/walctl-base.conf"
    "$BASELINE" init --config "$WORK/walctl-base.conf" --pgdata "$WORK/pgdata" >&2
    "$BASELINE" archive-push --config "$WORK/walctl-base.conf" "$WORK/walsrc/000000010000000000000001" >&2
fi
if [ "$S3" = 1 ]; then
    cat > "$WORK/walctl-s3.conf" <<CONF
repository = s3://$MOTO_BUCKET/walctl-seg
catalog = $WORK/catalog-s3.db
s3-endpoint = $TLS_ENDPOINT
s3-ca-file = $TLS_CA
s3-region = us-east-1
s3-uri-style = path
s3-key = $AWS_ACCESS_KEY_ID
s3-key-secret = $AWS_SECRET_ACCESS_KEY
CONF
    "$WALCTL" init --config "$WORK/walctl-s3.conf" --pgdata "$WORK/pgdata" >&2
fi
# An earlier segment is archived first in each, so the catalog exists as in a running setup.
"$WALCTL" archive-push --config "$WORK/walctl-file.conf" "$WORK/walsrc/000000010000000000000001" >&2
[ "$S3" = 1 ] && "$WALCTL" archive-push --config "$WORK/walctl-s3.conf" "$WORK/walsrc/000000010000000000000001" >&2

# --- measurements ---------------------------------------------------------------------------------
echo "== measuring ${#SEGS[@]} segments (S3: $S3)" >&2
export WALCTL WORK S3 BASELINE=${BASELINE:-}
printf '%s\n' "${SEGS[@]}" > "$WORK/segments.txt"
python3 - <<'PY'
import os, shutil, statistics, subprocess, sys, time, glob
W = os.environ["WORK"]; WALCTL = os.environ["WALCTL"]; S3 = os.environ["S3"] == "1"; BASE = os.environ.get("BASELINE", "")
FAST = os.path.join(os.path.dirname(WALCTL), "walctl-fast")
FAST = FAST if os.access(FAST, os.X_OK) else ""
CORE = os.path.join(os.path.dirname(WALCTL), "walctl-core")
CORE = CORE if os.access(CORE, os.X_OK) else ""
segs = open(W + "/segments.txt").read().split()
pgbr = shutil.which("pgbackrest"); zstd = shutil.which("zstd")
env = {k: v for k, v in os.environ.items() if not k.startswith("WALCTL_")}
env["WALCTL_CONFIG"] = "/dev/null"
PGBR = [pgbr, "--stanza=bench", "--pg1-path=" + W + "/pgdata", "--log-level-file=off", "--log-level-console=warn"]
ZST = ["--compress-type=zst", "--compress-level=3"]
PGBR_FILE = PGBR + ["--repo1-path=" + W + "/pgbr", "--lock-path=" + W + "/pgbr-lock", "--log-path=" + W + "/pgbr-log"]
PGBR_S3 = [pgbr, "--config=" + W + "/pgbr-s3.conf"] + PGBR[1:]
calls = []   # (phase, tool, segment, wall ms, cpu ms)

def run(tool, phase, seg, argv, extra_env=None):
    e = dict(env); e.update(extra_env or {})
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, e, file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit(f"per-segment.sh: {tool} {phase} {seg} exited {rc}: {argv}")
    calls.append((phase, tool, seg, wall, (ru.ru_utime + ru.ru_stime) * 1000))

def run_durable_floor(seg, src, dst):
    # zstd -3, then fsync of the output and of its directory, inside the timed window (the CPU
    # column is zstd's own; the fsyncs are this process's).
    t0 = time.perf_counter()
    pid = os.posix_spawn(zstd, [zstd, "-3", "-q", "-f", src, "-o", dst], env)
    _, status, ru = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0: sys.exit("per-segment.sh: zstd failed on " + seg)
    for p, flags in [(dst, os.O_RDONLY), (os.path.dirname(dst), os.O_RDONLY | os.O_DIRECTORY)]:
        fd = os.open(p, flags); os.fsync(fd); os.close(fd)
    calls.append(("push-file", "zstd -3 + fsync", seg, (time.perf_counter() - t0) * 1000, (ru.ru_utime + ru.ru_stime) * 1000))

def walctl(conf, *args, binary=None): return [binary or WALCTL, args[0], "--config", W + "/" + conf] + list(args[1:])
out = W + "/out"
# The file-repository calls of each segment run in the orders of a balanced Latin square (Williams
# design), one row per segment in turn: every tool is first of a round as often as any other (the
# first ran while the emulator was still busy with the previous round's S3 uploads) and follows
# every other tool equally often. A call is slower right after one that left a 16 MiB file unsynced
# and then removed (`zstd -d`, walctl) than after one that synced it (pgBackRest, the fsync
# variant): 9-11 ms against 7-9 ms for the same calls. A rotation kept each tool's predecessor (in
# one run the front as walctl-fast, always after `zstd -d`, measured 1.5x `zstd -d`'s wall and the
# same front as walctl 1.25x), and a seeded shuffle gave `zstd -d` three times as many unsynced
# predecessors as walctl. The two S3 calls alternate; after the S3 uploads the emulator gets 0.2 s.
def williams(n):
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo); lo += 1
        if len(first) < n: first.append(hi); hi -= 1
    rows = [[(x + i) % n for x in first] for i in range(n)]
    return rows if n % 2 == 0 else rows + [r[::-1] for r in rows]
def balanced(calls, n): return [calls[i] for i in williams(len(calls))[n % len(williams(len(calls)))]]
for n, s in enumerate(segs):
    src = W + "/walsrc/" + s
    pushes = [lambda: run("walctl", "push-file", s, walctl("walctl-file.conf", "archive-push", src)),
              lambda: run("pgbackrest", "push-file", s, PGBR_FILE + ZST + ["archive-push", src]),
              lambda: run("zstd -3", "push-file", s, [zstd, "-3", "-q", "-f", src, "-o", out + "/" + s + ".zst"]),
              lambda: run_durable_floor(s, src, out + "/durable-" + s + ".zst")]
    if BASE: pushes.append(lambda: run("walctl (baseline)", "push-file", s, walctl("walctl-base.conf", "archive-push", src, binary=BASE)))
    if CORE: pushes.append(lambda: run("walctl-core", "push-file", s, walctl("walctl-core.conf", "archive-push", src, binary=CORE)))
    for p in balanced(pushes, n): p()
    if S3:
        s3 = [lambda: run("walctl", "push-s3", s, walctl("walctl-s3.conf", "archive-push", src)),
              lambda: run("pgbackrest", "push-s3", s, PGBR_S3 + ZST + ["archive-push", src])]
        for p in (s3 if n % 2 == 0 else s3[::-1]): p()
        time.sleep(0.2)
# The push phase's dirty pages are written back before the get phase starts (its first calls
# otherwise ran beside the flusher), and the file-repository gets of each segment run in the orders
# of a balanced Latin square, as the pushes.
os.sync(); time.sleep(2)
for n, s in enumerate(segs):
    src = W + "/walsrc/" + s
    obj = glob.glob(W + "/repo/wal/" + s[:16] + "/" + s + ".*.zst")[0]
    tgt = out + "/RECOVERYXLOG"
    def fresh():
        if os.path.exists(tgt): os.unlink(tgt)
    def same(tool):
        if open(tgt, "rb").read() != open(src, "rb").read(): sys.exit(tool + " restored different bytes for " + s)
    gets = [lambda: (fresh(), run("walctl", "get-file", s, walctl("walctl-file.conf", "archive-get", s, tgt)), same("walctl")),
            lambda: (fresh(), run("walctl, archive-get-fsync", "get-file", s, walctl("walctl-file.conf", "archive-get", s, tgt), {"WALCTL_ARCHIVE_GET_FSYNC": "true"})),
            lambda: (fresh(), run("pgbackrest", "get-file", s, PGBR_FILE + ["archive-get", s, tgt])),
            lambda: (fresh(), run("zstd -d", "get-file", s, [zstd, "-d", "-q", "-f", obj, "-o", tgt]))]
    if FAST:
        # WALCTL_FULL=/bin/false: a call the front handed to walctl fails the benchmark, so this row
        # is the front's own restore from the repository (FastFront.getDirect).
        gets.append(lambda: (fresh(), run("walctl-fast", "get-file", s, walctl("walctl-file.conf", "archive-get", s, tgt, binary=FAST), {"WALCTL_FULL": "/bin/false"}), same("walctl-fast")))
    if BASE: gets.append(lambda: (fresh(), run("walctl (baseline)", "get-file", s, walctl("walctl-base.conf", "archive-get", s, tgt, binary=BASE))))
    if CORE: gets.append(lambda: (fresh(), run("walctl-core", "get-file", s, walctl("walctl-file.conf", "archive-get", s, tgt, binary=CORE)), same("walctl-core")))
    for g in balanced(gets, n): g()
    if S3:
        s3 = [lambda: (fresh(), run("walctl", "get-s3", s, walctl("walctl-s3.conf", "archive-get", s, tgt))),
              lambda: (fresh(), run("pgbackrest", "get-s3", s, PGBR_S3 + ["archive-get", s, tgt]))]
        for g in (s3 if n % 2 == 0 else s3[::-1]): g()
with open(W + "/calls.csv", "w") as f:
    f.write("phase,tool,segment,wall_ms,cpu_ms\n")
    for c in calls: f.write("%s,%s,%s,%.3f,%.3f\n" % c)

def med(phase, tool, i):
    v = [c[i] for c in calls if c[0] == phase and c[1] == tool]
    return statistics.median(v) if v else None
def f(x): return "" if x is None else "%.1f" % x
def r(a, b): return "" if a is None or b is None else "%.2fx" % (a / b)
rows = []
for phase, floor, what in [("push-file", "zstd -3", "push, file repo"), ("push-s3", None, "push, S3 (TLS)"),
                           ("get-file", "zstd -d", "get, file repo"), ("get-s3", None, "get, S3 (TLS)")]:
    for i, unit in [(3, "wall ms"), (4, "CPU ms")]:
        w = med(phase, "walctl", i)
        if w is None: continue
        fl = med(phase, floor, i) if floor else None
        p = med(phase, "pgbackrest", i)
        fs = med(phase, "walctl, archive-get-fsync", i)
        rows.append(f"| {what}, {unit} | {f(fl)} | {f(p)} | {f(w)} | {r(w, fl)} | {r(w, p)} | {f(fs)} |")
with open(W + "/table.md", "w") as t:
    t.write("| per segment (median of %d) | floor | pgBackRest | walctl | walctl vs floor | walctl vs pgBackRest | walctl, archive-get-fsync = true |\n" % len(segs))
    t.write("|---|---:|---:|---:|---:|---:|---:|\n")
    t.write("\n".join(rows) + "\n")
    t.write("\n| push, file repo (median of %d) | `zstd -3` + fsync of file and directory (durable floor) | walctl | walctl vs durable floor |\n|---|---:|---:|---:|\n" % len(segs))
    for i, unit in [(3, "wall ms"), (4, "CPU ms")]:
        d = med("push-file", "zstd -3 + fsync", i); w = med("push-file", "walctl", i)
        t.write(f"| {unit} | {f(d)} | {f(w)} | {r(w, d)} |\n")
    if FAST:
        t.write("\n| get, file repo (median of %d) | `zstd -d` | pgBackRest | walctl | walctl-fast | walctl-fast vs `zstd -d` | walctl-fast vs pgBackRest |\n|---|---:|---:|---:|---:|---:|---:|\n" % len(segs))
        for i, unit in [(3, "wall ms"), (4, "CPU ms")]:
            z = med("get-file", "zstd -d", i); p = med("get-file", "pgbackrest", i)
            w = med("get-file", "walctl", i); fa = med("get-file", "walctl-fast", i)
            t.write(f"| {unit} | {f(z)} | {f(p)} | {f(w)} | {f(fa)} | {r(fa, z)} | {r(fa, p)} |\n")
    def against(title, other, label):
        # walctl against another binary run in the same rounds, push and get, wall and CPU.
        t.write("\n| %s (median of %d) | %s | walctl | walctl vs %s |\n|---|---:|---:|---:|\n" % (title, len(segs), other, label))
        for phase, what in [("push-file", "push"), ("get-file", "get")]:
            for i, unit in [(3, "wall ms"), (4, "CPU ms")]:
                o = med(phase, label, i); w = med(phase, "walctl", i)
                t.write(f"| {what}, {unit} | {f(o)} | {f(w)} | {r(w, o)} |\n")
    if CORE: against("file repo", "walctl-core (the full binary, directly)", "walctl-core")
    if BASE: against("same run, file repo", "baseline walctl", "walctl (baseline)")
PY
OBJBYTES=$(du -cb "$WORK"/repo/wal/*/*.zst | tail -1 | cut -f1)
{
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): \`Benchmarks/per-segment.sh\`, ${#SEGS[@]} segments ${SEGS[0]}..${SEGS[-1]} (pgbench -i -s ${SCALE:-70}, then pgbench -c 4 for at least 5 s), $((OBJBYTES / ${#SEGS[@]} / 1024)) KiB zst per segment on average."
    echo
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
    echo "walctl $("$WALCTL" --version) (release, static stdlib); $(pgbackrest version); $(zstd --version | head -1 | sed 's/\*//g')."
    echo "Wall: spawn to wait4 of one process; CPU: its user + system time (wait4 rusage). Floors: \`zstd -3 -q -f SEG -o OUT\`, \`zstd -d -q -f OBJ -o OUT\` (walctl's object)."
    echo
    cat "$WORK/table.md"
} > "$WORK/report.md"
cat "$WORK/report.md"
