#!/usr/bin/env python3
"""scripts/moto-server.py --fast-list answers ListObjectsV2 exactly as stock moto does.

Run by hand (`python3 Tests/integration/moto_fast_list.py`, a few seconds, no server needed) and by
test_retention_s3.sh (test_moto_fast_list). Prints `moto_fast_list: N checks passed` or the first
difference and exits 1.

1. Backend level, lock-step: stock S3Backend.list_objects_v2 and the fast one are called with the
   same arguments on the same bucket state, page after page (tokens are the md5 of the page's last
   item, so both walks continue from the same token), and every page must be equal (keys, common
   prefixes, IsTruncated, NextContinuationToken). Bucket: nested prefixes, keys that equal a common
   prefix, neighbours of '/' ('.', '0'), keys with '+', '%', spaces and non-ASCII. Queries: prefixes
   (none, '', partial names, directories, absent), delimiters (none, '/', '0', the two-character
   'ab'), start-after (none, '', before/inside/after the keys, equal to a key or a common prefix),
   max-keys 0, 1, 2, 7, 1000.
2. Mutations between pages of a walk (puts into listed and unlisted directories, deletes of keys
   behind and ahead of the cursor): the index's pending names and deleted names.
3. A 3,000-key bucket with 2,500 deleted: the index drops its deleted names (compaction) and still
   agrees; an unknown continuation token fails the same way on both; a versioned bucket (delete
   markers) is answered by stock moto.
4. HTTP: an in-process moto server, boto3's paginator (MaxKeys 7, with and without Delimiter and
   StartAfter), fast list on and off: the same responses.
"""
import importlib.util
import logging
import os
import random
import socket
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
spec = importlib.util.spec_from_file_location("moto_server_wrapper", os.path.join(ROOT, "scripts", "moto-server.py"))
wrapper = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wrapper)
wrapper.install_fast_list()

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import FakeKey, S3Backend, s3_backends  # noqa: E402

FAST = S3Backend.list_objects_v2
STOCK = FAST._walctl_stock
backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
checks = 0


def fail(msg: str) -> None:
    print("moto_fast_list: FAIL: " + msg)
    sys.exit(1)


def names(items):
    return [("key", k.name) if isinstance(k, FakeKey) else ("prefix", k) for k in items]


def call(fn, bucket, prefix, delim, token, start_after, max_keys):
    try:
        items, truncated, next_token = fn(backend, backend.get_bucket(bucket), prefix, delim, token, start_after, max_keys)
        return ("ok", names(items), truncated, next_token)
    except Exception as e:  # the same failure on both sides counts as agreement
        return ("error", type(e).__name__)


def lockstep(bucket, prefix, delim, start_after, max_keys, between_pages=None, max_pages=2000):
    """Walks both listings page by page from the same state; returns the number of pages."""
    global checks
    token = None
    for page in range(max_pages):
        s = call(STOCK, bucket, prefix, delim, token, start_after, max_keys)
        f = call(FAST, bucket, prefix, delim, token, start_after, max_keys)
        checks += 1
        if s != f:
            fail(f"bucket={bucket} prefix={prefix!r} delimiter={delim!r} start-after={start_after!r} "
                 f"max-keys={max_keys} page {page} token={token!r}:\n  stock {s}\n  fast  {f}")
        if s[0] != "ok" or not s[2]:
            return page + 1
        token = s[3]
        if between_pages:
            between_pages(page)
    fail("walk did not end")


def put(bucket, key):
    backend.put_object(bucket, key, b"x")


def delete(bucket, key):
    backend.delete_object(bucket, key)


KEYS = ["a", "a/", "a.b", "a0", "a/b", "a//b", "a/b/c", "a/b/c/d", "a/b0", "a/c", "ab", "ab/", "abab",
        "abc/ab/x", "b+c", "b%2Fc", "b c/d", "caf\u00e9/x", "caf\u00e9/y/z", "\u00e9t\u00e9", "z/", "z/z",
        "~tilde/x", "0", "00/1", "000"]
for t in range(1, 4):
    for log in range(0, 3):
        d = "wal/%08X%08X/" % (t, log)
        for s in range(0, 12):
            seg = "%08X%08X%08X" % (t, log, s)
            KEYS += [d + seg + ".meta", d + seg + ".0a1b2c3d.zst"]
    KEYS.append("wal/history/%08X.history" % t)
for label in ("b1", "b2", "b10"):
    KEYS += ["backup/%s/backup.json" % label, "backup/%s/base.tar.zst" % label, "backup/%s/pg_wal/x" % label]
KEYS += ["locks/holds/h1", "locks/lease", "repository.json"]

PREFIXES = [None, "", "a", "a/", "a/b", "ab", "b", "caf\u00e9/", "wal/", "wal/00000002", "wal/0000000200000001/",
            "backup/", "backup/b1", "nothing/", "\uffff"]
DELIMS = [None, "/", "0", "ab"]
STARTS = [None, "", "0", "a/", "a/b", "a/b/c/d", "ab/", "wal/0000000100000002/", "wal/0000000200000001/000",
          "wal/0000000200000001/000000020000000100000005.meta", "backup/b10/", "zz", "\uffff"]


def matrix(bucket):
    for prefix in PREFIXES:
        for delim in DELIMS:
            for start in STARTS:
                for mk in (0, 7, 1000):
                    lockstep(bucket, prefix, delim, start, mk)
            # Pages of one and two keys: every page boundary (a key, a common prefix) is a token.
            for mk in (1, 2):
                lockstep(bucket, prefix, delim, None, mk)
                lockstep(bucket, prefix, delim, "a/b", mk)


# 1. Static bucket.
backend.create_bucket("fast-list", "us-east-1")
for k in KEYS:
    put("fast-list", k)
matrix("fast-list")

# 2. Mutations between pages (and after the index exists: pending and deleted names).
rng = random.Random(14)
live = set(KEYS)


def mutate(_page):
    for _ in range(3):
        if rng.random() < 0.5 and live:
            k = rng.choice(sorted(live))
            delete("fast-list", k)
            live.discard(k)
        else:
            k = rng.choice(["a/", "a/b/", "wal/0000000100000001/", "wal/0000000300000009/", "new/", "", "ab"]) + \
                rng.choice(["x", "y/", "z/q", "00", "ab"]) + str(rng.randrange(50))
            put("fast-list", k)
            live.add(k)


for prefix in (None, "a/", "wal/"):
    for delim in (None, "/"):
        for mk in (1, 7):
            lockstep("fast-list", prefix, delim, None, mk, between_pages=mutate)
for k in sorted(live)[::3]:   # delete a third, put some back, then the whole matrix again
    delete("fast-list", k)
    live.discard(k)
for k in KEYS[::5]:
    put("fast-list", k)
    live.add(k)
matrix("fast-list")

# 3. Compaction, unknown token, versioned bucket.
backend.create_bucket("fast-list-big", "us-east-1")
big = ["d%02d/k%04d" % (i % 37, i) for i in range(3000)]
for k in big:
    put("fast-list-big", k)
lockstep("fast-list-big", None, "/", None, 1000)
for k in big[:2500]:
    delete("fast-list-big", k)
lockstep("fast-list-big", None, "/", None, 7)
lockstep("fast-list-big", "d01/", None, None, 3)
lockstep("fast-list-big", None, None, "d10/", 100)
idx = backend.get_bucket("fast-list-big").keys.__dict__["_walctl_index"]
if idx.stale != 0 or len(idx.names) != 500:
    fail(f"compaction did not run: stale={idx.stale} names={len(idx.names)}")
checks += 1
s = call(STOCK, "fast-list-big", None, None, "not-a-token", None, 10)
f = call(FAST, "fast-list-big", None, None, "not-a-token", None, 10)
if s != f:
    fail(f"unknown continuation token: stock {s}, fast {f}")
checks += 1
backend.create_bucket("fast-list-versioned", "us-east-1")
backend.put_bucket_versioning("fast-list-versioned", "Enabled")
for k in KEYS[:40]:
    put("fast-list-versioned", k)
    put("fast-list-versioned", k)
for k in KEYS[:40:3]:
    delete("fast-list-versioned", k)
for delim in (None, "/"):
    lockstep("fast-list-versioned", None, delim, None, 4)

# 4. HTTP, through boto3's paginator.
import boto3  # noqa: E402
logging.getLogger("werkzeug").setLevel(logging.ERROR)   # no line per request
from moto.server import ThreadedMotoServer  # noqa: E402

with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
try:
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="fast-list-http")
    for k in KEYS:
        s3.put_object(Bucket="fast-list-http", Key=k, Body=b"x")

    def pages(**kw):
        out = []
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket="fast-list-http", PaginationConfig={"PageSize": 7}, **kw):
            p.pop("ResponseMetadata", None)
            out.append(p)
        return out

    queries = [{}, {"Delimiter": "/"}, {"Prefix": "wal/", "Delimiter": "/"}, {"Prefix": "wal/0000000200000001/"},
               {"StartAfter": "a/b", "Delimiter": "/"}, {"Prefix": "a/", "StartAfter": "a/b/c"}]
    for q in queries:
        wrapper.FAST_LIST["enabled"] = False
        stock_pages = pages(**q)
        wrapper.FAST_LIST["enabled"] = True
        fast_pages = pages(**q)
        checks += 1
        if stock_pages != fast_pages:
            fail(f"HTTP {q}: stock {stock_pages}\n fast {fast_pages}")
    if "_walctl_index" not in backend.get_bucket("fast-list-http").keys.__dict__:
        fail("the HTTP listings did not go through the fast list")
finally:
    server.stop()

print(f"moto_fast_list: {checks} checks passed")
