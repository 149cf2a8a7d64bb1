#!/usr/bin/env bash
# `make test-postgres` runs tests against a real PostgreSQL server from Debian's `postgresql` package
# (15 on bookworm). Installs the package when no PostgreSQL server binaries are found; quiet when
# they are there. The package's own cluster (15/main on :5432) never starts (scripts/apt-install.sh);
# scripts/test-postgres.sh makes and starts a cluster in var/ of its own.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}
have_server && command -v psql >/dev/null 2>&1 && exit 0

bash "$REPO_DIR/scripts/apt-install.sh" postgres-setup postgresql
have_server || { echo "postgres-setup: postgresql installed but no initdb found" >&2; exit 1; }
