# The sandbox user (uid 1000) and the directories it owns.
RUN groupadd --gid 1000 sandbox \
    && useradd --uid 1000 --gid 1000 --home-dir /home/sandbox --create-home --shell /bin/bash sandbox \
    && mkdir -p /workspace /repo /home/sandbox/.local/bin \
    && chown 1000:1000 /workspace /repo \
    && chown -R 1000:1000 /home/sandbox/.local
