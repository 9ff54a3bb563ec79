#!/usr/bin/env bash
# The asynchronous archive and prefetch suite a second time, on S3 (moto_server on 127.0.0.1).
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_async.sh" "$@"
