"""`appliance apply`: compile, plan, confirm, roll out with Ansible, record what was deployed.

    appliance apply [OVERRIDES...] [PLAN.json] [--yes] [--check] [--format json]
                    [--soak SECONDS] [--allow-reboot] [--break-lock]

The plan is the same semantic diff as `appliance plan`, against what the hosts run (each host's
`current` release, read from the hosts, local prefix roots directly: appliance/deploy/fleet.py;
a host that does not answer comes from the local record, with a warning, and the roll-out lock
then refuses). A saved plan (`appliance plan --out plan.json`) is applied only if the compile
gives exactly the manifests it reviewed and the hosts still run what it was reviewed against;
otherwise apply refuses. The rollout is `ansible/site.yml` (serial, health gate then a soak per
host, `deployment.rollout.soak_seconds` or --soak, rolled back on failure) on the inventory
rendered from conf/. A host whose changes need a reboot stops the rollout before it switches,
unless --allow-reboot (drain, reboot, verify the kernel, start). A roll-out lock another run
holds refuses, naming its holder; --break-lock names each such lock, asks (unless --yes) and
takes it over. Afterwards `state/deployed/<deployment>/` is rewritten from what every host
reports, so a rollout that stopped half-way records the hosts that switched.

Exit codes: 0 deployed (or nothing to do), 1 the rollout failed or the plan was refused,
2 invalid config.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from appliance import jsonout
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


def run(
    project: Path,
    args: list[str],
    *,
    yes: bool,
    check: bool,
    as_json: bool,
    timeout: int,
    soak: int | None = None,
    allow_reboot: bool = False,
    allow_loosen: bool = False,
    break_lock: bool = False,
) -> int:
    # ansible.cli: ansible-core itself (a bare `ansible` could be the project's ansible/ dir)
    require("deploy", "ansible_runner", "ansible.cli")
    from appliance.deploy import fleet

    with contextlib.ExitStack() as stack:
        try:
            return _run(
                project,
                args,
                stack,
                yes,
                check,
                as_json,
                timeout,
                soak,
                allow_reboot,
                allow_loosen,
                break_lock,
            )
        except fleet.Refused as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1


def _run(
    project: Path,
    args: list[str],
    stack: contextlib.ExitStack,
    yes: bool,
    check: bool,
    as_json: bool,
    timeout: int,
    soak: int | None,
    allow_reboot: bool,
    allow_loosen: bool,
    break_lock: bool,
) -> int:
    from appliance.deploy import fleet
    from appliance.deploy.cli_fleet import break_confirmer
    from appliance.deploy.runner import run_playbook
    from appliance.plan import diff, policy, rollout, sides
    from appliance.plan.binding import of_inventory
    from appliance.plan.models import describer
    from appliance.plan.render import Plan
    from appliance.plan.render import render_text as render_plan

    overrides, plan_file = split_args(args)
    target = fleet.prepare(project, overrides)
    compiled, inventory, private_dir = target.compiled, target.inventory, target.private_dir
    deployment = compiled.deployment
    # What the hosts run: the plan's deployed side. Read without the lock (a refusal or a prompt
    # must not hold the fleet, nor touch it); the lock is taken just before the roll-out, which
    # is refused if a host moved meanwhile.
    states, _ = fleet.observe(project, compiled, lambda: target)
    before, from_cache = fleet.deployed_side(project, deployment, states)
    after = sides.from_compiled(compiled)
    plan = Plan(deployment, before, after, diff.diff(before, after, describer(project)))
    plan.violations = policy.of_compiled(compiled, plan.changes)
    plan.rollout = rollout.of_compiled(compiled, soak)
    err = Console(stderr=True)
    out = Console() if not as_json else Console(file=sys.stderr)
    for host in from_cache:
        err.print(f"warning: {host} did not answer: its deployed side is the local record")
    deployed_releases = {h: s.current for h, s in states.items() if s.current}
    reboots: dict[str, list[str]] = {}
    for change in plan.changes:
        if change.reboot and change.path not in reboots.get(change.host, []):
            reboots.setdefault(change.host, []).append(change.path)
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
                of_inventory(project, compiled, inventory, plan.rollout.soak_seconds),
            )
        except ApplyRefused as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1
    if not as_json:
        out.print(render_plan(plan), end="", markup=False, highlight=False)
        for host, (old, new) in release_changes.items():
            out.print(f"release {host}: {old or '(none)'} -> {new}", markup=False, highlight=False)
        for host, paths in reboots.items():
            then = (
                "drain, reboot, verify the kernel, start"
                if allow_reboot
                else "the rollout stops before it (--allow-reboot to reboot it)"
            )
            out.print(f"reboot {host}: {', '.join(paths)}; {then}", markup=False, highlight=False)
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

    run_id = ""
    if not check:
        breaker = break_confirmer(yes) if break_lock else None
        run_id, locked = stack.enter_context(fleet.locked(target, "apply", breaker))
        moved = fleet.moved(states, locked)
        if moved:
            raise fleet.Refused(
                f"the fleet changed since this plan was made ({'; '.join(moved)}): "
                "nothing was applied; run it again"
            )
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

        extravars: dict[str, Any] = {
            "py_rt_run": run_id,
            "py_rt_by": fleet.by(),
            "py_rt_reboot": reboots,
            "py_rt_allow_reboot": allow_reboot,
            "py_rt_soak_seconds": plan.rollout.soak_seconds,
        }
        result = run_playbook(
            project / "ansible",
            private_dir,
            "site.yml",
            inventory.directory,
            hosts,
            check=check,
            on_event=on_event,
            timeout=timeout,
            extravars=extravars,
        )
    elapsed = time.monotonic() - started
    recorded = None
    now = states
    if not check:
        # Each host as it is now (switched, rolled back, untouched), then the host locks freed.
        now = fleet.unlock(target, run_id, "apply", engine=False)
        recorded = fleet.record(project, compiled, now, inventory.binary_sha256)
    releases = inventory.by_host()
    if as_json:
        typer.echo(
            jsonout.dumps(
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
                            "current": now[h].current if h in now else None,
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
        what = "" if result.ok else f" (the rollout failed; ansible log: {result.artifacts})"
        out.print(
            f"recorded {_rel(recorded, project)} from the hosts{what}",
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
    soak: Annotated[
        int | None,
        typer.Option(
            help="seconds a new release must stay healthy on a host before the next one, "
            "overriding deployment.rollout.soak_seconds (the plan shows it; a saved plan "
            "binds it)",
            min=0,
        ),
    ] = None,
    break_lock: Annotated[
        bool,
        typer.Option(
            "--break-lock",
            help="take over roll-out locks another run left on the hosts, each named first "
            "(asks unless --yes)",
        ),
    ] = False,
    allow_reboot: Annotated[
        bool,
        typer.Option(
            "--allow-reboot",
            help="reboot hosts whose changes need it (drain, reboot, verify the kernel, start)",
        ),
    ] = False,
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
            soak=soak,
            allow_reboot=allow_reboot,
            allow_loosen=allow_loosen,
            break_lock=break_lock,
        )
    except ConfigError as exc:
        raise _fail(exc, as_json) from None
    raise typer.Exit(code)
