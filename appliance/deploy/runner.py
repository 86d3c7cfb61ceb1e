"""Run the playbooks under ansible/ with ansible-runner and summarise the result per host.

ansible-runner starts `ansible-playbook` from PATH (this interpreter's bin/ goes first) in
a private data dir under the project's state dir (`state/ansible/<deployment>/`, artifacts
rotated). Events stream to a callback for progress; the play recap becomes a `HostResult`
per host. Nothing secret is passed: the rendered inventory, and as extra vars only the run's
own bookkeeping (run id, lock action, soak time, reboot plan).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLLBACK_TASK = "Stop the rollout"


@dataclass
class HostResult:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    rescued: int = 0
    skipped: int = 0
    unreachable: int = 0
    ran: bool = False
    failure: str | None = None
    rolled_back: bool = False

    @property
    def status(self) -> str:
        if not self.ran:
            return "not run"
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "rolled back" if self.rolled_back else "failed"
        return "changed" if self.changed else "ok"


@dataclass
class RunResult:
    rc: int
    status: str
    hosts: dict[str, HostResult] = field(default_factory=dict)
    artifacts: Path | None = None

    @property
    def ok(self) -> bool:
        return self.rc == 0 and all(h.ran and not h.failed for h in self.hosts.values())


Event = dict[str, Any]


def _message(res: dict[str, Any], task: str = "") -> str:
    # A command that failed: its own words (rt-engine check's refusal), not Ansible's generic
    # "non-zero return code".
    if res.get("msg") == "non-zero return code" and (res.get("stderr") or res.get("stdout")):
        text = " ".join(str(res.get("stderr") or res.get("stdout")).split())
        return f"{task} (rc {res.get('rc', '-')}): {text}" if task else text
    for key in ("msg", "stderr", "stdout"):
        value = res.get(key)
        if value:
            return " ".join(str(value).split())
    return "failed"


def run_playbook(
    ansible_dir: Path,
    private_dir: Path,
    playbook: str,
    inventory_dir: Path,
    hosts: Sequence[str],
    *,
    check: bool = False,
    tags: Sequence[str] = (),
    limit: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    timeout: int | None = None,
    extravars: dict[str, Any] | None = None,
) -> RunResult:
    import ansible_runner

    private_dir.mkdir(parents=True, exist_ok=True)
    # ansible-runner saves its arguments under env/ (env/cmdline ...) and reads them back on
    # the next run when none are given: a --check would stick. Each run states all of its own.
    shutil.rmtree(private_dir / "env", ignore_errors=True)
    results = {h: HostResult(h) for h in hosts}

    def handler(event: Event) -> bool:
        data = event.get("event_data") or {}
        host = data.get("host")
        kind = event.get("event", "")
        if host in results:
            results[host].ran = True
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                res = data.get("res") or {}
                results[host].failure = _message(res, str(data.get("task") or ""))
                if data.get("task") == ROLLBACK_TASK:
                    results[host].rolled_back = "rolled back to" in _message(res)
            elif kind == "runner_on_unreachable":
                results[host].failure = _message(data.get("res") or {})
        if kind == "playbook_on_stats":
            for key, attr in (
                ("ok", "ok"),
                ("changed", "changed"),
                ("failures", "failed"),
                ("rescued", "rescued"),
                ("skipped", "skipped"),
                ("dark", "unreachable"),
            ):
                for h, n in (data.get(key) or {}).items():
                    if h in results:
                        setattr(results[h], attr, n)
                        results[h].ran = True
        if on_event is not None:
            on_event(event)
        return True

    cmdline = []
    if check:
        cmdline += ["--check", "--diff"]
    if tags:
        cmdline += ["--tags", ",".join(tags)]
    envvars = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ansible_dir / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ansible_dir / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    runner = ansible_runner.run(
        private_data_dir=str(private_dir),
        project_dir=str(ansible_dir),
        playbook=playbook,
        inventory=str(inventory_dir),
        envvars=envvars,
        cmdline=" ".join(cmdline) or None,
        limit=limit,
        extravars=extravars or {},
        event_handler=handler,
        quiet=True,
        rotate_artifacts=5,
        timeout=timeout,
    )
    artifacts = Path(runner.config.artifact_dir) if runner.config else None
    return RunResult(int(runner.rc or 0), str(runner.status), results, artifacts)
