"""`appliance ctl` against the real rt-engine (not the Python fake of tests/bus/): a tighten to
a looser value is refused by the engine itself (exit 2, the limit unchanged), a tighten that
tightens holds, and pause, resume, flatten and kill do what their replies say, as the status
the engine reports afterwards shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from appliance.bus import bus_pb2 as pb
from tests.conftest import Run
from tests.e2e.harness import Live, live, wait_for
from tests.e2e.test_live import wait_live, wait_resting

ACTIVE = pb.RiskStateKind.Value("ACTIVE")
HALTED = pb.RiskStateKind.Value("HALTED")


def _ctl(cli: Callable[..., Run], env: Live, *args: str) -> Run:
    return cli("ctl", "--endpoint", env.control_ep, "--timeout", "5", *args)


def _status(cli: Callable[..., Run], env: Live) -> dict[str, object]:
    run = _ctl(cli, env, "status", "--format", "json")
    assert run.exit_code == 0, run.stderr
    status: dict[str, object] = json.loads(run.stdout)["status"]
    return status


def test_runtime_risk_controls_on_the_real_engine(tmp_path: Path, cli: Callable[..., Run]) -> None:
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_resting(env)
        limit = env.manifest["risk"]["max_open_orders"]
        position = env.manifest["risk"]["instruments"]["BTCUSDT"]["max_position"]

        # Looser than the manifest: refused by the engine, exit 2, its reason on stderr.
        run = _ctl(cli, env, "tighten", "max_open_orders", str(limit + 5))
        assert run.exit_code == 2, run.stdout + run.stderr
        assert "the engine refused tighten" in run.stderr
        assert f"would loosen the limit (now {limit})" in run.stderr
        run = _ctl(cli, env, "tighten", "instruments.BTCUSDT.max_position", "1")
        assert run.exit_code == 2 and "would loosen the limit" in run.stderr, run.stderr
        # Tighter: done; going back to the manifest's value is now a loosening, refused too.
        run = _ctl(cli, env, "tighten", "max_open_orders", "2")
        assert run.exit_code == 0, run.stderr
        assert "ok: tightened max_open_orders to 2" in run.stdout
        run = _ctl(cli, env, "tighten", "max_open_orders", str(limit))
        assert run.exit_code == 2 and "would loosen the limit (now 2)" in run.stderr, run.stderr
        run = _ctl(cli, env, "tighten", "instruments.BTCUSDT.max_position", position)
        assert run.exit_code == 0, run.stderr
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.open_orders <= 2,
            10,
            "at most 2 open orders",
        )

        # Pause: open orders cancelled, no new ones; resume: back to ACTIVE and quoting.
        run = _ctl(cli, env, "pause")
        assert run.exit_code == 0 and "ok: paused" in run.stdout, run.stderr
        wait_for(lambda: _status(cli, env)["open_orders"] == 0, 10, "no open order when paused")
        assert _status(cli, env)["paused"] is True
        run = _ctl(cli, env, "resume")
        assert run.exit_code == 0 and "risk ACTIVE, not paused" in run.stdout, run.stdout
        wait_resting(env)

        # Flatten: orders cancelled, closing orders sent, paused.
        run = _ctl(cli, env, "flatten")
        assert run.exit_code == 0 and "ok: flattening" in run.stdout, run.stderr
        assert _status(cli, env)["paused"] is True
        run = _ctl(cli, env, "resume")
        assert run.exit_code == 0, run.stderr
        wait_resting(env)

        # Kill: HALTED, paused, every open order cancelled; only a resume lifts it.
        run = _ctl(cli, env, "kill")
        assert run.exit_code == 0 and "ok: kill switch engaged" in run.stdout, run.stderr
        assert "risk HALTED, paused" in run.stdout
        wait_for(lambda: _status(cli, env)["open_orders"] == 0, 10, "no open order after kill")
        status = env.status_or_none()
        assert status is not None and status.risk_state == HALTED and status.paused
        run = _ctl(cli, env, "resume")
        assert run.exit_code == 0, run.stderr
        status = env.status_or_none()
        assert status is not None and status.risk_state == ACTIVE and not status.paused
        assert env.stop("engine") == 0
