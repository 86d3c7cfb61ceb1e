"""USD-M order entry end to end: `rt-engine sim` speaking Binance USD-M futures (/fapi orders,
the futures user stream) on the bundled real USD-M BTCUSDT capture, and `rt-engine run` on the
paper USD-M deployment (conf/deployment/paper_usdm.yaml), over real loopback sockets.

The venue's own records (`GET /fapi/v1/userTrades`, `/fapi/v1/openOrders`) are the oracle.
Each test is bounded in time and kills what it started.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from appliance.bus import bus_pb2 as pb
from tests.conftest import Run
from tests.e2e.harness import Live, counters, feed, live, wait_for
from tests.ports import free_port

LIVE_STATE = pb.FeedStateKind.Value("LIVE")
ENGINE = "paper_usdm"


@contextmanager
def usdm(tmp_path: Path, *overrides: str, speed: str = "8") -> Iterator[Live]:
    with live(tmp_path, "deployment=paper_usdm", *overrides, speed=speed, engine=ENGINE) as env:
        yield env


def fapi(env: Live, path: str, query: str = "") -> Any:
    """A signed-less GET of the sim's /fapi (the paper venue has no credentials)."""
    sep = "&" if query else ""
    url = f"{env.rest}{path}?{query}{sep}timestamp={int(time.time() * 1000)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def venue_trades(env: Live) -> list[dict[str, Any]]:
    """The account's trades as the venue has them, oldest first."""
    trades: list[dict[str, Any]] = []
    while True:
        from_id = trades[-1]["id"] + 1 if trades else 0
        page: list[dict[str, Any]] = fapi(
            env, "/fapi/v1/userTrades", f"symbol=BTCUSDT&fromId={from_id}&limit=1000"
        )
        trades.extend(page)
        if len(page) < 1000:
            return trades


def journal_fills(env: Live) -> list[dict[str, Any]]:
    return [r for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "fill"]


def wait_live(env: Live, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        hb = env.heartbeat()
        if hb.feeds and feed(hb).state == LIVE_STATE:
            return
    raise AssertionError(f"the feed did not go LIVE within {timeout} s")


def assert_journal_is_the_venues_trades(env: Live) -> None:
    """Every trade the venue made is a journaled fill with its price, quantity and side; the
    position rebuilt from the journal is the venue's."""
    trades = venue_trades(env)
    fills = journal_fills(env)
    assert trades, "the venue made no trade"
    assert len(fills) == len(trades), f"journal {len(fills)} fills, venue {len(trades)}"

    def key(side_buy: bool, price: str, qty: str) -> tuple[bool, Decimal, Decimal]:
        return (side_buy, Decimal(price), Decimal(qty))

    venue = sorted(key(t["side"] == "BUY", t["price"], t["qty"]) for t in trades)
    journal = sorted(key(f["side"] == "buy", f["price"], f["qty"]) for f in fills)
    assert journal == venue
    risk = fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")
    net = sum((q if buy else -q for buy, _, q in journal), Decimal(0))
    assert Decimal(risk[0]["positionAmt"]) == net, (risk, net)


def test_paper_usdm_trades_on_fapi_and_the_journal_is_the_venues_trades(tmp_path: Path) -> None:
    with usdm(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: len(journal_fills(env)) >= 3, 90, "three fills", 0.25)
        hb = env.heartbeat()
        c = counters(hb)
        # Reports came as ORDER_TRADE_UPDATEs; each trade moved the account (ACCOUNT_UPDATE).
        assert c["gw_reports"] > 0 and c["gw_account_updates"] > 0, c
        assert c["gw_unreadable_reports"] == 0, c
        assert env.stop("engine") == 0
        text = env.procs["engine"].text()
        assert "USD-M" not in text or "not implemented" not in text, text
        assert fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == []
        assert_journal_is_the_venues_trades(env)
        # Commissions are charged in the margin asset and journaled as charged.
        assert {f.get("commission_asset") for f in journal_fills(env)} == {"USDT"}


def fapi_post(env: Live, path: str, query: str) -> Any:
    url = f"{env.rest}{path}?{query}&timestamp={int(time.time() * 1000)}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as r:
        return json.loads(r.read())


def test_leverage_margin_type_and_position_mode_are_set_and_checked_at_start(
    tmp_path: Path,
) -> None:
    with usdm(tmp_path) as env:
        env.start_sim()
        risk = fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")
        assert (risk[0]["leverage"], risk[0]["marginType"]) == ("20", "cross")
        # A reduce-only order of a flat account reduces nothing: the venue refuses it.
        with pytest.raises(urllib.error.HTTPError) as refused:
            fapi_post(
                env,
                "/fapi/v1/order",
                "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.002&reduceOnly=true",
            )
        assert json.loads(refused.value.read())["code"] == -2022
        # Another client made the account isolated and hedged: the engine sets what its config
        # says and names what it cannot (hedge mode is the account's choice).
        fapi_post(env, "/fapi/v1/marginType", "symbol=BTCUSDT&marginType=ISOLATED")
        fapi_post(env, "/fapi/v1/positionSide/dual", "dualSidePosition=true")
        env.start_engine()
        text = env.procs["engine"].text()
        assert "sim_binance/BTCUSDT: one-way false, leverage 5, margin cross" in text, text
        assert "the account is in hedge mode" in text and "paper mode: trading anyway" in text
        risk = fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")
        assert (risk[0]["leverage"], risk[0]["marginType"]) == ("5", "cross")
        assert env.stop("engine") == 0
        # One-way again: a clean start, nothing to warn about.
        fapi_post(env, "/fapi/v1/positionSide/dual", "dualSidePosition=false")
        env.sub = None
        env.start_engine(name="engine2")
        text = env.procs["engine2"].text()
        assert "one-way true, leverage 5, margin cross" in text, text
        assert "hedge mode" not in text, text
        assert env.stop("engine2") == 0


def test_a_position_near_its_liquidation_price_halts_trading(tmp_path: Path) -> None:
    halted = pb.RiskStateKind.Value("HALTED")
    with usdm(tmp_path, speed="2") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)

        def position() -> Decimal:
            return Decimal(fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")[0]["positionAmt"])

        wait_for(lambda: position() != 0, 90, "a position", 0.25)
        # The account's margin is almost all gone (a transfer out, a loss elsewhere): the
        # position's liquidation price comes within a few bps of its mark.
        wallet = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"])
        env.fault(f"kind=balance&asset=USDT&delta=-{wallet - Decimal('1')}")
        ev = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == halted,
            30,
            "a halt on the liquidation distance",
        )
        assert ev.risk.cause == "liquidation_distance", ev.risk
        detail = ev.risk.detail
        assert "sim_binance/BTCUSDT: position" in detail and "bps from its liquidation" in detail
        bps = int(detail.split(" bps from")[0].rsplit(" ", 1)[1])
        assert bps < 500, detail
        assert env.stop("engine") == 0
        causes = [r["cause"] for r in env.journal_records() if r["t"] == "risk"]
        assert "liquidation_distance" in causes, causes


def test_a_position_the_engine_did_not_make_halts_it_and_one_at_start_is_a_warning(
    tmp_path: Path,
) -> None:
    """The venue's position of every traded symbol must be the engine's: a position opened
    behind its back (another client of the account, a fill the engine never saw) is a warning
    at start in paper (the difference accepted as a baseline), and a new difference while
    running, seen on two checks in a row, HALTS it with the symbol and both positions; while
    the user data stream is down (fills unseen yet) no difference counts, and one still there
    after the stream is back and caught up halts it."""
    halted = pb.RiskStateKind.Value("HALTED")
    with usdm(tmp_path, speed="2") as env:
        env.start_sim()
        # Someone bought 0.5 BTCUSDT on the account before the engine started.
        env.fault("kind=position&symbol=BTCUSDT&side=buy&qty=0.5&price=60000")
        engine = env.start_engine()
        wait_live(env)
        text = engine.text()
        assert (
            "warning: sim_binance/BTCUSDT: position: the venue holds 0.5, the engine 0 (a fill "
            "the engine never saw, or another client trading this symbol on the account) "
            "(paper mode: trading anyway)"
        ) in text, text
        # Trading goes on against that baseline: no halt while only the engine trades.
        time.sleep(4)
        assert not [
            e for e in env.seen if e.WhichOneof("body") == "risk" and e.risk.to_state == halted
        ]
        # Then another 0.25 is sold elsewhere while the user data stream is down: a fill the
        # engine has not seen yet would look the same, so no check counts until the stream is
        # back and caught up...
        env.fault("kind=drop_user")
        wait_for(lambda: "user data stream lost" in engine.text(), 10, "the stream lost")
        env.fault("kind=position&symbol=BTCUSDT&side=sell&qty=0.25&price=60000")
        time.sleep(4)
        assert not [
            e for e in env.seen if e.WhichOneof("body") == "risk" and e.risk.to_state == halted
        ]
        assert "position watch: mismatch" not in engine.text()
        # ...and a difference still there then HALTS the engine.
        env.fault("kind=clear")
        ev = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == halted,
            30,
            "a halt on the position mismatch",
        )
        assert ev.risk.cause == "balance_mismatch", ev.risk
        detail = ev.risk.detail
        assert "sim_binance/BTCUSDT: position: the venue holds" in detail, detail
        venue, engine_qty = (
            Decimal(x)
            for x in detail.split("the venue holds ")[1].split(" (a fill")[0].split(", the engine ")
        )
        assert venue - engine_qty == Decimal("0.25"), detail
        text = engine.text()
        assert text.index("user data stream back") < text.index("position watch: mismatch"), text
        wait_for(
            lambda: counters(env.heartbeat()).get("position_mismatches", 0) >= 1,
            10,
            "position_mismatches counted",
        )
        assert env.stop("engine") == 0
        (record,) = [
            r
            for r in env.journal_records()
            if r["t"] == "risk" and r["cause"] == "balance_mismatch"
        ]
        assert record["detail"] == detail


def test_the_futures_wallet_is_reconciled_from_realised_pnl_commissions_and_funding(
    tmp_path: Path,
) -> None:
    """`reconcile` on a USD-M exchange compares the margin wallet (GET /fapi/v2/balance) with
    the configured start plus what the journal says moved it: the realised P&L of closing
    fills, commissions and funding. While the engine trades (fills open and close positions)
    and a funding payment is made, every check agrees; then 250 USDT leave the account behind
    the engine's back and it HALTS, naming the asset and both values."""
    halted = pb.RiskStateKind.Value("HALTED")
    reconcile = (
        "exchanges.sim_binance.reconcile={starting_balances:{USDT:'100000'},"
        "tolerance:{USDT:'0.01'},interval_ms:1000}"
    )
    with usdm(tmp_path, reconcile, speed="4") as env:
        env.start_sim()
        engine = env.start_engine()
        wait_live(env)
        assert "sim_binance: account: 1 balance(s) reconciled (USDT 100000), 0 mismatch(es)" in (
            engine.text()
        ), engine.text()

        def closed_fills() -> int:
            trades = venue_trades(env)
            return sum(1 for t in trades if Decimal(t["realizedPnl"]) != 0)

        wait_for(lambda: closed_fills() >= 3, 120, "fills that realise P&L", 0.5)
        env.fault("kind=funding&rate=0.001")
        checks = counters(env.heartbeat()).get("reconcile_checks", 0)
        wait_for(
            lambda: counters(env.heartbeat()).get("reconcile_checks", 0) >= checks + 4,
            30,
            "four more checks",
        )
        hb = env.heartbeat()
        assert counters(hb).get("balance_mismatches", 0) == 0, counters(hb)
        assert not [
            e for e in env.seen if e.WhichOneof("body") == "risk" and e.risk.to_state == halted
        ]
        # The wallet moved by realised P&L and fees (and the funding): the journal explains it.
        wallet = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"])
        assert wallet != Decimal("100000")

        env.fault("kind=balance&asset=USDT&delta=-250")
        ev = env.pump_until(
            lambda e: e.WhichOneof("body") == "risk" and e.risk.to_state == halted,
            30,
            "a halt on the wallet mismatch",
        )
        assert ev.risk.cause == "balance_mismatch", ev.risk
        assert "sim_binance: USDT balance: the venue holds" in ev.risk.detail, ev.risk.detail
        assert env.stop("engine") == 0


def test_a_funding_payment_is_journaled_and_booked_in_pnl(tmp_path: Path) -> None:
    """Isolated margin: the venue's update names the position, so the payment is booked from
    the stream (journaled without the venue's id). A payment made while the engine is down is
    read from the income history at the next start and booked once; the stream's payment, which
    that history lists too, is not booked again, nor is anything at a second restart."""
    isolated = "exchanges.sim_binance.instruments.BTCUSDT.margin_type=isolated"
    with usdm(tmp_path, isolated, speed="2") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)

        def position() -> Decimal:
            return Decimal(fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")[0]["positionAmt"])

        wait_for(lambda: position() != 0, 90, "a position", 0.25)
        # No more fills: the realised P&L moves by the funding payment alone.
        assert env.command("pause").ok
        wait_for(lambda: fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == [], 10, "no orders")
        time.sleep(0.5)

        def realised() -> Decimal:
            status = env.status_or_none()
            assert status is not None and len(status.positions) == 1
            return Decimal(status.positions[0].realised_pnl)

        qty, before, wallet = position(), realised(), fapi(env, "/fapi/v2/balance")[0]["balance"]
        # Funding at 0.1%: longs pay shorts.
        env.fault("kind=funding&rate=0.001")
        paid = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"]) - Decimal(wallet)
        assert paid != 0 and (paid < 0) == (qty > 0), (paid, qty)
        wait_for(lambda: realised() != before, 10, "the funding booked")
        assert realised() - before == paid, (realised(), before, paid)
        (record,) = [r for r in env.journal_records() if r["t"] == "funding"]
        assert (record["symbol"], record["asset"]) == ("BTCUSDT", "USDT")
        assert Decimal(record["amount"]) == paid
        # A heartbeat already queued may predate it: read on until one counts it.
        wait_for(lambda: counters(env.heartbeat()).get("gw_funding_payments") == 1, 10, "the count")
        assert record.get("id") is None and record["time_ms"] > 0, record
        assert env.stop("engine") == 0
        # Funding while the engine is down.
        wallet = fapi(env, "/fapi/v2/balance")[0]["balance"]
        env.fault("kind=funding&rate=0.001")
        missed = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"]) - Decimal(wallet)
        assert missed != 0
        *_, income = fapi(env, "/fapi/v1/income", "incomeType=FUNDING_FEE")
        assert Decimal(income["income"]) == missed, income
        # A restart replays the journal's payment and books the missed one from the history.
        for name, booked in (("engine2", 1), ("engine3", 0)):
            env.sub = None
            engine = env.start_engine(name=name)
            read = f"2 payment(s) listed, {booked} booked that the journal did not hold"
            wait_for(
                lambda e=engine, r=read: r in e.text(),  # type: ignore[misc]
                15,
                "the funding history read at start",
            )
            # The strategy thread books what the gateway read at its next view (every 250 ms):
            # wait for it, then make sure nothing more is booked after it.
            expected = before + paid + missed
            wait_for(lambda x=expected: realised() == x, 5, "the missed payment booked")  # type: ignore[misc]
            time.sleep(0.6)
            assert realised() == expected, (name, realised(), paid, missed)
            assert env.stop(name) == 0
        first, second = [r for r in env.journal_records() if r["t"] == "funding"]
        assert first == record
        assert Decimal(second["amount"]) == missed
        assert (second["id"], second["time_ms"]) == (income["tranId"], income["time"]), income


# A second perpetual on the same cross-margin account (the bundled capture has no data for it:
# its book stays empty and the engine never trades it).
ETHUSDT = (
    "+exchanges.sim_binance.instruments.ETHUSDT={tick_size:'0.01',lot_size:'0.001',"
    "min_notional:'20',maker_fee_bps:'2',taker_fee_bps:'5',leverage:5,margin_type:cross}"
)


@pytest.mark.parametrize("btc_margin", ["cross", "isolated"])
def test_cross_margin_funding_is_booked_per_symbol_from_the_income_history(
    tmp_path: Path, btc_margin: str
) -> None:
    """Two instruments on one account, ETHUSDT cross-margin and held by another client (no
    strategy of the engine trades it): the venue's funding update for the cross positions
    (reason FUNDING_FEE) names no symbol, so the engine reads each symbol's payment from the
    venue's income history (GET /fapi/v1/income?incomeType=FUNDING_FEE) and books BTCUSDT's
    on BTCUSDT; ETHUSDT's is the other client's (logged, neither journaled nor in the engine's
    P&L). Before, the whole payment went to the first instrument. With BTCUSDT isolated, its
    payment comes in an update of its own that names it (booked at once) and is in the
    history too: booked once, not twice."""
    margin = f"exchanges.sim_binance.instruments.BTCUSDT.margin_type={btc_margin}"
    with usdm(tmp_path, ETHUSDT, margin, speed="2") as env:
        env.start_sim()
        env.start_engine()
        # The feed stays RESYNCING (ETHUSDT's book never fills); BTCUSDT's trades regardless.

        def position(symbol: str) -> Decimal:
            return Decimal(fapi(env, "/fapi/v2/positionRisk", f"symbol={symbol}")[0]["positionAmt"])

        wait_for(lambda: position("BTCUSDT") != 0, 90, "a BTCUSDT position", 0.25)
        assert env.command("pause").ok
        wait_for(lambda: fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == [], 10, "no orders")
        # The account also holds ETHUSDT, traded elsewhere (by hand, another client).
        env.fault("kind=position&symbol=ETHUSDT&side=sell&qty=2&price=2500")
        assert position("ETHUSDT") == Decimal("-2")
        time.sleep(0.5)

        def realised() -> dict[str, Decimal]:
            status = env.status_or_none()
            assert status is not None
            return {p.symbol: Decimal(p.realised_pnl or "0") for p in status.positions}

        before = realised()
        wallet = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"])
        env.fault("kind=funding&rate=0.001")
        paid = Decimal(fapi(env, "/fapi/v2/balance")[0]["balance"]) - wallet
        income = fapi(env, "/fapi/v1/income", "incomeType=FUNDING_FEE")
        per = {r["symbol"]: Decimal(r["income"]) for r in income}
        assert set(per) == {"BTCUSDT", "ETHUSDT"}, income
        assert sum(per.values()) == paid, (per, paid)
        # The short ETHUSDT position receives (longs pay shorts at a positive rate).
        assert per["ETHUSDT"] > 0 and (per["BTCUSDT"] < 0) == (position("BTCUSDT") > 0), per

        def moved(symbol: str) -> Decimal:
            return realised().get(symbol, Decimal(0)) - before.get(symbol, Decimal(0))

        wait_for(lambda: moved("BTCUSDT") == per["BTCUSDT"], 10, "BTCUSDT's funding booked on it")
        # Journaled once (a list: a payment booked twice would show); ETHUSDT's not at all.
        records = sorted(
            (r["symbol"], Decimal(r["amount"]))
            for r in env.journal_records()
            if r["t"] == "funding"
        )
        assert records == [("BTCUSDT", per["BTCUSDT"])], records
        wait_for(lambda: counters(env.heartbeat()).get("gw_funding_payments") == 1, 10, "the count")
        time.sleep(1.5)
        assert moved("BTCUSDT") == per["BTCUSDT"]
        assert moved("ETHUSDT") == 0
        assert env.stop("engine") == 0


def test_unrealised_pnl_is_valued_at_the_venues_mark_price(tmp_path: Path) -> None:
    with usdm(tmp_path, speed="2") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)

        def risk() -> dict[str, Any]:
            row: dict[str, Any] = fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")[0]
            return row

        wait_for(lambda: Decimal(risk()["positionAmt"]) != 0, 90, "a position", 0.25)
        assert env.command("pause").ok
        wait_for(lambda: fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == [], 10, "no orders")
        # The venue marks the perpetual 1000 USDT below its book's mid (a mark price that
        # differs from the mid, as the real one does): the engine values the position at it.
        env.fault("kind=mark&symbol=BTCUSDT&offset=-1000")

        def close_to_the_venue() -> bool:
            status = env.status_or_none()
            if status is None or len(status.positions) != 1:
                return False
            venue = Decimal(risk()["unRealizedProfit"])
            return abs(Decimal(status.positions[0].unrealised_pnl) - venue) < Decimal("0.05")

        wait_for(close_to_the_venue, 15, "the unrealised P&L at the venue's mark", 0.25)
        qty = Decimal(risk()["positionAmt"])
        # At the mid, it would be about 1000 * qty away from what it is.
        assert abs(qty * 1000) > Decimal("1"), qty
        assert counters(env.heartbeat()).get("gw_venue_marks", 0) > 0
        assert env.stop("engine") == 0


def test_usdm_fills_made_while_the_engine_was_down_are_caught_up_at_restart(
    tmp_path: Path,
) -> None:
    # Quotes that are never moved keep resting at the venue after the engine dies.
    still = "strategies.mm_btcusdt.params.requote_threshold_ticks=1000000"
    with usdm(tmp_path, still, speed="4") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(
            lambda: len(fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT")) > 0,
            60,
            "an order resting at the venue",
            0.25,
        )
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL
        seen = len(journal_fills(env))
        wait_for(lambda: len(venue_trades(env)) > seen, 90, "a fill while the engine is down", 0.5)

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
        assert env.stop("engine2") == 0
        assert_journal_is_the_venues_trades(env)
        assert fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == []


def test_appliance_run_paper_usdm_trades_and_stops_flat_of_orders(
    project: Path, cli: Callable[..., Run]
) -> None:
    """`appliance run deployment=paper_usdm` as an operator runs it (the sim and the engine
    supervised by the CLI): it trades, stops with no open order, and every trade the venue
    made (its own count, printed when it stops) is a journaled fill."""
    events, control, ws, rest, metrics = (free_port() for _ in range(5))
    journal = project / "journal"
    run = cli(
        "run",
        "deployment=paper_usdm",
        f"deployment.engines.{ENGINE}.bus.events=tcp://127.0.0.1:{events}",
        f"deployment.engines.{ENGINE}.bus.control=tcp://127.0.0.1:{control}",
        f"deployment.engines.{ENGINE}.metrics.listen=127.0.0.1:{metrics}",
        f"deployment.engines.{ENGINE}.journal.dir={journal}",
        f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
        f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
        "--duration",
        "10",
        "--speed",
        "8",
        root=project,
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "open orders at exit │ 0 (engine)" in run.stdout, run.stdout
    sim_log = (project / "state/run/paper_usdm/sim_sim_binance.log").read_text()
    venue_fills = int(re.findall(r"\bfills: (\d+)", sim_log)[-1])
    lines = (journal / "journal.jsonl").read_text().splitlines()
    fills = [r for r in map(json.loads, lines) if r["t"] == "exec" and r["kind"] == "fill"]
    assert venue_fills > 0 and len(fills) == venue_fills, (venue_fills, len(fills))
