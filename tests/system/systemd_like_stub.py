"""The last step of tests/system/systemd_like.py, as the service user with
no_new_privs set: MemoryDenyWriteExecute (prctl PR_SET_MDWE) and the unit's
seccomp filter (SystemCallFilter=, SystemCallErrorNumber=,
RestrictAddressFamilies=), then exec ExecStart.
Arguments: the JSON policy, "--", the command."""

import ctypes
import errno
import json
import os
import socket
import sys

import seccomp  # Debian's python3-seccomp (libseccomp)

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
AF_MAX = 64
FAMILIES = {"AF_XDP": 44}           # linux/socket.h, where Python's socket module lacks the name

policy = json.loads(sys.argv[1])
cmd = sys.argv[sys.argv.index("--") + 1:]

if policy["mdwe"]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(f"systemd_like: prctl(PR_SET_MDWE): {os.strerror(ctypes.get_errno())}")

if policy["allow"]:
    code = getattr(errno, policy["errno"])
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(code))
    names = set(policy["allow"])
    if policy["families"]:
        names.discard("socket")
    for name in sorted(names):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):  # a syscall this architecture does not have
            pass
    if policy["families"]:
        allowed = {FAMILIES[fam] if fam in FAMILIES else int(getattr(socket, fam)) for fam in policy["families"]}
        for fam in range(AF_MAX):
            action = seccomp.ALLOW if fam in allowed else seccomp.ERRNO(errno.EAFNOSUPPORT)
            f.add_rule(action, "socket", seccomp.Arg(0, seccomp.EQ, fam))
        f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, AF_MAX))
    f.load()

os.execvp(cmd[0], cmd)
