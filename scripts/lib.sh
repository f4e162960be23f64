# Shared by scripts/setup.sh (development), scripts/install.sh (the
# appliance) and the test VM's provisioning: the Debian packages LogCaster
# needs and the kernel headers bcc compiles against. Source it; every
# function checks before it acts, so running twice changes nothing.

# What building and running the appliance needs (the cffi modules compile
# on the target: DPDK, libxdp/libbpf, libpcap; bcc compiles the XDP program).
RUNTIME_PACKAGES=(
    build-essential pkg-config
    python3 python3-venv python3-dev python3-bpfcc
    libdpdk-dev dpdk libxdp-dev libbpf-dev xdp-tools
    clang llvm
    libpcap-dev iproute2 ethtool kmod
)
# What the tests, benchmarks and fuzzing add (development machines only).
DEVELOPMENT_PACKAGES=(
    git make bpfcc-tools libclang-rt-14-dev
    tcpreplay iputils-ping rsyslog rsyslog-gnutls openssl   # rsyslog: the e2e peer and the relay sink's receiver
    python3-seccomp systemd     # the least-privilege test runs the unit's sandbox the way systemd would
    qemu-system-x86 busybox-static cpio   # the test VM (vagrant/guest.py)
    vagrant vagrant-libvirt               # `vagrant validate` of vagrant/Vagrantfile
)

lc_log() { printf '[%s] %s\n' "${LC_LOG_TAG:-logcaster}" "$*"; }

lc_need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$(basename "$0"): run as root (packages, users, hugepages and kernel headers need it)" >&2
        exit 1
    fi
}

# lc_install_packages PKG... : apt-get install the ones not installed yet.
lc_install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    lc_log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# bcc compiles XDP programs against /lib/modules/$(uname -r)/{build,source}.
# No Debian package matches a custom kernel; the newest 6.1 headers work.
lc_install_kernel_headers() {
    local kdir="/lib/modules/$(uname -r)"
    if [ -e "$kdir/build/include/generated/autoconf.h" ] || [ -e "$kdir/build/include/linux/kconfig.h" ] \
        || [ -e /sys/kernel/kheaders.tar.xz ]; then
        return 0
    fi
    if apt-cache show "linux-headers-$(uname -r)" >/dev/null 2>&1; then
        lc_install_packages "linux-headers-$(uname -r)"
        return 0
    fi
    if ! ls -d /usr/src/linux-headers-6.1.0-*-amd64 >/dev/null 2>&1; then
        lc_log "installing Debian kernel headers (linux-headers-amd64) for bcc"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-headers-amd64
    fi
    local arch common
    arch="$(ls -d /usr/src/linux-headers-6.1.0-*-amd64 | sort -V | tail -n1)"
    common="${arch%-amd64}-common"
    mkdir -p "$kdir"
    ln -sfn "$arch" "$kdir/build"
    ln -sfn "$common" "$kdir/source"
    lc_log "linked $kdir/build -> $arch, source -> $common"
}
