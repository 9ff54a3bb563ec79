#!/usr/bin/env bash
# Benchmarks/prove.sh: the cost of `walctl recover`'s proof against the repository (issue 12) at
# 10^4 segments, on a file repository and on S3 (moto_server).
#
#   Benchmarks/prove.sh                 # both stores; prints a markdown table
#   STORES=file Benchmarks/prove.sh     # one store
#
# The repository holds N (default 10000) fake archived segments on timeline 1 (a valid .meta with a
# summary, and a 64-byte data object each: the proof lists, it never reads a data object), and a
# base backup `first` (backup.json + a tiny base.tar.zst) that starts and stops in segment 1.
# The catalog is rebuilt from the repository. Then `walctl recover --dry-run` is timed for:
#   - --latest from `first`: the plan covers all N segments, the proof lists every wal/ directory
#     of the range (N/256 of them with 16 MiB segments) and backup/first/;
#   - --immediate from the same backup: the plan covers 1 segment, the proof lists one directory
#     and backup/first/.
# Both plans cost the same catalog seeks, so the difference is the proof of N segments (catalog
# range read of N rows plus the listings). RUNS (default 10) runs each; the medians of wall and CPU (user + system) time are printed.
# Environment: WALCTL (default .build-static/release/walctl), N, RUNS, STORES ("file s3").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WALCTL=${WALCTL:-$ROOT/.build-static/release/walctl}
N=${N:-10000}
RUNS=${RUNS:-10}
STORES=${STORES:-file s3}
WORK=$(mktemp -d /tmp/walctl-prove.XXXXXX)
MOTO_PID=""
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# make_repo KIND: writes the objects (python: fast for 2N+ objects) into DIR/repo or the moto bucket.
make_repo() {
    python3 - "$1" "$N" "$WORK" <<'PY'
import json, os, sys
kind, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sysid = "7441234567890123456"
seg = 16 << 20
def name(s): return "%08X%08X%08X" % (1, s >> 8, s & 0xFF)
def lsn(v): return "%X/%X" % (v >> 32, v & 0xFFFFFFFF)
def ts(sec): return "2026-11-30T%02d:%02d:%02d.000000+00:00" % (sec // 3600 % 24, sec // 60 % 60, sec % 60)
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
    objs[d + name(s) + "." + crc + ".zst"] = "x" * 64
for label, s in (("first", 1),):
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
        p = os.path.join(work, "repo", k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f: f.write(v)
else:
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda kv: s3.put_object(Bucket=os.environ["MOTO_BUCKET"], Key="prove/" + kv[0], Body=kv[1].encode()), objs.items()))
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# time_dry_run CONFIG ARGS...: "WALL CPU", the medians of RUNS dry runs (seconds; CPU = user + system).
time_dry_run() {
    local conf="$1"; shift
    for _ in $(seq 1 "$RUNS"); do
        /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$WALCTL" recover --config "$conf" --dry-run --pgdata "$WORK/target" "$@" \
            >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        cat "$WORK/time"
    done > "$WORK/times"
    echo "$(awk '{print $1}' "$WORK/times" | median) $(awk '{print $2 + $3}' "$WORK/times" | median)"
}

echo "| store | segments | recover --latest --dry-run (proof of $N segments): wall / CPU | --immediate, same backup (proof of 1): wall / CPU | difference: wall / CPU |"
echo "|---|---|---|---|---|"
for store in $STORES; do
    conf="$WORK/$store.conf"
    if [ "$store" = s3 ]; then
        envf="$WORK/moto.env"
        python3 "$ROOT/scripts/moto-server.py" --port 0 --bucket walctl-prove --env-file "$envf" --no-stdin-watch --max-seconds 3600 > "$WORK/moto.log" 2>&1 &
        MOTO_PID=$!
        for _ in $(seq 1 300); do grep -q '^READY' "$WORK/moto.log" && break; sleep 0.2; done
        # shellcheck disable=SC1090
        source "$envf"
        unset WALCTL_REPOSITORY WALCTL_S3_ENDPOINT WALCTL_S3_REGION WALCTL_S3_URI_STYLE WALCTL_S3_KEY WALCTL_S3_KEY_SECRET
        export MOTO_ENDPOINT MOTO_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
        printf 'repository = s3://%s/prove\ns3-endpoint = %s\ns3-region = us-east-1\ns3-uri-style = path\ns3-key = %s\ns3-key-secret = %s\ncatalog = %s\n' \
            "$MOTO_BUCKET" "$MOTO_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$WORK/s3.db" > "$conf"
    else
        printf 'repository = file://%s/repo\ncatalog = %s\n' "$WORK" "$WORK/file.db" > "$conf"
    fi
    make_repo "$store"
    "$WALCTL" catalog rebuild --config "$conf" >/dev/null
    read -r aw ac <<< "$(time_dry_run "$conf" --latest)"
    read -r ow oc <<< "$(time_dry_run "$conf" --immediate)"
    printf '| %s | %d | %.3f s / %.3f s | %.3f s / %.3f s | %.3f s / %.3f s |\n' "$store" "$N" "$aw" "$ac" "$ow" "$oc" \
        "$(echo "$aw - $ow" | bc -l)" "$(echo "$ac - $oc" | bc -l)"
done
