"""Child processes of `appliance run` and `appliance record`: start them with their output in
log files, wait until a sim venue listens, stop them in order, never leave one behind.

A child runs in its own session (a terminal's Ctrl-C reaches the appliance only, which stops
the children in order) and gets SIGTERM if the appliance dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit

from rich.console import Console

from appliance.bus.client import BusError

_PR_SET_PDEATHSIG = 1


_prctl: Any = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Children get SIGTERM if this process dies, even by SIGKILL: no orphans. (prctl is
    looked up in the parent: dlopen in a forked child of a threaded process may deadlock.)"""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def rel(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it (for messages)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes]
    handle: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as err:
            return f"(cannot read {self.log}: {err})"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self, grace: float, sig: int = signal.SIGTERM) -> int | None:
        """Signal, wait `grace` seconds, then SIGKILL. Returns the exit code (None: killed)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait()
                self.handle.close()
                return None
        self.handle.close()
        return self.proc.returncode


def engine_env(manifest: Mapping[str, Any]) -> dict[str, str] | None:
    """The environment of `rt-engine run` for `manifest`: when a strategy runs a model and
    ORT_DYLIB_PATH is not set, the variable points at the onnxruntime wheel's library (the one
    Python's onnxruntime runs); otherwise None (the child inherits ours)."""
    models = any("model" in s.get("params", {}) for s in manifest.get("strategies", {}).values())
    if not models or os.environ.get("ORT_DYLIB_PATH"):
        return None
    from appliance.engine import onnxruntime_library

    library = onnxruntime_library()
    return None if library is None else {**os.environ, "ORT_DYLIB_PATH": str(library)}


class Supervisor:
    """Starts processes with their output in log files and never leaves one behind."""

    def __init__(self, cwd: Path, log_dir: Path) -> None:
        self.cwd, self.log_dir = cwd, log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        global _prctl
        if _prctl is None and sys.platform == "linux":
            with contextlib.suppress(OSError, AttributeError):
                _prctl = ctypes.CDLL(None, use_errno=True).prctl
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        handle = log.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError:
            handle.close()
            raise
        child = Child(name, argv, log, proc, handle)
        self.children.append(child)
        return child

    def dead(self, besides: Child | None = None) -> Child | None:
        """The first child that exited, `besides` not counted."""
        return next(
            (c for c in self.children if c is not besides and c.proc.poll() is not None), None
        )

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM to whatever still runs (newest first), SIGKILL after `grace` seconds."""
        for child in reversed(self.children):
            child.stop(grace)

    def dead_message(
        self, project: Path, phase: str = "during the run", besides: Child | None = None
    ) -> str | None:
        """`error: ...` with the log tail of a child that exited (`besides` not counted: a
        child expected to end by itself), or None."""
        child = self.dead(besides)
        if child is None:
            return None
        return (
            f"error: {child.name} exited with code {child.proc.returncode} {phase}; "
            f"last lines of {rel(child.log, project)}:\n{child.tail()}"
        )


class StartupFailed(Exception):
    pass


class Terminated(Exception):
    pass


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM to the appliance unwinds like Ctrl-C (raising `Terminated`), so the children
    are stopped in order."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def port_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise BusError(f"no host:port in {url}")
    return parts.hostname, parts.port


def listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def busy_sim_endpoint(sims: Mapping[str, Any]) -> str | None:
    """A message naming a sim venue's endpoint something already listens on (a leftover would
    take the port), or None when all are free."""
    for name, ex in sims.items():
        for url in (ex["endpoints"]["ws"], ex["endpoints"]["rest"]):
            host, port = port_of(url)
            if listening(host, port):
                return f"{url} (sim venue {name}) is already in use: stop what holds it"
    return None


def wait_ready(child: Child, ports: list[tuple[str, int]], timeout: float, project: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if child.proc.poll() is not None:
            raise StartupFailed(
                f"{child.name} exited with code {child.proc.returncode} at start; "
                f"last lines of {rel(child.log, project)}:\n{child.tail()}"
            )
        if all(listening(h, p) for h, p in ports):
            return
        time.sleep(0.05)
    raise StartupFailed(
        f"{child.name} did not listen on "
        f"{', '.join(f'{h}:{p}' for h, p in ports)} within {timeout:g} s; "
        f"last lines of {rel(child.log, project)}:\n{child.tail()}"
    )


def start_sims(
    sup: Supervisor,
    binary: Path,
    manifest_path: Path,
    sims: Mapping[str, Any],
    speed: str | None,
    timeout: float,
    project: Path,
    console: Console,
) -> None:
    """`rt-engine sim` for each sim exchange (name -> manifest exchange), each waited for
    until its WebSocket and REST ports listen (`StartupFailed` otherwise)."""
    for name, ex in sims.items():
        argv = [str(binary), "sim", "--manifest", str(manifest_path), "--exchange", name]
        if speed is not None:
            argv += ["--speed", speed]
        child = sup.start(f"sim_{name}", argv)
        console.print(f"started sim {name} (pid {child.proc.pid})", markup=False)
        wait_ready(
            child,
            [port_of(ex["endpoints"]["ws"]), port_of(ex["endpoints"]["rest"])],
            timeout,
            project,
        )
