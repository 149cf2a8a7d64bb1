#!/bin/sh
# Waits for the test to put the TLS material in /certs (the server certificate names the
# container's address, known only once it runs), then runs dockerd on tcp :2376 with mutual TLS
# (and on its unix socket, for `docker exec <engine> docker ...` from the tests).
set -eu
while [ ! -f /certs/ready ]; do sleep 0.1; done
# The cgroup filesystems are mounted read-only in a container that is not --privileged, and
# `mount -o remount,rw` is refused on them: each is mounted afresh (the engine's container runs in a
# private cgroup namespace, so a fresh mount shows its own cgroup as the root, not the host's).
grep -E ' - cgroup2? ' /proc/self/mountinfo | while read -r line; do
    point="$(echo "$line" | cut -d' ' -f5)"
    type="$(echo "$line" | sed -E 's/.* - (cgroup2?) .*/\1/')"
    options="$(echo "$line" | sed -E 's/.* - cgroup2? [^ ]+ //')"
    umount "$point" && mount -t "$type" -o "$options" "$type" "$point" || echo "cannot remount $point" >&2
done
exec dockerd \
    --host=unix:///var/run/docker.sock \
    --host=tcp://0.0.0.0:2376 \
    --tlsverify \
    --tlscacert=/certs/ca.pem \
    --tlscert=/certs/server-cert.pem \
    --tlskey=/certs/server-key.pem \
    ${ENGINE_ARGS:-}
