"""One trial of a study: compose -> compile (the deployment compiler) -> backtest each window.

An `Evaluator` lives in one worker process. It composes the study's deployment once with Hydra
and applies each trial's overrides to that tree (`compose.with_values`, the same result Hydra
gives; anything but plain value changes is composed in full), compiles with the same compiler
as `appliance compile`, and replays the windows on the engine's Rust core from the native event
files, converted once per capture (`data.native_for`), never from JSON per trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.compiler import compile_composed, git_state_of
from appliance.config.compose import Composed, compose, with_values
from appliance.config.diagnostics import ConfigError
from appliance.research.study import METRICS, StudyPlan


@dataclass
class WindowResult:
    """The metrics of one backtest window, plus what the deflated Sharpe ratio needs."""

    metrics: dict[str, float | None]
    # Per-bucket (not annualised) Sharpe ratio of the window's P&L, its sample size and the
    # skewness and (non-excess) kurtosis of the bucket P&L.
    sr: float | None
    n: int
    skew: float
    kurt: float
    manifest_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "sr": self.sr,
            "n": self.n,
            "skew": self.skew,
            "kurt": self.kurt,
            "manifest_sha256": self.manifest_sha256,
        }


class Evaluator:
    """Compiles trials of one study and backtests them over windows of its data."""

    def __init__(self, root: Path, plan: StudyPlan, base: Composed):
        from appliance.research import data

        self.root = root
        self.plan = plan
        self.base = base
        self.git = git_state_of(root)
        self.files = [data.native_for(root, root / f) for f in plan.files]

    def manifest(self, overrides: Sequence[str]) -> str:
        """The manifest text of the studied engine with `overrides`; raises ConfigError."""
        composed = with_values(self.base, overrides)
        if composed is None:
            composed = compose(
                self.root,
                [
                    f"deployment={self.plan.study.deployment}",
                    *self.plan.fixed_overrides,
                    *list(overrides),
                ],
            )
        compiled = compile_composed(composed, self.git)
        wanted = self.plan.study.engine
        manifests = {m.engine_id: m for m in compiled.manifests}
        if wanted is None and len(manifests) == 1:
            return next(iter(manifests.values())).text
        if wanted in manifests:
            return manifests[wanted].text
        from appliance.config.diagnostics import Diagnostic

        raise ConfigError(
            [
                Diagnostic(
                    "engine",
                    wanted,
                    "study.engine",
                    f"choose one of the deployment's engines: {sorted(manifests)}",
                    source=self.plan.source,
                )
            ]
        )

    def window(self, manifest_text: str, window: tuple[int, int]) -> tuple[WindowResult, Any]:
        """Backtest one [start, end) window; returns its metrics and the BacktestResult."""
        from appliance.research import backtest

        result = backtest.run(
            manifest_text,
            self.files,
            start_ns=window[0],
            end_ns=window[1],
            bucket=self.plan.study.bucket,
        )
        metrics = {name: _number(result.summary.get(name)) for name in METRICS}
        sr, n, skew, kurt = bucket_stats(result.equity, self.plan.study.bucket)
        sha = json.loads(manifest_text)["content_sha256"]
        return WindowResult(metrics, sr, n, skew, kurt, sha), result


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, dict | list):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def bucket_stats(equity: Any, bucket: str) -> tuple[float | None, int, float, float]:
    """(per-bucket Sharpe ratio, number of buckets, skewness, kurtosis) of the bucket P&L
    (`metrics.bucket_pnl`, the same series the summary's Sharpe ratio is computed from)."""
    import numpy as np

    from appliance.research.metrics import bucket_pnl

    pnl = bucket_pnl(equity, bucket).to_numpy(dtype=float)
    n = len(pnl)
    if n < 2:
        return None, n, 0.0, 3.0
    mean = float(np.mean(pnl))
    std = float(np.std(pnl, ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return None, n, 0.0, 3.0
    centred = pnl - mean
    m2 = float(np.mean(centred**2))
    skew = float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0
    kurt = float(np.mean(centred**4)) / m2**2 if m2 > 0 else 3.0
    return mean / std, n, skew, kurt
