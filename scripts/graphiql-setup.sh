#!/usr/bin/env bash
# GraphiQL for /graphql (apps/graphql_api, docs/graphql.md) and the React it runs on, from the npm
# registry into static/vendor/{graphiql,react,react-dom}/ (pinned versions, with their licences).
# Not committed (about 4 MB of minified JavaScript): `make setup` runs this, quiet and quick when the
# pinned versions are in place. The browser then loads nothing from a CDN. Needs `npm` on PATH; the
# registry may sit behind a TLS-intercepting proxy (VIBEBOX_EXTRA_CA_CERTS, as typescript-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=static/vendor
# package version dest-dir file...
PACKAGES=(
    "graphiql 3.8.3 graphiql graphiql.min.js graphiql.min.css"
    "react 18.3.1 react umd/react.production.min.js"
    "react-dom 18.3.1 react-dom umd/react-dom.production.min.js"
)
CA="${VIBEBOX_EXTRA_CA_CERTS:-system}"
[ "$CA" = system ] && CA=/etc/ssl/certs/ca-certificates.crt
if [ -n "$CA" ] && [ -f "$CA" ] && [ -z "${NODE_EXTRA_CA_CERTS:-}" ]; then
    export NODE_EXTRA_CA_CERTS="$CA"
fi
for entry in "${PACKAGES[@]}"; do
    read -r package version dest files <<<"$entry"
    if [ "$(cat "$OUT/$dest/VERSION" 2>/dev/null)" = "$package@$version" ]; then
        continue
    fi
    if ! command -v npm >/dev/null; then
        echo "graphiql-setup: npm is needed to fetch $package@$version (GraphiQL's assets)" >&2
        exit 1
    fi
    echo "graphiql-setup: fetching $package@$version into $OUT/$dest" >&2
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent --no-audit --no-fund "$package@$version" >/dev/null && tar -xzf ./*.tgz)
    rm -rf "${OUT:?}/$dest" && mkdir -p "$OUT/$dest"
    for file in $files; do cp "$tmp/package/$file" "$OUT/$dest/"; done
    cp "$tmp"/package/LICENSE* "$OUT/$dest/" 2>/dev/null || true
    echo "$package@$version" > "$OUT/$dest/VERSION"
    rm -rf "$tmp"
done
