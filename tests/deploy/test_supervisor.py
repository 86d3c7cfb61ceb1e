"""The local supervisor: runs rendered units where systemd is not PID 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.deploy import supervisor
from appliance.deploy.supervisor import Layout, UnitError, parse_unit


def _unit(root: Path, name: str, body: str) -> Layout:
    layout = Layout.under(root)
    layout.units.mkdir(parents=True, exist_ok=True)
    layout.unit_file(name).write_text(body)
    return layout


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[Layout]:
    out = tmp_path / "out"
    out.mkdir()
    layout = _unit(
        tmp_path,
        "demo",
        f"""[Unit]
StartLimitIntervalSec=30
StartLimitBurst=3

[Service]
ExecStart={sys.executable} -c "import json, os, time; \\
 json.dump({{'cpus': sorted(os.sched_getaffinity(0)), 'cwd': os.getcwd(), \\
 'foo': os.environ.get('FOO')}}, open('report.json', 'w')); time.sleep(600)"
WorkingDirectory={out}
Environment=FOO=bar
CPUAffinity=0
LimitMEMLOCK=infinity
Restart=on-failure
RestartSec=0.2
TimeoutStopSec=5
""",
    )
    yield layout
    supervisor.stop(layout, "demo")


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_start_status_stop(layout: Layout) -> None:
    state = supervisor.start(layout, "demo")
    assert state["state"] == "running"
    main = state["main_pid"]
    assert isinstance(main, int) and Path(f"/proc/{main}").exists()
    report = layout.units.parents[2] / "out" / "report.json"
    _wait(report.is_file)
    seen = json.loads(report.read_text())
    # The unit's affinity, working directory and environment reach the main process.
    assert seen == {"cpus": [0], "cwd": str(report.parent), "foo": "bar"}
    rc, status = supervisor.status(layout, "demo")
    assert rc == 0 and status["main_pid"] == main
    assert supervisor.start(layout, "demo")["main_pid"] == main  # already running: no-op
    stopped = supervisor.stop(layout, "demo")
    assert stopped["state"] == "inactive"
    _wait(lambda: not Path(f"/proc/{main}").exists() or supervisor._zombie(main))
    assert supervisor.status(layout, "demo")[0] == supervisor.EXIT_NOT_RUNNING


def test_the_main_process_is_restarted_after_a_crash(layout: Layout) -> None:
    first = supervisor.start(layout, "demo")["main_pid"]
    os.kill(first, 9)

    def restarted() -> bool:
        rc, state = supervisor.status(layout, "demo")
        return rc == 0 and state["main_pid"] not in (None, first)

    _wait(restarted)
    assert supervisor.status(layout, "demo")[1]["restarts"] == 1


def test_a_unit_that_keeps_failing_hits_the_start_limit(tmp_path: Path) -> None:
    layout = _unit(
        tmp_path,
        "flaky",
        "[Unit]\nStartLimitIntervalSec=30\nStartLimitBurst=2\n[Service]\n"
        "ExecStart=/bin/sh -c 'sleep 0.3; exit 3'\nRestart=on-failure\nRestartSec=0.1\n",
    )
    supervisor.start(layout, "flaky")
    _wait(lambda: supervisor.status(layout, "flaky")[1].get("state") == "failed", 15)
    rc, state = supervisor.status(layout, "flaky")
    assert rc == supervisor.EXIT_NOT_RUNNING
    assert state["restarts"] == 2
    assert "start limit hit" in layout.log("flaky").read_text()


def test_a_unit_whose_binary_is_missing_does_not_start(tmp_path: Path) -> None:
    layout = _unit(
        tmp_path,
        "missing",
        "[Service]\nExecStart=/nonexistent/rt-engine run\nRestart=no\n",
    )
    with pytest.raises(UnitError, match="did not start"):
        supervisor.start(layout, "missing")
    assert "cannot execute /nonexistent/rt-engine" in layout.log("missing").read_text()


def test_a_stale_pidfile_is_not_trusted(layout: Layout) -> None:
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.pidfile("demo").write_text(f"{os.getpid()}\n")  # alive, but not a monitor
    assert supervisor.status(layout, "demo")[0] == supervisor.EXIT_NOT_RUNNING


def test_bad_units_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.service"
    path.write_text("[Service]\nExecStart=/bin/true\nCPUAffinity=abc\n")
    with pytest.raises(UnitError, match=r"bad.service: Service/CPUAffinity .*not a CPU list"):
        parse_unit(path)
    path.write_text("[Service]\nRestart=always\n")
    with pytest.raises(UnitError, match="no ExecStart"):
        parse_unit(path)


def test_command_line(layout: Layout) -> None:
    root = str(layout.units.parents[2])
    cmd = [sys.executable, supervisor.__file__, "--root", root]
    started = subprocess.run([*cmd, "start", "demo"], capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["state"] == "running"
    status = subprocess.run([*cmd, "status", "demo.service"], capture_output=True, text=True)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "running"
    subprocess.run([*cmd, "stop", "demo"], check=True, capture_output=True, timeout=30)
    status = subprocess.run([*cmd, "status", "demo"], capture_output=True, text=True)
    assert status.returncode == 3
    unknown = subprocess.run([*cmd, "status", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 4
