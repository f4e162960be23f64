"""The test VM behind `make vm-test`: a Debian 12 guest with one virtio NIC,
built from Debian's packages and booted with QEMU on this machine.

The guest (built once into build/vm/, rebuilt when an input changes):
  kernel     Debian's linux-image-<release> for the newest installed
             linux-headers-6.1.0-*-amd64 (so bcc in the guest has headers
             that match its kernel), unpacked from the .deb
  initramfs  busybox-static, the modules that mount the root, and
             vagrant/guest/initramfs-init
  root       this machine's /, shared read-only over virtio-9p, under a
             tmpfs overlay: the guest runs the same Debian userspace as the
             host (DPDK, bcc, Python) and the project from its checkout;
             everything it writes stays in its memory
  wheels     the project's wheel and its dependencies (build/vm/wheels-*),
             so scripts/install.sh runs in the guest without a network
Booted (Guest): `-nodefaults`, one virtio-net-pci NIC on a TAP that QEMU
creates in a network namespace of the caller's, a virtio-serial port for
the agent (vagrant/guest/agent.py: the only control channel), the kernel
console to a file (its tail goes into every error). KVM when it works, TCG
otherwise (said in `accel`); with iommu=True, q35 with intel-iommu so
vfio-pci works in the guest. Every wait is bounded; close() powers the
guest off and kills QEMU if it does not stop.

    with Guest(build_image(), netns="lcvm", tap="lcvmtap0") as g:
        print(g.run(["logcaster", "ports", "list"])["stdout"])
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("LOGCASTER_VM_BUILD", REPO / "build" / "vm"))
HERE = Path(__file__).resolve().parent / "guest"
# What the initramfs loads to mount the root (their dependencies come along).
ROOT_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay")
BOOT_TIMEOUT_S = 120.0          # TCG: the kernel in ~5 s, the agent's Python in ~20 more
KVM_TIMEOUT_S = 30.0
AGENT_SLACK_S = 30.0            # the host waits this much past a command's own timeout in the guest
GUEST_MAC = "52:54:00:18:00:10"
# The capture NIC's PCI address in the guest: apart from this machine's own
# NIC (0000:00:03.0 on these hosts), so a command meant for the guest can
# never name the host's device.
GUEST_PCI = "0000:00:05.0"


def log(text: str) -> None:
    print(f"[vm] {text}", file=sys.stderr, flush=True)


def _sh(*cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def headers_release() -> str:
    """The release of the newest installed linux-headers-6.1.0-*-amd64 (scripts/lib.sh installs them)."""
    found = sorted(glob.glob("/usr/src/linux-headers-6.1.0-*-amd64"),
                   key=lambda p: int(p.split("6.1.0-")[1].split("-")[0]))
    if not found:
        raise RuntimeError("no /usr/src/linux-headers-6.1.0-*-amd64: run `make setup`")
    return found[-1].removeprefix("/usr/src/linux-headers-")


@dataclass(frozen=True)
class Image:
    release: str
    kernel: Path
    initrd: Path
    kroot: Path             # the unpacked kernel package (its lib/modules is bound into the guest)
    wheels: Path            # the project's wheel and its dependencies


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.read_bytes() if isinstance(p, Path) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "appliance", "dpdk_shim", "hugepages", "ebpf")


def _source_digest() -> str:
    """Of the files that make the wheel (the repository's own, not build output)."""
    files = _sh("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *WHEEL_SOURCES,
                cwd=REPO).stdout.split("\0")
    return _digest(*(REPO / f for f in sorted(filter(None, files)) if (REPO / f).is_file()))


def build_image() -> Image:
    """The guest's kernel, initramfs and wheels, from build/vm/ when its inputs are unchanged."""
    release = headers_release()
    busybox = Path("/bin/busybox")
    state = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "busybox-static"], capture_output=True, text=True)
    if "install ok installed" not in state.stdout:
        raise RuntimeError("needs busybox-static (apt-get install busybox-static; `make setup` does)")
    deb_version = _sh("apt-cache", "policy", f"linux-image-{release}").stdout
    out = BUILD / f"image-{release}"
    key = _digest(release, deb_version, busybox, HERE / "initramfs-init", *ROOT_MODULES)
    image = Image(release, out / "kroot/boot" / f"vmlinuz-{release}", out / "initrd.gz", out / "kroot",
                  _wheels())
    if (out / "key").exists() and (out / "key").read_text() == key and image.initrd.exists():
        return image
    started = time.monotonic()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log(f"building the guest: Debian's linux-image-{release}, busybox initramfs -> {out}")
    _sh("apt-get", "download", f"linux-image-{release}", cwd=out)
    deb = next(out.glob(f"linux-image-{release}_*.deb"))
    _sh("dpkg-deb", "-x", deb, out / "kroot")
    deb.unlink()
    _sh("depmod", "-b", out / "kroot", release)
    mods = out / "kroot/lib/modules" / release
    (mods / "build").symlink_to(f"/usr/src/linux-headers-{release}")
    (mods / "source").symlink_to(f"/usr/src/linux-headers-{release.removesuffix('-amd64')}-common")
    _initramfs(out, release, image.initrd)
    (out / "key").write_text(key)
    log(f"guest built in {time.monotonic() - started:.0f} s")
    return image


def _initramfs(out: Path, release: str, initrd: Path) -> None:
    stage = Path(tempfile.mkdtemp(prefix="lcvm-initramfs-"))
    try:
        for d in ("bin", "proc", "sys", "dev", "modules"):
            (stage / d).mkdir()
        shutil.copy2("/bin/busybox", stage / "bin/busybox")
        shutil.copy2(HERE / "initramfs-init", stage / "init")
        order: list[str] = []
        for mod in ROOT_MODULES:
            deps = _sh("modprobe", "-d", out / "kroot", "-S", release, "--show-depends", mod).stdout
            for line in deps.splitlines():
                if line.startswith("insmod "):
                    path = Path(line.split()[1])
                    if path.name not in order:
                        order.append(path.name)
                        shutil.copy2(path, stage / "modules" / path.name)
        (stage / "modules.order").write_text("\n".join(order) + "\n")
        (stage / "kmod-dir").write_text(str(out / "kroot"))
        (stage / "guest-init").write_text(str(HERE / "init.sh"))
        files = subprocess.run(["find", "."], cwd=stage, capture_output=True, check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage, input=files,
                              capture_output=True, check=True).stdout
        initrd.write_bytes(subprocess.run(["gzip", "-1"], input=cpio, capture_output=True, check=True).stdout)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _wheels() -> Path:
    """The project's wheel and every dependency, for an offline install in the guest."""
    out = BUILD / f"wheels-{_source_digest()}"
    if (out / "done").exists():
        return out
    for old in BUILD.glob("wheels-*"):
        shutil.rmtree(old, ignore_errors=True)
    out.mkdir(parents=True)
    log(f"building the project's wheel and collecting its dependencies -> {out}")
    _sh(sys.executable, "-m", "pip", "wheel", "-q", "-w", out, REPO)
    (out / "done").write_text("")
    return out


class GuestError(RuntimeError):
    """The guest did not boot, or a command in it failed; carries the console's tail."""


class Guest:
    """A booted guest; use as a context manager (it always powers off)."""

    def __init__(self, image: Image, *, netns: str, tap: str, iommu: bool = False, memory_mb: int = 2048,
                 cpus: int = 2, workdir: Path | None = None):
        self.image, self.netns, self.tap, self.iommu = image, netns, tap, iommu
        self.memory_mb, self.cpus = memory_mb, cpus
        self.work = Path(tempfile.mkdtemp(prefix="lcvm-", dir=workdir))
        self.console = self.work / "console.log"
        self.sock_path = self.work / "agent.sock"
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.accel = ""
        self._buf = b""
        self._next_id = 1
        self.timings: dict[str, float] = {}

    # -- boot ------------------------------------------------------------------------

    def argv(self, accel: str) -> list[str]:
        machine = "q35,kernel-irqchip=split" if self.iommu else "q35"
        nic = f"virtio-net-pci,netdev=n0,mac={GUEST_MAC},addr={GUEST_PCI.split(':')[2]}"
        if self.iommu:
            nic += ",iommu_platform=on,ats=on,disable-legacy=on"
        append = f"console=ttyS0 panic=-1 lc.repo={REPO}" + (" intel_iommu=on iommu=pt" if self.iommu else "")
        argv = ["qemu-system-x86_64", "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
                "-machine", machine, "-accel", accel, "-cpu", "max" if accel == "tcg" else "host",
                "-smp", str(self.cpus), "-m", str(self.memory_mb),
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd), "-append", append,
                "-serial", f"file:{self.console}",
                "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
                "-device", "virtio-serial-pci", "-chardev", f"socket,id=ctl,path={self.sock_path},server=on,wait=off",
                "-device", "virtconsole,chardev=ctl",
                "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no", "-device", nic]
        if self.iommu:
            argv[argv.index("-device"):argv.index("-device")] = ["-device", "intel-iommu,intremap=on,caching-mode=on"]
        return argv

    def start(self) -> "Guest":
        t0 = time.monotonic()
        for accel, timeout in (("kvm", KVM_TIMEOUT_S), ("tcg", BOOT_TIMEOUT_S)):
            if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
                continue
            if self._boot(accel, timeout):
                self.accel = accel
                break
            log(f"{accel}: the guest did not come up ({self._why()}); " + ("trying TCG" if accel == "kvm" else ""))
            self._stop_qemu()
        else:
            raise GuestError(f"the guest did not boot: {self._why()}\n{self.console_tail()}")
        self.timings["boot"] = time.monotonic() - t0
        log(f"guest up with {self.accel.upper()} in {self.timings['boot']:.1f} s ({self.image.release}, "
            f"{self.cpus} vCPUs, {self.memory_mb} MiB{', vIOMMU' if self.iommu else ''})")
        return self

    def _boot(self, accel: str, timeout: float) -> bool:
        self.console.write_text("")
        self.sock_path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *self.argv(accel)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.sock is None and self.sock_path.exists():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(self.sock_path))
                    self.sock = s
                except OSError:
                    s.close()
            if self.sock is not None:
                msg = self._read(max(0.1, min(1.0, deadline - time.monotonic())))
                if msg and msg.get("ready"):
                    return True
            else:
                time.sleep(0.1)
        return False

    def _why(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
            return f"QEMU exited {self.proc.returncode}: {out.strip()[-500:]}"
        return "no answer from the agent in time"

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return "--- guest console (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- the agent ---------------------------------------------------------------------

    def _read(self, timeout: float) -> dict | None:
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                return None
            if not chunk:
                raise GuestError(f"the agent closed its channel\n{self.console_tail()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, op: str, wait_s: float, **args) -> dict:
        """Send one request; its answer within wait_s (+10 s for the channel)."""
        rid = self._next_id
        self._next_id += 1
        self.sock.sendall((json.dumps({"id": rid, "op": op, **args}) + "\n").encode())
        deadline = time.monotonic() + wait_s + 10
        while time.monotonic() < deadline:
            msg = self._read(max(0.1, deadline - time.monotonic()))
            if msg is None:
                continue
            if msg.get("id") == rid:
                if "error" in msg:
                    raise GuestError(f"{op} {args.get('argv', '')}: {msg['error']}\n{self.console_tail()}")
                return msg
        raise GuestError(f"{op} {args.get('argv', '')}: no answer in {wait_s:.0f} s\n{self.console_tail()}")

    def run(self, argv: list[str], *, timeout: float = 120, check: bool = True, cwd: str | None = None,
            env: dict | None = None, input_text: str | None = None) -> dict:
        """Run argv in the guest to the end (stdin: input_text): {"rc", "stdout", "stderr"}."""
        # the host waits longer than the guest's own timeout, so a late answer (or the guest's
        # timeout report) is read here and never mistaken for the next request's
        r = self.request("run", timeout + AGENT_SLACK_S, argv=[str(a) for a in argv], timeout=timeout, cwd=cwd,
                         env=env or {}, input=input_text)
        if check and r["rc"] != 0:
            raise GuestError(f"in the guest: {' '.join(map(str, argv))} exited {r['rc']}:\n{r['stdout'][-3000:]}\n"
                             f"{r['stderr'][-3000:]}\n{self.console_tail()}")
        return r

    def read_text(self, path: str, chunk: int = 32 << 10) -> str:
        """A text file of the guest, in replies of `chunk` bytes: one reply of
        hundreds of KiB over the virtio console sometimes never arrived whole
        (two CI runs of four stalled on the test VM's store dump)."""
        size = int(self.run(["stat", "-c", "%s", path])["stdout"])
        parts = []
        for block in range(0, size, chunk):
            parts.append(self.run(["dd", f"if={path}", f"bs={chunk}", f"skip={block // chunk}", "count=1",
                                   "status=none"])["stdout"])
        return "".join(parts)

    def spawn(self, argv: list[str], log_path: str, *, cwd: str | None = None, env: dict | None = None) -> int:
        return self.request("spawn", 30, argv=[str(a) for a in argv], log=log_path, cwd=cwd, env=env or {})["pid"]

    def wait(self, pid: int, timeout: float) -> dict:
        return self.request("wait", timeout, pid=pid, timeout=timeout)

    def signal(self, pid: int, sig: int) -> None:
        self.request("signal", 30, pid=pid, sig=sig)

    # -- stop ----------------------------------------------------------------------------

    def _stop_qemu(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._buf = b""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.sock is not None:
            try:
                self.request("poweroff", 10)
                self.proc.wait(15)
            except (GuestError, OSError, subprocess.TimeoutExpired):
                pass
        self._stop_qemu()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> "Guest":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":      # a quick look: build, boot, print what the guest sees, power off
    image = build_image()
    ns, tap = f"lcvm{os.getpid()}", f"lcvmtap{os.getpid() % 10000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with Guest(image, netns=ns, tap=tap) as g:
            for cmd in (["uname", "-r"], [sys.executable, "-m", "appliance.cli.main", "ports", "list"]):
                print(g.run(cmd, cwd=str(REPO))["stdout"])
    finally:
        subprocess.run(["ip", "netns", "del", ns])
