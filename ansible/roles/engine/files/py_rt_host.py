#!/usr/bin/env python3
"""The host side of a roll-out, for the engine role: the soak of a new release, and the host's
deployed state with the roll-out lock. Standard library only (runs on the host).

    py-rt-host soak SPEC_JSON
    py-rt-host state SPEC_JSON

Both read the services from `services` (an argv printing one JSON object per unit with
`unit`, `state`, `restarts`: the supervisor's `status`) or, when it is empty, `systemctl show`
of `systemd_units`.

soak: {"seconds": 30, "interval": 1, "settle": 30, "ctl": [rt-engine, ctl, --endpoint, E,
--timeout-ms, 2000, status], "expect_hash": SHA256, "services": [...], "systemd_units": [...]}.
After a first healthy check (awaited up to `settle` seconds: feeds may still be connecting
when the health gate passes; a restart meanwhile fails at once), healthy at every check for
`seconds`: the engine answers with the expected manifest hash, risk state ACTIVE, every feed
LIVE, the same process id as at the first check; every service is running and was not
restarted. The first unhealthy check ends it: exit 1, the reason on stderr.

state: {"install_dir": D, "action": "read"|"lock"|"unlock", "run": ID, "stale": [ID...],
"holder": {"user", "host", "pid", "command"}, "host": NAME, "services": [...], "systemd_units":
[...], "manager": M, "engine": true}. Prints the host's state as JSON: `current` (release id),
`manifest` (text), `record` (the host's apply.json), `engine` (`rt-engine ctl status` output)
and `services` (both left empty when the spec's `engine` is false), `lock` (its holder). `lock`
takes the roll-out lock, `D/lock`, a directory made with mkdir (atomic), and writes its holder
(the controller's user, host, pid, command, this run and when it started); held by a run that
is neither `run` nor in `stale` (a run over, or one `--break-lock` named) it exits 3 naming the
holder. `unlock` removes the lock when `run` holds it. The controller reads a local prefix root
with `deployed` directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _engine(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    run = subprocess.run(spec["ctl"], capture_output=True, text=True, timeout=30, check=False)
    try:
        reply: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None, f"the engine did not answer ({' '.join(run.stderr.split())[:200]})"
    status: dict[str, Any] = reply.get("status") or {}
    return status, ""


def _services(spec: dict[str, Any]) -> list[dict[str, Any]]:
    if spec.get("services"):
        run = subprocess.run(
            spec["services"], capture_output=True, text=True, timeout=30, check=False
        )
        return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    out = []
    for unit in spec.get("systemd_units") or []:
        run = subprocess.run(
            ["systemctl", "show", "--property=ActiveState,NRestarts,MainPID", f"{unit}.service"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        props = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
        state = "running" if props.get("ActiveState") == "active" else props.get("ActiveState")
        restarts = int(props.get("NRestarts") or 0)
        pid = int(props.get("MainPID") or 0) or None
        out.append({"unit": unit, "state": state, "restarts": restarts, "main_pid": pid})
    return out


def problem(spec: dict[str, Any], first_pid: int | None) -> tuple[str, int | None]:
    """Why the release is unhealthy now ("" when it is healthy), and the engine's pid."""
    status, why = _engine(spec)
    if status is None:
        return why, first_pid
    pid = status.get("pid")
    if status.get("manifest_sha256") != spec["expect_hash"]:
        return f"manifest {status.get('manifest_sha256')} is running", pid
    if str(status.get("risk_state")).upper() != "ACTIVE":
        return f"risk state is {status.get('risk_state')}, ACTIVE expected", pid
    feeds = status.get("feeds") or []
    down = [
        f"{f.get('exchange')} {f.get('state')}"
        for f in feeds
        if str(f.get("state")).upper() != "LIVE"
    ]
    if not feeds or down:
        return f"feeds not LIVE: {', '.join(down) or 'none reported'}", pid
    if first_pid is not None and pid != first_pid:
        return f"the engine restarted (pid {first_pid} -> {pid})", pid
    for svc in _services(spec):
        if svc.get("state") != "running":
            return f"service {svc.get('unit')} is {svc.get('state')}", pid
        if svc.get("restarts"):
            return f"service {svc.get('unit')} restarted {svc['restarts']} time(s)", pid
    return "", pid


def soak(spec: dict[str, Any]) -> int:
    # Settling: the health gate saw the engine ACTIVE; its feeds may still be connecting. Wait
    # (up to `settle` seconds) for a first fully healthy check; no restart is allowed meanwhile.
    settle = time.monotonic() + float(spec.get("settle", 30))
    why, pid = problem(spec, None)
    while why and "restart" not in why and time.monotonic() < settle:
        time.sleep(0.2)
        why, pid = problem(spec, pid)
    if why:
        print(f"soak failed before its first healthy check: {why}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + float(spec["seconds"])
    checks = 1
    while True:
        time.sleep(min(float(spec["interval"]), max(0.0, deadline - time.monotonic())))
        why, pid = problem(spec, pid)
        if why:
            print(f"soak failed after {checks} healthy check(s): {why}", file=sys.stderr)
            return 1
        checks += 1
        if time.monotonic() >= deadline:
            print(json.dumps({"healthy_checks": checks, "seconds": spec["seconds"]}))
            return 0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def holder_text(holder: dict[str, Any]) -> str:
    """Who holds a roll-out lock: `apply run R by user@host (pid P, started S)`."""
    who = holder.get("by") or f"{holder.get('user', '?')}@{holder.get('host', '?')}"
    return (
        f"{holder.get('command') or 'apply'} run {holder.get('run') or '(unknown)'} by {who} "
        f"(pid {holder.get('pid', '?')}, started {holder.get('since', '?')})"
    )


def deployed(install: Path) -> dict[str, Any]:
    """What the host runs, from its install dir alone: `current` (release id), `manifest`
    (its text), `record` (apply.json) and `lock` (the lock's holder, {} when free)."""
    current = install / "current"
    out: dict[str, Any] = {
        "current": os.path.basename(os.path.realpath(current)) if current.is_symlink() else ""
    }
    try:
        out["manifest"] = (current / "manifest.json").read_text()
    except OSError:
        out["manifest"] = ""
    out["record"] = _read_json(install / "apply.json")
    lock = install / "lock"
    out["lock"] = (_read_json(lock / "holder.json") or {"run": ""}) if lock.is_dir() else {}
    return out


def state(spec: dict[str, Any]) -> int:
    install = Path(spec["install_dir"])
    lock = install / "lock"
    holder = _read_json(lock / "holder.json")
    changed = False
    run = str(spec.get("run") or "")
    if spec["action"] == "lock":
        install.mkdir(parents=True, exist_ok=True)
        try:
            lock.mkdir()
            took = True
        except FileExistsError:
            took = False
        if not took and (holder.get("run") or "") not in [run, *spec.get("stale", [])]:
            print(
                f"{spec['host']} is locked by {holder_text(holder)}: wait for it to finish; "
                f"if that run is gone, --break-lock names it and removes {lock}",
                file=sys.stderr,
            )
            return 3
        holder = dict(spec.get("holder") or {}) | {
            "run": run,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = lock / f".holder.{os.getpid()}"
        tmp.write_text(json.dumps(holder, sort_keys=True) + "\n")
        tmp.replace(lock / "holder.json")
        changed = True
    elif spec["action"] == "unlock" and run and holder.get("run") == run:
        shutil.rmtree(lock, ignore_errors=True)
        changed = True
    out: dict[str, Any] = {"py_rt_state": 1, "changed": changed}
    out["manager"] = spec.get("manager", "")
    out |= deployed(install)
    out["engine"] = out["engine_error"] = ""
    out["services"] = []
    if out["manifest"] and spec.get("engine", True):
        endpoint = json.loads(out["manifest"])["engine"]["bus"]["control"]
        ctl = [str(install / "current/bin/rt-engine"), "ctl", "--endpoint", endpoint]
        try:
            res = subprocess.run(
                [*ctl, "--timeout-ms", "1000", "status"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            out["engine"], out["engine_error"] = res.stdout, res.stderr
        except (OSError, subprocess.SubprocessError) as exc:
            out["engine_error"] = str(exc)
        out["services"] = _services(spec)
    print(json.dumps(out))
    return 0


def main(argv: list[str]) -> int:
    command, spec = argv[1], json.loads(argv[2])
    return soak(spec) if command == "soak" else state(spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
