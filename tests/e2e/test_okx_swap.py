"""An OKX perpetual swap end to end (paper_okx_swap): the real engine quotes OKX's inverse
UNI-USD-SWAP (one contract is 10 USD, margined and settled in UNI) in contracts with the
book-imbalance taker (IOC orders both ways, so positions are opened and closed on the capture's
few swap trades), cross margined, against the sim over loopback, with signed requests.

What a contract changes, each checked here against an oracle the engine does not share:
- the order is a swap's: `tdMode` `cross`, `sz` in contracts (the venue's orders);
- the fee is charged in UNI on the contracts' value, `qty x 10 / price x bps`, rounded up to
  10^-8 UNI (recomputed here with Python's Decimal from OKX's fee rates in conf/exchange/okx.yaml);
- the venue's fills, the bus and the journal agree fill for fill, fee currency UNI;
- the engine's position events keep the position in contracts and its P&L in UNI: the
  average entry is the harmonic mean of the entry prices and the realised P&L of what was
  closed is `qty x 10 x (1/entry - 1/exit)` (replayed here from the venue's fills, average
  cost, in exact rational arithmetic).
"""

from __future__ import annotations

import json
import time
import urllib.request
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.e2e.harness import counters, live, wait_for
from tests.e2e.test_okx_orders import CREDENTIALS, keys, okx_get, venue_fills

PAPER_OKX_SWAP = "deployment=paper_okx_swap"
CONTRACT_USD = Fraction(10)
EIGHT = Decimal("0.00000001")
# conf/exchange/okx.yaml, UNIUSDSWAP: maker 2 bps, taker 5.
FEE_BPS = {"M": Decimal(2), "T": Decimal(5)}


def swap_fills(env: Any, creds: dict[str, str]) -> list[dict[str, Any]]:
    """Every fill of the account on UNI-USD-SWAP, oldest first."""
    return sorted(venue_fills(env, creds, "UNI-USD-SWAP"), key=lambda f: int(f["tradeId"]))


def inverse_fee(px: Decimal, sz: Decimal, exec_type: str) -> Decimal:
    """OKX's fee of an inverse contract's fill in the base asset, rounded up to 10^-8."""
    value = sz * Decimal(10) / px
    return (value * FEE_BPS[exec_type] / Decimal(10_000)).quantize(EIGHT, rounding=ROUND_CEILING)


def replay(fills: list[dict[str, Any]]) -> tuple[Fraction, Fraction, Fraction | None]:
    """(position in contracts, realised P&L in UNI, average entry price) of the fills, average
    cost in the coin value of a contract (-10 / price), exactly."""
    pos, cost, realised = Fraction(0), Fraction(0), Fraction(0)
    for f in fills:
        q = Fraction(f["fillSz"]) * (1 if f["side"] == "buy" else -1)
        value = -CONTRACT_USD / Fraction(f["fillPx"])
        if pos != 0 and (pos > 0) != (q > 0):
            k = min(abs(q), abs(pos))
            sign = 1 if pos > 0 else -1
            removed = cost * k / abs(pos)
            realised += sign * value * k - removed
            cost -= removed
            pos -= sign * k
            q += sign * k
        cost += value * q
        pos += q
    entry = -CONTRACT_USD * pos / cost if pos != 0 else None
    return pos, realised, entry


def test_an_okx_inverse_swap_is_traded_in_contracts_and_booked_in_its_coin(
    tmp_path: Path,
) -> None:
    creds = keys()
    with live(tmp_path, PAPER_OKX_SWAP, CREDENTIALS, speed="4") as env:
        listing = env.manifest["exchanges"]["okx"]["instruments"]["UNIUSDSWAP"]["listing"]
        assert listing["contract"]["type"] == "inverse"
        env.start_sim(env=creds)
        engine = env.start_engine(env=creds)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 60, "a fill on the swap")
        env.pump(25)
        assert env.stop("engine") == 0, engine.text()
        env.pump(0.5)

        fills = swap_fills(env, creds)
        assert fills, "the venue made fills"
        # The venue's own record: contracts, cross margin, fees in UNI on the contracts' value.
        for f in fills:
            assert f["instType"] == "SWAP" and f["feeCcy"] == "UNI", f
            want = inverse_fee(Decimal(f["fillPx"]), Decimal(f["fillSz"]), f["execType"])
            assert -Decimal(f["fee"]) == want, (f, want)
        orders = okx_get(
            env, f"/api/v5/trade/order?instId=UNI-USD-SWAP&ordId={fills[0]['ordId']}", creds
        )
        assert orders[0]["tdMode"] == "cross" and orders[0]["instType"] == "SWAP", orders

        # The bus: every fill the venue made, its fee in UNI as charged.
        bus = [e.fill for e in env.seen if e.WhichOneof("body") == "fill"]
        assert all(f.exchange == "okx" and f.symbol == "UNIUSDSWAP" for f in bus)
        assert sorted((Decimal(f.price), Decimal(f.qty), Decimal(f.fee)) for f in bus) == sorted(
            (Decimal(f["fillPx"]), Decimal(f["fillSz"]), -Decimal(f["fee"])) for f in fills
        )
        assert env.sub is not None and env.sub.lost == 0
        # The journal: the same fills, the commission in UNI.
        journal = sorted(
            (
                Decimal(r["price"]),
                Decimal(r["qty"]),
                Decimal(r["commission"]),
                r["commission_asset"],
            )
            for r in env.journal_records()
            if r["t"] == "exec" and r["kind"] == "fill" and r["exchange"] == "okx"
        )
        assert journal == sorted(
            (Decimal(f["fillPx"]), Decimal(f["fillSz"]), -Decimal(f["fee"]), "UNI") for f in fills
        )

        # The engine's position after the last fill, against the replay of the venue's fills.
        positions = [
            e.position
            for e in env.seen
            if e.WhichOneof("body") == "position" and e.position.symbol == "UNIUSDSWAP"
        ]
        assert positions, "position events"
        last = positions[-1]
        pos, realised, entry = replay(fills)
        assert Fraction(last.qty) == pos
        fees = sum(-Decimal(f["fee"]) for f in fills)
        assert Decimal(last.fees) == fees
        # Each contract's coin value is kept to 10^-8 UNI: at most that much per contract
        # traded apart from the exact figure.
        traded = sum(Fraction(f["fillSz"]) for f in fills)
        assert abs(Fraction(last.realised_pnl) - realised) <= traded * Fraction(
            1, 10**8
        ) + Fraction(1, 10**8), (last.realised_pnl, float(realised))
        if entry is None:
            assert Decimal(last.avg_entry_price or "0") == 0
        else:
            assert abs(Fraction(last.avg_entry_price) - entry) <= Fraction(1, 10**6), (
                last.avg_entry_price,
                float(entry),
            )
        print(
            f"okx swap: {len(fills)} fills, position {pos} contracts, realised "
            f"{float(realised):.8f} UNI (engine {last.realised_pnl}), fees {fees} UNI"
        )
        assert realised != 0, "the run closed part of a position"


def okx_fault(env: Any, query: str) -> dict[str, Any]:
    """A fault of the sim's OKX desk (`POST /sim/okx/fault`); its answer."""
    req = urllib.request.Request(f"{env.rest}/sim/okx/fault?{query}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        answer: dict[str, Any] = json.loads(r.read().decode())
        return answer


def test_swap_leverage_isolated_margin_positions_and_funding_on_okx(tmp_path: Path) -> None:
    """The derivatives account of an OKX swap against the real engine and the sim:
    - at start the engine sets the configured leverage in the configured margin mode
      (`set-leverage`), checks the position mode (a hedge-mode account is named a problem),
      and compares the venue's position with the journal's;
    - its orders go in that margin mode (`tdMode` isolated);
    - a funding payment (the sim's `funding` fault: a `balance_and_position` push that says
      when, not how much) is read from the bills, journaled in UNI, and moves the swap's
      realised P&L by exactly the bill's amount; a restart books it again from the journal
      and finds the venue's position equal to the journal's;
    - a payment made while the engine is down is read from the bills at the next start and
      booked once (journaled with the bill's id and time); the journaled one, listed there
      too, is not booked again, nor is anything at a second restart."""
    creds = keys()
    settings = (
        "+exchanges.okx.instruments.UNIUSDSWAP.leverage=4",
        "+exchanges.okx.instruments.UNIUSDSWAP.margin_type=isolated",
    )
    with live(tmp_path, PAPER_OKX_SWAP, CREDENTIALS, *settings, speed="4") as env:
        env.start_sim(env=creds)
        # A hedge-mode account first: named at start (paper: a warning, trading goes on).
        assert okx_fault(env, "kind=hedge_mode&on=1")["applied"] == "hedge_mode on=true"
        engine = env.start_engine(env=creds)
        wait_for(lambda: "hedge mode" in engine.text(), 20, "the hedge-mode problem")
        assert "the account is in hedge mode (two positions a symbol" in engine.text()
        assert env.stop("engine") == 0, engine.text()
        okx_fault(env, "kind=clear")
        env.sub = None

        engine = env.start_engine(name="engine2", env=creds)
        assert "hedge mode" not in engine.text(), engine.text()

        def position() -> Decimal:
            rows = okx_get(env, "/api/v5/account/positions?instType=SWAP", creds)
            return Decimal(rows[0]["pos"]) if rows else Decimal(0)

        wait_for(lambda: position() != 0, 90, "a swap position", 0.25)
        # No more orders: the realised P&L moves by the funding payment alone.
        assert env.command("pause").ok
        wait_for(
            lambda: okx_get(env, "/api/v5/trade/orders-pending?instType=SWAP", creds) == [],
            10,
            "no open orders",
        )
        time.sleep(0.5)
        (row,) = okx_get(env, "/api/v5/account/positions?instType=SWAP", creds)
        assert (row["mgnMode"], row["lever"], row["ccy"]) == ("isolated", "4", "UNI"), row
        fills = swap_fills(env, creds)
        order = okx_get(
            env, f"/api/v5/trade/order?instId=UNI-USD-SWAP&ordId={fills[-1]['ordId']}", creds
        )
        assert order[0]["tdMode"] == "isolated", order
        pos, _, entry = replay(fills)
        assert Decimal(row["pos"]) == Decimal(pos.numerator) / Decimal(pos.denominator)
        assert entry is not None and abs(Fraction(row["avgPx"]) - entry) <= Fraction(1, 10**6)

        def realised() -> Decimal:
            status = env.status_or_none()
            assert status is not None
            (p,) = [p for p in status.positions if p.symbol == "UNIUSDSWAP"]
            return Decimal(p.realised_pnl)

        before = realised()
        # 0.1%: longs pay shorts, at the mark, in UNI.
        assert okx_fault(env, "kind=funding&rate=0.001")["positions"] == 1
        (bill,) = okx_get(env, "/api/v5/account/bills?instType=SWAP&type=8", creds)
        paid = Decimal(bill["pnl"])
        assert bill["ccy"] == "UNI" and paid != 0 and (paid < 0) == (pos > 0), (bill, pos)
        # pos x 10 USD / mark x 0.1%, to 10^-8 UNI.
        value = Decimal(row["pos"]) * 10 / Decimal(bill["px"]) * Decimal("0.001")
        assert abs(paid + value) <= EIGHT, (paid, value)
        wait_for(lambda: realised() != before, 15, "the funding booked")
        assert realised() - before == paid, (realised(), before, paid)
        (record,) = [r for r in env.journal_records() if r["t"] == "funding"]
        assert (record["exchange"], record["symbol"], record["asset"]) == (
            "okx",
            "UNIUSDSWAP",
            "UNI",
        )
        assert Decimal(record["amount"]) == paid
        assert (record["id"], record["time_ms"]) == (int(bill["billId"]), int(bill["ts"]))
        wait_for(lambda: counters(env.heartbeat()).get("gw_funding_payments") == 1, 10, "count")
        assert env.stop("engine2") == 0

        # Funding while the engine is down.
        assert okx_fault(env, "kind=funding&rate=0.001")["positions"] == 1
        missed, _ = okx_get(env, "/api/v5/account/bills?instType=SWAP&type=8", creds)
        # A restart: the funding from the journal and the missed bill from the bills, the
        # position equal to the venue's; a second restart books nothing more.
        for name, booked in (("engine3", 1), ("engine4", 0)):
            env.sub = None
            engine = env.start_engine(name=name, env=creds)
            read = f"2 payment(s) listed, {booked} booked that the journal did not hold"
            wait_for(
                lambda e=engine, r=read: r in e.text(),  # type: ignore[misc]
                15,
                "the funding history read at start",
            )
            assert realised() == before + paid + Decimal(missed["pnl"]), (name, realised())
            text = engine.text()
            expected = "okx/UNIUSDSWAP: one-way true, leverage 4, margin isolated, position"
            assert expected in text, text
            assert "position: the venue holds" not in text, text
            assert env.stop(name) == 0
        first, second = [r for r in env.journal_records() if r["t"] == "funding"]
        assert first == record
        assert Decimal(second["amount"]) == Decimal(missed["pnl"])
        assert (second["id"], second["time_ms"]) == (int(missed["billId"]), int(missed["ts"]))
        print(
            f"okx swap funding: position {row['pos']} contracts (isolated, lever 4), "
            f"bill {paid} UNI at mark {bill['px']}, realised {before} -> {before + paid} UNI"
        )
