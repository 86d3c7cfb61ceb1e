"""`appliance optimize study=NAME [overrides]`: run a study, validate it walk-forward, write the
tuned overlay and the study report.

Everything that can be wrong with the input (the study, its search space, metrics, folds, data,
the storage) is found before any trial runs or any file is written: exit 2 with diagnostics.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.research.data import format_utc as _utc


def split_overrides(args: Sequence[str], group: str = "study") -> tuple[str, list[str], list[str]]:
    """`<group>=NAME` chooses the study (or model); `<group>.KEY=V` overrides it; anything else
    is a fixed deployment override."""
    name = None
    own: list[str] = []
    deployment: list[str] = []
    for arg in args:
        if arg.startswith(f"{group}="):
            name = arg.partition("=")[2]
        elif arg.lstrip("+~").startswith(f"{group}."):
            own.append(arg)
        else:
            deployment.append(arg)
    if not name:
        command = "optimize" if group == "study" else "train"
        raise ConfigError(
            [
                Diagnostic(
                    group,
                    None,
                    f"{group}.choose",
                    f"choose one: appliance {command} {group}=NAME (see conf/{group}/)",
                    source="command line",
                )
            ]
        )
    return name, own, deployment


def run(
    root: Path,
    args: Sequence[str],
    trials: int | None,
    workers: int,
    storage_url: str | None,
    seed: int | None,
    pick: int | None,
    report: bool,
    as_json: bool,
) -> None:
    from appliance.research import optimize, overlay, walkforward
    from appliance.research.trial import Evaluator

    optimize.quiet_optuna()
    name, study_overrides, deployment_overrides = split_overrides(args)
    if seed is not None:
        study_overrides.append(f"study.seed={seed}")
    if workers < 1:
        raise ConfigError(
            [Diagnostic("--workers", workers, "study.workers", "at least 1", source="command line")]
        )
    spec = optimize.Spec(
        root=str(root),
        name=name,
        study_overrides=study_overrides,
        deployment_overrides=deployment_overrides,
        storage="",
        n_trials=0,
        seed=0,
    )
    plan, base = optimize.load(spec)
    url = storage_url or optimize.default_storage(root, name)
    storage = optimize.open_storage(url)
    study = optimize.create_study(plan, storage, plan.study.seed)
    existing = len(optimize.counted(study))
    wanted = plan.study.n_trials if trials is None else trials
    if trials is not None and trials < 0:
        raise ConfigError(
            [Diagnostic("--trials", trials, "study.trials", "at least 0", source="command line")]
        )
    spec.storage, spec.seed = url, plan.study.seed
    spec.n_trials = existing + wanted
    console = Console(stderr=True)
    objective = plan.study.objectives[0]
    started = time.monotonic()
    if wanted > 0:
        with Progress(
            TextColumn(f"optimize {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("trials", total=spec.n_trials, completed=existing, best="")

            def on_progress(all_trials: list[Any]) -> None:
                done = [t for t in all_trials if t.state.is_finished()]
                bar.update(task, completed=min(len(done), spec.n_trials), best=_best(done, plan))

            failed = optimize.run_workers(spec, workers, on_progress, study)
        if failed:
            console.print(
                f"warning: {len(failed)} worker(s) ended abnormally (exit {failed}); "
                "their trials in progress were failed and retried",
                markup=False,
            )
    elapsed = time.monotonic() - started
    evaluator = Evaluator(root, plan, base)
    if pick is not None and not _is_complete(study, pick):
        raise ConfigError(
            [
                Diagnostic(
                    "--pick",
                    pick,
                    "study.pick",
                    "not a completed trial of this study",
                    source="command line",
                )
            ]
        )
    result = walkforward.validate(plan, study, evaluator, keep_results=report, pick=pick)
    written: list[Path] = []
    overlay_path = root / "conf" / "tuned" / f"{name}.yaml"
    if result.overlay is not None:
        overlay.write(overlay_path, overlay.render(plan, root, result.overlay, plan.optuna_name()))
        written.append(overlay_path)
    if report:
        from appliance.research import study_report

        out = root / "reports" / "studies" / name
        written += study_report.write(out, plan, study, result)
    summary = _to_json(plan, result, url, elapsed, workers, written, root)
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False))
        return
    # Wide enough for the fold table when the output is a pipe or a file.
    probe = Console()
    console = probe if probe.is_terminal else Console(width=160)
    _print(console, plan, result, summary, objective.metric, root)


def _is_complete(study: Any, number: int) -> bool:
    from optuna.trial import TrialState

    return 0 <= number < len(study.trials) and study.trials[number].state == TrialState.COMPLETE


def _best(done: list[Any], plan: Any) -> str:
    from optuna.trial import TrialState

    from appliance.research.walkforward import feasible

    complete = [t for t in done if t.state == TrialState.COMPLETE and feasible(t)]
    if not complete or len(plan.directions) > 1:
        return f"{len(complete)} scored"
    key = (lambda t: t.value) if plan.directions[0] == "maximize" else (lambda t: -t.value)
    best = max(complete, key=key)
    return f"best {plan.study.objectives[0].metric} {best.value:.6g} (trial {best.number})"


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.6g}"


def _span(window: tuple[int, int]) -> str:
    return f"{_utc(window[0])[11:19]}-{_utc(window[1])[11:19]}"


def _to_json(
    plan: Any,
    result: Any,
    url: str,
    elapsed: float,
    workers: int,
    written: list[Path],
    root: Path,
) -> dict[str, Any]:
    from appliance.research.optimize import shown_storage

    def clean(d: dict[str, float | None]) -> dict[str, float | None]:
        return {k: (v if v is None or math.isfinite(v) else None) for k, v in d.items()}

    return {
        "study": plan.name,
        "optuna_study": plan.optuna_name(),
        "storage": shown_storage(url),
        "deployment": plan.study.deployment,
        "objectives": [o.model_dump() for o in plan.study.objectives],
        "trials": result.counts,
        "best_trial": result.best_trial,
        "best_values": result.best_values,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "folds": [
            {
                "fold": r.fold.index,
                "train": [_utc(r.fold.train[0]), _utc(r.fold.train[1])],
                "test": [_utc(r.fold.test[0]), _utc(r.fold.test[1])],
                "choices": [
                    {
                        "trial": c.trial,
                        "overrides": c.overrides,
                        "in_sample": clean(c.in_sample),
                        "out_of_sample": clean(c.out_of_sample),
                        "deflated_sharpe": c.dsr,
                        "expected_max_sharpe": c.sr0,
                    }
                    for c in r.choices
                ],
            }
            for r in result.folds
        ],
        "walk_forward_efficiency": result.efficiency,
        "overlay": None
        if result.overlay is None
        else {"trial": result.overlay.trial, "overrides": result.overlay.overrides},
        "written": [_rel(p, root) for p in written],
        "notes": result.notes,
    }


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _print(
    console: Console, plan: Any, result: Any, summary: dict[str, Any], metric: str, root: Path
) -> None:
    wf = plan.study.walk_forward
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in plan.study.objectives)
    console.print(
        f"study {plan.name}: deployment {plan.study.deployment}, objective {objectives}, "
        f"{len(plan.folds)} folds ({wf.mode}, train {wf.train}, test {wf.test}, step {wf.step})",
        markup=False,
    )
    c = result.counts
    console.print(
        f"trials: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed "
        f"in {summary['seconds']:.1f} s with {summary['workers']} worker(s); "
        f"storage {summary['storage']} (Optuna study {summary['optuna_study']})",
        markup=False,
    )
    if result.best_trial is not None and result.best_values:
        console.print(
            f"best trial over all training windows: {result.best_trial} "
            f"({metric} {_num(result.best_values[0])})",
            markup=False,
        )
    metrics = [o.metric for o in plan.study.objectives]
    shown = [*metrics, *(["fills"] if "fills" not in metrics else [])]
    table = Table(
        title="walk-forward: chosen on each training window, then run on its unseen test window",
        title_justify="left",
    )
    for col in ("fold", "train (UTC)", "test (UTC)", "trial"):
        table.add_column(col)
    for m in shown:
        table.add_column(f"IS {m}", justify="right")
        table.add_column(f"OOS {m}", justify="right")
    table.add_column("DSR", justify="right")
    for r in result.folds:
        for ch in r.choices:
            row = [str(r.fold.index), _span(r.fold.train), _span(r.fold.test), str(ch.trial)]
            for m in shown:
                row += [_num(ch.in_sample.get(m)), _num(ch.out_of_sample.get(m))]
            row.append("n/a" if ch.dsr is None else f"{ch.dsr:.3f}")
            table.add_row(*row)
    console.print(table)
    if result.efficiency is not None:
        console.print(
            f"walk-forward efficiency (mean OOS / mean IS {metric}): {result.efficiency:.3f}"
        )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if result.overlay is None:
        console.print("no trial completed within the constraints: no overlay written")
    else:
        console.print(
            f"overlay: conf/tuned/{plan.name}.yaml (trial {result.overlay.trial}, chosen on the "
            "most recent training window)",
            markup=False,
        )
        for o in result.overlay.overrides:
            console.print(f"  {o}", markup=False)
        console.print(f"review it: appliance plan +tuned={plan.name}", markup=False)
    for path in summary["written"][1:]:
        console.print(f"wrote {path}", markup=False)
