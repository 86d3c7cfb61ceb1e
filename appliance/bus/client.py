"""The Python client of the engine's bus (proto/bus.proto over ZeroMQ).

- `EventSubscriber`: a SUB socket on an engine's events endpoint. It decodes each message as
  one `Event` and tracks `seq` per engine, so that lost messages (the engine drops what a
  subscriber too slow for its high-water mark cannot take, and counts only that it happened)
  are counted, never silently ignored.
- `ControlClient` / `control()`: REQ to the engine's control (REP) endpoint with a timeout. A
  REQ socket whose request timed out is stuck in its send/receive state machine, so it is
  closed and a fresh one made for the next request.

Decimal strings (prices, sizes, money) become `decimal.Decimal`, never floats (`dec`,
`to_python`). Sockets are always closed (linger 0) before a context they own is terminated:
`ctx.term()` otherwise hangs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Self

import zmq
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from appliance.bus import bus_pb2 as pb

# The string fields of the contract that carry decimal quantities.
DECIMAL_FIELDS = frozenset(
    {
        "price",
        "qty",
        "filled_qty",
        "fee",
        "leaves_qty",
        "avg_entry_price",
        "realised_pnl",
        "unrealised_pnl",
        "fees",
        "equity",
    }
)

DEFAULT_TIMEOUT_S = 2.0


class BusError(RuntimeError):
    """A bus problem worth one line to the user (no traceback)."""


class Unreachable(BusError):
    def __init__(self, endpoint: str, timeout: float) -> None:
        super().__init__(
            f"no reply from the engine's control socket at {endpoint} within {timeout:g} s "
            "(is the engine running?)"
        )
        self.endpoint = endpoint
        self.timeout = timeout


class Malformed(BusError):
    pass


def dec(text: str) -> Decimal | None:
    """A contract decimal string as Decimal; "" (unset in proto3) is None."""
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Malformed(f"not a decimal string: {text!r}") from None
    if not value.is_finite():
        raise Malformed(f"not a finite decimal: {text!r}")
    return value


def enum_name(message: Message, field_name: str) -> str:
    """The symbolic name of an enum field's value (e.g. `ACTIVE`), or its number if unknown."""
    fd = message.DESCRIPTOR.fields_by_name[field_name]
    number = getattr(message, field_name)
    assert fd.enum_type is not None
    value = fd.enum_type.values_by_number.get(number)
    return value.name if value is not None else str(number)


def _value(fd: Any, value: Any) -> Any:  # a FieldDescriptor (upb or pure-Python)
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return to_python(value)
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    if fd.type == FieldDescriptor.TYPE_STRING and fd.name in DECIMAL_FIELDS:
        return dec(value)
    return value


def to_python(message: Message) -> dict[str, Any]:
    """A message as plain Python: every field (proto3 defaults included, only the set member of
    a oneof), enums by name, decimal strings as Decimal (unset ones as None)."""
    out: dict[str, Any] = {}
    for fd in message.DESCRIPTOR.fields:
        oneof = fd.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) != fd.name:
            continue
        value = getattr(message, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: _value(value_fd, v) for k, v in sorted(value.items())}
        elif fd.is_repeated:
            out[fd.name] = [_value(fd, v) for v in value]
        else:
            out[fd.name] = _value(fd, value)
    return out


def json_default(value: Any) -> Any:
    """For json.dumps: decimals keep their exact digits as strings."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class SeqTracker:
    """Loss accounting for one engine's event stream (`seq` is 1, 2, 3, ... per process)."""

    last: int | None = None
    received: int = 0
    lost: int = 0
    gaps: int = 0
    restarts: int = 0

    def see(self, seq: int) -> int:
        """Record one received seq; returns how many messages were lost just before it."""
        self.received += 1
        missed = 0
        if self.last is None:
            # Joining a running engine: what was published before we connected is not "lost".
            pass
        elif seq == self.last + 1:
            pass
        elif seq > self.last + 1:
            missed = seq - self.last - 1
            self.gaps += 1
        else:
            # seq went back: a new engine process. Anything it published before this message
            # did not reach us.
            self.restarts += 1
            missed = seq - 1
            if missed:
                self.gaps += 1
        self.lost += missed
        self.last = seq
        return missed


@dataclass
class Received:
    event: pb.Event
    # messages of this engine lost just before this one
    lost_before: int
    # seq went back: a new engine process (its state starts afresh)
    restarted: bool = False


class EventSubscriber:
    """SUB on an engine's events endpoint; `recv(timeout)` returns the next decoded event.

    `hwm` is the receive high-water mark: set it as deliberately as the engine's send HWM (the
    manifest's `engine.bus.hwm`), since messages beyond it are dropped. Every drop shows up as a
    seq gap in `lost`.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = 100_000,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._own_ctx = ctx is None
        self._ctx: zmq.Context[zmq.Socket[bytes]] = ctx if ctx is not None else zmq.Context()
        self._sock: zmq.Socket[bytes] | None = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        # Retry a not-yet-bound endpoint quickly (an engine being started): what it publishes
        # before the connection is up never reaches us, and is not counted as lost.
        self._sock.setsockopt(zmq.RECONNECT_IVL, 20)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        try:
            self._sock.connect(endpoint)
        except zmq.ZMQError as err:
            self.close()
            raise BusError(f"cannot subscribe to {endpoint}: {err}") from None
        # engine id -> its stream's loss accounting
        self.streams: dict[str, SeqTracker] = {}
        self.malformed = 0
        self.messages = 0

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.streams.values())

    @property
    def gaps(self) -> int:
        return sum(t.gaps for t in self.streams.values())

    def recv(self, timeout: float) -> Received | None:
        """The next event within `timeout` seconds, or None. Undecodable messages are counted
        in `malformed` and skipped."""
        if self._sock is None:
            raise BusError("subscriber is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(remaining_ms, zmq.POLLIN):
                return None
            data = self._sock.recv(zmq.NOBLOCK, copy=True)
            self.messages += 1
            event = pb.Event()
            try:
                event.ParseFromString(data)
            except DecodeError:
                self.malformed += 1
                continue
            tracker = self.streams.setdefault(event.engine_id, SeqTracker())
            restarts = tracker.restarts
            missed = tracker.see(event.seq)
            return Received(event, missed, tracker.restarts > restarts)

    def iter_for(self, duration: float, tick: float = 0.1) -> Iterator[Received | None]:
        """Events for `duration` seconds; yields None every `tick` without traffic."""
        end = time.monotonic() + duration
        while (left := end - time.monotonic()) > 0:
            yield self.recv(min(tick, left))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._own_ctx:
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


class ControlClient:
    """REQ to an engine's control endpoint: one `ControlRequest`, one `ControlReply`."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._own_ctx = ctx is None
        self._ctx: zmq.Context[zmq.Socket[bytes]] = ctx if ctx is not None else zmq.Context()
        self._sock: zmq.Socket[bytes] | None = None

    def _socket(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            try:
                sock.connect(self.endpoint)
            except zmq.ZMQError as err:
                sock.close(linger=0)
                raise BusError(f"bad control endpoint {self.endpoint}: {err}") from None
            self._sock = sock
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def request(self, request: pb.ControlRequest, timeout: float | None = None) -> pb.ControlReply:
        """Send one request and wait for its reply; raises Unreachable after `timeout`."""
        wait = self.timeout if timeout is None else timeout
        sock = self._socket()
        try:
            sock.send(request.SerializeToString(), zmq.NOBLOCK)
        except zmq.Again:
            # No connection yet and nothing can be queued: the same as no reply.
            self._drop_socket()
            raise Unreachable(self.endpoint, wait) from None
        if not sock.poll(int(wait * 1000), zmq.POLLIN):
            # The REQ socket now waits for a reply that may never come: it cannot send again.
            self._drop_socket()
            raise Unreachable(self.endpoint, wait)
        data = sock.recv()
        reply = pb.ControlReply()
        try:
            reply.ParseFromString(data)
        except DecodeError:
            raise Malformed(f"malformed control reply from {self.endpoint}") from None
        return reply

    def close(self) -> None:
        self._drop_socket()
        if self._own_ctx:
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


def control(
    endpoint: str, request: pb.ControlRequest, timeout: float = DEFAULT_TIMEOUT_S
) -> pb.ControlReply:
    """One control round trip on a fresh socket; raises Unreachable after `timeout` seconds."""
    with ControlClient(endpoint, timeout=timeout) as client:
        return client.request(request)


COMMANDS = ("status", "pause", "resume", "flatten", "kill")


def make_request(command: str, limit: str = "", value: str = "") -> pb.ControlRequest:
    """The ControlRequest for a command name (`status`, ..., `tighten` with limit and value)."""
    req = pb.ControlRequest()
    if command == "status":
        req.status.SetInParent()
    elif command == "pause":
        req.pause.SetInParent()
    elif command == "resume":
        req.resume.SetInParent()
    elif command == "flatten":
        req.flatten.SetInParent()
    elif command == "kill":
        req.kill.SetInParent()
    elif command == "tighten":
        req.tighten.limit = limit
        req.tighten.value = value
    else:
        raise ValueError(f"unknown control command {command!r}")
    return req
