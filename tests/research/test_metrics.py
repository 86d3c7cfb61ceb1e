"""Backtest metrics (appliance/research/metrics.py, docs/metrics.md) on small hand-computed frames,
a synthetic two-instrument engine result through `backtest.from_raw` and the reports, and one
run on the bundled real capture checking that the figures agree with each other."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.compiler import compile_config
from appliance.research import backtest, metrics, report
from tests.conftest import ROOT

S = 1_000_000_000  # one second in ns
T0 = 1_723_161_600 * S  # 2024-08-09 00:00:00 UTC
MINUTES_PER_YEAR = 365 * 24 * 60
CAPTURE = ROOT / "data/binance/spot_btcusdt_20240808.gz"


def equity_frame(points: list[tuple[float, float]]) -> pd.DataFrame:
    """(seconds after T0, equity) pairs."""
    return pd.DataFrame(
        {
            "ts_ns": [T0 + round(t * S) for t, _ in points],
            "equity": [e for _, e in points],
        }
    )


# ---------------------------------------------------------------------------- return bucket


@pytest.mark.parametrize(
    ("bucket", "seconds"), [("1min", 60.0), ("5s", 5.0), ("100ms", 0.1), ("1h", 3600.0)]
)
def test_bucket_seconds(bucket: str, seconds: float) -> None:
    assert metrics.bucket_seconds(bucket) == seconds
    assert metrics.buckets_per_year(bucket) == 365 * 24 * 3600 / seconds


@pytest.mark.parametrize("bucket", ["1ME", "B", "1W", "abc", "", "0s", "-1min"])
def test_bad_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(metrics.InvalidBucket):
        metrics.bucket_seconds(bucket)


def test_bad_bucket_is_refused_before_the_engine_runs(tmp_path: Path) -> None:
    # The data file does not exist: the bucket is checked first, so that is not the error.
    with pytest.raises(metrics.InvalidBucket, match="1ME"):
        backtest.run("{}", [tmp_path / "missing.gz"], bucket="1ME")


# Samples at 0, 30, 59, 60 and 150 s; 1-minute buckets anchored at the first sample:
# [0, 60) ends at 2 -> +2; [60, 120) ends at 1.5 -> -0.5; [120, 180) ends at 3 -> +1.5.
HAND = equity_frame([(0, 0.0), (30, 1.0), (59, 2.0), (60, 1.5), (150, 3.0)])


def test_bucket_pnl_is_equity_change_per_bucket() -> None:
    pnl = metrics.bucket_pnl(HAND, "1min")
    assert pnl.tolist() == [2.0, -0.5, 1.5]
    assert pnl.index[0] == pd.Timestamp(T0)
    assert pnl.sum() == HAND["equity"].iloc[-1] - HAND["equity"].iloc[0]


def test_bucket_without_samples_has_zero_pnl() -> None:
    pnl = metrics.bucket_pnl(equity_frame([(0, 0.0), (10, 1.0), (190, 4.0)]), "1min")
    assert pnl.tolist() == [1.0, 0.0, 0.0, 3.0]


def test_bucket_pnl_ignores_row_order() -> None:
    shuffled = HAND.iloc[[3, 0, 4, 2, 1]]
    assert metrics.bucket_pnl(shuffled, "1min").tolist() == [2.0, -0.5, 1.5]


def test_sharpe_and_sortino_by_hand() -> None:
    pnl = metrics.bucket_pnl(HAND, "1min")
    # mean 1; sample variance ((1)^2 + (-1.5)^2 + (0.5)^2) / 2 = 1.75
    expected_sharpe = 1 / math.sqrt(1.75) * math.sqrt(MINUTES_PER_YEAR)
    assert metrics.sharpe(pnl, "1min") == pytest.approx(expected_sharpe, rel=1e-12)
    # downside deviation sqrt((0 + 0.25 + 0) / 3)
    expected_sortino = 1 / math.sqrt(0.25 / 3) * math.sqrt(MINUTES_PER_YEAR)
    assert metrics.sortino(pnl, "1min") == pytest.approx(expected_sortino, rel=1e-12)
    # The same P&L per 5-minute bucket annualises with sqrt(12 * 24 * 365).
    assert metrics.sharpe(pnl, "5min") == pytest.approx(expected_sharpe / math.sqrt(5), rel=1e-12)


def test_ratios_are_none_when_they_cannot_be_computed() -> None:
    assert metrics.sharpe(pd.Series([1.0]), "1min") is None
    assert metrics.sharpe(pd.Series([1.0, 1.0, 1.0]), "1min") is None
    assert metrics.sharpe(pd.Series(dtype=float), "1min") is None
    assert metrics.sortino(pd.Series([1.0, 2.0]), "1min") is None  # no losing bucket
    assert metrics.sortino(pd.Series([-1.0]), "1min") is None
    assert metrics.bucket_pnl(pd.DataFrame({"ts_ns": [], "equity": []}), "1min").empty


# ---------------------------------------------------------------------------- drawdown


@pytest.mark.parametrize(
    ("points", "depth", "seconds"),
    [
        # peak 6 at 55 s, trough 1 at 70 s, never recovered: to the end
        ([(0, 0.0), (10, 5.0), (20, 5.0), (30, 2.0), (40, 4.0), (55, 6.0), (70, 1.0)], 5.0, 15.0),
        # peak 10 at 10 s, trough 4 at 20 s, back to 10 at 35 s
        ([(0, 0.0), (10, 10.0), (20, 4.0), (35, 10.0), (50, 12.0)], 6.0, 25.0),
        # the drawdown starts when equity leaves its plateau (15 s), not when it got there
        ([(0, 0.0), (10, 10.0), (15, 10.0), (20, 4.0), (40, 11.0)], 6.0, 25.0),
        ([(0, 0.0), (10, 1.0), (20, 2.0)], 0.0, 0.0),
    ],
)
def test_max_drawdown_and_duration_by_hand(
    points: list[tuple[float, float]], depth: float, seconds: float
) -> None:
    frame = equity_frame(points)
    assert metrics.max_drawdown(frame["equity"]) == depth
    assert metrics.max_drawdown_duration_s(frame) == seconds


def test_drawdown_duration_of_no_samples_is_none() -> None:
    assert metrics.max_drawdown_duration_s(pd.DataFrame({"ts_ns": [], "equity": []})) is None
    assert metrics.duration_s(pd.DataFrame({"ts_ns": []})) is None


equity_paths = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=600 * S),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(equity_paths, st.sampled_from(["1s", "10s", "1min", "5min"]))
def test_drawdown_and_bucket_properties(points: list[tuple[int, float]], bucket: str) -> None:
    frame = pd.DataFrame({"ts_ns": [T0 + t for t, _ in points], "equity": [e for _, e in points]})
    ordered = frame.sort_values("ts_ns", kind="stable")
    assert metrics.max_drawdown(ordered["equity"]) >= 0
    duration = metrics.max_drawdown_duration_s(frame)
    run_length = metrics.duration_s(frame)
    assert duration is not None and run_length is not None
    assert 0.0 <= duration <= run_length
    pnl = metrics.bucket_pnl(frame, bucket)
    expected_buckets = (ordered["ts_ns"].iloc[-1] - ordered["ts_ns"].iloc[0]) // round(
        metrics.bucket_seconds(bucket) * S
    ) + 1
    assert len(pnl) == expected_buckets
    assert pnl.sum() == pytest.approx(
        ordered["equity"].iloc[-1] - ordered["equity"].iloc[0], abs=1e-6
    )
    for ratio in (metrics.sharpe(pnl, bucket), metrics.sortino(pnl, bucket)):
        assert ratio is None or math.isfinite(ratio)


# ---------------------------------------------------------------------------- fills


def marks_frame(rows: list[tuple[float, str, float, float]]) -> pd.DataFrame:
    """(seconds after T0, symbol, mid, position) rows."""
    return pd.DataFrame(
        {
            "ts_ns": [T0 + round(t * S) for t, *_ in rows],
            "symbol": [r[1] for r in rows],
            "mid": [r[2] for r in rows],
            "position": [r[3] for r in rows],
        }
    )


def fills_frame(rows: list[tuple[float, str, str, float, float, float]]) -> pd.DataFrame:
    """(seconds after T0, symbol, side, price, qty, fee) rows."""
    return pd.DataFrame(
        {
            "ts_ns": [T0 + round(r[0] * S) for r in rows],
            "match_ts_ns": [T0 + round(r[0] * S) for r in rows],
            "order_id": list(range(1, len(rows) + 1)),
            "strategy": ["s"] * len(rows),
            "symbol": [r[1] for r in rows],
            "side": [r[2] for r in rows],
            "price": [r[3] for r in rows],
            "qty": [r[4] for r in rows],
            "liquidity": ["maker"] * len(rows),
            "fee": [r[5] for r in rows],
        }
    )


# Two instruments sampled at different times; ETH's mid at 1.2 s must not leak into BTC.
MARKS = marks_frame(
    [
        (0.0, "BTCUSDT", 100.0, 0.0),
        (0.0, "ETHUSDT", 10.0, 0.0),
        (1.1, "BTCUSDT", 100.5, 2.0),
        (1.2, "ETHUSDT", 12.0, -3.0),
        (1.3, "BTCUSDT", 101.0, 2.0),
        (2.0, "ETHUSDT", 9.5, -3.0),
        (10.2, "BTCUSDT", 98.0, 2.0),
        (11.0, "BTCUSDT", 104.0, 1.0),
        (12.0, "ETHUSDT", 9.0, -3.0),
        (12.5, "BTCUSDT", 105.0, 1.0),
        (13.0, "SOLUSDT", 150.0, 0.0),
    ]
)
FILLS = fills_frame(
    [
        (0.2, "BTCUSDT", "buy", 100.0, 2.0, 0.2),
        (1.0, "ETHUSDT", "sell", 10.0, 3.0, 0.03),
        (10.9, "BTCUSDT", "sell", 110.0, 1.0, 0.11),
        (11.0, "DOGEUSDT", "buy", 0.1, 10.0, 0.0),
    ]
)


def test_markouts_use_the_fills_own_symbol_forward() -> None:
    out = metrics.markouts(FILLS, MARKS).set_index("symbol", drop=False)
    btc_buy, eth_sell, btc_sell = out.iloc[0], out.iloc[1], out.iloc[2]
    # BTC buy at 100 at 0.2 s: first BTC mark at or after 1.2 s is 1.3 s (101), not ETH's 12
    assert btc_buy["mid_1s"] == 101.0
    assert btc_buy["markout_1s"] == 1.0  # +1 * (101 - 100)
    assert btc_buy["markout_1s_bps"] == pytest.approx(100.0)  # 1 / 100 * 1e4
    assert btc_buy["mid_10s"] == 98.0  # the mark exactly at 10.2 s counts
    assert btc_buy["markout_10s"] == -2.0
    # ETH sell at 10 at 1.0 s: ETH mark at 2.0 s (9.5) and at 12.0 s (9.0); a sell gains
    assert eth_sell["mid_1s"] == 9.5
    assert eth_sell["markout_1s"] == 0.5  # -1 * (9.5 - 10)
    assert eth_sell["markout_1s_bps"] == pytest.approx(500.0)
    assert eth_sell["markout_10s"] == 1.0
    # BTC sell at 110 at 10.9 s: 12.5 s mark (105) is 1 s later; nothing 10 s later
    assert btc_sell["markout_1s"] == 5.0
    assert math.isnan(btc_sell["mid_10s"]) and math.isnan(btc_sell["markout_10s_bps"])
    # DOGE has no marks at all
    assert out["mid_1s"].isna().iloc[3]
    assert metrics.mean_finite(out["markout_1s_bps"]) == pytest.approx(
        (100.0 + 500.0 + 5 / 110 * 1e4) / 3
    )


def test_markouts_of_no_fills_and_no_marks() -> None:
    empty = metrics.markouts(FILLS.iloc[:0], MARKS)
    assert empty.empty and "markout_10s_bps" in empty.columns
    unmarked = metrics.markouts(FILLS, MARKS.iloc[:0])
    assert unmarked["mid_1s"].isna().all()
    assert metrics.mean_finite(unmarked["markout_1s_bps"]) is None


def test_pnl_by_instrument_by_hand() -> None:
    pnl = metrics.pnl_by_instrument(FILLS, MARKS)
    # BTC: -200 + 110 cash, position 1 at the last mid 105, fees 0.31
    assert pnl["BTCUSDT"] == pytest.approx(-90 + 105 - 0.31)
    # ETH: +30 cash, position -3 at 9, fees 0.03
    assert pnl["ETHUSDT"] == pytest.approx(30 - 27 - 0.03)
    assert pnl["SOLUSDT"] == 0.0  # marked, never traded
    assert pnl["DOGEUSDT"] == pytest.approx(0.0)  # no mark: valued at its last fill price
    assert list(pnl) == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    assert metrics.turnover(FILLS) == pytest.approx(200 + 30 + 110 + 1)


# ---------------------------------------------------------------------------- two instruments


def synthetic_raw() -> dict[str, Any]:
    """An engine result dict (the shape of `engine.run_backtest`) trading BTC and ETH."""
    fills = FILLS[FILLS["symbol"] != "DOGEUSDT"]
    # Equity sampled at the fills and every 5 s, marked at the mids above; ends at the
    # per-instrument sum (14.69 + 2.97).
    equity = {
        "ts_ns": [T0 + t * S // 10 for t in (0, 2, 10, 50, 100, 109, 125)],
        "equity": [0.0, -0.2, -0.23, -1.73, 1.82, 12.69, 17.66],
        "realised_pnl": [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0],
        "unrealised_pnl": [0.0, 0.0, 0.0, -1.5, 2.05, 3.0, 8.0],
        "fees": [0.0, 0.2, 0.23, 0.23, 0.23, 0.34, 0.34],
        "gross_exposure": [0.0, 200.0, 230.0, 228.5, 223.0, 131.0, 132.0],
    }
    return {
        "orders": {"ts_ns": list(fills["ts_ns"]), "order_id": list(fills["order_id"])},
        "fills": {c: list(fills[c]) for c in fills.columns},
        "equity": equity,
        "marks": {c: list(MARKS[c]) for c in MARKS.columns},
        "risk_events": {
            "ts_ns": [T0 + 3 * S, T0 + 11 * S],
            "from": ["active", "reduce_only"],
            "to": ["reduce_only", "active"],
            "cause": ["drawdown", "operator"],
        },
        "summary": {
            "pnl": "17.66",
            "realised_pnl": "10",
            "unrealised_pnl": "8",
            "fees": "0.34",
            "turnover": "340",
            "max_drawdown": "1.73",
            "orders_placed": 3,
            "orders_rejected": 0,
            "fills": 3,
            "fill_ratio": 1.0,
            "final_risk_state": "active",
            "final_position": {"BTCUSDT": "1", "ETHUSDT": "-3"},
            "rejections": {},
        },
        "counters": {"events": 20},
    }


def test_two_instruments_reach_the_frames_and_the_summary() -> None:
    result = backtest.from_raw(synthetic_raw(), "sha", ["synthetic"], "5s")
    assert set(result.marks["symbol"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    # one equity row per time point: every sample and every mark timestamp
    stamps = set(synthetic_raw()["equity"]["ts_ns"]) | set(MARKS["ts_ns"])
    assert result.equity["ts_ns"].tolist() == sorted(stamps)
    at = result.equity.set_index("ts_ns")
    assert at.loc[T0 + 12 * S, "mid.ETHUSDT"] == 9.0
    assert at.loc[T0 + 12 * S, "mid.BTCUSDT"] == 104.0  # latest BTC mark (11 s)
    assert at.loc[T0 + 12 * S, "position.BTCUSDT"] == 1.0
    assert at.loc[T0 + 12 * S, "equity"] == 12.69  # latest sample (10.9 s)
    assert math.isnan(at.loc[T0, "mid.SOLUSDT"]) and at.loc[T0, "position.SOLUSDT"] == 0.0
    assert list(result.risk_events.columns) == ["ts_ns", "from", "to", "cause"]
    assert result.risk_events["to"].tolist() == ["reduce_only", "active"]

    summary = result.summary
    json.dumps(summary, allow_nan=False)  # no NaN anywhere
    assert summary["risk_events"] == 2
    assert summary["return_bucket"] == "5s"
    assert summary["duration_s"] == 13.0
    assert summary["fills"] == 3 and summary["orders"] == 3
    by = summary["pnl_by_instrument"]
    assert by["BTCUSDT"] == pytest.approx(14.69) and by["ETHUSDT"] == pytest.approx(2.97)
    assert sum(by.values()) == pytest.approx(float(summary["pnl"]))
    assert summary["markout_1s_bps"] == pytest.approx((100.0 + 500.0 + 5 / 110 * 1e4) / 3)
    assert summary["markout_10s_bps"] == pytest.approx((-200.0 + 1000.0) / 2)
    # 5-second buckets from 0 s: [0,5) ends -0.23, [5,10) ends -1.73, [10,15) ends 17.66
    pnl = metrics.bucket_pnl(result.equity, "5s").tolist()
    assert pnl == pytest.approx([-0.23, -1.5, 19.39])
    assert summary["sharpe"] == pytest.approx(
        np.mean(pnl) / np.std(pnl, ddof=1) * math.sqrt(365 * 24 * 3600 / 5)
    )
    # peak 0 at 0 s, trough -1.73 at 5 s, recovered at 10 s
    assert summary["max_drawdown_duration_s"] == 10.0


def test_no_data_gives_none_not_nan() -> None:
    raw = synthetic_raw()
    for part in ("fills", "equity", "marks", "risk_events"):
        raw[part] = {k: [] for k in raw[part]}
    result = backtest.from_raw(raw, "sha", [], "1min")
    text = json.dumps(result.summary, allow_nan=False)
    for key in ("sharpe", "sortino", "markout_1s_bps", "markout_10s_bps", "duration_s"):
        assert result.summary[key] is None, key
    # every instrument of the engine is listed, even without fills or marks
    assert result.summary["pnl_by_instrument"] == {"BTCUSDT": 0.0, "ETHUSDT": 0.0}
    assert "NaN" not in text
    assert result.risk_events["ts_ns"].dtype == np.int64


def test_report_has_panels_per_instrument_and_risk_markers(tmp_path: Path) -> None:
    result = backtest.from_raw(synthetic_raw(), "sha", ["synthetic"], "5s")
    frames = (result.equity, result.fills, result.marks, result.risk_events)
    report.write_html(tmp_path / "report.html", "two", result.summary, *frames)
    report.write_png(tmp_path / "report.png", "two", *frames)
    page = (tmp_path / "report.html").read_text()
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert f"{symbol} price and fills" in page and f"{symbol} position" in page
    assert "BTCUSDT buy fills" in page and "ETHUSDT sell fills" in page
    assert "risk active -&gt; reduce_only (drawdown)" in page  # the list under the table
    assert "risk reduce_only -\\u003e active (operator)" in page  # the marker's hover (JSON)
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")
    layout = report.panels(result.fills, result.marks)
    assert layout.symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert set(layout.fills["BTCUSDT"]["symbol"]) == {"BTCUSDT"}
    assert layout.fills["SOLUSDT"].empty


def test_report_of_an_empty_run(tmp_path: Path) -> None:
    raw = synthetic_raw()
    for part in ("fills", "marks", "risk_events"):
        raw[part] = {k: [] for k in raw[part]}
    result = backtest.from_raw(raw, "sha", [], "1min")
    frames = (result.equity, result.fills, result.marks, result.risk_events)
    report.write_html(tmp_path / "report.html", "empty", result.summary, *frames)
    report.write_png(tmp_path / "report.png", "empty", *frames)
    assert (tmp_path / "report.png").stat().st_size > 0


# ---------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real() -> backtest.BacktestResult:
    return backtest.run(compile_config(ROOT, []).manifests[0].text, [CAPTURE])


def test_real_run_figures_agree(real: backtest.BacktestResult) -> None:
    summary = real.summary
    json.dumps(summary, allow_nan=False)
    pnl = float(summary["pnl"])
    by = summary["pnl_by_instrument"]
    assert list(by) == ["BTCUSDT"]
    # per-instrument P&L (net of fees) adds up to the engine's P&L; gross of fees it is
    # realised + unrealised
    assert sum(by.values()) == pytest.approx(pnl, abs=1e-6)
    assert sum(by.values()) + float(summary["fees"]) == pytest.approx(
        float(summary["realised_pnl"]) + float(summary["unrealised_pnl"]), abs=1e-6
    )
    assert metrics.turnover(real.fills) == pytest.approx(float(summary["turnover"]), rel=1e-9)
    assert metrics.max_drawdown(real.equity["equity"]) == pytest.approx(
        float(summary["max_drawdown"]), abs=1e-6
    )

    duration = summary["duration_s"]
    assert 340 < duration < 350  # the capture spans about 6 minutes
    assert 0 < summary["max_drawdown_duration_s"] <= duration

    # 1-minute buckets: 6 of them (the last one partial), adding up to the P&L
    returns = metrics.bucket_pnl(real.equity, "1min")
    assert len(returns) == math.ceil(duration / 60)
    assert returns.sum() == pytest.approx(pnl, abs=1e-6)
    per_bucket = returns.mean() / returns.std(ddof=1)
    assert summary["sharpe"] == pytest.approx(per_bucket * math.sqrt(MINUTES_PER_YEAR))
    assert abs(per_bucket) < 10  # not a division by a near-zero spread
    assert summary["sortino"] is not None and summary["sortino"] < 0  # it loses

    fills = real.fills
    assert len(fills) == summary["fills"]
    last_mark = real.marks["ts_ns"].max()
    for h in metrics.MARKOUT_HORIZONS_S:
        mid, quote, bps = metrics.markout_columns(h)
        known = fills["ts_ns"] + h * S <= last_mark
        assert known.sum() > 0.9 * len(fills)
        assert np.isfinite(fills.loc[known, bps]).all()
        assert fills.loc[~known, mid].isna().all()
        sign = np.where(fills["side"] == "buy", 1.0, -1.0)
        assert np.allclose(fills[quote], sign * (fills[mid] - fills["price"]), equal_nan=True)
        assert summary[bps] == pytest.approx(fills.loc[known, bps].mean())
        assert math.isfinite(summary[bps])
