#!/usr/bin/env bash
# The catalog suite on S3 (moto with signature checking on): SIGKILLed pushes and rebuild from S3 alone.
export WALCTL_TEST_REPO=s3
exec bash "$(dirname "$0")/test_catalog.sh" "$@"
