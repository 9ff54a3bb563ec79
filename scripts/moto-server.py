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
  7. With --fast-list (benchmarks only; the integration suites run stock moto): ListObjectsV2 on a
     bucket that was never versioned answers from a sorted key index (bisect to the prefix and the
     start-after / continuation key, a jump over each CommonPrefix's keys) instead of moto 5.2.1's
     scan and sort of the whole bucket per page (seconds per page at 2 x 10^5 objects). Same
     answers as stock moto: Tests/integration/moto_fast_list.py compares them.
  8. With --stats FILE: counts the requests it serves by kind (ListObjectsV2, GetObject, PutObject,
     DeleteObjects, ...) with the wall seconds spent answering them, and writes them with the
     process's CPU seconds as JSON to FILE on SIGUSR1 (and on exit): benchmarks separate the
     emulator's time from walctl's.

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


# --fast-list. moto 5.2.1's S3Backend.list_objects_v2 copies the bucket's key dict, scans every key
# for the prefix, sorts all of them, then walks the sorted list to the continuation key: O(N log N)
# per page whatever the page, prefix or max-keys. The index below keeps each key store's names
# sorted, so a page costs O(log N + the names it passes over).
#
# Index maintenance: every mutation of a bucket's keys goes through _VersionedKeyStore.__setitem__,
# .setlist or .pop (moto/s3/models.py: put, delete marker, delete); the patched methods record the
# name. A store's index is built on its first listing (a sorted copy of its names); names stored
# since then wait in `pending` and are merged in on the next listing (one timsort of two sorted
# runs); deleted names stay in the sorted list and are skipped (not in the dict, or no versions
# left) until they outnumber the live ones, when the list is rebuilt without them. The lists are
# replaced, never changed in place, so a listing in another thread keeps a consistent snapshot.
FAST_LIST = {"enabled": False}
_INDEX_LOCK = threading.Lock()


class _KeyIndex:
    __slots__ = ("names", "pending", "stale")

    def __init__(self, names):
        self.names = names
        self.pending = set()
        self.stale = 0


def _index_snapshot(store) -> list:
    """The store's names, sorted; may include deleted names (the caller checks the dict)."""
    with _INDEX_LOCK:
        idx = store.__dict__.get("_walctl_index")
        if idx is None:
            idx = _KeyIndex(sorted(dict.keys(store)))
            store.__dict__["_walctl_index"] = idx
            return idx.names
        names = idx.names
        if idx.pending:
            from bisect import bisect_left
            new = []
            for n in idx.pending:
                i = bisect_left(names, n)
                if i == len(names) or names[i] != n:
                    new.append(n)
            idx.pending = set()
            if new:
                new.sort()
                names = names + new
                names.sort()   # two sorted runs: timsort merges them in O(N)
        if idx.stale > 1024 and idx.stale * 2 > len(names):
            names = [n for n in names if dict.get(store, n)]
            idx.stale = 0
        idx.names = names
        return names


def _fast_list_v2(stock):
    from bisect import bisect_left, bisect_right
    from moto.s3.models import FakeDeleteMarker, FakeTableStorageBucket

    def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
        if (not FAST_LIST["enabled"] or isinstance(bucket, FakeTableStorageBucket)
                or getattr(bucket, "versioning_status", None) is not None
                or not isinstance(max_keys, int) or max_keys < 0
                or (continuation_token and continuation_token not in self._pagination_tokens)):
            # Versioned buckets (delete markers), odd max-keys and unknown tokens (stock moto fails
            # those with a 500) keep stock moto's behaviour exactly.
            return stock(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        # Stock: `limit = tokens.get(token) if token else start_after`, applied when either is set;
        # an item is listed when its name (a key's, or a CommonPrefix) is > limit.
        limit = (self._pagination_tokens.get(continuation_token) if continuation_token else start_after) or None
        prefix = prefix or ""
        store = bucket.keys
        names = _index_snapshot(store)
        n = len(names)
        i = bisect_left(names, prefix)
        if limit is not None:
            i = max(i, bisect_right(names, limit))
        want = max_keys + 1   # one more than a page: _truncate_result then says IsTruncated
        out = []
        plen = len(prefix)
        while i < n and len(out) < want:
            name = names[i]
            if not name.startswith(prefix):
                break   # sorted: the keys under prefix are one run
            versions = dict.get(store, name)
            if not versions:
                i += 1   # deleted since the index saw it
                continue
            rest = name[plen:]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter)[0] + delimiter
                # Every key under `folder` folds into it (and they are one run from here); stock
                # sorts the folder string among the keys, where it sorts before this run, after
                # everything before it: in place. A folder <= limit is not listed (stock:
                # "> token"), even when some of its keys are > limit.
                if limit is None or folder > limit:
                    out.append(folder)
                last = folder[-1]
                if ord(last) < 0x10FFFF:
                    i = bisect_left(names, folder[:-1] + chr(ord(last) + 1), i + 1)
                else:
                    i += 1
                    while i < n and names[i].startswith(folder):
                        i += 1
                continue
            key = versions[-1]
            if not isinstance(key, FakeDeleteMarker):
                out.append(key)
            i += 1
        return self._truncate_result(out, max_keys)

    return list_objects_v2


def install_fast_list() -> None:
    """Patches moto's S3 backend for --fast-list (idempotent); FAST_LIST["enabled"] switches it."""
    from moto.s3 import utils
    from moto.s3.models import S3Backend

    FAST_LIST["enabled"] = True
    if getattr(S3Backend.list_objects_v2, "_walctl_fast", False):
        return
    store_cls = utils._VersionedKeyStore
    stock_setitem, stock_setlist, stock_pop = store_cls.__setitem__, store_cls.setlist, store_cls.pop

    def added(store, key):
        with _INDEX_LOCK:
            idx = store.__dict__.get("_walctl_index")
            if idx is not None:
                idx.pending.add(key)

    def setitem(self, key, value):
        stock_setitem(self, key, value)
        added(self, key)

    def setlist(self, key, list_):
        stock_setlist(self, key, list_)
        added(self, key)

    def pop(self, key):
        stock_pop(self, key)
        with _INDEX_LOCK:
            idx = self.__dict__.get("_walctl_index")
            if idx is not None:
                idx.stale += 1

    store_cls.__setitem__, store_cls.setlist, store_cls.pop = setitem, setlist, pop
    fast = _fast_list_v2(S3Backend.list_objects_v2)
    fast._walctl_fast = True
    fast._walctl_stock = S3Backend.list_objects_v2
    S3Backend.list_objects_v2 = fast


# --stats: per request kind, how many and the wall seconds moto spent answering (from the WSGI call
# to its return: moto builds the whole body before returning).
_STATS = {}
_STATS_LOCK = threading.Lock()


def _request_kind(environ) -> str:
    method = environ.get("REQUEST_METHOD", "")
    query = environ.get("QUERY_STRING", "")
    path = environ.get("PATH_INFO", "")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    bucket_level = path.strip("/").count("/") == 0   # path-style: /bucket or /bucket/key
    if method == "GET" and "list-type" in params:
        return "ListObjectsV2"
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    if bucket_level:
        return f"{method} bucket"
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject",
            "POST": "PostObject"}.get(method, method)


def install_stats() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    stock_call = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        t0 = time.perf_counter()
        try:
            return stock_call(self, environ, start_response)
        finally:
            dt = time.perf_counter() - t0
            kind = _request_kind(environ)
            with _STATS_LOCK:
                e = _STATS.setdefault(kind, [0, 0.0])
                e[0] += 1
                e[1] += dt

    DomainDispatcherApplication.__call__ = call


def write_stats(path: str, seq: int) -> None:
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with _STATS_LOCK:
        kinds = {k: {"requests": v[0], "seconds": round(v[1], 6)} for k, v in sorted(_STATS.items())}
    out = {"seq": seq, "cpuSeconds": round(ru.ru_utime + ru.ru_stime, 3),
           "requests": sum(v["requests"] for v in kinds.values()),
           "seconds": round(sum(v["seconds"] for v in kinds.values()), 6), "kinds": kinds}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, path)


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
    ap.add_argument("--fast-list", action="store_true", help="ListObjectsV2 from a sorted key index, not moto's "
                    "scan and sort of the whole bucket per page (benchmarks; same answers as stock moto)")
    ap.add_argument("--stats", help="request counts and seconds by kind, written as JSON here on SIGUSR1 and on exit")
    args = ap.parse_args()

    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_CALLS)
    if args.part_min_size:
        os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(args.part_min_size)
    install_patch()
    if args.fast_list:
        install_fast_list()
    if args.stats:
        install_stats()
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
    if args.stats:
        seq = [0]

        def dump(*_):
            seq[0] += 1
            write_stats(args.stats, seq[0])

        signal.signal(signal.SIGUSR1, dump)
    deadline = time.monotonic() + args.max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        if args.no_stdin_watch:
            stop.wait(0.5)
            continue
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready and not sys.stdin.buffer.read1(4096):
            break
    server.stop()
    if args.stats:
        write_stats(args.stats, -1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
