"""Backtests from Python on the engine's own Rust core (appliance._engine).

A backtest takes one compiled manifest (the same file the live engine would load) and recorded
market data, runs strategy -> risk -> simulated matching -> portfolio in Rust with the GIL
released, and returns pandas DataFrames. Two runs over the same inputs give identical results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from appliance import engine
from appliance.research.metrics import DEFAULT_BUCKET, bucket_seconds, markouts, summarise

Progress = Callable[[int, int], None]


@dataclass
class BacktestResult:
    """One backtest as DataFrames, its summary (docs/metrics.md) and the engine's counters.

    - orders: every order the strategies placed, with its final status.
    - fills: every fill, with markouts (`mid_1s`, `markout_1s`, `markout_1s_bps`, same for 10s).
    - equity: one row per time point (every equity sample and every mark): `ts_ns`, `equity`,
      `realised_pnl`, `unrealised_pnl`, `fees`, `gross_exposure`, and per instrument
      `mid.<SYMBOL>` and `position.<SYMBOL>` as of that time.
    - marks: every instrument's mid and position (long form: ts_ns, symbol, mid, position).
    - risk_events: the risk state's transitions (ts_ns, from, to, cause).
    """

    manifest_sha256: str
    data: list[str]
    orders: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    marks: pd.DataFrame
    risk_events: pd.DataFrame
    summary: dict[str, Any]
    counters: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_sha256": self.manifest_sha256,
            "data": self.data,
            "summary": self.summary,
            "counters": self.counters,
        }


EQUITY_COLUMNS = ("equity", "realised_pnl", "unrealised_pnl", "fees", "gross_exposure")
MARK_COLUMNS = {"ts_ns": "int64", "symbol": "str", "mid": "float64", "position": "float64"}
RISK_COLUMNS = {"ts_ns": "int64", "from": "str", "to": "str", "cause": "str"}


def _typed(part: dict[str, Any], dtypes: dict[str, str]) -> pd.DataFrame:
    """A frame from one of the engine's column dicts, typed even when it has no rows."""
    frame = pd.DataFrame(part)
    for column, dtype in dtypes.items():
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=dtype)
        elif frame.empty:
            frame[column] = frame[column].astype(dtype)
    return frame


def _timeline(marks: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """One row per time point (each equity sample and each mark, every instrument).

    Equity columns hold the latest equity sample at that time (0 before the first); per
    instrument, `mid.<SYMBOL>` (NaN before its first mark) and `position.<SYMBOL>` (0 before).
    """
    samples = samples.sort_values("ts_ns", kind="stable").drop_duplicates("ts_ns", keep="last")
    marks = marks.sort_values("ts_ns", kind="stable").drop_duplicates(
        ["ts_ns", "symbol"], keep="last"
    )
    stamps = pd.concat([samples["ts_ns"], marks["ts_ns"]]).astype("int64")
    index = pd.Index(stamps.unique(), dtype="int64").sort_values()
    columns = [c for c in samples.columns if c != "ts_ns"] or list(EQUITY_COLUMNS)
    frame = (
        samples.set_index("ts_ns").reindex(index, columns=columns).ffill().fillna(0.0)
        if not samples.empty
        else pd.DataFrame(0.0, index=index, columns=columns)
    )
    for symbol in sorted(marks["symbol"].unique()):
        own = marks[marks["symbol"] == symbol].set_index("ts_ns").reindex(index).ffill()
        frame[f"mid.{symbol}"] = own["mid"].astype(float)
        frame[f"position.{symbol}"] = own["position"].astype(float).fillna(0.0)
    frame.index.name = "ts_ns"
    return frame.reset_index()


def from_raw(
    raw: dict[str, Any], manifest_sha256: str, data: list[str], bucket: str = DEFAULT_BUCKET
) -> BacktestResult:
    """DataFrames and the summary from the engine's result dict (`engine.run_backtest`)."""
    orders = pd.DataFrame(raw["orders"])
    samples = _typed(raw["equity"], {"ts_ns": "int64"} | dict.fromkeys(EQUITY_COLUMNS, "float64"))
    marks = _typed(raw["marks"], MARK_COLUMNS)
    risk_events = _typed(raw["risk_events"], RISK_COLUMNS)
    fills = markouts(pd.DataFrame(raw["fills"]), marks)
    equity = _timeline(marks, samples)
    summary = summarise(raw, equity, fills, orders, marks, risk_events, bucket)
    return BacktestResult(
        manifest_sha256=manifest_sha256,
        data=data,
        orders=orders,
        fills=fills,
        equity=equity,
        marks=marks,
        risk_events=risk_events,
        summary=summary,
        counters={k: int(v) for k, v in raw["counters"].items()},
    )


def run(
    manifest_text: str,
    data: Sequence[Path],
    progress: Progress | None = None,
    *,
    bucket: str = DEFAULT_BUCKET,
) -> BacktestResult:
    """Run one backtest. `progress(done, total)` is called from time to time (bytes of input).

    `bucket` is the return bucket of the Sharpe and Sortino ratios (a pandas offset alias,
    docs/metrics.md); an invalid one raises metrics.InvalidBucket before anything runs.
    """
    bucket_seconds(bucket)
    raw = engine.run_backtest(manifest_text, [str(p) for p in data], progress)
    return from_raw(
        raw, json.loads(manifest_text)["content_sha256"], [Path(p).name for p in data], bucket
    )
