#!/usr/bin/env bash
# The monitoring tests (tests/monitoring/test_prometheus*.py, test_alerts*.py, test_grafana*.py) run
# Debian's Prometheus tools: promtool (config and rule checks, rule unit tests), a Prometheus server
# and an Alertmanager, each started by the test on loopback. Installs the `prometheus` and
# `prometheus-alertmanager` packages when they are missing and we are root; quiet when they are there.
#
# The packages come with services (prometheus on :9090, alertmanager on :9093); the tests need none
# of them, so the install runs with a policy-rc.d that forbids starting services (Debian's own way:
# invoke-rc.d and deb-systemd-invoke ask it) unless the host has one already. On a systemd host the
# units of the packages installed here are also disabled: the binaries are what the tests use.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# binary -> Debian package providing it
declare -A PKG_FOR=(
    [promtool]=prometheus
    [prometheus]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
)
missing=()
for cmd in "${!PKG_FOR[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
    echo "monitoring-setup: missing Debian packages: ${missing[*]}; install them:" >&2
    echo "monitoring-setup:   sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "monitoring-setup: (the Prometheus and Alertmanager tests are skipped without them)" >&2
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "monitoring-setup: missing ${missing[*]} and apt-get is not available; the monitoring tests are skipped" >&2
    exit 0
}

POLICY=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$POLICY" ]; then
    own_policy=1
    printf '#!/bin/sh\n# monitoring-setup.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

mkdir -p "$DATA_DIR/log"
apt_log="$DATA_DIR/log/apt.log"
echo "monitoring-setup: installing Debian packages: ${missing[*]} (log: $apt_log)" >&2
printf '\n=== %s monitoring-setup installing %s\n' "$(date -Is)" "${missing[*]}" >>"$apt_log"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    >>"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "monitoring-setup: installing ${missing[*]} failed; see $apt_log" >&2
    exit 1
fi

# A systemd host enables the units of what was just installed (each package's unit has its name):
# stop and disable those, never a unit of a package that was there before.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for pkg in "${missing[@]}"; do
        systemctl disable --now "$pkg.service" >>"$apt_log" 2>&1 || true
    done
fi
