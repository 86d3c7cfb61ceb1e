"""The Python face of the Rust engine: the in-process extension and the `rt-engine` binary.

Python code uses this module, never `appliance._engine` directly, so that the extension's
errors map to Python exceptions in one place.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import _engine

ManifestError = _engine.ManifestError
# The extension's crate version and the manifest contract version (`manifest_version`) it reads.
VERSION: str = _engine.__version__
MANIFEST_VERSION: int = _engine.MANIFEST_VERSION


class EngineNotFound(RuntimeError):
    pass


def load_manifest(text: str) -> dict[str, Any]:
    """Validate a manifest with the Rust contract; raises ManifestError naming the fields."""
    return _engine.load_manifest(text)


def validate_manifest(text: str, base: Path | None = None) -> list[dict[str, str]]:
    """The semantic violations of a manifest by the Rust contract (the one implementation of
    the manifest-level rules), each {path, rule, message}; empty when it is valid. With
    `base`, the files it names are checked too. Raises ManifestError for a structural problem
    (JSON, version, hash, a field of the wrong shape)."""
    return _engine.validate_manifest(text, None if base is None else str(base))


def manifest_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_engine.manifest_schema())
    return schema


def engine_binary(root: Path | None = None) -> Path:
    """`$RT_ENGINE_BIN`, else target/{release,debug}/rt-engine under the project, else PATH."""
    env = os.environ.get("RT_ENGINE_BIN")
    if env and Path(env).is_file():
        return Path(env)
    base = root or Path(__file__).resolve().parents[1]
    for profile in ("release", "debug"):
        candidate = base / "target" / profile / "rt-engine"
        if candidate.is_file():
            return candidate
    found = shutil.which("rt-engine")
    if found:
        return Path(found)
    raise EngineNotFound(
        "rt-engine not found: build it with `cargo build -p rt-engine` or set RT_ENGINE_BIN"
    )


def engine_build(binary: Path) -> str | None:
    """`release` or `debug`: the build profile `rt-engine --version` names; None if it names
    none (an older or a stand-in binary) or cannot be run."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for build in ("release", "debug"):
        if f"({build} build)" in out:
            return build
    return None


def check(manifest: Path, *, json_output: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `rt-engine check` on a manifest file."""
    cmd = [str(engine_binary()), "check", "--manifest", str(manifest)]
    if json_output:
        cmd += ["--format", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


BacktestError = _engine.BacktestError
WindowError = _engine.WindowError


def run_backtest(
    manifest_text: str,
    files: list[str],
    progress: Callable[[int, int], None] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    onnx_library: str | os.PathLike[str] | None = None,
    exchange_files: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Replay recorded files (one stream) through the manifest's strategies (GIL released),
    trading in [start_ns, end_ns) of local receive time (UTC ns; None leaves a side open; events
    before the start only build the books). Model strategies run their ONNX models (paths
    relative to the working directory) on `onnx_library`, by default `$ORT_DYLIB_PATH` or the
    onnxruntime wheel's library. Raises ManifestError (a model file missing or changed
    included), WindowError (a window with no events of the data; a BacktestError), ModelError
    (a model or library that cannot be loaded or does not fit) or BacktestError.
    `exchange_files`: for an engine of several exchanges, one stream per exchange (in the
    manifest's name order) instead of `files`, each rebased onto the clock of the stream that
    starts last (the result's `offsets_ns`, by exchange; docs/research.md)."""
    return _engine.run_backtest(
        manifest_text,
        files,
        progress,
        start_ns,
        end_ns,
        _library(onnx_library),
        exchange_files,
    )


def capture_info(path: str) -> dict[str, Any]:
    """Read a capture or native file once: format, symbols, first/last local and exchange
    times (ns, None without events), counts by kind, decode_errors, gaps (depth diffs that do
    not follow the previous one), out_of_order, market (spot/usdm/None). Raises BacktestError
    for a file that cannot be read."""
    return _engine.capture_info(path)


def verify_capture(paths: list[str]) -> dict[str, Any]:
    """Rebuild every instrument's book of a capture and check it against the data's own oracle
    (Binance bookTicker checkpoints, OKX and Kraken checksums). Raises BacktestError for a file
    that cannot be read."""
    return _engine.verify_capture(paths)


def convert_capture(src: str, dst: str) -> dict[str, Any]:
    """Convert a recorded capture to the native event file (fast replay); returns counts and
    the capture's venue."""
    return _engine.convert_capture(src, dst)


RecordingError = _engine.RecordingError


def parity_replay(
    manifest_text: str,
    log_files: list[str],
    md_files: list[list[str]],
    config_diff: list[str],
    keep: int = 200,
    onnx_library: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Replay a flight recording (the decision log's files, each exchange's captures in the
    manifest's exchange order) through the core with the recorded execution reports, and
    compare decision by decision (docs/parity.md). Raises RecordingError for a recording that
    cannot be replayed, ManifestError, ModelError or BacktestError."""
    return _engine.parity_replay(
        manifest_text, log_files, md_files, config_diff, keep, _library(onnx_library)
    )


ModelError = _engine.ModelError


def onnxruntime_library() -> Path | None:
    """The ONNX Runtime shared library of the installed `onnxruntime` wheel
    (`onnxruntime/capi/libonnxruntime.so.<version>`), found without importing onnxruntime;
    None when the wheel is not installed. This is the library Python's `onnxruntime` runs, so
    the engine loads the same one in development; hosts get a copy inside the release."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location, "capi").glob("libonnxruntime.so*"))
        if found:
            return found[-1]
    return None


def _library(library_path: str | os.PathLike[str] | None) -> str | None:
    """The explicit path, else `$ORT_DYLIB_PATH` (left to the engine), else the wheel's."""
    if library_path is not None:
        return str(library_path)
    if os.environ.get("ORT_DYLIB_PATH"):
        return None
    wheel = onnxruntime_library()
    return str(wheel) if wheel else None


def onnx_predict(
    model_path: str | os.PathLike[str],
    rows: Any,
    *,
    library_path: str | os.PathLike[str] | None = None,
    intra_threads: int = 1,
    optimization: str = "all",
) -> list[list[float]]:
    """Evaluate rows (list of rows or 2-D float32 numpy array) one at a time through the
    engine's ONNX path (rt-model), as a strategy does. Raises ModelError."""
    return _engine.onnx_predict(
        str(model_path), rows, _library(library_path), intra_threads, optimization
    )


def onnx_runtime_info(library_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ONNX Runtime library the engine would load (path, version, api_version,
    min_version). Raises ModelError for a missing, foreign or too old library."""
    return _engine.onnx_runtime_info(_library(library_path))


FeatureError = _engine.FeatureError


def compute_features(
    declaration_json: str,
    manifest_text: str,
    files: list[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    every_ns: int | None = None,
    horizons_ns: list[int] | None = None,
    symbol: str | None = None,
) -> dict[str, Any]:
    """Feature rows of one instrument over recorded files (one stream), computed by rt-core's
    feature code in the backtest's replay, the GIL released. A row on every book update, or
    every `every_ns` (multiples since the epoch) in [start_ns, end_ns) of local receive time.

    Returns `names` (feature columns, declaration order), `symbol`, `rows`, `counters`,
    `columns` (ts_ns int64, each feature float32, mid float64; numpy arrays) and `labels`
    (horizon ns -> float64 array: mid(ts + h) - mid(ts), NaN past the data). Raises
    FeatureError (a ValueError) for a bad declaration or request, ManifestError, WindowError
    or BacktestError."""
    import numpy as np

    raw = _engine.compute_features(
        declaration_json,
        manifest_text,
        files,
        start_ns,
        end_ns,
        every_ns,
        list(horizons_ns or []),
        symbol,
    )
    columns: dict[str, Any] = {"ts_ns": np.frombuffer(raw["ts_ns"], dtype="<i8")}
    for name in raw["names"]:
        columns[name] = np.frombuffer(raw["features"][name], dtype="<f4")
    columns["mid"] = np.frombuffer(raw["mid"], dtype="<f8")
    labels = {int(h): np.frombuffer(b, dtype="<f8") for h, b in raw["labels"].items()}
    return {
        "names": list(raw["names"]),
        "symbol": raw["symbol"],
        "rows": int(raw["rows"]),
        "counters": dict(raw["counters"]),
        "columns": columns,
        "labels": labels,
    }
