#!/usr/bin/env bash
# After `vagrant up`: send N syslog datagrams from the host to the VM's
# capture NIC and check that exactly N more records reached its Parquet store.
#
#   cd vagrant && ./smoke.sh [N]       (default 1000; bounded: 2 ms between datagrams)
#
# The capture NIC belongs to DPDK in the VM, which answers no ARP: the host
# gets a permanent neighbour entry for it (the MAC provisioning recorded).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
N="${1:-1000}"
IP=198.18.0.10
case "$N" in ''|*[!0-9]*) echo "smoke.sh: N must be a whole number" >&2; exit 2 ;; esac

count() {
    vagrant ssh -c "sudo /opt/logcaster/venv/bin/logcaster query --data-dir /var/lib/logcaster/parquet --format csv \
        'SELECT count(*) FROM logs WHERE message LIKE ''smoke %''' 2>/dev/null | tail -n1" 2>/dev/null | tr -d '\r' || echo 0
}
MAC="$(vagrant ssh -c 'cat /var/lib/logcaster/capture-nic.mac' 2>/dev/null | tr -d '\r\n')"
DEV="$(ip -o route get "$IP" | sed -n 's/.* dev \([^ ]*\).*/\1/p')"
[ -n "$MAC" ] && [ -n "$DEV" ] || { echo "smoke.sh: no capture NIC MAC or host interface to $IP (vagrant up first)" >&2; exit 1; }
sudo ip neigh replace "$IP" lladdr "$MAC" dev "$DEV" nud permanent
before="$(count)"
python3 - "$IP" "$N" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(f"<14>1 {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} smoke-host smoke - - - smoke {i}".encode(),
             (sys.argv[1], 514))
    time.sleep(0.002)
PY
for _ in $(seq 1 30); do          # the Parquet sink commits a file per minute by default
    after="$(count)"
    [ "$((after - before))" -ge "$N" ] && break
    sleep 5
done
echo "smoke: sent $N, the store holds $((after - before)) more"
[ "$((after - before))" -eq "$N" ]
