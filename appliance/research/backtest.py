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

import numpy as np
import pandas as pd

from appliance import engine
from appliance.research.metrics import (
    DEFAULT_BUCKET,
    bucket_seconds,
    markouts,
    rows_by_symbol,
    summarise,
)

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


def _asof(stamps: Any, at: Any) -> Any:
    """For each time in `at`, the position in sorted `stamps` of the last one at or before it
    (-1 when there is none)."""
    return np.searchsorted(stamps, at, side="right") - 1


def _timeline(marks: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """One row per time point (each equity sample and each mark, every instrument).

    Equity columns hold the latest equity sample at that time (0 before the first); per
    instrument, `mid.<SYMBOL>` (NaN before its first mark) and `position.<SYMBOL>` (0 before).
    """
    sample_ts = samples["ts_ns"].to_numpy(dtype=np.int64)
    mark_ts = marks["ts_ns"].to_numpy(dtype=np.int64)
    index = np.unique(np.concatenate([sample_ts, mark_ts]))
    order = np.argsort(sample_ts, kind="stable")
    last = _asof(sample_ts[order], index)
    frame: dict[str, Any] = {"ts_ns": index}
    for column in [c for c in samples.columns if c != "ts_ns"] or EQUITY_COLUMNS:
        values = samples[column].to_numpy(dtype=float)[order] if len(samples) else np.zeros(1)
        frame[column] = np.where(last >= 0, values[np.maximum(last, 0)], 0.0)
    mids = marks["mid"].to_numpy(dtype=float)
    positions = marks["position"].to_numpy(dtype=float)
    rows = rows_by_symbol(marks)
    for symbol in sorted(rows):
        own = rows[symbol]
        last = _asof(mark_ts[own], index)
        seen = last >= 0
        frame[f"mid.{symbol}"] = np.where(seen, mids[own][np.maximum(last, 0)], np.nan)
        frame[f"position.{symbol}"] = np.where(seen, positions[own][np.maximum(last, 0)], 0.0)
    return pd.DataFrame(frame)


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
    start_ns: int | None = None,
    end_ns: int | None = None,
    exchange_data: Sequence[Sequence[Path]] | None = None,
) -> BacktestResult:
    """Run one backtest. `progress(done, total)` is called from time to time (bytes of input).

    `exchange_data`, for an engine of several exchanges: one stream per exchange of the
    manifest (name order; empty: none) instead of `data`, each rebased onto the clock of the
    stream that starts last (docs/research.md, "Several exchanges"); `counters` then carries
    `offset_ns.<exchange>`, the ns added to that exchange's times.

    `data` is read as one stream (consecutive captures chain). Only `[start_ns, end_ns)` of the
    events' local receive time (UTC ns; None leaves a side open) is traded: earlier events warm
    the books up, reading stops at `end_ns`; a window without events raises engine.WindowError.

    `bucket` is the return bucket of the Sharpe and Sortino ratios (a pandas offset alias,
    docs/metrics.md); an invalid one raises metrics.InvalidBucket before anything runs.
    """
    bucket_seconds(bucket)
    streams = None if exchange_data is None else [[str(p) for p in s] for s in exchange_data]
    raw = engine.run_backtest(
        manifest_text,
        [str(p) for p in data],
        progress,
        start_ns,
        end_ns,
        exchange_files=streams,
    )
    for name, offset in raw.get("offsets_ns", {}).items():
        raw["counters"][f"offset_ns.{name}"] = offset
    names = [Path(p).name for p in data] or [Path(p).name for s in exchange_data or [] for p in s]
    return from_raw(raw, json.loads(manifest_text)["content_sha256"], names, bucket)
