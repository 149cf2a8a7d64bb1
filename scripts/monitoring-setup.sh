#!/usr/bin/env bash
# The monitoring tests (tests/monitoring/test_prometheus*.py, test_alerts*.py, test_grafana*.py) run
# Debian's Prometheus tools: promtool (config and rule checks, rule unit tests), a Prometheus server
# and an Alertmanager, each started by the test on loopback. Installs the `prometheus` and
# `prometheus-alertmanager` packages when they are missing (scripts/apt-install.sh: no service of
# theirs starts); quiet when they are there. Without root the monitoring tests are skipped.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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

status=0
bash "$REPO_DIR/scripts/apt-install.sh" monitoring-setup "${missing[@]}" || status=$?
if [ "$status" -eq 2 ]; then
    echo "monitoring-setup: (the Prometheus and Alertmanager tests are skipped without them)" >&2
    exit 0
fi
exit "$status"
