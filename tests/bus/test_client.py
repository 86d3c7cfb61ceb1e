"""The bus client against a fake engine on real ZeroMQ sockets: seq loss accounting, control
round trips, timeouts and the socket that must be replaced after one."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import zmq

from appliance.bus import bus_pb2 as pb
from appliance.bus.client import (
    ControlClient,
    EventSubscriber,
    Malformed,
    SeqTracker,
    Unreachable,
    control,
    dec,
    make_request,
    to_python,
)
from tests.bus.conftest import synced
from tests.bus.fake_engine import FakeEngine


def drain(sub: EventSubscriber, quiet: float = 0.3) -> list[pb.Event]:
    out = []
    while (got := sub.recv(quiet)) is not None:
        out.append(got.event)
    return out


def test_seq_tracker_counts_gaps_and_restarts() -> None:
    t = SeqTracker()
    assert t.see(41) == 0  # joined a running engine: earlier messages are not "lost"
    assert t.see(42) == 0
    assert t.see(45) == 2
    assert t.see(46) == 0
    assert (t.lost, t.gaps, t.restarts) == (2, 1, 0)
    assert t.see(3) == 2  # a new engine process; its seq 1 and 2 never arrived
    assert (t.lost, t.gaps, t.restarts, t.last) == (4, 2, 1, 3)
    assert t.see(1) == 0  # restarted again, nothing missed
    assert (t.lost, t.gaps, t.restarts, t.received) == (4, 2, 2, 6)


def test_subscriber_detects_seq_gaps(quiet_engine: FakeEngine) -> None:
    with synced(quiet_engine) as sub:
        base = quiet_engine.seq
        for seq in (base + 1, base + 2, base + 5, base + 6, base + 10):
            quiet_engine.publish(pb.Event(feed=quiet_engine.feed()), seq=seq)
        events = drain(sub)
        assert [e.seq for e in events] == [base + 1, base + 2, base + 5, base + 6, base + 10]
        tracker = sub.streams["paper_1"]
        assert (sub.lost, sub.gaps, tracker.last) == (5, 2, base + 10)


def test_subscriber_tracks_each_engine_separately() -> None:
    with FakeEngine("a", heartbeat_s=None) as a, FakeEngine("b", heartbeat_s=None) as b:
        sub = synced(a)
        sub_b_ep = b.events
        # one SUB socket may connect to several publishers
        assert sub._sock is not None
        sub._sock.connect(sub_b_ep)
        end = time.monotonic() + 5
        while "b" not in sub.streams and time.monotonic() < end:
            b.publish(pb.Event(feed=b.feed()))
            sub.recv(0.05)
        drain(sub)
        a.publish(pb.Event(feed=a.feed()), seq=a.seq + 3)
        b.publish(pb.Event(feed=b.feed()))
        drain(sub)
        assert sub.streams["a"].lost == 2
        assert sub.streams["b"].lost == 0
        sub.close()


def test_every_message_dropped_at_the_hwm_is_counted() -> None:
    """A burst far beyond both high-water marks and the socket buffers, read by nobody: PUB
    drops silently, and the seq shows every message that went missing."""
    with FakeEngine(heartbeat_s=None, sndhwm=1000) as fake:
        sub = synced(fake, hwm=1000)
        tracker = sub.streams["paper_1"]
        first, received_before = fake.seq + 1, tracker.received
        burst = 20_000
        big = pb.FeedState(exchange="x" * 2000, state=pb.LIVE)  # ~40 MB in all
        for _ in range(burst):
            fake.publish(pb.Event(feed=big))
        fake.flush(30)
        drain(sub, quiet=0.5)
        # a few slow messages after the burst, so that a loss at its very end is seen too
        for _ in range(3):
            fake.publish(pb.Event(feed=fake.feed()))
            time.sleep(0.05)
        drain(sub, quiet=0.5)
        received = tracker.received - received_before
        assert tracker.last == first + burst + 2
        assert received + tracker.lost == burst + 3
        assert tracker.lost > 0, "expected drops beyond HWM 1000 (the test is about them)"
        assert sub.lost == tracker.lost
        sub.close()


def test_malformed_messages_are_counted_and_skipped(quiet_engine: FakeEngine) -> None:
    with synced(quiet_engine) as sub:
        quiet_engine._outbox.put((pb.Event(feed=quiet_engine.feed()), None))
        drain(sub)
        # bytes that do not parse as an Event (a truncated varint)
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        assert sub._sock is not None
        sub._sock.connect(f"tcp://127.0.0.1:{port}")
        end = time.monotonic() + 5
        while sub.malformed == 0 and time.monotonic() < end:
            pub.send(b"\x08\xff\xff")
            sub.recv(0.05)
        pub.close(linger=0)
        ctx.term()
        assert sub.malformed >= 1
        assert sub.lost == 0


def test_status_round_trip_with_decimals(engine: FakeEngine) -> None:
    reply = control(engine.control, make_request("status"), timeout=2)
    assert reply.ok
    data = to_python(reply)
    status = data["status"]
    assert status["engine_id"] == "paper_1"
    assert status["risk_state"] == "ACTIVE"
    assert status["equity"] == Decimal("9998.7812")
    assert isinstance(status["positions"][0]["qty"], Decimal)
    assert status["positions"][0]["qty"] == Decimal("0.00400")
    assert str(status["positions"][0]["qty"]) == "0.00400"  # exact digits, not a float
    assert status["feeds"][0]["state"] == "LIVE"


def test_commands_change_the_engine_state(engine: FakeEngine) -> None:
    with ControlClient(engine.control, timeout=2) as client:
        assert client.request(make_request("pause")).status.paused
        assert client.request(make_request("kill")).status.risk_state == pb.HALTED
        reply = client.request(make_request("resume"))
        assert (reply.status.paused, reply.status.risk_state) == (False, pb.ACTIVE)
        assert client.request(make_request("tighten", "max_daily_loss", "150")).ok
        refused = client.request(make_request("tighten", "max_daily_loss", "500"))
        assert not refused.ok
        assert "would loosen" in refused.error
    assert engine.requests == ["pause", "kill", "resume", "tighten", "tighten"]


def test_control_timeout_is_bounded() -> None:
    with FakeEngine(answer_control=False) as fake:
        start = time.monotonic()
        with pytest.raises(Unreachable) as info:
            control(fake.control, make_request("status"), timeout=0.3)
        elapsed = time.monotonic() - start
        assert 0.25 <= elapsed < 2.0
        assert fake.control in str(info.value)


def test_nothing_listening_is_unreachable() -> None:
    start = time.monotonic()
    with pytest.raises(Unreachable, match=r"tcp://127\.0\.0\.1:9 within 0\.2 s"):
        control("tcp://127.0.0.1:9", make_request("status"), timeout=0.2)
    assert time.monotonic() - start < 2.0


def test_a_timed_out_socket_is_replaced() -> None:
    """After a timeout the REQ socket still waits for its reply and would refuse to send
    (EFSM); the client makes a new one, so the next request works."""
    with FakeEngine(answer_control=False) as fake, ControlClient(fake.control) as client:
        with pytest.raises(Unreachable):
            client.request(make_request("status"), timeout=0.2)
        fake.answer_control = True
        reply = client.request(make_request("pause"), timeout=3)
        assert reply.ok and reply.status.paused


def test_dec() -> None:
    assert dec("") is None
    assert dec("0.00001") == Decimal("0.00001")
    with pytest.raises(Malformed):
        dec("1,5")
    with pytest.raises(Malformed):
        dec("NaN")
