# Claude Code on Node.js 22 (included by `# vibebox:include claude-code`, after `ca`): the tools,
# Node 22, the pinned @anthropic-ai/claude-code, the user `agent` and Claude's environment. Shared
# by node-22-claude-code and node-20-claude-code (the product spec's name, with Claude auto-started).

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bash ca-certificates curl git jq less make openssh-client procps python3 ripgrep tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log

# vibebox:include node-22

ARG CLAUDE_CODE_VERSION=2.1.332

# Install scripts and optional dependencies stay on: the real binary comes from the
# platform package (@anthropic-ai/claude-code-linux-x64).
RUN npm install --global --prefix /usr/local --registry "$NPM_REGISTRY" \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
    && npm cache clean --force \
    && claude --version

RUN groupadd --gid 1000 agent \
    && useradd --uid 1000 --gid 1000 --home-dir /home/agent --create-home --shell /bin/bash agent \
    && mkdir -p /workspace /repo /home/agent/.local/bin \
    && chown 1000:1000 /workspace /repo \
    && chown -R 1000:1000 /home/agent/.local

# No self-updates and no telemetry; Claude's settings and transcripts live on the
# workspace volume so they survive restarts (VibeBox keeps .vibebox/ out of git).
ENV DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    DISABLE_ERROR_REPORTING=1 \
    DISABLE_TELEMETRY=1 \
    CLAUDE_CONFIG_DIR=/workspace/.vibebox/claude \
    NPM_CONFIG_PREFIX=/home/agent/.local \
    PATH=/home/agent/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN printf 'export PATH="%s"\n' "$PATH" > /etc/profile.d/00-vibebox-path.sh
