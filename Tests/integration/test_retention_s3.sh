#!/usr/bin/env bash
# The retention suite on S3 (moto with signature checking on): DeleteObjects batches.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_retention.sh" "$@"
