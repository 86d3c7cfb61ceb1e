"""Bench: `appliance optimize study=mm_paper_local` on the bundled data (a bench, not a test).

1. Throughput: the whole command (`--trials K --no-report`, a fresh SQLite storage each) in a
   temporary copy of the project, with 1 and then 2 workers: trials per minute of wall time
   (everything: start-up, the trials, walk-forward validation, the overlay), and each trial's
   duration as the storage recorded it (datetime_complete - datetime_start), p50/p99.
2. Where a trial's time goes, in process (the same objective, sampler and storage the workers
   use): composing and compiling its manifest (`Evaluator.manifest`), the Rust replay
   (`engine.run_backtest`), the result to DataFrames and the summary (`backtest.from_raw`),
   the rest of each window (bucket statistics), and the rest (Optuna's sampling and storage
   writes, the objective's bookkeeping). Goal: everything but the Rust replay <= 10%.
3. JSON parses: every call that reads the JSON capture (`convert_capture`, `capture_info` or
   `run_backtest` on the .gz rather than its native file) is logged by every process (workers
   included, through a sitecustomize); the study must parse the capture at most once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The machine line and percentiles every bench script prints (bench/ is on sys.path when run).
from compile_bench import machine, percentile

ROOT = Path(__file__).resolve().parents[1]
TRIALS = int(os.environ.get("BENCH_TRIALS", "40"))
INPROC_TRIALS = int(os.environ.get("BENCH_INPROC_TRIALS", "30"))
STUDY = "mm_paper_local"
CAPTURE = "data/binance/spot_btcusdt_20240808.gz"

# Imported by every Python process started with PYTHONPATH=<dir holding it>: logs each call
# that would parse a JSON capture (a file that is not a native event file).
SITECUSTOMIZE = """
import os
from pathlib import Path

import appliance.engine as _e

_LOG = os.environ["BENCH_PARSE_LOG"]


def _json(path):
    with open(path, "rb") as f:
        return f.read(8) != b"PYRTEVT\\x01"


def _wrap(name, paths):
    real = getattr(_e, name)

    def wrapper(*args, **kwargs):
        for p in paths(args):
            if _json(p):
                with open(_LOG, "a") as log:
                    log.write(f"{os.getpid()} {name} {Path(p).name}\\n")
        return real(*args, **kwargs)

    setattr(_e, name, wrapper)


_wrap("convert_capture", lambda a: [a[0]])
_wrap("capture_info", lambda a: [a[0]])
_wrap("run_backtest", lambda a: list(a[1]))
"""


def copy_project(into: Path) -> Path:
    root = into / "project"
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("tuned"))
    (root / CAPTURE).parent.mkdir(parents=True)
    shutil.copy(ROOT / CAPTURE, root / CAPTURE)
    return root


def trial_seconds(url: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (summary,) = optuna.get_all_study_summaries(url)
    study = optuna.load_study(study_name=summary.study_name, storage=url)
    return [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.trials
        if t.datetime_complete is not None and t.datetime_start is not None
    ]


def throughput(root: Path, workers: int, env: dict[str, str]) -> dict[str, Any]:
    url = f"sqlite:///{root}/state/studies/bench_w{workers}.db"
    cmd = [sys.executable, "-m", "appliance.cli", "optimize", f"study={STUDY}",
           "--trials", str(TRIALS), "--workers", str(workers), "--storage", url,
           "--no-report", "--format", "json", "--root", str(root)]  # fmt: skip
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, check=False)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"optimize failed ({run.returncode}): {run.stderr[-2000:]}")
    out = json.loads(run.stdout)
    durations = trial_seconds(url)
    return {"wall": wall, "trials": out["trials"], "durations": durations}


class Timer:
    """Wraps `owner.name` to add up the time spent in it."""

    def __init__(self, owner: Any, name: str):
        self.samples: list[float] = []
        self.total = 0.0
        real: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.total += spent
                self.samples.append(spent)

        setattr(owner, name, timed)


def in_process(root: Path) -> dict[str, Any]:
    """One worker's loop in this process, with each part of a trial timed."""

    from appliance import engine
    from appliance.research import backtest, optimize, trial

    optimize.quiet_optuna()
    spec = optimize.Spec(str(root), STUDY, [], [], "", INPROC_TRIALS, 7)
    plan, base = optimize.load(spec)
    storage = optimize.open_storage(f"sqlite:///{root}/state/studies/bench_inproc.db")
    study = optimize.create_study(plan, storage, plan.study.seed)
    evaluator = trial.Evaluator(root, plan, base)
    timers = {
        "manifest": Timer(trial.Evaluator, "manifest"),
        "window": Timer(trial.Evaluator, "window"),
        "engine": Timer(engine, "run_backtest"),
        "from_raw": Timer(backtest, "from_raw"),
    }
    objective = make_timed(optimize.make_objective(plan, evaluator))
    per_trial: list[float] = []

    def note(_study: Any, _trial: Any) -> None:
        per_trial.append(time.perf_counter() - note.start)  # type: ignore[attr-defined]
        note.start = time.perf_counter()  # type: ignore[attr-defined]

    note.start = time.perf_counter()  # type: ignore[attr-defined]
    start = time.perf_counter()
    study.optimize(
        objective.run,
        n_trials=INPROC_TRIALS,
        callbacks=[note],
        catch=(optimize.InvalidTrial,),
        gc_after_trial=False,
    )
    total = time.perf_counter() - start
    return {
        "total": total,
        "per_trial": per_trial,
        "objective": objective.total,
        "windows": len(timers["engine"].samples),
        "folds": len(plan.folds),
        "timers": timers,
        "states": [t.state.name for t in study.trials],
    }


class make_timed:
    def __init__(self, objective: Callable[[Any], Any]):
        self.objective = objective
        self.total = 0.0

    def run(self, trial: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.objective(trial)
        finally:
            self.total += time.perf_counter() - start


def main() -> int:
    print(f"appliance optimize study={STUDY} on {CAPTURE}")
    print(f"  machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="optimize-bench-") as tmp:
        root = copy_project(Path(tmp))
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        parse_log = Path(tmp) / "parses.log"
        parse_log.touch()
        env = dict(os.environ) | {
            "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
            "BENCH_PARSE_LOG": str(parse_log),
        }
        print(f"\n1. throughput: --trials {TRIALS} --no-report, fresh SQLite storage each run")
        for workers in (1, 2):
            r = throughput(root, workers, env)
            d = r["durations"]
            print(
                f"  --workers {workers}: {r['wall']:.1f} s wall -> "
                f"{TRIALS / r['wall'] * 60:.0f} trials/min (whole command); trials {r['trials']}; "
                f"trial duration p50 {percentile(d, 0.5) * 1000:.0f} ms "
                f"p99 {percentile(d, 0.99) * 1000:.0f} ms (in storage, n={len(d)})"
            )
        parses = parse_log.read_text().splitlines()
        natives = sorted(p.name for p in (root / "state/data/native").glob("*.native"))
        print("\n3. JSON parses of the capture over both runs (every process, workers included):")
        print(f"  {len(parses)} call(s) on JSON: {parses}; native cache files: {natives}")

        from appliance.research import data

        before = data.conversions
        r = in_process(root)
        timers = r["timers"]
        n = len(r["per_trial"])
        total = r["total"]
        engine_s = timers["engine"].total
        from_raw_s = timers["from_raw"].total
        manifest_s = timers["manifest"].total
        window_rest = timers["window"].total - engine_s - from_raw_s
        objective_rest = r["objective"] - timers["window"].total - manifest_s
        optuna_s = total - r["objective"]
        print(
            f"\n2. one worker in process: {n} trials ({', '.join(sorted(set(r['states'])))}), "
            f"{r['windows']} windows ({r['folds']} folds a trial), {total:.1f} s, "
            f"trial p50 {percentile(r['per_trial'], 0.5) * 1000:.0f} ms"
        )
        rows = [
            ("compose + compile (Evaluator.manifest)", manifest_s, timers["manifest"].samples),
            ("Rust replay (engine.run_backtest)", engine_s, timers["engine"].samples),
            ("result to DataFrames + summary (from_raw)", from_raw_s, timers["from_raw"].samples),
            ("rest of the windows (bucket stats)", window_rest, None),
            ("objective: sampling, pruning, writes", objective_rest, None),
            ("Optuna (sampling, storage, heartbeat)", optuna_s, None),
        ]
        for label, spent, samples in rows:
            p50 = f"p50 {percentile(samples, 0.5) * 1000:7.1f} ms/call" if samples else " " * 20
            print(
                f"  {label:<44} {spent / n * 1000:7.1f} ms/trial  {p50}  "
                f"{spent / total * 100:5.1f}% of the trial"
            )
        outside = (total - engine_s) / total * 100
        print(f"  outside the Rust replay: {outside:.1f}% of the trial (goal <= 10%)")
        print(f"  conversions in this process: {data.conversions - before} (the cache is warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
