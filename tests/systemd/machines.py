"""Containers that stand in for a fleet's hosts: each a copy of the cached Debian root
(tests/systemd/rootfs.sh) booted by systemd-nspawn with systemd as PID 1 and sshd on its own
loopback port (the containers share this machine's network namespace), reached by the
controller over SSH with a key pair made for the session and the containers' own host keys
pinned.

A container that reboots (`systemctl reboot`, Ansible's reboot module) makes systemd-nspawn
exit with 133; its boot loop starts it again on the same root, as systemd-nspawn@.service
does with RestartForceExitStatus=133, so a reboot is a real one: a new PID 1, a new boot id.
This machine has no systemd of its own (no system bus, no machined): --register=no
--keep-unit, as tests/systemd/nspawn.sh.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REBOOT_EXIT = 133
BOOT_TIMEOUT = 180.0


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Machine:
    """One container: its root (a copy), its sshd port, the boot loop's record of exits."""

    name: str
    root: Path
    ssh_port: int
    log: Path
    exits: list[int] = field(default_factory=list)
    boots: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _thread: threading.Thread | None = None
    _stopping: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def make(cls, name: str, base: Path, under: Path, ssh_port: int, public_key: str) -> Machine:
        """A copy of `base` with sshd on 127.0.0.1:`ssh_port`, its own host keys, root's
        authorized key."""
        left = sorted(base.glob("etc/systemd/system/py-rt-*")) + sorted(base.glob("opt/py-rt"))
        if left:
            raise RuntimeError(f"{base} is not a clean root (a deployment was left in it: {left})")
        root = under / name
        if root.exists():
            shutil.rmtree(root)
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        subprocess.run(["ssh-keygen", "-A", "-f", str(root)], check=True, capture_output=True)
        (root / "etc/ssh/sshd_config.d/py-rt-test.conf").write_text(
            f"Port {ssh_port}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
        )
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(public_key)
        (ssh / "authorized_keys").chmod(0o600)
        (root / "etc/hostname").write_text(name + "\n")
        return cls(name, root, ssh_port, under / f"{name}.log")

    def host_key_line(self) -> str:
        """The known_hosts line for this container's ed25519 host key."""
        key = (self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        return f"[127.0.0.1]:{self.ssh_port} {key[0]} {key[1]}\n"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"nspawn-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        with self.log.open("ab") as log:
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    self.boots += 1
                    self._proc = subprocess.Popen(
                        [
                            "systemd-nspawn",
                            "-D",
                            str(self.root),
                            "-b",
                            "--register=no",
                            "--keep-unit",
                            "--console=passive",
                            "-M",
                            self.name,
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                rc = self._proc.wait()
                self.exits.append(rc)
                if rc != REBOOT_EXIT:
                    return

    def leader(self) -> int | None:
        """The container's PID 1 as this machine sees it (the nspawn child running systemd)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None
        run = _run(["pgrep", "-P", str(proc.pid)])
        for pid in run.stdout.split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            except OSError:
                continue
        return None

    def sh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `command` inside the container (nsenter into PID 1's namespaces)."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError(f"{self.name} is not running (exits {self.exits})")
        return _run(["nsenter", "-t", str(leader), "-a", "/bin/sh", "-c", command], timeout)

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait until systemd has finished booting and sshd accepts connections; the boot id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leader() is not None:
                state = self.sh("systemctl is-system-running --wait", timeout=timeout).stdout
                if state.strip() in ("running", "degraded") and self._ssh_open():
                    return self.boot_id()
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise TimeoutError(f"{self.name} did not boot in {timeout} s: {tail}")

    def _ssh_open(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            try:
                s.connect(("127.0.0.1", self.ssh_port))
                return s.recv(4).startswith(b"SSH-")
            except OSError:
                return False

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with_leader = self.leader()
            if with_leader is not None:
                _run(["nsenter", "-t", str(with_leader), "-a", "systemctl", "poweroff"])
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.terminate()  # systemd-nspawn asks the container to power off
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=30)
