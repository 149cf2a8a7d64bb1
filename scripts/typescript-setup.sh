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
