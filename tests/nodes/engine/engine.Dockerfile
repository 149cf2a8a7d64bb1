# A Docker engine in a container (a test "node"), from Debian's docker.io like every other image here.
# Run with --cap-add ALL --cap-drop SYS_RESOURCE --security-opt systempaths=unconfined (not --privileged).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# trixie ships the docker CLI apart (docker-cli); bookworm's docker.io has it.
RUN apt-get update \
    && cli="$(apt-cache show docker-cli >/dev/null 2>&1 && echo docker-cli || true)" \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io $cli iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/engine-entrypoint
RUN chmod 0755 /usr/local/bin/engine-entrypoint
VOLUME /var/lib/docker
EXPOSE 2376
ENTRYPOINT ["/usr/local/bin/engine-entrypoint"]
