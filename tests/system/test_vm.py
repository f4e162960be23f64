"""The test VM for real (`make vm-test`): a Debian 12 guest with one virtio
NIC, booted here with QEMU (vagrant/guest.py), provisioned as an operator
would (vagrant/provision.sh, the same script the Vagrantfile runs), its NIC
bound for DPDK with `logcaster ports`, and syslog sent from the host into
the TAP behind that NIC captured by DPDK's virtio PMD, then by AF_XDP on
the NIC given back to the kernel, then by `auto`. Every record sent lands
in the guest's Parquet store with the fields `logcaster decode` gives for
the same pcap, and every run's books balance. With a virtual IOMMU, the same
with vfio-pci.

Guard rails on the real device: `ports bind` refuses an interface that is
up or has routes (naming them), a bind the driver does not complete gives
the device back, a missing driver module is loaded or named.

The host side lives in a network namespace of the test's own (IPv6 off:
the kernel sends nothing of its own into the TAP); QEMU makes the TAP
there. Where the time went is printed at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.sample import frames, write_frames
from netns import ip, netns, unique_name

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "vagrant"))
import guest as vm  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.dpdk, pytest.mark.slow]

N = 600                          # syslog frames per capture (IPv4, IPv6, VLAN-tagged)
PPS = 1000                       # what the DPDK/AF_XDP path under TCG takes without a drop
DEV_LC = [str(REPO / ".venv/bin/python"), "-m", "appliance.cli.main"]   # the checkout's CLI, in the guest
LC = ["/opt/logcaster/venv/bin/logcaster"]                               # the installed one
INSTALLED_PY = "/opt/logcaster/venv/bin/python"
BASE_CAPS = "CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_PERFMON CAP_IPC_LOCK CAP_NET_BIND_SERVICE"
# In the guest: the Parquet store's records as JSON lines, in `logcaster decode --raw`'s notation
# (raw in base64, times as ISO text to the nanosecond).
DUMP = """
import base64, datetime, json, sys, pyarrow as pa, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format='parquet', partitioning='hive').to_table()
t = t.drop_columns([c for c in ('date', 'hour', 'rx_time') if c in t.column_names])
t = t.set_column(t.schema.get_field_index('timestamp'), 'timestamp', t.column('timestamp').cast(pa.int64()))
def iso(ns):
    s, frac = divmod(ns, 10**9)
    return f"{datetime.datetime.fromtimestamp(s, datetime.timezone.utc):%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"
with open(sys.argv[2], 'w') as out:
    for r in t.to_pylist():
        r['raw'] = base64.b64encode(r['raw']).decode()
        r['timestamp'] = None if r['timestamp'] is None else iso(r['timestamp'])
        out.write(json.dumps(r) + '\\n')
"""


class Timings:
    def __init__(self):
        self.steps: list[tuple[str, float]] = []
        self.t = time.monotonic()

    def __call__(self, what: str) -> None:
        now = time.monotonic()
        self.steps.append((what, now - self.t))
        self.t = now

    def show(self, capsys, title: str) -> None:
        with capsys.disabled():
            print(f"\n[vm-test] {title}: " + ", ".join(f"{w} {s:.0f} s" for w, s in self.steps)
                  + f"; total {sum(s for _, s in self.steps):.0f} s")


@pytest.fixture(scope="module")
def image() -> vm.Image:
    return vm.build_image()


@pytest.fixture(scope="module")
def pcap(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """The demo's sample, stamped now (RFC 3164 years infer the same live and
    offline), and what `logcaster decode` makes of it, by message."""
    now = time.time()
    path = write_frames(tmp_path_factory.mktemp("vm") / "syslog.pcap",
                        ((now + i / 1000, f) for i, (_, f) in enumerate(frames(N))))
    res = subprocess.run([*DEV_LC, "decode", "--raw", "-q", str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True)
    return path, _by_raw([json.loads(line) for line in res.stdout.splitlines()])


def _by_raw(records: list[dict]) -> dict[str, dict]:
    """Records by their payload (rx_time aside: capture time, not pcap time)."""
    out = {r["raw"]: {k: v for k, v in r.items() if k != "rx_time"} for r in records}
    assert len(out) == len(records), "the sample's payloads are unique"
    return out


@pytest.fixture
def host_side():
    """(namespace, TAP name): QEMU creates the TAP in the namespace."""
    with netns(unique_name("lcvm")) as ns:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                       check=True)
        yield ns, unique_name("lcvt")


def send(ns: str, tap: str, pcap: Path) -> dict:
    ip("link", "set", tap, "up", ns=ns)
    res = subprocess.run(["ip", "netns", "exec", ns, *DEV_LC, "replay", str(pcap), "--iface", tap, "--force",
                          "--pps", str(PPS), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def capture(g: vm.Guest, cfg: dict, ns: str, tap: str, pcap: Path, *, cmd=None, name: str) -> tuple[dict, str]:
    """One `logcaster run` in the guest while the host sends the pcap; its
    --stats-json and output. `cmd`: how to start it (default: as root)."""
    store = f"/var/lib/logcaster/{name}"
    cfg = {**cfg, "sinks": [{"type": "parquet", "path": store, "rotate_seconds": 1}], "stats_interval_s": 1,
           "ring": {"size": "64MiB"}, "dpdk": {"file_prefix": name, "log_level": "error"}}
    write_config(g, f"/etc/logcaster/{name}.yaml", cfg)
    stats = f"/var/lib/logcaster/{name}.stats.json"
    argv = (cmd or [*LC, "run", "-c"]) + [f"/etc/logcaster/{name}.yaml", "--stats-json", stats]
    pid = g.spawn(argv, f"/run/{name}.log")
    out = _wait_for(g, pid, "capturing:", 240)
    sent = send(ns, tap, pcap)
    assert sent["sent"] == N, sent
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and f"delivered {N:,}" not in out:
        out = g.wait(pid, 2)["log"]
    g.signal(pid, 15)
    done = g.wait(pid, 120)
    assert done["rc"] == 0, done["log"]
    return json.loads(g.run(["cat", stats])["stdout"]), done["log"]


def write_config(g: vm.Guest, path: str, cfg: dict) -> None:
    """A configuration file as an operator writes one: root's, readable by the service's group."""
    g.run(["sh", "-c", f"cat > {path} && chgrp logcaster {path} && chmod 640 {path}"], input_text=json.dumps(cfg))


def _wait_for(g: vm.Guest, pid: int, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = g.wait(pid, 2)
        if text in r["log"]:
            return r["log"]
        if r["rc"] is not None:
            raise AssertionError(f"the appliance ended (rc {r['rc']}) before {text!r}:\n{r['log']}\n{g.console_tail()}")
    raise AssertionError(f"no {text!r} in {timeout:.0f} s:\n{r['log']}")


def check_store(g: vm.Guest, name: str, expected: dict[str, dict], stats: dict, backend: str) -> None:
    assert stats["backend"] == backend and stats["accounting_ok"], stats
    assert stats["records"] == stats["delivered"] == N and stats["lost"] == 0, stats
    g.run([INSTALLED_PY, "-c", DUMP, f"/var/lib/logcaster/{name}", f"/run/{name}.dump.jsonl"], timeout=300)
    dump = g.read_text(f"/run/{name}.dump.jsonl")
    rows = [json.loads(line) for line in dump.splitlines()]
    got = _by_raw(rows)
    assert set(got) == set(expected), f"{len(set(expected) - set(got))} missing, {len(set(got) - set(expected))} extra"
    for raw, want in expected.items():
        have = got[raw]
        assert {k: have[k] for k in want} == want, raw


def test_the_virtio_nic_under_dpdk_then_afxdp_then_auto(image, host_side, pcap, capsys):
    ns, tap = host_side
    path, expected = pcap
    t = Timings()
    with vm.Guest(image, netns=ns, tap=tap) as g:
        t(f"boot ({g.accel})")
        pci = vm.GUEST_PCI
        listed = json.loads(g.run([*DEV_LC, "ports", "list", "--json"], cwd=str(REPO))["stdout"])
        [nic] = listed["ports"]
        assert (nic["pci"], nic["driver"], nic["vendor"]) == (pci, "virtio-pci", "1af4") and nic["interfaces"]
        iface = nic["interfaces"][0]

        # guard rails on the real device, before provisioning
        g.run(["ip", "link", "set", iface, "up"])
        g.run(["ip", "addr", "add", "198.18.99.1/24", "dev", iface])
        r = g.run([*DEV_LC, "ports", "bind", pci, "--driver", "uio_pci_generic"], cwd=str(REPO), check=False)
        assert r["rc"] == 4 and f"interface {iface} is up" in r["stderr"], r
        assert f"routes leave by it: 198.18.99.0/24 dev {iface}" in r["stderr"], r["stderr"]
        g.run(["ip", "addr", "flush", "dev", iface])
        g.run(["ip", "link", "set", iface, "down"])
        assert "vfio_pci" not in g.run(["cat", "/proc/modules"])["stdout"]
        r = g.run([*DEV_LC, "ports", "bind", pci, "--driver", "vfio-pci"], cwd=str(REPO), check=False)
        assert r["rc"] == 4 and "vfio-pci did not take" in r["stderr"] and "given back to virtio-pci" in r["stderr"], r
        assert "vfio_pci" in g.run(["cat", "/proc/modules"])["stdout"], "the missing module was loaded"
        assert g.run(["ls", f"/sys/class/net/{iface}"], check=False)["rc"] == 0, "the kernel has its NIC back"
        r = g.run([*DEV_LC, "ports", "bind", pci, "--driver", "igb_uio"], cwd=str(REPO), check=False)
        assert r["rc"] == 4 and "driver igb_uio is not loaded and could not be (modprobe igb_uio:" in r["stderr"], r
        t("guard rails")

        # provisioning as an operator would: install (offline, from the wheels), hugepages, bind, config
        r = g.run(["bash", str(REPO / "vagrant/provision.sh"), "--nic", pci, "--hugepages", "256",
                   "--wheelhouse", str(image.wheels), "--no-start"], timeout=900)
        assert r["stdout"].splitlines()[-1] == f"nic: {pci}", r["stdout"]
        listed = json.loads(g.run([*LC, "ports", "list", "--json"])["stdout"])
        assert [(p["driver"], p["dpdk"], p["interfaces"]) for p in listed["ports"]] == [("uio_pci_generic", True, [])]
        t("provision")

        # the service's way, as systemd would start it (tests/system/systemd_like.py): not root, the unit's
        # capabilities plus what provisioning's drop-in adds for a uio port
        service = [str(REPO / ".venv/bin/python"), "-c", SERVICE_ARGV, "/etc/systemd/system/logcaster.service"]
        stats, out = capture(g, yaml_of(g), ns, tap, path, cmd=service, name="dpdk")
        assert "backend: dpdk (0000:00:05.0 is bound to uio_pci_generic)" in out
        assert stats["ports"][pci]["imissed"] == 0 and "net_virtio" in out
        check_store(g, "dpdk", expected, stats, "dpdk")
        t("dpdk capture")
        # auto chooses DPDK while the port is bound (the decision `run` makes; the full run with auto
        # follows once the port is back with the kernel)
        chosen = g.run([INSTALLED_PY, "-c", CHOOSE],
                       input_text=json.dumps({"capture": {"backend": "auto", "ports": [pci]}}))["stdout"]
        assert chosen.startswith(f"dpdk {pci} is bound to uio_pci_generic"), chosen

        # the NIC given back to the kernel: its interface reappears
        r = g.run([*LC, "ports", "bind", pci, "--driver", "virtio-pci"])
        assert "bound to virtio-pci (was uio_pci_generic)" in r["stdout"]
        [nic] = json.loads(g.run([*LC, "ports", "list", "--json"])["stdout"])["ports"]
        assert nic["driver"] == "virtio-pci" and nic["interfaces"] == [iface]
        g.run(["ip", "link", "set", iface, "up"])
        t("give back")

        stats, out = capture(g, {"capture": {"backend": "afxdp", "ports": [iface], "udp_ports": [514]}}, ns, tap,
                             path, name="afxdp")
        assert "copy mode" in out or "zero-copy" in out
        check_store(g, "afxdp", expected, stats, "afxdp")
        t("afxdp capture")

        stats, out = capture(g, {"capture": {"backend": "auto", "ports": [pci], "udp_ports": [514]}}, ns, tap, path,
                             name="auto")
        assert f"backend: afxdp ({pci} is {iface}: kernel interface(s), AF_XDP allowed here)" in out, out
        check_store(g, "auto", expected, stats, "afxdp")
        t("auto capture")
    t.show(capsys, "virtio NIC under uio, then the kernel")


def test_vfio_pci_with_a_virtual_iommu(image, host_side, pcap, capsys):
    ns, tap = host_side
    path, expected = pcap
    t = Timings()
    with vm.Guest(image, netns=ns, tap=tap, iommu=True) as g:
        t(f"boot ({g.accel}, vIOMMU)")
        pci = vm.GUEST_PCI
        assert g.run(["ls", "/sys/kernel/iommu_groups/"])["stdout"].split(), "the guest has IOMMU groups"
        r = g.run(["bash", str(REPO / "vagrant/provision.sh"), "--nic", pci, "--driver", "vfio-pci",
                   "--hugepages", "256", "--wheelhouse", str(image.wheels), "--no-start"], timeout=900)
        assert r["stdout"].splitlines()[-1] == f"nic: {pci}", r["stdout"]
        [nic] = json.loads(g.run([*LC, "ports", "list", "--json"])["stdout"])["ports"]
        assert nic["driver"] == "vfio-pci" and nic["dpdk"]
        t("provision")
        service = [str(REPO / ".venv/bin/python"), "-c", SERVICE_ARGV, "/etc/systemd/system/logcaster.service"]
        stats, out = capture(g, yaml_of(g), ns, tap, path, cmd=service, name="vfio")
        assert "backend: dpdk (0000:00:05.0 is bound to vfio-pci)" in out
        check_store(g, "vfio", expected, stats, "dpdk")
        t("dpdk capture (vfio-pci, the unit's capabilities only)")
        r = g.run([*LC, "ports", "bind", pci, "--driver", "virtio-pci"])
        assert "bound to virtio-pci (was vfio-pci)" in r["stdout"]
        t("give back")
    t.show(capsys, "virtio NIC under vfio-pci with a vIOMMU")


def yaml_of(g: vm.Guest) -> dict:
    """The configuration provisioning wrote (capture on the bound NIC)."""
    import yaml

    return {"capture": yaml.safe_load(g.run(["cat", "/etc/logcaster/logcaster.yaml"])["stdout"])["capture"]}


# In the guest: the installed unit (and its drop-ins) run the way systemd
# would (tests/system/systemd_like.py), with the configuration file given
# in place of /etc/logcaster/logcaster.yaml. Arguments: unit, config, more.
SERVICE_ARGV = f"""
import json, os, sys
sys.path.insert(0, {str(REPO / 'tests/system')!r})
from pathlib import Path
from systemd_like import service_command
unit, cfg, more = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
argv, spec = service_command(Path(unit), Path('/'), extra_args=more)
spec['exec'] = [cfg if a == '/etc/logcaster/logcaster.yaml' else a for a in spec['exec']]
os.execvp(argv[0], argv[:-1] + [json.dumps(spec)])
"""

# In the guest: what `capture.backend: auto` decides for a configuration (what `run` calls).
CHOOSE = """
import sys
from appliance import config
from appliance.capture.select import choose_backend
backend, why = choose_backend(config.from_dict(__import__('json').load(sys.stdin)))
print(backend.name, why)
"""
