"""OKX spot order entry end to end (paper_okx): the real engine trades BTC-USDT on OKX v5's
protocols against the sim over loopback. The sim serves OKX's books (the bundled capture, in a
loop), its REST trade and account endpoints and its private WebSocket (login, `orders`), and
verifies every request's signature with the exchange's credentials (key, secret, passphrase:
random per test, given to both processes by reference).

The oracle is the venue's own account: `GET /api/v5/trade/fills`, signed here with Python's
`hmac` (an implementation independent of the engine's), paged with `after`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.harness import Live, counters, live, wait_for

PAPER_OKX = "deployment=paper_okx"
CREDENTIALS = (
    "exchanges.okx.credentials={api_key:env:PYRT_E2E_OKX_KEY,"
    "api_secret:env:PYRT_E2E_OKX_SECRET,passphrase:env:PYRT_E2E_OKX_PASSPHRASE}"
)
# Quotes never moved (no price move reaches the threshold): they rest at the venue.
STILL = "strategies.mm_okx.params.requote_threshold_ticks=1000000"


def keys() -> dict[str, str]:
    """Random per-test credentials: test data, never real secrets."""
    return {
        "PYRT_E2E_OKX_KEY": os.urandom(8).hex(),
        "PYRT_E2E_OKX_SECRET": os.urandom(32).hex(),
        "PYRT_E2E_OKX_PASSPHRASE": os.urandom(6).hex(),
    }


def okx_post(env: Live, path: str, body: Any, creds: dict[str, str]) -> Any:
    """A signed POST (the prehash ends with the JSON body); the whole answer."""
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    text = json.dumps(body)
    sign = base64.b64encode(
        hmac.new(
            creds["PYRT_E2E_OKX_SECRET"].encode(), f"{ts}POST{path}{text}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    req = urllib.request.Request(
        f"{env.rest}{path}",
        data=text.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "OK-ACCESS-KEY": creds["PYRT_E2E_OKX_KEY"],
            "OK-ACCESS-SIGN": sign,
            "OK-ACCESS-TIMESTAMP": ts,
            "OK-ACCESS-PASSPHRASE": creds["PYRT_E2E_OKX_PASSPHRASE"],
        },
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def okx_get(env: Live, path: str, creds: dict[str, str]) -> Any:
    """A signed GET: OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, ts + "GET" + path)), as OKX
    documents it; the answer's `data`."""
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    sign = base64.b64encode(
        hmac.new(
            creds["PYRT_E2E_OKX_SECRET"].encode(), f"{ts}GET{path}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    req = urllib.request.Request(
        f"{env.rest}{path}",
        headers={
            "OK-ACCESS-KEY": creds["PYRT_E2E_OKX_KEY"],
            "OK-ACCESS-SIGN": sign,
            "OK-ACCESS-TIMESTAMP": ts,
            "OK-ACCESS-PASSPHRASE": creds["PYRT_E2E_OKX_PASSPHRASE"],
        },
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        body = json.loads(r.read())
    assert body["code"] == "0", body
    return body["data"]


def venue_fills(env: Live, creds: dict[str, str], inst: str = "BTC-USDT") -> list[dict[str, Any]]:
    """Every fill of the account on `inst`, newest first, page by page (`after` a bill id)."""
    kind = "SWAP" if inst.endswith("-SWAP") else "SPOT"
    out: list[dict[str, Any]] = []
    while True:
        after = f"&after={out[-1]['billId']}" if out else ""
        page = okx_get(
            env, f"/api/v5/trade/fills?instType={kind}&instId={inst}&limit=100{after}", creds
        )
        out.extend(page)
        if len(page) < 100:
            return out


def open_at_venue(env: Live, creds: dict[str, str]) -> int:
    return len(okx_get(env, "/api/v5/trade/orders-pending?instType=SPOT&instId=BTC-USDT", creds))


def sim_okx(env: Live, what: str, method: str = "GET") -> Any:
    """The sim's OKX desk: `fault?...` (POST) or `status`."""
    req = urllib.request.Request(f"{env.rest}/sim/okx/{what}", method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def journal_fills(env: Live) -> list[dict[str, Any]]:
    return [
        r
        for r in env.journal_records()
        if r["t"] == "exec" and r["kind"] == "fill" and r["exchange"] == "okx"
    ]


def assert_journal_matches_venue(env: Live, creds: dict[str, str]) -> None:
    """Every fill the venue made is journaled once, with its price, size and commission."""
    venue = sorted(
        (Decimal(f["fillPx"]), Decimal(f["fillSz"]), f["side"], -Decimal(f["fee"]), f["feeCcy"])
        for f in venue_fills(env, creds)
    )
    journal = sorted(
        (
            Decimal(r["price"]),
            Decimal(r["qty"]),
            r["side"],
            Decimal(r["commission"]),
            r["commission_asset"],
        )
        for r in journal_fills(env)
    )
    assert journal == venue, f"journal {len(journal)} fills, venue {len(venue)}"


def test_okx_spot_orders_are_signed_filled_journaled_and_published(tmp_path: Path) -> None:
    creds = keys()
    with live(tmp_path, PAPER_OKX, CREDENTIALS, speed="2") as env:
        okx = env.manifest["exchanges"]["okx"]
        assert okx["credentials"]["passphrase"] == "env:PYRT_E2E_OKX_PASSPHRASE", (
            "the manifest holds the reference only"
        )
        env.start_sim(env=creds)
        engine = env.start_engine(env=creds)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 60, "an OKX fill")
        env.pump(20)
        assert env.stop("engine") == 0, engine.text()
        env.pump(0.5)

        bus = [e.fill for e in env.seen if e.WhichOneof("body") == "fill"]
        assert bus and all(f.exchange == "okx" and f.symbol == "BTCUSDT" for f in bus)
        assert env.sub is not None and env.sub.lost == 0
        # Every fill on the bus is one the venue made (price and size), and the journal holds
        # exactly the venue's fills, commissions in the currency OKX charged them in.
        fills = venue_fills(env, creds)
        venue = sorted((Decimal(f["fillPx"]), Decimal(f["fillSz"])) for f in fills)
        assert sorted((Decimal(f.price), Decimal(f.qty)) for f in bus) == venue
        assert_journal_matches_venue(env, creds)
        assert {f["feeCcy"] for f in fills} <= {"BTC", "USDT"}
        # A clean stop leaves nothing open, at the venue or in the journal.
        assert open_at_venue(env, creds) == 0
        records = env.journal_records()
        assert records[-1]["t"] == "stop" and records[-1]["open_orders"] == 0
        text = engine.text()
        assert creds["PYRT_E2E_OKX_SECRET"] not in text
        assert creds["PYRT_E2E_OKX_PASSPHRASE"] not in text
        print(f"okx: {len(bus)} fills on the bus, {len(fills)} at the venue")

        # A wrong passphrase: the venue refuses the first signed request (the open orders
        # listed at start) and the engine stops before it trades.
        wrong = {**creds, "PYRT_E2E_OKX_PASSPHRASE": "not-it"}
        proc = env._spawn("engine_wrong", ["run", "--manifest", str(env.manifest_path)], wrong)
        assert proc.popen.wait(30) == 2, proc.text()
        assert "the venue refused our credentials (50105" in proc.text(), proc.text()


def test_okx_fills_made_while_the_engine_was_down_are_caught_up_at_restart(
    tmp_path: Path,
) -> None:
    creds = keys()
    with live(tmp_path, PAPER_OKX, CREDENTIALS, STILL, speed="2") as env:
        env.start_sim(env=creds)
        env.start_engine(env=creds)
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.open_orders > 0,
            60,
            "a resting order",
        )
        wait_for(lambda: open_at_venue(env, creds) > 0, 10, "an order resting at OKX", 0.25)
        assert env.stop("engine", signal.SIGKILL) == -signal.SIGKILL
        seen = len(journal_fills(env))
        # The orders left resting keep trading with the replayed book meanwhile.
        wait_for(
            lambda: len(venue_fills(env, creds)) > seen, 60, "a fill while the engine is down", 0.5
        )

        env.sub = None
        engine = env.start_engine(name="engine2", env=creds)
        text = engine.text()
        assert "catching up with the venue" in text, text
        assert "fill(s) the engine had not seen" in text, text
        caught = [
            r for r in journal_fills(env) if str(r.get("reason", "")).startswith("caught_up trade")
        ]
        assert caught, "the missed fills are journaled"
        assert env.stop("engine2") == 0
        assert_journal_matches_venue(env, creds)
        assert open_at_venue(env, creds) == 0


def test_an_unsigned_okx_request_is_refused(tmp_path: Path) -> None:
    creds = keys()
    with live(tmp_path, PAPER_OKX, CREDENTIALS) as env:
        env.start_sim(env=creds)
        req = urllib.request.Request(f"{env.rest}/api/v5/account/balance")
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("an unsigned request was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 401
            assert json.loads(e.read())["code"] == "50103"
        # Signed, it is answered.
        assert okx_get(env, "/api/v5/account/balance", creds)


def test_an_okx_429_backs_off_two_seconds_and_never_holds_back_a_cancel(tmp_path: Path) -> None:
    """OKX answers a request past a limit HTTP 429 `50011` without Retry-After, per endpoint
    over 2 s. The engine backs off new orders for OKX's 2 s (not to the end of the minute),
    cancels meanwhile (a 429 on placing is no reason to keep risk on), and counts OKX's
    placements against the exchange's `rate_limits`."""
    creds = keys()
    with live(tmp_path, PAPER_OKX, CREDENTIALS, speed="2") as env:
        env.start_sim(env=creds)
        env.start_engine(env=creds)
        wait_for(lambda: open_at_venue(env, creds) > 0, 60, "an order resting at OKX", 0.25)
        # Placements count as orders (per 10 s and per day) against the exchange's limits.
        wait_for(
            lambda: counters(env.heartbeat()).get("rl.okx.orders_1d", 0) > 0,
            15,
            "OKX orders counted in the heartbeat",
        )
        # Far from the end of a wall-clock minute, where a back-off "to the end of the
        # minute" would end.
        while time.time() % 60 > 35:
            time.sleep(0.5)
        sim_okx(env, "fault?kind=rate_limit&count=1", "POST")
        wait_for(
            lambda: sim_okx(env, "status")["rate_limited"] >= 1, 30, "a 429 on placing an order"
        )
        # At once, within the back-off: pausing cancels every open order (OKX: listed, then
        # cancelled by id), and those requests go: the 429 was about placing orders.
        assert env.command("pause").ok
        wait_for(lambda: open_at_venue(env, creds) == 0, 10, "the open orders cancelled", 0.1)
        wait_for(
            lambda: sim_okx(env, "status")["other_after_429_ms"] is not None,
            10,
            "a request after the 429",
        )
        status = sim_okx(env, "status")
        assert status["other_after_429_ms"] < 2000, f"held back by the 429: {status}"
        assert status["order_after_429_ms"] is None, f"an order during the back-off: {status}"
        assert env.command("resume").ok
        # Trading again once OKX's 2 s window is over, not a minute later.
        wait_for(
            lambda: sim_okx(env, "status")["order_after_429_ms"] is not None,
            15,
            "an order after the 429",
        )
        status = sim_okx(env, "status")
        assert 2000 <= status["order_after_429_ms"] < 10_000, status
        assert status["rate_limited"] == 1, f"the engine hit the limit again: {status}"

        def throttled_counted() -> bool:
            c = counters(env.heartbeat())
            return c.get("rl.okx.throttled_429") == 1 and c.get("rl.okx.orders_10s_limit") == 300

        wait_for(throttled_counted, 10, "the 429 in the heartbeat")
        assert env.stop("engine") == 0
        assert open_at_venue(env, creds) == 0


def inst_type(inst: str) -> str:
    """OKX's `instType` of an `instId`: a swap ends with `-SWAP`."""
    return "SWAP" if inst.endswith("-SWAP") else "SPOT"


def pending(env: Live, creds: dict[str, str], inst: str) -> int:
    """Every pending order on `inst`, page by page (newest first, `after` an ordId)."""
    n, after = 0, ""
    while True:
        page = okx_get(
            env,
            f"/api/v5/trade/orders-pending?instType={inst_type(inst)}&instId={inst}&limit=100{after}",
            creds,
        )
        n += len(page)
        if len(page) < 100:
            return n
        after = f"&after={page[-1]['ordId']}"


def test_okx_start_cancels_every_page_of_the_traded_instrument_and_nothing_else(
    tmp_path: Path,
) -> None:
    """At start the engine cancels the open orders a previous run may have left: on the
    instruments it trades only (paper_okx reads UNI-USD-SWAP, never trades it: an order there
    is someone else's), and all of them, past OKX's page of 100 pending orders."""
    creds = keys()
    with live(tmp_path, PAPER_OKX, CREDENTIALS, STILL, speed="2") as env:
        env.start_sim(env=creds)

        def place(inst: str, px: str, sz: str) -> bool:
            order = {
                "instId": inst,
                # A swap trades on margin (cross), spot in cash.
                "tdMode": "cross" if inst_type(inst) == "SWAP" else "cash",
                "side": "buy",
                "ordType": "limit",
                "px": px,
                "sz": sz,
            }
            answer = okx_post(env, "/api/v5/trade/order", order, creds)
            return bool(answer["code"] == "0")

        # The sim takes orders once its books are replayed.
        wait_for(lambda: place("UNI-USD-SWAP", "0.5", "25"), 30, "the sim's books", 0.25)
        wait_for(lambda: place("BTC-USDT", "1000", "0.011"), 30, "the BTC-USDT book", 0.25)
        for _ in range(129):
            assert place("BTC-USDT", "1000", "0.011")
        assert pending(env, creds, "BTC-USDT") == 130
        assert pending(env, creds, "UNI-USD-SWAP") == 1

        engine = env.start_engine(env=creds)
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.open_orders > 0,
            60,
            "the engine trading",
        )
        text = engine.text()
        assert "cancelled 130 open order(s) on BTCUSDT left by a previous run" in text, text
        assert "UNIUSDSWAP left by" not in text, text
        assert pending(env, creds, "UNI-USD-SWAP") == 1, "an instrument read only is left alone"
        assert env.stop("engine") == 0
        assert pending(env, creds, "BTC-USDT") == 0
        assert pending(env, creds, "UNI-USD-SWAP") == 1


def test_okx_quotes_are_amended_in_place_and_every_fill_is_at_the_amended_price(
    tmp_path: Path,
) -> None:
    """`requote: amend`: the market maker moves its working quotes with `amend-order` (one
    request, the same order) instead of cancelling and placing. The venue makes each amendment
    (the sim's matcher moves the resting order), its push settles it, the journal holds the
    request and its outcome, and every fill the venue made of an amended order is at the price
    the journal says the order had then: the venue and the engine agree on every amendment."""
    creds = keys()
    amend = "+strategies.mm_okx.params.requote=amend"
    with live(tmp_path, PAPER_OKX, CREDENTIALS, amend, speed="4") as env:
        assert env.manifest["strategies"]["mm_okx"]["params"]["requote"] == "amend"
        env.start_sim(env=creds)
        engine = env.start_engine(env=creds)

        def amended() -> list[dict[str, Any]]:
            return [r for r in env.journal_records() if r["t"] == "exec" and r["kind"] == "amended"]

        def fills_of_amended_orders() -> int:
            seen: set[int] = set()
            n = 0
            for r in env.journal_records():
                if r["t"] == "exec" and r["kind"] == "amended":
                    seen.add(r["id"])
                elif r["t"] == "exec" and r["kind"] == "fill" and r["id"] in seen:
                    n += 1
            return n

        wait_for(lambda: len(amended()) >= 5, 90, "five amendments made", 0.5)
        wait_for(lambda: fills_of_amended_orders() > 0, 90, "a fill of an amended order", 0.5)
        assert env.stop("engine") == 0, engine.text()

        records = env.journal_records()
        asked = [r for r in records if r["t"] == "amend"]
        answers = [
            r for r in records if r["t"] == "exec" and r["kind"] in ("amended", "amend_rejected")
        ]
        made = [r for r in answers if r["kind"] == "amended"]
        # Every amendment sent was answered once, before the next one of its order: made as
        # asked, or refused with a reason. A refusal with nothing sent is the gateway's own (the
        # order finished meanwhile), journaled with the order's side and a reason.
        pending: dict[int, tuple[Decimal, Decimal]] = {}
        sides = {r["id"]: r["side"] for r in records if r["t"] == "order"}
        for r in records:
            if r["t"] == "amend":
                assert r["id"] not in pending, r
                pending[r["id"]] = (Decimal(r["price"]), Decimal(r["qty"]))
            elif r in answers:
                assert r["side"] == sides[r["id"]], r
                if r["kind"] == "amended":
                    assert pending.pop(r["id"]) == (Decimal(r["price"]), Decimal(r["qty"])), r
                else:
                    assert r["reason"], r
                    pending.pop(r["id"], None)
        assert not pending, f"amendments never answered: {pending}"
        assert len(asked) >= 5
        # The venue made exactly the amendments the journal holds as made.
        assert sim_okx(env, "status")["amends"] == len(made)
        orders = [r for r in records if r["t"] == "order" and r["exchange"] == "okx"]

        # Each fill of an order is at the price the journal says it had then (post-only quotes
        # fill as makers at their own price), and the journal's fills are the venue's.
        price_of: dict[int, Decimal] = {r["id"]: Decimal(r["price"]) for r in orders}
        amended_ids: set[int] = set()
        checked = 0
        for r in records:
            if r["t"] == "exec" and r["kind"] == "amended":
                price_of[r["id"]] = Decimal(r["price"])
                amended_ids.add(r["id"])
            elif r["t"] == "exec" and r["kind"] == "fill" and r["id"] in price_of:
                assert Decimal(r["price"]) == price_of[r["id"]], r
                checked += r["id"] in amended_ids
        assert checked > 0, "no fill of an amended order was checked"
        assert_journal_matches_venue(env, creds)
        assert open_at_venue(env, creds) == 0
        text = engine.text()
        print(
            f"okx amend: {len(asked)} asked, {len(made)} made, {len(orders)} orders, "
            f"{checked} fills checked"
        )
        assert creds["PYRT_E2E_OKX_SECRET"] not in text
