#!/usr/bin/env bash
# Installs Debian packages for a setup script, with no service started:
#
#   scripts/apt-install.sh NAME PACKAGE...     NAME is the caller's, for messages and the log
#
# The setup scripts (monitoring-setup.sh, postgres-setup.sh, ha-setup.sh…) install packages whose
# binaries the tests start on loopback themselves; the services those packages ship (prometheus on
# :9090, postgresql's 15/main on :5432, haproxy on :80…) would only take ports. So the install runs
# with a policy-rc.d that forbids starting services (Debian's own way: invoke-rc.d and
# deb-systemd-invoke ask it) unless the host has one already, and on a systemd host the units of the
# packages installed here are disabled again. apt's output goes to var/log/apt.log; its tail is
# printed when the install fails.
#
# Exit status: 0 installed; 1 the install failed; 2 not root or no apt-get (a message says how to
# install by hand). Callers decide whether 2 is fatal (postgres) or skips tests (monitoring).
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

name="$1"
shift
packages=("$@")
[ "${#packages[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: missing Debian packages: ${packages[*]}; install them:" >&2
    echo "$name:   sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 2
fi

POLICY=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$POLICY" ]; then
    own_policy=1
    printf '#!/bin/sh\n# scripts/apt-install.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

mkdir -p "$DATA_DIR/log"
apt_log="$DATA_DIR/log/apt.log"
echo "$name: installing Debian packages: ${packages[*]} (log: $apt_log)" >&2
printf '\n=== %s %s installing %s\n' "$(date -Is)" "$name" "${packages[*]}" >>"$apt_log"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"; } \
    >>"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "$name: installing ${packages[*]} failed; see $apt_log" >&2
    exit 1
fi

# A systemd host enables the units of what was just installed (each package's unit has its name):
# stop and disable those, never a unit of a package that was there before.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for pkg in "${packages[@]}"; do
        systemctl disable --now "$pkg.service" >>"$apt_log" 2>&1 || true
    done
fi
