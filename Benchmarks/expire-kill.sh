#!/usr/bin/env bash
# Benchmarks/expire-kill.sh: `walctl expire` SIGKILLed at 20 random points (issue 14's acceptance),
# on a file repository and on S3 (moto): after each kill `walctl verify` must be clean and a second
# expire must finish the job, with no kept backup losing an object. The integration suite runs the
# same test with 3 kills; this runs it with KILLS (default 20). Needs root and PostgreSQL 15, like
# the integration suites.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export KILLS="${KILLS:-20}"
rc=0
bash "$ROOT/Tests/integration/test_retention.sh" test_expire_killed_pg15 || rc=1
bash "$ROOT/Tests/integration/test_retention_s3.sh" test_expire_killed_pg15 || rc=1
exit $rc
