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
# ENGINE_TLS_VERIFY=0: an engine that does not ask clients for a certificate (addnode must refuse it).
# (dockerd 26 asks for and verifies client certificates unless told --tlsverify=false, and reads
# ~/.docker/ca.pem when given no CA: that one gets an empty --tlscacert.)
verify="--tlsverify --tlscacert=/certs/ca.pem"
[ "${ENGINE_TLS_VERIFY:-1}" = 0 ] && verify="--tls --tlsverify=false --tlscacert="
# vfs, never btrfs: were this engine's /var/lib/docker on the host engine's btrfs (it is a tmpfs:
# tests/nodes/engines.py), dockerd's btrfs driver would disable btrfs quotas for the whole
# filesystem when it stops, turning off the host engine's disk limits (disk_limit_unsupported).
set -- \
    --storage-driver=vfs \
    --host=unix:///var/run/docker.sock \
    --host=tcp://0.0.0.0:2376 \
    $verify \
    --tlscert=/certs/server-cert.pem \
    --tlskey=/certs/server-key.pem \
    ${ENGINE_ARGS:-}
[ "${ENGINE_SUPERVISE:-0}" = 1 ] || exec dockerd "$@"
# ENGINE_SUPERVISE=1 (the live-restore drill, with ENGINE_ARGS=--live-restore): this shell stays
# PID 1 and starts dockerd again whenever it exits, as systemd's Restart= would on a host, so the
# drill can stop dockerd alone (its pid is in /run/engine-dockerd.pid; the image has no pkill) while
# containerd and the containers' shims keep running. A TERM to the container stops dockerd and
# ends the loop.
stopping=0
trap 'stopping=1; kill -TERM "$daemon" 2>/dev/null || true' TERM INT
while :; do
    dockerd "$@" &
    daemon=$!
    echo "$daemon" >/run/engine-dockerd.pid
    wait "$daemon" || true
    # `wait` returns early when a trapped signal arrives: wait for dockerd itself to end.
    while kill -0 "$daemon" 2>/dev/null; do wait "$daemon" || true; done
    [ "$stopping" = 1 ] && exit 0
    echo "engine-entrypoint: dockerd exited; starting it again" >&2
    sleep 0.5
done
