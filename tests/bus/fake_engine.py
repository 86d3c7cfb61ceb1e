"""A stand-in for `rt-engine run`'s bus side, for tests: real ZeroMQ sockets on 127.0.0.1.

One background thread owns both sockets (ZeroMQ sockets are not thread-safe): it answers the
REP control socket like the engine does (status, pause, resume, flatten, kill, tighten-only
limits), publishes queued events with its own `seq` (or a forced one, to make gaps), and a
heartbeat every `heartbeat_s`.
"""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal
from types import TracebackType
from typing import Self

import zmq

from appliance.bus import bus_pb2 as pb

LIMITS = {
    "max_daily_loss": Decimal("200"),
    "max_open_orders": Decimal("10"),
    "instruments.BTCUSDT.max_position": Decimal("0.05"),
}


class FakeEngine:
    def __init__(
        self,
        engine_id: str = "paper_1",
        heartbeat_s: float | None = 0.05,
        answer_control: bool = True,
        manifest_sha256: str = "ab" * 32,
        sndhwm: int = 100_000,
    ) -> None:
        self.engine_id = engine_id
        self.heartbeat_s = heartbeat_s
        self.answer_control = answer_control
        self.manifest_sha256 = manifest_sha256
        self.paused = False
        self.risk_state = pb.ACTIVE
        self.limits = dict(LIMITS)
        self.requests: list[str] = []
        self.seq = 0
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, sndhwm)  # before bind: a listener copies it
        port = self._pub.bind_to_random_port("tcp://127.0.0.1")
        self.events = f"tcp://127.0.0.1:{port}"
        self._rep = self._ctx.socket(zmq.REP)
        self._rep.setsockopt(zmq.LINGER, 0)
        port = self._rep.bind_to_random_port("tcp://127.0.0.1")
        self.control = f"tcp://127.0.0.1:{port}"
        self._outbox: queue.Queue[tuple[pb.Event, int | None]] = queue.Queue()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="fake-engine", daemon=True)
        self._thread.start()

    # ---- what tests call ----

    def publish(self, event: pb.Event, seq: int | None = None) -> None:
        """Queue an event; `seq` forces its sequence number (the counter continues from it)."""
        self._outbox.put((event, seq))

    def flush(self, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while not self._outbox.empty():
            if time.monotonic() > end:
                raise TimeoutError("fake engine did not publish its queue")
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pub.close(linger=0)
        self._rep.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- the engine's side ----

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def position(self) -> pb.Position:
        return pb.Position(
            exchange="sim_binance",
            symbol="BTCUSDT",
            qty="0.00400",
            avg_entry_price="60123.45",
            realised_pnl="-1.25",
            unrealised_pnl="0.0312",
            fees="0.48",
        )

    def feed(self) -> pb.FeedState:
        return pb.FeedState(exchange="sim_binance", state=pb.LIVE, reconnects=1, snapshots=2)

    def heartbeat(self) -> pb.Heartbeat:
        return pb.Heartbeat(
            uptime_ms=self.uptime_ms(),
            risk_state=self.risk_state,
            paused=self.paused,
            open_orders=2,
            equity="9998.7812",
            realised_pnl="-1.25",
            fees="0.48",
            counters={"md_messages": 1000 + self.seq, "fills": 3, "orders_sent": 12},
            latency=[
                pb.StageLatency(
                    stage="tick_to_order", count=12, p50_ns=3100, p99_ns=15200, max_ns=20100
                ),
                pb.StageLatency(
                    stage="frame_to_parsed", count=900, p50_ns=800, p99_ns=2100, max_ns=9000
                ),
            ],
            positions=[self.position()],
            feeds=[self.feed()],
            manifest_sha256=self.manifest_sha256,
        )

    def status(self) -> pb.Status:
        return pb.Status(
            engine_id=self.engine_id,
            host="local",
            deployment="paper_local",
            mode="paper",
            manifest_sha256=self.manifest_sha256,
            risk_state=self.risk_state,
            paused=self.paused,
            uptime_ms=12_345,
            open_orders=2,
            equity="9998.7812",
            positions=[self.position()],
            feeds=[self.feed()],
            last_event_seq=self.seq,
            pid=4242,
        )

    def _answer(self, request: pb.ControlRequest) -> pb.ControlReply:
        command = request.WhichOneof("command")
        self.requests.append(command or "")
        if command == "pause":
            self.paused = True
        elif command == "resume":
            self.paused = False
            self.risk_state = pb.ACTIVE
        elif command == "kill":
            self.risk_state = pb.HALTED
        elif command == "tighten":
            limit, value = request.tighten.limit, request.tighten.value
            if limit not in self.limits:
                return pb.ControlReply(ok=False, error=f"unknown risk limit {limit!r}")
            if Decimal(value) > self.limits[limit]:
                return pb.ControlReply(
                    ok=False,
                    error=f"{limit} {value} would loosen the limit (now {self.limits[limit]})",
                )
            self.limits[limit] = Decimal(value)
        elif command not in ("status", "flatten"):
            return pb.ControlReply(ok=False, error="empty control request")
        return pb.ControlReply(ok=True, status=self.status())

    def _send(self, event: pb.Event, seq: int | None) -> None:
        self.seq = self.seq + 1 if seq is None else seq
        event.engine_id = self.engine_id
        event.seq = self.seq
        event.ts_ns = time.monotonic_ns()
        event.wall_ns = time.time_ns()
        self._pub.send(event.SerializeToString())

    def _loop(self) -> None:
        next_hb = time.monotonic()
        poller = zmq.Poller()
        poller.register(self._rep, zmq.POLLIN)
        while not self._stop.is_set():
            if self.answer_control and poller.poll(5):
                data = self._rep.recv()
                req = pb.ControlRequest()
                req.ParseFromString(data)
                self._rep.send(self._answer(req).SerializeToString())
            elif not self.answer_control:
                time.sleep(0.005)
            while True:
                try:
                    event, seq = self._outbox.get_nowait()
                except queue.Empty:
                    break
                self._send(event, seq)
            if self.heartbeat_s is not None and time.monotonic() >= next_hb:
                self._send(pb.Event(heartbeat=self.heartbeat()), None)
                next_hb = time.monotonic() + self.heartbeat_s
