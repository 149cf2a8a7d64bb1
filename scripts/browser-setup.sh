#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's Chromium through Playwright (no browser download).
# Installs the `chromium` package when it is missing (scripts/apt-install.sh); quiet when it is
# there. Without root the browser tests are skipped.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -x /usr/bin/chromium ] && exit 0
status=0
bash "$REPO_DIR/scripts/apt-install.sh" browser-setup chromium || status=$?
if [ "$status" -eq 2 ]; then
    echo "browser-setup: (the browser tests are skipped without it)" >&2
    exit 0
fi
exit "$status"
