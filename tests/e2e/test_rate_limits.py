"""The venue's rate limits, end to end: the real engine against the sim venue over loopback,
the sim limiting requests as Binance does (used weight and order counts in the response
headers, HTTP 429 with Retry-After past a limit, HTTP 418, an IP ban, for asking again too
soon) and squeezed or tripped at run time with fault commands.

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from appliance.bus import bus_pb2 as pb
from tests.e2e.harness import Live, counters, live, wait_for
from tests.e2e.test_live import assert_transport, wait_live

HALTED = pb.RiskStateKind.Value("HALTED")
REJECTED = pb.OrderStatus.Value("REJECTED")
# conf/exchange/sim_binance_spot.yaml: rate_limits.orders_per_day
ORDERS_PER_DAY = 200_000


def sim_status(env: Live) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.rest}/sim/status", timeout=5) as r:
        status: dict[str, Any] = json.loads(r.read())
        return status


def rate_limited(env: Live) -> list[dict[str, Any]]:
    """The orders the engine refused by the venue's limits, as journaled."""
    return [
        r
        for r in env.journal_records()
        if r["t"] == "exec" and r["kind"] == "rejected" and r.get("reason") == "venue_rate_limit"
    ]


def trading(env: Live) -> None:
    wait_live(env)
    wait_for(lambda: sim_status(env)["orders"] >= 2, 60, "the engine's first orders")


def test_the_engine_refuses_locally_before_the_venue_would(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.start_engine()
        trading(env)
        # Another client of the account used all but 10 of the day's orders: the engine learns
        # it from X-MBX-ORDER-COUNT-1D and stops at the limit instead of running into a 429.
        env.fault(f"kind=rate_limit&used_orders_1d={ORDERS_PER_DAY - 10}")
        wait_for(lambda: len(rate_limited(env)) >= 3, 60, "orders refused by the engine")
        refused = env.pump_until(
            lambda e: (
                e.WhichOneof("body") == "order"
                and e.order.status == REJECTED
                and e.order.reject_reason == "venue_rate_limit"
            ),
            30,
            "a venue_rate_limit rejection on the bus",
        )
        assert refused.order.reject_reason == "venue_rate_limit"
        # The heartbeat (the gateway reports once a second) shows the pressure: at the limit,
        # with the refusals journaled above. Heartbeats queue on the bus, so one read may predate
        # the third refusal: they are read until one shows all of it.
        seen: dict[str, int] = {}

        def at_the_limit() -> bool:
            seen.clear()
            seen.update(counters(env.heartbeat()))
            return (
                seen.get("rl.sim_binance.orders_1d") == ORDERS_PER_DAY
                and seen.get("rl.sim_binance.refused", 0) >= 3
                and seen.get("gw_rate_limited", 0) >= 3
            )

        wait_for(at_the_limit, 15, "the day's order count at its limit in the heartbeat")
        c = seen
        assert c["rl.sim_binance.orders_1d_limit"] == ORDERS_PER_DAY, c
        assert c["rl.sim_binance.weight_1m_limit"] == 6000, c
        sim = sim_status(env)
        # The venue never had to refuse anything: the engine stopped exactly at the limit.
        assert sim["order_count_1d"] == ORDERS_PER_DAY, sim
        assert (sim["rate_limited"], sim["banned"]) == (0, 0), sim
        assert env.stop("engine") == 0


@pytest.mark.parametrize("order_entry", ["rest", "websocket"])
def test_a_429_is_waited_out_exactly_as_retry_after_says(tmp_path: Path, order_entry: str) -> None:
    with live(tmp_path, speed="8", order_entry=order_entry) as env:
        env.start_sim()
        env.start_engine()
        trading(env)
        assert_transport(env, order_entry)
        # The venue's weight limit squeezed below what the engine knows of: its next request
        # (over the WebSocket API or REST) gets HTTP 429 (status 429) with Retry-After: 3.
        env.fault("kind=rate_limit&weight_limit=1&retry_after_s=3")
        wait_for(lambda: sim_status(env)["rate_limited"] >= 1, 30, "a 429")
        env.fault("kind=rate_limit&weight_limit=6000")
        # The engine sends nothing until Retry-After is over (a request before would be banned
        # by the sim), then trades again.
        wait_for(lambda: sim_status(env)["resumed_after_429_ms"] is not None, 30, "a request after")
        sim = sim_status(env)
        assert sim["resumed_after_429_ms"] >= 3000, sim
        # Requests already on their way when the 429 was answered get a 429 too, not a ban.
        assert sim["rate_limited"] >= 1 and sim["banned"] == 0, sim
        orders = sim["orders"]
        wait_for(lambda: sim_status(env)["orders"] > orders, 30, "orders after the back-off")
        # The heartbeats queued since the 429 are read until one shows it.
        wait_for(
            lambda: (
                counters(env.heartbeat()).get("rl.sim_binance.throttled_429") == sim["rate_limited"]
            ),
            10,
            "the 429s in the heartbeat",
        )
        c = counters(env.heartbeat())
        assert c["rl.sim_binance.banned_418"] == 0, c
        # What the strategy sent meanwhile was refused here, journaled with its own reason.
        assert rate_limited(env), "orders refused during the back-off"
        assert "HTTP 429" in env.procs["engine"].text()
        assert env.stop("engine") == 0


@pytest.mark.parametrize("order_entry", ["rest", "websocket"])
def test_a_418_stops_order_entry_until_the_ban_is_over_and_an_operator_resumes(
    tmp_path: Path, order_entry: str
) -> None:
    with live(tmp_path, speed="8", order_entry=order_entry) as env:
        env.start_sim()
        env.start_engine()
        trading(env)
        assert_transport(env, order_entry)
        banned_at = time.monotonic()
        env.fault("kind=ban&s=4")
        env.pump_until(
            lambda e: (
                e.WhichOneof("body") == "risk"
                and e.risk.cause == "venue_ban"
                and e.risk.to_state == HALTED
            ),
            30,
            "a venue_ban halt on the bus",
        )
        sim = sim_status(env)
        # The requests on their way when the ban began were refused too (418).
        requests, orders, banned = sim["api_requests"], sim["orders"], sim["banned"]
        assert banned >= 1, sim
        # Nothing goes to the venue during the ban (the halt's cancels are refused here too)...
        env.pump(max(0.0, banned_at + 3.5 - time.monotonic()))
        sim = sim_status(env)
        assert (sim["api_requests"], sim["banned"]) == (requests, banned), sim
        # ... and no order after it while HALTED.
        env.pump(max(0.0, banned_at + 6 - time.monotonic()))
        sim = sim_status(env)
        assert (sim["orders"], sim["banned"]) == (orders, banned), sim
        status = env.status_or_none()
        assert status is not None and status.risk_state == HALTED
        c = counters(env.heartbeat())
        assert c["rl.sim_binance.banned_418"] == banned, c
        assert "PAGE sim_binance: HTTP 418" in env.procs["engine"].text()
        risk = [(r["to"], r["cause"]) for r in env.journal_records() if r["t"] == "risk"]
        assert ("halted", "venue_ban") in risk, risk
        # The ban is over and an operator resumes: orders flow again.
        reply = env.command("resume")
        assert reply.ok, reply.error
        wait_for(lambda: sim_status(env)["orders"] > orders, 60, "orders after the resume")
        assert sim_status(env)["banned"] == banned
        assert env.stop("engine") == 0
