"""The Vagrantfile for users: it validates with Debian's vagrant, and it
provisions with vagrant/provision.sh, the script the QEMU test VM runs
(tests/system/test_vm.py) — one provisioning for both."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_vagrant_validate():
    proc = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "validated successfully" in proc.stdout, proc.stdout + proc.stderr


def test_both_vms_share_one_provisioning_script():
    vagrantfile = (ROOT / "vagrant/Vagrantfile").read_text()
    assert "bash /logcaster/vagrant/provision.sh" in vagrantfile
    assert 'nic_type: "virtio"' in vagrantfile and "lv.memory = 4096" in vagrantfile and "vb.cpus = 2" in vagrantfile
    assert '"vagrant/provision.sh"' in (ROOT / "tests/system/test_vm.py").read_text()
