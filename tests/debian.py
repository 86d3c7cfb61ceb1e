"""Debian packages a test needs (a real PostgreSQL, a real Prometheus): installed by the test
itself when it runs as root on a machine without them, as the repository's rule for servers
says. A failure fails the test with apt's own words: never a silent skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

APT_TIMEOUT_S = 900


def install(*packages: str) -> None:
    """`apt-get update` then `apt-get install` of `packages` (root only)."""
    if os.geteuid() != 0:
        pytest.fail(
            f"Debian's {', '.join(packages)} not installed and this test is not root: "
            f"install {' '.join(packages)}"
        )
    env = dict(os.environ) | {"DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"cannot install {', '.join(packages)} ({' '.join(cmd)}): {exc}")
        if done.returncode != 0:
            pytest.fail(
                f"cannot install {', '.join(packages)} ({' '.join(cmd)}): {done.stderr[-2000:]}"
            )


def tool(name: str, package: str) -> str:
    """The path of the program `name`, installing Debian's `package` first when it is missing."""
    found = shutil.which(name)
    if found is None:
        install(package)
        found = shutil.which(name)
    assert found, f"the `{package}` package is installed but `{name}` is not on PATH"
    return found
