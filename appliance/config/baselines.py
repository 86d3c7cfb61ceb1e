"""Anomaly baselines at compile time: an engine's `anomaly.baseline` file (written by
`appliance baseline`, appliance/research/baseline.py) becomes the manifest's `engine.anomaly`,
after checks no single field can see:

- the file exists and is a baseline (every field, version 1);
- it was derived for this deployment's engine, at the market speed its venues run at now (a
  sim replaying at another speed would make every rate figure wrong);
- every figure is one the engine measures, each with low <= high (the engine's own validator
  checks these again: rule `engine.anomaly`).

Each problem is a diagnostic naming `deployment.engines.<engine>.anomaly.baseline`, rule
`engine.anomaly_baseline`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from appliance.config.diagnostics import Diagnostic
from appliance.config.models import sha256_file
from appliance.config.schema import (
    ANOMALY_FIGURES,
    ANOMALY_MD_RATE,
    AnomalyConfig,
    AnomalyRange,
    Dec,
    Exchange,
    PosDec,
    Strict,
    format_decimal,
)

BASELINE_VERSION = 1
RULE = "engine.anomaly_baseline"


class Baseline(Strict):
    """A baseline file: the range of each figure over the windows of a backtest."""

    version: Literal[1]
    deployment: Annotated[str, Field(min_length=1)]
    engine: Annotated[str, Field(min_length=1)]
    # The market time one wall second of the engine spans (a sim's replay speed; 1 on a venue).
    speed: PosDec
    window_s: Annotated[int, Field(ge=5, le=86400)]
    data: list[str] = Field(min_length=1)
    # The manifest backtested (the engine's, with its anomaly section off), and the hash of
    # what its figures depend on (`trading_sha256`): a baseline of another config is stale.
    backtest_manifest_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    trading_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    windows: Annotated[int, Field(ge=1)]
    tolerance: Annotated[Dec, Field(ge=0)]
    derivation: Annotated[str, Field(min_length=1)]
    figures: dict[str, AnomalyRange] = Field(min_length=1)


def market_speed(sims: Iterable[Decimal | None]) -> Decimal | None:
    """The market time one wall second of an engine spans, from its exchanges' sim replay
    speeds (None: a real venue, speed 1); None when they differ (no one speed fits)."""
    speeds = {Decimal(1) if s is None else s for s in sims}
    return speeds.pop() if len(speeds) == 1 else None


def trading_sha256(manifest: Mapping[str, Any]) -> str:
    """The hash of what a baseline's figures depend on, from a manifest (or its body): the
    strategies, the risk limits and the exchanges, without their endpoints and credentials
    (which differ between hosts and test runs but do not change what is traded)."""
    exchanges = {
        name: {k: v for k, v in ex.items() if k not in ("endpoints", "credentials")}
        for name, ex in manifest["exchanges"].items()
    }
    doc = {"strategies": manifest["strategies"], "risk": manifest["risk"], "exchanges": exchanges}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def stale(
    deployment: str, engine_id: str, cfg: AnomalyConfig, recorded: str, now: str
) -> list[Diagnostic]:
    """The diagnostic of a baseline derived from another trading config than the one compiled
    now (`recorded` and `now` are `trading_sha256` values)."""
    if recorded == now:
        return []
    return [
        Diagnostic(
            f"deployment.engines.{engine_id}.anomaly.baseline",
            cfg.baseline,
            RULE,
            f"{cfg.baseline} was derived from another trading config (strategies, risk or "
            f"exchanges changed since: {recorded[:12]} then, {now[:12]} now): derive it again "
            f"with `appliance baseline deployment={deployment} --engine {engine_id}`",
        )
    ]


# The figure whose range is declared by the config (`engine.metrics.tick_to_order_p99_alert_us`)
# rather than measured in the backtest (appliance/research/baseline.py).
LATENCY_FIGURE = "tick_to_order_p99_us"


def known_figures(exchanges: list[str]) -> list[str]:
    return [*ANOMALY_FIGURES, *(f"{ANOMALY_MD_RATE}{x}" for x in exchanges)]


def resolve(
    root: Path,
    deployment: str,
    engine_id: str,
    cfg: AnomalyConfig,
    exchanges: Mapping[str, Exchange],
    latency_bound_us: int,
) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """The manifest's `engine.anomaly` for one engine, or the diagnostics that stop it.
    `latency_bound_us` is the engine's `metrics.tick_to_order_p99_alert_us`: the range of the
    baseline's `tick_to_order_p99_us` was declared from it, so a baseline derived under
    another bound is stale."""
    path = f"deployment.engines.{engine_id}.anomaly.baseline"

    def problem(message: str) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(path, cfg.baseline, RULE, message)]

    where = root / cfg.baseline
    if not where.is_file():
        return problem(
            f"{cfg.baseline} does not exist: derive it with `appliance baseline "
            f"deployment={deployment} --engine {engine_id}` (docs/operations.md)"
        )
    try:
        baseline = Baseline.model_validate(json.loads(where.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(f"{cfg.baseline} cannot be read as JSON: {exc}")
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "(top)"
        return problem(f"{cfg.baseline} is not a baseline: {at}: {first['msg']}")
    if (baseline.deployment, baseline.engine) != (deployment, engine_id):
        return problem(
            f"{cfg.baseline} was derived for engine {baseline.engine!r} of deployment "
            f"{baseline.deployment!r}, not {engine_id!r} of {deployment!r}"
        )
    speed = market_speed(ex.sim.speed if ex.sim else None for ex in exchanges.values())
    if speed is not None and speed != baseline.speed:
        return problem(
            f"{cfg.baseline} was derived at market speed {format_decimal(baseline.speed)}, but "
            f"this engine's venues run at {format_decimal(speed)} (a sim's replay speed): "
            f"derive it again with `appliance baseline deployment={deployment} --engine "
            f"{engine_id}`"
        )
    known = known_figures(list(exchanges))
    for name, r in baseline.figures.items():
        if name not in known:
            return problem(
                f"{cfg.baseline}: figure {name!r} is not one this engine measures "
                f"(known: {', '.join(known)})"
            )
        if r.low > r.high:
            return problem(
                f"{cfg.baseline}: figure {name!r} has low {format_decimal(r.low)} above high "
                f"{format_decimal(r.high)}"
            )
    latency = baseline.figures.get(LATENCY_FIGURE)
    if latency is not None and latency.high != latency_bound_us:
        return problem(
            f"{cfg.baseline}: its {LATENCY_FIGURE} range ends at the bound declared when it was "
            f"derived, {format_decimal(latency.high)} us, but engine.metrics."
            f"tick_to_order_p99_alert_us is now {latency_bound_us} us: derive it again with "
            f"`appliance baseline deployment={deployment} --engine {engine_id}`"
        )
    return {
        # Checked against the rendered manifest (`stale`), then dropped from the manifest.
        "trading_sha256": baseline.trading_sha256,
        "baseline": cfg.baseline,
        "baseline_sha256": sha256_file(where),
        "window_s": baseline.window_s,
        "derivation": baseline.derivation,
        "figures": {
            n: {"low": format_decimal(r.low), "high": format_decimal(r.high)}
            for n, r in sorted(baseline.figures.items())
        },
    }, []
