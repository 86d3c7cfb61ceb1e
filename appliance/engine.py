"""The Python face of the Rust engine: the in-process extension and the `rt-engine` binary.

Python code uses this module, never `appliance._engine` directly, so that the extension's
errors map to Python exceptions in one place.
"""

from __future__ import annotations

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
) -> dict[str, Any]:
    """Replay recorded files (one stream) through the manifest's strategies (GIL released),
    trading in [start_ns, end_ns) of local receive time (UTC ns; None leaves a side open; events
    before the start only build the books). Raises ManifestError, WindowError (a window with no
    events of the data; a BacktestError) or BacktestError."""
    return _engine.run_backtest(manifest_text, files, progress, start_ns, end_ns)


def capture_info(path: str) -> dict[str, Any]:
    """Read a capture or native file once: format, symbols, first/last local and exchange
    times (ns, None without events), counts by kind, decode_errors, gaps (depth diffs that do
    not follow the previous one), out_of_order, market (spot/usdm/None). Raises BacktestError
    for a file that cannot be read."""
    return _engine.capture_info(path)


def convert_capture(src: str, dst: str) -> dict[str, int]:
    """Convert a recorded capture to the native event file (fast replay); returns counts."""
    return _engine.convert_capture(src, dst)
