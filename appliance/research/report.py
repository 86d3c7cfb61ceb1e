"""Backtest reports: an interactive HTML page (plotly, self-contained) and a PNG (matplotlib).

Four aligned panels: price with the strategy's fills, position, equity, drawdown.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from appliance.research.metrics import drawdown


def _time(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["ts_ns"], unit="ns")


def write_png(path: Path, title: str, equity: pd.DataFrame, fills: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        4, 1, figsize=(12, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1, 2, 1]}
    )
    t = _time(equity)
    axes[0].plot(t, equity["mid"], color="#555555", linewidth=0.7, label="mid")
    for side, marker, color in (("buy", "^", "#1a9850"), ("sell", "v", "#d73027")):
        part = fills[fills["side"] == side] if not fills.empty else fills
        if not part.empty:
            axes[0].scatter(
                _time(part),
                part["price"],
                marker=marker,
                color=color,
                s=18,
                label=f"{side} fills",
                zorder=3,
            )
    axes[0].set_ylabel("price")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].step(t, equity["position"], where="post", color="#4575b4")
    axes[1].set_ylabel("position")
    axes[2].plot(t, equity["equity"], color="#000000", linewidth=0.9)
    axes[2].set_ylabel("equity")
    axes[3].fill_between(t, drawdown(equity["equity"]), 0, color="#d73027", alpha=0.4)
    axes[3].set_ylabel("drawdown")
    axes[3].set_xlabel("time (UTC)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(
    path: Path, title: str, summary: dict[str, Any], equity: pd.DataFrame, fills: pd.DataFrame
) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.4, 0.15, 0.3, 0.15],
        subplot_titles=("price and fills", "position", "equity", "drawdown"),
    )
    t = _time(equity)
    fig.add_trace(
        go.Scattergl(x=t, y=equity["mid"], name="mid", line={"width": 1, "color": "#555"}), 1, 1
    )
    for side, symbol, color in (
        ("buy", "triangle-up", "#1a9850"),
        ("sell", "triangle-down", "#d73027"),
    ):
        part = fills[fills["side"] == side] if not fills.empty else fills
        if not part.empty:
            fig.add_trace(
                go.Scattergl(
                    x=_time(part),
                    y=part["price"],
                    mode="markers",
                    name=f"{side} fills",
                    marker={"symbol": symbol, "color": color, "size": 7},
                    text=[
                        f"qty {q} fee {f:.6f} {liq}"
                        for q, f, liq in zip(
                            part["qty"], part["fee"], part["liquidity"], strict=True
                        )
                    ],
                ),
                1,
                1,
            )
    fig.add_trace(
        go.Scattergl(
            x=t, y=equity["position"], name="position", line={"shape": "hv", "color": "#4575b4"}
        ),
        2,
        1,
    )
    fig.add_trace(
        go.Scattergl(x=t, y=equity["equity"], name="equity", line={"color": "#000"}), 3, 1
    )
    fig.add_trace(
        go.Scattergl(
            x=t,
            y=drawdown(equity["equity"]),
            name="drawdown",
            fill="tozeroy",
            line={"color": "#d73027"},
        ),
        4,
        1,
    )
    fig.update_layout(title=title, height=900, template="plotly_white", legend={"orientation": "h"})
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in summary.items()
    )
    body = fig.to_html(full_html=False, include_plotlyjs=True, div_id="backtest")
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table>{body}</body></html>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
