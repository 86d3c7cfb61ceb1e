"""The roll-out lock's holder and --break-lock, without a fleet (tests/deploy/test_fleet.py
runs them against real hosts): what a lock records, that every lock to break is named before
the question, that a refusal breaks nothing, and that a live process's lock is never broken."""

from __future__ import annotations

import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from appliance.deploy import fleet
from appliance.deploy.fleet import HostState, LocalLock, Refused
from appliance.deploy.runner import RunResult

ELSEWHERE = {
    "run": "r1",
    "user": "ops",
    "host": "elsewhere",
    "pid": 7,
    "command": "rollback",
    "since": "2026-01-01T00:00:00Z",
}
NAMED = "h2 is locked by rollback run r1 by ops@elsewhere (pid 7, started 2026-01-01T00:00:00Z)"


def test_the_local_lock_records_its_holder(tmp_path: Path) -> None:
    lock = LocalLock(tmp_path / "locks" / "d.lock")
    lock.acquire("stop")
    try:
        who = json.loads(lock.path.read_text())
        assert who["user"] == getpass.getuser() and who["host"] == socket.gethostname()
        assert (who["pid"], who["command"], who["run"]) == (os.getpid(), "stop", lock.run)
        assert who["since"].endswith("Z")
        # A second holder is refused, the first one named.
        with pytest.raises(Refused, match=f"stop run {lock.run} by {getpass.getuser()}@"):
            LocalLock(lock.path).acquire("apply")
    finally:
        lock.release()
    again = LocalLock(lock.path)
    again.acquire("apply")
    again.release()
    assert again.stale == [lock.run]  # the flock was free: that run is over


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, HostState]:
    states = {
        "h1": HostState("h1", reachable=True),
        "h2": HostState("h2", reachable=True, lock=dict(ELSEWHERE)),
    }
    monkeypatch.setattr(fleet, "read", lambda *a, **k: (states, RunResult(0, "successful")))
    return states


def _break(lock: LocalLock, answer: bool) -> tuple[list[str], list[str]]:
    asked: list[str] = []

    def confirm(named: list[str]) -> bool:
        asked.extend(named)
        return answer

    return fleet._break(cast(Any, None), lock, "apply", confirm), asked


def test_break_lock_names_each_lock_then_asks(hosts: dict[str, HostState], tmp_path: Path) -> None:
    lock = LocalLock(tmp_path / "d.lock")
    with pytest.raises(Refused, match="not confirmed; nothing was changed"):
        _break(lock, False)
    broken, asked = _break(lock, True)
    assert asked == [NAMED] and broken == ["r1"]
    # This controller's own dead run is taken over anyway: nothing to ask.
    lock.stale = ["r1"]
    assert _break(lock, True) == ([], [])


def test_break_lock_never_breaks_a_live_process_here(
    hosts: dict[str, HostState], tmp_path: Path
) -> None:
    hosts["h2"].lock |= {"host": socket.gethostname(), "pid": os.getpid()}
    with pytest.raises(Refused, match="that process is alive on this machine"):
        _break(LocalLock(tmp_path / "d.lock"), True)


def test_break_lock_refuses_when_a_host_cannot_be_read(
    hosts: dict[str, HostState], tmp_path: Path
) -> None:
    hosts["h1"] = HostState("h1", reachable=False, error="ssh: Connection refused")
    with pytest.raises(Refused, match="cannot read the locks to break: h1: ssh: Connection"):
        _break(LocalLock(tmp_path / "d.lock"), True)
