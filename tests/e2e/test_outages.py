"""Books and risk in outages, end to end: the real engine against the sim venue over loopback,
the sim misbehaving as a real venue can (a crossed diff, diffs out of order, an expired listen
key) and the operator resuming after a loss halt.

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from appliance.bus import bus_pb2 as pb
from tests.e2e.harness import Live, counters, feed, live, wait_for
from tests.e2e.test_live import LIVE_STATE, wait_live
from tests.e2e.test_venue_money import settle, sim_request

HALTED = pb.RiskStateKind.Value("HALTED")


def resynced_without_reconnect(env: Live, fault: str) -> None:
    """Injects `fault` into the market data; the book is back from a fresh snapshot on the
    same connection (no reconnect), promptly."""
    wait_live(env)
    # The first LIVE heartbeat may come before its snapshot is counted.
    wait_for(lambda: feed(env.heartbeat()).snapshots >= 1, 20, "the first snapshot counted")
    before = feed(env.heartbeat())
    env.fault(fault)

    def back() -> bool:
        f = feed(env.heartbeat())
        return f.snapshots > before.snapshots and f.state == LIVE_STATE

    wait_for(back, 20, f"a fresh snapshot after {fault}")
    after = feed(env.heartbeat())
    assert after.reconnects == before.reconnects, "resynced on the connection it had"
    assert after.gaps > before.gaps, "the book's loss of sync is counted"


@pytest.mark.parametrize("fault", ["kind=crossed", "kind=reorder"])
def test_a_book_out_of_sync_asks_for_a_snapshot_at_once(tmp_path: Path, fault: str) -> None:
    # A crossed diff (ids in sequence) and two diffs out of order: BookSync loses sync either
    # way, and the strategy thread asks its feed for a snapshot at once.
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        resynced_without_reconnect(env, fault)
        assert env.stop("engine") == 0


def test_a_transient_crossing_is_repaired_without_a_snapshot(tmp_path: Path) -> None:
    # The sim crosses the book with one diff and undoes it with the next, as a venue can: the
    # engine keeps the crossed book unused for that diff, the next one repairs it, and no
    # snapshot, resync or reconnect is spent on it (a snapshot costs request weight).
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: feed(env.heartbeat()).snapshots >= 1, 20, "the first snapshot counted")
        before_feed, before = feed(env.heartbeat()), counters(env.heartbeat())
        env.fault("kind=crossed&transient=1")

        def repaired() -> bool:
            return counters(env.heartbeat()).get("book_crossings_repaired", 0) > before.get(
                "book_crossings_repaired", 0
            )

        wait_for(repaired, 20, "the crossing repaired by the next diff")
        after_feed, after = feed(env.heartbeat()), counters(env.heartbeat())
        assert after["book_crossings"] == before.get("book_crossings", 0) + 1
        assert after["resyncs"] == before["resyncs"], "no resync"
        assert (after_feed.snapshots, after_feed.gaps, after_feed.reconnects) == (
            before_feed.snapshots,
            before_feed.gaps,
            before_feed.reconnects,
        ), "no snapshot, gap or reconnect"
        assert after_feed.state == LIVE_STATE
        # And it keeps trading on the repaired book.
        sent = after["orders_sent"]
        wait_for(lambda: counters(env.heartbeat())["orders_sent"] > sent, 30, "an order after")
        assert env.stop("engine") == 0


def anchors(env: Live) -> list[dict[str, Any]]:
    return [r for r in env.journal_records() if r["t"] == "anchors"]


def test_resume_after_a_daily_loss_halt_keeps_the_days_start(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill")
        # The fees alone are a loss: a limit of 10^-8 halts at the next equity update.
        reply = env.command("tighten", "max_daily_loss", "0.00000001")
        assert reply.ok, reply.error
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.risk_state == HALTED,
            30,
            "a daily-loss halt",
        )
        wait_for(lambda: bool(anchors(env)), 10, "the day's anchors journaled")
        day_start = anchors(env)[-1]["day_start_equity"]
        reply = env.command("resume")
        assert reply.ok, reply.error
        env.pump(2)
        assert env.stop("engine") == 0
        records = env.journal_records()
        # The clean stop journals the anchors last: the day's start is the one before the halt.
        after = [r["day_start_equity"] for r in records if r["t"] == "anchors"]
        assert set(after) == {day_start}, f"the day's start moved: {after}"
        causes = [(r["to"], r["cause"]) for r in records if r["t"] == "risk"]
        # Halted, resumed, and halted again by the same loss: not a fresh budget.
        resumed = causes.index(("active", "resumed"))
        assert ("halted", "daily_loss") in causes[:resumed], causes
        assert ("halted", "daily_loss") in causes[resumed:], causes


def test_an_expired_listen_key_is_replaced_and_nothing_is_missed(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        env.fault("kind=listen_key_expired")
        wait_for(
            lambda: (
                (c := counters(env.heartbeat())).get("gw_listen_key_expiries", 0) >= 1
                and c.get("gw_stream_reconnects", 0) >= 1
            ),
            30,
            "a new listen key after the expiry",
        )
        # Trading goes on, and every fill the venue made is the engine's.
        expired_at = time.monotonic()
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill after the expiry")
        assert time.monotonic() >= expired_at
        settle(env)

        def journal_matches_venue() -> bool:
            trades = sim_request(env, "GET", "/api/v3/myTrades?symbol=BTCUSDT&limit=1000")
            venue = sum((Decimal(t["qty"]) for t in trades), Decimal(0))
            journal = sum(
                (
                    Decimal(r["qty"])
                    for r in env.journal_records()
                    if r["t"] == "exec" and r["kind"] == "fill"
                ),
                Decimal(0),
            )
            return venue > 0 and venue == journal

        wait_for(journal_matches_venue, 10, "the journal to hold every trade of the venue")
        assert env.stop("engine") == 0
