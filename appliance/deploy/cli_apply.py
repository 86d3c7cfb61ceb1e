"""`appliance apply`: compile, plan, confirm, roll out with Ansible, record what was deployed.

    appliance apply [OVERRIDES...] [PLAN.json] [--yes] [--check] [--format json]

The plan is the same semantic diff as `appliance plan`, against `state/deployed/<deployment>/`
(what the last successful apply recorded). A saved plan (`appliance plan --out plan.json`)
is applied only if the compile gives exactly the manifests it reviewed and the hosts still
run what it was reviewed against; otherwise apply refuses. The rollout is `ansible/site.yml`
(serial, health-gated, rolled back on failure) on the inventory rendered from conf/;
`state/deployed/<deployment>/` is rewritten only when every host succeeded.

Exit codes: 0 deployed (or nothing to do), 1 the rollout failed or the plan was refused,
2 invalid config.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from appliance._extras import require
from appliance.config.diagnostics import ConfigError, Diagnostic, render_json, render_text

if TYPE_CHECKING:
    from appliance.plan.binding import Binding

APPLY_RECORD = "apply.json"


class ApplyRefused(Exception):
    """A saved plan that does not match, or no confirmation: nothing was run."""


def _fail(err: ConfigError, as_json: bool) -> typer.Exit:
    if as_json:
        typer.echo(render_json(err.diagnostics))
    else:
        typer.echo(render_text(err.diagnostics), err=True)
    return typer.Exit(2)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def split_args(args: list[str]) -> tuple[list[str], Path | None]:
    """Overrides and an optional saved plan (a `.json` argument without `=`)."""
    overrides: list[str] = []
    plan: Path | None = None
    for arg in args:
        if "=" not in arg and arg.endswith(".json"):
            if plan is not None:
                raise ConfigError(
                    [Diagnostic("PLAN", arg, "apply.plan", f"one saved plan only (got {plan})")]
                )
            plan = Path(arg)
        else:
            overrides.append(arg)
    return overrides, plan


def check_saved_plan(
    path: Path,
    deployment: str,
    before: dict[str, str],
    after: dict[str, str],
    binding: Binding | None = None,
) -> None:
    """Refuse unless the saved plan reviewed exactly these manifests against this state, and
    (given what apply is about to run) binds the same releases, targets, inventory and roles."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ApplyRefused(f"cannot read saved plan {path}: {exc}") from None
    if not isinstance(saved, dict) or saved.get("plan_version") != 1:
        raise ApplyRefused(f"{path} is not a saved plan (plan_version 1)")
    problems = []
    if saved.get("deployment") != deployment:
        problems.append(f"deployment: plan {saved.get('deployment')!r}, config {deployment!r}")
    manifests = saved.get("manifests") or {}
    for side, now in (("after", after), ("before", before)):
        reviewed = manifests.get(side) or {}
        for host in sorted(set(reviewed) | set(now)):
            if reviewed.get(host) != now.get(host):
                what = "compiled now" if side == "after" else "deployed now"
                problems.append(
                    f"{host}: plan reviewed {side} {str(reviewed.get(host))[:16]}, "
                    f"{what} {str(now.get(host))[:16]}"
                )
    if binding is not None:
        from appliance.plan.binding import Binding, differences

        saved_binding = Binding.from_json(saved.get("binding"))
        if saved_binding is None:
            problems.append("the plan binds no releases (make it with `appliance plan --out`)")
        else:
            problems += differences(saved_binding, binding)
    if problems:
        raise ApplyRefused(
            f"saved plan {path} does not match; nothing was applied:\n  " + "\n  ".join(problems)
        )


def review_gate(plan: Any, live: bool, saved: bool, allow_loosen: bool) -> str | None:
    """Why apply must not run this plan now, or None. A policy violation blocks it; LOOSEN and
    SECURITY changes on a live deployment need a saved (reviewed) plan or an explicit
    --allow-loosen; --yes is not enough."""
    if plan.violations:
        return "the plan breaks the deployment's policy (conf/policy/): " + "; ".join(
            v.message for v in plan.violations
        )
    if not (live and plan.needs_review) or saved or allow_loosen:
        return None
    review = [c for c in plan.changes if c.change_class.value in ("LOOSEN", "SECURITY")]
    named = ", ".join(f"{c.host}:{c.path} ({c.change_class.value})" for c in review[:5])
    more = f" and {len(review) - 5} more" if len(review) > 5 else ""
    return (
        f"{len(review)} change(s) on live deployment {plan.deployment} need review: "
        f"{named}{more}; apply a saved plan (`appliance plan --out plan.json`, reviewed) or "
        "pass --allow-loosen; --yes alone is not enough"
    )


def _hashes(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {h: m["content_sha256"] for h, m in sorted(manifests.items())}


def _deployed_releases(project: Path, deployment: str) -> dict[str, str]:
    from appliance.plan.sides import DEPLOYED_DIR

    try:
        record = json.loads((project / DEPLOYED_DIR / deployment / APPLY_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {h: v["release"] for h, v in (record.get("hosts") or {}).items()}


def run(
    project: Path,
    args: list[str],
    *,
    yes: bool,
    check: bool,
    as_json: bool,
    timeout: int,
    allow_loosen: bool = False,
) -> int:
    # ansible.cli: ansible-core itself (a bare `ansible` could be the project's ansible/ dir)
    require("deploy", "ansible_runner", "ansible.cli")
    from appliance.config.compiler import compile_config
    from appliance.config.manifest import write_build
    from appliance.deploy import inventory as inv
    from appliance.deploy.runner import run_playbook
    from appliance.engine import EngineNotFound, engine_binary
    from appliance.plan import diff, policy, sides
    from appliance.plan.binding import of_inventory
    from appliance.plan.models import describer
    from appliance.plan.render import Plan
    from appliance.plan.render import render_text as render_plan

    overrides, plan_file = split_args(args)
    compiled = compile_config(project, overrides)
    deployment = compiled.deployment
    before = sides.deployed(project, deployment)
    after = sides.from_compiled(compiled)
    plan = Plan(deployment, before, after, diff.diff(before, after, describer(project)))
    plan.violations = policy.of_compiled(compiled, plan.changes)
    err = Console(stderr=True)
    out = Console() if not as_json else Console(file=sys.stderr)
    inv.check_targets(project, compiled)
    try:
        binary = engine_binary(project)
    except EngineNotFound:
        try:  # the engine built next to this appliance package (a scratch project has none)
            binary = engine_binary()
        except EngineNotFound as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1
    build_dir = write_build(project / "build", deployment, compiled.manifests)
    private_dir = project / "state" / "ansible" / deployment
    inventory = inv.render(project, compiled, build_dir, binary, private_dir / "inventory")
    deployed_releases = _deployed_releases(project, deployment)
    release_changes = {
        h.host: (deployed_releases.get(h.host), h.release)
        for h in inventory.hosts
        if deployed_releases.get(h.host) != h.release
    }
    if plan_file is not None:
        try:
            check_saved_plan(
                plan_file,
                deployment,
                _hashes(before.manifests),
                _hashes(after.manifests),
                of_inventory(project, compiled, inventory),
            )
        except ApplyRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1
    if not as_json:
        out.print(render_plan(plan), end="", markup=False, highlight=False)
        for host, (old, new) in release_changes.items():
            out.print(f"release {host}: {old or '(none)'} -> {new}", markup=False, highlight=False)
        if not plan.changes and not release_changes:
            out.print("nothing to change; converging the hosts to it", markup=False)
    refusal = review_gate(plan, compiled.spec.mode == "live", plan_file is not None, allow_loosen)
    if refusal and not check:
        typer.echo(f"error: {refusal}", err=True)
        return 1
    if (plan.changes or release_changes) and not (yes or check or plan_file):
        if not sys.stdin.isatty():
            err.print(
                "error: not confirmed: pass --yes (or a saved plan) to apply without a prompt"
            )
            return 1
        if not typer.confirm(f"Apply to {len(inventory.hosts)} host(s)?", default=False):
            typer.echo("not applied", err=True)
            return 1

    hosts = [h.host for h in inventory.hosts]
    started = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("starting ansible", total=None)
        current: dict[str, str] = {"host": "", "task": ""}

        def on_event(event: dict[str, Any]) -> None:
            data = event.get("event_data") or {}
            if event.get("event") == "runner_on_start":
                current["host"] = str(data.get("host", ""))
                current["task"] = str(data.get("task", ""))
                n = hosts.index(current["host"]) + 1 if current["host"] in hosts else 0
                progress.update(
                    task, description=f"[{n}/{len(hosts)}] {current['host']}: {current['task']}"
                )
            elif (
                event.get("event") == "runner_on_failed"
                and not data.get("ignore_errors")
                and not err.is_terminal
                and not as_json
            ):
                err.print(f"{data.get('host')}: {data.get('task')} failed", markup=False)

        result = run_playbook(
            project / "ansible",
            private_dir,
            "site.yml",
            inventory.directory,
            hosts,
            check=check,
            on_event=on_event,
            timeout=timeout,
        )
    elapsed = time.monotonic() - started
    recorded = None
    if result.ok and not check:
        recorded = write_build(project / sides.DEPLOYED_DIR, deployment, compiled.manifests)
        (recorded / APPLY_RECORD).write_text(
            json.dumps(
                {
                    "deployment": deployment,
                    "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "binary_sha256": inventory.binary_sha256,
                    "hosts": {
                        h.host: {
                            "engine": h.engine_id,
                            "release": h.release,
                            "content_sha256": h.content_sha256,
                        }
                        for h in inventory.hosts
                    },
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
    releases = inventory.by_host()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "deployment": deployment,
                    "check": check,
                    "plan": plan.to_json(),
                    "elapsed_s": round(elapsed, 1),
                    "hosts": {
                        h: {
                            "engine": releases[h].engine_id,
                            "release": releases[h].release,
                            "status": r.status,
                            "ok": r.ok,
                            "changed": r.changed,
                            "failed": r.failed,
                            "rescued": r.rescued,
                            "failure": r.failure,
                        }
                        for h, r in result.hosts.items()
                    },
                    "recorded": _rel(recorded, project) if recorded else None,
                    "artifacts": str(result.artifacts) if result.artifacts else None,
                },
                indent=2,
                sort_keys=True,
            )
        )
        return 0 if result.ok else 1
    title = f"{'check: ' if check else ''}{deployment} in {elapsed:.0f}s"
    table = Table(title=title)
    for column in ("host", "engine", "release", "result", "ok", "changed", "failed"):
        table.add_column(column, no_wrap=True)
    for h, r in result.hosts.items():
        style = {"failed": "red", "rolled back": "yellow", "unreachable": "red"}.get(r.status)
        table.add_row(
            h,
            releases[h].engine_id,
            releases[h].release,
            f"[{style}]{r.status}[/]" if style else r.status,
            str(r.ok),
            str(r.changed),
            str(r.failed),
        )
    out.print(table)
    for h, r in result.hosts.items():
        if r.failure:
            out.print(f"{h}: {r.failure}", markup=False, highlight=False)
        elif not r.ran:
            out.print(f"{h}: not run (the rollout stopped before it)", markup=False)
    if recorded is not None:
        out.print(f"recorded {_rel(recorded, project)}", markup=False, highlight=False)
    elif not check:
        out.print(
            f"not recorded: the rollout failed (ansible log: {result.artifacts})",
            markup=False,
            highlight=False,
        )
    return 0 if result.ok else 1


def apply(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides (deployment=prod_example ...) and optionally a saved plan "
            "(plan.json from `appliance plan --out`)",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
    allow_loosen: Annotated[
        bool,
        typer.Option(
            "--allow-loosen",
            help="apply LOOSEN or SECURITY changes to a live deployment without a saved plan",
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="dry run: Ansible check mode, nothing changes")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    timeout: Annotated[int, typer.Option(help="stop the rollout after this many seconds")] = 1800,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="project root (holds conf/); default: found from the cwd"),
    ] = None,
) -> None:
    """Compile, plan, confirm, then roll out with Ansible (serial, health-gated, rollback)."""
    from appliance.config.compose import find_root

    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"--format must be text or json, not {fmt!r}")
    as_json = fmt == "json"
    try:
        project = root.resolve() if root else find_root()
        code = run(
            project,
            args or [],
            yes=yes,
            check=check,
            as_json=as_json,
            timeout=timeout,
            allow_loosen=allow_loosen,
        )
    except ConfigError as exc:
        raise _fail(exc, as_json) from None
    raise typer.Exit(code)
