#!/bin/sh
# PID 1 of the test guest (after the initramfs): the mounts a Debian system
# has, the hostname, then the agent that runs the host's commands
# (vagrant/guest/agent.py on /dev/hvc0). Reaps orphans while it waits.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# /tmp stays the overlay's (writes land in the guest's memory anyway): a
# tmpfs on it would hide a checkout that lives under the host's /tmp.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts /dev/shm /dev/hugepages /run/lock
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname logcaster-guest
ip link set lo up
modprobe virtio_net                 # the capture NIC (left down: provisioning decides)
echo "guest: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 / 1024 " MiB"}' /proc/meminfo)" > /dev/console
REPO="$(cat /proc/cmdline | tr ' ' '\n' | sed -n 's/^lc.repo=//p')"
/usr/bin/python3 "$REPO/vagrant/guest/agent.py" /dev/hvc0 &
while :; do wait; sleep 1; done
