"""Walk-forward validation of a finished study, and the deflated Sharpe ratio of its choice.

Every trial was scored on every fold's training window. For each fold, the trial that scored
best on *that fold's* training window (among completed trials that meet the constraints) is
run once on the fold's test window, which played no part in choosing it: in-sample against
out-of-sample, fold by fold (walk-forward analysis, R. Pardo, "The Evaluation and Optimization
of Trading Strategies", 2nd ed., Wiley 2008, ch. 11). With several objectives, each fold's
Pareto set is run out of sample. The overlay carries the choice of the most recent fold: the
parameters the validated procedure picks on the latest training data.

Selection bias is measured with the deflated Sharpe ratio (D. H. Bailey and M. López de Prado,
"The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and
Non-Normality", Journal of Portfolio Management 40(5), 2014, eq. 2 and the expected maximum
Sharpe ratio of N trials): see `deflated_sharpe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from appliance.research.study import Fold, StudyPlan

EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(variance: float, trials: int) -> float:
    """E[max SR] of `trials` independent unskilled strategies whose Sharpe ratios have
    `variance` across trials (Bailey & López de Prado 2014): the bar a chosen Sharpe must clear.
    """
    if trials < 2 or variance <= 0:
        return 0.0
    nd = NormalDist()
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * nd.inv_cdf(1 - 1 / trials)
        + EULER_GAMMA * nd.inv_cdf(1 - 1 / (trials * math.e))
    )


def deflated_sharpe(sr: float, n: int, skew: float, kurt: float, sr0: float) -> float | None:
    """P(true SR > sr0) given an observed per-period Sharpe `sr` over `n` periods with returns
    of skewness `skew` and kurtosis `kurt` (3 for normal returns):
    Phi((sr - sr0) sqrt(n - 1) / sqrt(1 - skew sr + (kurt - 1) / 4 sr^2))."""
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    if n < 2 or denom <= 0:
        return None
    return NormalDist().cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(denom))


@dataclass
class Choice:
    """A trial chosen on a fold's training window, and how it did on the test window."""

    trial: int
    overrides: list[str]
    in_sample: dict[str, float | None]
    out_of_sample: dict[str, float | None]
    dsr: float | None
    sr0: float
    manifest_sha256: str
    is_result: Any = None
    oos_result: Any = None


@dataclass
class FoldReport:
    fold: Fold
    choices: list[Choice]


@dataclass
class Validation:
    folds: list[FoldReport]
    overlay: Choice | None
    counts: dict[str, int]
    best_trial: int | None
    best_values: list[float] | None
    efficiency: float | None = None
    notes: list[str] = field(default_factory=list)


def result_of(trial: Any) -> dict[str, Any]:
    """What a trial recorded (optimize.make_objective): manifest hash, folds, metrics and
    constraint violations."""
    result: dict[str, Any] = trial.user_attrs.get("result") or {}
    return result


def overrides_of(plan: StudyPlan, trial: Any) -> list[str]:
    """The trial's parameters as the overrides it was compiled with."""
    return [p.override(trial.params[p.key]) for p in plan.params]


def feasible(trial: Any) -> bool:
    return all(v <= 0 for v in result_of(trial).get("constraints", []))


def _fold_value(trial: Any, fold: int, metric: str) -> float | None:
    folds = result_of(trial).get("folds") or []
    if fold >= len(folds):
        return None
    value = folds[fold]["metrics"].get(metric)
    return None if value is None else float(value)


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def select(plan: StudyPlan, trials: list[Any], fold: int) -> list[Any]:
    """The best trial on `fold`'s training window (ties: the earliest), or the Pareto set."""
    metrics = [o.metric for o in plan.study.objectives]
    dirs = plan.directions
    scored = []
    for t in trials:
        values = [_fold_value(t, fold, m) for m in metrics]
        if all(v is not None for v in values):
            scored.append((t, [float(v) for v in values if v is not None]))
    if not scored:
        return []
    if len(metrics) == 1:
        best = scored[0]
        for cand in scored[1:]:
            if _better(cand[1][0], best[1][0], dirs[0]):
                best = cand
        return [best[0]]

    def dominates(a: list[float], b: list[float]) -> bool:
        no_worse = all(not _better(y, x, d) for x, y, d in zip(a, b, dirs, strict=True))
        better = any(_better(x, y, d) for x, y, d in zip(a, b, dirs, strict=True))
        return no_worse and better

    front = [t for t, v in scored if not any(dominates(w, v) for _, w in scored)]
    return sorted(front, key=lambda t: t.number)


def validate(
    plan: StudyPlan,
    study: Any,
    evaluator: Any,
    keep_results: bool = True,
    pick: int | None = None,
) -> Validation:
    """Run each fold's choice on its test window; compute the deflated Sharpe ratio."""
    from optuna.trial import TrialState

    all_trials = study.get_trials(deepcopy=False)
    counts = {
        state.name.lower(): sum(1 for t in all_trials if t.state == state)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    done = [t for t in all_trials if t.state == TrialState.COMPLETE]
    usable = [t for t in done if feasible(t)]
    notes = []
    if len(usable) < len(done):
        notes.append(f"{len(done) - len(usable)} completed trials break a constraint")
    metrics = [o.metric for o in plan.study.objectives]
    reports: list[FoldReport] = []
    for fold in plan.folds:
        choices = []
        srs = [
            float(result_of(t)["folds"][fold.index]["sr"])
            for t in usable
            if result_of(t)["folds"][fold.index]["sr"] is not None
        ]
        variance = _variance(srs)
        sr0 = expected_max_sharpe(variance, len(done))
        for trial in select(plan, usable, fold.index):
            info = result_of(trial)["folds"][fold.index]
            text = evaluator.manifest(overrides_of(plan, trial))
            oos, oos_result = evaluator.window(text, fold.test)
            is_result = evaluator.window(text, fold.train)[1] if keep_results else None
            dsr = (
                deflated_sharpe(info["sr"], info["n"], info["skew"], info["kurt"], sr0)
                if info["sr"] is not None
                else None
            )
            choices.append(
                Choice(
                    trial=trial.number,
                    overrides=overrides_of(plan, trial),
                    in_sample={m: info["metrics"].get(m) for m in _shown(metrics)},
                    out_of_sample={m: oos.metrics.get(m) for m in _shown(metrics)},
                    dsr=dsr,
                    sr0=sr0,
                    manifest_sha256=oos.manifest_sha256,
                    is_result=is_result,
                    oos_result=oos_result if keep_results else None,
                )
            )
        reports.append(FoldReport(fold, choices))
    overlay = _overlay_choice(reports, pick, plan, study, evaluator, notes)
    best_trial, best_values = _study_best(study, usable)
    return Validation(
        folds=reports,
        overlay=overlay,
        counts=counts,
        best_trial=best_trial,
        best_values=best_values,
        efficiency=_efficiency(reports, metrics[0]),
        notes=notes,
    )


def _shown(objectives: list[str]) -> list[str]:
    extra = [m for m in ("pnl", "sharpe", "fills", "max_drawdown") if m not in objectives]
    return [*objectives, *extra]


def _variance(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _efficiency(reports: list[FoldReport], metric: str) -> float | None:
    """Walk-forward efficiency (Pardo): mean out-of-sample over mean in-sample objective."""
    pairs = [
        (c.in_sample.get(metric), c.out_of_sample.get(metric))
        for r in reports
        for c in r.choices[:1]
    ]
    ins = [p[0] for p in pairs if p[0] is not None and p[1] is not None]
    outs = [p[1] for p in pairs if p[0] is not None and p[1] is not None]
    # Only meaningful when the in-sample result is a gain: a ratio of two losses says nothing.
    if not ins or sum(ins) <= 0:
        return None
    return (sum(outs) / len(outs)) / (sum(ins) / len(ins))


def _study_best(study: Any, usable: list[Any]) -> tuple[int | None, list[float] | None]:
    """The best completed trial that meets the constraints (one objective)."""
    if not usable or len(study.directions) > 1:
        return None, None
    sign = 1.0 if study.directions[0].name == "MAXIMIZE" else -1.0
    best = max(usable, key=lambda t: (sign * float(t.value), -t.number))
    return best.number, [float(best.value)]


def _overlay_choice(
    reports: list[FoldReport],
    pick: int | None,
    plan: StudyPlan,
    study: Any,
    evaluator: Any,
    notes: list[str],
) -> Choice | None:
    if not reports or not reports[-1].choices:
        return None
    last = reports[-1]
    if pick is None:
        return last.choices[0]
    for choice in last.choices:
        if choice.trial == pick:
            return choice
    notes.append(f"trial {pick} is not the choice of the last fold: the overlay takes it as asked")
    trial = study.trials[pick]
    fold = last.fold
    text = evaluator.manifest(overrides_of(plan, trial))
    oos, oos_result = evaluator.window(text, fold.test)
    info = result_of(trial)["folds"][fold.index]
    metrics = _shown([o.metric for o in plan.study.objectives])
    return Choice(
        trial=trial.number,
        overrides=overrides_of(plan, trial),
        in_sample={m: info["metrics"].get(m) for m in metrics},
        out_of_sample={m: oos.metrics.get(m) for m in metrics},
        dsr=None,
        sr0=last.choices[0].sr0,
        manifest_sha256=oos.manifest_sha256,
        oos_result=oos_result,
    )
