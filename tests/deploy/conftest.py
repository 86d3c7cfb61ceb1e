"""Fixtures for the roll-out tests: a private HOME for Ansible, scratch projects, fake fleets."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def write_fleet_conf(
    project: Path,
    ports: Mapping[str, Mapping[str, int]],
    hosts: Sequence[str],
    *,
    deployment: str,
    host_prefix: str,
    target: str,
    target_body: Callable[[str, Mapping[str, int]], dict[str, Any]],
    engine_base: Mapping[str, Any],
) -> None:
    """conf/deployment/<deployment>.yaml: one paper engine per host, each with its own sim
    venue, strategy and ports, on conf/host/<host_prefix>_<host>.yaml (the local host's spec)
    and target `target` (with `target_body(host, ports)` for each host). Each engine is
    `engine_base` with its host, venue, bus, journal and metrics address set."""
    local = yaml.safe_load((project / "conf/host/local.yaml").read_text())
    defaults: list[Any] = []
    body: dict[str, Any] = {"exchanges": {}, "strategies": {}, "targets": {}}
    engines = {}
    for i, host in enumerate(hosts, 1):
        spec = json.loads(json.dumps(local))
        spec["threads"]["feeds"] = {f"sim_{host}": None}
        # The engines' hot threads spin: keep all three on CPU 0 so Ansible has the other.
        spec["cpu"]["housekeeping"] = [0]
        (project / f"conf/host/{host_prefix}_{host}.yaml").write_text(
            "# yaml-language-server: $schema=../../schemas/host.schema.json\n"
            + yaml.safe_dump(spec, sort_keys=False)
        )
        p = ports[host]
        defaults += [
            {f"/host@hosts.{host}": f"{host_prefix}_{host}"},
            {f"/exchange@exchanges.sim_{host}": "sim_binance_spot"},
            {f"/strategy@strategies.mm_{host}": "mm_btcusdt_sim"},
            {f"/target@targets.{host}": target},
        ]
        body["exchanges"][f"sim_{host}"] = {
            "endpoints": {
                "ws": f"ws://127.0.0.1:{p['ws']}",
                "rest": f"http://127.0.0.1:{p['rest']}",
            }
        }
        body["strategies"][f"mm_{host}"] = {"exchange": f"sim_{host}"}
        body["targets"][host] = target_body(host, p)
        engines[f"e{i}"] = dict(engine_base) | {
            "host": host,
            "exchanges": [f"sim_{host}"],
            "strategies": [f"mm_{host}"],
            "bus": {
                "events": f"tcp://127.0.0.1:{p['events']}",
                "control": f"tcp://127.0.0.1:{p['control']}",
                "hwm": 100000,
            },
            "journal": {"dir": f"state/journal/e{i}", "fsync": "interval", "fsync_interval_ms": 50},
            # Three engines on one machine: a metrics port each (the hosts publish scrape targets).
            "metrics": engine_base.get("metrics", {})
            | {"listen": f"127.0.0.1:{p['metrics']}", "tick_to_order_p99_alert_us": 1000},
            "flight_recorder": None,
        }
    defaults += [{"/risk": "conservative"}, "_self_"]
    # No soak unless a test asks for one (in config).
    rollout = {"mode": "paper", "rollout": {"soak_seconds": 0}, "engines": engines}
    doc = {"defaults": defaults, **body, "deployment": rollout}
    (project / f"conf/deployment/{deployment}.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(doc, sort_keys=False)
    )
