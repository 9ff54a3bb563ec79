#!/usr/bin/env bash
# The verify suite on S3 (moto with signature checking on): missing objects, stale catalog, damaged WAL.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_verify.sh" "$@"
