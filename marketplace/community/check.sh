#!/usr/bin/env bash
# Build one community template locally and run its smoke and start commands the way the
# submission pipeline will (a helper for template authors; the real validation is the pipeline's).
#
#   marketplace/community/check.sh <name>             # build, smoke, start + ports, print time and size
#   NO_CACHE=1 marketplace/community/check.sh <name>  # the same from scratch (the build times in README.md)
#
# The context is a throwaway copy of marketplace/community/<name>/ with the Dockerfile's
# `FROM vibebox/<template>` pinned to the newest local image of that template and the host's CA
# bundle as extra-ca.crt (the pipeline adds the same file). Needs docker and python3 with PyYAML
# (PYTHON=/path/to/python to choose one).
set -euo pipefail

name="${1:?usage: check.sh <name>}"
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/$name"
python="${PYTHON:-python3}"
[ -f "$src/Dockerfile" ] || { echo "no $src/Dockerfile" >&2; exit 2; }

field() { "$python" -c 'import sys, yaml, json; v = yaml.safe_load(open(sys.argv[1])).get(sys.argv[2]); print(v if isinstance(v, str) else json.dumps(v) if v is not None else "")' "$src/template.yaml" "$1"; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"; docker rm -f "vbcheck-$name" >/dev/null 2>&1 || true; docker volume rm "vbcheck-$name" >/dev/null 2>&1 || true' EXIT
cp -a "$src/." "$ctx/"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/extra-ca.crt"

base="$(sed -n 's|^FROM vibebox/\([a-z0-9.-]*\).*|\1|p' "$src/Dockerfile" | head -1)"
tag="$(docker images "vibebox/$base" --format '{{.Tag}}' | head -1)"
[ -n "$tag" ] || { echo "no local image vibebox/$base (manage.py buildimages $base)" >&2; exit 2; }
sed -i "s|^FROM vibebox/$base\b.*|FROM vibebox/$base:$tag|" "$ctx/Dockerfile"
image="vibebox-community/$name:check"

echo "== build $name FROM vibebox/$base:$tag"
t0=$(date +%s)
nice -n 10 docker build ${NO_CACHE:+--no-cache} -q -t "$image" "$ctx" >"$ctx/.build.log" 2>&1 || { tail -50 "$ctx/.build.log"; exit 1; }
t1=$(date +%s)
size=$(docker image inspect "$image" --format '{{.Size}}')
base_size=$(docker image inspect "vibebox/$base:$tag" --format '{{.Size}}')
echo "build_seconds=$((t1 - t0)) size_mb=$((size / 1000000)) added_mb=$(((size - base_size) / 1000000))"

user="$(docker image inspect "$image" --format '{{.Config.User}}')"
workdir="$(field workdir)"; workdir="${workdir:-/workspace}"
docker volume create "vbcheck-$name" >/dev/null
docker run -d --name "vbcheck-$name" --tmpfs /tmp:rw,nosuid,nodev,size=512m \
    --mount "type=volume,source=vbcheck-$name,target=/workspace" --memory 2g "$image" sleep infinity >/dev/null

smoke="$(field smoke)"
echo "== smoke (as $user in $workdir): $smoke"
s0=$(date +%s)
docker exec -u "$user" -w "$workdir" "vbcheck-$name" bash -lc "$smoke" 2>&1 | tail -25
rc=${PIPESTATUS[0]}
echo "smoke_rc=$rc smoke_seconds=$(($(date +%s) - s0))"
[ "$rc" = 0 ] || exit 1

start="$(field start)"
if [ -n "$start" ]; then
    echo "== start: $start"
    docker exec -d -u "$user" -w "$workdir" "vbcheck-$name" bash -lc "($start) >/tmp/start.log 2>&1"
    for port in $("$python" -c 'import sys, yaml; print(" ".join(str(p) for p in yaml.safe_load(open(sys.argv[1])).get("ports") or []))' "$src/template.yaml"); do
        ok=""
        for _ in $(seq 1 120); do
            if docker exec "vbcheck-$name" curl -fsS -o /tmp/answer -m 5 "http://127.0.0.1:$port/" 2>/dev/null; then ok=1; break; fi
            sleep 1
        done
        if [ -z "$ok" ]; then echo "port $port never answered"; docker exec "vbcheck-$name" tail -30 /tmp/start.log; exit 1; fi
        echo "port $port answers: $(docker exec "vbcheck-$name" head -c 200 /tmp/answer | tr '\n' ' ')"
    done
fi
echo "== $name OK"
