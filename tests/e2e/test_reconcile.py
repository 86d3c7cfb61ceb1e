"""Reconciliation with the venue, end to end: the real engine against the sim venue over
loopback, the sim serving Binance's `GET /api/v3/exchangeInfo` and `GET /api/v3/account` from
the manifest and its own accounts, and changing them behind the engine's back (fault commands);
and risk on a stale book (the market data stalls while the engine holds a position).

Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from appliance.bus import bus_pb2 as pb
from tests.e2e.harness import Live, counters, feed, live, wait_for
from tests.e2e.test_live import wait_live
from tests.e2e.test_venue_money import fills, sim_request

HALTED = pb.RiskStateKind.Value("HALTED")
REDUCING = pb.RiskStateKind.Value("REDUCING")
ACTIVE = pb.RiskStateKind.Value("ACTIVE")
# conf/exchange/sim_binance_spot.yaml: reconcile.starting_balances
START = {"BTC": Decimal("1"), "USDT": Decimal("100000")}


def exchange_info(env: Live) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.rest}/api/v3/exchangeInfo", timeout=5) as r:
        info: dict[str, Any] = json.loads(r.read())
        return info


def balances(env: Live) -> dict[str, Decimal]:
    account = sim_request(env, "GET", "/api/v3/account?recvWindow=5000")
    return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in account["balances"]}


def risk_changes(env: Live) -> list[pb.RiskChange]:
    return [e.risk for e in env.seen if e.WhichOneof("body") == "risk"]


def test_the_sim_serves_binances_metadata_and_account_and_the_engine_agrees(
    tmp_path: Path,
) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        (symbol,) = exchange_info(env)["symbols"]
        filters = {f["filterType"]: f for f in symbol["filters"]}
        assert symbol["symbol"] == "BTCUSDT"
        assert (symbol["baseAsset"], symbol["quoteAsset"]) == ("BTC", "USDT")
        assert Decimal(filters["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
        assert Decimal(filters["LOT_SIZE"]["stepSize"]) == Decimal("0.00001")
        assert Decimal(filters["NOTIONAL"]["minNotional"]) == Decimal("5")
        assert balances(env) == START
        engine = env.start_engine()
        wait_live(env)
        wait_for(lambda: len(fills(env)) >= 2, 120, "fills")
        # Checked every 5 s while trading: the journal's fills and commissions explain every
        # move of the venue's balances.
        wait_for(
            lambda: counters(env.heartbeat()).get("reconcile_checks", 0) >= 2,
            30,
            "two periodic balance checks",
        )
        c = counters(env.heartbeat())
        assert c.get("balance_mismatches") == 0, c
        assert c.get("metadata_mismatches") == 0, c
        assert env.status_or_none() is not None
        status = env.status_or_none()
        assert status is not None and status.risk_state != HALTED
        assert "0 filter mismatch(es)" in engine.text()
        assert "balance(s) reconciled" in engine.text()
        assert balances(env) != START, "the fills moved the venue's balances"
        assert env.stop("engine") == 0


def test_a_different_tick_at_the_venue_is_a_warning_in_paper(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.fault("kind=filters&symbol=BTCUSDT&tick_size=0.1")
        tick = {f["filterType"]: f for f in exchange_info(env)["symbols"][0]["filters"]}[
            "PRICE_FILTER"
        ]["tickSize"]
        assert Decimal(tick) == Decimal("0.1")
        engine = env.start_engine()
        wait_live(env)
        text = engine.text()
        assert (
            "warning: sim_binance/BTCUSDT: PRICE_FILTER.tickSize configured 0.01 but the venue "
            "says 0.1 (paper mode: trading anyway)"
        ) in text, text
        wait_for(
            lambda: counters(env.heartbeat()).get("metadata_mismatches") == 1,
            10,
            "the mismatch counted in the heartbeat",
        )
        assert env.stop("engine") == 0


def test_a_balance_moved_behind_the_engines_back_halts_it(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(
            lambda: counters(env.heartbeat()).get("reconcile_checks", 0) >= 1,
            30,
            "a first periodic balance check",
        )
        # Someone withdraws 250 USDT from the account.
        env.fault("kind=balance&asset=USDT&delta=-250")
        ev = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == HALTED,
            30,
            "a halt on the balance mismatch",
        )
        assert ev.risk.cause == "balance_mismatch"
        detail = ev.risk.detail
        assert "sim_binance: USDT balance: the venue holds" in detail, detail
        held, expected = (
            Decimal(x)
            for x in detail.split("the venue holds ")[1]
            .split(" (tolerance")[0]
            .split(", the engine expects ")
        )
        assert expected - held == Decimal("250"), detail
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.risk_state == HALTED,
            10,
            "HALTED",
        )
        assert env.stop("engine") == 0
        (record,) = [
            r
            for r in env.journal_records()
            if r["t"] == "risk" and r["cause"] == "balance_mismatch"
        ]
        assert record["detail"] == detail


def test_a_balance_off_at_start_is_a_warning_in_paper(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.fault("kind=balance&asset=BTC&delta=0.5")
        engine = env.start_engine()
        wait_live(env)
        text = engine.text()
        assert (
            "warning: sim_binance: BTC balance: the venue holds 1.5, the engine expects 1 "
            "(tolerance 0.00000001) (paper mode: trading anyway)"
        ) in text, text
        assert env.stop("engine") == 0


def position_qty(hb: pb.Heartbeat) -> Decimal:
    return sum((Decimal(p.qty) for p in hb.positions), Decimal(0))


def stale_book(env: Live) -> None:
    """Waits for a position, then stalls the market data for 3.5 s: the book (and the mark)
    goes stale beyond feed_stale_ms (2000, conf/risk/conservative.yaml) until the feed's
    reconnect loads a fresh snapshot."""
    wait_live(env)
    seen: list[pb.Heartbeat] = []

    def positioned() -> bool:
        seen.append(env.heartbeat())
        return position_qty(seen[-1]) != 0

    wait_for(positioned, 120, "a position")
    # The heartbeat that showed the position (a later one may already be flat again).
    hb = seen[-1]
    ages = [p.mark_age_ms for p in hb.positions if Decimal(p.qty) != 0]
    # The last trusted mark's age is in the heartbeat.
    assert ages and all(0 <= a < 2000 for a in ages), hb.positions
    env.fault("kind=stall&ms=3500")


def test_exposure_on_a_stale_book_reduces_until_the_book_is_fresh(tmp_path: Path) -> None:
    with live(tmp_path, speed="8") as env:
        env.start_sim()
        env.start_engine()
        stale_book(env)
        env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == REDUCING,
            15,
            "REDUCING on the stale book",
        )
        back = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == ACTIVE,
            30,
            "ACTIVE once the book is fresh again",
        )
        assert back.risk.cause == "recovered"
        reducing = [r.cause for r in risk_changes(env) if r.to_state == REDUCING]
        assert "stale_book" in reducing, reducing
        assert env.stop("engine") == 0


def test_exposure_on_a_book_stale_beyond_the_second_limit_halts(tmp_path: Path) -> None:
    with live(tmp_path, "risk.stale_exposure_halt_ms=2001", speed="8") as env:
        env.start_sim()
        env.start_engine()
        stale_book(env)
        halted = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == HALTED,
            15,
            "HALTED on a book stale beyond the second limit",
        )
        assert halted.risk.cause == "stale_book"
        # Sticky: the fresh book does not lift it (only an operator's resume does).
        wait_for(lambda: feed(env.heartbeat()).snapshots >= 2, 20, "a fresh snapshot")
        env.pump(2)
        status = env.status_or_none()
        assert status is not None and status.risk_state == HALTED
        assert env.stop("engine") == 0
