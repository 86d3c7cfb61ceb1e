"""Summary statistics of a backtest, computed from its equity curve, fills and marks.

Every function here is pure: it takes DataFrames (the shapes `backtest.run` builds from the
engine's result) and returns numbers, so each metric can be tested on small hand-made frames.
The definitions, units, bucket and annualisation are documented in docs/metrics.md.

Frames:
- equity: `ts_ns` (int, UTC nanoseconds) and `equity` (quote currency, P&L since the start,
  net of fees); more columns are ignored.
- fills: `ts_ns`, `symbol`, `side` ("buy"/"sell"), `price`, `qty`, `fee` (quote currency).
- marks: `ts_ns`, `symbol`, `mid`, `position` (each instrument sampled every 100 ms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto trades 24 hours a day, 365 days a year
DEFAULT_BUCKET = "1min"
MARKOUT_HORIZONS_S: tuple[int, ...] = (1, 10)
NS = 1_000_000_000
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class InvalidBucket(ValueError):
    """A return bucket that is not a fixed, positive pandas offset alias."""


def bucket_seconds(bucket: str) -> float:
    """Length of a return bucket given as a pandas offset alias ("1min", "5s", "1h", "1D").

    Raises InvalidBucket for anything that is not a fixed positive duration (calendar offsets
    such as "1ME" or "B" have no fixed length, so they cannot be annualised).
    """
    try:
        offset = to_offset(bucket)
        length = pd.Timedelta(offset)
    except (ValueError, TypeError) as err:
        raise InvalidBucket(
            f"{bucket!r} is not a fixed-length pandas offset alias (for example 1min, 5s, 1h)"
        ) from err
    seconds = length.total_seconds()
    if not seconds > 0:
        raise InvalidBucket(f"{bucket!r} is not a positive duration")
    return float(seconds)


def buckets_per_year(bucket: str) -> float:
    """The annualisation count: how many buckets fit in a 365-day, 24-hour year."""
    return SECONDS_PER_YEAR / bucket_seconds(bucket)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("ts_ns", kind="stable").reset_index(drop=True)


def bucket_pnl(equity: pd.DataFrame, bucket: str = DEFAULT_BUCKET) -> pd.Series:
    """P&L per bucket (quote currency): the return series of the run.

    Buckets are anchored at the first sample (pandas `origin="start"`) and closed on the left;
    each bucket's P&L is the equity at its last sample minus the equity at the end of the
    previous bucket (the first sample for the first bucket). A bucket without samples has P&L 0.
    The last bucket may be shorter than the others; it is kept, so the bucket P&Ls add up to
    the run's P&L (last equity - first equity). Indexed by each bucket's start time.
    """
    bucket_seconds(bucket)
    if equity.empty:
        return pd.Series(dtype=float)
    frame = _sorted(equity)
    series = pd.Series(
        frame["equity"].to_numpy(dtype=float), index=pd.to_datetime(frame["ts_ns"], unit="ns")
    )
    ends = series.resample(bucket, origin="start", closed="left", label="left").last().ffill()
    previous = ends.shift(1, fill_value=float(series.iloc[0]))
    return (ends - previous).rename("pnl")


def sharpe(returns: pd.Series, bucket: str = DEFAULT_BUCKET) -> float | None:
    """Annualised Sharpe ratio of bucket P&Ls: mean / std (ddof 1) * sqrt(buckets per year).

    The risk-free rate is taken as 0 (P&L, not returns on capital). None with fewer than two
    buckets or no variation.
    """
    values = returns.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    std = float(np.std(values, ddof=1))
    if not std > 0:
        return None
    return _finite(float(np.mean(values)) / std * math.sqrt(buckets_per_year(bucket)))


def sortino(returns: pd.Series, bucket: str = DEFAULT_BUCKET) -> float | None:
    """Annualised Sortino ratio: mean / downside deviation * sqrt(buckets per year).

    Downside deviation with target 0 (Sortino & Price 1994): sqrt(mean(min(r, 0)^2)) over all
    buckets. None with fewer than two buckets or no losing bucket.
    """
    values = returns.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(values, 0.0) ** 2)))
    if not downside > 0:
        return None
    return _finite(float(np.mean(values)) / downside * math.sqrt(buckets_per_year(bucket)))


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall of the equity curve (a positive number, quote currency)."""
    if equity.empty:
        return 0.0
    return float((equity.cummax() - equity).max())


def drawdown(equity: pd.Series) -> pd.Series:
    """Equity minus its running peak (zero or negative, quote currency)."""
    return equity - equity.cummax()


def max_drawdown_duration_s(equity: pd.DataFrame) -> float | None:
    """Seconds from the peak before the deepest trough to the recovery of that peak.

    The peak is the last sample at the running high before the trough; the recovery is the
    first sample after the trough back at or above the peak; a drawdown not recovered lasts to
    the last sample. 0.0 without a drawdown, None without samples.
    """
    if equity.empty:
        return None
    frame = _sorted(equity)
    values = frame["equity"].to_numpy(dtype=float)
    ts = frame["ts_ns"].to_numpy(dtype=np.int64)
    peaks = np.maximum.accumulate(values)
    depth = peaks - values
    trough = int(np.argmax(depth))
    if not depth[trough] > 0:
        return 0.0
    peak = peaks[trough]
    peak_at = int(np.flatnonzero(values[: trough + 1] >= peak)[-1])
    recovered = np.flatnonzero(values[trough:] >= peak)
    end = ts[trough + int(recovered[0])] if recovered.size else ts[-1]
    return float(end - ts[peak_at]) / NS


def side_sign(fills: pd.DataFrame) -> FloatArray:
    """+1 for a buy, -1 for a sell."""
    return np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)


def turnover(fills: pd.DataFrame) -> float:
    """Quote notional traded: sum of price * qty over all fills."""
    if fills.empty:
        return 0.0
    return float((fills["price"] * fills["qty"]).sum())


def rows_by_symbol(frame: pd.DataFrame) -> dict[str, np.ndarray[Any, np.dtype[np.intp]]]:
    """Row positions of each symbol, in time order (stable for equal timestamps)."""
    if frame.empty:
        return {}
    order = np.argsort(frame["ts_ns"].to_numpy(dtype=np.int64), kind="stable")
    symbols = frame["symbol"].to_numpy(dtype=object)[order]
    return {str(s): order[symbols == s] for s in pd.unique(symbols)}


def pnl_by_instrument(fills: pd.DataFrame, marks: pd.DataFrame) -> dict[str, float]:
    """P&L per symbol, net of that symbol's fees (quote currency), starting flat.

    Realised + unrealised = cash flow of the fills (-sign * price * qty) + final position * the
    symbol's last mid (its last fill price when it has no mark), minus its fees. The values add
    up to the run's total P&L. Every symbol with a mark or a fill is listed.
    """
    mark_rows = rows_by_symbol(marks)
    fill_rows = rows_by_symbol(fills)
    mids = marks["mid"].to_numpy(dtype=float) if not marks.empty else np.zeros(0)
    if not fills.empty:
        sign = side_sign(fills)
        qty = fills["qty"].to_numpy(dtype=float)
        price = fills["price"].to_numpy(dtype=float)
        fee = fills["fee"].to_numpy(dtype=float)
    out: dict[str, float] = {}
    for symbol in sorted(set(mark_rows) | set(fill_rows)):
        rows = fill_rows.get(symbol)
        if rows is None:
            out[symbol] = 0.0
            continue
        own_marks = mark_rows.get(symbol)
        mark = mids[own_marks[-1]] if own_marks is not None else price[rows[-1]]
        position = float((sign[rows] * qty[rows]).sum())
        cash = float((-sign[rows] * price[rows] * qty[rows]).sum())
        out[symbol] = cash + position * float(mark) - float(fee[rows].sum())
    return out


def _by_instrument(
    core: dict[str, Any], fills: pd.DataFrame, marks: pd.DataFrame
) -> dict[str, float]:
    """The engine's own P&L per instrument when the result carries it (exact, contracts
    valued by their terms: docs/venues.md, "Contracts"); otherwise recomputed from the fills
    as spot (`pnl_by_instrument`). Every instrument of the engine is listed."""
    listed = dict.fromkeys(sorted(core["final_position"]), 0.0)
    engine = core.get("pnl_by_instrument")
    if engine is not None:
        return listed | {str(k): float(v) for k, v in engine.items()}
    return listed | pnl_by_instrument(fills, marks)


def markout_columns(horizon_s: int) -> tuple[str, str, str]:
    """Names of the per-fill columns for one horizon: later mid, markout (quote/unit), bps."""
    return f"mid_{horizon_s}s", f"markout_{horizon_s}s", f"markout_{horizon_s}s_bps"


def markouts(
    fills: pd.DataFrame,
    marks: pd.DataFrame,
    horizons_s: Sequence[int] = MARKOUT_HORIZONS_S,
) -> pd.DataFrame:
    """The fills with, per horizon h, the mid h seconds later and the markout.

    mid_{h}s: the first mark of the fill's own symbol at or after fill ts_ns + h (NaN when the
    run ends first). markout_{h}s = sign * (mid_{h}s - price) in quote per unit, sign +1 for a
    buy and -1 for a sell, so a positive markout means the market moved in the fill's favour;
    markout_{h}s_bps = markout_{h}s / price * 10^4.
    """
    out = fills.copy()
    if fills.empty:
        names = [name for h in horizons_s for name in markout_columns(h)]
        return out.assign(**{name: pd.Series(dtype=float) for name in names})
    mark_rows = rows_by_symbol(marks)
    mark_ts = marks["ts_ns"].to_numpy(dtype=np.int64) if not marks.empty else np.zeros(0, int)
    mids = marks["mid"].to_numpy(dtype=float) if not marks.empty else np.zeros(0)
    fill_symbols = fills["symbol"].to_numpy(dtype=object)
    fill_ts = fills["ts_ns"].to_numpy(dtype=np.int64)
    sign = side_sign(fills)
    price = fills["price"].to_numpy(dtype=float)
    for h in horizons_s:
        later: FloatArray = np.full(len(fills), np.nan)
        for symbol, rows in mark_rows.items():
            mine = np.flatnonzero(fill_symbols == symbol)
            if not mine.size:
                continue
            at = np.searchsorted(mark_ts[rows], fill_ts[mine] + h * NS, side="left")
            found = at < rows.size
            later[mine[found]] = mids[rows[at[found]]]
        mid_col, quote_col, bps_col = markout_columns(h)
        move = sign * (later - price)
        out[mid_col] = later
        out[quote_col] = move
        out[bps_col] = move / price * 1e4
    return out


def mean_finite(values: pd.Series) -> float | None:
    """Mean of the finite values, None when there are none."""
    array = values.to_numpy(dtype=float)
    array = array[np.isfinite(array)]
    return _finite(float(array.mean())) if array.size else None


def duration_s(*frames: pd.DataFrame) -> float | None:
    """Seconds from the first to the last timestamp over the frames, None without any."""
    stamps = [f["ts_ns"] for f in frames if not f.empty]
    if not stamps:
        return None
    ts = pd.concat(stamps).to_numpy(dtype=np.int64)
    return float(ts.max() - ts.min()) / NS


def summarise(
    result: dict[str, Any],
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    orders: pd.DataFrame,
    marks: pd.DataFrame | None = None,
    risk_events: pd.DataFrame | None = None,
    bucket: str = DEFAULT_BUCKET,
) -> dict[str, Any]:
    """The headline numbers of a run (see docs/metrics.md); never NaN, None when unknown.

    `fills` should carry the markout columns (see `markouts`); they are computed here if not.
    The engine's own figures (pnl, fees, turnover, max_drawdown: exact decimal strings) are
    passed through unchanged. pnl_by_instrument lists every instrument of the engine (0.0 for
    one without fills) and any other symbol with marks or fills.
    """
    marks = marks if marks is not None else pd.DataFrame(columns=["ts_ns", "symbol", "mid"])
    risk_events = risk_events if risk_events is not None else pd.DataFrame(columns=["ts_ns"])
    if any(markout_columns(h)[2] not in fills.columns for h in MARKOUT_HORIZONS_S):
        fills = markouts(fills, marks)
    core = result["summary"]
    placed = int(core["orders_placed"])
    returns = bucket_pnl(equity, bucket)
    summary: dict[str, Any] = {
        "pnl": core["pnl"],
        "realised_pnl": core["realised_pnl"],
        "unrealised_pnl": core["unrealised_pnl"],
        "fees": core["fees"],
        "sharpe": sharpe(returns, bucket),
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
        "sortino": sortino(returns, bucket),
        "max_drawdown_duration_s": max_drawdown_duration_s(equity),
        "return_bucket": bucket,
        "pnl_by_instrument": _by_instrument(core, fills, marks),
        "risk_events": len(risk_events),
        "duration_s": duration_s(equity, marks),
    }
    for h in MARKOUT_HORIZONS_S:
        bps = markout_columns(h)[2]
        summary[bps] = mean_finite(fills[bps]) if not fills.empty else None
    return summary
