#!/usr/bin/env bash
# `make test-postgres` runs tests against a real PostgreSQL server from Debian's `postgresql` package
# (15 on bookworm). Installs the package when no PostgreSQL server binaries are found and we are root;
# quiet when they are there.
#
# The package comes with a cluster of its own (15/main on :5432) and a service that would start it;
# the tests need neither (scripts/test-postgres.sh makes and starts a cluster in var/ of its own),
# so the install runs with a policy-rc.d that forbids starting services (as monitoring-setup.sh
# does) and, on a systemd host, the package's unit is disabled again.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}
have_server && command -v psql >/dev/null 2>&1 && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "postgres-setup: PostgreSQL is missing; install it: sudo apt-get install -y --no-install-recommends postgresql" >&2
    exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "postgres-setup: PostgreSQL is missing and apt-get is not available" >&2
    exit 1
}

POLICY=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$POLICY" ]; then
    own_policy=1
    printf '#!/bin/sh\n# postgres-setup.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

mkdir -p "$DATA_DIR/log"
apt_log="$DATA_DIR/log/apt.log"
echo "postgres-setup: installing Debian's postgresql (log: $apt_log)" >&2
printf '\n=== %s postgres-setup installing postgresql\n' "$(date -Is)" >>"$apt_log"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } \
    >>"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    echo "postgres-setup: installing postgresql failed; see $apt_log" >&2
    exit 1
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now postgresql.service >>"$apt_log" 2>&1 || true
fi
have_server || { echo "postgres-setup: postgresql installed but no initdb found" >&2; exit 1; }
