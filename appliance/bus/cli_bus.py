"""`appliance ctl`, `appliance monitor` and `appliance run`: operating engines over the bus.

Endpoints come from compiling the deployment (the manifest's `engine.bus`), or from options.
Exit codes: 0 ok; 1 unreachable engine, a process that failed, a missing binary; 2 invalid
config or usage, or a command the engine refused (its error text on stderr).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from appliance import jsonout
from appliance.bus import bus_pb2 as pb
from appliance.bus.client import (
    COMMANDS,
    BusError,
    EventSubscriber,
    Unreachable,
    control,
    enum_name,
    json_default,
    make_request,
    to_python,
)
from appliance.bus.monitor import EngineView, render, render_summary
from appliance.bus.processes import (
    Child,
    StartupFailed,
    Supervisor,
    Terminated,
    busy_sim_endpoint,
    engine_env,
    rel,
    sigterm_raises,
    start_sims,
)

ONCE_TIMEOUT_S = 5.0


def _err(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def _fail(message: str, code: int) -> typer.Exit:
    _err(f"error: {message}")
    return typer.Exit(code)


def is_override(arg: str) -> bool:
    """Hydra overrides (`key=value`, `+key=value`, `~key`) versus command words."""
    return "=" in arg or arg.startswith("~")


# ---- which engine, which endpoints ----


@dataclass(frozen=True)
class Target:
    engine_id: str
    deployment: str
    mode: str
    host: str
    host_address: str
    events: str
    control: str
    hwm: int
    manifest_sha256: str
    manifest: dict[str, Any]
    text: str
    filename: str


def _connectable(endpoint: str, host_address: str) -> str:
    """A bind endpoint made connectable: `tcp://*:P` or `tcp://0.0.0.0:P` -> the host address."""
    for wildcard in ("tcp://*:", "tcp://0.0.0.0:"):
        if endpoint.startswith(wildcard):
            return f"tcp://{host_address}:{endpoint[len(wildcard) :]}"
    return endpoint


def resolve_targets(root: Path, overrides: Sequence[str]) -> tuple[Any, list[Target]]:
    from appliance.config.compiler import compile_config

    compiled = compile_config(root, overrides)
    targets = []
    for built in compiled.manifests:
        m = json.loads(built.text)
        bus = m["engine"]["bus"]
        address = m["host"]["address"]
        targets.append(
            Target(
                engine_id=built.engine_id,
                deployment=compiled.deployment,
                mode=m["deployment"]["mode"],
                host=built.host,
                host_address=address,
                events=_connectable(bus["events"], address),
                control=_connectable(bus["control"], address),
                hwm=int(bus["hwm"]),
                manifest_sha256=built.content_sha256,
                manifest=m,
                text=built.text,
                filename=built.filename,
            )
        )
    return compiled, targets


def pick(targets: list[Target], engine_id: str | None) -> Target:
    """The engine to talk to: `--engine`, or the only one (a usage error otherwise)."""
    by_id = {t.engine_id: t for t in targets}
    if engine_id is None:
        if len(by_id) == 1:
            return targets[0]
        raise _fail(
            f"{targets[0].deployment} runs {len(by_id)} engines: choose one of "
            f"{', '.join(sorted(by_id))} with --engine",
            2,
        )
    if engine_id not in by_id:
        raise _fail(
            f"no engine {engine_id!r} in {targets[0].deployment} "
            f"(engines: {', '.join(sorted(by_id))})",
            2,
        )
    return by_id[engine_id]


def _root(root: Path | None) -> Path:
    from appliance.config.compose import find_root

    return root.resolve() if root else find_root()


# ---- ctl ----


def _is_loopback(endpoint: str) -> bool:
    if endpoint.startswith("ipc://"):
        return True
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _refuse_remote_loopback(target: Target, endpoint: str) -> None:
    """A loopback endpoint of an engine on another host would reach whatever engine listens
    on *this* machine's loopback: refuse instead of talking to the wrong engine."""
    if _is_loopback(endpoint) and not _is_this_machine(target.host_address):
        raise _fail(
            f"engine {target.engine_id} runs on {target.host} ({target.host_address}) and its "
            f"bus endpoint {endpoint} is local to that host: run this there, or pass the "
            "endpoint (e.g. an SSH tunnel) with --endpoint/--events",
            2,
        )


def _check_identity(target: Target, reply: pb.ControlReply) -> None:
    if not reply.HasField("status"):
        return
    st = reply.status
    if (st.engine_id, st.deployment) != (target.engine_id, target.deployment):
        raise _fail(
            f"{target.control} answers as engine {st.engine_id} of {st.deployment}, not "
            f"{target.engine_id} of {target.deployment}: nothing was sent",
            2,
        )


def _parse_ctl(args: Sequence[str]) -> tuple[list[str], str, list[str]]:
    overrides = [a for a in args if is_override(a)]
    words = [a for a in args if not is_override(a)]
    if not words:
        raise _fail(f"missing command: one of {', '.join((*COMMANDS, 'tighten LIMIT VALUE'))}", 2)
    command, rest = words[0], words[1:]
    if command == "tighten":
        if len(rest) != 2:
            raise _fail("usage: appliance ctl [overrides...] tighten LIMIT VALUE", 2)
        limit, value = rest
        limit = limit.removeprefix("risk.")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _fail(f"tighten VALUE must be a decimal number, got {value!r}", 2) from None
        if not number.is_finite() or number < 0:
            raise _fail(f"tighten VALUE must be a finite, non-negative decimal, got {value!r}", 2)
        return overrides, command, [limit, value]
    if command not in COMMANDS:
        raise _fail(f"unknown command {command!r}: one of {', '.join((*COMMANDS, 'tighten'))}", 2)
    if rest:
        raise _fail(f"{command} takes no arguments (got {' '.join(rest)!r})", 2)
    return overrides, command, []


def status_table(st: pb.Status, endpoint: str) -> Table:
    table = Table(title=f"engine {st.engine_id} at {endpoint}", show_header=False)
    table.add_row("deployment", f"{st.deployment} ({st.mode})")
    table.add_row("host", st.host)
    table.add_row("pid", str(st.pid))
    table.add_row("manifest", st.manifest_sha256)
    table.add_row("risk state", enum_name(st, "risk_state"))
    table.add_row("paused", "yes" if st.paused else "no")
    table.add_row("uptime", f"{st.uptime_ms / 1000:.1f} s")
    table.add_row("open orders", str(st.open_orders))
    table.add_row("equity", st.equity or "-")
    for p in st.positions:
        table.add_row(
            f"position {p.exchange}/{p.symbol}",
            f"{p.qty or '0'} @ {p.avg_entry_price or '-'}  realised {p.realised_pnl or '-'}  "
            f"unrealised {p.unrealised_pnl or '-'}  fees {p.fees or '-'}",
        )
    for f in st.feeds:
        table.add_row(
            f"feed {f.exchange}",
            f"{enum_name(f, 'state')}  reconnects {f.reconnects}  gaps {f.gaps}  "
            f"malformed {f.malformed}  overflows {f.ring_overflows}",
        )
    table.add_row("last event seq", str(st.last_event_seq))
    return table


_DONE_WORDS = {
    "pause": "paused",
    "resume": "resumed",
    "flatten": "flattening",
    "kill": "kill switch engaged",
    "tighten": "tightened",
}


def ctl(
    root: Path | None,
    args: Sequence[str],
    engine_id: str | None,
    endpoint: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    overrides, command, rest = _parse_ctl(args)
    if not timeout > 0:
        raise _fail(f"--timeout must be a positive number of seconds, got {timeout:g}", 2)
    expected_sha: str | None = None
    target: Target | None = None
    if endpoint is not None:
        if overrides or engine_id is not None:
            raise _fail("--endpoint replaces the deployment: give overrides/--engine or it", 2)
        target_ep = endpoint
    else:
        _compiled, targets = resolve_targets(_root(root), overrides)
        target = pick(targets, engine_id)
        _refuse_remote_loopback(target, target.control)
        target_ep, expected_sha = target.control, target.manifest_sha256
    request = make_request(command, *rest)
    try:
        if target is not None and command != "status":
            # Never pause/kill/flatten the wrong engine: ask who answers there first.
            _check_identity(target, control(target_ep, make_request("status"), timeout))
        reply = control(target_ep, request, timeout)
    except Unreachable as err:
        if as_json:
            typer.echo(jsonout.dumps({"ok": False, "endpoint": target_ep, "error": str(err)}))
        raise _fail(str(err), 1) from None
    except BusError as err:
        raise _fail(str(err), 1) from None
    if as_json:
        body = {"command": command, "endpoint": target_ep, **to_python(reply)}
        if not reply.HasField("status"):
            body["status"] = None
        typer.echo(jsonout.dumps(body, indent=2, sort_keys=True, default=json_default))
    if not reply.ok:
        raise _fail(f"the engine refused {command}: {reply.error or '(no reason given)'}", 2)
    if (
        expected_sha
        and reply.HasField("status")
        and reply.status.manifest_sha256
        and reply.status.manifest_sha256 != expected_sha
    ):
        _err(
            f"warning: the engine runs manifest sha256:{reply.status.manifest_sha256[:16]}, "
            f"but conf/ compiles to sha256:{expected_sha[:16]} (not applied yet?)"
        )
    if as_json:
        return
    console = Console(highlight=False)
    if command == "status":
        if not reply.HasField("status"):
            raise _fail(f"the engine at {target_ep} replied ok without a status", 1)
        console.print(status_table(reply.status, target_ep))
        return
    what = _DONE_WORDS[command]
    if command == "tighten":
        what = f"tightened {rest[0]} to {rest[1]}"
    line = f"ok: {what} ({target_ep})"
    if reply.HasField("status"):
        st = reply.status
        line += (
            f"; engine {st.engine_id}: risk {enum_name(st, 'risk_state')}, "
            f"{'paused' if st.paused else 'not paused'}, {st.open_orders} open orders"
        )
    typer.echo(line)


# ---- monitor ----


def _sync_bus(view: EngineView, sub: EventSubscriber) -> None:
    view.lost, view.gaps, view.malformed = sub.lost, sub.gaps, sub.malformed
    view.restarts = sum(t.restarts for t in sub.streams.values())


def fetch_status(view: EngineView, endpoint: str | None, timeout: float = 1.0) -> None:
    if endpoint is None:
        return
    try:
        reply = control(endpoint, make_request("status"), timeout)
    except BusError as err:
        view.status_error = str(err)
        return
    if reply.ok and reply.HasField("status"):
        view.apply_status(reply.status)
        view.status_error = None
    else:
        view.status_error = f"status refused: {reply.error or '(no reason given)'}"


def watch(
    view: EngineView,
    sub: EventSubscriber,
    console: Console,
    duration: float | None,
    alive: Callable[[], str | None] = lambda: None,
) -> str | None:
    """The live table until `duration` ends (None: until Ctrl-C) or `alive()` reports a dead
    process (its message is returned). Ctrl-C ends the watch cleanly."""
    end = None if duration is None else time.monotonic() + duration
    last_draw = 0.0
    with Live(render(view), console=console, refresh_per_second=4, transient=False) as live:
        try:
            while end is None or time.monotonic() < end:
                left = 0.25 if end is None else max(0.0, min(0.25, end - time.monotonic()))
                got = sub.recv(left)
                while got is not None:
                    view.apply(got.event, restarted=got.restarted)
                    if time.monotonic() - last_draw > 0.25:
                        break  # redraw now; the rest is read on the next turn
                    got = sub.recv(0)
                _sync_bus(view, sub)
                dead = alive()
                if dead is not None:
                    live.update(render(view))
                    return dead
                if time.monotonic() - last_draw >= 0.25:
                    live.update(render(view))
                    last_draw = time.monotonic()
        except KeyboardInterrupt:
            pass
        live.update(render(view))
    return None


def monitor(
    root: Path | None,
    overrides: Sequence[str],
    engine_id: str | None,
    events: str | None,
    control_ep: str | None,
    hwm: int,
    duration: float | None,
    once: bool,
) -> None:
    if duration is not None and duration < 0:
        raise _fail(f"--duration must not be negative, got {duration:g}", 2)
    if events is None:
        _compiled, targets = resolve_targets(_root(root), overrides)
        target = pick(targets, engine_id)
        _refuse_remote_loopback(target, target.events)
        events, hwm = target.events, target.hwm
        control_ep = control_ep or target.control
    elif overrides or engine_id is not None:
        raise _fail("--events replaces the deployment: give overrides/--engine or it", 2)
    console = Console(highlight=False)
    view = EngineView(endpoint=events)
    try:
        sub = EventSubscriber(events, hwm=hwm)
    except BusError as err:
        raise _fail(str(err), 1) from None
    with sub, contextlib.suppress(KeyboardInterrupt):
        # Ctrl-C at any point (even before the watch loop starts) ends the monitor cleanly.
        fetch_status(view, control_ep)
        if once:
            limit = ONCE_TIMEOUT_S if duration is None else duration
            end = time.monotonic() + limit
            try:
                while view.heartbeat is None and (left := end - time.monotonic()) > 0:
                    got = sub.recv(min(left, 0.25))
                    if got is not None:
                        view.apply(got.event, restarted=got.restarted)
            except KeyboardInterrupt:
                return
            _sync_bus(view, sub)
            if view.heartbeat is None:
                raise _fail(
                    f"no heartbeat on {events} within {limit:g} s (is the engine running?)", 1
                )
            console.print(render(view))
            return
        watch(view, sub, console, duration)


# ---- run ----


def _is_this_machine(address: str) -> bool:
    """An address is ours when a socket can bind to it."""
    try:
        infos = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _t, _p, _c, sockaddr in infos:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((sockaddr[0], 0))
            except OSError:
                continue
            return True
    return False


def write_manifest(root: Path, compiled: Any, target: Target) -> tuple[Path, bool]:
    from appliance.config.manifest import write_build

    path = root / "build" / target.deployment / target.filename
    if path.is_file() and path.read_text() == target.text:
        return path, False
    write_build(root / "build", compiled.deployment, compiled.manifests)
    return path, True


def run(
    root: Path | None,
    overrides: Sequence[str],
    engine_id: str | None,
    duration: float | None,
    speed: str | None,
    allow_live: bool,
    stop_timeout: float = 15.0,
    startup_timeout: float = 20.0,
) -> None:
    from appliance import engine as engine_mod

    if duration is not None and duration < 0:
        raise _fail(f"--duration must not be negative, got {duration:g}", 2)
    project = _root(root)
    compiled, targets = resolve_targets(project, overrides)
    if engine_id is None:
        local = [t for t in targets if _is_this_machine(t.host_address)]
        if not local:
            raise _fail(
                f"no engine of {compiled.deployment} runs on this machine (hosts: "
                f"{', '.join(f'{t.host} {t.host_address}' for t in targets)}); "
                "use --engine to choose one",
                2,
            )
        target = pick(local, None)
    else:
        target = pick(targets, engine_id)
    if target.mode == "live" and not allow_live:
        raise _fail(
            f"{target.deployment} is a live deployment: it trades real money; "
            "pass --live to run it from here",
            2,
        )
    try:
        binary = engine_mod.engine_binary(project)
    except engine_mod.EngineNotFound as err:
        raise _fail(str(err), 1) from None
    console = Console(highlight=False)
    manifest_path, wrote = write_manifest(project, compiled, target)
    console.print(
        f"{'compiled' if wrote else 'up to date'}: {rel(manifest_path, project)} "
        f"(sha256:{target.manifest_sha256[:16]})",
        markup=False,
    )
    sims = {
        name: ex
        for name, ex in sorted(target.manifest["exchanges"].items())
        if ex["venue"] == "sim"
    }
    # Refuse to start beside a running engine or simulator (a leftover would take the ports).
    try:
        reply = control(target.control, make_request("status"), 0.3)
        raise _fail(
            f"an engine already answers at {target.control} "
            f"({reply.status.engine_id or 'unknown'}, pid {reply.status.pid or '?'}): "
            "stop it first (appliance ctl kill, then SIGTERM)",
            1,
        )
    except Unreachable:
        pass
    busy = busy_sim_endpoint(sims)
    if busy is not None:
        raise _fail(busy, 1)

    log_dir = project / "state" / "run" / target.deployment
    sup = Supervisor(project, log_dir)
    view = EngineView(endpoint=target.events)
    exit_code = 0
    try:
        with (
            sigterm_raises(),
            EventSubscriber(target.events, hwm=target.hwm) as sub,
        ):
            start_sims(sup, binary, manifest_path, sims, speed, startup_timeout, project, console)
            engine = sup.start(
                f"engine_{target.engine_id}",
                [str(binary), "run", "--manifest", str(manifest_path)],
                env=engine_env(target.manifest),
            )
            console.print(
                f"started engine {target.engine_id} (pid {engine.proc.pid}); "
                f"logs in {rel(log_dir, project)}/",
                markup=False,
            )
            _wait_heartbeat(view, sub, sup, startup_timeout, project)
            fetch_status(view, target.control)
            dead_msg = watch(view, sub, console, duration, lambda: sup.dead_message(project))
            if dead_msg is not None:
                _err(dead_msg)
                exit_code = 1
            else:
                fetch_status(view, target.control)
            code = _stop_engine(engine, view, sub, stop_timeout)
            if code != 0 and dead_msg is None:
                how = f"code {code}" if code is not None else f"SIGKILL after {stop_timeout:g} s"
                _err(
                    f"error: rt-engine run did not stop cleanly on SIGTERM ({how}); "
                    f"last lines of {rel(engine.log, project)}:\n{engine.tail()}"
                )
                exit_code = 1
            for child in sup.children:
                if child is not engine:
                    child.stop(5.0)
            _sync_bus(view, sub)
    except (KeyboardInterrupt, Terminated) as err:
        _err("interrupted: stopping the engine and simulators")
        exit_code = 143 if isinstance(err, Terminated) else 130
    except StartupFailed as err:
        _err(f"error: {err}")
        exit_code = 1
    finally:
        # Engine first (it cancels its orders), then the simulators; whatever is left is killed.
        for child in sup.children:
            if child.name.startswith("engine_"):
                child.stop(stop_timeout)
        sup.stop_all()
    if view.events:
        console.print()
        build = engine_mod.engine_build(binary)
        console.print(render_summary(view, f"{target.deployment} / {target.engine_id}", build))
    console.print(f"logs: {rel(log_dir, project)}/", markup=False)
    if exit_code:
        raise typer.Exit(exit_code)


def _wait_heartbeat(
    view: EngineView, sub: EventSubscriber, sup: Supervisor, timeout: float, project: Path
) -> None:
    end = time.monotonic() + timeout
    while view.heartbeat is None:
        dead = sup.dead_message(project, "at start")
        if dead is not None:
            raise StartupFailed(dead.removeprefix("error: "))
        left = end - time.monotonic()
        if left <= 0:
            engine = sup.children[-1]
            raise StartupFailed(
                f"no heartbeat on {sub.endpoint} within {timeout:g} s; "
                f"last lines of {rel(engine.log, project)}:\n{engine.tail()}"
            )
        got = sub.recv(min(left, 0.25))
        if got is not None:
            view.apply(got.event, restarted=got.restarted)


def _stop_engine(
    engine: Child, view: EngineView, sub: EventSubscriber, timeout: float
) -> int | None:
    """SIGTERM, reading the bus meanwhile (its cancels and last positions); SIGKILL after
    `timeout` seconds. Returns the exit code (None: killed)."""
    if engine.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            engine.proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + timeout
    while engine.proc.poll() is None and time.monotonic() < end:
        got = sub.recv(0.05)
        if got is not None:
            view.apply(got.event, restarted=got.restarted)
    while (got := sub.recv(0.05)) is not None:
        view.apply(got.event, restarted=got.restarted)
    return engine.stop(0.0)
