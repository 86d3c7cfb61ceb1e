"""An OKX delivery future end to end: the real engine trades an inverse future (one contract
10 USD, settled in UNI) with the book-imbalance taker against the sim over loopback, signed, and
the contract expires a few seconds into the run.

The future is the bundled OKX capture's UNI-USD-SWAP book served under a futures instId
(UNI-USD-261231, its frames copied under that name: OKX's checksums cover levels, not names),
listed with `expTime` in the run's future in a metadata file of the test's. Checked, each
against the venue's own record:
- before the window, orders both ways; within `risk.reduce_only_before_expiry_ms` of the
  expiry only orders that reduce the position reach the venue (with `reduceOnly`), the others
  are refused by the engine (`reduce_only`); from the expiry on none reaches the venue (the
  engine refuses them, `expired`);
- at the expiry the sim delivers the open position at its book's mid without a fill, pushes the
  position change and lists the delivery in `GET /api/v5/public/delivery-exercise-history`; the
  engine reads it, journals it once and books it: the position is flat and the realised P&L is
  the venue's fills plus the delivery at the venue's price, `qty x 10 x (1/entry - 1/px)`
  (replayed here in exact rational arithmetic);
- a restart books the journal's delivery again, asks for nothing more, finds the venue's
  position equal to the journal's (flat), and journals no second delivery.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.e2e.harness import ROOT, live, wait_for
from tests.e2e.test_okx_orders import CREDENTIALS, keys, okx_get, venue_fills
from tests.e2e.test_okx_swap import replay

INST = "UNI-USD-261231"
NAME = "UNIUSD261231"
# The run's clock: the expiry this far after compiling, the reduce-only window before it.
EXPIRY_AFTER_S = 40
WINDOW_MS = 8000


def okx_data(dir: Path, expiry_ms: int) -> Path:
    """The bundled OKX metadata and capture with the swap's twin future (listed, and its
    frames copied under its instId); the metadata file's path."""
    dir.mkdir()
    rows = json.loads((ROOT / "data/okx/instruments.json").read_text())
    (swap,) = [r for r in rows if r["instId"] == "UNI-USD-SWAP"]
    rows.append(swap | {"instId": INST, "instType": "FUTURES", "expTime": str(expiry_ms)})
    (dir / "instruments.json").write_text(json.dumps(rows))
    lines = []
    for line in (ROOT / "data/okx/cryptofeed_OKX.ws.1.0").read_text().splitlines():
        lines.append(line)
        # Received frames only (a request we sent is recorded with ` <- `).
        if '"instId":"UNI-USD-SWAP"' in line and " <- " not in line:
            lines.append(line.replace('"instId":"UNI-USD-SWAP"', f'"instId":"{INST}"'))
    (dir / "cryptofeed_OKX.ws.1.0").write_text("\n".join(lines) + "\n")
    return dir / "instruments.json"


def settings(metadata: Path, expiry_ms: int) -> tuple[str, ...]:
    listing = (
        f"listing:{{symbol:'{INST}',type:futures,min_size:'1',expiry_ms:{expiry_ms},"
        "contract:{value:'10',multiplier:'1',value_currency:USD,type:inverse,"
        "settle_currency:UNI}}"
    )
    return (
        f"exchanges.okx.metadata={metadata}",
        f"+exchanges.okx.instruments.{NAME}={{tick_size:'0.001',lot_size:'1',"
        f"min_notional:'10',maker_fee_bps:'2',taker_fee_bps:'5',{listing}}}",
        f"strategies.imb_okx_swap.instruments=[{NAME}]",
        f"+risk.instruments.{NAME}={{max_position:'8',max_order_qty:'2',"
        "max_order_notional:'20',max_position_notional:'80',price_band_bps:100}",
        f"+risk.reduce_only_before_expiry_ms={WINDOW_MS}",
    )


def test_an_okx_future_reduces_before_expiry_and_its_delivery_is_booked_once(
    tmp_path: Path,
) -> None:
    creds = keys()
    expiry_ms = int(time.time() * 1000) + EXPIRY_AFTER_S * 1000
    window_ms = expiry_ms - WINDOW_MS
    metadata = okx_data(tmp_path / "okx", expiry_ms)
    overrides = ("deployment=paper_okx_swap", CREDENTIALS, *settings(metadata, expiry_ms))
    with live(tmp_path, *overrides, speed="4") as env:
        listing = env.manifest["exchanges"]["okx"]["instruments"][NAME]["listing"]
        assert (listing["type"], listing["expiry_ms"]) == ("futures", expiry_ms)
        env.start_sim(env=creds)
        engine = env.start_engine(env=creds)

        def position() -> Decimal:
            rows = okx_get(env, "/api/v5/account/positions", creds)
            return sum((Decimal(r["pos"]) for r in rows if r["instId"] == INST), Decimal(0))

        # Trading until the window, then only reducing; paused once a position is held in the
        # window, so that something is left to deliver.
        rejected: list[tuple[float, str]] = []
        paused = False
        while time.time() * 1000 < expiry_ms + 3000:
            for e in env.pump(0.2):
                if e.WhichOneof("body") == "order" and e.order.reject_reason:
                    rejected.append((time.time() * 1000, e.order.reject_reason))
            now = time.time() * 1000
            in_window = window_ms + 1500 <= now < expiry_ms - 1000
            if in_window and not paused and position() != 0:
                assert env.command("pause").ok
                paused = True
        assert paused, f"no position held in the window: {engine.text()[-3000:]}"
        assert env.command("resume").ok
        # Trading again: every order is refused by the engine (none reaches the venue).
        e = env.pump_until(
            lambda e: e.WhichOneof("body") == "order" and e.order.reject_reason != "",
            60,
            "an order refused after the expiry",
        )
        rejected.append((time.time() * 1000, e.order.reject_reason))
        env.pump(2)

        fills = sorted(venue_fills(env, creds, INST), key=lambda f: int(f["tradeId"]))
        assert fills, "the venue made fills"
        before = [f for f in fills if int(f["ts"]) < window_ms]
        during = [f for f in fills if window_ms <= int(f["ts"]) < expiry_ms]
        assert {f["side"] for f in before} == {"buy", "sell"}, before
        assert not [f for f in fills if int(f["ts"]) >= expiry_ms], fills
        # In the window each fill shrinks the position (the venue checked `reduceOnly`).
        held = replay(before)[0]
        for f in during:
            q = Fraction(f["fillSz"]) * (1 if f["side"] == "buy" else -1)
            assert abs(held + q) < abs(held), (held, f)
            held += q
        # The engine refused what would have grown it in the window, and everything after.
        assert any(r == "reduce_only" and window_ms <= t < expiry_ms for t, r in rejected), rejected
        assert any(r == "expired" and t >= expiry_ms for t, r in rejected), rejected
        assert not [r for t, r in rejected if r == "expired" and t < expiry_ms - 500], rejected

        # The venue's delivery, the engine's booking of it.
        (row,) = okx_get(
            env,
            "/api/v5/public/delivery-exercise-history?instType=FUTURES&instFamily=UNI-USD",
            creds,
        )
        (detail,) = row["details"]
        assert (detail["type"], detail["insId"]) == ("delivery", INST)
        px = Decimal(detail["px"])
        assert int(row["ts"]) >= expiry_ms
        assert position() == 0
        pos, realised, _ = replay(fills)
        assert pos == held and pos != 0
        delivered = {"fillSz": str(abs(pos)), "side": "sell" if pos > 0 else "buy", "fillPx": px}
        _, want, _ = replay([*fills, delivered])

        def last_position() -> Any:
            events = [
                e.position
                for e in env.seen
                if e.WhichOneof("body") == "position" and e.position.symbol == NAME
            ]
            return events[-1] if events else None

        wait_for(lambda: (p := last_position()) is not None and Decimal(p.qty) == 0, 15, "flat")
        booked = Fraction(last_position().realised_pnl)
        traded = sum(Fraction(f["fillSz"]) for f in fills) + abs(pos)
        assert abs(booked - want) <= traded * Fraction(1, 10**8) + Fraction(1, 10**8), (
            float(booked),
            float(want),
        )
        (record,) = [r for r in env.journal_records() if r["t"] == "delivery"]
        assert (record["exchange"], record["symbol"]) == ("okx", NAME)
        assert (Decimal(record["price"]), record["time_ms"]) == (px, int(row["ts"]))
        assert env.stop("engine") == 0, engine.text()

        # A restart books the journal's delivery, asks for nothing, and finds the venue flat.
        env.sub = None
        again = env.start_engine(name="engine2", env=creds)
        wait_for(lambda: env.status_or_none() is not None, 20, "the restarted engine")
        status = env.status_or_none()
        assert status is not None
        (p,) = [p for p in status.positions if p.symbol == NAME]
        assert Decimal(p.qty) == 0 and Fraction(p.realised_pnl) == booked, p
        time.sleep(2)
        assert env.stop("engine2") == 0, again.text()
        assert "delivered at" not in again.text(), again.text()
        assert "position: the venue holds" not in again.text(), again.text()
        assert len([r for r in env.journal_records() if r["t"] == "delivery"]) == 1
        print(
            f"okx future: {len(before)} fills before the window, {len(during)} in it, "
            f"position {pos} contracts delivered at {px}, realised {float(realised):.8f} -> "
            f"{float(booked):.8f} UNI"
        )


def test_a_future_delivered_while_the_engine_is_down_is_booked_once_at_the_next_start(
    tmp_path: Path,
) -> None:
    """The engine stops holding a position before the expiry; the sim delivers it meanwhile.
    The next start counts the expired future flat at the venue (no position mismatch), reads
    the delivery from the venue's history, journals and books it; the start after that books
    nothing more."""
    creds = keys()
    expiry_ms = int(time.time() * 1000) + 30_000
    metadata = okx_data(tmp_path / "okx", expiry_ms)
    overrides = ("deployment=paper_okx_swap", CREDENTIALS, *settings(metadata, expiry_ms))
    with live(tmp_path, *overrides, speed="4") as env:
        env.start_sim(env=creds)
        engine = env.start_engine(env=creds)

        def position() -> Decimal:
            rows = okx_get(env, "/api/v5/account/positions", creds)
            return sum((Decimal(r["pos"]) for r in rows if r["instId"] == INST), Decimal(0))

        wait_for(lambda: position() != 0, 20, "a position on the future", 0.2)
        assert env.command("pause").ok
        assert env.stop("engine") == 0, engine.text()
        held = position()
        assert held != 0 and time.time() * 1000 < expiry_ms
        # The venue delivers while the engine is down.
        wait_for(lambda: time.time() * 1000 > expiry_ms + 1000 and position() == 0, 40, "delivery")
        (row,) = okx_get(
            env,
            "/api/v5/public/delivery-exercise-history?instType=FUTURES&instFamily=UNI-USD",
            creds,
        )
        px = Decimal(row["details"][0]["px"])
        fills = sorted(venue_fills(env, creds, INST), key=lambda f: int(f["tradeId"]))
        pos, _, _ = replay(fills)
        assert pos == held
        delivered = {"fillSz": str(abs(pos)), "side": "sell" if pos > 0 else "buy", "fillPx": px}
        _, want, _ = replay([*fills, delivered])

        def realised() -> Fraction | None:
            status = env.status_or_none()
            if status is None:
                return None
            rows = [p for p in status.positions if p.symbol == NAME]
            return Fraction(rows[0].realised_pnl) if rows and Decimal(rows[0].qty) == 0 else None

        traded = sum(Fraction(f["fillSz"]) for f in fills) + abs(pos)
        for name, delivered_now in (("engine2", True), ("engine3", False)):
            env.sub = None
            proc = env.start_engine(name=name, env=creds)
            wait_for(lambda: realised() is not None, 30, f"{name}: the delivery booked")
            booked = realised()
            assert booked is not None
            assert abs(booked - want) <= traded * Fraction(1, 10**8) + Fraction(1, 10**8), (
                name,
                float(booked),
                float(want),
            )
            time.sleep(1)
            assert env.stop(name) == 0, proc.text()
            text = proc.text()
            assert ("delivered at" in text) == delivered_now, text
            assert "position: the venue holds" not in text, text
        records = [r for r in env.journal_records() if r["t"] == "delivery"]
        assert [(r["symbol"], Decimal(r["price"])) for r in records] == [(NAME, px)]
