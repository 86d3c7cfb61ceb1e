"""`appliance apply` refusals: a saved plan that does not match, no confirmation, no target.
Each is refused before Ansible runs, and nothing is deployed or recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.deploy.cli_apply import ApplyRefused, check_saved_plan, split_args
from tests.conftest import Run


@pytest.fixture
def saved_plan(project: Path, cli: Callable[..., Run], tmp_path: Path) -> Path:
    out = tmp_path / "plan.json"
    run = cli("plan", "--out", str(out), root=project)
    assert run.exit_code == 0, run.stderr
    return out


def _nothing_deployed(project: Path) -> None:
    assert not (project / "state" / "deployed").exists()
    assert not (project / "state" / "hosts").exists()


def test_a_saved_plan_that_differs_is_refused(
    project: Path, cli: Callable[..., Run], saved_plan: Path
) -> None:
    run = cli("apply", "risk.max_open_orders=5", str(saved_plan), root=project)
    assert run.exit_code == 1
    assert f"saved plan {saved_plan} does not match; nothing was applied" in run.stderr
    assert "local: plan reviewed after " in run.stderr
    _nothing_deployed(project)


def test_a_saved_plan_for_another_deployment_is_refused(
    project: Path, cli: Callable[..., Run], saved_plan: Path
) -> None:
    run = cli("apply", "deployment=paper_taker", str(saved_plan), root=project)
    assert run.exit_code == 1
    assert "deployment: plan 'paper_local', config 'paper_taker'" in run.stderr
    _nothing_deployed(project)


def test_saved_plan_checks(saved_plan: Path, tmp_path: Path) -> None:
    plan = json.loads(saved_plan.read_text())
    after = plan["manifests"]["after"]
    check_saved_plan(saved_plan, "paper_local", {}, after)  # exactly what was reviewed
    with pytest.raises(ApplyRefused, match="deployed now"):
        # Someone applied something else since the plan was made.
        check_saved_plan(saved_plan, "paper_local", {"local": "0" * 64}, after)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ApplyRefused, match="not a saved plan"):
        check_saved_plan(bad, "paper_local", {}, after)


def test_overrides_and_the_plan_file_are_told_apart() -> None:
    assert split_args(["deployment=prod_example", "plan.json", "a.b=c.json"]) == (
        ["deployment=prod_example", "a.b=c.json"],
        Path("plan.json"),
    )


def test_apply_without_a_terminal_needs_yes(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("apply", root=project)
    assert run.exit_code == 1
    assert "not confirmed: pass --yes" in run.stderr
    _nothing_deployed(project)


def test_an_engine_host_without_a_target_is_a_config_error(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("apply", "~targets", "--yes", root=project)
    assert run.exit_code == 2
    assert "error: targets.local: apply needs a target for host 'local'" in run.stderr
    _nothing_deployed(project)
