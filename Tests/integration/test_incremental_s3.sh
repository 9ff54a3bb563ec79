#!/usr/bin/env bash
# The incremental suite a second time, on S3 (moto_server): the chain restore proves objects by listing and sizes there.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_incremental.sh" "$@"
