"""The change policy (conf/policy/, appliance/plan/policy.py): its rules are evaluated at plan
time, listed in every plan format, and block apply."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.plan.diff import ABSENT, Change, ChangeClass
from appliance.plan.policy import ChangeWindow, Policy, evaluate
from tests.conftest import Run


def _change(path: str, before: object, after: object, cls: ChangeClass) -> Change:
    return Change("h", "e", path, before, after, cls, False, True, False, None, None)


POLICY = Policy.model_validate(
    {
        "modes": ["live"],
        "max_loosen_factor": "2",
        "change_window_utc": {"start_hour": 22, "end_hour": 6},
        "frozen": ["risk.kill_switch.enabled", "exchanges.*.credentials"],
    }
)
NIGHT = dt.datetime(2026, 1, 5, 23, 30, tzinfo=dt.UTC)
NOON = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


def test_a_window_may_wrap_midnight() -> None:
    window = ChangeWindow(start_hour=22, end_hour=6)
    assert [h for h in range(24) if window.contains(h)] == [0, 1, 2, 3, 4, 5, 22, 23]
    assert ChangeWindow(start_hour=8, end_hour=20).contains(8)
    assert not ChangeWindow(start_hour=8, end_hour=20).contains(20)


def test_each_rule() -> None:
    changes = [
        _change("risk.max_daily_loss", "2500", "5000", ChangeClass.LOOSEN),  # x2: allowed
        _change("risk.max_drawdown", "4000", "8001", ChangeClass.LOOSEN),  # > x2
        _change("strategies.t.params.cooldown_ms", 250, 100, ChangeClass.LOOSEN),  # x2.5
        _change("exchanges.x.credentials.api_key", "env:A", "env:B", ChangeClass.SECURITY),
        _change("strategies.t", ABSENT, {"kind": "x"}, ChangeClass.LOOSEN),  # no factor
    ]
    found = evaluate(POLICY, "live", changes, NIGHT)
    assert [(v.rule, v.path) for v in found] == [
        ("max_loosen_factor", "risk.max_drawdown"),
        ("max_loosen_factor", "strategies.t.params.cooldown_ms"),
        ("frozen", "exchanges.x.credentials.api_key"),
    ]
    assert found[1].message == (
        "strategies.t.params.cooldown_ms loosened x2.50 in one apply (policy: at most x2)"
    )
    outside = evaluate(POLICY, "live", changes[:1], NOON)
    assert [v.rule for v in outside] == ["change_window_utc"]
    assert outside[0].message == "live deployments change only 22:00-06:00 UTC; now 12:00 UTC"
    assert evaluate(POLICY, "paper", changes, NOON) == []  # paper is not governed
    assert evaluate(POLICY, "live", [], NOON) == []  # no change, nothing to refuse


def _closed_window() -> list[str]:
    """A one-hour window two hours ahead: closed now, and still closed should the hour turn."""
    hour = dt.datetime.now(dt.UTC).hour
    return [
        "policy=change_window",
        f"policy.change_window_utc.start_hour={(hour + 2) % 24}",
        f"policy.change_window_utc.end_hour={(hour + 3) % 24}",
    ]


@pytest.fixture
def built(project: Path, cli: Callable[..., Run]) -> Path:
    assert cli("compile", "deployment=prod_example", root=project).exit_code == 0
    return project / "build" / "prod_example"


def _plan(cli: Callable[..., Run], project: Path, built: Path, fmt: str, *args: str) -> Run:
    return cli(
        "plan",
        "deployment=prod_example",
        *args,
        "--against",
        str(built),
        "--format",
        fmt,
        "--detailed-exitcode",
        root=project,
    )


def test_violations_are_listed_in_every_format(
    built: Path, project: Path, cli: Callable[..., Run]
) -> None:
    args = ["risk.max_daily_loss=6000", "risk.kill_switch.enabled=false"]
    plan = json.loads(_plan(cli, project, built, "json", *args).stdout)
    assert [(v["rule"], v["host"], v["path"]) for v in plan["violations"]] == [
        (rule, host, path)
        for host in ("ny4_a", "ny4_b")
        for rule, path in (
            ("frozen", "risk.kill_switch.enabled"),
            ("max_loosen_factor", "risk.max_daily_loss"),
        )
    ]
    assert "4 policy violations" in plan["summary"]["line"]
    text = _plan(cli, project, built, "text", *args)
    assert text.exit_code == 3
    assert (
        "policy violation (max_loosen_factor, ny4_b): risk.max_daily_loss loosened x2.40 in one "
        "apply "
        "(policy: at most x2)" in text.stdout
    )
    markdown = _plan(cli, project, built, "markdown", *args).stdout
    assert "#### Policy violations (apply refuses)" in markdown
    assert (
        "- **frozen** on `ny4_a`: risk.kill_switch.enabled is frozen in live "
        "(risk.kill_switch.enabled)" in markdown
    )


def test_the_change_window_is_checked_at_plan_time(
    built: Path, project: Path, cli: Callable[..., Run]
) -> None:
    closed = _closed_window()
    change = "risk.max_daily_loss=1000"
    plan = json.loads(_plan(cli, project, built, "json", change, *closed).stdout)
    assert [v["rule"] for v in plan["violations"]] == ["change_window_utc"]
    always = ["policy.change_window_utc.start_hour=0", "policy.change_window_utc.end_hour=24"]
    plan = json.loads(_plan(cli, project, built, "json", change, *closed[:1], *always).stdout)
    assert plan["violations"] == []


def test_paper_deployments_are_not_governed_by_the_standard_policy(
    project: Path, cli: Callable[..., Run]
) -> None:
    assert cli("compile", root=project).exit_code == 0
    against = ["--against", str(project / "build"), "--format", "json"]
    run = cli("plan", "risk.max_daily_loss=5000", *against, root=project)
    plan = json.loads(run.stdout)
    assert plan["summary"]["by_class"] == {"LOOSEN": 1} and plan["violations"] == []


def test_an_invalid_policy_is_an_error(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("plan", "policy.max_loosen_factor=0.5", "--detailed-exitcode", root=project)
    assert run.exit_code == 1
    assert "policy.max_loosen_factor" in run.stderr and "must be 1 or more" in run.stderr
    run = cli("plan", "+policy.unknown=1", root=project)
    assert run.exit_code == 1 and "policy.unknown" in run.stderr


def test_apply_refuses_a_plan_that_breaks_the_policy(
    project: Path, cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tests.conftest import ROOT
    from tests.test_plan_binding import LIVE

    shutil.copytree(ROOT / "ansible", project / "ansible", ignore=shutil.ignore_patterns(".*"))
    binary = tmp_path / "rt-engine"
    binary.write_bytes(b"engine\n")
    monkeypatch.setenv("RT_ENGINE_BIN", str(binary))
    closed = _closed_window()
    run = cli("apply", *LIVE, *closed, "--allow-loosen", "--yes", root=project)
    assert run.exit_code == 1, run.stderr
    assert (
        "error: the plan breaks the deployment's policy (conf/policy/): "
        "live deployments change only " in run.stderr
    )
    assert not (project / "state" / "deployed").exists()
