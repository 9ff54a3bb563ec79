#!/usr/bin/env bash
# Packaging suite: scripts/package-deb.sh builds a .deb from the release build, dpkg -i installs it on
# this machine, and the installed walctl answers --version, `man walctl` shows the generated page,
# the bash completion completes, `systemd-analyze verify` accepts every unit, then dpkg removes it
# all. Also scripts/install.sh into a DESTDIR, and the root/sudo decision of the scripts the README
# runs (scripts/as-root.sh) as a user without sudo and with a stand-in sudo.
source "$(dirname "$0")/lib.sh"

BUILD_DIR="$(dirname "$WALCTL")"
UNITS="walctl-backup walctl-expire walctl-verify walctl-drill"

test_deb_round_trip() {
    local w; w="$(mktemp -d /tmp/walctl-pkg.XXXXXX)"
    if dpkg-query -W -f='${Status}' walctl 2>/dev/null | grep -q 'install ok installed'; then
        fail "a walctl package is already installed on this machine: this test would remove it"
    fi
    local had_conf=0; [ -e /etc/walctl/walctl.conf ] && had_conf=1
    trap 'if dpkg-query -W -f="\${Status}" walctl 2>/dev/null | grep -q "install ok"; then if [ '"$had_conf"' = 1 ]; then dpkg -r walctl >/dev/null; else dpkg -P walctl >/dev/null; fi; fi; rm -rf "'"$w"'"' EXIT
    OUTDIR="$w" BUILD_DIR="$BUILD_DIR" bash "$REPO/scripts/package-deb.sh" > "$w/pkg.out" 2>&1 || fail "package-deb.sh failed: $(tail -5 "$w/pkg.out")"
    local version deb
    version="$("$WALCTL" --version)"
    deb="$w/walctl_${version}_$(dpkg --print-architecture).deb"
    [ -f "$deb" ] || fail "no $deb: $(cat "$w/pkg.out")"
    # Depends: the linked libraries and the three CLazyLoad dlopens, as Debian packages.
    local depends; depends="$(dpkg-deb -f "$deb" Depends)"
    for p in libc6 libzstd1 zlib1g libsqlite3-0 libcurl4 libpq5 libssl3; do
        echo ", $depends," | grep -q ", $p," || fail "Depends lacks $p: $depends"
    done
    # The Swift runtime is inside the binary.
    dpkg-deb -c "$deb" | grep -q 'libswift' && fail "the package ships Swift runtime libraries"

    dpkg -i --force-confdef --force-confold "$deb" > "$w/dpkg.out" 2>&1 || fail "dpkg -i failed: $(cat "$w/dpkg.out")"
    assert_eq "$(/usr/bin/walctl --version)" "$version" "installed walctl --version"
    ldd /usr/bin/walctl-core | grep -q 'not found' && fail "installed walctl-core misses libraries: $(ldd /usr/bin/walctl-core)"
    [ -x /usr/bin/walctl-fast ] || fail "walctl-fast not installed"
    # walctl is the front, a static executable; the commands it hands over run /usr/bin/walctl-core.
    local lddout; lddout="$(ldd /usr/bin/walctl 2>&1 || true)"   # ldd exits 1 on a static executable
    grep -q 'not a dynamic executable' <<<"$lddout" || fail "installed walctl is not the static front: $lddout"
    assert_eq "$(/usr/bin/walctl version)" "walctl $version" "installed walctl version (through walctl-core)"

    # The man page: generated from the argument definitions, so every subcommand and its options.
    local page; page="$(MANWIDTH=120 man -P cat walctl 2>&1)" || fail "man walctl failed: $page"
    for s in "walctl metrics" "walctl recover" "--listen" "--timeline" "Examples"; do
        # A here-string, not `echo | grep -q`: with pipefail, grep -q leaving at the first match
        # SIGPIPEs an echo still writing a page larger than the pipe (141: a false failure).
        grep -q -- "$s" <<<"$page" || fail "man walctl lacks '$s'"
    done

    # Completions: the files are where bash, zsh and fish look, and bash completes a subcommand.
    [ -s /usr/share/bash-completion/completions/walctl ] || fail "no bash completion"
    [ -s /usr/share/zsh/vendor-completions/_walctl ] || fail "no zsh completion"
    [ -s /usr/share/fish/vendor_completions.d/walctl.fish ] || fail "no fish completion"
    local words
    words="$(bash -c 'source /usr/share/bash-completion/completions/walctl; COMP_WORDS=(walctl met); COMP_CWORD=1; COMP_LINE="walctl met"; COMP_POINT=10; _walctl walctl met walctl; echo "${COMPREPLY[*]}"' 2>&1)"
    echo " $words " | grep -q " metrics " || fail "bash completion of 'walctl met': '$words'"

    # The units: present, templated with the installed path, accepted by systemd-analyze verify
    # (which also checks that ExecStart's binary exists and the Documentation= man page resolves).
    local files=()
    for u in $UNITS; do
        for ext in service timer; do
            [ -f "/usr/lib/systemd/system/$u.$ext" ] || fail "$u.$ext not installed"
            files+=("/usr/lib/systemd/system/$u.$ext")
        done
        grep -q '^User=postgres$' "/usr/lib/systemd/system/$u.service" || fail "$u does not run as postgres"
        grep -q '^ExecStart=/usr/bin/walctl ' "/usr/lib/systemd/system/$u.service" || fail "$u ExecStart: $(grep ExecStart "/usr/lib/systemd/system/$u.service")"
    done
    grep -q '^ExecStart=/usr/bin/walctl drill --latest$' /usr/lib/systemd/system/walctl-drill.service || fail "drill unit command"
    grep -q '^OnCalendar=quarterly$' /usr/lib/systemd/system/walctl-drill.timer || fail "drill timer not quarterly"
    grep -q '^ExecStart=/usr/bin/walctl expire$' /usr/lib/systemd/system/walctl-expire.service || fail "expire unit command"
    grep -q '^After=.*walctl-backup.service' /usr/lib/systemd/system/walctl-expire.service || fail "expire not ordered after backup"
    local out rc=0
    out="$(systemd-analyze verify "${files[@]}" 2>&1)" || rc=$?
    assert_eq "$rc" 0 "systemd-analyze verify exit ($out)"
    assert_eq "$out" "" "systemd-analyze verify output"
    # The config: a conffile, readable by the postgres group, not by others.
    grep -qx /etc/walctl/walctl.conf /var/lib/dpkg/info/walctl.conffiles || fail "walctl.conf is not a conffile"
    if [ "$had_conf" = 0 ]; then
        assert_eq "$(stat -c '%a %G' /etc/walctl/walctl.conf)" "640 postgres" "config mode and group"
    fi

    # Removal takes everything but a kept config.
    if [ "$had_conf" = 1 ]; then dpkg -r walctl >/dev/null 2>&1; else dpkg -P walctl >/dev/null 2>&1; fi || fail "dpkg remove failed"
    for f in /usr/bin/walctl /usr/bin/walctl-fast /usr/bin/walctl-core /usr/share/man/man1/walctl.1.gz /usr/share/bash-completion/completions/walctl /usr/lib/systemd/system/walctl-backup.timer; do
        [ ! -e "$f" ] || fail "$f left after removal"
    done
    [ "$had_conf" = 1 ] || [ ! -e /etc/walctl/walctl.conf ] || fail "purge left /etc/walctl/walctl.conf"
}

test_install_sh_destdir() {
    local w; w="$(mktemp -d /tmp/walctl-inst.XXXXXX)"
    trap 'rm -rf "'"$w"'"' EXIT
    PREFIX=/opt/walctl DESTDIR="$w/stage" BUILD_DIR="$BUILD_DIR" bash "$REPO/scripts/install.sh" > "$w/out" 2>&1 || fail "install.sh failed: $(cat "$w/out")"
    local s="$w/stage"
    for f in opt/walctl/bin/walctl opt/walctl/bin/walctl-fast opt/walctl/bin/walctl-core opt/walctl/share/man/man1/walctl.1.gz \
             opt/walctl/share/bash-completion/completions/walctl opt/walctl/share/zsh/site-functions/_walctl \
             opt/walctl/share/fish/vendor_completions.d/walctl.fish opt/walctl/share/doc/walctl/examples/walctl.conf \
             etc/walctl/walctl.conf; do
        [ -s "$s/$f" ] || fail "install.sh did not install $f"
    done
    for u in $UNITS; do
        grep -q '^ExecStart=/opt/walctl/bin/walctl ' "$s/opt/walctl/lib/systemd/system/$u.service" || fail "$u not templated with PREFIX"
        [ -s "$s/opt/walctl/lib/systemd/system/$u.timer" ] || fail "$u.timer missing"
    done
    grep -q '@BINDIR@' -r "$s" && fail "an untemplated @BINDIR@ is left"
    assert_eq "$("$s/opt/walctl/bin/walctl" --version)" "$("$WALCTL" --version)" "staged walctl --version"
    # Through a symbolic link elsewhere on PATH, the front still finds walctl-core beside the real file.
    ln -s "$s/opt/walctl/bin/walctl" "$w/walctl-link"
    assert_eq "$("$w/walctl-link" version)" "walctl $("$WALCTL" --version)" "walctl through a symlink runs walctl-core"
    # An existing configuration is never overwritten.
    echo "repository = file:///mine" > "$s/etc/walctl/walctl.conf"
    PREFIX=/opt/walctl DESTDIR="$w/stage" BUILD_DIR="$BUILD_DIR" bash "$REPO/scripts/install.sh" > "$w/out" 2>&1 || fail "second install.sh failed"
    assert_eq "$(cat "$s/etc/walctl/walctl.conf")" "repository = file:///mine" "config after a second install"
}

# A PATH with only what the scripts need before their root check, and no sudo, for a non-root user.
minimal_path() {
    local d="$1"; mkdir -p "$d"
    for t in bash id dirname env cat; do ln -sf "$(command -v "$t")" "$d/$t"; done
    chmod 755 "$d"
}

test_scripts_as_user_without_sudo_say_so() {
    local w; w="$(mktemp -d /tmp/walctl-root.XXXXXX)"; chmod 755 "$w"
    trap 'rm -rf "'"$w"'"' EXIT
    minimal_path "$w/bin"
    local s out rc
    for s in scripts/demo.sh scripts/test.sh scripts/install-deps.sh Benchmarks/install-bench-deps.sh; do
        rc=0
        out="$(runuser -u postgres -- env -i HOME=/tmp PATH="$w/bin" bash "$REPO/$s" 2>&1)" || rc=$?
        assert_eq "$rc" 1 "$s exit as a user without sudo"
        echo "$out" | grep -q "must run as root" || fail "$s: no clear message: $out"
        echo "$out" | grep -q "sudo is not installed" || fail "$s does not say sudo is missing: $out"
        echo "$out" | grep -q "su -" || fail "$s does not say what to do: $out"
        [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$s printed more than its one line (it went on?): $out"
    done
    # install.sh into the default prefix: the same, with its own wording.
    rc=0
    out="$(runuser -u postgres -- env -i HOME=/tmp PATH="$w/bin" bash "$REPO/scripts/install.sh" 2>&1)" || rc=$?
    assert_eq "$rc" 1 "install.sh exit as a user without sudo"
    echo "$out" | grep -q "needs root.*sudo is not installed" || fail "install.sh: $out"
}

test_scripts_as_user_with_sudo_rerun_through_it() {
    local w; w="$(mktemp -d /tmp/walctl-root.XXXXXX)"; chmod 755 "$w"
    trap 'rm -rf "'"$w"'"' EXIT
    minimal_path "$w/bin"
    # A stand-in sudo: records how it was called (the real one would ask for a password).
    printf '#!/bin/bash\necho "SUDO $*"\n' > "$w/bin/sudo"; chmod 755 "$w/bin/sudo"
    local s out rc
    for s in scripts/demo.sh scripts/test.sh scripts/install-deps.sh; do
        rc=0
        out="$(runuser -u postgres -- env -i HOME=/tmp PATH="$w/bin" bash "$REPO/$s" --x 2>&1)" || rc=$?
        assert_eq "$rc" 0 "$s exit through the stand-in sudo"
        echo "$out" | grep -q "re-running through sudo" || fail "$s: $out"
        echo "$out" | grep -qx "SUDO -E bash $REPO/$s --x" || fail "$s did not re-run itself through sudo with its arguments: $out"
    done
}

# Help: every subcommand has examples, usage lines name real options, and a config file that exists
# but cannot be read says so (as the postgres user: root reads everything).
test_help_examples_usage_and_config_permission() {
    local cmd out
    for cmd in archive-push archive-get init check info verify backup "backup take" "backup list" "backup show" \
               restore-backup recover "catalog rebuild" "catalog check" "catalog find" "wal show" config version metrics; do
        # shellcheck disable=SC2086
        out="$("$WALCTL" $cmd --help 2>&1)" || fail "walctl $cmd --help failed"
        grep -q "^ *Examples:" <<<"$out" || fail "walctl $cmd --help has no examples"
        echo "$out" | grep -A1 "Examples:" | tail -1 | grep -q "walctl\|_command" || fail "walctl $cmd: the examples are not command lines"
        echo "$out" | grep -E "^USAGE:" -A1 | grep -q "<options>" && fail "walctl $cmd usage hides its options: $(echo "$out" | grep -A1 '^USAGE:')"
    done
    "$WALCTL" recover --help | grep -A2 "^USAGE:" | grep -q -- "--to <time>" || fail "recover's usage does not list --to: $("$WALCTL" recover --help | grep -A2 '^USAGE:')"

    local w; w="$(mktemp -d /tmp/walctl-help.XXXXXX)"; chmod 755 "$w"
    trap 'rm -rf "'"$w"'"' EXIT
    echo "repository = file://$w/repo" > "$w/root-only.conf"; chmod 600 "$w/root-only.conf"
    mkdir -m 700 "$w/closed"; echo "repository = file://$w/repo" > "$w/closed/walctl.conf"
    local rc
    for f in "$w/root-only.conf" "$w/closed/walctl.conf"; do
        rc=0; out="$(runuser -u postgres -- "$WALCTL" config --config "$f" 2>&1)" || rc=$?
        [ "$rc" -ne 0 ] || fail "an unreadable config was accepted: $f"
        echo "$out" | grep -q "error \[config\]: cannot read config file $f: permission denied" || fail "unreadable $f: $out"
        echo "$out" | grep -qi "no such file" && fail "unreadable $f reported as missing: $out"
        # Named by WALCTL_CONFIG, the same.
        rc=0; out="$(runuser -u postgres -- env WALCTL_CONFIG="$f" "$WALCTL" config 2>&1)" || rc=$?
        echo "$out" | grep -q "permission denied" || fail "WALCTL_CONFIG=$f: $out"
    done
    rc=0; out="$(runuser -u postgres -- "$WALCTL" config --config "$w/absent.conf" 2>&1)" || rc=$?
    echo "$out" | grep -q "cannot read config file $w/absent.conf: no such file" || fail "missing config: $out"
}

run_suite "$@"
