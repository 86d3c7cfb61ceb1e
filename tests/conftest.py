"""Shared fixtures: a scratch copy of the project, the CLI runner and output snapshots."""

from __future__ import annotations

import difflib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
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
def ctrl_c(tmp_path: Path) -> Callable[..., Run]:
    """Runs `appliance ARGS` as a process, presses Ctrl-C (a real SIGINT, as a terminal sends)
    once `ready(stdout so far)` holds, and returns how it ended. Bounded: the process is killed
    if it has not ended `timeout` s after the press."""

    def run(*args: str, ready: Callable[[str], bool], timeout: float = 30) -> Run:
        out_path, err_path = tmp_path / "ctrl_c.out", tmp_path / "ctrl_c.err"
        env = os.environ | {"PYTHONUNBUFFERED": "1", "COLUMNS": "100", "LINES": "60"}
        appliance = str(Path(sys.executable).with_name("appliance"))
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # SIGINT back to its default in the child: a shell that starts a job in the
            # background (a CI runner, `cmd &`) makes it ignored, and Python then installs no
            # Ctrl-C handler at all.
            proc = subprocess.Popen(
                [appliance, *args],
                stdout=out,
                stderr=err,
                env=env,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        try:
            end = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < end:
                if ready(out_path.read_text(errors="replace")):
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"ended before Ctrl-C:\n{err_path.read_text()}"
            assert ready(out_path.read_text(errors="replace")), "never ready for Ctrl-C"
            time.sleep(0.3)  # from the readiness sign into the loop that waits for Ctrl-C
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        return Run(code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))

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
        expected = path.read_text()
        if text != expected:
            diff = difflib.unified_diff(
                expected.splitlines(), text.splitlines(), "snapshot", "now", lineterm="", n=1
            )
            shown = "\n".join(itertools.islice(diff, 40))
            raise AssertionError(
                f"output differs from snapshot {path.name} (first lines of the diff below). If "
                "the change is intended, rewrite it with UPDATE_SNAPSHOTS=1 and the same pytest "
                f"command, and say in the commit why it changed.\n{shown}"
            )

    return check
