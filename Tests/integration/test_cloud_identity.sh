#!/usr/bin/env bash
# Cloud identity (issue 17, docs/operator-guide.md "S3 credentials", docs/encryption.md "AWS KMS"):
# the AWS credentials chain after the static sources (web identity through moto's STS, container
# credentials and EC2 instance metadata (IMDSv2) through a loopback stub written here), the 0600
# credentials cache (second push sends no STS/metadata request; due credentials are fetched again;
# a symlink planted at the cache is not followed), `walctl config` naming the source without a
# secret, and KMS-wrapped repository keys against moto's KMS (init, push, get, rotate-key, wrong key).
# moto checks S3 signatures (scripts/moto-server.py): S3 works only with the credentials the chain found.
source "$(dirname "$0")/lib.sh"

V=15
ROLE_ARN="arn:aws:iam::123456789012:role/walctl-irsa"

# One test's directory, an initdb'd cluster, a private state directory (the cache), no static credentials.
cloud_env() {
    require_pg $V
    W="$(new_workdir)"
    STUB_PID=""
    trap '[ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null; [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"' EXIT
    init_cluster $V "$W/data"
    mkdir -p "$W/state" && chown postgres "$W/state" && chmod 700 "$W/state"
    export XDG_STATE_HOME="$W/state"
    SEG="$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)"
    { echo "repository = s3://$MOTO_BUCKET/$(basename "$W")"; echo "s3-endpoint = $MOTO_ENDPOINT"; echo "s3-region = us-east-1"
      echo "s3-uri-style = path"; echo "catalog = $W/catalog.db"; } > "$W/walctl.conf"
    chown postgres "$W/walctl.conf"
    # The moto user's static keys stay in this shell (the stub and boto3 use them); walctl never sees them.
    MOTO_KEY="$AWS_ACCESS_KEY_ID"; MOTO_SECRET="$AWS_SECRET_ACCESS_KEY"
    export MOTO_KEY MOTO_SECRET
}

# walctl as postgres with only the chain's variables: no static keys, no credentials file.
walc() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN AWS_SHARED_CREDENTIALS_FILE="$W/no-credentials" \
          runuser -u postgres -- "$WALCTL" "$@"; }

# The IAM role the web identity assumes (moto: IAM and STS are not authenticated, S3 is).
make_role() {
    python3 - "$ROLE_ARN" <<'PY'
import boto3, json, os, sys
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id=os.environ["MOTO_KEY"], aws_secret_access_key=os.environ["MOTO_SECRET"])
name = sys.argv[1].rsplit("/", 1)[1]
try:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/example"}, "Action": "sts:AssumeRoleWithWebIdentity"}]}))
    iam.put_role_policy(RoleName=name, PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}]}))
except iam.exceptions.EntityAlreadyExistsException:
    pass
PY
}

# A loopback stub: STS (forwarded to moto, counted), container credentials and IMDSv2 (temporary
# credentials of the role from moto's STS AssumeRole, expiring in $W/exp seconds). Every request is
# appended to $W/hits as "METHOD PATH".
start_stub() {
    make_role
    echo 3600 > "$W/exp"
    cat > "$W/stub.py" <<'PY'
import boto3, datetime, http.server, json, os, sys, urllib.request
from botocore import UNSIGNED
from botocore.config import Config
W, moto = sys.argv[1], os.environ["MOTO_ENDPOINT"]
sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1", config=Config(signature_version=UNSIGNED))
def creds():
    c = sts.assume_role_with_web_identity(RoleArn=sys.argv[2], RoleSessionName="stub", WebIdentityToken="stub-token")["Credentials"]
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(open(W + "/exp").read()))
    return {"Code": "Success", "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
            "Token": c["SessionToken"], "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def hit(self):
        with open(W + "/hits", "a") as f: f.write(f"{self.command} {self.path}\n")
    def answer(self, code, body, ctype="application/json"):
        b = body.encode() if isinstance(body, str) else body
        self.send_response(code); self.send_header("Content-Type", ctype); self.send_header("Content-Length", str(len(b)))
        self.end_headers(); self.wfile.write(b)
    def do_POST(self):  # STS, forwarded to moto
        self.hit()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if b"revoked" in body:  # what STS answers a token it does not accept (moto accepts any)
            return self.answer(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                               "<Message>Token is revoked</Message></Error></ErrorResponse>", "text/xml")
        req = urllib.request.Request(moto + "/", data=body, method="POST", headers={"Content-Type": self.headers.get("Content-Type", "")})
        try:
            with urllib.request.urlopen(req) as r: self.answer(r.status, r.read(), "text/xml")
        except urllib.error.HTTPError as e: self.answer(e.code, e.read(), "text/xml")
    def do_PUT(self):
        self.hit()
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.answer(400, "missing TTL header", "text/plain")
        self.answer(200, "imds-session-token", "text/plain")
    def do_GET(self):
        self.hit()
        if self.path.startswith("/creds"):
            if self.headers.get("Authorization") != open(W + "/auth").read().strip():
                return self.answer(403, '{"message":"bad token"}')
            return self.answer(200, json.dumps(creds()))
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                return self.answer(401, "no token", "text/plain")
            role = self.path.rsplit("/", 1)[1]
            if role == "": return self.answer(200, "walctl-irsa\n", "text/plain")
            return self.answer(200, json.dumps(creds())) if role == "walctl-irsa" else self.answer(404, "", "text/plain")
        self.answer(404, "", "text/plain")
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(W + "/port", "w").write(str(s.server_address[1]))
s.serve_forever()
PY
    python3 "$W/stub.py" "$W" "$ROLE_ARN" > "$W/stub.log" 2>&1 &
    STUB_PID=$!
    wait_until 20 test -s "$W/port" || fail "stub did not start: $(cat "$W/stub.log")"
    STUB="http://127.0.0.1:$(cat "$W/port")"
    : > "$W/hits"
}
hits() { grep -c "$1" "$W/hits" || true; }
cache_files() { ls "$W/state/walctl/credentials/" 2>/dev/null | grep '^aws-' || true; }

push_get_roundtrip() {
    walc init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null 2>"$W/err" || fail "init: $(cat "$W/err")"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "archive-push: $(cat "$W/err")"
    walc archive-get --config "$W/walctl.conf" "$SEG" "$W/got" 2>"$W/err" || fail "archive-get: $(cat "$W/err")"
    cmp -s "$W/got" "$W/data/pg_wal/$SEG" || fail "archive-get returned other bytes"
}

test_web_identity_and_cache() {
    cloud_env
    start_stub
    echo "eyJhbGciOiJSUzI1NiJ9.e30.signature-of-the-projected-token" > "$W/token"; chmod 644 "$W/token"
    export AWS_WEB_IDENTITY_TOKEN_FILE="$W/token" AWS_ROLE_ARN="$ROLE_ARN" AWS_ROLE_SESSION_NAME=walctl-test
    export AWS_ENDPOINT_URL_STS="$STUB" AWS_EC2_METADATA_DISABLED=true
    push_get_roundtrip
    # init, push and get: one STS call, the rest from the cache.
    assert_eq "$(hits '^POST')" 1 "STS calls for init + push + get"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "second archive-push: $(cat "$W/err")"
    assert_eq "$(hits '^POST')" 1 "STS calls after a second push (cache)"
    local f; f="$(cache_files)"
    [ "$(echo "$f" | wc -l)" = 1 ] && [ -n "$f" ] || fail "cache files: '$f'"
    assert_eq "$(stat -c '%a %U' "$W/state/walctl/credentials/$f")" "600 postgres" "cache file mode/owner"
    # walctl config names the source and the role, never the secret or the token.
    walc config --config "$W/walctl.conf" > "$W/config.out" 2>&1 || fail "config failed: $(cat "$W/config.out")"
    grep -q "^# credentials: web-identity (role $ROLE_ARN, cached, valid until " "$W/config.out" || fail "config: $(grep credentials "$W/config.out")"
    walc config --config "$W/walctl.conf" --json > "$W/config.json" 2>&1 || fail "config --json failed"
    python3 "$REPO/Tests/integration/json_schema.py" "$REPO/docs/json.md" config "$W/config.json" || fail "config --json does not match docs/json.md"
    python3 - "$W/config.json" <<'PY' || fail "config --json: $(cat "$W/config.json")"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["credentials"]
assert d["formatVersion"] == 1 and c["source"] == "web-identity" and c["cached"] is True and c["expiresAt"], c
PY
    local secret token
    secret="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secretAccessKey"])' "$W/state/walctl/credentials/$f")"
    token="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sessionToken"])' "$W/state/walctl/credentials/$f")"
    [ ${#secret} -ge 16 ] || fail "no secret in the cache?"
    ! grep -qF "$secret" "$W/config.out" "$W/config.json" || fail "config printed the secret"
    ! grep -qF "${token:0:40}" "$W/config.out" "$W/config.json" || fail "config printed the session token"
    # A refused token: one line naming the source and STS's code; no secret.
    rm -rf "$W/state/walctl/credentials"
    sed -i "s|^repository = .*|repository = s3://$MOTO_BUCKET/$(basename "$W")|" "$W/walctl.conf"
    local rc=0
    echo "revoked-token" > "$W/token"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] || fail "push with a refused web identity succeeded"
    [ "$(wc -l < "$W/err")" = 1 ] && grep -q "error \[credentials\]: AWS credentials from web-identity (role $ROLE_ARN): STS AssumeRoleWithWebIdentity answered 400 InvalidIdentityToken: Token is revoked$" "$W/err" || fail "message: $(cat "$W/err")"
}

test_container_credentials() {
    cloud_env
    start_stub
    echo "Bearer pod-identity-token" > "$W/auth"; cp "$W/auth" "$W/authfile"; chmod 644 "$W/authfile"
    export AWS_CONTAINER_CREDENTIALS_FULL_URI="$STUB/creds" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$W/authfile" AWS_EC2_METADATA_DISABLED=true
    push_get_roundtrip
    assert_eq "$(hits '^GET /creds')" 1 "container credential fetches for init + push + get"
    # Credentials due within 5 minutes are fetched again at every start.
    echo 120 > "$W/exp"; rm -rf "$W/state/walctl/credentials"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "push (short-lived): $(cat "$W/err")"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "push (short-lived, again): $(cat "$W/err")"
    assert_eq "$(hits '^GET /creds')" 3 "fetches with credentials inside the refresh margin"
    walc config --config "$W/walctl.conf" 2>&1 | grep -q "^# credentials: container ($STUB/creds" || fail "config does not name the container source"
    # A wrong authorization token: refused by the endpoint, reported with [credentials].
    echo "Bearer stale" > "$W/authfile"; rm -rf "$W/state/walctl/credentials"
    local rc=0
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] && grep -q "error \[credentials\]: AWS credentials from container credentials: $STUB/creds answered HTTP 403" "$W/err" || fail "rc $rc: $(cat "$W/err")"
    # http:// to a host that is neither loopback nor the ECS/EKS agent is refused without a request.
    rc=0
    AWS_CONTAINER_CREDENTIALS_FULL_URI="http://192.0.2.10/creds" walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] && grep -q "http:// is allowed only to a loopback host or the ECS/EKS agent" "$W/err" || fail "rc $rc: $(cat "$W/err")"
}

test_instance_metadata_imdsv2() {
    cloud_env
    start_stub
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$STUB"
    push_get_roundtrip
    # The stub answers the role only with the session token from PUT /latest/api/token (TTL header).
    assert_eq "$(hits '^PUT /latest/api/token')" 1 "IMDSv2 token requests"
    assert_eq "$(hits '^GET /latest/meta-data/iam/security-credentials/walctl-irsa')" 1 "IMDS credential fetches"
    walc config --config "$W/walctl.conf" 2>&1 | grep -q "^# credentials: instance-metadata (role walctl-irsa, cached" || fail "config does not name IMDS"
    # Disabled: no source at all is one [credentials] line.
    local rc=0
    AWS_EC2_METADATA_DISABLED=true walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] && grep -q "error \[credentials\]: AWS credentials from chain: no AWS credentials found" "$W/err" || fail "rc $rc: $(cat "$W/err")"
}

test_cache_symlink_and_corruption() {
    cloud_env
    start_stub
    export AWS_EC2_METADATA_SERVICE_ENDPOINT="$STUB"
    push_get_roundtrip
    local f; f="$W/state/walctl/credentials/$(cache_files)"
    # A symlink planted at the cache's name is neither read nor written through.
    echo "victim" > "$W/victim"; chown postgres "$W/victim"
    cp "$f" "$W/victim.cached"; chown postgres "$W/victim.cached"
    rm "$f"; ln -s "$W/victim.cached" "$f"; chown -h postgres "$f"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "push with a symlinked cache: $(cat "$W/err")"
    assert_eq "$(hits '^PUT /latest/api/token')" 2 "a symlinked cache is not used"
    [ -f "$f" ] && [ ! -L "$f" ] || fail "the symlink was not replaced by a private file"
    cmp -s "$W/victim.cached" <(cat "$W/victim.cached") && assert_eq "$(stat -c %a "$f")" 600 "rewritten cache mode"
    # A corrupt cache is ignored and rewritten.
    echo "{not json" > "$f"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "push with a corrupt cache: $(cat "$W/err")"
    assert_eq "$(hits '^PUT /latest/api/token')" 3 "a corrupt cache is refetched"
    python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$f" || fail "corrupt cache not rewritten"
    # Group-readable: not trusted.
    chmod 640 "$f"
    walc archive-push --config "$W/walctl.conf" "$W/data/pg_wal/$SEG" 2>"$W/err" || fail "push with a 0640 cache: $(cat "$W/err")"
    assert_eq "$(hits '^PUT /latest/api/token')" 4 "a group-readable cache is not used"
}

# KMS keys in moto (KMS is not authenticated in moto; S3 is, with the moto user's keys here).
make_kms_key() {
    python3 - "$1" <<'PY'
import boto3, os, sys
kms = boto3.client("kms", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id=os.environ["MOTO_KEY"], aws_secret_access_key=os.environ["MOTO_SECRET"])
k = kms.create_key(Description=sys.argv[1])["KeyMetadata"]
kms.create_alias(AliasName="alias/" + sys.argv[1], TargetKeyId=k["KeyId"])
print(k["Arn"])
PY
}

test_kms_repository() {
    cloud_env
    export AWS_ENDPOINT_URL_KMS="$MOTO_ENDPOINT" AWS_ENDPOINT_URL="http://127.0.0.1:9" AWS_EC2_METADATA_DISABLED=true
    local k1 k2 tag; tag="$(basename "$W" | tr -dc 'a-zA-Z0-9')"
    k1="$(make_kms_key "walctl-$tag-1")"; k2="$(make_kms_key "walctl-$tag-2")"
    { echo "s3-key = $MOTO_KEY"; echo "s3-key-secret = $MOTO_SECRET"; echo "repository-cipher = aes-256-gcm"
      echo "repository-cipher-kms-key = $k1"; } >> "$W/walctl.conf"
    push_get_roundtrip
    python3 - "$(basename "$W")" "$k1" <<'PY' || fail "binding or object"
import boto3, json, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["MOTO_KEY"], aws_secret_access_key=os.environ["MOTO_SECRET"])
b = os.environ["MOTO_BUCKET"]
e = json.loads(s3.get_object(Bucket=b, Key=sys.argv[1] + "/repository.json")["Body"].read())["encryption"]
assert e["kms"]["keyArn"] == sys.argv[2] and e["kms"]["ciphertextBlob"] and "wrappedKey" not in e and "kdf" not in e, e
objs = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix=sys.argv[1] + "/wal/")["Contents"] if o["Key"].endswith(".zst")]
assert objs and s3.get_object(Bucket=b, Key=objs[0])["Body"].read()[:4] != b"\x28\xb5\x2f\xfd", "object stored in plaintext zstd"
PY
    # The unwrapped key is cached like a passphrase's (0600 under the state directory).
    [ -n "$(ls "$W/state/walctl/keys/")" ] || fail "no key cache entry"
    # Another KMS key is refused, even with the first key's cache entry present: KMS says AccessDenied.
    local rc=0
    walc archive-get --config "$W/walctl.conf" --set "repository-cipher-kms-key=$k2" "$SEG" "$W/got2" 2>"$W/err" || rc=$?
    assert_eq "$rc" 255 "archive-get with the wrong KMS key"
    grep -q "error \[cipher-key\]: AWS KMS Decrypt with key $k2 refused: 400 AccessDeniedException" "$W/err" || fail "message: $(cat "$W/err")"
    [ ! -e "$W/got2" ] || fail "wrote a file with the wrong key"
    # A passphrase for a KMS repository: refused naming the KMS key.
    rc=0
    sed "/^repository-cipher-kms-key/d" "$W/walctl.conf" > "$W/pass.conf"; echo "repository-cipher-pass = hunter2" >> "$W/pass.conf"; chown postgres "$W/pass.conf"
    walc archive-get --config "$W/pass.conf" "$SEG" "$W/got3" 2>"$W/err" || rc=$?
    [ "$rc" = 255 ] && grep -q "wrapped by AWS KMS key $k1, not a passphrase" "$W/err" || fail "rc $rc: $(cat "$W/err")"
    # Both at once is a configuration error.
    rc=0
    walc config --config "$W/walctl.conf" --set repository-cipher-pass=x >/dev/null 2>"$W/err" || rc=$?
    [ "$rc" != 0 ] && grep -q "\[config\].*repository-cipher-kms-key" "$W/err" || fail "kms key + passphrase: rc $rc: $(cat "$W/err")"
    # rotate-key to the second key (by alias): objects unchanged, only k2 opens the repository now.
    walc repository rotate-key --config "$W/walctl.conf" --new-kms-key "alias/walctl-$tag-2" > "$W/rot" 2>&1 || fail "rotate-key: $(cat "$W/rot")"
    grep -q "rewrapped with AWS KMS key $k2" "$W/rot" || fail "rotate-key said: $(cat "$W/rot")"
    rm -rf "$W/state/walctl/keys" "$W/got"
    walc archive-get --config "$W/walctl.conf" --set "repository-cipher-kms-key=alias/walctl-$tag-2" "$SEG" "$W/got" 2>"$W/err" || fail "get after rotation: $(cat "$W/err")"
    cmp -s "$W/got" "$W/data/pg_wal/$SEG" || fail "bytes after rotation"
    rc=0
    walc archive-get --config "$W/walctl.conf" "$SEG" "$W/got4" 2>"$W/err" || rc=$?
    [ "$rc" = 255 ] && grep -q "AccessDeniedException" "$W/err" || fail "old key after rotation: rc $rc: $(cat "$W/err")"
    # rotate-key without a new key re-wraps under the configured key (a fresh blob).
    sed -i "s|^repository-cipher-kms-key = .*|repository-cipher-kms-key = $k2|" "$W/walctl.conf"
    walc repository rotate-key --config "$W/walctl.conf" > "$W/rot" 2>&1 || fail "rotate-key (same key): $(cat "$W/rot")"
    rm -rf "$W/state/walctl/keys" "$W/got"
    walc archive-get --config "$W/walctl.conf" "$SEG" "$W/got" 2>"$W/err" || fail "get after re-wrap: $(cat "$W/err")"
    cmp -s "$W/got" "$W/data/pg_wal/$SEG" || fail "bytes after re-wrap"
}

# The archive/recover story once on a KMS repository: backup, WAL, recovery to a time with the key
# cache emptied, so restore_command unwraps the data key through KMS in the server's environment.
test_kms_backup_and_recover() {
    cloud_env
    export AWS_ENDPOINT_URL_KMS="$MOTO_ENDPOINT" AWS_EC2_METADATA_DISABLED=true
    local k1 tag; tag="$(basename "$W" | tr -dc 'a-zA-Z0-9')"
    k1="$(make_kms_key "walctl-$tag-r")"
    { echo "s3-key = $MOTO_KEY"; echo "s3-key-secret = $MOTO_SECRET"; echo "repository-cipher = aes-256-gcm"
      echo "repository-cipher-kms-key = alias/walctl-$tag-r"; } >> "$W/walctl.conf"
    PORT="$(free_port)"; BIN="$(pg_bin $V)"
    walc init --config "$W/walctl.conf" --pgdata "$W/data" >/dev/null 2>"$W/err" || fail "init: $(cat "$W/err")"
    configure_cluster "$W/data" "$PORT" "$W" "archive_mode = on" \
        "archive_command = '$WALCTL archive-push --config $W/walctl.conf %p'" "timezone = 'UTC'"
    trap 'pg_stop $V "$W/data" immediate; pg_stop $V "$W/rec" immediate; [ -n "${KEEP_TMP:-}" ] || rm -rf "$W"' EXIT
    pg_start $V "$W/data"
    sql() { psql_at $V "$W" "$PORT" "$@"; }
    sql "create table accounts(id int primary key, owner text)"
    sql "insert into accounts select g, 'before-backup-' || g from generate_series(1, 1000) g"
    walc backup take --config "$W/walctl.conf" --label kms --dbname "host=$W port=$PORT user=postgres dbname=postgres" >/dev/null 2>"$W/err" \
        || fail "backup on a KMS repository: $(cat "$W/err")"
    sql "insert into accounts select g, 'after-backup-' || g from generate_series(1001, 2000) g"
    switch_and_wait >/dev/null
    local target; target="$(now_utc)"
    sleep 0.3
    sql "insert into accounts select g, 'after-target-' || g from generate_series(2001, 2500) g"
    switch_and_wait >/dev/null
    pg_stop $V "$W/data"
    rm -rf "$W/state/walctl/keys"
    walc recover --config "$W/walctl.conf" --pgdata "$W/rec" --to "$target" >"$W/rec.out" 2>"$W/rec.err" || fail "recover: $(cat "$W/rec.err")"
    rm -rf "$W/state/walctl/keys"   # recover cached it: restore_command must ask KMS itself
    local port2; port2="$(free_port)"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin AWS_ENDPOINT_URL_KMS="$MOTO_ENDPOINT" XDG_STATE_HOME="$W/state" AWS_EC2_METADATA_DISABLED=true \
        runuser -u postgres -- "$BIN/pg_ctl" -D "$W/rec" -l "$W/rec/walctl_recovery.log" -o "-p $port2 -c archive_mode=off" -w -t 120 start >/dev/null 2>&1 || true
    wait_until 120 bash -c "runuser -u postgres -- $WALCTL recover --status --json --pgdata $W/rec | grep -q '\"state\" : \"paused-at-target\"'" \
        || { tail -5 "$W/rec/walctl_recovery.log" >&2; fail "recovery did not reach the target"; }
    assert_eq "$(psql_at $V "$W" "$port2" "select count(*) from accounts")" "2000" "rows at the target"
    [ -n "$(ls "$W/state/walctl/keys/")" ] || fail "restore_command did not cache the KMS-unwrapped key"
}

start_moto || { echo "test_cloud_identity: 0 passed, 1 failed (moto_server did not start)"; exit 1; }
run_suite "$@"
