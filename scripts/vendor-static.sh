#!/usr/bin/env bash
# Re-fetches the dashboard's vendored browser libraries from the npm registry into static/vendor/
# (pinned versions, with their licence files). The files are committed: setup needs no network
# for them and nothing is loaded from a CDN. Run it by hand to upgrade; then commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
OUT=static/vendor
fetch() {  # package version dest-dir file...
    local package=$1 version=$2 dest=$3; shift 3
    local tmp; tmp=$(mktemp -d)
    local base=${package##*/}
    curl -fsSL "$REGISTRY/$package/-/$base-$version.tgz" | tar -xz -C "$tmp"
    mkdir -p "$OUT/$dest"
    for file in "$@" LICENSE; do
        if [ -f "$tmp/package/$file" ]; then cp "$tmp/package/$file" "$OUT/$dest/"; fi
    done
    [ -f "$OUT/$dest/LICENSE" ] || cp "$tmp"/package/LICENSE* "$OUT/$dest/" 2>/dev/null || true
    echo "$package@$version" > "$OUT/$dest/VERSION"
    rm -rf "$tmp"
}
fetch htmx.org 2.0.4 htmx dist/htmx.min.js
fetch htmx-ext-ws 2.0.4 htmx-ext-ws ws.js
fetch @xterm/xterm 5.5.0 xterm lib/xterm.js css/xterm.css
fetch @xterm/addon-fit 0.10.0 xterm-addon-fit lib/addon-fit.js
fetch chart.js 4.4.7 chartjs dist/chart.umd.js
# GraphiQL at /graphql (docs/graphql.md) and the React it runs on (~4 MB, committed like the rest so
# `make run` needs neither npm nor the network for it).
fetch graphiql 3.8.3 graphiql graphiql.min.js graphiql.min.css
fetch react 18.3.1 react umd/react.production.min.js
fetch react-dom 18.3.1 react-dom umd/react-dom.production.min.js
ls -R "$OUT"
