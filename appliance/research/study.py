"""A study is config: `conf/study/<name>.yaml`, composed by Hydra and validated like any group.

A study names the deployment (and engine) it tunes, the recorded data, the search space over
any config key in Hydra's sweep syntax (parsed by Hydra's own override parser), objectives and
constraints over the backtest summary, walk-forward folds, sampler, pruner, trials and seed.
`load_study` returns a checked `StudyPlan`, or raises `ConfigError` with every problem, each
naming its key path, value, rule and file, like the deployment compiler.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.config.diagnostics import ConfigError, Diagnostic, from_validation_error

# Summary metrics a study may optimise or constrain, and how a metric of several folds adds up:
# amounts and counts are summed, ratios averaged, a drawdown is its worst fold.
METRICS: dict[str, Literal["sum", "mean", "max"]] = {
    "pnl": "sum",
    "realised_pnl": "sum",
    "unrealised_pnl": "sum",
    "fees": "sum",
    "turnover": "sum",
    "fills": "sum",
    "orders_placed": "sum",
    "orders_rejected": "sum",
    "risk_events": "sum",
    "fill_ratio": "mean",
    "sharpe": "mean",
    "sortino": "mean",
    "markout_1s_bps": "mean",
    "markout_10s_bps": "mean",
    "max_drawdown": "max",
    "max_drawdown_duration_s": "max",
}

_DURATION = r"^[1-9][0-9]*(ms|s|min|h|d)$"
_DURATION_NS = {"ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}

Duration = Annotated[str, Field(pattern=_DURATION, description="e.g. 90s, 2min, 1h, 500ms")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StudyData(_Strict):
    """Captures (or native files), in time order: consecutive captures chain into one stream."""

    files: list[str] = Field(min_length=1, description="paths relative to the project root")
    start: str | None = Field(description="UTC start of the data used (null: the data's start)")
    end: str | None = Field(description="UTC end of the data used (null: the data's end)")


class Objective(_Strict):
    metric: str = Field(description=f"a backtest summary metric: {', '.join(METRICS)}")
    direction: Literal["maximize", "minimize"]


class WalkForward(_Strict):
    """Folds over the data: each has a training window (scored for every trial) followed by a
    test window (never used to choose parameters for that fold)."""

    mode: Literal["rolling", "anchored"] = Field(
        description="rolling: the training window slides; anchored: it starts at the data's start"
    )
    train: Duration
    test: Duration
    step: Duration = Field(description="how far each fold moves on")


class Sampler(_Strict):
    kind: Literal["tpe", "cmaes", "grid", "random"]
    startup_trials: Annotated[int, Field(ge=0, le=10_000)] = Field(
        description="random trials before TPE or CMA-ES model the space"
    )


class Pruner(_Strict):
    kind: Literal["none", "median"]
    warmup_folds: Annotated[int, Field(ge=0, le=1000)] = Field(
        description="folds a trial always completes before it may be pruned"
    )


class Study(_Strict):
    """One study (`conf/study/<name>.yaml`)."""

    deployment: str = Field(pattern=_NAME, description="conf/deployment/<name>.yaml to tune")
    engine: str | None = Field(description="the engine to backtest (null: the only one)")
    overrides: list[str] = Field(description="fixed overrides applied to every trial")
    data: StudyData
    search_space: list[str] = Field(
        min_length=1,
        description="Hydra sweep overrides: key=range(1,8), key=interval(0.1,0.9), "
        "key=tag(log,interval(...)), key=choice(a,b)",
    )
    objectives: list[Objective] = Field(min_length=1, max_length=4)
    constraints: list[str] = Field(description='e.g. "fills >= 50", "max_drawdown <= 20"')
    walk_forward: WalkForward
    bucket: Duration = Field(description="return bucket of Sharpe and Sortino")
    sampler: Sampler
    pruner: Pruner
    n_trials: Annotated[int, Field(ge=1, le=100_000)]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)]


@dataclass(frozen=True)
class Param:
    """One searched key: its Hydra sweep, as Optuna will sample it."""

    key: str
    kind: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    # The deployment's value is a decimal string: sampled floats are written as one.
    decimal: bool = False

    def grid(self) -> list[Any] | None:
        """Every value, for grid search (None for a continuous interval)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step) + 1
        values = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in values] if self.kind == "int" else [round(v, 8) for v in values]

    def override(self, value: Any) -> str:
        """The Hydra override that sets this key to a sampled value."""
        if self.decimal and isinstance(value, float | int) and not isinstance(value, bool):
            return f"{self.key}='{decimal_text(value)}'"
        if isinstance(value, str):
            return f"{self.key}={value}"
        return f"{self.key}={json.dumps(value)}"


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    bound: float
    text: str

    def violation(self, value: float | None) -> float:
        """Optuna's convention: <= 0 is feasible; > 0 says by how much it is not."""
        if value is None:
            return 1.0
        gap = self.bound - value if self.op in (">=", ">") else value - self.bound
        if self.op in (">", "<") and gap == 0:
            return 1e-9  # the bound itself is not allowed
        return gap

    def holds(self, value: float | None) -> bool:
        return value is not None and _OPS[self.op](value, self.bound)


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[int, int]
    test: tuple[int, int]


@dataclass
class StudyPlan:
    """A checked study: everything a worker needs, as plain data (it crosses processes)."""

    name: str
    study: Study
    source: str
    params: list[Param]
    constraints: list[Constraint]
    folds: list[Fold]
    files: list[str]
    data_range: tuple[int, int]
    fixed_overrides: list[str] = field(default_factory=list)

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [o.direction for o in self.study.objectives]

    def fingerprint(self) -> str:
        """What makes trials comparable: a resumed study must have the same of all of these."""
        study = self.study.model_dump(mode="json", exclude={"n_trials"})
        body = {
            "study": study,
            "fixed_overrides": self.fixed_overrides,
            "folds": [(f.train, f.test) for f in self.folds],
        }
        text = json.dumps(body, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def optuna_name(self) -> str:
        return f"{self.name}-{self.fingerprint()}"


def duration_ns(text: str) -> int:
    m = re.match(r"^([0-9]+)(ms|s|min|h|d)$", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m.group(1)) * _DURATION_NS[m.group(2)]


def decimal_text(value: float | int) -> str:
    """A sampled number as a decimal string with at most 8 decimals, no exponent."""
    d = Decimal(repr(value)).quantize(Decimal("0.00000001"))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def make_folds(wf: WalkForward, start: int, end: int) -> list[Fold]:
    """Walk-forward folds over [start, end): each a training window then a test window."""
    train, test, step = duration_ns(wf.train), duration_ns(wf.test), duration_ns(wf.step)
    folds: list[Fold] = []
    offset = 0
    while True:
        train_start = start if wf.mode == "anchored" else start + offset
        train_end = start + offset + train
        test_end = train_end + test
        if test_end > end:
            break
        folds.append(Fold(len(folds), (train_start, train_end), (train_end, test_end)))
        offset += step
    return folds


def parse_search_space(
    entries: Sequence[str], composed: dict[str, Any], path: str = "search_space"
) -> tuple[list[Param], list[Diagnostic]]:
    """Hydra sweep overrides -> Optuna parameters; every problem as a diagnostic."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    params: list[Param] = []
    diags: list[Diagnostic] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        try:
            (override,) = parser.parse_overrides([entry])
        except HydraException as exc:
            diags.append(Diagnostic(where, entry, "study.search_space.syntax", str(exc)))
            continue
        key = override.key_or_group
        current = _lookup(composed, key)
        if current is _ABSENT:
            diags.append(
                Diagnostic(
                    where,
                    entry,
                    "study.search_space.unknown_key",
                    f"{key!r} is not a key of the composed deployment",
                )
            )
            continue
        if isinstance(current, dict | list):
            diags.append(
                Diagnostic(
                    where,
                    entry,
                    "study.search_space.not_a_value",
                    f"{key!r} is a {'map' if isinstance(current, dict) else 'list'}; "
                    "search over its values",
                )
            )
            continue
        if key in seen:
            diags.append(Diagnostic(where, entry, "study.search_space.duplicate", "searched twice"))
            continue
        seen.add(key)
        decimal = isinstance(current, str) and _is_decimal(current)
        sweep = override.value() if override.is_sweep_override() else None
        if isinstance(sweep, ChoiceSweep):
            choices = tuple(_scalar(v) for v in sweep.list)
            if not choices:
                diags.append(Diagnostic(where, entry, "study.search_space.empty", "no choices"))
                continue
            params.append(Param(key, "categorical", choices=choices, decimal=decimal))
        elif isinstance(sweep, RangeSweep):
            start, stop, step = sweep.start, sweep.stop, sweep.step
            if start is None or stop is None or not step or (stop - start) / step <= 0:
                diags.append(
                    Diagnostic(
                        where,
                        entry,
                        "study.search_space.empty",
                        "the range holds no value (Hydra's range excludes its stop)",
                    )
                )
                continue
            n = -(-(stop - start) // step)  # ceil: values start, start+step, ... < stop
            high = start + (n - 1) * step
            is_int = all(isinstance(v, int) for v in (start, stop, step))
            params.append(
                Param(
                    key,
                    "int" if is_int else "float",
                    low=start,
                    high=high,
                    step=step,
                    decimal=decimal,
                )
            )
        elif isinstance(sweep, IntervalSweep):
            low, high = float(sweep.start or 0.0), float(sweep.end or 0.0)
            log = "log" in sweep.tags
            if not low < high:
                diags.append(
                    Diagnostic(
                        where,
                        entry,
                        "study.search_space.empty",
                        "the interval is empty (low >= high)",
                    )
                )
                continue
            if log and low <= 0:
                diags.append(
                    Diagnostic(
                        where, entry, "study.search_space.log", "a log interval must be above 0"
                    )
                )
                continue
            as_int = isinstance(current, int) and not isinstance(current, bool)
            params.append(
                Param(
                    key,
                    "int" if as_int else "float",
                    low=int(low) if as_int else low,
                    high=int(high) if as_int else high,
                    log=log,
                    step=1 if as_int else None,
                    decimal=decimal,
                )
            )
        else:
            diags.append(
                Diagnostic(
                    where,
                    entry,
                    "study.search_space.not_a_sweep",
                    "expected a sweep: range(a,b[,step]), interval(a,b), "
                    "tag(log,interval(a,b)) or choice(x,y,...); fixed values go in `overrides`",
                )
            )
    return params, diags


def parse_constraints(entries: Sequence[str]) -> tuple[list[Constraint], list[Diagnostic]]:
    out: list[Constraint] = []
    diags: list[Diagnostic] = []
    for i, text in enumerate(entries):
        m = _CONSTRAINT.match(text)
        where = f"constraints[{i}]"
        if not m:
            diags.append(
                Diagnostic(
                    where, text, "study.constraint.syntax", "expected `<metric> >=|<=|>|< <number>`"
                )
            )
            continue
        metric, op, bound = m.groups()
        if metric not in METRICS:
            diags.append(_unknown_metric(where, metric))
            continue
        out.append(Constraint(metric, op, float(bound), text.strip()))
    return out, diags


def _unknown_metric(where: str, metric: str) -> Diagnostic:
    return Diagnostic(
        where,
        metric,
        "study.metric.unknown",
        f"no backtest metric {metric!r} (metrics: {', '.join(sorted(METRICS))})",
    )


def check_study(study: Study, data_range: tuple[int, int]) -> list[Diagnostic]:
    """Rules no single field can see: metrics exist, the sampler fits the space, the folds fit
    the data."""
    diags = [
        _unknown_metric(f"objectives[{i}].metric", o.metric)
        for i, o in enumerate(study.objectives)
        if o.metric not in METRICS
    ]
    metrics = [o.metric for o in study.objectives]
    if len(set(metrics)) != len(metrics):
        diags.append(
            Diagnostic("objectives", metrics, "study.objectives.unique", "a metric appears twice")
        )
    if study.sampler.kind == "cmaes" and len(study.objectives) > 1:
        diags.append(
            Diagnostic(
                "sampler.kind",
                "cmaes",
                "study.sampler.multi_objective",
                "CMA-ES optimises one objective: use tpe or random for a Pareto front",
            )
        )
    from appliance.research.data import format_utc

    start, end = data_range
    wf = study.walk_forward
    need = duration_ns(wf.train) + duration_ns(wf.test)
    if need > end - start:
        diags.append(
            Diagnostic(
                "walk_forward",
                {"train": wf.train, "test": wf.test},
                "study.folds.fit_data",
                f"one fold needs {need / 1e9:g} s of data (train + test) but the data spans "
                f"{(end - start) / 1e9:g} s ({format_utc(start)} to {format_utc(end)})",
            )
        )
    return diags


_ABSENT: Any = object()


def _lookup(tree: Any, key: str) -> Any:
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def validate_study(raw: Any, source: str) -> tuple[Study | None, list[Diagnostic]]:
    try:
        return Study.model_validate(raw), []
    except ValidationError as exc:
        return None, [d.with_source(source) for d in from_validation_error(exc, [])]


def load_study(
    root: Path,
    name: str,
    study_overrides: Sequence[str],
    deployment_overrides: Sequence[str],
    time_range: Callable[[list[Path]], tuple[int, int]],
    parse_time: Callable[[str], int],
) -> tuple[StudyPlan, Any]:
    """Compose `conf/study/<name>.yaml` (with `study.*` overrides), validate it, compose the
    deployment it tunes once, and check the search space against it. Returns the plan and the
    composed deployment (the base every trial's overrides apply to)."""
    from appliance.config.compose import compose

    raw, sources = _compose_study(root, name, study_overrides)
    default_source = f"conf/study/{name}.yaml"

    def src(path: str) -> str:
        head = path.split(".")[0].split("[")[0]
        return sources.get(head, default_source)

    study, diags = validate_study(raw, default_source)
    if study is None:
        raise ConfigError([d.with_source(src(d.path)) for d in diags])
    fixed = [*study.overrides, *deployment_overrides]
    try:
        base = compose(root, [f"deployment={study.deployment}", *fixed])
    except ConfigError as err:
        raise ConfigError(
            [d.with_source(src("deployment")) if d.source is None else d for d in err.diagnostics]
        ) from None
    params, more = parse_search_space(study.search_space, base.data)
    diags += more
    constraints, more = parse_constraints(study.constraints)
    diags += more
    files = [root / f for f in study.data.files]
    missing = [f for f in study.data.files if not (root / f).is_file()]
    diags += [
        Diagnostic(
            f"data.files[{study.data.files.index(f)}]", f, "study.data.exists", "no such file"
        )
        for f in missing
    ]
    data_range = (0, 0)
    if not missing:
        start, end = time_range(files)
        for key in ("start", "end"):
            text = getattr(study.data, key)
            if text is None:
                continue
            try:
                t = parse_time(text)
            except ValueError as exc:
                diags.append(Diagnostic(f"data.{key}", text, "study.data.time", str(exc)))
                continue
            if key == "start":
                start = max(start, t)
            else:
                end = min(end, t)
        data_range = (start, end)
        if end <= start:
            diags.append(
                Diagnostic(
                    "data",
                    {"start": study.data.start, "end": study.data.end},
                    "study.data.window",
                    "the window holds none of the data",
                )
            )
        else:
            diags += check_study(study, data_range)
    if study.sampler.kind == "grid":
        for p in params:
            if p.grid() is None:
                diags.append(
                    Diagnostic(
                        f"search_space[{[q.key for q in params].index(p.key)}]",
                        p.key,
                        "study.sampler.grid",
                        "grid search needs finite values: use range() or choice(), not interval()",
                    )
                )
    if diags:
        raise ConfigError([d.with_source(d.source or src(d.path)) for d in diags])
    folds = make_folds(study.walk_forward, *data_range)
    plan = StudyPlan(
        name=name,
        study=study,
        source=default_source,
        params=params,
        constraints=constraints,
        folds=folds,
        files=list(study.data.files),
        data_range=data_range,
        fixed_overrides=fixed,
    )
    return plan, base


def _compose_study(root: Path, name: str, overrides: Sequence[str]) -> tuple[Any, dict[str, str]]:
    raw = compose_option(root, "study", name, overrides)
    sources = {}
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~").removeprefix("study.").split(".")[0]
        sources[key] = f"command line override {o}"
    return raw, sources


def compose_option(root: Path, group: str, name: str, overrides: Sequence[str]) -> Any:
    """One option of a research group (`conf/<group>/<name>.yaml`: study, model) composed by
    Hydra on its own, with `<group>.KEY=VALUE` overrides; its keys, as plain data."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    conf = (root / "conf").resolve()
    if not re.match(_NAME, name) or not (conf / group / f"{name}.yaml").is_file():
        options = sorted(p.stem for p in (conf / group).glob("*.yaml"))
        raise ConfigError(
            [
                Diagnostic(
                    group,
                    name,
                    f"{group}.exists",
                    f"no {group} {name!r} in conf/{group}/ "
                    f"(options: {', '.join(options) or 'none'})",
                    source="command line",
                )
            ]
        )
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name=group):
            cfg = hydra_compose(f"{group}/{name}", overrides=list(overrides))
        # The file is in the group's directory, so Hydra places its keys under the group.
        return OmegaConf.to_container(cfg[group], resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            [
                Diagnostic(
                    group,
                    list(overrides),
                    f"{group}.compose",
                    str(exc).strip().splitlines()[0],
                    source="command line",
                )
            ]
        ) from None
