# Benchmarks/lib.sh: what the benchmark scripts share. Source it after setting ROOT, SCRATCH, WORK,
# PGBIN and PORT.

as_pg() { runuser -u postgres -- "$@"; }

# bench_walctl NAME: sets WALCTL, building walctl release (static Swift stdlib: the front walctl and
# walctl-fast, and walctl-core, which the front runs for everything else) into $SCRATCH unless WALCTL
# is already set. NAME prefixes the progress line.
bench_walctl() {
    [ -n "${WALCTL:-}" ] && return 0
    echo "== $1: building walctl (release, static Swift stdlib) into $SCRATCH" >&2
    local p
    for p in walctl walctl-fast walctl-core; do
        (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product "$p" >&2)
    done
    WALCTL=$SCRATCH/release/walctl
}

# bench_copy_walctl DIR: copies the front (as walctl) and walctl-core from beside $WALCTL into DIR and
# sets WALCTL to the copy (a front alone cannot run anything but its own fast paths).
bench_copy_walctl() {
    mkdir -p "$1"
    cp "$WALCTL" "$1/walctl"
    cp "$(dirname "$WALCTL")/walctl-core" "$1/walctl-core"
    WALCTL="$1/walctl"
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

# synthetic_repo KIND N DATA PREFIX LABEL:SEGNO...: a repository of N fake archived segments on
# timeline 1 (a valid .meta with a summary each, commit times one second apart, and with DATA=1 a
# 64-byte data object each: expire and the proof list objects, they never read WAL) and one base
# backup per LABEL:SEGNO (backup.json + a tiny base.tar.zst, starting and stopping in segment SEGNO).
# KIND file: under $WORK/PREFIX; s3: under PREFIX/ in $MOTO_BUCKET (bench_moto), 16 uploads at once;
# jsonl: $WORK/PREFIX.jsonl for `bench_moto BUCKET SECONDS $WORK/PREFIX.jsonl` (loaded before READY).
synthetic_repo() {
    local kind="$1" n="$2" data="$3" prefix="$4"; shift 4
    python3 - "$kind" "$n" "$data" "$WORK" "$prefix" "$@" <<'PY'
import json, os, sys
kind, n, data, work, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
backups = [(b.split(":")[0], int(b.split(":")[1])) for b in sys.argv[6:]]
sysid = "7441234567890123456"
seg = 16 << 20
def name(s): return "%08X%08X%08X" % (1, s >> 8, s & 0xFF)
def lsn(v): return "%X/%X" % (v >> 32, v & 0xFFFFFFFF)
def ts(sec): return "2026-%02d-%02dT%02d:%02d:%02d.000000+00:00" % (1 + sec // (28 * 86400), 1 + sec // 86400 % 28, sec // 3600 % 24, sec // 60 % 60, sec % 60)
objs = {"repository.json": json.dumps({"formatVersion": 1, "systemIdentifier": sysid, "walSegmentSize": seg,
                                         "pgVersion": 15, "createdAt": ts(0)})}
for s in range(1, n + 1):
    crc = "%08x" % (s * 2654435761 % (1 << 32))
    d = "wal/%s/" % name(s)[:16]
    summ = {"records": 10, "commits": 1, "aborts": 0, "firstCommitTime": ts(s), "lastCommitTime": ts(s),
            "firstXactTime": ts(s), "lastXactTime": ts(s), "restorePoints": [], "checkpoints": [],
            "endsWithSwitch": True, "crcFailures": 0, "crcFailureLSNs": [], "firstLSN": lsn(s * seg + 40),
            "lastLSN": lsn(s * seg + 4000), "continuesIntoNext": False}
    objs[d + name(s) + ".meta"] = json.dumps({"name": name(s), "size": seg, "storedSize": 64, "codec": "zstd",
                                               "crc32c": crc, "archivedAt": ts(s + 1), "summary": summ}, sort_keys=True)
    if data: objs[d + name(s) + "." + crc + ".zst"] = "x" * 64
for label, s in backups:
    rec = {"label": label, "startLSN": lsn(s * seg + 0x28), "stopLSN": lsn(s * seg + 0x100), "checkpointLSN": lsn(s * seg + 0x28),
           "startTime": ts(s), "stopTime": ts(s), "timeline": 1, "size": 1 << 20, "storedSize": 3, "status": "complete",
           "pgVersion": 15, "systemIdentifier": sysid,
           "contents": {"formatVersion": 1, "archives": [{"object": "base.tar.zst", "serverName": "base.tar", "codec": "zstd",
                                                          "compressedBy": "client", "storedSize": 3, "storedCRC32C": "00000000"}],
                        "serverVersionNum": 150000, "walSegmentSize": seg, "firstWALSegment": name(s), "lastWALSegment": name(s),
                        "streamSeconds": 0, "walWaitSeconds": 0, "compression": "zstd"}}
    objs["backup/%s/backup.json" % label] = json.dumps(rec)
    objs["backup/%s/base.tar.zst" % label] = "abc"
if kind == "jsonl":   # for bench_moto's preload: one {"k": key, "b": body} a line
    with open(os.path.join(work, prefix + ".jsonl"), "w") as f:
        for k, v in objs.items(): f.write(json.dumps({"k": prefix + "/" + k, "b": v}) + "\n")
elif kind == "file":
    for k, v in objs.items():
        p = os.path.join(work, prefix, k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f: f.write(v)
else:
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda kv: s3.put_object(Bucket=os.environ["MOTO_BUCKET"], Key=prefix + "/" + kv[0], Body=kv[1].encode()), objs.items()))
PY
}

# bench_moto BUCKET MAX_SECONDS [PRELOAD]: starts moto_server (scripts/moto-server.py) with BUCKET (and
# the objects of PRELOAD, synthetic_repo jsonl, stored through moto's model: seconds for 2 x 10^5
# objects, where 16 uploaders took hours on a loaded machine), logging to
# $WORK/moto.log; sets MOTO_PID and exports MOTO_ENDPOINT, MOTO_BUCKET and the AWS_ variables
# (the WALCTL_ repository variables are unset: the benchmark's config file says everything).
# BENCH_MOTO_ARGS adds moto-server.py options (`--fast-list`, `--stats FILE`).
bench_moto() {
    local envf="$WORK/moto.env"
    # shellcheck disable=SC2086 # BENCH_MOTO_ARGS: further moto-server.py options, split on spaces
    python3 "$ROOT/scripts/moto-server.py" --port 0 --bucket "$1" --env-file "$envf" --no-stdin-watch --max-seconds "$2" \
        ${3:+--preload "$3"} ${BENCH_MOTO_ARGS:-} > "$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 6000); do grep -q '^READY' "$WORK/moto.log" && break; sleep 0.2; done
    # shellcheck disable=SC1090
    source "$envf"
    unset WALCTL_REPOSITORY WALCTL_S3_ENDPOINT WALCTL_S3_REGION WALCTL_S3_URI_STYLE WALCTL_S3_KEY WALCTL_S3_KEY_SECRET
    export MOTO_ENDPOINT MOTO_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
}

# bench_moto_stats FILE: moto's request counts and seconds by kind so far (bench_moto with
# BENCH_MOTO_ARGS="--stats FILE"), as JSON on stdout: asks the server (SIGUSR1) and waits for it.
bench_moto_stats() {
    local f="$1" before=""
    [ -f "$f" ] && before="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq"])' "$f")"
    kill -USR1 "$MOTO_PID"
    for _ in $(seq 1 100); do
        if [ -f "$f" ] && [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq"])' "$f")" != "$before" ]; then
            cat "$f"; return 0
        fi
        sleep 0.1
    done
    echo "bench_moto_stats: moto did not write $f" >&2; return 1
}

# bench_s3_conf PREFIX CATALOG [LINE...]: walctl config lines for s3://$MOTO_BUCKET/PREFIX on moto.
bench_s3_conf() {
    local prefix="$1" catalog="$2"; shift 2
    printf 'repository = s3://%s/%s\ns3-endpoint = %s\ns3-region = us-east-1\ns3-uri-style = path\ns3-key = %s\ns3-key-secret = %s\ncatalog = %s\n' \
        "$MOTO_BUCKET" "$prefix" "$MOTO_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$catalog"
    local l; for l in "$@"; do echo "$l"; done
}

# bench_median: the median of the numbers on stdin, one a line.
bench_median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# bench_measure NAME STORED_DIR|- COMMAND...: one timed run of COMMAND as postgres (output in
# $WORK/out.txt, GNU time in $WORK/time.txt); appends "NAME<TAB>wall seconds<TAB>bytes STORED_DIR grew
# by (or -)" to $WORK/results.tsv. Exits the script when COMMAND fails.
bench_measure() {
    local name="$1" stored="$2"; shift 2
    sync
    local before=0 t0 t1 rc=0
    [ "$stored" != - ] && before="$(du -sb "$stored" 2>/dev/null | cut -f1 || echo 0)"
    t0="$(date +%s.%N)"
    as_pg /usr/bin/time -v -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    if [ "$rc" -ne 0 ]; then echo "FAILED: $name: $*" >&2; tail -20 "$WORK/out.txt" >&2; exit 1; fi
    local added=-
    [ "$stored" != - ] && added=$(( $(du -sb "$stored" | cut -f1) - before ))
    printf '%s\t%s\t%s\n' "$name" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" "$added" >> "$WORK/results.tsv"
    echo "   $name: $(tail -1 "$WORK/results.tsv" | cut -f2) s, stored +$added" >&2
}

# bench_alternate RUNS NAME_A DIR_A CMD_A NAME_B DIR_B CMD_B: measures A (which writes DIR_A) and B
# (DIR_B) RUNS times each, both directories removed before each pair and the order alternating (A B,
# B A, ...): on this VM the first writer of fresh page-cache memory pays ~3 us a page, so whichever
# restore ran second in one fixed order looked up to 1.4x slower. CMD_A and CMD_B name arrays.
# Rows "NAME #i" for each run and a row NAME with the median of its runs.
bench_alternate() {
    local runs="$1" na="$2" da="$3" nb="$5" db="$6" i n
    local -n cmd_a="$4" cmd_b="$7"
    for ((i = 1; i <= runs; i++)); do
        rm -rf "$da" "$db"; sync
        if ((i % 2)); then
            bench_measure "$na #$i" - "${cmd_a[@]}"; bench_measure "$nb #$i" - "${cmd_b[@]}"
        else
            bench_measure "$nb #$i" - "${cmd_b[@]}"; bench_measure "$na #$i" - "${cmd_a[@]}"
        fi
    done
    for n in "$na" "$nb"; do
        printf '%s\t%s\t-\n' "$n" "$(awk -F'\t' -v p="$n #" 'index($1, p) == 1 { print $2 }' "$WORK/results.tsv" | bench_median)" >> "$WORK/results.tsv"
        echo "   $n: median $(tail -1 "$WORK/results.tsv" | cut -f2) s of $runs" >&2
    done
}

# bench_result NAME COLUMN: column 2 (seconds) or 3 (bytes) of NAME's row in $WORK/results.tsv.
bench_result() { awk -F'\t' -v n="$1" '$1 == n { print $'"$2"' }' "$WORK/results.tsv"; }

# bench_ratio A B: A / B with two decimals.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# bench_results_table: $WORK/results.tsv as a markdown table.
bench_results_table() {
    echo "| step | seconds | stored bytes |"
    echo "|---|---:|---:|"
    local n s b; while IFS=$'\t' read -r n s b; do echo "| $n | $s | $b |"; done < "$WORK/results.tsv"
}

# bench_accounts_checksum SOCKDIR PORT: row count, sum and md5 of pgbench_accounts' (aid, abalance).
# The "5% of the rows change" of the incremental benchmarks, by BENCH_CHANGE: `spread` (default;
# aid % 20 = 0, every page of pgbench_accounts) or `range` (aid <= rows/20: the first 5% of its pages,
# plus the new row versions appended at its end). Usage: bench_change_sql SCALE
bench_change_sql() {
    case "${BENCH_CHANGE:-spread}" in
        range) echo "update pgbench_accounts set abalance = abalance + 1 where aid <= $1 * 100000 / 20" ;;
        spread) echo "update pgbench_accounts set abalance = abalance + 1 where aid % 20 = 0" ;;
        *) echo "BENCH_CHANGE must be spread or range" >&2; return 1 ;;
    esac
}

bench_accounts_checksum() {
    as_pg "$PGBIN/psql" -X -h "$1" -p "$2" -d postgres -qAt -v ON_ERROR_STOP=1 -c \
        "select count(*) || ':' || sum(abalance) || ':' || md5(string_agg(aid || '/' || abalance, ',' order by aid)) from pgbench_accounts"
}

# bench_restored_checksum DIR SOCKDIR PORT [CONF_LINE...]: starts the restored data directory DIR on
# PORT (archive_mode off, plus CONF_LINEs; the caller creates recovery.signal when it wants archive
# recovery), waits until recovery has ended, prints bench_accounts_checksum, stops it again.
bench_restored_checksum() {
    local dir="$1" sock="$2" port="$3" l; shift 3
    { echo "port = $port"; echo "archive_mode = off"; for l in "$@"; do echo "$l"; done; } >> "$dir/postgresql.conf"
    as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 600 start >/dev/null
    for _ in $(seq 1 1200); do
        [ "$(as_pg "$PGBIN/psql" -X -h "$sock" -p "$port" -d postgres -qAt -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ] && break
        sleep 0.5
    done
    bench_accounts_checksum "$sock" "$port" || true
    as_pg "$PGBIN/pg_ctl" -D "$dir" -w -m fast stop >/dev/null
}

# bench_pg_conf DATADIR SOCKDIR PORT [LINE...]: the benchmark cluster's settings appended to
# DATADIR/postgresql.conf (socket only, replication for base backups, room for a bulk load), then LINEs.
bench_pg_conf() {
    local dir="$1" sock="$2" port="$3" l; shift 3
    {
        printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$port" "$sock"
        printf 'wal_level = replica\nmax_wal_senders = 10\nmax_wal_size = 4GB\nshared_buffers = 256MB\n'
        for l in "$@"; do echo "$l"; done
    } >> "$dir/postgresql.conf"
}
