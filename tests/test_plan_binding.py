"""A saved plan is a binding contract (appliance/plan/binding.py): it records the deployment,
each manifest hash, each host's release id, the engine binary, each host's target, the
rendered inventory and the roles; `appliance apply PLAN` refuses on any difference, naming it,
before Ansible runs. And LOOSEN or SECURITY on a live deployment needs a saved plan or
--allow-loosen: --yes alone is refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config.compiler import compile_config
from appliance.deploy import inventory as inv
from appliance.plan.binding import Binding, compute, differences, of_inventory
from tests.conftest import ROOT, Run


@pytest.fixture
def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in engine binary (apply refuses before it runs); small, so hashing is quick."""
    binary = tmp_path / "bin" / "rt-engine"
    binary.parent.mkdir()
    binary.write_bytes(b"engine build 1\n")
    binary.chmod(0o755)
    monkeypatch.setenv("RT_ENGINE_BIN", str(binary))
    return binary


@pytest.fixture
def roles_project(project: Path) -> Path:
    """The scratch project with its own copy of ansible/ (apply runs it to read what the
    hosts run; the roles test edits it)."""
    shutil.copytree(ROOT / "ansible", project / "ansible", ignore=shutil.ignore_patterns(".*"))
    return project


def _save(cli: Callable[..., Run], project: Path, out: Path, *overrides: str) -> dict[str, object]:
    run = cli("plan", *overrides, "--out", str(out), root=project)
    assert run.exit_code == 0, run.stderr
    return dict(json.loads(out.read_text()))


def _refused(cli: Callable[..., Run], project: Path, plan: Path, *overrides: str) -> str:
    run = cli("apply", *overrides, str(plan), root=project)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert f"saved plan {plan} does not match; nothing was applied" in run.stderr
    assert not (project / "state" / "deployed").exists()
    return run.stderr


def test_the_saved_plan_records_what_apply_would_run(
    roles_project: Path, cli: Callable[..., Run], fake_engine: Path, tmp_path: Path
) -> None:
    saved = _save(cli, roles_project, tmp_path / "plan.json")
    binding = Binding.from_json(saved["binding"])
    assert binding is not None
    assert binding.deployment == "paper_local"
    assert set(binding.releases) == set(binding.manifests) == set(binding.targets) == {"local"}
    assert binding.binary_sha256 == inv.file_sha256(fake_engine)
    # What apply renders for the same compile binds the same (no difference to name).
    compiled = compile_config(roles_project, [])
    build = roles_project / "build" / "paper_local"
    rendered = inv.render(roles_project, compiled, build, fake_engine, tmp_path / "inventory")
    assert binding.soak_seconds == 15  # paper_local's deployment.rollout.soak_seconds
    assert differences(binding, of_inventory(roles_project, compiled, rendered, 15)) == []
    assert compute(roles_project, compiled, 15) == binding


def _edit_target(project: Path) -> None:
    target = project / "conf" / "target" / "local.yaml"
    target.write_text(target.read_text().replace("root: state/hosts/local", "root: state/other"))


def _edit_roles(project: Path) -> None:
    tasks = project / "ansible" / "roles" / "engine" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n# changed after the review\n")


def _rebuild(binary: Path) -> None:
    binary.write_bytes(b"engine build 2\n")


# (what changes after the review, overrides at apply time, what is named, what is not)
MISMATCHES = {
    "manifest": (
        None,
        ["risk.max_open_orders=5"],
        ["manifest of host local: plan ", "release (manifest, binary, captures, models) of host"],
        ["engine binary", "target of host"],
    ),
    "binary": (
        "binary",
        [],
        ["engine binary: plan ", "release (manifest, binary, captures, models) of host local"],
        ["manifest of host", "target of host"],
    ),
    "target": (
        "target",
        [],
        ["target of host local: plan ", "rendered inventory: plan "],
        ["engine binary", "manifest of host"],
    ),
    "roles": (
        "roles",
        [],
        ["ansible roles and playbooks: plan "],
        ["engine binary", "manifest of host", "target of host", "rendered inventory"],
    ),
}


def _change(what: str | None, project: Path, binary: Path) -> None:
    if what == "binary":
        _rebuild(binary)
    elif what == "target":
        _edit_target(project)
    elif what == "roles":
        _edit_roles(project)


@pytest.mark.parametrize("kind", sorted(MISMATCHES))
def test_each_mismatch_is_named(
    roles_project: Path, cli: Callable[..., Run], fake_engine: Path, tmp_path: Path, kind: str
) -> None:
    what, overrides, named, not_named = MISMATCHES[kind]
    saved = Binding.from_json(_save(cli, roles_project, tmp_path / "plan.json")["binding"])
    assert saved is not None
    _change(what, roles_project, fake_engine)
    compiled = compile_config(roles_project, overrides)
    found = differences(saved, compute(roles_project, compiled, 15))
    text = "\n".join(found)
    assert all(n in text for n in named), found
    assert not any(n in text for n in not_named), found


@pytest.mark.parametrize("kind", ["binary"])
def test_apply_refuses_a_plan_that_differs_naming_it(
    roles_project: Path, cli: Callable[..., Run], fake_engine: Path, tmp_path: Path, kind: str
) -> None:
    what, overrides, named, _ = MISMATCHES[kind]
    plan = tmp_path / "plan.json"
    _save(cli, roles_project, plan)
    _change(what, roles_project, fake_engine)
    stderr = _refused(cli, roles_project, plan, *overrides)
    assert all(n in stderr for n in named), stderr


def test_the_soak_is_bound_and_shown(
    roles_project: Path, cli: Callable[..., Run], fake_engine: Path, tmp_path: Path
) -> None:
    """The soak is config (deployment.rollout.soak_seconds), shown in the plan with where it
    came from; --soak overrides it, said so; a saved plan binds it, so apply PLAN with
    another soak refuses."""
    run = cli("plan", "deployment.rollout.soak_seconds=7", "-f", "json", root=roles_project)
    assert run.exit_code == 0, run.stderr
    rollout = json.loads(run.stdout)["rollout"]
    assert rollout["soak_seconds"] == 7 and rollout["configured_soak_seconds"] is None
    assert "deployment.rollout.soak_seconds=7" in rollout["source"]
    run = cli("plan", "deployment.rollout.soak_seconds=7", "--soak", "2", root=roles_project)
    assert run.exit_code == 0, run.stderr
    assert (
        "rollout: soak 2s per host before the next "
        "(--soak overrides deployment.rollout.soak_seconds=7)" in run.stdout
    )
    run = cli("plan", "-f", "markdown", root=roles_project)
    assert (
        "Rollout: soak 15s per host before the next (deployment.rollout.soak_seconds, "
        "conf/deployment/paper_local.yaml)" in run.stdout
    ), run.stdout
    plan = tmp_path / "plan.json"
    saved = _save(cli, roles_project, plan, "deployment.rollout.soak_seconds=7")
    assert saved["binding"]["soak_seconds"] == 7  # type: ignore[index]
    stderr = _refused(cli, roles_project, plan, "--soak", "3")
    assert "soak per host: plan 7s, now 3s" in stderr, stderr
    stderr = _refused(cli, roles_project, plan)
    assert "soak per host: plan 7s, now 15s" in stderr, stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "greater than or equal to 0"), ("true", "integer"), ("2.5", "integer")],
)
def test_an_invalid_soak_is_a_diagnostic(
    project: Path, cli: Callable[..., Run], value: str, message: str
) -> None:
    run = cli("plan", f"deployment.rollout.soak_seconds={value}", root=project)
    assert run.exit_code == 1, run.stdout
    assert "deployment.rollout.soak_seconds" in run.stderr and message in run.stderr, run.stderr
    run = cli("plan", "+deployment.rollout.soak=1", root=project)  # a misspelt key
    assert run.exit_code == 1 and "deployment.rollout.soak" in run.stderr, run.stderr


def test_a_plan_without_a_binding_is_refused(
    project: Path, cli: Callable[..., Run], fake_engine: Path, tmp_path: Path
) -> None:
    from appliance.deploy.cli_apply import ApplyRefused, check_saved_plan

    plan = tmp_path / "plan.json"
    saved = _save(cli, project, plan)
    binding = Binding.from_json(saved["binding"])
    assert binding is not None
    after = saved["manifests"]["after"]  # type: ignore[index]
    check_saved_plan(plan, "paper_local", {}, after, binding)  # exactly what was reviewed
    del saved["binding"]
    plan.write_text(json.dumps(saved))
    with pytest.raises(ApplyRefused, match="the plan binds no releases"):
        check_saved_plan(plan, "paper_local", {}, after, binding)


# prod_example (live) with both hosts on local prefix roots: nothing leaves this machine.
LIVE = [
    "deployment=prod_example",
    "target@targets.ny4_a=local",
    "target@targets.ny4_b=local",
    "targets.ny4_b.root=state/hosts/b",
    "deployment.engines.spot_a.journal.dir=state/journal/a",
    "deployment.engines.usdm_b.journal.dir=state/journal/b",
    "deployment.engines.spot_a.flight_recorder.dir=state/flight/a",
    "deployment.engines.usdm_b.flight_recorder.dir=state/flight/b",
]


def test_loosening_a_live_deployment_needs_more_than_yes(
    roles_project: Path, cli: Callable[..., Run], fake_engine: Path
) -> None:
    project = roles_project
    # Nothing deployed yet: each live engine starts trading (LOOSEN, new exposure).
    run = cli("apply", *LIVE, "--yes", root=project)
    assert run.exit_code == 1
    assert "need review: ny4_a:host (LOOSEN), ny4_b:host (LOOSEN)" in run.stderr
    assert "--yes alone is not enough" in run.stderr
    assert not (project / "state" / "deployed").exists()


def test_the_review_gate() -> None:
    from appliance.deploy.cli_apply import review_gate
    from appliance.plan.diff import ABSENT, Change, ChangeClass, Side
    from appliance.plan.render import Plan

    def plan(cls: ChangeClass) -> Plan:
        change = Change(
            "h",
            "exchange x",
            "exchanges.x.endpoints.rest",
            "a",
            ABSENT,
            cls,
            False,
            True,
            False,
            None,
            None,
        )
        return Plan("d", Side({}), Side({}), [change])

    security = plan(ChangeClass.SECURITY)
    assert review_gate(security, live=True, saved=False, allow_loosen=False)
    assert review_gate(security, live=True, saved=True, allow_loosen=False) is None
    assert review_gate(security, live=True, saved=False, allow_loosen=True) is None
    assert review_gate(security, live=False, saved=False, allow_loosen=False) is None
    assert review_gate(plan(ChangeClass.TIGHTEN), True, False, False) is None
