#!/usr/bin/env bash
# Prepare this host for VibeBox: Debian packages, a Docker engine and Redis.
#
# Idempotent and quick when everything is already in place (prints nothing
# then). Progress and errors go to stderr.
#
# Environment:
#   VIBEBOX_DATA_DIR  state directory (default: <repo>/var); dockerd's log goes
#                     to $VIBEBOX_DATA_DIR/log/dockerd.log, Redis keeps its
#                     dir/pidfile/logfile in $VIBEBOX_DATA_DIR/redis.
#   REDIS_URL         default redis://127.0.0.1:6379/0. A local URL
#                     (127.0.0.1/localhost/::1) is started here when it does
#                     not answer; any other URL must already answer.
#   VIBEBOX_DOCKERD_FLAGS  extra flags for dockerd when this script starts it.
#   VIBEBOX_DOCKER_ADDRESS_POOL  where a dockerd this script starts takes new networks'
#                     subnets (default base=10.192.0.0/12,size=22: 1024 networks of 1022
#                     addresses, one per sandbox; Docker's own default gives about 30
#                     networks, which two test runs on one engine used up, and a /24 held
#                     only 253 sandboxes); empty: Docker's default.
#   VIBEBOX_DOCKER_ROOT    data root of a dockerd this script starts (default
#                     /var/lib/vibebox-docker): a filesystem that can limit a
#                     container's size (sandboxes' disk limits), made from a
#                     sparse image file $VIBEBOX_DOCKER_ROOT.img when missing.
#   VIBEBOX_DOCKER_DISK_SIZE  that image's size (default: 80% of the free space
#                     where it lives, at least 20G); VIBEBOX_DOCKER_DISK_LIMITS=0
#                     keeps dockerd's own data root instead (no disk limits).
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${VIBEBOX_DATA_DIR:-$REPO_DIR/var}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
DOCKER_WAIT_SECONDS=60
DOCKER_ROOT="${VIBEBOX_DOCKER_ROOT:-/var/lib/vibebox-docker}"
DOCKER_ADDRESS_POOL="${VIBEBOX_DOCKER_ADDRESS_POOL-base=10.192.0.0/12,size=22}"
DOCKER_ROOT_IMAGE="$DOCKER_ROOT.img"
REDIS_WAIT_SECONDS=10

# Admin tools (dockerd, iptables, debootstrap) live in sbin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'host-setup: %s\n' "$*" >&2; }
die() { printf 'host-setup: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
have_lib() { ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$1 "; }

docker_ok() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# ---------------------------------------------------------------- packages --
# command -> Debian package providing it
declare -A PKG_FOR=(
    [dockerd]=docker.io
    [containerd]=containerd
    [runc]=runc
    [iptables]=iptables
    [ip]=iproute2
    [redis-server]=redis-server
    [redis-cli]=redis-tools
    [debootstrap]=debootstrap
    [curl]=curl
    [python3]=python3
    [mkfs.xfs]=xfsprogs
    [mkfs.btrfs]=btrfs-progs
    [xmlsec1]=xmlsec1
    [pdftotext]=poppler-utils
)

# shared library (soname) -> Debian package providing it
declare -A PKG_FOR_LIB=(
    [libpango-1.0.so.0]=libpango-1.0-0
    [libpangoft2-1.0.so.0]=libpangoft2-1.0-0
    [libharfbuzz.so.0]=libharfbuzz0b
    [libfontconfig.so.1]=libfontconfig1
)

ensure_packages() {
    local missing=() cmd
    # dockerd only matters when no engine answers already (e.g. remote
    # DOCKER_HOST or a docker-ce install); same for a remote Redis.
    # iptables (with ip6tables and *-restore): the sandbox firewall; ip: the egress tests' namespaces.
    # xmlsec1: the SAML identity provider of the single sign-on tests (pysaml2 signs with it).
    # pdftotext: the invoice tests read the PDFs' text with it.
    local cmds=(redis-cli debootstrap curl python3 iptables ip xmlsec1 pdftotext)
    if ! docker_ok; then
        cmds+=(dockerd containerd runc)
        # for a data root that can limit sandboxes' disk (prepare_data_root)
        if disk_limits_wanted && ! mountpoint -q "$DOCKER_ROOT" 2>/dev/null; then cmds+=(mkfs.xfs mkfs.btrfs); fi
    fi
    if ! have redis-server && ! redis_ok; then cmds+=(redis-server); fi
    for cmd in "${cmds[@]}"; do
        have "$cmd" || missing+=("${PKG_FOR[$cmd]}")
    done
    # WeasyPrint (invoice PDFs, apps/billing/pdf.py) loads Pango, HarfBuzz and fontconfig at run
    # time; fonts-dejavu-core gives it a font that has every glyph an invoice prints.
    local lib
    for lib in "${!PKG_FOR_LIB[@]}"; do
        have_lib "$lib" || missing+=("${PKG_FOR_LIB[$lib]}")
    done
    [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    # The virtualenv needs venv + ensurepip (Debian splits them into python3-venv).
    if have python3 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    # debootstrap needs the trixie archive keys (bookworm's keyring has them).
    if [ ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        missing+=(debian-archive-keyring)
    fi
    [ "${#missing[@]}" -eq 0 ] && return 0
    # de-duplicate
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if ! is_root; then
        die "missing Debian packages: ${missing[*]}
  install them as root:  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}
  (or run this script as root)"
    fi
    have apt-get || die "missing ${missing[*]} and apt-get is not available; install them by hand"
    mkdir -p "$DATA_DIR/log"
    local apt_log="$DATA_DIR/log/apt.log"
    log "installing Debian packages: ${missing[*]} (log: $apt_log)"
    printf '\n=== %s host-setup installing %s\n' "$(date -Is)" "${missing[*]}" >>"$apt_log"
    # policy-rc.d-less hosts may try to start the services here; harmless,
    # the checks below start whatever is still not answering.
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >>"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        die "installing ${missing[*]} failed; see $apt_log"
    fi
}

# ------------------------------------------------------------------ docker --
start_dockerd() {
    is_root || die "the Docker engine does not answer and only root can start it.
  start it (e.g. 'sudo service docker start' / 'sudo systemctl start docker'),
  or make sure your user may use /var/run/docker.sock (group 'docker')"

    # A systemd host manages dockerd itself.
    if [ -d /run/systemd/system ] && have systemctl; then
        log "starting docker via systemctl"
        systemctl start docker.service >&2 || true
        wait_for_docker "" && return 0
        die "systemctl start docker did not bring the engine up (see: journalctl -u docker)"
    fi

    mkdir -p "$DATA_DIR/log"
    local logfile="$DATA_DIR/log/dockerd.log"
    local pidfile=/var/run/docker.pid
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "dockerd (pid $(cat "$pidfile")) is running but not answering yet; waiting"
        wait_for_docker "" && return 0
        die "dockerd (pid $(cat "$pidfile")) does not answer; see $logfile"
    fi
    rm -f "$pidfile"

    # Docker's bridge networking needs forwarding; dockerd turns it on itself
    # when it manages iptables, this only saves a warning.
    local flags=(--host unix:///var/run/docker.sock --pidfile "$pidfile")
    if [ -z "${VIBEBOX_DOCKERD_FLAGS:-}" ] && prepare_data_root; then
        flags+=("${DATA_ROOT_FLAGS[@]}")
    # Only overlay2 is wanted on ext4/xfs; let dockerd fall back otherwise.
    elif [ -z "${VIBEBOX_DOCKERD_FLAGS:-}" ] && supports_overlay2; then
        flags+=(--storage-driver overlay2)
    fi
    if [ -n "$DOCKER_ADDRESS_POOL" ]; then flags+=(--default-address-pool "$DOCKER_ADDRESS_POOL"); fi
    # shellcheck disable=SC2206  # intentional word splitting of user flags
    flags+=(${VIBEBOX_DOCKERD_FLAGS:-})

    log "starting dockerd (log: $logfile)"
    # setsid + nohup + </dev/null: detached from this shell's session and
    # process group, so Ctrl-C in the caller (e.g. 'make run') leaves it alone.
    printf '\n=== %s host-setup starting dockerd %s\n' "$(date -Is)" "${flags[*]}" >>"$logfile"
    setsid nohup dockerd "${flags[@]}" </dev/null >>"$logfile" 2>&1 &
    local pid=$!
    disown "$pid" 2>/dev/null || true
    wait_for_docker "$pid" && return 0
    tail -n 20 "$logfile" >&2 || true
    die "dockerd did not answer within ${DOCKER_WAIT_SECONDS}s; see $logfile"
}

# ------------------------------------------------------ disk-limited data root --
# Sandboxes' disk limits (VIBEBOX_DEFAULT_DISK) need a storage driver that can size a container:
# overlay2 on XFS mounted with project quotas (Docker's own way; needs a kernel with XFS quota),
# else btrfs (qgroups). A dockerd this script starts gets its data root on such a filesystem: a
# sparse image file, loop-mounted at $DOCKER_ROOT (again after a reboot). Nothing here touches
# a running engine or /var/lib/docker.
disk_limits_wanted() { [ "${VIBEBOX_DOCKER_DISK_LIMITS:-1}" != 0 ]; }

DATA_ROOT_FLAGS=()
# Sets DATA_ROOT_FLAGS; fails (with a warning) when no such filesystem can be had.
prepare_data_root() {
    disk_limits_wanted || return 1
    if ! mountpoint -q "$DOCKER_ROOT"; then
        mkdir -p "$DOCKER_ROOT"
        if [ -e "$DOCKER_ROOT_IMAGE" ]; then
            mount_data_root "$(blkid -o value -s TYPE "$DOCKER_ROOT_IMAGE" 2>/dev/null || true)" || {
                warn_no_disk_limits "could not mount $DOCKER_ROOT_IMAGE"
                return 1
            }
        else
            make_data_root || return 1
        fi
    fi
    case "$(stat -f -c %T "$DOCKER_ROOT")" in
        xfs) DATA_ROOT_FLAGS=(--data-root "$DOCKER_ROOT" --storage-driver overlay2) ;;
        btrfs) DATA_ROOT_FLAGS=(--data-root "$DOCKER_ROOT" --storage-driver btrfs) ;;
        *) warn_no_disk_limits "$DOCKER_ROOT is neither xfs nor btrfs"; return 1 ;;
    esac
}

mount_data_root() { # FSTYPE
    case "$1" in
        xfs) mount -o loop,prjquota "$DOCKER_ROOT_IMAGE" "$DOCKER_ROOT" 2>/dev/null ;;
        btrfs) mount -o loop "$DOCKER_ROOT_IMAGE" "$DOCKER_ROOT" 2>/dev/null ;;
        *) return 1 ;;
    esac
}

make_data_root() {
    local dir avail size
    dir="$(dirname "$DOCKER_ROOT_IMAGE")"
    avail="$(df --output=avail -B1 "$dir" | tail -n 1 | tr -d ' ')"
    size="${VIBEBOX_DOCKER_DISK_SIZE:-$((avail / 10 * 8))}"
    if [ -z "${VIBEBOX_DOCKER_DISK_SIZE:-}" ] && [ "$size" -lt $((20 * 1024 ** 3)) ]; then
        warn_no_disk_limits "less than 25G free in $dir for the engine's data (set VIBEBOX_DOCKER_DISK_SIZE)"
        return 1
    fi
    log "making the engine's data root: a $size-byte sparse $DOCKER_ROOT_IMAGE, mounted at $DOCKER_ROOT"
    truncate -s "$size" "$DOCKER_ROOT_IMAGE"
    # XFS with project quotas where the kernel has them, else btrfs.
    if mkfs.xfs -q -f "$DOCKER_ROOT_IMAGE" >/dev/null 2>&1 && mount_data_root xfs; then
        return 0
    fi
    if mkfs.btrfs -q -f "$DOCKER_ROOT_IMAGE" >/dev/null 2>&1 && mount_data_root btrfs; then
        enable_simple_quotas
        return 0
    fi
    rm -f "$DOCKER_ROOT_IMAGE"
    warn_no_disk_limits "neither XFS with project quotas nor btrfs could be mounted"
    return 1
}

# btrfs simple quotas (kernel 6.7+), before dockerd turns on full qgroups by itself: a size limit
# then counts only what a container writes, and creating and removing containers costs a fraction
# of what full qgroups cost (seconds each on a busy machine).
enable_simple_quotas() {
    btrfs quota enable --simple "$DOCKER_ROOT" >/dev/null 2>&1 && return 0
    # btrfs-progs before 6.7 cannot ask: BTRFS_IOC_QUOTA_CTL, BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA
    python3 - "$DOCKER_ROOT" >/dev/null 2>&1 <<'PY' && return 0
import fcntl, os, struct, sys
fcntl.ioctl(os.open(sys.argv[1], os.O_RDONLY), 0xC0109428, bytearray(struct.pack("QQ", 4, 0)))
PY
    log "note: no btrfs simple quotas here (kernel before 6.7?): dockerd will use full qgroups, which are slower"
}

warn_no_disk_limits() {
    log "warning: $1; sandboxes get no disk limit (docs/operations.md, Disk limits)"
}

supports_overlay2() {
    grep -qw overlay /proc/filesystems 2>/dev/null || return 1
    local fstype
    fstype="$(stat -f -c %T /var/lib 2>/dev/null || true)"
    case "$fstype" in ext2/ext3|ext4|xfs) return 0 ;; *) return 1 ;; esac
}

# wait_for_docker PID: poll until `docker info` works; fail early if PID dies.
wait_for_docker() {
    local pid="$1" i
    for ((i = 0; i < DOCKER_WAIT_SECONDS * 4; i++)); do
        docker_ok && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited during startup"
            return 1
        fi
        sleep 0.25
    done
    return 1
}

ensure_docker() {
    have docker || die "the docker CLI is missing (Debian package docker.io provides one)"
    docker_ok && return 0
    if [ -S /var/run/docker.sock ] && ! is_root && [ ! -w /var/run/docker.sock ]; then
        die "cannot use /var/run/docker.sock as $(id -un); add yourself to the 'docker' group or run as root"
    fi
    start_dockerd
    log "docker engine is up ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
}

# ------------------------------------------------------------------- redis --
# Split REDIS_URL into REDIS_{HOST,PORT,USER,PASSWORD,SOCKET,TLS}. The ping is
# built from these rather than `redis-cli -u`, because redis-cli sends
# AUTH "" <password> for a password-only URL (redis://:pw@host), which
# redis-py (Celery, Channels) accepts as a plain password.
urldecode() { local s="${1//+/ }"; printf '%b' "${s//%/\\x}"; }

parse_redis_url() {
    local rest="$REDIS_URL" auth=""
    REDIS_HOST="" REDIS_PORT="" REDIS_USER="" REDIS_PASSWORD="" REDIS_SOCKET="" REDIS_TLS=""
    case "$rest" in
        redis://*) rest="${rest#redis://}" ;;
        rediss://*) rest="${rest#rediss://}"; REDIS_TLS=1 ;;
        unix://*)
            rest="${rest#unix://}"
            if [[ "$rest" == *@* ]]; then auth="${rest%%@*}"; rest="${rest#*@}"; fi
            REDIS_SOCKET="${rest%%\?*}"
            ;;
        *) die "REDIS_URL must start with redis://, rediss:// or unix:// (got: $REDIS_URL)" ;;
    esac
    if [ -z "$REDIS_SOCKET" ]; then
        rest="${rest%%/*}"
        rest="${rest%%\?*}"
        if [[ "$rest" == *@* ]]; then
            auth="${rest%@*}"
            rest="${rest##*@}"
        fi
        if [[ "$rest" =~ ^\[([^]]+)\](:([0-9]+))?$ ]]; then # [ipv6]:port
            REDIS_HOST="${BASH_REMATCH[1]}"
            REDIS_PORT="${BASH_REMATCH[3]:-6379}"
        elif [[ "$rest" =~ ^([^:]*)(:([0-9]+))?$ ]]; then
            REDIS_HOST="${BASH_REMATCH[1]:-127.0.0.1}"
            REDIS_PORT="${BASH_REMATCH[3]:-6379}"
        else
            die "cannot parse host/port from REDIS_URL ($REDIS_URL)"
        fi
    fi
    if [[ "$auth" == *:* ]]; then
        REDIS_USER="$(urldecode "${auth%%:*}")"
        REDIS_PASSWORD="$(urldecode "${auth#*:}")"
    else
        REDIS_PASSWORD="$(urldecode "$auth")" # redis://password@host
    fi
}

redis_ok() {
    have redis-cli || return 1
    local args=()
    if [ -n "$REDIS_SOCKET" ]; then
        args+=(-s "$REDIS_SOCKET")
    else
        args+=(-h "$REDIS_HOST" -p "$REDIS_PORT")
    fi
    [ -n "$REDIS_TLS" ] && args+=(--tls)
    [ -n "$REDIS_USER" ] && args+=(--user "$REDIS_USER")
    REDISCLI_AUTH="$REDIS_PASSWORD" timeout 5 redis-cli "${args[@]}" ping 2>/dev/null | grep -q PONG
}

ensure_redis() {
    have redis-cli || die "redis-cli is missing (Debian package redis-tools)"
    redis_ok && return 0
    case "$REDIS_HOST" in
        127.0.0.1 | localhost | ::1) ;;
        *) die "Redis at $REDIS_URL does not answer (not a local TCP address, so not starting one)" ;;
    esac
    [ -z "$REDIS_TLS" ] || die "Redis at $REDIS_URL does not answer (rediss:// is not started locally)"
    have redis-server || die "redis-server is missing (Debian package redis-server)"
    local dir="$DATA_DIR/redis"
    mkdir -p "$dir"
    local logfile="$dir/redis.log" bind=127.0.0.1 seen=0
    [ "$REDIS_HOST" = "::1" ] && bind="::1"
    [ -f "$logfile" ] && seen="$(wc -l <"$logfile")"
    local args=(--daemonize yes --bind "$bind" --port "$REDIS_PORT"
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$logfile")
    if [ -n "$REDIS_USER" ] && [ "$REDIS_USER" != default ]; then
        args+=(--user "$REDIS_USER" on ">$REDIS_PASSWORD" "~*" "&*" "+@all")
    elif [ -n "$REDIS_PASSWORD" ]; then
        args+=(--requirepass "$REDIS_PASSWORD")
    fi
    log "starting redis-server on $bind:$REDIS_PORT (dir: $dir)"
    redis-server "${args[@]}" >&2 || die "redis-server failed to start; see $logfile"
    local i
    for ((i = 0; i < REDIS_WAIT_SECONDS * 10; i++)); do
        redis_ok && return 0
        sleep 0.1
    done
    tail -n "+$((seen + 1))" "$logfile" | tail -n 20 >&2 || true
    die "redis-server did not answer at $REDIS_URL within ${REDIS_WAIT_SECONDS}s; see $logfile"
}

main() {
    parse_redis_url
    ensure_packages
    ensure_docker
    ensure_redis
}

main "$@"
