"""What the fleet runs, read from the hosts; the roll-out lock; the local record as a cache.

Each host keeps its own truth under its install dir: `current` (the release it runs, with its
manifest) and `apply.json` (which run switched it there, or rolled it back, when and why).
`ansible/state.yml` reads that, the engine's own status and the services' restarts from
every host. The controller's `state/deployed/<deployment>/` is rewritten from what the hosts
report after every roll-out (also a partial one: each host as it is), so it is a cache, and
`appliance status` shows where a host and the cache differ.

Two applies cannot interleave: a local lock (flock on `state/locks/<deployment>.lock`, freed
when its process dies) and a lock on every host (`<install>/lock`, a directory made with
mkdir). Both record their holder: user, host, pid, command, run id and when it started; a
refusal names it. A host lock left by a run that died on this controller is taken over: the
local lock file names the last run that held it, and a free flock means that run is over. One
left by a run elsewhere stays until `--break-lock` names it, is confirmed, and takes it over.

Hosts on a local prefix root (target connection local, root not "/") are read directly
(`deployed` of the host helper, ansible/roles/engine/files/py_rt_host.py, the script the
state playbook runs on a host): quick enough for every plan.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import getpass
import importlib.util
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from appliance.config.compiler import Compiled
from appliance.config.manifest import BuiltManifest, write_build
from appliance.deploy.inventory import Inventory
from appliance.deploy.runner import RunResult, run_playbook
from appliance.plan.diff import Side

APPLY_RECORD = "apply.json"
STATE_TASK = "Report the host's state"
LOCKS_DIR = Path("state") / "locks"
DEPLOYED_DIR = Path("state") / "deployed"
HELPER = Path("ansible/roles/engine/files/py_rt_host.py")


class Refused(Exception):
    """Another run holds the lock, or the fleet cannot be read: nothing was changed."""


@dataclass
class Target:
    """A compiled deployment rendered for Ansible: what every fleet command starts from."""

    project: Path
    compiled: Compiled
    inventory: Inventory
    private_dir: Path

    @property
    def deployment(self) -> str:
        return self.compiled.deployment

    @property
    def hosts(self) -> list[str]:
        return [h.host for h in self.inventory.hosts]


def prepare(project: Path, overrides: Sequence[str]) -> Target:
    """Compile, check the targets, write the build and render the inventory."""
    from appliance.config.compiler import compile_config

    return prepare_compiled(project, compile_config(project, list(overrides)))


def prepare_compiled(project: Path, compiled: Compiled) -> Target:
    """`prepare` of a compile made already."""
    from appliance.deploy import inventory as inv
    from appliance.engine import EngineNotFound, engine_binary

    inv.check_targets(project, compiled)
    try:
        binary = engine_binary(project)
    except EngineNotFound:
        try:  # the engine built next to this appliance package (a scratch project has none)
            binary = engine_binary()
        except EngineNotFound as exc:
            raise Refused(str(exc)) from None
    build_dir = write_build(project / "build", compiled.deployment, compiled.manifests)
    private_dir = project / "state" / "ansible" / compiled.deployment
    inventory = inv.render(project, compiled, build_dir, binary, private_dir / "inventory")
    return Target(project, compiled, inventory, private_dir)


@dataclass
class HostState:
    """One host as it reported itself (`reachable` False: it did not answer)."""

    host: str
    reachable: bool = False
    current: str = ""
    manifest_text: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] | None = None
    engine_error: str = ""
    services: list[dict[str, Any]] = field(default_factory=list)
    lock: dict[str, Any] = field(default_factory=dict)
    manager: str = ""
    error: str | None = None

    @property
    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_text:
            return None
        data: dict[str, Any] = json.loads(self.manifest_text)
        return data

    @property
    def content_sha256(self) -> str | None:
        m = self.manifest
        return str(m["content_sha256"]) if m else None

    def engine_summary(self) -> str:
        """`ACTIVE, feeds LIVE` (what the engine says), or why there is no answer."""
        if not self.current:
            return "nothing deployed"
        if self.engine is None:
            return "not answering"
        feeds = self.engine.get("feeds") or []
        states = sorted({str(f.get("state")) for f in feeds}) or ["none"]
        paused = ", paused" if self.engine.get("paused") else ""
        risk = str(self.engine.get("risk_state")).upper()
        return f"{risk}{paused}, feeds {'/'.join(states)}"

    def services_summary(self) -> str:
        if not self.services:
            return "-"
        running = sum(1 for s in self.services if s.get("state") == "running")
        restarts = sum(int(s.get("restarts") or 0) for s in self.services)
        return f"{running}/{len(self.services)} running, {restarts} restarts"


def _service(raw: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's status line, or systemd's unit properties, as unit/state/restarts."""
    if "ActiveState" in raw:
        return {
            "unit": str(raw.get("Id", "")).removesuffix(".service"),
            "state": "running" if raw.get("ActiveState") == "active" else raw.get("ActiveState"),
            "restarts": int(raw.get("NRestarts") or 0),
        }
    return {k: raw.get(k) for k in ("unit", "state", "restarts")}


def _parse(host: str, msg: dict[str, Any]) -> HostState:
    engine = None
    text = str(msg.get("engine") or "").strip()
    if text:
        with contextlib.suppress(ValueError, IndexError):
            engine = json.loads(text.splitlines()[-1]).get("status")
    record = msg.get("record")
    lock = msg.get("lock")
    return HostState(
        host=host,
        reachable=True,
        current=str(msg.get("current") or ""),
        manifest_text=str(msg.get("manifest") or ""),
        record=record if isinstance(record, dict) else {},
        engine=engine,
        engine_error=" ".join(str(msg.get("engine_error") or "").split())[:200],
        services=[_service(s) for s in msg.get("services") or [] if isinstance(s, dict)],
        lock=lock if isinstance(lock, dict) else {},
        manager=str(msg.get("manager") or ""),
    )


def by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def holder(command: str) -> dict[str, Any]:
    """Who takes a lock: this controller's user, host and pid, and the command it runs."""
    return {
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "by": by(),
        "command": command,
    }


@functools.cache
def _helper(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("py_rt_host", path)
    if spec is None or spec.loader is None:
        raise Refused(f"cannot load the host helper {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_helper(project: Path) -> ModuleType:
    """The engine role's host helper (files/py_rt_host.py), for reading local prefix roots:
    the project's, else the one beside this package (a project without ansible/)."""
    path = project / HELPER
    if not path.is_file():
        path = Path(__file__).resolve().parents[2] / HELPER
    return _helper(path.resolve())


def holder_text(who: dict[str, Any]) -> str:
    """`apply run R by user@host (pid P, started S)`: a lock's holder, in the words the host
    helper's refusal uses (files/py_rt_host.py holder_text)."""
    name = who.get("by") or f"{who.get('user', '?')}@{who.get('host', '?')}"
    return (
        f"{who.get('command') or 'apply'} run {who.get('run') or '(unknown)'} by {name} "
        f"(pid {who.get('pid', '?')}, started {who.get('since', '?')})"
    )


def local_install(project: Path, compiled: Compiled, host: str) -> Path | None:
    """The install dir of a host on a local prefix root (None: reached through Ansible)."""
    from appliance.deploy.inventory import install_dir

    target = compiled.targets.get(host)
    if target is None or target.connection != "local" or target.root == "/":
        return None
    return install_dir(project, target)


def observe(
    project: Path, compiled: Compiled, target: Callable[[], Target]
) -> tuple[dict[str, HostState], dict[str, str]]:
    """What each host runs (release, manifest, apply record, lock), without the lock: local
    prefix roots read directly, every other host by `ansible/state.yml` (`target()` makes the
    inventory only then). The second value names each host's source ("host" read directly,
    "ansible" read through Ansible)."""
    helper = host_helper(project)
    states: dict[str, HostState] = {}
    via: dict[str, str] = {}
    remote = []
    for built in compiled.manifests:
        install = local_install(project, compiled, built.host)
        if install is None:
            remote.append(built.host)
            continue
        states[built.host] = _parse(built.host, helper.deployed(install))
        via[built.host] = "local prefix root"
    if remote:
        from appliance._extras import require

        require("deploy", "ansible_runner", "ansible.cli")
        read_states, result = read(target(), hosts=remote)
        for host in remote:
            state = read_states[host]
            if not state.reachable and state.error is None:
                state.error = f"ansible: {result.status}"
            states[host] = state
            via[host] = "ansible"
    return states, via


def read(
    target: Target,
    *,
    action: str = "read",
    run: str = "",
    stale: Sequence[str] = (),
    command: str = "",
    hosts: Sequence[str] | None = None,
    timeout: int = 300,
    engine: bool = True,
) -> tuple[dict[str, HostState], RunResult]:
    """Every host's state by `ansible/state.yml`; with action lock/unlock, the host locks too.
    `engine` False leaves out the engine's status and the services (quicker: a lock, or a
    record, needs only the release, manifest and apply record)."""
    names = list(hosts) if hosts is not None else target.hosts
    states = {h: HostState(h) for h in names}

    def on_event(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and data.get("task") == STATE_TASK:
            msg = (data.get("res") or {}).get("msg")
            host = str(data.get("host"))
            if isinstance(msg, dict) and host in states:
                states[host] = _parse(host, msg)

    extravars = {
        "py_rt_lock_action": action,
        "py_rt_stale_runs": list(stale),
        "py_rt_read_engine": engine,
    }
    result = play(target, "state.yml", names, timeout, run, command or action, extravars, on_event)
    for host, r in result.hosts.items():
        if r.failure and host in states:
            states[host].error = r.failure
    return states, result


def play(
    target: Target,
    playbook: str,
    hosts: Sequence[str],
    timeout: int,
    run: str = "",
    command: str = "",
    extravars: dict[str, Any] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run one of ansible/*.yml on `hosts` of the target, naming the run and its command."""
    return run_playbook(
        target.project / "ansible",
        target.private_dir,
        playbook,
        target.inventory.directory,
        list(hosts),
        limit=",".join(hosts),
        on_event=on_event,
        timeout=timeout,
        extravars={
            "py_rt_run": run,
            "py_rt_by": by(),
            "py_rt_command": command,
            "py_rt_holder": holder(command),
        }
        | (extravars or {}),
    )


@dataclass
class LocalLock:
    """flock on `state/locks/<deployment>.lock`; the file names the last run that held it
    (user, host, pid, command, run, when it started)."""

    path: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stale: list[str] = field(default_factory=list)
    _fh: IO[str] | None = None

    def acquire(self, command: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            who = _json(fh.read())
            fh.close()
            # A flock is held by a live process (it is freed when its holder dies): nothing
            # to break.
            raise Refused(
                f"another {who.get('command', 'apply')} of this deployment runs here: "
                f"{holder_text(who)}; nothing was changed (a lock held by a live process "
                "is not broken, --break-lock included)"
            ) from None
        fh.seek(0)
        last = _json(fh.read()).get("run")
        # The flock was free: the run named in the file is over (finished or killed).
        self.stale = [str(last)] if last else []
        fh.seek(0)
        fh.truncate()
        who = holder(command) | {
            "run": self.run,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        fh.write(json.dumps(who, sort_keys=True) + "\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Asks whether to break these locks (each named); False refuses.
ConfirmBreak = Callable[[list[str]], bool]


def _break(target: Target, lock: LocalLock, command: str, confirm: ConfirmBreak) -> list[str]:
    """The runs whose host locks this run takes over, confirmed: each lock another run holds,
    named first."""
    states, result = read(target, run=lock.run, command=command, engine=False)
    unread = [f"{h}: {s.error or result.status}" for h, s in states.items() if not s.reachable]
    if unread:
        raise Refused("cannot read the locks to break: " + "; ".join(unread))
    held = {
        h: s.lock
        for h, s in sorted(states.items())
        if s.lock and str(s.lock.get("run") or "") not in lock.stale
    }
    if not held:
        return []
    named = [f"{h} is locked by {holder_text(who)}" for h, who in held.items()]
    alive = [
        line
        for line, who in zip(named, held.values(), strict=True)
        if who.get("host") == socket.gethostname() and _alive(who.get("pid"))
    ]
    if alive:
        raise Refused(
            "; ".join(alive) + ": that process is alive on this machine; a live run's lock is "
            "not broken, --break-lock included"
        )
    if not confirm(named):
        raise Refused("the locks were not broken: not confirmed; nothing was changed")
    return sorted({str(who.get("run") or "") for who in held.values()})


@contextlib.contextmanager
def locked(
    target: Target, command: str, break_lock: ConfirmBreak | None = None
) -> Iterator[tuple[str, dict[str, HostState]]]:
    """Hold the local lock and every host's lock; yield the run id and the hosts' state read
    while locking. The caller releases the host locks with `unlock` (reading the hosts as they
    are then); if it leaves without (a refusal), they are released on the way out. A run that
    dies leaves them to the next run from this controller, which takes them over. With
    `break_lock`, host locks other runs hold are named, confirmed by it, and taken over."""
    lock = LocalLock(target.project / LOCKS_DIR / f"{target.deployment}.lock")
    lock.acquire(command)
    taken = False
    try:
        broken = _break(target, lock, command, break_lock) if break_lock else []
        stale = [*lock.stale, *broken]
        states, result = read(
            target, action="lock", run=lock.run, stale=stale, command=command, engine=False
        )
        refused = [s.error for s in states.values() if s.error]
        if refused or not result.ok:
            # Release what this run took before refusing.
            read(target, action="unlock", run=lock.run, command=command)
            raise Refused("; ".join(str(r) for r in refused) or f"ansible: {result.status}")
        taken = True
        yield lock.run, states
    finally:
        if taken and lock.run not in _UNLOCKED:
            read(target, action="unlock", run=lock.run, command=command)
        lock.release()


# The runs whose host locks `unlock` released (so `locked` does not release them again).
_UNLOCKED: set[str] = set()


def unlock(target: Target, run: str, command: str, engine: bool = True) -> dict[str, HostState]:
    """Release the host locks of `run` and read every host's state as it is now (`engine`:
    with the engine's status and the services)."""
    states, _ = read(target, action="unlock", run=run, command=command, engine=engine)
    _UNLOCKED.add(run)
    return states


def moved(planned: dict[str, HostState], now: dict[str, HostState]) -> list[str]:
    """The hosts whose release or apply record changed between two reads."""
    out = []
    for host, was in sorted(planned.items()):
        new = now.get(host)
        if new is None or (was.current, was.record) != (new.current, new.record):
            out.append(f"{host}: {was.current or '(none)'} -> {new.current if new else '?'}")
    return out


def cached(project: Path, deployment: str) -> tuple[Side, dict[str, Any]]:
    """The local record: the manifests last read from the hosts, and its apply.json."""
    from appliance.plan import sides

    side = sides.deployed(project, deployment)
    try:
        record = json.loads((project / DEPLOYED_DIR / deployment / APPLY_RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    return side, record if isinstance(record, dict) else {}


def deployed_side(
    project: Path, deployment: str, states: dict[str, HostState]
) -> tuple[Side, list[str]]:
    """The deployed side of a plan, from the hosts; a host that did not answer comes from the
    local record (named in the second value)."""
    cache, _ = cached(project, deployment)
    manifests: dict[str, dict[str, Any]] = {}
    from_cache = []
    for host, state in sorted(states.items()):
        manifest = state.manifest
        if state.reachable:
            if manifest is not None:
                manifests[host] = manifest
        elif host in cache.manifests:
            manifests[host] = cache.manifests[host]
            from_cache.append(host)
    sources = {h: cache.sources.get(h, {}) for h in manifests}
    read_now = [h for h, s in sorted(states.items()) if s.reachable]
    label = f"read from the hosts: {', '.join(read_now) or 'none'}"
    if from_cache:
        label += f"; from the local record (did not answer): {', '.join(from_cache)}"
    label = f"{'what the hosts run' if manifests else 'nothing deployed'} ({label})"
    return Side(manifests, sources, label), from_cache


def plan_side(project: Path, compiled: Compiled) -> Side:
    """The deployed side of `appliance plan`: read from every host (ansible/state.yml, or a
    local prefix root directly), never from the local record alone; the record is refreshed
    from what was read. A host that cannot be read is a diagnostic naming it and why."""
    from appliance.config.diagnostics import ConfigError, Diagnostic

    def target() -> Target:
        return prepare_compiled(project, compiled)

    states, _ = observe(project, compiled, target)
    unread = [
        Diagnostic(
            f"targets.{host}",
            host,
            "plan.host_unreachable",
            f"cannot read what host {host} runs: {state.error or 'it did not answer'}; "
            "nothing was planned (`appliance plan --cached` plans against the local record, "
            "labelled so)",
        )
        for host, state in sorted(states.items())
        if not state.reachable
    ]
    unread = [d.with_source(compiled.composed.source_of(d.path)) for d in unread]
    if unread:
        raise ConfigError(unread)
    side, _ = deployed_side(project, compiled.deployment, states)
    cache_dir = project / DEPLOYED_DIR / compiled.deployment
    if side.manifests or cache_dir.exists():
        record(project, compiled, states, None)
        side = Side(side.manifests, side.sources, side.label + "; local record refreshed")
    return side


def cached_side(project: Path, deployment: str) -> Side:
    """`appliance plan --cached`: the local record only, labelled as such."""
    side, rec = cached(project, deployment)
    when = rec.get("recorded_at", "never")
    label = (
        f"the LOCAL RECORD of {when} (--cached: the hosts were not read; "
        "it may not be what they run)"
    )
    return Side(side.manifests, side.sources, label)


def record(
    project: Path,
    compiled_now: Compiled,
    states: dict[str, HostState],
    binary_sha256: str | None,
) -> Path:
    """Rewrite `state/deployed/<deployment>/` from what each host reports (a host that did not
    answer keeps its cached entry). `binary_sha256` None keeps the recorded one (a plan
    reads the hosts, it does not ship a binary)."""
    deployment = compiled_now.deployment
    cache, old = cached(project, deployment)
    if binary_sha256 is None:
        binary_sha256 = str(old.get("binary_sha256") or "")
    compiled = {m.host: m for m in compiled_now.manifests}
    built: list[BuiltManifest] = []
    hosts: dict[str, Any] = {}
    for host, state in sorted(states.items()):
        text = state.manifest_text
        entry = {"release": state.current, "source": "host", "record": state.record}
        if not state.reachable:
            if host not in cache.manifests:
                continue
            text = json.dumps(cache.manifests[host], indent=2, sort_keys=True) + "\n"
            entry = dict((old.get("hosts") or {}).get(host) or {}) | {"source": "cache"}
        if not text:
            continue
        manifest = json.loads(text)
        sha = manifest["content_sha256"]
        same = compiled.get(host)
        sources = same.sources if same is not None and same.content_sha256 == sha else {}
        built.append(
            BuiltManifest(
                manifest["engine"]["id"],
                host,
                text,
                sha,
                dict(sources or cache.sources.get(host, {})),
            )
        )
        hosts[host] = entry | {"engine": manifest["engine"]["id"], "content_sha256": sha}
    out = write_build(project / DEPLOYED_DIR, deployment, built)
    (out / APPLY_RECORD).write_text(
        json.dumps(
            {
                "deployment": deployment,
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "binary_sha256": binary_sha256,
                "hosts": hosts,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    return out


def drift(state: HostState, cache: dict[str, Any]) -> str:
    """How the host differs from the local record ("" when it does not)."""
    entry = (cache.get("hosts") or {}).get(state.host)
    if not state.reachable:
        return "host did not answer"
    if entry is None:
        return "not in the record" if state.current else ""
    if not state.current:
        return f"record says {entry.get('release')}, host has nothing"
    if entry.get("release") != state.current:
        return f"record says {entry.get('release')}, host runs {state.current}"
    if entry.get("content_sha256") != state.content_sha256:
        return "manifest differs from the record"
    return ""
