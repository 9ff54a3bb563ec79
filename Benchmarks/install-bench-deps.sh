#!/usr/bin/env bash
# Installs what the benchmark scripts need beyond the test suites' dependencies: pgBackRest (the
# comparison), hyperfine (timing), nginx-light (TLS in front of moto: pgBackRest speaks only https to
# S3) and GNU time (peak memory). Runs scripts/install-deps.sh first (build libraries, PostgreSQL
# 15/16/18, moto). Idempotent; the benchmark scripts run it themselves. Needs root (re-runs itself
# through sudo when sudo is installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/as-root.sh
source "$ROOT/scripts/as-root.sh"
as_root install-bench-deps "${BASH_SOURCE[0]}" "$@"

WALCTL_DEPS_SKIP_VERIFY="${WALCTL_DEPS_SKIP_VERIFY:-1}" bash "$ROOT/scripts/install-deps.sh" >/dev/null
BENCH_PACKAGES=(pgbackrest hyperfine nginx-light time)
missing=()
for p in "${BENCH_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-bench-deps: apt: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o Dpkg::Options::=--force-confold --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nginx package starts a default server on port 80 on install; the benchmarks start their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
echo "install-bench-deps: ok: ${BENCH_PACKAGES[*]} (${#missing[@]} installed now)" >&2
