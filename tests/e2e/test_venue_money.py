"""What the venue charged, end to end: the real engine against the sim venue over loopback,
the sim charging commissions as Binance does (in the asset received, or in BNB).

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from tests.e2e.harness import Live, counters, live, wait_for
from tests.e2e.test_live import wait_live, wait_resting

BNB_PRICE = Decimal("600")  # conf/exchange/sim_binance_spot.yaml: sim.bnb_price and the reference


def fills(env: Live) -> list[dict[str, Any]]:
    return [r for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "fill"]


def net_position(records: list[dict[str, Any]]) -> Decimal:
    """What the account holds after these fills: bought - sold - what the venue kept in BTC."""
    net = Decimal(0)
    for r in records:
        q = Decimal(r["qty"])
        net += q if r["side"] == "buy" else -q
        if r.get("commission_asset") == "BTC":
            net -= Decimal(r["commission"])
    return net


def position(env: Live) -> tuple[Decimal, Decimal]:
    """(qty, fees) of the engine's one position."""
    status = env.status_or_none()
    assert status is not None
    (pos,) = status.positions
    return Decimal(pos.qty), Decimal(pos.fees)


def settle(env: Live) -> None:
    """Pause (every order cancelled) and wait until nothing is open."""
    reply = env.command("pause")
    assert reply.ok, reply.error
    wait_for(
        lambda: (s := env.status_or_none()) is not None and s.open_orders == 0,
        30,
        "every order cancelled",
    )


def test_commissions_are_booked_in_the_asset_the_venue_charged(tmp_path: Path) -> None:
    # As Binance charges without BNB: the asset received (BTC on a buy, USDT on a sell).
    with live(
        tmp_path,
        "exchanges.sim_binance.sim.commission_asset=received",
        "strategies.mm_btcusdt.params.half_spread_ticks=1",
        speed="8",
    ) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(
            lambda: any(r.get("commission_asset") == "BTC" for r in fills(env)),
            120,
            "a buy paying its commission in BTC",
        )
        # From now on in BNB, from a balance of 1 BNB (the fault command).
        env.fault("kind=commission&asset=bnb&bnb_balance=1")
        wait_for(
            lambda: any(r.get("commission_asset") == "BNB" for r in fills(env)),
            120,
            "a fill paying its commission in BNB",
        )
        settle(env)

        def booked() -> bool:
            qty, fees = position(env)
            records = fills(env)
            return qty == net_position(records) and fees == sum(
                (Decimal(r["fee"]) for r in records), Decimal(0)
            )

        wait_for(booked, 10, "the position and fees to match the journal")
        records = fills(env)
        for r in records:
            amount = Decimal(r["commission"])
            if r["commission_asset"] == "BTC":
                # Not a fee in cash: it left the position.
                assert Decimal(r["fee"]) == 0, r
            elif r["commission_asset"] == "BNB":
                # Valued at the reference price (no BNB book), rounded up to 10^-8 USDT.
                value = (amount * BNB_PRICE).quantize(Decimal("0.00000001"), ROUND_CEILING)
                assert Decimal(r["fee"]) == value, r
            else:
                assert r["commission_asset"] == "USDT" and Decimal(r["fee"]) == amount, r
        wait_for(
            lambda: (
                (c := counters(env.heartbeat())).get("gw_base_commissions", 0) >= 1
                and c.get("gw_other_asset_commissions", 0) >= 1
            ),
            20,
            "the gateway to count the commissions in BTC and BNB",
        )
        assert counters(env.heartbeat())["gw_unpriced_commissions"] == 0
        expected = position(env)

        # A restart rebuilds the same position (and fees) from the journal.
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL
        env.sub = None
        env.start_engine(name="engine2")
        assert position(env) == expected
        assert env.stop("engine2") == 0


def sim_request(env: Live, method: str, path: str) -> Any:
    """An unsigned request to the sim's REST API (paper: no credentials), as another client
    of the same account would send it."""
    stamp = f"timestamp={int(time.time() * 1000)}"
    req = urllib.request.Request(f"{env.rest}{path}&{stamp}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def prevented(env: Live) -> list[dict[str, Any]]:
    return [
        r
        for r in env.journal_records()
        if r["t"] == "exec" and r.get("reason") == "self_trade_prevention"
    ]


def test_a_self_trade_prevented_order_is_closed_not_left_open(tmp_path: Path) -> None:
    with live(tmp_path, speed="4") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_resting(env)
        prefix = "paper_1-"
        # Another client of the same account sells IOC at one of our resting bids: the venue
        # (EXPIRE_MAKER) expires our bid with TRADE_PREVENTION / EXPIRED_IN_MATCH.
        end = time.monotonic() + 60
        n = 0
        expired = ""
        while not expired:
            assert time.monotonic() < end, "no self-trade prevention within 60 s"
            opened = sim_request(env, "GET", "/api/v3/openOrders?symbol=BTCUSDT")
            bids = [
                o for o in opened if o["clientOrderId"].startswith(prefix) and o["side"] == "BUY"
            ]
            if not bids:
                time.sleep(0.2)
                continue
            n += 1
            sim_request(
                env,
                "POST",
                "/api/v3/order?symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=IOC"
                f"&quantity=0.001&price={bids[0]['price']}&newClientOrderId=manual{n}"
                "&selfTradePreventionMode=EXPIRE_MAKER",
            )
            ours = bids[0]["clientOrderId"]
            info = sim_request(env, "GET", f"/api/v3/order?symbol=BTCUSDT&origClientOrderId={ours}")
            if info.get("status") == "EXPIRED_IN_MATCH":
                expired = ours
        # The engine no longer counts it open: a pause cancels the rest and nothing is left
        # (an order left open would be refused by the venue as unknown, forever).
        settle(env)
        wait_for(lambda: bool(prevented(env)), 10, "the expiry journaled")
        (record, *_) = prevented(env)
        assert record["kind"] == "expired" and f"{prefix}{record['id']}" == expired
        status = env.status_or_none()
        assert status is not None and status.open_orders == 0
        wait_for(
            lambda: counters(env.heartbeat()).get("gw_self_trade_prevented", 0) >= 1,
            20,
            "the gateway to count the prevented match",
        )
        assert env.stop("engine") == 0
        assert env.journal_records()[-1]["open_orders"] == 0
