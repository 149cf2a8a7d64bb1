#!/usr/bin/env bash
# `make test-compose`: deploy/compose.yaml and deploy/Dockerfile run for real, from nothing, on a
# machine that reaches Debian's archive and PyPI but no container registry (docs/deploy.md, "What is
# run"). It builds, with debootstrap and Debian's packages:
#   - a Debian 12 root (images/base/build.sh, VIBEBOX_DEBIAN_SUITE=bookworm): deploy/Dockerfile's
#     BASE_IMAGE instead of debian:bookworm-slim, and deploy/images/infra's (PostgreSQL 15, Redis,
#     HAProxy, Prometheus from Debian, in place of the upstream images);
#   - Docker Compose v2 (Debian 13's docker-compose, deploy/images/compose) on the project's trixie
#     base image (the one `make images` uses), run with the host's Docker socket;
# then, in a copy of the work tree's files (a fresh clone's, plus what is not committed yet), does
# what docs/deploy.md tells an operator (vibebox.env from the example, the secrets' files) with free
# loopback ports and an instance of its own, `docker compose build` (deploy/Dockerfile, the host's
# extra CA bundle in deploy/ca/), and runs tests/deploy/test_compose_stack.py with
# VIBEBOX_TEST_COMPOSE=1: `up --wait`, the smoke test through HAProxy, `down -v`. Whatever the
# outcome, the stack is taken down and what its instance left in the engine is removed; the images
# it built stay (the next run reuses them and the build cache).
#
#   scripts/test-compose.sh                 the static checks and the stack
#   scripts/test-compose.sh -x -k smoke     other pytest arguments
#
# Environment: VIBEBOX_TEST_INSTANCE (default compose) names the run's images, project and stack;
# VIBEBOX_EXTRA_CA_CERTS (default system: the host's bundle) goes into the image as deploy/ca/.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
PYTHON="$REPO_DIR/.venv/bin/python"

log() { printf 'test-compose: %s\n' "$*" >&2; }
die() { printf 'test-compose: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap builds the base images)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (make setup)"

INSTANCE="$(printf '%s' "${VIBEBOX_TEST_INSTANCE:-compose}" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')"
[ -n "$INSTANCE" ] || die "VIBEBOX_TEST_INSTANCE has no letter or digit"
PREFIX="vibebox-$INSTANCE"              # the run's image tags
PROJECT="vibebox-test-$INSTANCE"        # compose's project name
STACK_INSTANCE="${INSTANCE}stack"       # the stack's VIBEBOX_INSTANCE: its sandboxes, pools, network
WORK="$DATA_DIR/test-compose-$INSTANCE" # the copy of the work tree and the run's files
started=$SECONDS

digest() { (cd "$REPO_DIR" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12); }

# 1. The base images: Debian 12 for the services, the project's Debian 13 for compose.
bookworm="$PREFIX/base:bookworm-$(digest images/base)"
log "base image $bookworm (debootstrap, when missing)"
VIBEBOX_DEBIAN_SUITE=bookworm bash images/base/build.sh "$bookworm"
trixie="$("$PYTHON" - <<'PY'
import os
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
django.setup()
from apps.marketplace.catalog import base_image
print(base_image())
PY
)"
log "base image $trixie (the project's; debootstrap when missing)"
VIBEBOX_DEBIAN_SUITE=trixie VIBEBOX_DEBIAN_MIRROR="${VIBEBOX_DEBIAN_MIRROR:-}" bash images/base/build.sh "$trixie" \
    || die "building $trixie failed"

# 2. Compose v2 and the backing services' image (Debian's packages; cached after the first run).
build_quietly() {
    local tag="$1" base="$2" dir="$3" out
    if ! out="$(docker build --build-arg BASE_IMAGE="$base" -t "$tag" "$dir" 2>&1)"; then
        printf '%s\n' "$out" | tail -n 40 >&2
        die "building $tag from $dir failed"
    fi
}
runner="$PREFIX/compose:$(digest deploy/images/compose)"
infra="$PREFIX/infra:$(digest deploy/images/infra)"
log "image $runner"
build_quietly "$runner" "$trixie" deploy/images/compose
app="$PREFIX/vibebox:test"

# 3. The work tree's files, as an operator's checkout: tracked and new files, not what is ignored.
compose() {
    docker run --rm --network host -v /var/run/docker.sock:/var/run/docker.sock -v "$WORK:$WORK" \
        -w "$WORK/repo/deploy" "$runner" --ansi never --env-file "$WORK/compose.env" -p "$PROJECT" \
        -f compose.yaml -f compose.test.yaml "$@"
}
# Whatever the stack's instance left in the engine (sandboxes, pools, their volumes and network),
# after compose's own `down -v`; the same label the stack's reconcile keeps to.
sweep() {
    local ids
    ids="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.oneoff)"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    ids="$(docker ps -aq --filter "label=vibebox.instance=$STACK_INSTANCE")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    ids="$(docker volume ls -q --filter "label=vibebox.instance=$STACK_INSTANCE")"
    [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
    ids="$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
    [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
    docker network rm "vibebox-$STACK_INSTANCE" >/dev/null 2>&1 || true
}
teardown() {
    local status=$?
    if [ -f "$WORK/compose.env" ]; then
        compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
    fi
    sweep
    rm -rf "$WORK"
    log "done in $((SECONDS - started))s (exit $status)"
}
trap teardown EXIT
trap 'exit 130' INT TERM

if [ -f "$WORK/compose.env" ]; then  # a run that was killed before its teardown
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
fi
sweep
rm -rf "$WORK"
mkdir -p "$WORK/repo"
git ls-files -z --cached --others --exclude-standard |
    "$PYTHON" -c 'import os, sys
for path in sys.stdin.buffer.read().split(b"\0"):
    if path and os.path.lexists(path) and not path.startswith((b".venv", b"sdk/typescript/node_modules")):
        sys.stdout.buffer.write(path + b"\0")' |
    tar --null -T - -c | tar -x -C "$WORK/repo"

# The extra CA (VIBEBOX_EXTRA_CA_CERTS: `system` is the host's bundle, a path a bundle, empty none)
# goes into deploy/ca/, as docs/deploy.md tells an operator behind a TLS-intercepting proxy, and
# the stack's VIBEBOX_EXTRA_CA_CERTS names that file: the same bytes as the host's, so the sandbox
# images `make images` built here carry the same tags and `buildimages --pooled` finds them.
ca="${VIBEBOX_EXTRA_CA_CERTS-system}"
[ "$ca" != system ] || ca=/etc/ssl/certs/ca-certificates.crt
stack_ca=""
if [ -n "$ca" ]; then
    cp "$ca" "$WORK/repo/deploy/ca/extra-ca.crt"
    stack_ca=/usr/local/share/ca-certificates/vibebox/extra-ca.crt
fi

# 4. Free loopback ports (other runs share this machine), the operator's files, compose's variables.
read -r p_pg p_redis p_web1 p_web2 p_web3 p_haproxy p_prom p_gateway p_egress <<<"$("$PYTHON" -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')"
deploy="$WORK/repo/deploy"
mkdir -p -m 0700 "$deploy/secrets"
(umask 077; openssl rand -hex 32 >"$deploy/secrets/postgres-password")
(umask 022; openssl rand -hex 32 >"$deploy/secrets/metrics-token")
"$PYTHON" - "$deploy" <<PY
import re
import secrets
import sys
from pathlib import Path

deploy = Path(sys.argv[1])
password = (deploy / "secrets/postgres-password").read_text().strip()
token = (deploy / "secrets/metrics-token").read_text().strip()
values = {
    "VIBEBOX_SECRET_KEY": secrets.token_hex(32),
    "VIBEBOX_ENCRYPTION_KEY": secrets.token_hex(32),
    "VIBEBOX_INSTANCE": "$STACK_INSTANCE",
    "VIBEBOX_PUBLIC_URL": "http://127.0.0.1:$p_haproxy",
    "VIBEBOX_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "VIBEBOX_CSRF_TRUSTED_ORIGINS": "http://127.0.0.1:$p_haproxy",
    "VIBEBOX_PREVIEW_URL_SCHEME": "http",
    "VIBEBOX_WEB_WORKERS": "1",
    "DATABASE_URL": f"postgres://vibebox:{password}@127.0.0.1:$p_pg/vibebox?conn_max_age=60",
    "REDIS_URL": "redis://127.0.0.1:$p_redis/0",
    "VIBEBOX_METRICS_TOKEN": token,
}
# What a two-core test machine shared with other runs needs besides (ports of the gateway and the
# egress proxy, small pools and worker counts, the CA, a loopback webhook receiver).
extra = {
    "VIBEBOX_GATEWAY_PORT": "$p_gateway",
    "VIBEBOX_EGRESS_PROXY_PORT": "$p_egress",
    "VIBEBOX_EXTRA_CA_CERTS": "$stack_ca",
    "VIBEBOX_POOL_SIZES": "python-3=1",
    "VIBEBOX_CELERY_WORKERS": "1",
    "VIBEBOX_WEBHOOK_CONCURRENCY": "2",
    "VIBEBOX_WEBHOOK_ALLOW_HTTP": "1",
    "VIBEBOX_WEBHOOK_ALLOW_PRIVATE": "1",
    "VIBEBOX_DEBIAN_MIRROR": "${VIBEBOX_DEBIAN_MIRROR:-}",
    "VIBEBOX_IMAGE_PREFIX": "${VIBEBOX_IMAGE_PREFIX:-}",
}
lines = []
for line in (deploy / "vibebox.env.example").read_text().splitlines():
    key = line.split("=", 1)[0]
    if key in values:
        line = f"{key}={values.pop(key)}"
    lines.append(line)
assert not values, f"vibebox.env.example no longer has {sorted(values)}"
left = [line for line in lines if re.search(r"=<.*>$", line)]
assert not left, f"placeholders left: {left}"
lines += ["", "# make test-compose"] + [f"{k}={v}" for k, v in extra.items() if v]
(deploy / "vibebox.env").write_text("\n".join(lines) + "\n")

# Prometheus scrapes web-1 on this run's port (the file's one change).
text = (deploy / "monitoring/prometheus.yml").read_text()
assert text.count('"127.0.0.1:8000"') == 1
(deploy.parent.parent / "prometheus.yml").write_text(text.replace('"127.0.0.1:8000"', '"127.0.0.1:$p_web1"'))
PY
chmod 0644 "$WORK/prometheus.yml"
cat >"$WORK/compose.env" <<ENV
VIBEBOX_POSTGRES_PORT=$p_pg
VIBEBOX_REDIS_PORT=$p_redis
VIBEBOX_WEB1_PORT=$p_web1
VIBEBOX_WEB2_PORT=$p_web2
VIBEBOX_WEB3_PORT=$p_web3
VIBEBOX_HAPROXY_BIND=127.0.0.1:$p_haproxy
VIBEBOX_PROMETHEUS_PORT=$p_prom
VIBEBOX_COMPOSE_APP_IMAGE=$app
VIBEBOX_COMPOSE_BASE_IMAGE=$bookworm
VIBEBOX_COMPOSE_INFRA_IMAGE=$infra
VIBEBOX_COMPOSE_PROMETHEUS_YML=$WORK/prometheus.yml
ENV
# What the test runs compose with (the same command as compose() above).
cat >"$WORK/compose" <<SH
#!/bin/sh
exec docker run --rm --network host -v /var/run/docker.sock:/var/run/docker.sock -v "$WORK:$WORK" \\
    -w "$WORK/repo/deploy" "$runner" --ansi never --env-file "$WORK/compose.env" -p "$PROJECT" \\
    -f compose.yaml -f compose.test.yaml "\$@"
SH
chmod +x "$WORK/compose"

# 5. The VibeBox image: deploy/Dockerfile through compose's own build (BuildKit, the engine's);
# the backing services' image (the legacy builder, the docker CLI's here) meanwhile.
log "docker compose build (deploy/Dockerfile FROM $bookworm), and $infra"
build_started=$SECONDS
build_quietly "$infra" "$bookworm" deploy/images/infra >"$WORK/infra.log" 2>&1 &
infra_pid=$!
if ! compose build --progress plain >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log" >&2
    die "docker compose build failed"
fi
wait "$infra_pid" || { cat "$WORK/infra.log" >&2; die "building $infra failed"; }
log "built $app in $((SECONDS - build_started))s; setup took $((SECONDS - started))s in all"

# 6. The tests: the compose file's static checks, then the stack.
export VIBEBOX_TEST_COMPOSE=1 VIBEBOX_TEST_INSTANCE="$INSTANCE"
export VIBEBOX_COMPOSE="$WORK/compose" VIBEBOX_COMPOSE_DIR="$deploy" VIBEBOX_COMPOSE_PROJECT="$PROJECT"
export VIBEBOX_COMPOSE_STACK_INSTANCE="$STACK_INSTANCE" VIBEBOX_COMPOSE_HAPROXY="127.0.0.1:$p_haproxy"
export VIBEBOX_COMPOSE_PROMETHEUS="127.0.0.1:$p_prom" VIBEBOX_COMPOSE_WEB1="127.0.0.1:$p_web1" VIBEBOX_COMPOSE_APP_IMAGE="$app"
if [ "$#" -eq 0 ]; then
    set -- tests/deploy/test_compose.py tests/deploy/test_compose_stack.py
fi
"$REPO_DIR/.venv/bin/pytest" -p no:cacheprovider -q "$@"
