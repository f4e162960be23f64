"""Run a unit's ExecStart the way systemd would, on a machine where systemd
is not PID 1 (this one, and CI's).

The unit file is read (scripts/logcaster.service as installed into a staging
root) and these of its settings are applied, with the same semantics, before
ExecStart runs:

  User=, Group=                     setpriv --reuid/--regid --init-groups
  AmbientCapabilities=,
  CapabilityBoundingSet=            setpriv --inh-caps/--ambient-caps/--bounding-set
  NoNewPrivileges=                  setpriv --no-new-privs
  SecureBits=                       setpriv --securebits
  UMask=, LimitMEMLOCK=,
  Environment=, WorkingDirectory=   umask, setrlimit, a clean environment, chdir
  StateDirectory=, RuntimeDirectory= created with their modes, owned by the user
  ProtectSystem=strict              a mount namespace: every mount but /dev, /proc,
                                    /sys read-only; the State/Runtime directories
                                    and ReadWritePaths= read-write
  ProtectHome=yes, PrivateTmp=yes   empty tmpfs on /home, /root, /run/user; own /tmp, /var/tmp
  ProtectKernelTunables=yes         /proc/sys and /sys read-only
  ProtectKernelModules=yes          /lib/modules and /usr/lib/modules made inaccessible
  MemoryDenyWriteExecute=yes        seccomp, as systemd 252 does (no W+X mmap, no mprotect to X)
  SystemCallFilter=,
  SystemCallErrorNumber=,
  RestrictAddressFamilies=          the same seccomp filter (libseccomp), groups
                                    expanded by `systemd-analyze syscall-filter`

Not applied (cgroup or /proc-instance features without an equivalent here):
DevicePolicy/DeviceAllow, ProtectProc, RestrictNamespaces, RestrictRealtime,
LockPersonality, KeyringMode, and what systemd does when the service stops
(RemoveIPC=, removing RuntimeDirectory= unless RuntimeDirectoryPreserve=).

Paths of the real install (/opt/logcaster, /etc/logcaster, /var/lib/logcaster,
/run/logcaster) are mapped into the staging root.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUB = HERE / "systemd_like_stub.py"
INSTALL_PATHS = ("/opt/logcaster", "/etc/logcaster", "/var/lib/logcaster", "/run/logcaster")


def parse_unit(path: Path) -> dict[str, list[str]]:
    """[Service] settings of the unit and its drop-ins (<unit>.d/*.conf, in
    name order, as systemd reads them): key -> every value given, in order;
    an empty assignment resets the key, as in systemd."""
    out: dict[str, list[str]] = {}
    for file in [path, *sorted(path.parent.glob(f"{path.name}.d/*.conf"))]:
        section = None
        for raw in file.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = (s.strip() for s in line.split("=", 1))
                if value:
                    out.setdefault(key, []).append(value)
                else:
                    out.pop(key, None)
    return out


def _staged(text: str, root: Path) -> str:
    if str(root) == "/":            # the real install (in the test VM)
        return text
    for p in INSTALL_PATHS:
        text = re.sub(rf"(?<![\w/]){re.escape(p)}(?=/|\b)", str(root) + p, text)
    return text


def syscall_group(name: str, _seen: set | None = None) -> set[str]:
    """A systemd syscall group (or one syscall) as syscall names."""
    if not name.startswith("@"):
        return {name}
    seen = _seen if _seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                         check=True).stdout
    names: set[str] = set()
    for line in out.splitlines():
        word = line.strip()
        if not line[:1].isspace() or not word or word.startswith("#"):     # the group's own name, comments
            continue
        names |= syscall_group(word, seen) if word.startswith("@") else {word}
    return names


def syscall_policy(unit: dict[str, list[str]]) -> dict:
    """The allow list systemd would install: the first SystemCallFilter= line
    allows, `~` lines take away (systemd.exec(5)); plus the errno and the
    address families."""
    allowed: set[str] | None = None
    for value in unit.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = set().union(*(syscall_group(w) for w in value.lstrip("~").split()))
        if allowed is None:
            if deny:
                raise ValueError("a deny-first SystemCallFilter is not emulated")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    errno_name = (unit.get("SystemCallErrorNumber") or ["EPERM"])[-1]
    families = (unit.get("RestrictAddressFamilies") or [""])[-1].split()
    return {"allow": sorted(allowed or ()), "errno": errno_name, "families": families,
            "mdwe": (unit.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes"}


def service_command(unit_path: Path, root: Path, *, extra_args: tuple[str, ...] = (),
                    read_write: tuple[str, ...] = ()) -> tuple[list[str], dict]:
    """(argv to run as root, the spec the harness applies). `extra_args` go
    after ExecStart's own (e.g. --stats-json); `read_write` adds paths the
    test needs writable beside the unit's own."""
    unit = parse_unit(unit_path)
    user = unit["User"][-1]
    group = unit.get("Group", [user])[-1]
    caps = sorted({c for v in unit.get("AmbientCapabilities", []) for c in v.split()})
    bounding = sorted({c for v in unit.get("CapabilityBoundingSet", []) for c in v.split()})
    state = [str(root / "var/lib" / d) for v in unit.get("StateDirectory", []) for d in v.split()]
    runtime = [str(root / "run" / d) for v in unit.get("RuntimeDirectory", []) for d in v.split()]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user, "HOME": str(root / "var/lib/logcaster"), "SHELL": "/usr/sbin/nologin"}
    for v in unit.get("Environment", []):
        for item in shlex.split(v):
            k, _, val = item.partition("=")
            env[k] = _staged(val, root)
    spec = {
        "user": user, "group": group, "caps": caps, "bounding": bounding,
        "no_new_privs": (unit.get("NoNewPrivileges") or ["no"])[-1] == "yes",
        "umask": int((unit.get("UMask") or ["0022"])[-1], 8),
        "memlock": (unit.get("LimitMEMLOCK") or [""])[-1],
        "env": env, "cwd": _staged((unit.get("WorkingDirectory") or ["/"])[-1], root),
        "state": state, "state_mode": int((unit.get("StateDirectoryMode") or ["0755"])[-1], 8),
        "runtime": runtime, "runtime_mode": int((unit.get("RuntimeDirectoryMode") or ["0755"])[-1], 8),
        "protect_system": (unit.get("ProtectSystem") or ["no"])[-1],
        "read_write": state + runtime + [_staged(p, root) for v in unit.get("ReadWritePaths", []) for p in v.split()]
                      + list(read_write),
        "protect_home": (unit.get("ProtectHome") or ["no"])[-1] == "yes",
        "private_tmp": (unit.get("PrivateTmp") or ["no"])[-1] == "yes",
        "protect_tunables": (unit.get("ProtectKernelTunables") or ["no"])[-1] == "yes",
        "protect_modules": (unit.get("ProtectKernelModules") or ["no"])[-1] == "yes",
        "securebits": "noroot-locked" in " ".join(unit.get("SecureBits", [])),
        "seccomp": syscall_policy(unit),
        "exec": shlex.split(_staged(unit["ExecStart"][-1], root)) + list(extra_args),
    }
    # The last step runs behind PrivateTmp and ProtectHome: a checkout under /tmp or /root (CI's)
    # is hidden there, so it runs from a copy in the staging root.
    stub = root / "opt/systemd-like-stub.py"
    shutil.copyfile(STUB, stub)
    spec["stub"] = str(stub)
    return ["unshare", "--mount", "--propagation", "private", sys.executable, str(HERE / "systemd_like_run.py"),
            json.dumps(spec)], spec


def setpriv_argv(spec: dict) -> list[str]:
    caps = ",".join(f"+{c.removeprefix('CAP_').lower()}" for c in spec["caps"]) or "-all"
    bounding = ",".join(["-all"] + [f"+{c.removeprefix('CAP_').lower()}" for c in spec["bounding"]])
    argv = ["setpriv", f"--reuid={spec['user']}", f"--regid={spec['group']}", "--init-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={bounding}"]
    if spec["securebits"]:
        argv.append("--securebits=+noroot,+noroot_locked")
    if spec["no_new_privs"]:
        argv.append("--no-new-privs")
    return argv + ["--", "/usr/bin/python3", spec["stub"], json.dumps(spec["seccomp"]), "--"]


if __name__ == "__main__":      # show what would run: systemd_like.py UNIT ROOT
    print(json.dumps(service_command(Path(sys.argv[1]), Path(sys.argv[2]))[1], indent=2))
    os._exit(0)
