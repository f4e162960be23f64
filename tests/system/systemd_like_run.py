"""The root half of tests/system/systemd_like.py: runs in a mount namespace
of its own (unshare --mount --propagation private), builds the unit's view
of the file system, then drops to the service user with setpriv, which runs
systemd_like_stub.py (seccomp, MemoryDenyWriteExecute), which runs ExecStart.
Argument: the JSON spec systemd_like.service_command made."""

import json
import os
import pwd
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from systemd_like import setpriv_argv  # noqa: E402

spec = json.loads(sys.argv[1])
uid, gid = pwd.getpwnam(spec["user"]).pw_uid, pwd.getpwnam(spec["user"]).pw_gid


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


for paths, mode in ((spec["state"], spec["state_mode"]), (spec["runtime"], spec["runtime_mode"])):
    for p in paths:
        os.makedirs(p, exist_ok=True)
        os.chown(p, uid, gid)
        os.chmod(p, mode)

if spec["private_tmp"]:
    for d in ("/tmp", "/var/tmp"):
        mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", d)
if spec["protect_home"]:
    for d in ("/home", "/root", "/run/user"):
        if os.path.isdir(d):
            mount("-t", "tmpfs", "-o", "ro,mode=0755,nosuid,nodev", "tmpfs", d)
if spec["protect_system"] == "strict":
    api = ("/dev", "/proc", "/sys")
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in points:
        if mp in api or mp.startswith(tuple(a + "/" for a in api)) or mp in ("/tmp", "/var/tmp"):
            continue
        subprocess.run(["mount", "-o", "remount,bind,ro", mp], check=False, capture_output=True)
    for p in spec["read_write"]:      # read-write with everything mounted below it, as systemd does
        if os.path.exists(p):
            mount("--rbind", p, p)
            with open("/proc/self/mountinfo") as f:
                below = [line.split()[4] for line in f]
            for mp in below:
                if mp == p or mp.startswith(p.rstrip("/") + "/"):
                    subprocess.run(["mount", "-o", "remount,bind,rw", mp], check=False, capture_output=True)
if spec["protect_modules"]:
    for d in sorted({os.path.realpath(p) for p in ("/lib/modules", "/usr/lib/modules") if os.path.isdir(p)}):
        mount("-t", "tmpfs", "-o", "ro,mode=0000", "tmpfs", d)
if spec["protect_tunables"]:
    mount("--bind", "/proc/sys", "/proc/sys")
    mount("-o", "remount,bind,ro", "/proc/sys")
    mount("-o", "remount,bind,ro", "/sys")

if spec["memlock"] == "infinity":
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except ValueError:      # this root lacks CAP_SYS_RESOURCE (a sandboxed VM): the hard limit stays;
        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]     # CAP_IPC_LOCK makes up for it
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
        print(f"systemd_like: LimitMEMLOCK=infinity not possible here, {hard} bytes", file=sys.stderr)
os.umask(spec["umask"])
os.chdir(spec["cwd"])
os.execvpe("setpriv", setpriv_argv(spec) + spec["exec"], spec["env"])
