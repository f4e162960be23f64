#!/usr/bin/env bash
# Remove what scripts/install.sh installed (Debian 12, as root):
#
#   sudo scripts/uninstall.sh [--destdir DIR] [--purge]
#
# Stops and disables the service and its hugetlbfs mount, removes the units,
# the sysctl file and /opt/logcaster. The configuration (/etc/logcaster), the
# data (/var/lib/logcaster: the Parquet store, and the hugetlbfs mount while
# rings on it still hold records the next start would deliver) and the
# system user stay, unless --purge. Debian packages stay (other software may
# use them). --destdir DIR (or DESTDIR=DIR): the staging root install.sh
# used; the system user is the machine's and stays (userdel it yourself).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LC_LOG_TAG=uninstall
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

DEST="${DESTDIR:-}"
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) DEST="${2:?--destdir needs a directory}"; shift 2 ;;
        --destdir=*) DEST="${1#*=}"; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
DEST="${DEST%/}"
UNITS="$DEST/etc/systemd/system"
MOUNT_UNIT=var-lib-logcaster-hugepages.mount

lc_need_root
root=()
if [ -n "$DEST" ] || [ ! -d /run/systemd/system ]; then
    root=(--root="${DEST:-/}")
elif systemctl is-active -q logcaster.service; then
    systemctl stop logcaster.service
    lc_log "stopped logcaster.service"
fi
for unit in logcaster.service "$MOUNT_UNIT"; do
    if [ -e "$UNITS/$unit" ]; then
        systemctl "${root[@]}" disable "$unit" 2>&1 | sed 's/^/[uninstall] /' || true
    fi
done
HUGE=/var/lib/logcaster/hugepages
if [ -z "$DEST" ] && mountpoint -q "$HUGE"; then
    if [ "$PURGE" = 0 ] && [ -n "$(find "$HUGE" -type f -name 'logcaster-ring-*' -print -quit)" ]; then
        lc_log "kept the hugetlbfs mount $HUGE: rings on it may hold undelivered records (--purge drops them)"
    else
        umount "$HUGE"
        lc_log "unmounted $HUGE"
    fi
fi
for f in "$UNITS/logcaster.service" "$UNITS/$MOUNT_UNIT" "$DEST/etc/sysctl.d/60-logcaster-hugepages.conf"; do
    if [ -e "$f" ]; then
        rm -f "$f"
        lc_log "removed $f"
    fi
done
if [ -d "$DEST/opt/logcaster" ]; then
    rm -rf "$DEST/opt/logcaster"
    lc_log "removed $DEST/opt/logcaster"
fi
[ -z "$DEST" ] && [ -d /run/systemd/system ] && systemctl daemon-reload

if [ "$PURGE" = 1 ]; then
    rm -rf "$DEST/etc/logcaster" "$DEST/var/lib/logcaster"
    lc_log "purged $DEST/etc/logcaster and $DEST/var/lib/logcaster"
    if [ -z "$DEST" ] && getent passwd logcaster >/dev/null; then
        userdel logcaster
        lc_log "removed system user logcaster"
    fi
    if [ -z "$DEST" ] && getent group logcaster >/dev/null; then
        groupdel logcaster
        lc_log "removed system group logcaster"
    fi
else
    lc_log "kept $DEST/etc/logcaster and $DEST/var/lib/logcaster (--purge removes them and the user)"
fi
