"""appliance features: rt-core's feature code over recorded data, checked against pandas."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError
from appliance.config.featureset import FeatureSource, load_set
from appliance.config.schema import FeatureSetSpec
from appliance.research import features
from tests.conftest import ROOT, Run

NS = 1_000_000_000
T0 = 1_723_161_300 * NS
BASIC = FeatureSetSpec.model_validate(
    {
        "features": [
            {"name": "book_imbalance", "levels": 2},
            {"name": "spread"},
            {"name": "mid_return", "window_ms": 1000},
            {"name": "touch_qty", "side": "bid"},
        ]
    }
)


def _manifest() -> str:
    text: str = compile_config(ROOT, ["deployment=paper_taker"]).manifests[0].text
    return text


def _capture(path: Path) -> list[tuple[int, dict[float, float], dict[float, float]]]:
    """A small capture (a snapshot, then 6 diffs 400 ms apart) and the book after each, kept
    by hand: the independent reference."""
    bids = {100.0: 3.0, 99.99: 1.0, 99.98: 5.0}
    asks = {100.02: 2.0, 100.03: 4.0}
    lines = [f"{T0} " + json.dumps({"lastUpdateId": 10, "bids": _lv(bids), "asks": _lv(asks)})]
    changes = [
        ({100.01: 2.0}, {}),
        ({}, {100.02: 0.0}),
        ({100.0: 0.0}, {100.05: 1.5}),
        ({99.99: 7.0}, {100.03: 1.0}),
        ({100.02: 0.5}, {100.03: 0.0, 100.04: 2.0}),
        ({100.02: 0.0, 100.01: 0.0}, {}),
    ]
    books = [(T0, dict(bids), dict(asks))]
    for i, (b, a) in enumerate(changes):
        ts = T0 + (i + 1) * 400_000_000
        data = {
            "e": "depthUpdate",
            "E": ts // 1_000_000,
            "s": "BTCUSDT",
            "U": 11 + i,
            "u": 11 + i,
            "b": _lv(b),
            "a": _lv(a),
        }
        lines.append(f"{ts} " + json.dumps({"stream": "btcusdt@depth@100ms", "data": data}))
        for side, diff in ((bids, b), (asks, a)):
            for price, qty in diff.items():
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        books.append((ts, dict(bids), dict(asks)))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return books


def _lv(side: dict[float, float]) -> list[list[str]]:
    return [[f"{p:.8f}", f"{q:.8f}"] for p, q in side.items()]


def test_values_equal_an_independent_pandas_computation(tmp_path: Path) -> None:
    capture = tmp_path / "tiny.gz"
    books = _capture(capture)
    source = FeatureSource("basic", BASIC, "(test)")
    frame = features.run_engine(source, _manifest(), [capture], horizons_ns=[NS])
    assert list(frame.columns) == ["ts_ns", *BASIC.columns(), "mid", "mid_move_1s"]
    assert BASIC.columns() == ["book_imbalance_2", "spread", "mid_return_1000ms", "touch_qty_bid"]
    # One row for the snapshot and one per diff.
    assert len(frame) == len(books) == 7
    ref = []
    for ts, bids, asks in books:
        top_b = sorted(bids, reverse=True)[:2]
        top_a = sorted(asks)[:2]
        b, a = sum(bids[p] for p in top_b), sum(asks[p] for p in top_a)
        ref.append(
            {
                "ts_ns": ts,
                "imb": (b - a) / (b + a),
                "spread": round((min(asks) - max(bids)) / 0.01, 6),
                "mid": (min(asks) + max(bids)) / 2,
                "bid_qty": bids[max(bids)],
            }
        )
    expected = pd.DataFrame(ref)
    expected["mid_1s_ago"] = pd.merge_asof(
        pd.DataFrame({"ts_ns": expected["ts_ns"] - NS}),
        expected[["ts_ns", "mid"]],
        on="ts_ns",
    )["mid"]
    expected["ret"] = expected["mid"] / expected["mid_1s_ago"] - 1
    assert frame["ts_ns"].tolist() == expected["ts_ns"].tolist()
    np.testing.assert_allclose(frame["book_imbalance_2"], expected["imb"], rtol=1e-6)
    np.testing.assert_allclose(frame["spread"], expected["spread"], rtol=1e-6)
    np.testing.assert_allclose(frame["mid"], expected["mid"], rtol=1e-12)
    np.testing.assert_allclose(frame["touch_qty_bid"], expected["bid_qty"], rtol=1e-6)
    np.testing.assert_allclose(
        frame["mid_return_1000ms"], expected["ret"], rtol=1e-4, atol=1e-9, equal_nan=True
    )
    assert frame["mid_return_1000ms"].isna().sum() == 3  # 0, 400 and 800 ms: not covered yet
    # Labels: the mid 1 s later minus the mid (NaN past the last event at 2.4 s).
    later = pd.merge_asof(
        pd.DataFrame({"ts_ns": expected["ts_ns"] + NS}), expected[["ts_ns", "mid"]], on="ts_ns"
    )["mid"]
    want = np.where(
        expected["ts_ns"] + NS <= expected["ts_ns"].max(), later - expected["mid"], np.nan
    )
    np.testing.assert_allclose(frame["mid_move_1s"], want, atol=1e-9, equal_nan=True)


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return features.compute(
        "book_basic",
        overrides=["deployment=paper_taker"],
        start="2024-08-08T23:55:00Z",
        end="2024-08-08T23:57:00Z",
        horizons=["1s"],
        root=ROOT,
    )


def test_the_bundled_capture_in_declaration_order_and_consistent(bundled: pd.DataFrame) -> None:
    spec = load_set(ROOT, "book_basic").spec
    assert list(bundled.columns) == ["ts_ns", *spec.columns(), "mid", "mid_move_1s"]
    assert len(spec.features) >= 8 and len(bundled) > 1000
    assert bundled["ts_ns"].is_monotonic_increasing
    assert bundled["ts_ns"].iloc[0] >= T0 and bundled["ts_ns"].iloc[-1] < T0 + 120 * NS
    assert all(bundled[c].dtype == np.float32 for c in spec.columns())
    # Relations between features from independent parts of the book.
    b, a = bundled["touch_qty_bid"].astype(float), bundled["touch_qty_ask"].astype(float)
    np.testing.assert_allclose(bundled["book_imbalance_1"], (b - a) / (b + a), atol=1e-6)
    np.testing.assert_allclose(
        bundled["microprice_offset"],
        bundled["spread"].astype(float) * (b - a) / (2 * (b + a)),
        rtol=1e-5,
        atol=1e-6,
    )
    # mid return over 1 s from the rows' own mids (every book update is a row).
    rows = bundled[["ts_ns", "mid"]]
    back = pd.merge_asof(pd.DataFrame({"ts_ns": rows["ts_ns"] - NS}), rows, on="ts_ns")["mid"]
    got = bundled["mid_return_1000ms"].to_numpy(dtype=float)
    want = (rows["mid"] / back - 1).to_numpy()
    covered = ~np.isnan(want)
    np.testing.assert_allclose(got[covered], want[covered], rtol=1e-4, atol=1e-9)
    # Labels: shifted mids.
    ahead = pd.merge_asof(pd.DataFrame({"ts_ns": rows["ts_ns"] + NS}), rows, on="ts_ns")["mid"]
    label = bundled["mid_move_1s"].to_numpy()
    known = ~np.isnan(label)
    assert known.sum() > len(label) * 0.9
    np.testing.assert_allclose(label[known], (ahead - rows["mid"]).to_numpy()[known], atol=1e-9)
    assert (bundled["inventory"] == 0).all()


def test_two_runs_are_identical(bundled: pd.DataFrame) -> None:
    again = features.compute(
        "book_basic",
        overrides=["deployment=paper_taker"],
        start="2024-08-08T23:55:00Z",
        end="2024-08-08T23:57:00Z",
        horizons=["1s"],
        root=ROOT,
    )
    pd.testing.assert_frame_equal(bundled, again)


def test_cli_writes_parquet_on_a_grid(tmp_path: Path, cli: Callable[..., Run]) -> None:
    out = tmp_path / "f.parquet"
    run = cli(
        "features",
        "deployment=paper_taker",
        "--set",
        "book_basic",
        "--start",
        "2024-08-08T23:55:00Z",
        "--end",
        "2024-08-08T23:56:00Z",
        "--every",
        "100ms",
        "--horizon",
        "1s",
        "--horizon",
        "10s",
        "--out",
        str(out),
    )
    assert run.exit_code == 0, run.stderr
    frame = pd.read_parquet(out)
    assert len(frame) == 600
    assert (np.diff(frame["ts_ns"]) == 100_000_000).all()
    assert list(frame.columns)[-2:] == ["mid_move_1s", "mid_move_10s"]
    assert "rows/s" in run.stdout and "600" in run.stdout


@pytest.mark.parametrize(
    ("entry", "path", "rule"),
    [
        ({"name": "magic"}, "features[0].name", "schema.union_tag_invalid"),
        (
            {"name": "book_imbalance", "levels": 0},
            "features[0].levels",
            "schema.greater_than_equal",
        ),
        ({"name": "spread", "window_ms": 5}, "features[0].window_ms", "schema.extra_forbidden"),
        ({"name": "mid_return", "window_ms": "1s"}, "features[0].window_ms", "schema.int_type"),
    ],
)
def test_bad_declarations_are_diagnostics(
    tmp_path: Path, cli: Callable[..., Run], entry: dict[str, Any], path: str, rule: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"features": [entry]}))
    with pytest.raises(ConfigError) as err:
        load_set(ROOT, str(bad))
    (diag,) = err.value.diagnostics
    assert (diag.path, diag.rule, diag.source) == (path, rule, str(bad))
    run = cli("features", "deployment=paper_taker", "--set", str(bad))
    assert run.exit_code == 2
    assert f"error: {path}:" in run.stderr and f"rule:  {rule}" in run.stderr
    assert f"file:  {bad}" in run.stderr and "value:" in run.stderr


def test_an_unknown_set_and_a_bad_interval_exit_2(cli: Callable[..., Run]) -> None:
    run = cli("features", "--set", "nope")
    assert run.exit_code == 2 and "no feature set 'nope'" in run.stderr
    run = cli("features", "deployment=paper_taker", "--every", "fast")
    assert run.exit_code == 2 and "error: --every:" in run.stderr
