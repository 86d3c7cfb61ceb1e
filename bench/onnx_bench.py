"""Bench: one-row ONNX inference, Rust (rt-model's `predict`, timed in Rust) against Python's
`onnxruntime` `session.run`, side by side in one run on the same models and the same rows.

Models: a gradient-boosted tree ensemble (scikit-learn, 100 trees of depth 3, 16 features) and
an MLP 64 -> 64 -> 64 -> 1, exported with skl2onnx, plus any `--model PATH` (e.g. a trained
models/<name>/model.onnx). Both sides: one intra-op thread, all graph optimisations, the same
ONNX Runtime library (the wheel's), 2,000 warm-up calls, then N timed calls of one row each
(rows cycled from 1,000 random ones); p50/p99 per call. The Rust side runs as a bench binary
(`cargo bench -p rt-model --bench onnx`) so no PyO3 crossing is counted.
Goals (issue 9): Rust p50 <= 5 us, p99 <= 15 us, and at least 2x faster than Python's call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime  # type: ignore[import-untyped]

# The machine line every bench script prints (bench/ is on sys.path when run).
from compile_bench import machine
from skl2onnx import to_onnx  # type: ignore[import-untyped]
from sklearn.ensemble import GradientBoostingRegressor  # type: ignore[import-untyped]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from sklearn.neural_network import MLPRegressor  # type: ignore[import-untyped]

from appliance import engine

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2_000


def build_models(out: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 64)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + np.tanh(x[:, 2] * x[:, 3])).astype(np.float32)
    tree = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0)
    tree.fit(x[:, :16], y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=30, random_state=0).fit(x, y)
    paths = [out / "gbt_100x3_16.onnx", out / "mlp_64x64x64x1.onnx"]
    paths[0].write_bytes(to_onnx(tree, x[:1, :16]).SerializeToString())
    paths[1].write_bytes(to_onnx(mlp, x[:1]).SerializeToString())
    return paths


def python_side(path: Path, rows: np.ndarray, calls: int) -> dict[str, float]:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    one_row = [rows[i : i + 1] for i in range(len(rows))]
    for i in range(WARMUP):
        session.run(None, {name: one_row[i % len(rows)]})
    samples = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        feed = {name: one_row[i % len(rows)]}
        start = clock()
        session.run(None, feed)
        samples[i] = clock() - start
    return {
        "p50_ns": float(np.percentile(samples, 50)),
        "p99_ns": float(np.percentile(samples, 99)),
    }


def rust_side(pairs: list[tuple[Path, Path]], library: Path, calls: int) -> list[dict[str, float]]:
    cmd = ["cargo", "bench", "--quiet", "-p", "rt-model", "--bench", "onnx", "--"]
    cmd += ["--library", str(library), "--calls", str(calls)]
    for model, rows in pairs:
        cmd += [str(model), str(rows)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"rust bench failed ({done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--model", type=Path, action="append", default=[])
    args = parser.parse_args()
    library = engine.onnxruntime_library()
    if library is None:
        raise SystemExit("onnxruntime is not installed (research extra)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # cargo runs the bench binary in the crate directory: pass absolute paths.
        models = build_models(out) + [m.resolve() for m in args.model]
        pairs, python = [], []
        rng = np.random.default_rng(5)
        for model in models:
            width = int(onnxruntime.InferenceSession(str(model)).get_inputs()[0].shape[1])
            rows = rng.normal(size=(1000, width)).astype(np.float32)
            rows_file = out / f"{model.stem}.rows.f32"
            rows_file.write_bytes(rows.astype("<f4").tobytes())
            pairs.append((model, rows_file))
            python.append(python_side(model, rows, args.calls))
        rust = rust_side(pairs, library, args.calls)
    print(f"machine: {machine()}")
    print(f"onnxruntime {onnxruntime.__version__} ({library.name}), ort =2.0.0-rc.15 load-dynamic")
    print(f"{args.calls} timed one-row calls per side after {WARMUP} warm-up, 1 intra-op thread")
    header = f"{'model':<24} {'in':>3} {'rust p50':>9} {'rust p99':>9} {'py p50':>9} {'py p99':>9}"
    print(header + f" {'x p50':>6}  goals (p50<=5us, p99<=15us, >=2x)")
    all_met = True
    for model, r, p in zip(models, rust, python, strict=True):
        speedup = p["p50_ns"] / r["p50_ns"]
        met = r["p50_ns"] <= 5_000 and r["p99_ns"] <= 15_000 and speedup >= 2.0
        all_met &= met
        print(
            f"{model.stem:<24} {r['input_width']:>3} {r['p50_ns'] / 1e3:>7.2f}us "
            f"{r['p99_ns'] / 1e3:>7.2f}us {p['p50_ns'] / 1e3:>7.2f}us {p['p99_ns'] / 1e3:>7.2f}us "
            f"{speedup:>5.1f}x  {'met' if met else 'NOT met'}"
        )
    print("all goals met" if all_met else "some goals not met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
