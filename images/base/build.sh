#!/usr/bin/env bash
# Build VibeBox's base image: a minimal Debian 13 (trixie) root filesystem made
# with debootstrap and imported into Docker (nothing is pulled from a registry).
#
# Usage: images/base/build.sh TAG        e.g. images/base/build.sh vibebox/base:trixie-1
#
# Does nothing when TAG already exists. Needs root (debootstrap chroots) and a
# data dir on a filesystem that allows exec and device nodes.
#
# Environment:
#   VIBEBOX_DATA_DIR                scratch space goes to $VIBEBOX_DATA_DIR/build (default <repo>/var)
#   VIBEBOX_DEBIAN_MIRROR           default http://deb.debian.org/debian
#   VIBEBOX_DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#   VIBEBOX_DEBIAN_SUITE            default trixie
set -euo pipefail

TAG="${1:-}"
if [ -z "$TAG" ] || [ "$#" -ne 1 ]; then
    echo "usage: $0 TAG" >&2
    exit 2
fi

docker image inspect "$TAG" >/dev/null 2>&1 && exit 0

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
MIRROR="${VIBEBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${VIBEBOX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE="${VIBEBOX_DEBIAN_SUITE:-trixie}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'base-image: %s\n' "$*" >&2; }
die() { printf 'base-image: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "building $TAG needs root (debootstrap); run scripts/host-setup.sh and this script as root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap, or run scripts/host-setup.sh)"

# The trixie Release file is signed with keys that bookworm's
# debian-archive-keyring (2023.3+deb12u1 and later) carries.
if [ ! -s "$KEYRING" ]; then
    command -v apt-get >/dev/null || die "$KEYRING is missing; install debian-archive-keyring"
    log "installing debian-archive-keyring"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debian-archive-keyring >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debian-archive-keyring >&2; }
fi

mkdir -p "$DATA_DIR/build"
# One build at a time per data dir; whoever waited re-checks the tag.
exec 9>"$DATA_DIR/build/base.lock"
flock 9
docker image inspect "$TAG" >/dev/null 2>&1 && exit 0

WORK="$(mktemp -d "$DATA_DIR/build/base.XXXXXX")"
ROOTFS="$WORK/rootfs"

# Unmount anything debootstrap left mounted inside the rootfs (on failure it
# can leave proc/sys mounted), then delete without crossing filesystems.
cleanup() {
    local mnt
    if [ -d "$ROOTFS" ]; then
        awk -v root="$ROOTFS/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -m 0755 "$ROOTFS"
start=$SECONDS
log "debootstrap $SUITE (minbase) from $MIRROR into $ROOTFS"
if ! debootstrap --variant=minbase --include=ca-certificates --keyring="$KEYRING" \
    --components=main "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
fi

log "trimming the root filesystem"
# APT sources: main suite, updates and security, in deb822 form.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Container-friendly apt/dpkg settings (as Docker's official Debian images):
# no cached .debs, no translations, no docs/man pages in later installs.
cat >"$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
echo 'APT::AutoRemove::SuggestsImportant "false";' >"$ROOTFS/etc/apt/apt.conf.d/docker-autoremove-suggests"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
# Apply the same exclusions to what debootstrap already installed.
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/{man,info,groff,lintian,linda,locale}/*
# Caches, lists, logs and host leftovers.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/var/lib/dpkg/*-old "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS/debootstrap"
mkdir -p "$ROOTFS/var/lib/apt/lists/partial" "$ROOTFS/var/cache/apt/archives/partial"
find "$ROOTFS/var/log" -type f -delete
# Docker provides these at run time; debootstrap copied the host's.
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/machine-id" 2>/dev/null || true
chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"

if awk -v root="$ROOTFS/" 'index($2, root) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
    die "something is still mounted under $ROOTFS"
fi

log "importing as $TAG"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
tar --numeric-owner --xattrs --one-file-system -C "$ROOTFS" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --change 'LABEL vibebox.managed-image=1' \
        --change "LABEL vibebox.base=debian-$SUITE-minbase" \
        --change "LABEL org.opencontainers.image.created=$created" \
        --message "VibeBox base: Debian $SUITE minbase from $MIRROR" \
        - "$TAG" >/dev/null

# Smoke test: the imported image must run a plain container.
if ! docker run --rm --network none "$TAG" /bin/sh -c 'exec true' >/dev/null; then
    docker image rm "$TAG" >/dev/null 2>&1 || true
    die "imported $TAG but a container from it does not run"
fi
log "built $TAG in $((SECONDS - start))s ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
