"""The live engine end to end: `rt-engine sim` + `rt-engine run` + a bus subscriber, over real
loopback sockets, on the bundled real BTCUSDT capture (replayed faster than real time).

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from appliance.bus import bus_pb2 as pb
from tests.e2e.harness import Live, counters, feed, live, wait_for

LIVE_STATE = pb.FeedStateKind.Value("LIVE")
SENT = pb.OrderStatus.Value("SENT")


def kinds(events: list[pb.Event], kind: str) -> list[pb.Event]:
    return [e for e in events if e.WhichOneof("body") == kind]


# The transports of order entry: every test marked with it runs over both (REST, and the sim's
# WebSocket API with REST the fallback).
TRANSPORTS = pytest.mark.parametrize("order_entry", ["rest", "websocket"])


def assert_transport(env: Live, order_entry: str) -> None:
    """The engine's orders go over the transport the test asked for (with websocket, REST only
    while the WebSocket API connection is not up yet, or lost)."""
    if order_entry == "websocket":
        wait_for(
            lambda: counters(env.heartbeat()).get("gw_ws_api_requests", 0) > 0,
            30,
            "an order over the WebSocket API",
        )
    else:
        assert counters(env.heartbeat()).get("gw_ws_api_requests", 0) == 0


def wait_resting(env: Live, timeout: float = 60) -> None:
    wait_for(
        lambda: (s := env.status_or_none()) is not None and s.open_orders > 0,
        timeout,
        "a resting order",
    )


def wait_live(env: Live, timeout: float = 30) -> pb.Heartbeat:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        hb = env.heartbeat()
        if hb.feeds and feed(hb).state == LIVE_STATE:
            return hb
    raise AssertionError(f"the feed did not go LIVE within {timeout} s")


FUSED = "+hosts.local.threads.layout=fused"
# The threads each layout's hot path runs on (Linux truncates a thread's name to 15 bytes).
HOT_THREADS = {
    "pipeline": {"feed-sim_binanc", "strategy", "gateway"},
    "fused": {"fused"},
}


def engine_threads(env: Live, name: str = "engine") -> set[str]:
    """The names of the engine process's threads (Linux `/proc/PID/task/*/comm`)."""
    pid = env.procs[name].popen.pid
    return {(t / "comm").read_text().strip() for t in Path(f"/proc/{pid}/task").iterdir()}


@pytest.mark.parametrize("layout", ["pipeline", "fused"])
@TRANSPORTS
def test_orders_are_placed_filled_journaled_and_published(
    tmp_path: Path, order_entry: str, layout: str
) -> None:
    # `host.threads.layout: fused`: the feed, the strategy and the gateway run as tasks of one
    # thread; orders are placed, filled, journaled and published as in the pipeline.
    overrides = [FUSED] if layout == "fused" else []
    with live(tmp_path, *overrides, speed="8", order_entry=order_entry) as env:
        assert env.manifest["host"]["threads"].get("layout", "pipeline") == layout
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        threads = engine_threads(env)
        other = "fused" if layout == "pipeline" else "pipeline"
        assert HOT_THREADS[layout] <= threads and not HOT_THREADS[other] & threads, threads
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill")
        assert_transport(env, order_entry)
        env.pump(1.5)
        assert env.stop("engine") == 0, env.procs["engine"].text()
        env.pump(0.5)

        orders = kinds(env.seen, "order")
        fills = kinds(env.seen, "fill")
        assert any(o.order.status == SENT for o in orders)
        assert fills, "no fill published"
        # Nothing lost on the bus: sequence numbers are gapless.
        assert env.sub is not None and env.sub.lost == 0
        # Every published fill is journaled by the gateway.
        journal = env.journal_records()
        jfills = [r for r in journal if r["t"] == "exec" and r["kind"] == "fill"]
        assert len(jfills) >= len(fills)
        assert {(f.fill.order_id, f.fill.qty) for f in fills} <= {
            (r["id"], str(Decimal(r["qty"]).normalize())) for r in jfills
        } | {(r["id"], r["qty"]) for r in jfills}
        assert journal[0]["t"] == "start" and journal[-1]["t"] == "stop"
        assert journal[-1]["open_orders"] == 0, "a clean stop leaves no order open"
        out = engine.text()
        assert "== rt-engine stopped ==" in out and "tick_to_order" in out
        assert ("fused (feeds, strategy, gateway)" in out) == (layout == "fused")


def test_an_injected_gap_is_detected_and_resynced(tmp_path: Path) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        hb = wait_live(env)
        before = feed(hb)
        env.fault("kind=gap")
        wait_for(lambda: feed(env.heartbeat()).gaps > before.gaps, 20, "the feed to count the gap")
        hb = wait_live(env)
        after = feed(hb)
        assert after.snapshots > before.snapshots, "a gap is resynced from a fresh snapshot"
        assert counters(hb)["gaps"] >= 1 or counters(hb)["resyncs"] >= 1
        assert env.stop("engine") == 0


def test_a_malformed_frame_is_counted_and_skipped(tmp_path: Path) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        env.fault("kind=malformed")
        wait_for(lambda: feed(env.heartbeat()).malformed >= 1, 20, "a malformed frame counted")
        hb = env.heartbeat()
        assert feed(hb).state == LIVE_STATE, "one bad frame does not cost the book"
        assert feed(hb).reconnects == 0
        assert env.stop("engine") == 0


def test_a_dropped_connection_reconnects_resyncs_and_sends_nothing_meanwhile(
    tmp_path: Path,
) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        hb = wait_live(env)
        before = feed(hb)
        env.pump(2)
        env.fault("kind=drop_market")
        wait_for(lambda: feed(env.heartbeat()).reconnects > before.reconnects, 20, "a reconnect")
        hb = wait_live(env)
        assert feed(hb).snapshots > before.snapshots
        env.pump(1)
        # Between the feed going down and the book being live again, no order was sent.
        down = False
        for e in env.seen:
            body = e.WhichOneof("body")
            if body == "feed":
                down = e.feed.state != LIVE_STATE
            elif body == "order" and e.order.status == SENT:
                assert not down, f"order {e.order.order_id} sent while the feed was down"
        assert env.stop("engine") == 0


@TRANSPORTS
def test_a_ring_overflow_is_counted_and_resynced(tmp_path: Path, order_entry: str) -> None:
    # The smallest ring that holds a snapshot: the as-fast-as-possible replay overflows it.
    with live(
        tmp_path,
        "hosts.local.rings.market_data.slots=512",
        speed="1000000",
        order_entry=order_entry,
    ) as env:
        env.start_sim()
        # The strategy thread stalls for 3 s at start: the replay fills its ring, for sure.
        env.start_engine(env={"RT_ENGINE_FAULT_STRATEGY_STALL_MS": "3000"})
        wait_for(
            lambda: feed(env.heartbeat()).ring_overflows > 0, 40, "the market-data ring to overflow"
        )
        # The strategy thread reports its counters only once the stall is over: wait for them.
        wait_for(
            lambda: counters(env.heartbeat()).get("ring_gaps", 0) >= 1,
            30,
            "the reader to see the loss as a gap",
        )
        wait_for(lambda: feed(env.heartbeat()).snapshots >= 2, 30, "a resync from a snapshot")
        connected = "order entry over the WebSocket API connected" in env.procs["engine"].text()
        assert connected == (order_entry == "websocket")
        assert env.stop("engine") == 0


def test_a_ring_too_small_for_a_snapshot_is_refused_at_start(tmp_path: Path) -> None:
    with live(tmp_path, "hosts.local.rings.market_data.slots=64") as env:
        proc = env._spawn("engine", ["run", "--manifest", str(env.manifest_path)])
        assert proc.popen.wait(30) == 1
        assert "host.rings.market_data.slots: 64 slots" in proc.text()


@TRANSPORTS
def test_sigkill_then_restart_recovers_positions_from_the_journal(
    tmp_path: Path, order_entry: str
) -> None:
    with live(tmp_path, speed="8", order_entry=order_entry) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill")
        assert_transport(env, order_entry)
        env.pump(1)
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL
        assert any(r["t"] == "exec" and r["kind"] == "fill" for r in env.journal_records())
        # The killed engine's journal ring outlives it (what it held is replayed at restart).
        assert (env.journal / "journal.ring").is_file()
        env.sub = None  # a fresh subscriber for the restarted engine
        env.start_engine(name="engine2")
        # The journal as the restart read it: the fills seen before the kill, and those the
        # catch-up with the venue found (made while the engine was down).
        records = env.journal_records()
        restart = max(i for i, r in enumerate(records) if r["t"] == "start")
        net = Decimal(0)
        for r in records[:restart]:
            if r["t"] == "exec" and r["kind"] == "fill":
                q = Decimal(r["qty"])
                net += q if r["side"] == "buy" else -q
        status = env.status_or_none()
        assert status is not None
        (pos,) = status.positions
        assert Decimal(pos.qty) == net, f"recovered {pos.qty}, the journal says {net}"
        text = env.procs["engine2"].text()
        assert "fills replayed" in text and "did not stop cleanly" in text
        assert env.stop("engine2") == 0
        # A clean stop empties the ring into the journal and removes it.
        assert not (env.journal / "journal.ring").exists()


HALTED = pb.RiskStateKind.Value("HALTED")
ACTIVE = pb.RiskStateKind.Value("ACTIVE")


def test_a_kill_a_pause_and_a_tightened_limit_survive_a_crash(tmp_path: Path) -> None:
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        reply = env.command("tighten", "max_open_orders", "1")
        assert reply.ok, reply.error
        reply = env.command("kill")
        assert reply.ok, reply.error
        assert reply.status.risk_state == HALTED
        # A crash right after the operator's kill: nothing of it may be lost.
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL
        controls = [r["command"] for r in env.journal_records() if r["t"] == "control"]
        assert controls == ["tighten", "kill"]

        env.sub = None
        env.seen.clear()  # only what the restarted engine publishes
        env.start_engine(name="engine2")
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.risk_state == HALTED,
            10,
            "the restarted engine to report HALTED",
        )
        status = env.status_or_none()
        assert status is not None and status.paused
        text = env.procs["engine2"].text()
        assert "risk state HALTED (kill_switch) restored" in text, text
        assert "re-applied: risk.max_open_orders tightened to 1" in text, text
        wait_live(env)
        env.pump(3)
        sent = [e for e in kinds(env.seen, "order") if e.order.status == SENT]
        assert not sent, f"a restarted, killed engine sent orders: {sent}"

        # Only an operator's resume lifts it; the tightened limit still holds afterwards.
        reply = env.command("resume")
        assert reply.ok, reply.error
        assert reply.status.risk_state == ACTIVE and not reply.status.paused
        env.pump_until(
            lambda e: e.WhichOneof("body") == "order" and e.order.status == SENT, 60, "an order"
        )
        most = 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            s = env.status_or_none()
            if s is not None:
                most = max(most, s.open_orders)
            time.sleep(0.05)
        assert most <= 1, f"{most} open orders with max_open_orders tightened to 1"
        assert env.stop("engine2") == 0


def test_a_new_manifest_drops_the_limits_tightened_under_the_old_one(tmp_path: Path) -> None:
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        env.start_engine()
        reply = env.command("tighten", "max_open_orders", "1")
        assert reply.ok, reply.error
        assert env.stop("engine") == 0
        # Another manifest (a reviewed change) writes a different hash into the journal's start.
        manifest = json.loads(env.manifest_path.read_text())
        journal = env.journal / "journal.jsonl"
        lines = journal.read_text().splitlines()
        start = json.loads(lines[0])
        assert start["t"] == "start" and start["manifest_sha256"] == manifest["content_sha256"]
        start["manifest_sha256"] = "0" * 64
        journal.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
        env.sub = None
        # Journaled under the other hash, the tighten is not re-applied to this manifest.
        env.start_engine(name="engine2")
        text = env.procs["engine2"].text()
        assert "1 limit(s) tightened under the previous manifest are dropped" in text, text
        assert "re-applied" not in text
        assert env.stop("engine2") == 0


@pytest.mark.parametrize("layout", ["pipeline", "fused"])
def test_kill_cancels_every_open_order_and_nothing_follows(tmp_path: Path, layout: str) -> None:
    with live(tmp_path, *([FUSED] if layout == "fused" else []), speed="4") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_resting(env)
        sent_at = time.monotonic()
        reply = env.command("kill")
        assert reply.ok, reply.error
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.open_orders == 0,
            2,
            "every order cancelled",
            step=0.01,
        )
        took = time.monotonic() - sent_at
        status = env.status_or_none()
        assert status is not None and status.risk_state == pb.RiskStateKind.Value("HALTED")
        mark = status.last_event_seq
        env.pump(3)
        late = [e for e in kinds(env.seen, "order") if e.seq > mark and e.order.status == SENT]
        assert not late, f"orders sent after the kill: {late}"
        assert took < 2
        assert env.stop("engine") == 0


CREDENTIALS = (
    "exchanges.sim_binance.credentials="
    "{api_key:env:PYRT_E2E_API_KEY,api_secret:env:PYRT_E2E_API_SECRET}"
)


@TRANSPORTS
def test_signed_order_entry_and_a_wrong_secret_refused(tmp_path: Path, order_entry: str) -> None:
    # The sim verifies HMAC-SHA256 signatures with the exchange's credentials; the engine
    # signs with its own copy. Random per-test values: test data, never real secrets.
    key, secret = os.urandom(16).hex(), os.urandom(32).hex()
    venue = {"PYRT_E2E_API_KEY": key, "PYRT_E2E_API_SECRET": secret}
    with live(tmp_path, CREDENTIALS, speed="8", order_entry=order_entry) as env:
        assert env.manifest["exchanges"]["sim_binance"]["credentials"]["api_secret"] == (
            "env:PYRT_E2E_API_SECRET"
        ), "the manifest holds the reference only"
        env.start_sim(env=venue)
        env.start_engine(env=venue)
        wait_live(env)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a signed order's fill")
        assert_transport(env, order_entry)
        assert env.stop("engine") == 0
        assert secret not in env.procs["engine"].text()

        # The same engine with a wrong secret: the venue refuses its first signed request
        # (reconciling open orders) and the engine stops before it trades.
        wrong = {**venue, "PYRT_E2E_API_SECRET": os.urandom(32).hex()}
        proc = env._spawn("engine_wrong", ["run", "--manifest", str(env.manifest_path)], wrong)
        assert proc.popen.wait(30) == 2, proc.text()
        assert "the venue refused our credentials (-1022" in proc.text(), proc.text()
        assert "fills 0" in proc.text()


@TRANSPORTS
def test_a_lost_user_stream_reconnects_catches_up_and_trades_on(
    tmp_path: Path, order_entry: str
) -> None:
    # While its user stream is down the engine cannot see fills: it refuses new orders,
    # reconnects (a new listen key), catches up every working order over REST, and only then
    # trades again. Nothing is lost: the journal ends equal to the venue's trades.
    with live(tmp_path, speed="4", order_entry=order_entry) as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        wait_resting(env)
        assert_transport(env, order_entry)
        env.fault("kind=drop")
        wait_for(lambda: "user data stream back after" in engine.text(), 30, "the reconnect")
        if order_entry == "websocket":
            # The drop took the WebSocket API connection too: made again (REST meanwhile).
            wait_for(
                lambda: "order entry over the WebSocket API back" in engine.text(),
                30,
                "the WebSocket API reconnect",
            )
        assert engine.alive(), engine.text()
        assert "refusing new orders while it reconnects" in engine.text()
        wait_for(
            lambda: counters(env.heartbeat()).get("gw_stream_reconnects", 0) >= 1,
            10,
            "the reconnect counted",
        )
        # Trading goes on: an order sent after the stream came back.
        mark = len(env.seen)
        env.pump_until(
            lambda e: e.WhichOneof("body") == "order" and e.order.status == SENT,
            60,
            "an order after the reconnect",
        )
        assert len(env.seen) > mark
        assert env.stop("engine") == 0
        with urllib.request.urlopen(
            f"{env.rest}/api/v3/openOrders?symbol=BTCUSDT&timestamp={int(time.time() * 1000)}",
            timeout=5,
        ) as r:
            assert json.loads(r.read()) == [], "orders left open at the venue"
        assert_journal_matches_venue(env)


@TRANSPORTS
def test_fills_made_while_the_user_stream_was_down_are_caught_up_in_place(
    tmp_path: Path, order_entry: str
) -> None:
    # Quotes that are never moved (a requote threshold no price move reaches) keep resting at
    # the venue while the account's stream is down, so the replay fills them meanwhile.
    still = "strategies.mm_btcusdt.params.requote_threshold_ticks=1000000"
    with live(tmp_path, still, speed="4", order_entry=order_entry) as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        wait_resting(env)
        assert_transport(env, order_entry)
        env.fault("kind=drop_user")
        wait_for(lambda: "refusing new orders" in engine.text(), 10, "the loss noticed")

        def journaled_fills() -> int:
            return sum(1 for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "fill")

        wait_for(
            lambda: len(sim_trades(env)) > journaled_fills(),
            90,
            "a fill the engine cannot see",
            step=0.5,
        )
        env.fault("kind=clear")
        wait_for(lambda: "user data stream back after" in engine.text(), 30, "the reconnect")
        back = next(line for line in engine.text().splitlines() if "stream back after" in line)
        caught = int(back.split("caught up ")[1].split(" fill")[0])
        assert caught >= 1, back
        assert engine.alive()
        assert env.stop("engine") == 0
        assert_journal_matches_venue(env)


@TRANSPORTS
def test_an_order_of_unknown_outcome_is_settled_by_asking_the_venue(
    tmp_path: Path, order_entry: str
) -> None:
    # -1007 ("timeout waiting for response from backend server; send status unknown"): the
    # order may or may not be live. The venue here refused it, so when asked it does not know
    # the order, and the engine closes it instead of counting it open forever.
    with live(tmp_path, speed="4", order_entry=order_entry) as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        wait_resting(env)
        assert_transport(env, order_entry)
        env.fault("kind=reject&count=1&code=-1007")
        wait_for(
            lambda: "the venue does not know it: rejected" in engine.text(),
            60,
            "the unknown outcome settled",
        )
        line = next(ln for ln in engine.text().splitlines() if "no clear answer" in ln)
        order_id = int(line.split("order ")[1].split(":")[0])
        closed = [
            r
            for r in env.journal_records()
            if r["t"] == "exec" and r["id"] == order_id and r["kind"] == "rejected"
        ]
        assert closed, f"order {order_id} is not closed in the journal"
        assert env.stop("engine") == 0
        assert_journal_matches_venue(env)


def test_orders_go_over_rest_while_the_ws_api_is_down_and_back_over_it_after(
    tmp_path: Path,
) -> None:
    # The WebSocket API alone is lost (market data and the user stream stay up) and stays
    # refused until cleared: new orders and cancels go over REST meanwhile, and over the
    # WebSocket API again once it is back. Nothing is lost either way.
    with live(tmp_path, speed="4", order_entry="websocket") as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        wait_resting(env)
        assert_transport(env, "websocket")
        env.fault("kind=drop_ws_api")
        wait_for(lambda: "WebSocket API connection lost" in engine.text(), 10, "the loss noticed")
        before = counters(env.heartbeat())
        wait_for(
            lambda: counters(env.heartbeat()).get("gw_orders", 0) >= before["gw_orders"] + 3,
            60,
            "orders over REST meanwhile",
        )
        down = counters(env.heartbeat())
        assert down["gw_ws_api_requests"] == before["gw_ws_api_requests"], (before, down)
        env.fault("kind=clear")
        wait_for(
            lambda: "order entry over the WebSocket API back" in engine.text(), 30, "the reconnect"
        )
        wait_for(
            lambda: counters(env.heartbeat())["gw_ws_api_requests"] > down["gw_ws_api_requests"],
            60,
            "orders over the WebSocket API again",
        )
        assert env.stop("engine") == 0
        assert_journal_matches_venue(env)


def test_a_half_open_user_stream_is_noticed_by_a_ping_and_replaced(tmp_path: Path) -> None:
    # The venue's side of the account stream goes silent without closing it (as a half-open
    # TCP connection does): only an unanswered ping shows it is gone.
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        env.fault("kind=freeze_user")
        wait_for(lambda: "no answer to a ping within 5 s" in engine.text(), 40, "the ping")
        wait_for(lambda: "user data stream back after" in engine.text(), 30, "the reconnect")
        assert engine.alive(), engine.text()
        assert env.stop("engine") == 0
        assert_journal_matches_venue(env)


def test_a_user_stream_that_stays_lost_stops_the_engine(tmp_path: Path) -> None:
    # A venue gone for good: the reconnect gives up after its deadline and the engine stops
    # (exit 2) rather than trade without seeing its fills.
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        assert env.stop("sim", signal.SIGKILL) == -signal.SIGKILL
        assert engine.popen.wait(90) == 2, engine.text()
        text = engine.text()
        assert "user data stream lost" in text, text
        assert "lost for 30 s" in text and "stopping (no fill may go unseen)" in text, text
        records = env.journal_records()
        assert records[-1]["t"] != "stop", "an unclean stop is not journaled as clean"


def venue_open_orders(env: Live) -> int:
    """How many of the account's orders rest at the venue, as the venue says."""
    url = f"{env.rest}/api/v3/openOrders?symbol=BTCUSDT&timestamp={int(time.time() * 1000)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return len(json.loads(r.read()))


def sim_trades(env: Live) -> list[dict[str, Any]]:
    """The account's trades as the venue has them: the oracle of the position."""
    trades: list[dict[str, Any]] = []
    while True:
        from_id = trades[-1]["id"] + 1 if trades else 0
        url = (
            f"{env.rest}/api/v3/myTrades?symbol=BTCUSDT&fromId={from_id}&limit=1000"
            f"&timestamp={int(time.time() * 1000)}"
        )
        with urllib.request.urlopen(url, timeout=5) as r:
            page: list[dict[str, Any]] = json.loads(r.read())
        trades.extend(page)
        if len(page) < 1000:
            return trades


def assert_journal_matches_venue(env: Live) -> None:
    """Every fill the venue made is in the journal, to the last lot: the position rebuilt from
    it is the venue's."""
    trades = sim_trades(env)
    fills = [r for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "fill"]
    assert len(fills) == len(trades), f"journal {len(fills)} fills, venue {len(trades)}"

    def net(rows: list[tuple[bool, str]]) -> Decimal:
        return sum((Decimal(q) if buy else -Decimal(q) for buy, q in rows), Decimal(0))

    venue_qty = net([(t["isBuyer"], t["qty"]) for t in trades])
    journal_qty = net([(f["side"] == "buy", f["qty"]) for f in fills])
    assert journal_qty == venue_qty, f"journal {journal_qty}, venue {venue_qty}"


@TRANSPORTS
def test_fills_made_while_the_engine_was_down_are_caught_up_at_restart(
    tmp_path: Path, order_entry: str
) -> None:
    # Quotes that are never moved keep resting at the venue after the engine dies: killed
    # between a requote's cancel and its new order, the engine would leave nothing to fill.
    still = "strategies.mm_btcusdt.params.requote_threshold_ticks=1000000"
    with live(tmp_path, still, speed="4", order_entry=order_entry) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_resting(env)
        assert_transport(env, order_entry)
        # The test's own REST queries count against the sim's request weight like the
        # engine's (one IP): poll gently, or the venue answers 429 (weights: openOrders 6,
        # myTrades 20; 6000 a minute in conf/exchange/sim_binance_spot.yaml).
        wait_for(lambda: venue_open_orders(env) > 0, 10, "an order resting at the venue", 0.25)
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL

        def journaled_fills() -> int:
            return sum(1 for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "fill")

        # The orders left resting at the venue keep trading with the replay meanwhile.
        seen = journaled_fills()
        wait_for(lambda: len(sim_trades(env)) > seen, 60, "a fill while the engine is down", 0.5)

        env.sub = None
        env.start_engine(name="engine2")
        text = env.procs["engine2"].text()
        assert "catching up with the venue" in text, text
        assert "fill(s) the engine had not seen" in text, text
        caught = [
            r
            for r in env.journal_records()
            if r["t"] == "exec" and str(r.get("reason", "")).startswith("caught_up trade")
        ]
        assert caught, "the missed fills are journaled"
        status = env.status_or_none()
        assert status is not None and len(status.positions) == 1
        assert env.stop("engine2") == 0
        assert_journal_matches_venue(env)
        # Nothing is left unfinished: a second restart has nothing to catch up.
        env.sub = None
        env.start_engine(name="engine3")
        assert "catching up" not in env.procs["engine3"].text()
        assert env.stop("engine3") == 0
