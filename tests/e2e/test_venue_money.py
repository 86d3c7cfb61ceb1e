"""What the venue charged, end to end: the real engine against the sim venue over loopback,
the sim charging commissions as Binance does (in the asset received, or in BNB).

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import signal
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from tests.e2e.harness import Live, counters, live, wait_for
from tests.e2e.test_live import wait_live

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
