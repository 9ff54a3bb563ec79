#!/usr/bin/env bash
# The base backup suite a second time, on S3: moto_server on 127.0.0.1 with signature checking on.
# The pgbench database's base archive crosses the 16 MiB part size, so it must go up as multipart.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_backup.sh" "$@"
