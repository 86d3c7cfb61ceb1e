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
from appliance.research.metrics import summarise

Progress = Callable[[int, int], None]


@dataclass
class BacktestResult:
    """Orders, fills and the equity curve (with position and mid) of one backtest."""

    manifest_sha256: str
    data: list[str]
    orders: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    summary: dict[str, Any]
    counters: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_sha256": self.manifest_sha256,
            "data": self.data,
            "summary": self.summary,
            "counters": self.counters,
        }


def _timeline(marks: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Mid and position (sampled every 100 ms) with the latest equity sample at each point."""
    if marks.empty:
        return samples.assign(mid=float("nan"), position=0.0)
    first = marks[marks["symbol"] == marks["symbol"].iloc[0]].reset_index(drop=True)
    if samples.empty:
        return first.assign(equity=0.0, realised_pnl=0.0, unrealised_pnl=0.0, fees=0.0)
    merged = pd.merge_asof(
        first.sort_values("ts_ns"), samples.sort_values("ts_ns"), on="ts_ns", direction="backward"
    )
    return merged.fillna({c: 0.0 for c in samples.columns if c != "ts_ns"})


def run(
    manifest_text: str, data: Sequence[Path], progress: Progress | None = None
) -> BacktestResult:
    """Run one backtest. `progress(done, total)` is called from time to time (bytes of input)."""
    raw = engine.run_backtest(manifest_text, [str(p) for p in data], progress)
    orders = pd.DataFrame(raw["orders"])
    fills = pd.DataFrame(raw["fills"])
    samples = pd.DataFrame(raw["equity"])
    marks = pd.DataFrame(raw["marks"])
    equity = _timeline(marks, samples)
    summary = summarise(raw, equity, fills, orders)
    return BacktestResult(
        manifest_sha256=json.loads(manifest_text)["content_sha256"],
        data=[Path(p).name for p in data],
        orders=orders,
        fills=fills,
        equity=equity,
        summary=summary,
        counters={k: int(v) for k, v in raw["counters"].items()},
    )
