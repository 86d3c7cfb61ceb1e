"""Several venues in one engine end to end (paper_multi): the real engine quotes BTC-USDT on
OKX's protocols and takes its fair value from Binance's BTCUSDT book, both served at once by
the real sim over loopback (Binance's replay of the 2024 capture, OKX's of the 2022 one).

The oracle of "the quotes follow Binance's book" is the sim's own Binance book
(`GET /api/v3/depth`), polled while the engine trades: with the basis frozen
(`basis_updates` at its largest, so the fair value is Binance's mid plus a constant), the OKX
bids move with it; the same engine without the signal (quoting around OKX's own book) does
not. The kill switch is checked on an engine that has orders resting on both venues.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path

from appliance.bus import bus_pb2 as pb
from tests.conftest import Run
from tests.e2e.harness import Live, live, wait_for
from tests.e2e.test_ctl_engine import _ctl

PAPER_MULTI = "deployment=paper_multi"
MM = "strategies.mm_okx_binance"
# The basis never moves from its first value: the fair value is Binance's mid plus a constant.
FROZEN = f"{MM}.params.signal.basis_updates=4294967295"
HALTED = pb.RiskStateKind.Value("HALTED")


def binance_mid(env: Live) -> float:
    with urllib.request.urlopen(f"{env.rest}/api/v3/depth?symbol=BTCUSDT&limit=5", timeout=2) as r:
        d = json.loads(r.read())
    return (float(d["bids"][0][0]) + float(d["asks"][0][0])) / 2


def trade_and_watch_binance(env: Live, seconds: float) -> list[tuple[int, float]]:
    """Runs sim and engine for `seconds`, polling the sim's Binance mid: (wall ns, mid)."""
    env.start_sim()
    env.start_engine()
    polls: list[tuple[int, float]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                polls.append((time.time_ns(), binance_mid(env)))
            done.wait(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        env.pump(seconds)
    finally:
        done.set()
        poller.join()
    return polls


def okx_bids_against_binance(
    env: Live, polls: list[tuple[int, float]]
) -> list[tuple[float, float]]:
    """(our accepted OKX bid, Binance's mid when it was accepted)."""
    times = [t for t, _ in polls]
    out = []
    for e in env.seen:
        if e.WhichOneof("body") != "order":
            continue
        o = e.order
        if o.exchange == "okx" and o.status == pb.ACCEPTED and o.side == pb.BUY:
            i = min(bisect_left(times, e.wall_ns), len(polls) - 1)
            out.append((float(o.price), polls[i][1]))
    return out


def test_quotes_on_okx_follow_binances_book_and_every_fill_is_on_the_bus(tmp_path: Path) -> None:
    (tmp_path / "signal").mkdir()
    (tmp_path / "own").mkdir()
    with live(tmp_path / "signal", PAPER_MULTI, FROZEN) as env:
        polls = trade_and_watch_binance(env, 20)
        hb = env.heartbeat()
        assert env.stop("engine") == 0, env.procs["engine"].text()
        env.pump(0.5)
        fills = [e.fill for e in env.seen if e.WhichOneof("body") == "fill"]
        assert fills, "no fill on OKX"
        assert {(f.exchange, f.symbol) for f in fills} == {("okx", "BTCUSDT")}
        # Every fill the engine counted reached the bus, none was lost.
        assert env.sub is not None and env.sub.lost == 0
        assert dict(hb.counters)["fills"] <= len(fills)
        bids = okx_bids_against_binance(env, polls)
        assert len(bids) >= 10, bids
        ours, theirs = zip(*bids, strict=True)
        assert max(theirs) - min(theirs) > 20, "Binance's book hardly moved: no evidence"
        # The two venues' prices are 2x apart (2024 vs 2022): only the moves are followed.
        assert 25_000 < min(ours) < max(ours) < 40_000 < 50_000 < min(theirs)
        followed = statistics.correlation(ours, theirs)
        assert followed > 0.8, f"OKX bids vs Binance's mid: correlation {followed:.2f}"

    # The control: the same engine quoting around OKX's own book does not follow Binance.
    with live(tmp_path / "own", PAPER_MULTI, f"~{MM}.params.signal") as env:
        polls = trade_and_watch_binance(env, 20)
        assert env.stop("engine") == 0, env.procs["engine"].text()
        bids = okx_bids_against_binance(env, polls)
        assert len(bids) >= 10, bids
        ours, theirs = zip(*bids, strict=True)
        alone = statistics.correlation(ours, theirs) if len(set(ours)) > 1 else 0.0
        assert alone < 0.5, f"without the signal: correlation {alone:.2f}"


def test_the_kill_switch_cancels_on_every_venue(tmp_path: Path) -> None:
    # A second market maker on the sim's Binance: orders rest on both venues at once.
    with live(
        tmp_path,
        PAPER_MULTI,
        "+strategy@strategies.mm_binance=mm_btcusdt_sim",
        "deployment.engines.paper_1.strategies=[mm_okx_binance,mm_binance]",
        f"{MM}.params.requote_threshold_ticks=1000000",
        "strategies.mm_binance.params.requote_threshold_ticks=1000000",
        speed="1",
    ) as env:
        env.start_sim()
        env.start_engine()

        def resting() -> dict[str, set[int]]:
            """Order ids accepted and not final yet, by exchange, as the bus told."""
            state: dict[int, tuple[str, int]] = {}
            for e in env.seen:
                if e.WhichOneof("body") == "order":
                    state[e.order.order_id] = (e.order.exchange, e.order.status)
            out: dict[str, set[int]] = {}
            for oid, (x, status) in state.items():
                if status in (pb.ACCEPTED, pb.PARTIALLY_FILLED):
                    out.setdefault(x, set()).add(oid)
            return out

        def both() -> bool:
            env.pump(0.2)
            return set(resting()) == {"okx", "sim_binance"}

        wait_for(both, 60, "orders resting on OKX and on Binance at once", step=0)
        before = resting()
        reply = env.command("kill")
        assert reply.ok, reply
        wait_for(
            lambda: (s := env.status_or_none()) is not None and s.open_orders == 0,
            15,
            "no open order after the kill",
        )
        env.pump(1)
        status = env.status_or_none()
        assert status is not None and status.risk_state == HALTED and status.paused
        final = {
            e.order.order_id: e.order.status for e in env.seen if e.WhichOneof("body") == "order"
        }
        for exchange, ids in before.items():
            assert all(final[i] in (pb.CANCELLED, pb.FILLED) for i in ids), (exchange, final)
        assert resting() == {}
        # The venues agree: nothing of ours is open on either.
        stamp = int(time.time() * 1000)
        with urllib.request.urlopen(
            f"{env.rest}/api/v3/openOrders?symbol=BTCUSDT&timestamp={stamp}", timeout=5
        ) as r:
            assert json.loads(r.read()) == [], "orders left open on Binance"
        with urllib.request.urlopen(
            f"{env.rest}/api/v5/trade/orders-pending?instType=SPOT&instId=BTC-USDT", timeout=5
        ) as r:
            body = json.loads(r.read())
        assert body["code"] == "0" and body["data"] == [], f"orders left open on OKX: {body}"
        assert env.stop("engine") == 0


def test_limits_tightened_at_run_time_hold_on_every_venue(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    """`appliance ctl tighten` on an engine of two venues: an asset's limit
    (`assets.BTC.max_position`) and a symbol's (`instruments.BTCUSDT.max_position`, the one
    limit the manifest gives BTCUSDT on OKX and on Binance) each hold on both venues at once:
    from then on the market makers' new orders on both are refused for that reason."""
    with live(
        tmp_path,
        PAPER_MULTI,
        "+strategy@strategies.mm_binance=mm_btcusdt_sim",
        "deployment.engines.paper_1.strategies=[mm_okx_binance,mm_binance]",
        speed="2",
    ) as env:
        env.start_sim()
        env.start_engine()

        def rejected(reason: str, after: int) -> set[str]:
            env.pump(0.2)
            return {
                e.order.exchange
                for e in env.seen[after:]
                if e.WhichOneof("body") == "order"
                and e.order.status == pb.REJECTED
                and e.order.reject_reason == reason
            }

        def sent_on_both() -> bool:
            env.pump(0.2)
            return {e.order.exchange for e in env.seen if e.WhichOneof("body") == "order"} == {
                "okx",
                "sim_binance",
            }

        wait_for(sent_on_both, 60, "orders on OKX and on Binance", step=0)
        limit = env.manifest["risk"]["assets"]["BTC"]["max_position"]
        # Looser than the manifest: refused, the limit unchanged.
        run = _ctl(cli, env, "tighten", "assets.BTC.max_position", "1")
        assert run.exit_code == 2, run.stdout + run.stderr
        assert f"would loosen the limit (now {limit})" in run.stderr, run.stderr
        run = _ctl(cli, env, "tighten", "assets.BTC.max_notional", "1")
        assert run.exit_code == 2 and "an asset has one limit" in run.stderr, run.stderr
        # Zero: no order may add BTC on either venue.
        mark = len(env.seen)
        run = _ctl(cli, env, "tighten", "assets.BTC.max_position", "0")
        assert run.exit_code == 0, run.stderr
        wait_for(
            lambda: rejected("max_asset_position", mark) == {"okx", "sim_binance"},
            30,
            "orders refused for the asset's limit on both venues",
            step=0,
        )
        # The symbol's own limit, on both venues' BTCUSDT (checked before the asset's).
        mark = len(env.seen)
        run = _ctl(cli, env, "tighten", "instruments.BTCUSDT.max_position", "0")
        assert run.exit_code == 0, run.stderr
        wait_for(
            lambda: rejected("max_position", mark) == {"okx", "sim_binance"},
            30,
            "orders refused for BTCUSDT's limit on both venues",
            step=0,
        )
        assert env.stop("engine") == 0
