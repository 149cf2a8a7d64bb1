#!/usr/bin/env bash
# `make test-postgres`: the tests where the database matters, against a real PostgreSQL server.
#
# Makes a fresh cluster in $VIBEBOX_PG_DIR (default var/postgres) with initdb, starts it on
# 127.0.0.1 on a free port (no Unix socket; password authentication, the password made here),
# runs pytest with DATABASE_URL pointing at it (tests/settings.py gives each test session, each
# xdist worker, a test database of its own) and stops the server when pytest ends, whatever its
# outcome (and on Ctrl-C). pytest's exit status is this script's.
#
#   scripts/test-postgres.sh                      the subset below, -n 3 --dist loadfile
#   scripts/test-postgres.sh tests/keys -q -x     any pytest arguments instead of the subset
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user (made by
# Debian's package; scripts/postgres-setup.sh installs it), through runuser. When that user cannot
# reach $VIBEBOX_PG_DIR (a clone under /root), the cluster goes to a directory under /tmp instead,
# removed at the end. Durability is off (fsync, synchronous_commit, full_page_writes): the cluster
# is thrown away after the run, and the test databases are made and dropped faster.
#
# Environment: VIBEBOX_PG_DIR (the cluster's directory), VIBEBOX_PG_PORT (default: a free port),
# VIBEBOX_PG_TEST_WORKERS (xdist workers for the subset, default 3; PYTEST_ADDOPTS adds options),
# VIBEBOX_PG_KEEP=1 (keep the server running after the tests and print its DATABASE_URL; stop it
# with `pg_ctl -D $VIBEBOX_PG_DIR/data stop`).
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
PG_DIR="${VIBEBOX_PG_DIR:-$DATA_DIR/postgres}"
PYTEST="$REPO_DIR/.venv/bin/pytest"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# The PostgreSQL pass: where the database decides the outcome. Kept here, in one place, and named
# in docs/operations.md ("PostgreSQL"). In: every service and selector behind the API and GraphQL
# (organizations, roles and grants, keys, audit chain, billing, webhooks' outbox, marketplace
# records), the locking and race tests (concurrent creates against quotas: tests/races.py's users;
# select_for_update paths; tests/test_postgres_locking.py), JSON fields (metadata filters,
# settings), the schema fuzzer (every endpoint with strings no test writes by hand: it found
# PostgreSQL's refusal of NUL characters) and the request limits. Out: what drives the Docker
# engine, sandboxd, browsers, monitoring stacks and template builds the same way on either
# database (the SQLite pass covers them). Backups are in (pg_dump and pg_restore are
# PostgreSQL's own path: tests/orgs/test_backup.py, tests/sandboxes/test_backup_restore.py).
# Measured time: docs/benchmarks.md
# ("The PostgreSQL pass").
SUBSET=(
    tests/orgs
    tests/keys
    tests/audit
    tests/billing
    tests/webhooks/test_outbox.py
    tests/webhooks/test_queue.py
    tests/webhooks/test_webhooks_api.py
    tests/webhooks/test_delivery.py
    tests/webhooks/test_limits.py
    tests/webhooks/test_marketplace_events.py
    tests/graphql/test_auth.py
    tests/graphql/test_queries.py
    tests/graphql/test_mutations.py
    tests/graphql/test_mutations_platform.py
    tests/graphql/test_mutations_agent_runs.py
    tests/graphql/test_platform_queries.py
    tests/graphql/test_limits.py
    tests/marketplace/test_catalogue.py
    tests/marketplace/test_submissions.py
    tests/marketplace/test_templates_api.py
    tests/sandboxes/test_quotas.py
    tests/sandboxes/test_grants.py
    tests/sandboxes/test_access.py
    tests/sandboxes/test_api_shapes.py
    tests/sandboxes/test_reconcile.py
    tests/sandboxes/test_backup_restore.py
    tests/agents/test_agent_runs.py
    tests/sso/test_api.py
    tests/test_admin.py
    tests/test_login_limits.py
    tests/test_api_contract.py
    tests/test_database_url.py
    tests/test_postgres_locking.py
    tests/test_database_unavailable.py
    tests/test_request_limits.py
    tests/test_schema_fuzz.py
)
# Out of the directories above: the two metering tests hold a sandbox busy
# for 60 s to check the engine's CPU and memory counters (3.5 of the pass's minutes, the same rows
# written either way: the rest of test_metering.py covers the rollup's SQL).
DESELECT=(
    --deselect tests/billing/test_metering.py::test_one_cpu_for_60_seconds_is_metered_60_cpu_seconds
    --deselect tests/billing/test_metering.py::test_200_mib_held_for_60_seconds_is_metered_200_mib_on_average
)

log() { printf 'test-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bash "$REPO_DIR/scripts/postgres-setup.sh"
BIN_DIR=""
for dir in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r); do
    [ -x "$dir/initdb" ] && BIN_DIR="$dir" && break
done
[ -n "$BIN_DIR" ] || BIN_DIR="$(dirname "$(command -v initdb)")"

# Who runs the server: ourselves, or `postgres` when we are root.
as_server=()
server_user="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server as"
    server_user=postgres
    as_server=(runuser -u postgres --)
fi

mkdir -p "$PG_DIR"
own_tmp=""
if [ "$server_user" != "$(id -un)" ]; then
    chown "$server_user:" "$PG_DIR"
    if ! "${as_server[@]}" test -w "$PG_DIR" -a -x "$PG_DIR"; then
        PG_DIR="$(mktemp -d /tmp/vibebox-postgres.XXXXXX)"
        own_tmp="$PG_DIR"
        chown "$server_user:" "$PG_DIR"
        log "$server_user cannot reach ${VIBEBOX_PG_DIR:-$DATA_DIR/postgres}; the cluster goes to $PG_DIR"
    fi
fi
PGDATA="$PG_DIR/data"
if [ -f "$PGDATA/postmaster.pid" ] && "${as_server[@]}" "$BIN_DIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    die "a server already runs on $PGDATA (another test-postgres?); set VIBEBOX_PG_DIR to use another directory"
fi
rm -rf "$PGDATA"

password="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
pwfile="$PG_DIR/pwfile"
(umask 077 && printf '%s\n' "$password" >"$pwfile")
chown "$server_user:" "$pwfile"
log "initdb $PGDATA (PostgreSQL $("$BIN_DIR/postgres" --version | awk '{print $3}'), as $server_user)"
"${as_server[@]}" "$BIN_DIR/initdb" -D "$PGDATA" -U vibebox --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
rm -f "$pwfile"

port="${VIBEBOX_PG_PORT:-$("$REPO_DIR/.venv/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
cat >>"$PGDATA/postgresql.conf" <<EOF

# scripts/test-postgres.sh: loopback only, no Unix socket; a throwaway cluster, so no durability.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

stop_server() {
    local status=$?
    if [ -n "${VIBEBOX_PG_KEEP:-}" ] && [ "$status" -eq 0 ]; then
        log "the server keeps running: DATABASE_URL=$DATABASE_URL (pg_ctl -D $PGDATA stop)"
        return
    fi
    "${as_server[@]}" "$BIN_DIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    if [ -n "$own_tmp" ]; then
        rm -rf "$own_tmp"
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

"${as_server[@]}" "$BIN_DIR/pg_ctl" -D "$PGDATA" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null ||
    { tail -n 20 "$PG_DIR/server.log" >&2; die "the server did not start (log: $PG_DIR/server.log)"; }
export DATABASE_URL="postgres://vibebox:$password@127.0.0.1:$port/vibebox"
PGPASSWORD="$password" "$BIN_DIR/psql" -h 127.0.0.1 -p "$port" -U vibebox -d postgres -q -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE vibebox" || die "could not create the database"
log "PostgreSQL on 127.0.0.1:$port (log: $PG_DIR/server.log)"
# For the tests that stop and start this server (tests/ha/test_drills.py, `make test-ha`).
export VIBEBOX_PG_DATA="$PGDATA" VIBEBOX_PG_CTL="$BIN_DIR/pg_ctl" VIBEBOX_PG_SERVER_USER="$server_user"

if [ "$#" -eq 0 ]; then
    set -- -n "${VIBEBOX_PG_TEST_WORKERS:-3}" --dist loadfile "${DESELECT[@]}" "${SUBSET[@]}"
fi
status=0
"$PYTEST" "$@" || status=$?
exit "$status"
