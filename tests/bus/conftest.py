"""Fixtures for bus tests: a fake engine on real loopback sockets, a subscriber synced to it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from appliance.bus.client import EventSubscriber
from tests.bus.fake_engine import FakeEngine


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    with FakeEngine() as fake:
        yield fake


@pytest.fixture
def quiet_engine() -> Iterator[FakeEngine]:
    """No heartbeats: the tests publish every event themselves."""
    with FakeEngine(heartbeat_s=None) as fake:
        yield fake


def synced(engine: FakeEngine, hwm: int = 100_000, timeout: float = 5.0) -> EventSubscriber:
    """A subscriber that has received at least one event (the SUB is connected: ZeroMQ's slow
    joiner would otherwise miss the first messages)."""
    sub = EventSubscriber(engine.events, hwm=hwm)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if engine.heartbeat_s is None:
            from appliance.bus import bus_pb2 as pb

            engine.publish(pb.Event(feed=engine.feed()))
        if sub.recv(0.05) is not None:
            while sub.recv(0.05) is not None:
                pass
            return sub
    sub.close()
    raise TimeoutError(f"no event from the fake engine at {engine.events}")
