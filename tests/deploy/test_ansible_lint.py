"""ansible/ is ansible-lint clean (production profile) and every playbook parses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent


def _env(home: dict[str, str]) -> dict[str, str]:
    return (
        os.environ
        | home
        | {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
            "NO_COLOR": "1",
        }
    )


def test_ansible_lint_production_profile(ansible_env: dict[str, str]) -> None:
    run = subprocess.run(
        [str(BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
        cwd=ANSIBLE,
        env=_env(ansible_env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Profile 'production' was required, and it passed" in run.stderr + run.stdout


@pytest.mark.parametrize(
    "playbook", ["site.yml", "rollback.yml", "verify.yml", "state.yml", "stop.yml"]
)
def test_playbook_syntax(playbook: str, ansible_env: dict[str, str]) -> None:
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", playbook],
        cwd=ANSIBLE,
        env=_env(ansible_env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "playbook: " + playbook in run.stdout
