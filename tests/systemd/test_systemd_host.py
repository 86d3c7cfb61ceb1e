"""The production path, run for real: systemd as PID 1 (a container booted by
tests/systemd/nspawn.sh, `make test-systemd`), `appliance apply` deploying to "/" with
service_manager systemd and a service account, the units' sandboxing applied by systemd.

Shows: the engine and its sim venue run and trade under the hardened units (seccomp filter
in force, no device nodes, a private /proc view, no W+X memory, StateDirectory and
LogsDirectory made for the service account); the soak passes; a release whose health check
fails is rolled back by systemd restarts; `appliance status` reads systemd's restarts;
`appliance stop` stops the services. Skipped anywhere systemd is not PID 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import held_port, scratch_project
from tests.ports import free_ports

pytestmark = pytest.mark.skipif(
    not (Path("/proc/1/comm").is_file() and Path("/proc/1/comm").read_text().strip() == "systemd")
    or not os.environ.get("PYRT_SYSTEMD"),
    reason="needs systemd as PID 1 (run `make test-systemd`: tests/systemd/nspawn.sh)",
)

APPLIANCE = Path(sys.executable).parent / "appliance"
ENGINE_BIN = Path(os.environ.get("RT_ENGINE_BIN", "target/debug/rt-engine"))
UNIT = "py-rt-e1"
SIM_UNIT = "py-rt-e1-sim-sim_h1"
TIMEOUT = 600


@dataclass
class Host:
    project: Path
    env: dict[str, str]
    ports: dict[str, int]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(APPLIANCE), *args, "deployment=sysd", "--root", str(self.project)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def apply(self, *overrides: str, soak: float = 2) -> tuple[int, dict[str, Any], str]:
        run = self.cli("apply", *overrides, "--yes", "--format", "json", "--soak", str(soak))
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            out = {}
        return run.returncode, out, run.stderr + run.stdout


def show(unit: str, *props: str) -> dict[str, str]:
    run = subprocess.run(
        ["systemctl", "show", f"{unit}.service", *(f"--property={p}" for p in props)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _conf(project: Path, ports: dict[str, int]) -> None:
    # The engine as the shipped paper deployment's (every setting it has), on its own ports.
    shipped = yaml.safe_load((project / "conf/deployment/paper_local.yaml").read_text())
    like = next(iter(shipped["deployment"]["engines"].values()))
    local = yaml.safe_load((project / "conf/host/local.yaml").read_text())
    local["threads"]["feeds"] = {"sim_h1": None}
    (project / "conf/host/sysd_h1.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    target = yaml.safe_load((project / "conf/target/local.yaml").read_text())
    target |= {"root": "/", "service_manager": "systemd", "service_user": "pyrt"}
    (project / "conf/target/systemd_root.yaml").write_text(yaml.safe_dump(target))
    doc = {
        "defaults": [
            {"/host@hosts.h1": "sysd_h1"},
            {"/exchange@exchanges.sim_h1": "sim_binance_spot"},
            {"/strategy@strategies.mm_h1": "mm_btcusdt_sim"},
            {"/target@targets.h1": "systemd_root"},
            {"/risk": "conservative"},
            "_self_",
        ],
        "exchanges": {
            "sim_h1": {
                "endpoints": {
                    "ws": f"ws://127.0.0.1:{ports['ws']}",
                    "rest": f"http://127.0.0.1:{ports['rest']}",
                }
            }
        },
        "strategies": {"mm_h1": {"exchange": "sim_h1"}},
        "deployment": {
            "mode": "paper",
            "engines": {
                "e1": like
                | {
                    "host": "h1",
                    "exchanges": ["sim_h1"],
                    "strategies": ["mm_h1"],
                    "bus": {
                        "events": f"tcp://127.0.0.1:{ports['events']}",
                        "control": f"tcp://127.0.0.1:{ports['control']}",
                        "hwm": 100000,
                    },
                    "journal": {
                        "dir": "state/journal/e1",
                        "fsync": "interval",
                        "fsync_interval_ms": 50,
                    },
                    "metrics": like["metrics"] | {"listen": f"127.0.0.1:{ports['metrics']}"},
                    "flight_recorder": None,
                }
            },
        },
    }
    (project / "conf/deployment/sysd.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(doc, sort_keys=False)
    )


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    project = scratch_project(tmp_path_factory.mktemp("sysd") / "project")
    names = ("ws", "rest", "events", "control", "metrics")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    _conf(project, ports)
    home = tmp_path_factory.mktemp("home")
    engine = tmp_path_factory.mktemp("engine") / "rt-engine"
    shutil.copy2(ENGINE_BIN, engine)
    env = os.environ | {"HOME": str(home), "RT_ENGINE_BIN": str(engine), "NO_COLOR": "1"}
    yield Host(project, env, ports)
    for unit in (UNIT, SIM_UNIT):
        subprocess.run(["systemctl", "stop", f"{unit}.service"], timeout=60, check=False)


def test_apply_under_systemd_runs_the_engine_in_its_sandbox(host: Host) -> None:
    rc, out, err = host.apply()
    assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
    assert out["hosts"]["h1"]["status"] == "changed"
    props = show(
        UNIT,
        "ActiveState",
        "MainPID",
        "User",
        "PrivateDevices",
        "ProtectProc",
        "MemoryDenyWriteExecute",
        "StateDirectory",
        "LogsDirectory",
        "SystemCallFilter",
        "NRestarts",
    )
    assert props["ActiveState"] == "active" and props["NRestarts"] == "0", props
    assert props["User"] == "pyrt"
    assert props["PrivateDevices"] == "yes" and props["ProtectProc"] == "invisible"
    assert props["MemoryDenyWriteExecute"] == "yes"
    assert props["StateDirectory"] == "py-rt" and props["LogsDirectory"] == "py-rt"
    assert "sched_setaffinity" in props["SystemCallFilter"]
    assert "reboot" not in props["SystemCallFilter"].split()
    pid = int(props["MainPID"])
    status = proc_status(pid)
    # The kernel enforces it: seccomp in filter mode, no new privileges, the service account.
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", status
    assert Path(f"/proc/{pid}/exe").resolve().name == "rt-engine"
    assert Path("/var/lib/py-rt").stat().st_uid == Path("/var/log/py-rt").stat().st_uid
    # The engine inside it trades: ACTIVE, its feed LIVE, orders resting.
    endpoint = f"tcp://127.0.0.1:{host.ports['control']}"
    gate = ["status", "--expect-state", "active", "--wait-ms", "10000"]
    ctl = subprocess.run(
        [str(ENGINE_BIN), "ctl", "--endpoint", endpoint, *gate],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ctl.returncode == 0, ctl.stdout + ctl.stderr
    engine = json.loads(ctl.stdout.splitlines()[-1])["status"]
    assert [f["state"] for f in engine["feeds"]] == ["LIVE"], engine
    assert show(SIM_UNIT, "ActiveState")["ActiveState"] == "active"


def test_status_reads_systemd(host: Host) -> None:
    run = host.cli("status", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    (row,) = json.loads(run.stdout)["hosts"]
    assert row["engine_status"]["risk_state"] == "active"
    assert {s["unit"]: (s["state"], s["restarts"]) for s in row["services"]} == {
        UNIT: ("running", 0),
        SIM_UNIT: ("running", 0),
    }


def test_a_failing_release_is_rolled_back_under_systemd(host: Host) -> None:
    before = Path("/opt/py-rt/current").resolve().name
    with held_port() as port:
        rc, out, err = host.apply(
            "risk.max_open_orders=8", f"deployment.engines.e1.bus.control=tcp://127.0.0.1:{port}"
        )
    assert rc == 1, err
    assert out["hosts"]["h1"]["status"] == "rolled back", out["hosts"]
    assert f"rolled back to {before} (healthy)" in out["hosts"]["h1"]["failure"]
    assert Path("/opt/py-rt/current").resolve().name == before
    assert show(UNIT, "ActiveState")["ActiveState"] == "active"


def test_stop_under_systemd(host: Host) -> None:
    run = host.cli("stop", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert show(UNIT, "ActiveState")["ActiveState"] == "inactive"
    assert show(SIM_UNIT, "ActiveState")["ActiveState"] == "inactive"
