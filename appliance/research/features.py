"""Feature rows for research: a declared feature set (conf/features/<name>.yaml) computed over
recorded data by the engine's own feature code (rt-core, through appliance.engine), as a pandas
DataFrame: `ts_ns`, one float32 column per feature in declaration order, `mid`, and optional
labels `mid_move_<horizon>` (mid(ts + horizon) - mid(ts), NaN past the data).

Nothing is computed here: values come from Rust, which is what a live strategy computes, so a
model is trained on exactly what it will see. Replays use the native cache
(appliance.research.data), the deployment's manifest for the instrument (tick size, book rule)
and the same UTC windows as backtests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from appliance import engine
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.featureset import FeatureSource, load_set
from appliance.config.schema import FeatureSetSpec
from appliance.research import data as data_mod
from appliance.research.study import duration_ns

NS = 1_000_000_000


def duration_text(ns: int) -> str:
    """`1s`, `100ms`, `250us` or `7ns`: the shortest exact unit."""
    for unit, size in (("h", 3600 * NS), ("min", 60 * NS), ("s", NS), ("ms", 10**6), ("us", 10**3)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def label_column(horizon_ns: int) -> str:
    return f"mid_move_{duration_text(horizon_ns)}"


def parse_duration(text: str | int, path: str) -> int:
    """ns from `100ms`, `1s`, `2min` (or an int of ns); ConfigError naming `path` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        ns = text
    else:
        try:
            ns = duration_ns(str(text))
        except ValueError:
            ns = 0
    if ns <= 0:
        raise ConfigError(
            [
                Diagnostic(
                    path,
                    text,
                    "features.duration",
                    "a positive duration: <n>ms, <n>s, <n>min, <n>h or <n>d, e.g. 100ms",
                    "command line",
                )
            ]
        )
    return ns


def run_engine(
    features: FeatureSource,
    manifest_text: str,
    natives: Sequence[Path],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    every_ns: int | None = None,
    horizons_ns: Sequence[int] = (),
    symbol: str | None = None,
) -> pd.DataFrame:
    """One engine call: the rows as a DataFrame (attrs: symbol, features, counters, seconds)."""
    started = time.perf_counter()
    try:
        raw = engine.compute_features(
            features.declaration_json(),
            manifest_text,
            [str(p) for p in natives],
            start_ns,
            end_ns,
            every_ns,
            list(horizons_ns),
            symbol,
        )
    except engine.FeatureError as err:
        raise ConfigError(
            [Diagnostic("features", None, "features.engine", str(err), features.source)]
        ) from None
    except engine.WindowError as err:
        raise ConfigError(
            [Diagnostic("--start", None, "window.overlaps_data", str(err), "command line")]
        ) from None
    except engine.BacktestError as err:
        raise ConfigError(
            [Diagnostic("--symbol", symbol, "features.data", str(err), "command line")]
        ) from None
    seconds = time.perf_counter() - started
    columns = dict(raw["columns"])
    for h, values in raw["labels"].items():
        columns[label_column(h)] = values
    frame = pd.DataFrame(columns, copy=True)
    frame.attrs.update(
        symbol=raw["symbol"],
        features=raw["names"],
        counters=raw["counters"],
        seconds=seconds,
        feature_set=features.name,
    )
    return frame


def _manifest_text(root: Path, overrides: Sequence[str], engine_id: str | None) -> str:
    from appliance.config.compiler import compile_config
    from appliance.research.cli_backtest import _pick_engine

    compiled = compile_config(root, list(overrides))
    text: str = _pick_engine(compiled, engine_id).text
    return text


def compute(
    features: str | FeatureSetSpec,
    *,
    overrides: Sequence[str] = (),
    data: Sequence[Path] | None = None,
    start: str | None = None,
    end: str | None = None,
    every: str | int | None = None,
    horizons: Sequence[str | int] = (),
    symbol: str | None = None,
    engine_id: str | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """Feature rows of a deployment's instrument over recorded data, as a DataFrame.

    `features`: a set name in conf/features/ (or a YAML path), or a FeatureSetSpec.
    `overrides`: Hydra overrides choosing the deployment (its manifest gives the instrument:
    `symbol`, else its first strategy's first instrument; the tick size; the book rule).
    `data`: captures or native files, one stream (default: the sim venue's capture); replayed
    from the native cache. `start`/`end`: UTC times (data.parse_utc). `every`: `100ms`-style
    interval (default: a row on every book update). `horizons`: label horizons (`1s`, `10s`).
    Raises ConfigError (diagnostics) for any user error.
    """
    from appliance.config.compose import find_root
    from appliance.research.cli_backtest import _default_data

    project = (root or find_root()).resolve()
    if isinstance(features, FeatureSetSpec):
        source = FeatureSource("features", features, "(python)")
    else:
        source = load_set(project, features)
    every_ns = None if every is None else parse_duration(every, "--every")
    horizons_ns = [parse_duration(h, "--horizon") for h in horizons]
    window = data_mod.parse_window(start, end)
    manifest_text = _manifest_text(project, overrides, engine_id)
    files = list(data) if data else _default_data(project, json.loads(manifest_text))
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise ConfigError(
            [Diagnostic("--data", m, "features.data", "no such file") for m in missing]
        )
    natives = data_mod.prepare(project, files, window)
    return run_engine(
        source,
        manifest_text,
        natives,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        every_ns=every_ns,
        horizons_ns=horizons_ns,
        symbol=symbol,
    )
