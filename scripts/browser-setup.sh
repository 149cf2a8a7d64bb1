#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download).
# Installs the `chromium` package when it is missing and we are root; quiet when it is there.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "browser-setup: /usr/bin/chromium is missing; install it: sudo apt-get install -y chromium" >&2
    echo "browser-setup: (the browser tests are skipped without it)" >&2
    exit 0
fi
mkdir -p "$DATA_DIR/log"
echo "browser-setup: installing chromium from Debian (log: $DATA_DIR/log/apt.log)" >&2
{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } >>"$DATA_DIR/log/apt.log" 2>&1 ||
    { echo "browser-setup: installing chromium failed; see $DATA_DIR/log/apt.log" >&2; exit 1; }
