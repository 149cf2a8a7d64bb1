#!/usr/bin/env bash
# `make test-ha`: several processes behind HAProxy, and the failover drills (docs/operations.md,
# "Several processes and HAProxy"). Starts a Redis server of its own on a free loopback port
# (append-only file, fsync always: a restart keeps the broker's queues; never the host's Redis,
# which other runs share), then runs scripts/test-postgres.sh (a throwaway PostgreSQL cluster, in
# $VIBEBOX_DATA_DIR/postgres-ha) with VIBEBOX_TEST_HA=1: tests.conftest.live_server then starts three
# web processes behind HAProxy (deploy/haproxy/haproxy.cfg) instead of one, so the existing REST,
# WebSocket, terminal and process tests below run through the load balancer; tests/ha/ adds the
# spread check and the drills. Stops Redis at the end, whatever the outcome.
#
#   scripts/test-ha.sh                  tests/ha and the modules below
#   scripts/test-ha.sh tests/ha -x      any pytest arguments instead
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Through the load balancer, as they are: tests that reach a live server (tests.conftest.live_server):
# background processes and their streams surviving a killed server (test_stateless), a real
# terminal client shared by two sockets, WebSocket refusals over HTTP, Server-Sent Events, per-owner
# stream caps (counted across processes); the webhooks' worker killed mid-delivery (drill b); and a
# node's dockerd restarted with live-restore (drill e, on a nested engine of its own); three nodes,
# one stopped and brought back (drill f).
# Out, for time (make test runs them on one server): the README example, streamed uploads, GraphQL
# subscriptions; and the tests of one server process itself (its memory under a slow client), which
# HAProxy's URL hides.
MODULES=(
    tests/ha
    tests/sandboxes/test_stateless.py
    tests/sandboxes/test_terminal.py::test_real_client_resize_cat_ctrl_c_and_shared_session
    tests/sandboxes/test_ws_access.py::test_live_server_answers_refusals_over_http
    tests/sandboxes/test_watch_api.py::test_server_sent_events
    tests/sandboxes/test_process_limits.py::test_live_server_answers_429_with_details
    tests/webhooks/test_worker_killed.py
    tests/nodes/test_live_restore.py
    tests/nodes/test_three_nodes.py
    tests/nodes/test_overlapping_nodes.py
)

log() { printf 'test-ha: %s\n' "$*" >&2; }
command -v haproxy >/dev/null || { log "error: haproxy is missing (make proxies)"; exit 1; }

redis_dir="$(mktemp -d /tmp/vibebox-ha-redis.XXXXXX)"
redis_port="$("$REPO_DIR/.venv/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$redis_dir/redis.conf" <<CONF
bind 127.0.0.1
port $redis_port
dir $redis_dir
daemonize yes
pidfile $redis_dir/redis.pid
logfile $redis_dir/redis.log
appendonly yes
appendfsync always
save ""
CONF
stop_redis() {
    if [ -f "$redis_dir/redis.pid" ]; then
        kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null || true
        for _ in $(seq 50); do [ -f "$redis_dir/redis.pid" ] || break; sleep 0.1; done
    fi
    rm -rf "$redis_dir"
}
trap stop_redis EXIT
trap 'exit 130' INT TERM
redis-server "$redis_dir/redis.conf"
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
log "Redis on 127.0.0.1:$redis_port (its own; $redis_dir)"

export REDIS_URL="redis://127.0.0.1:$redis_port/0" VIBEBOX_HA_REDIS_CONF="$redis_dir/redis.conf"
export VIBEBOX_TEST_HA=1 VIBEBOX_TEST_INSTANCE="${VIBEBOX_TEST_INSTANCE:-ha}"
export VIBEBOX_PG_DIR="${VIBEBOX_PG_DIR:-$DATA_DIR/postgres-ha}"
if [ "$#" -eq 0 ]; then
    set -- "${MODULES[@]}"
fi
status=0
bash "$REPO_DIR/scripts/test-postgres.sh" "$@" || status=$?
exit "$status"
