#!/usr/bin/env bash
# The native incremental suite (PostgreSQL 18) a second time, on S3 (moto_server): the chain restore
# proves objects by the listing's sizes and ETags there.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_incremental_native.sh" "$@"
