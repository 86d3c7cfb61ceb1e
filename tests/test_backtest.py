"""Backtests from Python on the engine's Rust core, over the bundled real BTCUSDT capture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.research import backtest
from tests.conftest import ROOT, Run

CAPTURE = ROOT / "data/binance/spot_btcusdt_20240808.gz"


@pytest.fixture(scope="module")
def manifest_text() -> str:
    return compile_config(ROOT, []).manifests[0].text


@pytest.fixture(scope="module")
def result(manifest_text: str) -> backtest.BacktestResult:
    return backtest.run(manifest_text, [CAPTURE])


def test_market_maker_trades_on_real_data(result: backtest.BacktestResult) -> None:
    assert result.counters["events"] == 41_249  # every line of the capture is an event
    assert result.counters["gaps"] == 0 and result.counters["data_errors"] == 0
    assert result.summary["orders_placed"] > 100
    assert len(result.fills) > 50
    assert set(result.fills["side"]) == {"buy", "sell"}
    assert set(result.fills["liquidity"]) <= {"maker", "taker"}
    # A market maker's fills are at its own quotes: within a few ticks of the mid.
    assert (result.fills["price"] > 50_000).all()
    limit = 0.05  # risk.instruments.BTCUSDT.max_position in conf/risk/conservative.yaml
    assert result.marks["position"].abs().max() <= limit
    assert result.equity["position.BTCUSDT"].abs().max() <= limit
    assert set(result.marks["symbol"]) == {"BTCUSDT"}
    assert result.risk_events.empty and result.summary["risk_events"] == 0
    assert list(result.risk_events.columns) == ["ts_ns", "from", "to", "cause"]


def test_two_runs_give_identical_results(
    manifest_text: str, result: backtest.BacktestResult
) -> None:
    again = backtest.run(manifest_text, [CAPTURE])
    pd.testing.assert_frame_equal(result.fills, again.fills)
    pd.testing.assert_frame_equal(result.orders, again.orders)
    pd.testing.assert_frame_equal(result.equity, again.equity)
    pd.testing.assert_frame_equal(result.marks, again.marks)
    pd.testing.assert_frame_equal(result.risk_events, again.risk_events)
    assert result.summary == again.summary


def test_native_file_replays_identically(
    manifest_text: str, result: backtest.BacktestResult, tmp_path: Path
) -> None:
    native = tmp_path / "spot.native"
    stats = engine.convert_capture(str(CAPTURE), str(native))
    assert stats["events"] == 41_249 and stats["decode_errors"] == 0
    replayed = backtest.run(manifest_text, [native])
    pd.testing.assert_frame_equal(result.fills, replayed.fills)
    assert result.summary == replayed.summary


def test_progress_is_reported_to_the_end(manifest_text: str) -> None:
    seen: list[tuple[int, int]] = []
    backtest.run(manifest_text, [CAPTURE], lambda done, total: seen.append((done, total)))
    size = CAPTURE.stat().st_size
    assert seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_risk_refusals_are_counted_by_reason(tmp_path: Path) -> None:
    text = (
        compile_config(ROOT, ["risk.order_rate.per_second=1", "risk.order_rate.burst=1"])
        .manifests[0]
        .text
    )
    tight = backtest.run(text, [CAPTURE])
    assert tight.summary["orders_rejected"] > 0
    assert tight.summary["rejections"].get("rate_limit", 0) > 0
    assert set(tight.orders.loc[tight.orders["status"] == "rejected", "reject_reason"]) <= set(
        tight.summary["rejections"]
    )


def test_a_market_maker_may_quote_against_the_real_time_bbo(
    result: backtest.BacktestResult,
) -> None:
    """`touch: bbo`: the capture's bookTicker events (as new as the diff book or newer)
    reach the market maker, which quotes against them; older ones are counted and dropped.
    The default (`touch` absent: book) never sees them."""
    text = compile_config(ROOT, ["+strategies.mm_btcusdt.params.touch=bbo"])
    ticker = backtest.run(text.manifests[0].text, [CAPTURE])
    c, base = ticker.counters, result.counters
    assert c["bbos"] == base["bbos"] > 10_000, (c["bbos"], base["bbos"])
    # On this capture (100 ms diffs, real-time tickers) no ticker trails the diff book (an
    # older one would be dropped: engine/core/tests/backtest.rs); each one after the first
    # snapshot is one more strategy call.
    assert c["bbos_stale"] == 0
    extra_calls = c["strategy_calls"] - base["strategy_calls"]
    assert c["bbos"] - 10 <= extra_calls <= c["bbos"], (extra_calls, c)
    # Quoting against a top that moves more often: other orders than the book's.
    assert ticker.summary["orders_placed"] != result.summary["orders_placed"]
    assert len(ticker.fills) > 0
    print(
        f"bbo: {c['bbos']:,} tickers, {c['bbos_stale']:,} older than the book, "
        f"{extra_calls:,} more strategy calls; orders {ticker.summary['orders_placed']} "
        f"(book: {result.summary['orders_placed']}), fills {len(ticker.fills)} "
        f"(book: {len(result.fills)})"
    )


def test_bad_data_file_is_an_error(manifest_text: str, tmp_path: Path) -> None:
    with pytest.raises(engine.BacktestError, match="no-such"):
        backtest.run(manifest_text, [tmp_path / "no-such.gz"])


def test_cli_backtest_writes_the_report(project: Path, cli: Callable[..., Run]) -> None:
    out = project / "reports"
    run = cli("backtest", "--out", str(out), root=project)
    assert run.exit_code == 0, run.stderr
    names = ("report.html", "report.png", "summary.json", "fills.csv", "orders.csv", "marks.csv")
    for name in names:
        assert (out / name).stat().st_size > 0
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and "max_drawdown" in html
    summary = json.loads((out / "summary.json").read_text())
    for key in ("pnl", "sharpe", "max_drawdown", "turnover", "fill_ratio", "fees", "rejections"):
        assert key in summary["summary"]
    assert summary["summary"]["return_bucket"] == "1min"
    assert (out / "risk_events.csv").read_text().startswith("ts_ns,from,to,cause")
    assert "pnl" in run.stdout and "fill_ratio" in run.stdout
    again = cli("backtest", "--no-report", "--format", "json", root=project)
    assert json.loads(again.stdout)["summary"] == summary["summary"]


def test_cli_backtest_needs_an_engine_choice_for_two(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("backtest", "deployment=prod_example", "--data", str(CAPTURE), root=project)
    assert run.exit_code == 2
    assert "--engine" in run.stderr


def test_cli_backtest_bucket_sets_the_return_bucket(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("backtest", "--no-report", "--format", "json", "--bucket", "30s", root=project)
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["summary"]["return_bucket"] == "30s"


@pytest.mark.parametrize(
    ("bucket", "why"),
    [("1ME", "not a fixed-length"), ("0s", "not a positive"), ("-1min", "not a positive")],
)
def test_cli_backtest_refuses_a_bad_bucket(
    project: Path, cli: Callable[..., Run], bucket: str, why: str
) -> None:
    run = cli("backtest", "--no-report", "--bucket", bucket, root=project)
    assert run.exit_code == 2
    assert "--bucket" in run.stderr and why in run.stderr and "backtest.bucket" in run.stderr
    assert "Traceback" not in run.stderr


def golden_text(result: backtest.BacktestResult) -> str:
    """Everything a behaviour change would move, to the last digit: the summary (decimal P&L
    strings as the core formats them, floats by repr), every order and every fill."""
    lines = [
        "# The default deployment (paper_local) backtested on the bundled",
        "# data/binance/spot_btcusdt_20240808.gz. A change here is a change of behaviour:",
        "# say why in the commit that refreshes it (UPDATE_SNAPSHOTS=1).",
        "summary",
    ]
    lines += [f"  {key} {result.summary[key]!r}" for key in sorted(result.summary)]
    for name, frame, columns in (
        ("orders", result.orders, list(result.orders.columns)),
        ("fills", result.fills, ["ts_ns", "order_id", "side", "price", "qty", "liquidity", "fee"]),
    ):
        lines.append(f"{name} ({len(frame)}): {' '.join(columns)}")
        lines += [
            "  " + " ".join(repr(v) for v in row) for row in frame[columns].itertuples(index=False)
        ]
    return "\n".join(lines) + "\n"


def test_golden_result_on_the_bundled_capture(
    result: backtest.BacktestResult, snapshot: Callable[[str, str], None]
) -> None:
    snapshot("backtest_golden", golden_text(result))
