"""`appliance optimize`: Optuna studies over the engine's Rust core, in worker processes.

Optuna owns the search and the storage: SQLite under `state/studies/` by default, or any
RDB URL (PostgreSQL) that workers on many hosts share. Storage is always an `RDBStorage` with a
heartbeat, so a worker killed mid-trial leaves a trial that the next worker marks FAIL and
retries (`RetryHeartbeatStaleTrialCallback`), never one stuck RUNNING. Each worker process evaluates
trials with a `trial.Evaluator`; the parent only watches the storage (progress bar) and then
runs the walk-forward validation (`walkforward`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.research.study import METRICS, Param, StudyPlan, load_study

HEARTBEAT_S = 2
GRACE_S = 10
MAX_RETRY = 3


class InvalidTrial(Exception):
    """The trial's parameters make a config the compiler refuses (recorded as a FAIL)."""


@dataclass
class Spec:
    """What a worker process needs to rebuild the study (it crosses the process boundary)."""

    root: str
    name: str
    study_overrides: list[str]
    deployment_overrides: list[str]
    storage: str
    n_trials: int
    seed: int


def quiet_optuna() -> None:
    """Optuna's own log and its experimental/deprecation notices stay out of the CLI output
    (the heartbeat options are marked experimental)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\..*")


def load(spec: Spec) -> tuple[StudyPlan, Any]:
    from appliance.research import data

    return load_study(
        Path(spec.root),
        spec.name,
        spec.study_overrides,
        spec.deployment_overrides,
        time_range=lambda files: data.time_range(files, Path(spec.root)),
        parse_time=data.parse_utc_ns,
    )


def default_storage(root: Path, name: str) -> str:
    return f"sqlite:///{(root / 'state' / 'studies' / f'{name}.db').as_posix()}"


def shown_storage(url: str) -> str:
    """A storage URL without its password (never echoed)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL of a storage URL: a PostgreSQL URL without a driver uses psycopg (3),
    the driver the research extra installs (SQLAlchemy's default, psycopg2, is not)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def open_storage(url: str, create_dirs: bool = True) -> Any:
    """Optuna's RDB storage with a heartbeat; an unreachable URL is a diagnostic."""
    import optuna
    import sqlalchemy.exc

    if url.startswith("sqlite:///") and create_dirs:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several local workers write one file: wait for its lock rather than fail at once.
        kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs = {"connect_args": {"connect_timeout": 10}}
    try:
        storage = optuna.storages.RDBStorage(
            engine_url(url),
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        )
        if url.startswith("sqlite"):
            import sqlalchemy

            # A trial writes the file a dozen times (parameters, folds, reports, state): in
            # SQLite's default rollback-journal mode each commit waits for several fsyncs and
            # blocks every reader. WAL with synchronous=NORMAL commits without an fsync (still
            # atomic and consistent; a power cut may lose the last commits, which the heartbeat
            # and resume already handle) and lets workers read while one writes. Local files
            # only, which is what SQLite storage is for.
            sqlalchemy.event.listen(storage.engine, "connect", _sqlite_wal)
            storage.engine.dispose()  # connections made from now on get the pragmas
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            [
                Diagnostic(
                    "--storage",
                    shown_storage(url),
                    "study.storage.reachable",
                    f"cannot open the study storage: {reason}",
                    source="command line",
                )
            ]
        ) from None


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    import sqlite3

    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError:
        pass  # another connection holds a lock while switching: it keeps the current mode
    finally:
        cursor.close()


def make_sampler(plan: StudyPlan, seed: int) -> Any:
    import optuna

    kind = plan.study.sampler.kind
    startup = plan.study.sampler.startup_trials
    if kind == "grid":
        space = {p.key: p.grid() or [] for p in plan.params}
        return optuna.samplers.GridSampler(space, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=startup,
            independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    # Constraints reach TPE through `trial.set_constraint` (see make_objective).
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def make_pruner(plan: StudyPlan) -> Any:
    import optuna

    if plan.study.pruner.kind == "none" or len(plan.study.objectives) > 1:
        return optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    return optuna.pruners.MedianPruner(
        n_startup_trials=5, n_warmup_steps=plan.study.pruner.warmup_folds
    )


def suggest(trial: Any, param: Param) -> Any:
    if param.kind == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(
            param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log
        )
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


def aggregate(metric: str, values: Sequence[float | None]) -> float | None:
    """A metric over several folds (METRICS says how it adds up); None if any fold has none."""
    if not values or any(v is None for v in values):
        return None
    numbers = [float(v) for v in values if v is not None]
    how = METRICS[metric]
    if how == "sum":
        return sum(numbers)
    if how == "max":
        return max(numbers)
    return sum(numbers) / len(numbers)


def make_objective(plan: StudyPlan, evaluator: Any) -> Callable[[Any], Any]:
    import optuna

    objectives = [o.metric for o in plan.study.objectives]

    def objective(trial: Any) -> Any:
        # Every storage write is a transaction: a trial writes its result once, at the end
        # (or when it is pruned), plus one report per fold for the pruner.
        overrides = [p.override(suggest(trial, p)) for p in plan.params]
        try:
            text = evaluator.manifest(overrides)
        except ConfigError as err:
            trial.set_user_attr("diagnostics", [d.to_json() for d in err.diagnostics])
            raise InvalidTrial(
                "; ".join(f"{d.path}: {d.message}" for d in err.diagnostics)
            ) from None
        result: dict[str, Any] = {
            "manifest_sha256": json.loads(text)["content_sha256"],
            "folds": [],
        }
        folds: list[dict[str, Any]] = result["folds"]
        for fold in plan.folds:
            window, _ = evaluator.window(text, fold.train)
            folds.append(window.to_json())
            first = aggregate(objectives[0], [f["metrics"][objectives[0]] for f in folds])
            if len(objectives) == 1 and first is not None:
                trial.report(first, fold.index)
                if trial.should_prune():
                    trial.set_user_attr("result", result)
                    raise optuna.TrialPruned(f"pruned after fold {fold.index}")
        totals = {m: aggregate(m, [f["metrics"][m] for f in folds]) for m in METRICS}
        violations = [c.violation(totals[c.metric]) for c in plan.constraints]
        result |= {"metrics": totals, "constraints": violations}
        trial.set_user_attr("result", result)
        for constraint, violation in zip(plan.constraints, violations, strict=True):
            trial.set_constraint(constraint.text, violation)
        values = [totals[m] for m in objectives]
        if any(v is None for v in values):
            missing = [m for m, v in zip(objectives, values, strict=True) if v is None]
            raise InvalidTrial(f"objective undefined on this data: {', '.join(missing)}")
        return values[0] if len(values) == 1 else values

    return objective


def create_study(plan: StudyPlan, storage: Any, seed: int) -> Any:
    import optuna

    return optuna.create_study(
        study_name=plan.optuna_name(),
        storage=storage,
        directions=list(plan.directions),
        sampler=make_sampler(plan, seed),
        pruner=make_pruner(plan),
        load_if_exists=True,
    )


def worker(spec: Spec) -> None:
    """One worker process: evaluate trials until the study holds `n_trials` finished ones."""
    import optuna
    from optuna.trial import TrialState

    from appliance.research.trial import Evaluator

    quiet_optuna()
    plan, base = load(spec)
    storage = open_storage(spec.storage)
    # Each worker gets its own seed stream (the same for a given worker index and seed).
    index = int(os.environ.get("APPLIANCE_WORKER_INDEX", "0"))
    study = create_study(plan, storage, spec.seed + index)
    evaluator = Evaluator(Path(spec.root), plan, base)
    # Count every trial but those WAITING: a trial retried after its worker died is enqueued
    # as WAITING and must still run.
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    study.optimize(
        make_objective(plan, evaluator),
        callbacks=[optuna.study.MaxTrialsCallback(spec.n_trials, states=states)],
        catch=(InvalidTrial,),
        gc_after_trial=False,
    )


def counted(study: Any) -> list[Any]:
    """The trials that count towards `n_trials`, as the workers count them: all but those
    WAITING (an enqueued retry must still run). A trial left RUNNING by an interrupted run
    counts (it becomes FAIL and is retried), so `--trials N` on resume runs N more."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]


def give_heartbeats(study: Any) -> list[int]:
    """Give a heartbeat to each RUNNING trial that has none; returns their numbers.

    Optuna fails a trial whose heartbeat is stale, but a worker killed after it created its
    trial and before its heartbeat thread's first beat leaves a RUNNING trial with no heartbeat
    at all, which Optuna never fails. Given one now (as its worker would have), it is failed
    after the grace period and retried like any other. A live worker's trial is not disturbed:
    its own heartbeat thread keeps that heartbeat fresh."""
    import sqlalchemy
    from optuna.trial import TrialState

    backend = getattr(study._storage, "_backend", study._storage)
    running = {t._trial_id: t.number for t in study.get_trials(states=(TrialState.RUNNING,))}
    if not running or not hasattr(backend, "record_heartbeat"):
        return []
    query = sqlalchemy.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids")
    query = query.bindparams(sqlalchemy.bindparam("ids", expanding=True))
    with backend.engine.connect() as conn:
        beating = {int(r[0]) for r in conn.execute(query, {"ids": list(running)})}
    orphans = sorted(set(running) - beating)
    for trial_id in orphans:
        backend.record_heartbeat(trial_id)
    return [running[i] for i in orphans]


def run_workers(
    spec: Spec,
    workers: int,
    on_progress: Callable[[list[Any]], None],
    study: Any,
) -> list[int]:
    """Run `workers` worker processes until the study holds `spec.n_trials` trials, and watch
    it (`on_progress`). A worker that dies mid-trial leaves that trial RUNNING with a stopped
    heartbeat: after the grace period it is failed and enqueued again (Optuna's heartbeat and
    `RetryHeartbeatStaleTrialCallback`), and one more worker runs what was enqueued. Returns
    the exit codes of the workers that did not end cleanly. Ctrl-C stops every worker; their
    trials are failed and retried the same way when the study resumes."""
    import optuna
    from optuna.trial import TrialState

    failed: list[int] = []
    count = workers
    while True:
        failed += [c for c in _run_round(spec, count, on_progress, study) if c != 0]
        # Wait until no trial is RUNNING (a trial of a dead worker becomes stale and is failed;
        # live workers elsewhere, sharing the storage, finish theirs).
        while True:
            give_heartbeats(study)
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            on_progress(trials)
            if not any(t.state == TrialState.RUNNING for t in trials):
                break
            time.sleep(1.0)
        waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
        if not waiting or len(failed) > 3 * workers:
            return failed
        spec = Spec(**(asdict(spec) | {"n_trials": len(trials)}))
        count = 1


def _run_round(
    spec: Spec, workers: int, on_progress: Callable[[list[Any]], None], study: Any
) -> list[int]:
    procs = []
    for i in range(workers):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "appliance.research.optimize", json.dumps(asdict(spec))],
                env=dict(os.environ) | {"APPLIANCE_WORKER_INDEX": str(i)},
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        while any(p.poll() is None for p in procs):
            on_progress(study.get_trials(deepcopy=False))
            time.sleep(0.5)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        raise
    return [int(p.returncode) for p in procs]


def _main(argv: Sequence[str]) -> int:
    spec = Spec(**json.loads(argv[0]))
    # The parent owns Ctrl-C (a terminal sends SIGINT to the whole process group) and stops
    # the workers with SIGTERM: the trial in progress is left to its heartbeat, so a resumed
    # study fails and retries it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Ended at once, like a crash: the trial in progress stays RUNNING with a stopped heartbeat
    # (a clean exit would let Optuna record it as FAIL, and a FAIL is never retried).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    try:
        worker(spec)
    except ConfigError as err:
        print(f"worker: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
