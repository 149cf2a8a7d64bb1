#!/usr/bin/env bash
# The deployment and HA tests (tests/deploy/, `make test-ha`) start Debian's HAProxy and nginx on
# loopback with the configurations in deploy/. Installs the `haproxy` and `nginx` packages when they
# are missing (scripts/apt-install.sh: neither service starts); quiet when they are there. Without
# root those tests are skipped.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ "${#missing[@]}" -eq 0 ] && exit 0

status=0
bash "$REPO_DIR/scripts/apt-install.sh" proxies-setup "${missing[@]}" || status=$?
if [ "$status" -eq 2 ]; then
    echo "proxies-setup: (the HAProxy and nginx tests are skipped without them)" >&2
    exit 0
fi
exit "$status"
