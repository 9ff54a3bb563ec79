#!/usr/bin/env python3
"""moto S3 emulator with SigV4 checking on, for walctl's tests.

Usage:
  scripts/moto-server.py --port 0 --bucket walctl-test --env-file /tmp/moto.env [--part-min-size 5242880]

What it does:
  1. Sets INITIAL_NO_AUTH_ACTION_COUNT=4 before moto loads, so moto checks every signature after the
     first four requests.
  2. Patches moto.core.authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action:
     moto 5.2.1 rebuilds the request it verifies from an already-decoded URI, so correct signatures
     of requests whose query holds '/' (ListObjectsV2 prefix) or whose key holds '+' or '%' fail.
     The patch hands moto the URI exactly as the client sent it (werkzeug's RAW_URI), re-encoded the
     way SigV4 canonicalises it (each byte outside A-Z a-z 0-9 - _ . ~ as %XX; '/' kept in the path).
  3. Starts the server on 127.0.0.1 (port 0 picks a free port).
  4. Setup, with the four unauthenticated calls: an IAM user, a policy allowing s3:*, its
     attachment, an access key. Then, signed with that key, creates --bucket.
  5. Writes a shell-sourceable env file (--env-file) and prints one line
     `READY port=<port> env=<file>` on stdout.
  6. Serves until stdin reaches EOF (its parent died or closed the pipe), SIGTERM/SIGINT, or
     --max-seconds (default 3600) elapse: it always stops by itself.

Env file variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, MOTO_ENDPOINT,
MOTO_PORT, MOTO_BUCKET, WALCTL_S3_ENDPOINT, WALCTL_S3_REGION, WALCTL_S3_URI_STYLE, WALCTL_S3_KEY,
WALCTL_S3_KEY_SECRET, WALCTL_REPOSITORY (s3://bucket/walctl).
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from urllib.parse import quote, unquote, urlsplit, urlunsplit

NO_AUTH_CALLS = 4


def canonical_path(path: str) -> str:
    return quote(unquote(path), safe="/-_.~")


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        k, _, v = pair.partition("=")
        pairs.append(quote(unquote(k), safe="-_.~") + "=" + quote(unquote(v), safe="-_.~"))
    return "&".join(pairs)


def install_patch() -> None:
    from moto.core import authorization
    from moto.core.responses import BaseResponse

    original_setup = BaseResponse.setup_class

    def setup_class(self, request, full_url, headers, *args, **kwargs):
        environ = getattr(request, "environ", None) or {}
        self._walctl_raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        return original_setup(self, request, full_url, headers, *args, **kwargs)

    BaseResponse.setup_class = setup_class

    original_auth = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        # AWS does not sign AssumeRoleWithWebIdentity (the token is the proof); moto 5.2.1 fails it
        # with a 500 when authentication is on.
        try:
            if self._get_action() == "AssumeRoleWithWebIdentity":
                return None
        except Exception:
            pass
        raw = getattr(self, "_walctl_raw_uri", None)
        if not raw:
            return original_auth(self, iam_request_cls, resource)
        saved = self.uri
        current = urlsplit(saved)
        sent = urlsplit(raw)
        self.uri = urlunsplit((current.scheme, current.netloc, canonical_path(sent.path),
                               canonical_query(sent.query), ""))
        try:
            return original_auth(self, iam_request_cls, resource)
        finally:
            self.uri = saved

    authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def setup(endpoint: str, bucket: str, region: str) -> dict:
    import boto3

    anon = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="bootstrap",
                aws_secret_access_key="bootstrap")
    iam = boto3.client("iam", **anon)
    iam.create_user(UserName="walctl")
    policy = iam.create_policy(PolicyName="walctl-s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        # kms, iam and sts too: test_cloud_identity creates roles and KMS keys and walctl calls KMS.
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*", "iam:*", "sts:*"], "Resource": "*"}],
    }))
    iam.attach_user_policy(UserName="walctl", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="walctl")["AccessKey"]
    creds = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                      aws_access_key_id=creds["id"], aws_secret_access_key=creds["secret"])
    if bucket:
        s3.create_bucket(Bucket=bucket)
    return creds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: pick a free port")
    ap.add_argument("--bucket", default="walctl-test")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--env-file", help="write shell-sourceable credentials here")
    ap.add_argument("--part-min-size", type=int, help="moto's minimum multipart part size (S3: 5 MiB)")
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--no-stdin-watch", action="store_true", help="do not exit on stdin EOF")
    ap.add_argument("--preload", help="JSON lines {\"k\": key, \"b\": body} stored in --bucket before READY, "
                    "through moto's model instead of HTTP (benchmarks: 10^5 objects in seconds, not hours)")
    args = ap.parse_args()

    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_CALLS)
    if args.part_min_size:
        os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(args.part_min_size)
    install_patch()
    from moto.server import ThreadedMotoServer

    port = args.port or free_port(args.host)
    server = ThreadedMotoServer(ip_address=args.host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{args.host}:{port}"
    creds = setup(endpoint, args.bucket, args.region)
    if args.preload:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        with open(args.preload, encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                backend.put_object(args.bucket, o["k"], o["b"].encode())

    env = {
        "AWS_ACCESS_KEY_ID": creds["id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret"],
        "AWS_DEFAULT_REGION": args.region,
        "MOTO_ENDPOINT": endpoint,
        "MOTO_PORT": str(port),
        "MOTO_BUCKET": args.bucket,
        "WALCTL_S3_ENDPOINT": endpoint,
        "WALCTL_S3_REGION": args.region,
        "WALCTL_S3_URI_STYLE": "path",
        "WALCTL_S3_KEY": creds["id"],
        "WALCTL_S3_KEY_SECRET": creds["secret"],
        "WALCTL_REPOSITORY": f"s3://{args.bucket}/walctl",
    }
    if args.env_file:
        tmp = args.env_file + ".tmp"
        with open(tmp, "w") as f:
            for k, v in env.items():
                f.write(f"export {k}='{v}'\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, args.env_file)
    print(f"READY port={port} env={args.env_file or ''}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        if args.no_stdin_watch:
            stop.wait(0.5)
            continue
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready and not sys.stdin.buffer.read1(4096):
            break
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
