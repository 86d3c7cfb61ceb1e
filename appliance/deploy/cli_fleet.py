"""`appliance status|rollback|verify|stop`: the fleet as the hosts report it, and acting on it.

    appliance status   [OVERRIDES...] [--format json]
    appliance rollback [OVERRIDES...] [--host H] [--yes] [--break-lock]
    appliance verify   [OVERRIDES...] [--host H]
    appliance stop     [OVERRIDES...] [--host H] [--yes] [--break-lock]

`status` reads every host (ansible/state.yml: release, manifest, apply record, the engine's own
`ctl status`, the services) and compares it with the local record. `rollback` returns hosts to
their previous release (ansible/rollback.yml, one at a time, health-gated: a release returned
to that is not healthy fails it), `stop` stops the engines (SIGTERM: orders cancelled, journal
flushed); both hold the roll-out lock and rewrite the local record from the hosts afterwards. A
lock another run holds refuses, naming its holder; --break-lock names each such lock, asks
(unless --yes), and takes it over. `verify` runs ansible/verify.yml (read-only).

Exit codes: 0 done (status: every host answered and matches the record), 1 a host failed,
did not answer, drifts from the record, or another run holds the lock; 2 invalid config.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from appliance import jsonout
from appliance._extras import require
from appliance.config.diagnostics import ConfigError, render_json, render_text

Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides (deployment=prod_example ...)", show_default=False),
]
HostOpt = Annotated[
    list[str] | None, typer.Option("--host", help="only this host (repeat for more)")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do it without asking")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text or json")]
RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="project root (holds conf/); default: found from the cwd"),
]
TimeoutOpt = Annotated[int, typer.Option(help="give up after this many seconds")]
BreakLockOpt = Annotated[
    bool,
    typer.Option(
        "--break-lock",
        help="take over roll-out locks another run left on the hosts, each named first "
        "(asks unless --yes)",
    ),
]


def _project(root: Path | None) -> Path:
    from appliance.config.compose import find_root

    return root.resolve() if root else find_root()


def _json_format(fmt: str) -> bool:
    if fmt not in ("text", "json"):
        raise typer.BadParameter(f"--format must be text or json, not {fmt!r}")
    return fmt == "json"


def _guard(as_json: bool, body: Any) -> None:
    """Run `body()`; a config error prints its diagnostics and exits 2, a refusal exits 1."""
    from appliance.deploy.fleet import Refused

    require("deploy", "ansible_runner", "ansible.cli")
    try:
        code = body()
    except ConfigError as exc:
        if as_json:
            typer.echo(render_json(exc.diagnostics))
        else:
            typer.echo(render_text(exc.diagnostics), err=True)
        raise typer.Exit(2) from None
    except Refused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _hosts(target: Any, wanted: list[str] | None) -> list[str]:
    from appliance.deploy.fleet import Refused

    names: list[str] = target.hosts
    unknown = sorted(set(wanted or []) - set(names))
    if unknown:
        raise Refused(f"no such host in {target.deployment}: {', '.join(unknown)}")
    return [h for h in names if not wanted or h in wanted]


def _last(record: dict[str, Any]) -> str:
    if not record:
        return "-"
    if record.get("event") == "rolled back":
        return f"rolled back from {record.get('failed_release')} at {record.get('at')}"
    return f"{record.get('event', 'applied')} at {record.get('at')} ({record.get('by')})"


def status_rows(states: dict[str, Any], cache: dict[str, Any]) -> list[dict[str, Any]]:
    from appliance.deploy.fleet import drift

    rows = []
    for host, s in sorted(states.items()):
        rows.append(
            {
                "host": host,
                "reachable": s.reachable,
                "release": s.current or None,
                "manifest_sha256": s.content_sha256,
                "engine": s.engine_summary() if s.reachable else None,
                "engine_status": s.engine,
                "services": s.services,
                "last": s.record,
                "recorded_release": ((cache.get("hosts") or {}).get(host) or {}).get("release"),
                "drift": drift(s, cache) or None,
                "locked_by": s.lock.get("run") if s.lock else None,
                "error": s.error,
            }
        )
    return rows


def _status(project: Path, overrides: list[str], as_json: bool) -> int:
    from appliance.deploy import fleet

    target = fleet.prepare(project, overrides)
    states, _ = fleet.read(target)
    _, cache = fleet.cached(project, target.deployment)
    rows = status_rows(states, cache)
    if as_json:
        typer.echo(jsonout.dumps({"deployment": target.deployment, "hosts": rows}, indent=2))
    else:
        table = Table(title=f"{target.deployment}: as the hosts report it")
        for column in ("host", "release", "manifest", "engine", "services", "last change"):
            table.add_column(column, no_wrap=column != "last change")
        table.add_column("drift from the record")
        for row, s in zip(rows, (states[r["host"]] for r in rows), strict=True):
            table.add_row(
                row["host"],
                row["release"] or "-",
                (row["manifest_sha256"] or "-")[:12],
                row["engine"] or "[red]did not answer[/]",
                s.services_summary(),
                _last(s.record),
                row["drift"] or "none",
            )
        console = Console(highlight=False)
        if not console.is_terminal:  # a log or a pipe: whole lines, not 80 columns
            console = Console(highlight=False, width=220)
        console.print(table)
    return 0 if all(r["reachable"] and not r["drift"] for r in rows) else 1


def _confirm(what: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        typer.echo(f"error: not confirmed: pass --yes to {what} without a prompt", err=True)
        return False
    return typer.confirm(f"{what}?", default=False)


def break_confirmer(yes: bool) -> Callable[[list[str]], bool]:
    """For --break-lock: print each lock to be broken (its holder named), then ask."""

    def confirm(named: list[str]) -> bool:
        for line in named:
            typer.echo(f"breaking a stale roll-out lock: {line}", err=True)
        return _confirm(f"break the {len(named)} lock(s) named above", yes)

    return confirm


def _locked_run(
    project: Path,
    overrides: list[str],
    wanted: list[str] | None,
    playbook: str,
    command: str,
    yes: bool,
    timeout: int,
    break_lock: bool = False,
) -> int:
    """Lock, run `playbook` on the chosen hosts, unlock, record; print each host's outcome."""
    from appliance.deploy import fleet

    target = fleet.prepare(project, overrides)
    hosts = _hosts(target, wanted)
    if not _confirm(f"{command} {', '.join(hosts)} of {target.deployment}", yes):
        return 1
    breaker = break_confirmer(yes) if break_lock else None
    with fleet.locked(target, command, breaker) as (run_id, _states):
        result = fleet.play(target, playbook, hosts, timeout, run_id, command)
        now = fleet.unlock(target, run_id, command)
        fleet.record(project, target.compiled, now, target.inventory.binary_sha256)
    out = Console(highlight=False)
    for host in hosts:
        r = result.hosts[host]
        state = now[host]
        where = f"now on {state.current or '(nothing)'}: {state.engine_summary()}"
        if r.failure:
            out.print(f"{host}: {command} failed: {r.failure} ({where})", markup=False)
        elif not r.ran:
            out.print(f"{host}: not run (stopped before it; {where})", markup=False)
        else:
            out.print(f"{host}: {command} done ({where})", markup=False)
    return 0 if result.ok else 1


def _verify(project: Path, overrides: list[str], wanted: list[str] | None, timeout: int) -> int:
    from appliance.deploy import fleet

    target = fleet.prepare(project, overrides)
    hosts = _hosts(target, wanted)
    result = fleet.play(target, "verify.yml", hosts, timeout, command="verify")
    for host in hosts:
        r = result.hosts[host]
        what = f"FAILED: {r.failure}" if r.failure else "ok" if r.ran else "not run"
        typer.echo(f"{host}: {what}")
    return 0 if result.ok else 1


def status(args: Overrides = None, fmt: FormatOpt = "text", root: RootOpt = None) -> None:
    """Each host as it reports itself: release, manifest, engine state, drift from the record."""
    as_json = _json_format(fmt)
    _guard(as_json, lambda: _status(_project(root), args or [], as_json))


def rollback(
    args: Overrides = None,
    host: HostOpt = None,
    yes: YesOpt = False,
    timeout: TimeoutOpt = 1800,
    break_lock: BreakLockOpt = False,
    root: RootOpt = None,
) -> None:
    """Return hosts to their previous release, one at a time, each health-gated."""
    _guard(
        False,
        lambda: _locked_run(
            _project(root), args or [], host, "rollback.yml", "rollback", yes, timeout, break_lock
        ),
    )


def stop(
    args: Overrides = None,
    host: HostOpt = None,
    yes: YesOpt = False,
    timeout: TimeoutOpt = 600,
    break_lock: BreakLockOpt = False,
    root: RootOpt = None,
) -> None:
    """Stop the engines and their sim venues (orders cancelled, journal flushed)."""
    _guard(
        False,
        lambda: _locked_run(
            _project(root), args or [], host, "stop.yml", "stop", yes, timeout, break_lock
        ),
    )


def verify(
    args: Overrides = None,
    host: HostOpt = None,
    timeout: TimeoutOpt = 600,
    root: RootOpt = None,
) -> None:
    """Read-only checks: kernel state, units, services on the current release, engine healthy."""
    _guard(False, lambda: _verify(_project(root), args or [], host, timeout))
