#!/bin/sh
# Waits for the test to put the TLS material in /certs (the server certificate names the
# container's address, known only once it runs), then runs dockerd on tcp :2376 with mutual TLS
# (and on its unix socket, for `docker exec <engine> docker ...` from the tests).
set -eu
while [ ! -f /certs/ready ]; do sleep 0.1; done
# cgroup v1 is mounted read-only in a container that is not --privileged: dockerd needs it writable.
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for d in /sys/fs/cgroup/*; do
    [ -d "$d" ] && mount -o remount,rw "$d" 2>/dev/null || true
done
exec dockerd \
    --host=unix:///var/run/docker.sock \
    --host=tcp://0.0.0.0:2376 \
    --tlsverify \
    --tlscacert=/certs/ca.pem \
    --tlscert=/certs/server-cert.pem \
    --tlskey=/certs/server-key.pem \
    ${ENGINE_ARGS:-}
