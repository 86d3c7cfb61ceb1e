"""Fixtures for the roll-out tests: a private HOME for Ansible, scratch projects, fake fleets."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENGINE_BIN = Path(os.environ.get("RT_ENGINE_BIN") or ROOT / "target" / "debug" / "rt-engine")


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """HOME and ANSIBLE_HOME in a temp dir, so no run writes into the real home directory."""
    home = tmp_path_factory.mktemp("ansible-home")
    saved = {k: os.environ.get(k) for k in ("HOME", "ANSIBLE_HOME", "ANSIBLE_LOCAL_TEMP")}
    env = {
        "HOME": str(home),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(home / ".ansible" / "tmp"),
    }
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def engine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of rt-engine for the session: a rebuild during the run must not turn into a new
    release between two applies that expect none. Its debug info is stripped where `strip`
    exists (the same code; a debug build is ~150 MB, ~11 MB without): every roll-out hashes it
    and copies it into each host's release, and every `ctl` call maps it."""
    target = tmp_path_factory.mktemp("engine") / "rt-engine"
    shutil.copy2(ENGINE_BIN, target)
    strip = shutil.which("strip")
    if strip is not None:
        subprocess.run([strip, "--strip-debug", str(target)], check=True, timeout=120)
    return target


def scratch_project(root: Path) -> Path:
    """A project root with a copy of conf/ (editable) and links to ansible/ and data/."""
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "conf", root / "conf")
    (root / "data").symlink_to(ROOT / "data")
    (root / "ansible").symlink_to(ROOT / "ansible")
    return root


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A loopback port another process would find taken (bound and listening) meanwhile: an
    engine told to use it for its control socket cannot start there."""
    squatter = socket.socket()
    try:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield squatter.getsockname()[1]
    finally:
        squatter.close()
