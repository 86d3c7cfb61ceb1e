"""`appliance plan` reads the deployed side from the hosts (appliance/deploy/fleet.py
plan_side), not from the local record: a local prefix root is read directly, a host reached
through Ansible that cannot be read fails the plan (exit 1, also with --detailed-exitcode),
and `--cached` plans offline against the record, labelled so. The fake fleet
(tests/deploy/test_fleet.py) does the same against real hosts and engines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, Run


def _deploy_by_hand(cli: Callable[..., Run], project: Path, *overrides: str) -> str:
    """Put a release on the local host's prefix root as the engine role lays it out (its
    `current` link and manifest), behind any record's back; its manifest hash."""
    assert cli("compile", *overrides, root=project).exit_code == 0
    index = json.loads((project / "build/paper_local/index.json").read_text())
    entry = index["manifests"]["local"]
    install = project / "state/hosts/local/opt/py-rt"
    release = install / "releases" / "byhand"
    release.mkdir(parents=True)
    shutil.copy(project / "build/paper_local" / entry["file"], release / "manifest.json")
    (install / "current").symlink_to(release)
    return str(entry["content_sha256"])


def test_plan_reads_a_local_host_and_refreshes_the_record(
    project: Path, cli: Callable[..., Run]
) -> None:
    by_hand = _deploy_by_hand(cli, project, "risk.max_open_orders=3")
    # The record knows nothing of it: --cached plans against the record, and says so.
    run = cli("plan", "--cached", "-f", "json", root=project)
    assert run.exit_code == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["against"].startswith("the LOCAL RECORD of never (--cached: the hosts were not")
    assert plan["manifests"]["before"] == {}
    # The plan reads the host: the one change is the limit set by hand there.
    run = cli("plan", "-f", "json", "--detailed-exitcode", root=project)
    assert run.exit_code == 3, run.stdout + run.stderr  # 3 -> 10 open orders loosens
    plan = json.loads(run.stdout)
    assert (
        plan["against"] == "what the hosts run (read from the hosts: local); local record refreshed"
    )
    assert plan["manifests"]["before"] == {"local": by_hand}
    assert [(c["path"], c["before"], c["change_class"]) for c in plan["changes"]] == [
        ("risk.max_open_orders", 3, "LOOSEN")
    ]
    record = json.loads((project / "state/deployed/paper_local/apply.json").read_text())
    assert record["hosts"]["local"]["content_sha256"] == by_hand
    assert record["hosts"]["local"]["release"] == "byhand"
    # Now the record has it too.
    run = cli("plan", "--cached", "--detailed-exitcode", root=project)
    assert run.exit_code == 3 and "risk.max_open_orders: 3 -> 10" in run.stdout, run.stdout


def test_a_host_that_cannot_be_read_fails_the_plan(
    project: Path, cli: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host reached over SSH on a port nobody listens on (discard, 9 on loopback)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    engine = tmp_path / "rt-engine"  # rendering the inventory hashes a binary: any will do
    engine.write_bytes(b"engine\n")
    monkeypatch.setenv("RT_ENGINE_BIN", str(engine))
    shutil.copytree(ROOT / "ansible", project / "ansible", ignore=shutil.ignore_patterns(".*"))
    ssh = [
        "targets.local.connection=ssh",
        "targets.local.ssh_user=nobody",
        "targets.local.ssh_port=9",
        "targets.local.root=/srv/py-rt-nowhere",
    ]
    for extra in ([], ["--detailed-exitcode"]):
        run = cli("plan", *ssh, *extra, root=project)
        assert run.exit_code == 1, run.stdout + run.stderr
        assert run.stdout == ""
        assert "error: targets.local: cannot read what host local runs: " in run.stderr
        # Ansible's reason: the host (its address) cannot be reached over SSH.
        assert "ssh" in run.stderr and "127.0.0.1" in run.stderr, run.stderr
        assert "plan.host_unreachable" in run.stderr
    run = cli("plan", *ssh, "--cached", root=project)
    assert run.exit_code == 0 and "against the LOCAL RECORD of never" in run.stdout, run.stdout
    assert not (project / "state/deployed").exists()
