#!/usr/bin/env bash
# Benchmarks/expire.sh: `walctl expire` (issue 14) on a file repository and on S3 (moto_server).
#
#   Benchmarks/expire.sh                       # both stores, N=100000; then the planning step at 10^6
#   STORES=file N=10000 PLAN_N=0 Benchmarks/expire.sh
#
# Expire: the repository holds N fake archived segments on timeline 1 (a valid .meta with a summary
# and a 64-byte data object each) and two backups: `old` (segment 1) and `new` (segment N-9). With
# retention-full = 1, expire removes `old` and segments 1 .. N-10: 2(N-10) WAL objects + 2 backup
# objects. One run per store (it is destructive); the catalog is rebuilt from the repository first.
# Printed: wall time, objects removed, requests sent (DeleteObjects batches on S3, one unlink per
# object on a file repository), objects per second.
#
# Planning: PLAN_N (default 1000000) segments as metas only in a file repository (the plan reads
# the catalog, never an object), catalog rebuilt, then `expire --dry-run` (process start, catalog
# open, one listing of backup/ and locks/, the plan) RUNS (default 5) times: the median wall time.
# Environment: WALCTL (default .build-static/release/walctl), N, PLAN_N, RUNS, STORES ("file s3").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WALCTL=${WALCTL:-$ROOT/.build-static/release/walctl}
N=${N:-100000}
PLAN_N=${PLAN_N:-1000000}
RUNS=${RUNS:-5}
STORES=${STORES:-file s3}
WORK=$(mktemp -d /tmp/walctl-expire.XXXXXX)
MOTO_PID=""
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# make_repo KIND N DATA(0|1) PREFIX
make_repo() {
    python3 - "$1" "$2" "$3" "$WORK" "$4" <<'PY'
import json, os, sys
kind, n, data, work, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
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
for label, s in (("old", 1), ("new", n - 9)):
    rec = {"label": label, "startLSN": lsn(s * seg + 0x28), "stopLSN": lsn(s * seg + 0x100), "checkpointLSN": lsn(s * seg + 0x28),
           "startTime": ts(s), "stopTime": ts(s), "timeline": 1, "size": 1 << 20, "storedSize": 3, "status": "complete",
           "pgVersion": 15, "systemIdentifier": sysid,
           "contents": {"formatVersion": 1, "archives": [{"object": "base.tar.zst", "serverName": "base.tar", "codec": "zstd",
                                                          "compressedBy": "client", "storedSize": 3, "storedCRC32C": "00000000"}],
                        "serverVersionNum": 150000, "walSegmentSize": seg, "firstWALSegment": name(s), "lastWALSegment": name(s),
                        "streamSeconds": 0, "walWaitSeconds": 0, "compression": "zstd"}}
    objs["backup/%s/backup.json" % label] = json.dumps(rec)
    objs["backup/%s/base.tar.zst" % label] = "abc"
if kind == "file":
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

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo
echo "| store | segments | objects removed | requests | wall | objects/s |"
echo "|---|---|---|---|---|---|"
for store in $STORES; do
    conf="$WORK/$store.conf"
    if [ "$store" = s3 ]; then
        envf="$WORK/moto.env"
        python3 "$ROOT/scripts/moto-server.py" --port 0 --bucket walctl-expire --env-file "$envf" --no-stdin-watch --max-seconds 7200 > "$WORK/moto.log" 2>&1 &
        MOTO_PID=$!
        for _ in $(seq 1 300); do grep -q '^READY' "$WORK/moto.log" && break; sleep 0.2; done
        # shellcheck disable=SC1090
        source "$envf"
        unset WALCTL_REPOSITORY WALCTL_S3_ENDPOINT WALCTL_S3_REGION WALCTL_S3_URI_STYLE WALCTL_S3_KEY WALCTL_S3_KEY_SECRET
        export MOTO_ENDPOINT MOTO_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
        printf 'repository = s3://%s/expire\ns3-endpoint = %s\ns3-region = us-east-1\ns3-uri-style = path\ns3-key = %s\ns3-key-secret = %s\ncatalog = %s\nretention-full = 1\n' \
            "$MOTO_BUCKET" "$MOTO_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$WORK/s3.db" > "$conf"
        make_repo s3 "$N" 1 expire
    else
        printf 'repository = file://%s/repo\ncatalog = %s\nretention-full = 1\n' "$WORK" "$WORK/file.db" > "$conf"
        make_repo file "$N" 1 repo
    fi
    "$WALCTL" catalog rebuild --config "$conf" >/dev/null
    "$WALCTL" expire --config "$conf" --json > "$WORK/$store.json"
    python3 - "$WORK/$store.json" "$store" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %s | %d | %d | %.2f s | %.0f |" % (sys.argv[2], sys.argv[3], r["objectsRemoved"], r["requests"], r["seconds"], r["objectsRemoved"] / max(r["seconds"], 1e-9)))
PY
    if [ "$store" = s3 ]; then kill "$MOTO_PID"; MOTO_PID=""; fi
done

if [ "$PLAN_N" -gt 0 ]; then
    printf 'repository = file://%s/plan\ncatalog = %s\nretention-full = 1\n' "$WORK" "$WORK/plan.db" > "$WORK/plan.conf"
    make_repo file "$PLAN_N" 0 plan
    start=$(date +%s.%N); "$WALCTL" catalog rebuild --config "$WORK/plan.conf" >/dev/null; end=$(date +%s.%N)
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f "%e" -o "$WORK/time" "$WALCTL" expire --config "$WORK/plan.conf" --dry-run --json > "$WORK/plan.json"
        cat "$WORK/time"
    done > "$WORK/times"
    segs=$(python3 -c "import json,sys; print(sum(r['segments'] for r in json.load(open(sys.argv[1]))['plan']['walRemoved']))" "$WORK/plan.json")
    echo
    echo "planning at $PLAN_N segments in the catalog (catalog rebuild took $(echo "$end - $start" | bc) s): expire --dry-run median of $RUNS: $(median < "$WORK/times") s (plan removes $segs segments)"
fi
