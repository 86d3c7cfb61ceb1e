"""Summary statistics of a backtest, computed from its equity curve and fills."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

SECONDS_PER_YEAR = 365 * 24 * 3600


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall of the equity curve (a positive number, quote currency)."""
    if equity.empty:
        return 0.0
    return float((equity.cummax() - equity).max())


def drawdown(equity: pd.Series) -> pd.Series:
    return equity - equity.cummax()


def sharpe(equity: pd.DataFrame) -> float | None:
    """Annualised Sharpe ratio of 1-second P&L changes (crypto trades around the clock).

    None when the run is too short or flat to say anything.
    """
    if len(equity) < 3:
        return None
    series = equity.set_index(pd.to_datetime(equity["ts_ns"], unit="ns"))["equity"]
    per_second = series.resample("1s").last().ffill().diff().dropna()
    std = float(per_second.std())
    if len(per_second) < 2 or std == 0.0 or math.isnan(std):
        return None
    return float(per_second.mean()) / std * math.sqrt(SECONDS_PER_YEAR)


def summarise(
    result: dict[str, Any], equity: pd.DataFrame, fills: pd.DataFrame, orders: pd.DataFrame
) -> dict[str, Any]:
    """The headline numbers: P&L, Sharpe, max drawdown, turnover, fill ratio, fees, refusals."""
    core = result["summary"]
    placed = int(core["orders_placed"])
    return {
        "pnl": core["pnl"],
        "realised_pnl": core["realised_pnl"],
        "unrealised_pnl": core["unrealised_pnl"],
        "fees": core["fees"],
        "sharpe": sharpe(equity),
        "max_drawdown": core["max_drawdown"],
        "turnover": core["turnover"],
        "orders_placed": placed,
        "orders_rejected": int(core["orders_rejected"]),
        "fills": len(fills),
        "fill_ratio": float(core["fill_ratio"]),
        "rejections": dict(core["rejections"]),
        "events": int(result["counters"]["events"]),
        "final_position": core["final_position"],
        "final_risk_state": core["final_risk_state"],
        "orders": len(orders),
    }
