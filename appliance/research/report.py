"""Backtest reports: an interactive HTML page (plotly, self-contained) and a PNG (matplotlib).

Aligned panels sharing the time axis: for each instrument, its price (mid) with that
instrument's fills and its position; then equity, with the risk state's changes as vertical
markers; then drawdown. The functions take the DataFrames of a BacktestResult (equity, fills,
marks, risk_events), so they can be exercised without the engine.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from appliance.research.metrics import MARKOUT_HORIZONS_S, drawdown, markout_columns

SIDES = (("buy", "#1a9850"), ("sell", "#d73027"))
MPL_MARKERS = {"buy": "^", "sell": "v"}
PLOTLY_MARKERS = {"buy": "triangle-up", "sell": "triangle-down"}


@dataclass(frozen=True)
class Panels:
    """What to draw: the instruments in order and each one's marks and fills."""

    symbols: list[str]
    marks: dict[str, pd.DataFrame]
    fills: dict[str, pd.DataFrame]

    @property
    def rows(self) -> int:
        return 2 * len(self.symbols) + 2

    def heights(self) -> list[float]:
        return [3.0, 1.0] * len(self.symbols) + [2.0, 1.0]

    def titles(self) -> list[str]:
        per = [t for s in self.symbols for t in (f"{s} price and fills", f"{s} position")]
        return [*per, "equity and risk state changes", "drawdown"]


def panels(fills: pd.DataFrame, marks: pd.DataFrame) -> Panels:
    """Group marks and fills per instrument (instruments with either, sorted by name)."""
    symbols = sorted(
        set(marks["symbol"] if not marks.empty else [])
        | set(fills["symbol"] if not fills.empty else [])
    )

    def own(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
        if frame.empty:
            return frame
        return frame[frame["symbol"] == symbol].sort_values("ts_ns", kind="stable")

    return Panels(
        symbols=symbols,
        marks={s: own(marks, s) for s in symbols},
        fills={s: own(fills, s) for s in symbols},
    )


def risk_label(event: Any) -> str:
    return f"risk {event['from']} -> {event['to']} ({event['cause']})"


def _time(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["ts_ns"], unit="ns")


def _side(frame: pd.DataFrame, side: str) -> pd.DataFrame:
    return frame[frame["side"] == side] if not frame.empty else frame


def write_png(
    path: Path,
    title: str,
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    marks: pd.DataFrame,
    risk_events: pd.DataFrame,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = panels(fills, marks)
    heights = layout.heights()
    fig, axes = plt.subplots(
        layout.rows,
        1,
        figsize=(12, 2.0 + 1.0 * sum(heights)),
        sharex=True,
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    ax = list(axes[:, 0])
    for i, symbol in enumerate(layout.symbols):
        price, position = ax[2 * i], ax[2 * i + 1]
        own_marks, own_fills = layout.marks[symbol], layout.fills[symbol]
        if not own_marks.empty:
            price.plot(
                _time(own_marks),
                own_marks["mid"],
                color="#555555",
                lw=0.7,
                drawstyle="steps-post",
                label="mid",
            )
            position.step(_time(own_marks), own_marks["position"], where="post", color="#4575b4")
        for side, color in SIDES:
            part = _side(own_fills, side)
            if not part.empty:
                price.scatter(
                    _time(part),
                    part["price"],
                    marker=MPL_MARKERS[side],
                    color=color,
                    s=18,
                    label=f"{side} fills",
                    zorder=3,
                )
        price.set_ylabel(f"{symbol}\nprice")
        price.legend(loc="upper left", fontsize=8)
        position.set_ylabel(f"{symbol}\nposition")
    eq_ax, dd_ax = ax[-2], ax[-1]
    t = _time(equity)
    eq_ax.plot(t, equity["equity"], color="#000000", lw=0.9, drawstyle="steps-post")
    for _, event in risk_events.iterrows():
        when = pd.to_datetime(event["ts_ns"], unit="ns")
        eq_ax.axvline(when, color="#984ea3", ls="--", lw=0.8)
        eq_ax.annotate(
            f"{event['to']} ({event['cause']})",
            (when, 0.97),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="#984ea3",
        )
    eq_ax.set_ylabel("equity")
    dd_ax.fill_between(
        t, drawdown(equity["equity"]), 0, color="#d73027", alpha=0.4, step="post", lw=0
    )
    dd_ax.set_ylabel("drawdown")
    dd_ax.set_xlabel("time (UTC)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(
    path: Path,
    title: str,
    summary: dict[str, Any],
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    marks: pd.DataFrame,
    risk_events: pd.DataFrame,
) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layout = panels(fills, marks)
    heights = layout.heights()
    fig = make_subplots(
        rows=layout.rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.02,
        row_heights=[h / sum(heights) for h in heights],
        subplot_titles=layout.titles(),
    )
    for i, symbol in enumerate(layout.symbols):
        row = 2 * i + 1
        own_marks, own_fills = layout.marks[symbol], layout.fills[symbol]
        if not own_marks.empty:
            t = _time(own_marks)
            fig.add_trace(
                go.Scattergl(
                    x=t,
                    y=own_marks["mid"],
                    name=f"{symbol} mid",
                    line={"width": 1, "color": "#555", "shape": "hv"},
                ),
                row,
                1,
            )
            fig.add_trace(
                go.Scattergl(
                    x=t,
                    y=own_marks["position"],
                    name=f"{symbol} position",
                    line={"shape": "hv", "color": "#4575b4"},
                ),
                row + 1,
                1,
            )
        for side, color in SIDES:
            part = _side(own_fills, side)
            if part.empty:
                continue
            fig.add_trace(
                go.Scattergl(
                    x=_time(part),
                    y=part["price"],
                    mode="markers",
                    name=f"{symbol} {side} fills",
                    marker={"symbol": PLOTLY_MARKERS[side], "color": color, "size": 7},
                    text=[_fill_text(fill) for _, fill in part.iterrows()],
                ),
                row,
                1,
            )
    eq_row = layout.rows - 1
    t = _time(equity)
    fig.add_trace(
        go.Scattergl(x=t, y=equity["equity"], name="equity", line={"color": "#000", "shape": "hv"}),
        eq_row,
        1,
    )
    if not risk_events.empty:
        low = float(equity["equity"].min()) if not equity.empty else 0.0
        high = float(equity["equity"].max()) if not equity.empty else 1.0
        xs: list[Any] = []
        ys: list[float | None] = []
        labels: list[str] = []
        for _, event in risk_events.iterrows():
            when = pd.to_datetime(event["ts_ns"], unit="ns")
            xs += [when, when, None]
            ys += [low, high, None]
            labels += [risk_label(event)] * 2 + [""]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name="risk state changes",
                line={"color": "#984ea3", "dash": "dash", "width": 1},
                text=labels,
                hoverinfo="text+x",
            ),
            eq_row,
            1,
        )
    fig.add_trace(
        go.Scattergl(
            x=t,
            y=drawdown(equity["equity"]),
            name="drawdown",
            fill="tozeroy",
            line={"color": "#d73027"},
        ),
        layout.rows,
        1,
    )
    fig.update_layout(
        title=title,
        height=300 + 110 * int(sum(heights)),
        template="plotly_white",
        legend={"orientation": "h"},
    )
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
    )
    events = "".join(
        f"<li>{html.escape(str(pd.to_datetime(e['ts_ns'], unit='ns')))} "
        f"{html.escape(risk_label(e))}</li>"
        for _, e in risk_events.iterrows()
    )
    events_html = f"<h2>Risk state changes</h2><ul>{events}</ul>" if events else ""
    body = fig.to_html(full_html=False, include_plotlyjs=True, div_id="backtest")
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>{events_html}{body}</body></html>"
    )


def _fill_text(fill: Any) -> str:
    text = f"qty {fill['qty']} fee {fill['fee']:.6f} {fill['liquidity']}"
    for h in MARKOUT_HORIZONS_S:
        bps = fill.get(markout_columns(h)[2])
        if bps is not None and pd.notna(bps):
            text += f" markout {h}s {bps:.2f} bps"
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
