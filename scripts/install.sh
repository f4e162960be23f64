#!/usr/bin/env bash
# Install LogCaster as an appliance (Debian 12, as root), from this checkout:
#
#   sudo scripts/install.sh [--destdir DIR] [--hugepages N] [--wheelhouse DIR] [--no-packages] [--no-start]
#
#   - Debian packages the build and the run need, kernel headers for bcc
#   - the system user and group `logcaster`
#   - /opt/logcaster/venv: a venv (--system-site-packages, for Debian's bcc)
#     holding the wheel built from this checkout; /opt/logcaster/share: README,
#     the commented example configuration, the Grafana dashboard
#   - /etc/logcaster/logcaster.yaml (root:logcaster 0640): never overwritten
#     once edited; a newer template lands beside it as logcaster.yaml.dist
#   - /var/lib/logcaster (logcaster 0750): the Parquet store and the
#     service's hugetlbfs mount point for its rings
#   - persistent hugepages (/etc/sysctl.d/60-logcaster-hugepages.conf) and the
#     hugetlbfs mount unit; logcaster.service (least privilege: its comments
#     say what each setting is for), both enabled
#   - without --destdir: applied now (pages reserved, mount, service started
#     when systemd runs; --no-start to leave it stopped)
#
# --wheelhouse DIR installs from wheels built elsewhere (DIR holds
# logcaster-*.whl and every dependency: `pip wheel -w DIR .` on a machine
# with the same Debian), without building and without a network: an
# air-gapped appliance, the test VM (vagrant/guest.py).
#
# --destdir DIR (or DESTDIR=DIR) stages every file under DIR (tests; the
# venv there runs from DIR only) and changes nothing else on the machine but
# what is the machine's either way: the Debian packages, the kernel headers
# bcc needs (both skipped with --no-packages) and the system user. Running
# it again changes nothing unless the checkout or the templates changed.
# scripts/uninstall.sh undoes it (keeping data and configuration unless --purge).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LC_LOG_TAG=install
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

DEST="${DESTDIR:-}"
HUGEPAGES=512
PACKAGES=1
START=1
WHEELHOUSE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) DEST="${2:?--destdir needs a directory}"; shift 2 ;;
        --destdir=*) DEST="${1#*=}"; shift ;;
        --hugepages) HUGEPAGES="${2:?--hugepages needs a count}"; shift 2 ;;
        --no-packages) PACKAGES=0; shift ;;
        --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a directory}"; shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$HUGEPAGES" in ''|*[!0-9]*) echo "install.sh: --hugepages: a whole number, got '$HUGEPAGES'" >&2; exit 2 ;; esac
DEST="${DEST%/}"

USER_NAME=logcaster
APP="$DEST/opt/logcaster"
ETC="$DEST/etc/logcaster"
DATA="$DEST/var/lib/logcaster"
UNITS="$DEST/etc/systemd/system"
SYSCTL="$DEST/etc/sysctl.d/60-logcaster-hugepages.conf"
MOUNT_UNIT=var-lib-logcaster-hugepages.mount

systemd_runs() { [ -d /run/systemd/system ]; }

SCRATCH="$(mktemp -d)"          # temporary files of this run, whatever ends it
trap 'rm -rf "$SCRATCH"' EXIT

# put MODE OWNER:GROUP SOURCE TARGET: install a file only if it differs.
put() {
    local mode="$1" owner="$2" src="$3" dst="$4"
    if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c '%a %U:%G' "$dst")" = "${mode#0} $owner" ]; then
        return 0
    fi
    install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dst"
    lc_log "wrote $dst"
}

# dir MODE OWNER:GROUP PATH
dir() {
    local mode="$1" owner="$2" path="$3"
    if [ -d "$path" ] && [ "$(stat -c '%a %U:%G' "$path")" = "${mode#0} $owner" ]; then
        return 0
    fi
    install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
    lc_log "made $path ($mode $owner)"
}

packages() {
    [ "$PACKAGES" = 1 ] || return 0
    lc_install_packages "${RUNTIME_PACKAGES[@]}"
    lc_install_kernel_headers
}

service_user() {
    if ! getent group "$USER_NAME" >/dev/null; then
        groupadd --system "$USER_NAME"
        lc_log "added system group $USER_NAME"
    fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
        useradd --system --gid "$USER_NAME" --home-dir /var/lib/logcaster --no-create-home \
            --shell /usr/sbin/nologin --comment "LogCaster appliance" "$USER_NAME"
        lc_log "added system user $USER_NAME"
    fi
}

# The checkout's files (the repository's, when it is one; a tracked file
# deleted from the work tree is left out): what the wheel is built from.
source_digest() {
    (cd "$ROOT" && if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard
    else
        find . -type f -not -path './.venv/*' -not -path './build/*' -not -name '*.so' -print0
    fi | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
       | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

app() {
    dir 0755 root:root "$APP"
    local digest stamp="$APP/.source-sha256" wheels pip_from=()
    if [ -n "$WHEELHOUSE" ]; then
        wheels="$WHEELHOUSE"
        pip_from=(--no-index --find-links "$WHEELHOUSE")
        digest="$(sha256sum "$WHEELHOUSE"/logcaster-*.whl | cut -d' ' -f1)"
    else
        wheels="$SCRATCH/wheels"
        digest="$(source_digest)"
    fi
    if [ -x "$APP/venv/bin/logcaster" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        return 0
    fi
    if [ ! -x "$APP/venv/bin/python" ]; then
        lc_log "creating $APP/venv (--system-site-packages, for Debian's bcc)"
        /usr/bin/python3 -m venv --system-site-packages "$APP/venv"
        [ -n "$WHEELHOUSE" ] || "$APP/venv/bin/pip" install -q --upgrade pip
    fi
    if [ -z "$WHEELHOUSE" ]; then
        lc_log "building the wheel (compiles the cffi modules)"
        "$APP/venv/bin/pip" wheel -q --no-deps -w "$wheels" "$ROOT"
    fi
    "$APP/venv/bin/pip" install -q "${pip_from[@]}" --force-reinstall --no-deps "$wheels"/logcaster-*.whl
    "$APP/venv/bin/pip" install -q "${pip_from[@]}" "$wheels"/logcaster-*.whl      # its dependencies
    echo "$digest" > "$stamp"
    lc_log "installed $(basename "$wheels"/logcaster-*.whl) in $APP/venv${WHEELHOUSE:+ (from $WHEELHOUSE, offline)}"
}

share() {
    dir 0755 root:root "$APP/share"
    put 0644 root:root "$ROOT/README.md" "$APP/share/README.md"
    put 0644 root:root "$ROOT/docs/logcaster.example.yaml" "$APP/share/logcaster.example.yaml"
    put 0644 root:root "$ROOT/docs/grafana-logcaster.json" "$APP/share/grafana-logcaster.json"
    put 0644 root:root "$ROOT/scripts/logcaster.yaml" "$APP/share/logcaster.yaml"
}

config() {
    dir 0750 root:"$USER_NAME" "$ETC"
    local cfg="$ETC/logcaster.yaml"
    if [ ! -e "$cfg" ]; then
        put 0640 root:"$USER_NAME" "$ROOT/scripts/logcaster.yaml" "$cfg"
    elif ! cmp -s "$ROOT/scripts/logcaster.yaml" "$cfg"; then
        # edited by the operator: kept; the template this version ships beside it
        put 0640 root:"$USER_NAME" "$ROOT/scripts/logcaster.yaml" "$cfg.dist"
    fi
}

data() {
    dir 0750 "$USER_NAME:$USER_NAME" "$DATA"
    dir 0700 "$USER_NAME:$USER_NAME" "$DATA/hugepages"
}

units() {
    local tmp="$SCRATCH/unit" uid gid
    uid="$(id -u "$USER_NAME")"
    gid="$(id -g "$USER_NAME")"
    put 0644 root:root "$ROOT/scripts/logcaster.service" "$UNITS/logcaster.service"
    sed -e "s/@UID@/$uid/" -e "s/@GID@/$gid/" "$ROOT/scripts/$MOUNT_UNIT" > "$tmp"
    put 0644 root:root "$tmp" "$UNITS/$MOUNT_UNIT"
    printf '# LogCaster: 2 MiB hugepages for DPDK mbuf pools, AF_XDP UMEMs and rings\n# (scripts/install.sh --hugepages N)\nvm.nr_hugepages = %s\n' \
        "$HUGEPAGES" > "$tmp"
    put 0644 root:root "$tmp" "$SYSCTL"
    local root=()
    if [ -n "$DEST" ] || ! systemd_runs; then
        root=(--root="${DEST:-/}")
    fi
    if ! systemctl "${root[@]}" is-enabled -q logcaster.service 2>/dev/null \
        || ! systemctl "${root[@]}" is-enabled -q "$MOUNT_UNIT" 2>/dev/null; then
        systemctl "${root[@]}" enable logcaster.service "$MOUNT_UNIT" 2>&1 | sed 's/^/[install] /'
    fi
}

apply_now() {
    [ -z "$DEST" ] || return 0
    local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    if [ -w "$nr" ] && [ "$(cat "$nr")" -lt "$HUGEPAGES" ]; then
        sysctl -q -p "$SYSCTL"
        lc_log "reserved $(cat "$nr") hugepages of 2 MiB (asked for $HUGEPAGES)"
    fi
    if systemd_runs; then
        systemctl daemon-reload
        systemctl start "$MOUNT_UNIT"
        if [ "$START" = 1 ]; then
            systemctl restart logcaster.service
            lc_log "started logcaster.service (journalctl -u logcaster)"
        fi
    else
        if ! mountpoint -q "$DATA/hugepages"; then
            mount -t hugetlbfs -o "pagesize=2M,uid=$(id -u "$USER_NAME"),gid=$(id -g "$USER_NAME"),mode=0700,nosuid,nodev,noexec" \
                hugetlbfs "$DATA/hugepages"
            lc_log "mounted hugetlbfs on $DATA/hugepages"
        fi
        lc_log "systemd is not running here: start the service with systemd, or run its ExecStart yourself"
    fi
}

lc_need_root
packages
service_user
app
share
config
data
units
apply_now
lc_log "done: edit ${ETC}/logcaster.yaml, then: systemctl restart logcaster"
