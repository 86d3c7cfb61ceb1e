"""End-to-end harness: the real sim venue and the real engine over loopback sockets.

A `Live` compiles paper_local into a scratch project with free ports and a scratch journal,
starts `rt-engine sim` and `rt-engine run` as processes, and gives the test a bus subscriber
and a control client. Every wait is bounded; `close()` kills whatever is still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.bus import bus_pb2 as pb
from appliance.bus.client import EventSubscriber, control, make_request
from appliance.config.compiler import compile_config
from appliance.engine import engine_binary
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Live:
    root: Path
    manifest_path: Path
    manifest: dict[str, Any]
    rest: str
    events: str
    control_ep: str
    journal: Path
    # The engine's Prometheus endpoint (base URL; the page is at /metrics).
    metrics: str
    procs: dict[str, Proc] = field(default_factory=dict)
    sub: EventSubscriber | None = None
    seen: list[pb.Event] = field(default_factory=list)

    # ---- processes ----

    def _spawn(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        log = self.root / f"{name}.log"
        fh = log.open("ab")
        popen = subprocess.Popen(
            [str(engine_binary(ROOT)), *args],
            cwd=self.root,
            stdout=fh,
            stderr=fh,
            env={**os.environ, **(env or {})},
        )
        fh.close()
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def start_sim(self, *extra: str, env: dict[str, str] | None = None) -> Proc:
        proc = self._spawn("sim", ["sim", "--manifest", str(self.manifest_path), *extra], env)
        wait_for(lambda: "listening" in proc.text() or not proc.alive(), 30, "the sim to listen")
        assert proc.alive(), f"sim exited:\n{proc.text()}"
        return proc

    def start_engine(
        self, *extra: str, name: str = "engine", env: dict[str, str] | None = None
    ) -> Proc:
        proc = self._spawn(name, ["run", "--manifest", str(self.manifest_path), "-v", *extra], env)
        if self.sub is None:
            self.sub = EventSubscriber(self.events)
        wait_for(lambda: self.status_or_none() is not None or not proc.alive(), 30, "the engine")
        assert proc.alive(), f"engine exited:\n{proc.text()}"
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        proc = self.procs[name]
        if proc.alive():
            proc.popen.send_signal(sig)
        try:
            return proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)
            raise AssertionError(
                f"{name} did not stop within {timeout} s:\n{proc.text()}"
            ) from None

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                proc.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(5)
        if self.sub is not None:
            self.sub.close()
            self.sub = None

    # ---- bus ----

    def status_or_none(self, timeout: float = 0.5) -> pb.Status | None:
        try:
            reply = control(self.control_ep, make_request("status"), timeout=timeout)
        except Exception:
            return None
        return reply.status

    def command(self, name: str, limit: str = "", value: str = "") -> pb.ControlReply:
        return control(self.control_ep, make_request(name, limit, value), timeout=5)

    def pump(self, seconds: float) -> list[pb.Event]:
        """Events received during the next `seconds` (also kept in `seen`)."""
        assert self.sub is not None
        got: list[pb.Event] = []
        for r in self.sub.iter_for(seconds):
            if r is not None:
                got.append(r.event)
        self.seen.extend(got)
        return got

    def pump_until(
        self, predicate: Callable[[pb.Event], bool], timeout: float, what: str
    ) -> pb.Event:
        assert self.sub is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.sub.recv(0.2)
            if r is None:
                continue
            self.seen.append(r.event)
            if predicate(r.event):
                return r.event
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def heartbeat(self, timeout: float = 5) -> pb.Heartbeat:
        ev = self.pump_until(lambda e: e.WhichOneof("body") == "heartbeat", timeout, "a heartbeat")
        return ev.heartbeat

    # ---- sim admin ----

    def fault(self, query: str) -> str:
        req = urllib.request.Request(f"{self.rest}/sim/fault?{query}", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            body: str = r.read().decode()
            return body

    def journal_records(self) -> list[dict[str, Any]]:
        path = self.journal / "journal.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out


@contextlib.contextmanager
def live(
    tmp_path: Path,
    *overrides: str,
    speed: str = "8",
    engine: str = "paper_1",
    order_entry: str = "rest",
) -> Iterator[Live]:
    """A project copy compiled with `overrides` (a deployment other than the default one
    names its `engine`), on free ports, with its journal under `tmp_path`. `order_entry`
    `websocket` sends the orders over the sim's WebSocket API (REST the fallback)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(ROOT / "conf", root / "conf")
    (root / "data").symlink_to(ROOT / "data")
    (root / "models").symlink_to(ROOT / "models")  # model strategies (paper_model)
    ws, rest, ev, ctl, metrics = (free_port() for _ in range(5))
    journal = tmp_path / "journal"
    base = [
        f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
        f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
        f"deployment.engines.{engine}.bus.events=tcp://127.0.0.1:{ev}",
        f"deployment.engines.{engine}.bus.control=tcp://127.0.0.1:{ctl}",
        f"deployment.engines.{engine}.journal.dir={journal}",
        f"deployment.engines.{engine}.metrics.listen=127.0.0.1:{metrics}",
        f"exchanges.sim_binance.sim.speed='{speed}'",
        f"deployment.engines.{engine}.journal.fsync=always",
    ]
    if order_entry != "rest":
        base += [
            f"exchanges.sim_binance.order_entry={order_entry}",
            f"exchanges.sim_binance.endpoints.ws_api=ws://127.0.0.1:{ws}/ws-api/v3",
        ]
    compiled = compile_config(root, [*base, *overrides])
    (m,) = compiled.manifests
    path = root / "engine.manifest.json"
    path.write_text(m.text)
    env = Live(
        root=root,
        manifest_path=path,
        manifest=json.loads(m.text),
        rest=f"http://127.0.0.1:{rest}",
        events=f"tcp://127.0.0.1:{ev}",
        control_ep=f"tcp://127.0.0.1:{ctl}",
        journal=journal,
        metrics=f"http://127.0.0.1:{metrics}",
    )
    try:
        yield env
    finally:
        env.close()


def counters(hb: pb.Heartbeat) -> dict[str, int]:
    return dict(hb.counters)


def feed(hb: pb.Heartbeat) -> pb.FeedState:
    """The one feed's state (an empty one before the feed first reports)."""
    assert len(hb.feeds) <= 1, hb.feeds
    return hb.feeds[0] if hb.feeds else pb.FeedState()
