"""A small process supervisor for hosts where systemd is not PID 1 (containers, CI, this VM).

It runs the very systemd units the engine role renders, so the unit file stays the one
description of a service: `ExecStart`, `WorkingDirectory`, `Environment`/`EnvironmentFile`,
`User`/`Group`, `CPUAffinity`, `LimitMEMLOCK`/`LimitNOFILE`, `UMask`, `Restart`/`RestartSec`,
the start limit, `KillSignal` and `TimeoutStopSec` are honoured; sandboxing options
(`ProtectSystem`, capabilities, ...) need systemd and are not.

    py-rt-supervisor --root HOST_ROOT start|stop|restart|status UNIT...

`start` detaches a monitor process (its own session, stdio to the unit's log) that starts the
main process and restarts it by the unit's policy; `stop` sends the monitor SIGTERM, which
stops the main process with `KillSignal` and kills it after `TimeoutStopSec`. Pidfiles and a
JSON state file per unit live under `run/py-rt/`, logs under `var/log/py-rt/` (both inside the
host root). `status` prints the state as JSON and exits 0 when running, 3 when not (as
`systemctl is-active` does), 4 for an unknown unit.

Standard library only: the engine role copies this file to the host and runs it with the
host's python3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN_UNIT = 4
_RESTART_ON_FAILURE = {"on-failure", "on-abnormal", "always"}


class UnitError(Exception):
    """A unit file we cannot run, with the file and line in the message."""


@dataclass
class Unit:
    name: str
    path: Path
    exec_start: list[str]
    working_directory: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[tuple[Path, bool]] = field(default_factory=list)
    cpu_affinity: set[int] | None = None
    limit_memlock: int | None = None
    limit_nofile: int | None = None
    umask: int | None = None
    user: str | None = None
    group: str | None = None
    restart: str = "no"
    restart_sec: float = 0.1
    start_limit_interval: float = 10.0
    start_limit_burst: int = 5
    kill_signal: int = signal.SIGTERM
    timeout_stop: float = 90.0


def _seconds(text: str, where: str) -> float:
    """systemd time spans: `5`, `5s`, `500ms`, `2min`, `1min 30s`."""
    total = 0.0
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "min": 60.0, "m": 60.0, "h": 3600.0}
    for number, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", text.strip()):
        if unit not in units:
            raise UnitError(f"{where}: unknown time unit {unit!r} in {text!r}")
        total += float(number) * units[unit]
    if not re.fullmatch(r"(\s*[0-9.]+\s*[a-z]*)+\s*", text):
        raise UnitError(f"{where}: not a time span: {text!r}")
    return total


def _limit(text: str, where: str) -> int:
    if text == "infinity":
        return resource.RLIM_INFINITY
    match = re.fullmatch(r"([0-9]+)([KMG]?)", text)
    if not match:
        raise UnitError(f"{where}: not a resource limit: {text!r}")
    return int(match[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match[2]]


def _cpus(text: str, where: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.replace(",", " ").split():
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if not match:
            raise UnitError(f"{where}: not a CPU list: {text!r}")
        lo, hi = int(match[1]), int(match[2] or match[1])
        cpus.update(range(lo, hi + 1))
    return cpus


def parse_unit(path: Path) -> Unit:
    """Read the [Service] settings we honour from a unit file (others are ignored)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UnitError(f"cannot read unit {path}: {exc.strerror}") from None
    section = ""
    settings: list[tuple[str, str, str]] = []
    pending = ""
    for number, raw in enumerate(lines, 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UnitError(f"{path}:{number}: expected Key=Value, got {line!r}")
        settings.append((section, key.strip(), value.strip()))
    unit = Unit(name=path.name.removesuffix(".service"), path=path, exec_start=[])
    for number_key, (section, key, value) in enumerate(settings):
        where = f"{path}: {section}/{key} (setting {number_key + 1})"
        if section == "Unit":
            if key == "StartLimitIntervalSec":
                unit.start_limit_interval = _seconds(value, where)
            elif key == "StartLimitBurst":
                unit.start_limit_burst = int(value)
            continue
        if section != "Service":
            continue
        if key == "ExecStart":
            argv = shlex.split(value)
            if not argv or argv[0][0] in "-@:+!":
                raise UnitError(f"{where}: ExecStart {value!r} is empty or uses a prefix")
            unit.exec_start = argv
        elif key == "WorkingDirectory":
            unit.working_directory = Path(value)
        elif key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                unit.environment[name] = val
        elif key == "EnvironmentFile":
            optional = value.startswith("-")
            unit.environment_files.append((Path(value.lstrip("-")), optional))
        elif key == "CPUAffinity":
            unit.cpu_affinity = _cpus(value, where) if value else None
        elif key == "LimitMEMLOCK":
            unit.limit_memlock = _limit(value, where)
        elif key == "LimitNOFILE":
            unit.limit_nofile = _limit(value, where)
        elif key == "User":
            unit.user = value or None
        elif key == "Group":
            unit.group = value or None
        elif key == "UMask":
            unit.umask = int(value, 8)
        elif key == "Restart":
            unit.restart = value
        elif key == "RestartSec":
            unit.restart_sec = _seconds(value, where)
        elif key == "KillSignal":
            unit.kill_signal = int(
                getattr(signal, value if value.startswith("SIG") else "SIG" + value)
            )
        elif key == "TimeoutStopSec":
            unit.timeout_stop = _seconds(value, where)
    if not unit.exec_start:
        raise UnitError(f"{path}: no ExecStart in [Service]")
    return unit


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        name, _, value = line.partition("=")
        out[name.strip()] = value.strip().strip('"').strip("'")
    return out


@dataclass
class Layout:
    """Where a host's units, pidfiles and logs are."""

    units: Path
    run: Path
    logs: Path

    @classmethod
    def under(cls, root: Path) -> Layout:
        return cls(root / "etc/systemd/system", root / "run/py-rt", root / "var/log/py-rt")

    def unit_file(self, name: str) -> Path:
        return self.units / f"{name}.service"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def statefile(self, name: str) -> Path:
        return self.run / f"{name}.state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
    tmp.replace(path)


def _alive_monitor(layout: Layout, name: str) -> int | None:
    """The pid of this unit's live monitor, or None (a stale pidfile is not trusted)."""
    try:
        pid = int(layout.pidfile(name).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if b"_monitor" in cmdline and name.encode() in cmdline:
        return pid
    return None


def _state(layout: Layout, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(layout.statefile(name).read_text())
        return data
    except (OSError, ValueError):
        return {}


def status(layout: Layout, name: str) -> tuple[int, dict[str, Any]]:
    if not layout.unit_file(name).is_file():
        return EXIT_UNKNOWN_UNIT, {"unit": name, "state": "unknown", "error": "no unit file"}
    monitor = _alive_monitor(layout, name)
    state = _state(layout, name)
    if monitor is None:
        last = state.get("state")
        state.update(state="failed" if last in ("failed", "running") else "inactive")
        state.update(unit=name, monitor_pid=None, main_pid=None)
        return EXIT_NOT_RUNNING, state
    state.update(unit=name, monitor_pid=monitor)
    return (0 if state.get("state") == "running" else EXIT_NOT_RUNNING), state


def start(layout: Layout, name: str, wait: float = 10.0) -> dict[str, Any]:
    """Start the unit unless it runs; return its state once the main process is up."""
    unit = parse_unit(layout.unit_file(name))
    if _alive_monitor(layout, name) is not None:
        return status(layout, name)[1]
    for directory in (layout.run, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    layout.statefile(name).unlink(missing_ok=True)
    with layout.log(name).open("ab") as log:
        monitor = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                *("--units", str(layout.units), "--run", str(layout.run)),
                *("--logs", str(layout.logs), "_monitor", name),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = _state(layout, name)
        # As systemd's Type=exec: started once the main process was executed (whether it then
        # stays up is for the caller's health check to tell).
        if state.get("monitor_pid") == monitor.pid and state.get("execs", 0) >= 1:
            return status(layout, name)[1]
        if monitor.poll() is not None:
            break
        time.sleep(0.05)
    tail = _tail(layout.log(name))
    if monitor.poll() is None:
        _stop_pid(monitor.pid, unit.timeout_stop)
    raise UnitError(f"{name} did not start (log {layout.log(name)}):\n{tail}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_pid(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout + 5
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop(layout: Layout, name: str) -> dict[str, Any]:
    monitor = _alive_monitor(layout, name)
    if monitor is not None:
        path = layout.unit_file(name)
        timeout = parse_unit(path).timeout_stop if path.is_file() else Unit.timeout_stop
        main = _state(layout, name).get("main_pid")
        _stop_pid(monitor, timeout)
        if isinstance(main, int) and Path(f"/proc/{main}").exists() and not _zombie(main):
            os.kill(main, signal.SIGKILL)
    layout.pidfile(name).unlink(missing_ok=True)
    state = _state(layout, name)
    if state:
        state.update(state="inactive", monitor_pid=None, main_pid=None)
        _write_json(layout.statefile(name), state)
    return status(layout, name)[1]


def _child_setup(unit: Unit) -> None:
    """Runs in the forked child before exec: affinity, limits, umask."""
    if unit.cpu_affinity:
        os.sched_setaffinity(0, unit.cpu_affinity)
    for which, value in (
        (resource.RLIMIT_MEMLOCK, unit.limit_memlock),
        (resource.RLIMIT_NOFILE, unit.limit_nofile),
    ):
        if value is None:
            continue
        _, hard = resource.getrlimit(which)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            # Unprivileged: raise the soft limit as far as the hard limit allows.
            inf = resource.RLIM_INFINITY
            soft = value if hard == inf or (value != inf and value <= hard) else hard
            resource.setrlimit(which, (soft, hard))
    if unit.umask is not None:
        os.umask(unit.umask)


def monitor(layout: Layout, name: str) -> int:
    """The detached monitor: run the main process, restart it by policy, stop it on SIGTERM."""
    unit = parse_unit(layout.unit_file(name))
    _write_json_pid(layout.pidfile(name))
    env = dict(os.environ)
    for path, optional in unit.environment_files:
        if path.is_file():
            env.update(_read_env_file(path))
        elif not optional:
            _log(f"EnvironmentFile {path} is missing")
            _record(layout, unit, "failed", None, 0, exit_code=None)
            return 1
    env.update(unit.environment)
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(unit.kill_signal)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    starts: list[float] = []
    restarts = 0
    execs = 0
    while True:
        now = time.monotonic()
        starts = [t for t in starts if now - t < unit.start_limit_interval] + [now]
        if len(starts) > unit.start_limit_burst:
            _log(f"start limit hit ({unit.start_limit_burst} in {unit.start_limit_interval}s)")
            _record(layout, unit, "failed", None, restarts, exit_code=None, execs=execs)
            layout.pidfile(name).unlink(missing_ok=True)
            return 1
        try:
            child = subprocess.Popen(
                unit.exec_start,
                cwd=unit.working_directory,
                env=env,
                stdin=subprocess.DEVNULL,
                user=unit.user,
                group=unit.group,
                preexec_fn=lambda: _child_setup(unit),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            _log(f"cannot execute {unit.exec_start[0]}: {exc}")
            code: int | None = 203  # systemd's EXIT_EXEC
        else:
            execs += 1
            _log(f"started {shlex.join(unit.exec_start)} as pid {child.pid}")
            _record(layout, unit, "running", child.pid, restarts, exit_code=None, execs=execs)
            deadline: float | None = None
            while True:
                try:
                    code = child.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if stopping and deadline is None:
                        deadline = time.monotonic() + unit.timeout_stop
                    if deadline is not None and time.monotonic() > deadline:
                        _log(f"pid {child.pid} did not stop in {unit.timeout_stop}s: SIGKILL")
                        child.kill()
            _log(f"pid {child.pid} exited with {code}")
        if stopping:
            _record(layout, unit, "inactive", None, restarts, exit_code=code, execs=execs)
            layout.pidfile(name).unlink(missing_ok=True)
            return 0
        failed = code != 0
        if unit.restart == "always" or (failed and unit.restart in _RESTART_ON_FAILURE):
            _record(layout, unit, "activating", None, restarts, exit_code=code, execs=execs)
            time.sleep(unit.restart_sec)
            if stopping:
                _record(layout, unit, "inactive", None, restarts, exit_code=code, execs=execs)
                layout.pidfile(name).unlink(missing_ok=True)
                return 0
            restarts += 1
            continue
        _record(
            layout,
            unit,
            "failed" if failed else "inactive",
            None,
            restarts,
            exit_code=code,
            execs=execs,
        )
        layout.pidfile(name).unlink(missing_ok=True)
        return 1 if failed else 0


def _write_json_pid(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def _record(
    layout: Layout,
    unit: Unit,
    state: str,
    main_pid: int | None,
    restarts: int,
    exit_code: int | None,
    execs: int = 0,
) -> None:
    _write_json(
        layout.statefile(unit.name),
        {
            "unit": unit.name,
            "state": state,
            "monitor_pid": os.getpid(),
            "main_pid": main_pid,
            "restarts": restarts,
            "execs": execs,
            "last_exit_code": exit_code,
            # The file the main process runs, symlinks resolved: which release is live.
            "exec": unit.exec_start[0],
            "exec_realpath": os.path.realpath(unit.exec_start[0]),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} supervisor: {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="py-rt-supervisor", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="host root (etc/, run/, var/log/ below it)")
    parser.add_argument("--units", type=Path, help="unit dir (default ROOT/etc/systemd/system)")
    parser.add_argument("--run", type=Path, help="pidfile directory (default ROOT/run/py-rt)")
    parser.add_argument("--logs", type=Path, help="log directory (default ROOT/var/log/py-rt)")
    parser.add_argument("command", choices=["start", "stop", "restart", "status", "_monitor"])
    parser.add_argument("units_", nargs="+", metavar="UNIT")
    args = parser.parse_args(argv)
    if args.root is None and None in (args.units, args.run, args.logs):
        parser.error("give --root, or all of --units, --run and --logs")
    layout = Layout.under(args.root.resolve()) if args.root else Layout(Path(), Path(), Path())
    for attr in ("units", "run", "logs"):
        if getattr(args, attr) is not None:
            setattr(layout, attr, getattr(args, attr).resolve())
    names = [u.removesuffix(".service") for u in args.units_]
    if args.command == "_monitor":
        return monitor(layout, names[0])
    code = 0
    for name in names:
        try:
            if args.command == "status":
                rc, state = status(layout, name)
                code = max(code, rc)
            elif args.command == "start":
                state = start(layout, name)
            elif args.command == "stop":
                state = stop(layout, name)
            else:
                stop(layout, name)
                state = start(layout, name)
        except UnitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(state, sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
