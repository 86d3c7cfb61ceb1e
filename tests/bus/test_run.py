"""`appliance run`'s supervision with a stand-in rt-engine (tests/bus/fake_rt_engine.py): start
order and readiness, logs under state/run/, a clean stop (engine first, then sim), the summary,
failures with the log tail, and no process left behind. Bounded in time."""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bus.fake_engine import FakeEngine
from tests.conftest import ROOT, Run
from tests.ports import free_ports

FAKE = Path(__file__).with_name("fake_rt_engine.py")


@pytest.fixture(autouse=True)
def fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wrapper = tmp_path / "rt-engine"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("RT_ENGINE_BIN", str(wrapper))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("FAKE_ENGINE_FAIL", raising=False)
    return wrapper


@pytest.fixture
def ports() -> list[str]:
    events, control, ws, rest = free_ports(4)
    return [
        f"deployment.engines.paper_1.bus.events=tcp://127.0.0.1:{events}",
        f"deployment.engines.paper_1.bus.control=tcp://127.0.0.1:{control}",
        f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
        f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
    ]


def pids(run: Run) -> dict[str, int]:
    found = re.findall(r"started (sim sim_binance|engine paper_1) \(pid (\d+)\)", run.stdout)
    return {name.split()[0]: int(pid) for name, pid in found}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_run_starts_monitors_stops_and_summarises(
    project: Path, ports: list[str], cli: Callable[..., Run]
) -> None:
    start = time.monotonic()
    run = cli("run", *ports, "--duration", "2", root=project)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert time.monotonic() - start < 30
    started = pids(run)
    assert set(started) == {"sim", "engine"}, run.stdout
    assert all(gone(p) for p in started.values())
    out = run.stdout
    assert "compiled: build/paper_local/local.manifest.json" in out
    # the latency table says which build measured it (the fake names a debug build)
    assert "latency (debug build)" in out, out
    for expected in ("paper_local / paper_1", "10,000.5", "0.75", "tick_to_order", "4.2 µs"):
        assert expected in out, f"{expected!r} not in:\n{out}"
    assert re.search(r"fills\s+│ 1 \(engine\), 1 on the bus", out), out
    assert "final risk state    │ ACTIVE" in out, out
    # the engine's cancel on SIGTERM and its last heartbeat were read before the summary
    assert "open orders at exit │ 0 (engine), 0 seen on the bus" in out, out
    assert re.search(r"bus\s+│ \d+ events, 0 lost in 0 gaps", out), out
    logs = project / "state" / "run" / "paper_local"
    engine_log = (logs / "engine_paper_1.log").read_text()
    sim_log = (logs / "sim_sim_binance.log").read_text()
    assert "tick_to_order" in engine_log  # the engine printed its table at a clean stop
    engine_stop = int(re.findall(r"engine stopped at (\d+)", engine_log)[0])
    sim_stop = int(re.findall(r"stopped at (\d+)", sim_log)[0])
    assert engine_stop < sim_stop, "the engine must stop before the venue it trades on"
    # a second run reuses the manifest it compiled
    again = cli("run", *ports, "--duration", "0.3", root=project)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "up to date: build/paper_local/local.manifest.json" in again.stdout


def test_engine_refusing_to_start(
    project: Path, ports: list[str], cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "start")
    run = cli("run", *ports, "--duration", "5", root=project)
    assert run.exit_code == 1
    assert "error: engine_paper_1 exited with code 2 at start" in run.stderr
    assert "last lines of state/run/paper_local/engine_paper_1.log" in run.stderr
    assert "manifest refused: risk.max_daily_loss" in run.stderr
    assert "Traceback" not in run.stderr
    assert all(gone(p) for p in pids(run).values())


def test_engine_dying_mid_run(
    project: Path, ports: list[str], cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "midrun")
    run = cli("run", *ports, "--duration", "20", root=project)
    assert run.exit_code == 1
    assert "error: engine_paper_1 exited with code 4 during the run" in run.stderr
    assert "panic: feed thread died" in run.stderr
    assert all(gone(p) for p in pids(run).values())


def test_engine_ignoring_sigterm_is_killed(
    project: Path, ports: list[str], cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "ignore_term")
    run = cli("run", *ports, "--duration", "0.5", "--stop-timeout", "1", root=project)
    assert run.exit_code == 1
    assert "did not stop cleanly on SIGTERM (SIGKILL after 1 s)" in run.stderr
    assert all(gone(p) for p in pids(run).values())


def test_sim_failing_at_start(
    project: Path, ports: list[str], cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "sim_start")
    run = cli("run", *ports, root=project)
    assert run.exit_code == 1
    assert "error: sim_sim_binance exited with code 3 at start" in run.stderr
    assert "cannot open capture for sim_binance" in run.stderr
    assert "started engine" not in run.stdout


def test_refuses_to_start_beside_a_running_engine(project: Path, cli: Callable[..., Run]) -> None:
    with FakeEngine(heartbeat_s=None) as other:
        run = cli("run", f"deployment.engines.paper_1.bus.control={other.control}", root=project)
    assert run.exit_code == 1
    assert f"error: an engine already answers at {other.control} (paper_1, pid 4242)" in run.stderr
    assert "started" not in run.stdout


def test_remote_and_live_deployments(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("run", "deployment=prod_example", root=project)
    assert run.exit_code == 2
    assert run.stderr.startswith("error: no engine of prod_example runs on this machine")
    run = cli("run", "deployment=prod_example", "--engine", "spot_a", root=project)
    assert run.exit_code == 2
    assert "prod_example is a live deployment" in run.stderr
    run = cli("run", "deployment=prod_example", "--engine", "nope", root=project)
    assert run.exit_code == 2
    assert run.stderr == "error: no engine 'nope' in prod_example (engines: spot_a, usdm_b)\n"


def test_missing_binary(
    project: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RT_ENGINE_BIN", str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    run = cli("run", root=project)
    assert run.exit_code == 1
    assert run.stderr.startswith("error: rt-engine not found")


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_ends_the_run_cleanly(
    project: Path, ports: list[str], ctrl_c: Callable[..., Run]
) -> None:
    log = project / "state" / "run" / "paper_local" / "engine_paper_1.log"
    run = ctrl_c(
        "run",
        *ports,
        "--duration",
        "0",  # 0: until Ctrl-C
        "--root",
        str(project),
        # The status `run` asks for right before its watch loop; Ctrl-C during start-up
        # aborts instead (exit 130, tested apart).
        ready=lambda _out: log.is_file() and "control: status answered" in log.read_text(),
    )
    assert run.exit_code == 0, run.stderr
    assert "paper_local / paper_1" in run.stdout  # the summary after a clean stop
    assert "tick_to_order" in log.read_text()
    assert all(gone(p) for p in pids(run).values())


def test_ctrl_c_during_start_up_aborts_and_stops_what_started(
    project: Path, ports: list[str], ctrl_c: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine takes 5 s to come up: the Ctrl-C lands while `run` waits for it.
    monkeypatch.setenv("FAKE_ENGINE_START_DELAY", "5")
    run = ctrl_c(
        "run",
        *ports,
        "--duration",
        "0",
        "--root",
        str(project),
        ready=lambda out: "started engine" in out,
    )
    assert run.exit_code == 130, run.stderr
    assert "interrupted: stopping the engine and simulators" in run.stderr
    assert "Traceback" not in run.stderr
    assert pids(run) and all(gone(p) for p in pids(run).values())


def test_no_orphans_when_appliance_is_killed(
    project: Path, ports: list[str], fake_binary: Path
) -> None:
    """SIGKILL cannot be caught: the children die with their parent (PR_SET_PDEATHSIG)."""
    import signal
    import subprocess

    env = os.environ | {"PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    appliance = str(Path(sys.executable).with_name("appliance"))
    proc = subprocess.Popen(
        [appliance, "run", *ports, "--duration", "60", "--root", str(project)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen = ""
    try:
        end = time.monotonic() + 30
        while "started engine" not in seen and time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        children = {
            name.split()[0]: int(pid)
            for name, pid in re.findall(r"started (sim \S+|engine \S+) \(pid (\d+)\)", seen)
        }
        assert set(children) == {"sim", "engine"}, seen
        assert not any(gone(p) for p in children.values())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    assert _wait_for(lambda: all(gone(p) for p in children.values()), 10), children
