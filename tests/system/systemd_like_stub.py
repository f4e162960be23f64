"""The last step of tests/system/systemd_like.py, as the service user with
no_new_privs set: the unit's seccomp filter (SystemCallFilter=,
SystemCallErrorNumber=, RestrictAddressFamilies=, and
MemoryDenyWriteExecute= the way systemd 252 does it: mmap of memory both
writable and executable, mprotect/pkey_mprotect to executable, shmat with
SHM_EXEC refused with EPERM), then exec ExecStart.
Arguments: the JSON policy, "--", the command."""

import errno
import json
import os
import socket
import sys

import seccomp  # Debian's python3-seccomp (libseccomp)

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000     # sys/mman.h, sys/shm.h
AF_MAX = 64
FAMILIES = {"AF_XDP": 44}           # linux/socket.h, where Python's socket module lacks the name

policy = json.loads(sys.argv[1])
cmd = sys.argv[sys.argv.index("--") + 1:]

# MemoryDenyWriteExecute: what stays allowed of these calls (the rest takes the default action)
BOTH = PROT_WRITE | PROT_EXEC
MDWE_ALLOWED = {
    "mmap": [(2, BOTH, 0), (2, BOTH, PROT_WRITE), (2, BOTH, PROT_EXEC)],   # not writable and executable
    "mprotect": [(2, PROT_EXEC, 0)],                                        # never to executable
    "pkey_mprotect": [(2, PROT_EXEC, 0)],
    "shmat": [(2, SHM_EXEC, 0)],
}

if policy["allow"] or policy["mdwe"]:
    code = getattr(errno, policy["errno"])
    allowed = set(policy["allow"]) if policy["allow"] else None           # None: everything else allowed
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(code) if allowed is not None else seccomp.ALLOW)
    special = set(MDWE_ALLOWED) if policy["mdwe"] else set()
    if policy["families"]:
        special.add("socket")
    for name in sorted(allowed - special) if allowed is not None else ():
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):  # a syscall this architecture does not have
            pass
    for name, cases in MDWE_ALLOWED.items() if policy["mdwe"] else ():
        if allowed is None:                 # everything else allowed: refuse the W+X cases (EPERM, as systemd)
            refused = BOTH if name == "mmap" else cases[0][1]
            f.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(2, seccomp.MASKED_EQ, refused, refused))
        elif name in allowed:               # an allow list: allow only the other cases (the default refuses)
            for arg, mask, value in cases:
                f.add_rule(seccomp.ALLOW, name, seccomp.Arg(arg, seccomp.MASKED_EQ, mask, value))
    if policy["families"]:
        fams = {FAMILIES[fam] if fam in FAMILIES else int(getattr(socket, fam)) for fam in policy["families"]}
        for fam in range(AF_MAX):
            action = seccomp.ALLOW if fam in fams else seccomp.ERRNO(errno.EAFNOSUPPORT)
            f.add_rule(action, "socket", seccomp.Arg(0, seccomp.EQ, fam))
        f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, AF_MAX))
    f.load()

os.execvp(cmd[0], cmd)
