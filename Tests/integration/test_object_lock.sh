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

start_moto || { echo "test_object_lock: 0 passed, 1 failed (moto_server did not start)"; exit 1; }
run_suite "$@"
