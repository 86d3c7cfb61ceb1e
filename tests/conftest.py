"""Shared fixtures: a scratch copy of the project, the CLI runner and output snapshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from appliance.cli import app

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).parent / "snapshots"
CONTRACT = Path(__file__).parent / "contract"


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def snapshot_text(self) -> str:
        return f"exit: {self.exit_code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch project root: a copy of conf/ (tests may edit it) and the bundled data."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "conf", root / "conf")
    (root / "data").symlink_to(ROOT / "data")
    return root


@pytest.fixture
def cli() -> Callable[..., Run]:
    runner = CliRunner()

    def run(*args: str, root: Path | None = None) -> Run:
        argv = list(args) + (["--root", str(root)] if root is not None else [])
        result = runner.invoke(app, argv, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def snapshot() -> Callable[[str, str], None]:
    """Compare text with tests/snapshots/<name>.txt; UPDATE_SNAPSHOTS=1 rewrites the file."""

    def check(name: str, text: str) -> None:
        path = SNAPSHOTS / f"{name}.txt"
        if os.environ.get("UPDATE_SNAPSHOTS") == "1":
            path.write_text(text)
            return
        assert path.is_file(), f"missing snapshot {path}; run with UPDATE_SNAPSHOTS=1 to create"
        assert text == path.read_text(), f"output differs from snapshot {path.name}"

    return check
