"""Study reports: one HTML page (plotly) and one PNG (matplotlib) per study.

The page holds the optimisation history, the parameter importances, a parallel-coordinate and a
slice plot (Optuna's own plotly figures), the Pareto front of a multi-objective study, and the
walk-forward equity curves: each fold's choice on its training window (in sample) and on its
test window (out of sample). `summary.json` holds the numbers the CLI printed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from appliance.research.data import format_utc as _utc
from appliance.research.study import StudyPlan


def _curves(result: Any) -> list[tuple[str, str, Any, Any]]:
    """(label, kind, time, equity) of every fold's chosen trial, in and out of sample."""
    import pandas as pd

    out = []
    for report in result.folds:
        for choice in report.choices[:1]:
            for kind, res in (
                ("in sample", choice.is_result),
                ("out of sample", choice.oos_result),
            ):
                if res is None or res.equity.empty:
                    continue
                t = pd.to_datetime(res.equity["ts_ns"], unit="ns")
                label = f"fold {report.fold.index} {kind} (trial {choice.trial})"
                out.append((label, kind, t, res.equity["equity"]))
    return out


def _figures(plan: StudyPlan, study: Any, result: Any) -> list[tuple[str, Any]]:
    import optuna.visualization as vis
    import plotly.graph_objects as go

    names = [o.metric for o in plan.study.objectives]
    target = None if len(names) == 1 else (lambda t: t.values[0])
    # Importance evaluators look for what makes the target low: point them at the first
    # objective's good side.
    first_max = plan.directions[0] == "maximize"
    low_is_good = (
        None
        if len(names) == 1
        else ((lambda t: -t.values[0]) if first_max else (lambda t: t.values[0]))
    )
    figs: list[tuple[str, Any]] = []
    builders: list[tuple[str, Any]] = [
        (
            "optimisation history",
            lambda: vis.plot_optimization_history(study, target=target, target_name=names[0]),
        ),
        (
            "parameter importances",
            lambda: vis.plot_param_importances(
                study,
                target=low_is_good,
                target_name=f"-{names[0]}" if first_max and low_is_good else names[0],
            ),
        ),
        (
            "parallel coordinates",
            lambda: vis.plot_parallel_coordinate(study, target=target, target_name=names[0]),
        ),
        ("slice", lambda: vis.plot_slice(study, target=target, target_name=names[0])),
    ]
    if len(names) > 1:
        builders.append(("Pareto front", lambda: vis.plot_pareto_front(study, target_names=names)))
    for title, build in builders:
        try:
            figs.append((title, build()))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            # Too few completed trials for this view (importances need two or more).
            figs.append((title, _note(f"{title}: not available ({exc})")))
    curve = go.Figure()
    colours = {"in sample": "#4575b4", "out of sample": "#d73027"}
    for label, kind, t, equity in _curves(result):
        curve.add_trace(go.Scatter(x=t, y=equity, name=label, line={"color": colours[kind]}))
    curve.update_layout(
        title="walk-forward equity: chosen on the training window (blue), then unseen (red)",
        yaxis_title="equity (quote)",
        template="plotly_white",
    )
    figs.append(("walk-forward equity", curve))
    return figs


def _note(text: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5)
    fig.update_layout(height=120, template="plotly_white")
    return fig


def write_html(path: Path, plan: StudyPlan, study: Any, result: Any) -> None:
    parts = []
    first = True
    for title, fig in _figures(plan, study, result):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    rows = []
    for report in result.folds:
        for c in report.choices:
            cells = [
                str(report.fold.index),
                f"{_utc(report.fold.train[0])} to {_utc(report.fold.train[1])}",
                f"{_utc(report.fold.test[0])} to {_utc(report.fold.test[1])}",
                str(c.trial),
                json.dumps(c.in_sample, sort_keys=True),
                json.dumps(c.out_of_sample, sort_keys=True),
                "n/a" if c.dsr is None else f"{c.dsr:.4f}",
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("fold", "train", "test", "trial", "in sample", "out of sample", "DSR")
    )
    title = f"study {plan.name} ({plan.study.deployment})"
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:90%}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>{''.join(parts)}</body></html>"
    )


def write_png(path: Path, plan: StudyPlan, study: Any, result: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    fig, axes = plt.subplots(2, 1, figsize=(12, 8))
    metric = plan.study.objectives[0].metric
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    xs = [t.number for t in done]
    ys = [t.values[0] for t in done]
    axes[0].scatter(xs, ys, s=14, color="#4575b4", label=f"trial {metric}")
    if ys:
        best, running = [], ys[0]
        for y in ys:
            running = max(running, y) if plan.directions[0] == "maximize" else min(running, y)
            best.append(running)
        axes[0].step(xs, best, where="post", color="#d73027", label="best so far")
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel(f"{metric} (training windows)")
    axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_title(f"study {plan.name}: optimisation history")
    colours = {"in sample": "#4575b4", "out of sample": "#d73027"}
    for label, kind, t, equity in _curves(result):
        axes[1].plot(t, equity, color=colours[kind], linewidth=0.9, label=label)
    axes[1].set_ylabel("equity (quote)")
    axes[1].set_xlabel("time (UTC)")
    axes[1].set_title("walk-forward: in sample (blue) and out of sample (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(out: Path, plan: StudyPlan, study: Any, result: Any) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    page, png = out / "study.html", out / "study.png"
    write_html(page, plan, study, result)
    write_png(png, plan, study, result)
    return [page, png]
