"""EngineView: how events fold into what the monitor and the run summary show."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.console import Console

from appliance.bus import bus_pb2 as pb
from appliance.bus.monitor import EngineView, render, render_summary


def order(oid: int, status: int, reason: str = "") -> pb.Event:
    return pb.Event(
        engine_id="paper_1",
        order=pb.OrderUpdate(
            order_id=oid,
            symbol="BTCUSDT",
            side=pb.SELL,
            kind=pb.LIMIT,
            price="61000.5",
            qty="0.002",
            filled_qty="0",
            status=status,  # type: ignore[arg-type]
            reject_reason=reason,
        ),
    )


def heartbeat(md: int, uptime_ms: int) -> pb.Event:
    return pb.Event(
        engine_id="paper_1",
        heartbeat=pb.Heartbeat(
            uptime_ms=uptime_ms,
            risk_state=pb.REDUCING,
            equity="-12.5",
            realised_pnl="-10",
            fees="2.5",
            counters={"md_messages": md, "fills": 2},
            positions=[pb.Position(exchange="x", symbol="BTCUSDT", qty="-0.002")],
        ),
    )


def text(renderable: object) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_order_lifecycle_rejections_and_fills() -> None:
    view = EngineView()
    view.apply(order(1, pb.ACCEPTED))
    view.apply(order(2, pb.PARTIALLY_FILLED))
    view.apply(order(3, pb.REJECTED, "price_band"))
    view.apply(order(4, pb.REJECTED, "price_band"))
    assert sorted(view.open_orders) == [1, 2]
    view.apply(order(1, pb.CANCELLED))
    view.apply(order(2, pb.FILLED))
    assert view.open_orders == {}
    for qty in ("0.001", "0.0015"):
        view.apply(
            pb.Event(fill=pb.Fill(order_id=2, symbol="BTCUSDT", side=pb.SELL, qty=qty, price="1"))
        )
    assert view.fills == 2
    assert view.fill_qty == {"BTCUSDT": Decimal("0.0025")}
    assert view.rejects == {"price_band": 2}
    view.apply(pb.Event(risk=pb.RiskChange(from_state=pb.ACTIVE, to_state=pb.HALTED, cause="kill")))
    summary = text(render_summary(view, "t"))
    assert "price_band: 2" in summary
    assert "ACTIVE -> HALTED (kill)" in summary
    assert "BTCUSDT: 0.0025" in summary


def test_rates_from_successive_heartbeats() -> None:
    view = EngineView()
    view.apply(heartbeat(1000, 1000), now=10.0)
    assert view.rates["md_messages"].per_s is None
    view.apply(heartbeat(1500, 2000), now=11.0)
    assert view.rates["md_messages"].per_s == 500.0
    assert view.risk_state == "REDUCING"
    out = text(render(view, now=11.5))
    assert "500.0" in out and "REDUCING" in out and "-12.5" in out
    assert "no heartbeat" not in out
    assert "no heartbeat for 5 s" in text(render(view, now=16.0))


def test_a_restart_clears_orders_and_rates() -> None:
    view = EngineView()
    view.apply(order(1, pb.ACCEPTED))
    view.apply(heartbeat(1000, 1000), now=1.0)
    view.apply(heartbeat(10, 100), now=2.0, restarted=True)
    assert view.open_orders == {}
    assert view.rates["md_messages"].per_s is None
    assert "engine restarted" in text(render(view, now=2.0))


def test_lost_messages_are_a_visible_warning() -> None:
    view = EngineView()
    view.apply(heartbeat(1, 1), now=1.0)
    assert "lost" not in text(render(view, now=1.0))
    view.lost, view.gaps = 1, 1
    assert "WARNING: 1 bus message lost (1 gap in seq)" in text(render(view, now=1.0))


def test_summary_shows_the_overflows_the_engine_saw_on_the_bus() -> None:
    view = EngineView()
    view.apply(heartbeat(1, 1))
    assert "overflow" not in text(render_summary(view, "t"))
    hb = heartbeat(2, 2)
    hb.heartbeat.counters["bus_subscriber_overflows"] = 3
    view.apply(hb)
    assert "the engine saw a subscriber's queue overflow 3x" in text(render_summary(view, "t"))


def test_summary_prefers_the_engines_rejection_counters() -> None:
    view = EngineView()
    view.apply(order(3, pb.REJECTED, "price_band"))
    assert "price_band: 1" in text(render_summary(view, "t"))
    hb = heartbeat(1, 1)
    hb.heartbeat.counters["rejected.price_band"] = 4
    hb.heartbeat.counters["rejected.max_open_orders"] = 1
    view.apply(hb)
    assert "max_open_orders: 1, price_band: 4" in text(render_summary(view, "t"))


def test_each_venue_shows_its_feed_book_sync_and_latency() -> None:
    view = EngineView()
    stage = pb.StageLatency
    view.apply(
        pb.Event(
            engine_id="paper_1",
            heartbeat=pb.Heartbeat(
                counters={"books_invalid.okx": 0, "book_checksums_checked.okx": 1234},
                latency=[
                    stage(stage="frame_to_strategy", count=3, p50_ns=20_000, p99_ns=90_000),
                    stage(stage="frame_to_strategy.okx", count=1, p50_ns=31_000, p99_ns=31_000),
                    stage(stage="frame_to_strategy.sim_binance", count=2, p50_ns=12_000),
                ],
                feeds=[
                    pb.FeedState(exchange="okx", state=pb.LIVE),
                    pb.FeedState(exchange="sim_binance", state=pb.RESYNCING, gaps=1),
                ],
            ),
        )
    )
    out = text(render(view, now=1.0))
    okx, binance = (
        next(line for line in out.splitlines() if f"│ {name} " in line)
        for name in ("okx", "sim_binance")
    )
    assert "LIVE" in okx and "verified" in okx and "31.0 µs" in okx
    assert "RESYNCING" in binance and "syncing" in binance and "12.0 µs" in binance
    # The per-venue rows are not repeated in the latency table.
    assert "frame_to_strategy.okx" not in out
    view.apply(
        pb.Event(
            engine_id="paper_1",
            heartbeat=pb.Heartbeat(
                counters={"books_invalid.okx": 1},
                feeds=[pb.FeedState(exchange="okx", state=pb.RESYNCING)],
            ),
        )
    )
    assert "1 invalid" in text(render(view, now=2.0))


def test_the_summary_names_the_build_that_measured_the_latency() -> None:
    view = EngineView()
    view.apply(heartbeat(10, 1000))
    out = {build: text(render_summary(view, "t", build)) for build in ("release", "debug", None)}
    assert "latency (release build)" in out["release"]
    assert "latency (debug build)" in out["debug"]
    assert "not the engine's latency" in " ".join(out["debug"].split())
    assert "not the engine's latency" not in " ".join(out["release"].split())
    assert "build" not in out[None]


def test_unrealised_is_the_engines_quote_total_not_a_sum_of_coins() -> None:
    """An inverse swap's position reports its unrealised P&L in its coin (UNI); the P&L table's
    unrealised row is the engine's own quote total, equity - realised + fees."""
    view = EngineView()
    view.apply(
        pb.Event(
            engine_id="paper_1",
            heartbeat=pb.Heartbeat(
                uptime_ms=1000,
                equity="1.5",
                realised_pnl="0.5",
                fees="0.25",
                positions=[
                    pb.Position(exchange="okx", symbol="UNIUSDSWAP", qty="3", unrealised_pnl="0.24")
                ],
            ),
        )
    )
    shown = text(render(view))
    row = next(line for line in shown.splitlines() if "unrealised" in line)
    assert "1.25" in row and "0.24" not in row, row
