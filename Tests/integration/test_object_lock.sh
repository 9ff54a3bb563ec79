#!/usr/bin/env bash
# S3 Object Lock (issue 17, docs/operator-guide.md "Immutable archives"): with s3-object-lock-mode and
# s3-object-lock-days every object walctl stores carries retention headers (and the Content-MD5 S3
# requires with them), against moto; `walctl init` refuses a bucket without Object Lock.
source "$(dirname "$0")/lib.sh"

V=15

lock_env() {
    require_pg $V
    W="$(new_workdir)"
    trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$W"' EXIT
    init_cluster $V "$W/data"
    python3 - <<'PY'
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
try:
    s3.create_bucket(Bucket="walctl-lock", ObjectLockEnabledForBucket=True)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
PY
}
conf() {   # conf BUCKET MODE DAYS
    { echo "repository = s3://$1/$(basename "$W")"; echo "s3-endpoint = $MOTO_ENDPOINT"; echo "s3-region = us-east-1"
      echo "s3-uri-style = path"; echo "s3-key = $AWS_ACCESS_KEY_ID"; echo "s3-key-secret = $AWS_SECRET_ACCESS_KEY"
      echo "catalog = $W/catalog.db"; echo "s3-object-lock-mode = $2"; echo "s3-object-lock-days = $3"
      echo "s3-part-size = 5242880"; } > "$W/walctl.conf"
    chown postgres "$W/walctl.conf"
}

test_every_object_is_retained() {
    lock_env
    conf walctl-lock governance 2
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || fail "init on an Object Lock bucket failed"
    local seg; seg="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    # initdb's segment, compressed: one PUT.
    as_pg "$WALCTL" archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$seg" || fail "archive-push with Object Lock failed"
    python3 - "$(basename "$W")" "$seg" <<'PY' || fail "retention not set on every object"
import boto3, os, sys, datetime
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
prefix, seg = sys.argv[1] + "/", sys.argv[2]
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="walctl-lock", Prefix=prefix)["Contents"]]
wal = [k for k in keys if "/wal/" in k]
assert len(wal) == 2, keys            # the data object and its meta
now = datetime.datetime.now(datetime.timezone.utc)
for k in wal:
    h = s3.head_object(Bucket="walctl-lock", Key=k)
    assert h.get("ObjectLockMode") == "GOVERNANCE", (k, h.get("ObjectLockMode"))
    until = h["ObjectLockRetainUntilDate"]
    assert datetime.timedelta(days=2) - datetime.timedelta(hours=1) < until - now <= datetime.timedelta(days=2), (k, until)
    # A locked version cannot be deleted without bypassing governance.
    try:
        s3.delete_object(Bucket="walctl-lock", Key=k, VersionId=h["VersionId"])
        raise SystemExit("deleted a retained version of " + k)
    except s3.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] in ("AccessDenied", "ObjectLocked"), e.response["Error"]
PY
    # A multipart upload (uncompressed 16 MiB > s3-part-size 5 MiB) carries the retention too.
    sed -i "s|^repository = .*|repository = s3://walctl-lock/$(basename "$W")-mp|" "$W/walctl.conf"
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || fail "init (multipart prefix) failed"
    as_pg "$WALCTL" archive-push --config "$W/walctl.conf" --set compress-type=none "$W/data/pg_wal/$seg" || fail "multipart archive-push with Object Lock failed"
    python3 - "$(basename "$W")-mp/" <<'PY' || fail "retention not set on the multipart object"
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
objs = [o for o in s3.list_objects_v2(Bucket="walctl-lock", Prefix=sys.argv[1])["Contents"] if "/wal/" in o["Key"] and not o["Key"].endswith(".meta")]
assert len(objs) == 1 and objs[0]["Size"] == 16 << 20, objs
h = s3.head_object(Bucket="walctl-lock", Key=objs[0]["Key"])
assert h.get("ObjectLockMode") == "GOVERNANCE", h.get("ObjectLockMode")
PY
}

test_init_refuses_bucket_without_lock() {
    lock_env
    conf "$MOTO_BUCKET" compliance 1
    local rc=0
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] || fail "init with s3-object-lock-mode on a bucket without Object Lock succeeded"
    grep -q "error \[refused\]: s3-object-lock-mode = compliance, but bucket $MOTO_BUCKET has no Object Lock" "$W/err" || fail "message: $(cat "$W/err")"
    # One setting without the other is a configuration error.
    rc=0
    as_pg "$WALCTL" init --config "$W/walctl.conf" --set s3-object-lock-days= --pgdata "$W/data" >/dev/null 2>"$W/err2" || rc=$?
    [ "$rc" != 0 ] && grep -q "\[config\].*s3-object-lock" "$W/err2" || fail "mode without days: exit $rc, $(cat "$W/err2")"
}

# expire on an Object Lock repository (issue 17): what is still retained is kept (not a failure),
# said in one line and in --json, and stays listed; after the retention date an expire removes it,
# versions included. Three runs: (a) now: the listing's write times say retained, nothing is
# journaled; (b) --now two days on: the plan says released, moto refuses the versions
# (AccessDenied), the journal stays open, still exit 0 and verify/check clean; (c) the retention
# shortened (governance bypass) and past: the next expire removes every version.
test_expire_skips_retained_objects() {
    lock_env
    conf walctl-lock governance 1
    echo "retention-full = 1" >> "$W/walctl.conf"
    PORT="$(free_port)"
    trap '[ -f "$W/data/postmaster.pid" ] && pg_stop $V "$W/data" immediate; [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"' EXIT
    as_pg "$WALCTL" init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null || { fail "init"; return 1; }
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'"
    pg_start $V "$W/data"
    local conn="host=$W port=$PORT user=postgres dbname=postgres" i
    w() { as_pg "$WALCTL" "$@" --config "$W/walctl.conf"; }
    psql_at $V "$W" "$PORT" "create table t(x int)"
    w backup --label l1 --dbname "$conn" --no-progress >/dev/null 2>&1 || { fail "backup l1"; return 1; }
    for i in 1 2 3; do psql_at $V "$W" "$PORT" "insert into t values ($i)"; switch_and_wait >/dev/null; done
    w backup --label l2 --dbname "$conn" --no-progress >/dev/null 2>&1 || { fail "backup l2"; return 1; }
    psql_at $V "$W" "$PORT" "insert into t values (9)"; switch_and_wait >/dev/null
    local later; later="$(python3 -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).isoformat())')"

    # (a) Everything l1 needs was written seconds ago: retained, kept, nothing journaled.
    w expire --json > "$W/a.json" 2>"$W/a.err" || { cat "$W/a.err"; fail "expire (a) failed"; return 1; }
    python3 - "$W/a.json" <<'PY' || fail "expire (a) --json: $(head -c 900 "$W/a.json")"
import json, sys, datetime
r = json.load(open(sys.argv[1]))
k = r["objectLock"]
assert k["keptBackups"] == ["l1"] and k["retainedObjectCount"] > 0 and k["keptSegmentCount"] > 0, k
until = datetime.datetime.fromisoformat(k["retainedUntil"])
delta = until - datetime.datetime.now(datetime.timezone.utc)
assert datetime.timedelta(hours=23) < delta <= datetime.timedelta(days=1), delta
assert r["plan"]["walRemoved"] == [] and [b["action"] for b in r["plan"]["backups"] if b["label"] == "l1"] == ["keep"], r["plan"]
PY
    w expire > "$W/a.txt" 2>&1 || fail "expire (a, text) failed: $(cat "$W/a.txt")"
    grep -qE "^object lock: kept [0-9]+ objects still under retention until 20[0-9-]+T.* \(backup l1\) \([0-9]+ segments stay listed\); a walctl expire after that date removes them$" "$W/a.txt" \
        || fail "no object lock line: $(cat "$W/a.txt")"
    w backup list | grep -q "^l1 .*complete" || fail "l1 is not listed as complete after (a)"
    w verify >/dev/null 2>&1 || fail "verify not clean after (a)"
    w catalog check >/dev/null 2>&1 || fail "catalog check not clean after (a)"

    # (b) Two days on by the plan's clock, but moto still retains the versions: refused, kept, exit 0.
    w expire --json --now "$later" > "$W/b.json" 2>"$W/b.err" || { cat "$W/b.err" "$W/b.json"; fail "expire (b) failed on retained versions"; return 1; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); k=r["objectLock"]; assert k["retainedObjectCount"] > 0 and k["keptBackups"] == [], r' "$W/b.json" \
        || fail "expire (b) --json: $(head -c 900 "$W/b.json")"
    w verify >/dev/null 2>&1 || fail "verify not clean after (b)"
    w catalog check --json > "$W/b-check.json" 2>&1 || fail "catalog check not clean after (b): $(head -c 600 "$W/b-check.json")"

    # (c) The retention shortened to 2 s (governance bypass) and past: the next expire removes every version.
    python3 - "$(basename "$W")/" <<'PY' || { fail "could not shorten the retention"; return 1; }
import boto3, os, sys, datetime
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
for page in s3.get_paginator("list_object_versions").paginate(Bucket="walctl-lock", Prefix=sys.argv[1]):
    for v in page.get("Versions", []):
        s3.put_object_retention(Bucket="walctl-lock", Key=v["Key"], VersionId=v["VersionId"], BypassGovernanceRetention=True,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
PY
    sleep 3
    w expire --json --now "$later" > "$W/c.json" 2>"$W/c.err" || { cat "$W/c.err"; fail "expire (c) failed"; return 1; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert "objectLock" not in r and r["objectsRemoved"] > 0, r' "$W/c.json" \
        || fail "expire (c) --json: $(head -c 900 "$W/c.json")"
    python3 - "$(basename "$W")/" <<'PY' || fail "versions of l1 remain"
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1")
r = s3.list_object_versions(Bucket="walctl-lock", Prefix=sys.argv[1] + "backup/l1/")
left = [v["Key"] for v in r.get("Versions", [])]
assert not left, left
PY
    w backup list | grep -q "^l1 " && fail "l1 still listed after (c)"
    w verify >/dev/null 2>&1 || fail "verify not clean after (c)"
    w catalog check >/dev/null 2>&1 || fail "catalog check not clean after (c)"
    w catalog check --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["drift"]["expiring"] == [], d' || fail "still expiring after (c)"
}

start_moto || { echo "test_object_lock: 0 passed, 1 failed (moto_server did not start)"; exit 1; }
run_suite "$@"
