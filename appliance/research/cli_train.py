"""`appliance train model=NAME [model.KEY=VALUE ...] [deployment overrides]`: features on the
Rust core, walk-forward training and evaluation, ONNX export checked against the trained model
(Python onnxruntime and the engine's own Rust inference), `models/<name>/`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.files import write_atomic
from appliance.research.cli_optimize import split_overrides


def run(root: Path, args: Sequence[str], out_dir: Path | None, as_json: bool) -> None:
    import numpy as np

    from appliance import engine
    from appliance.config.featureset import load_set
    from appliance.research import data, features
    from appliance.research import model as m

    name, spec_overrides, deployment_overrides = split_overrides(args, "model")
    spec = m.load_spec(root, name, spec_overrides)
    source = f"conf/model/{name}.yaml"
    feature_set = load_set(root, spec.features)
    files = [root / f for f in spec.data.files]
    missing = [f for f in spec.data.files if not (root / f).is_file()]
    if missing:
        raise ConfigError(
            [
                Diagnostic(f"data.files[{i}]", f, "model.data.exists", "no such file", source)
                for i, f in enumerate(spec.data.files)
                if f in missing
            ]
        )
    start, end = data.time_range(files, root)
    if spec.data.start is not None:
        start = max(start, data.parse_utc(spec.data.start))
    if spec.data.end is not None:
        end = min(end, data.parse_utc(spec.data.end))
    folds = m.folds_for(spec, (start, end))
    if not folds:
        raise ConfigError(
            [
                Diagnostic(
                    "walk_forward",
                    spec.walk_forward.model_dump(),
                    "model.folds.fit_data",
                    f"no fold fits the data ({data.format_utc(start)} to {data.format_utc(end)})",
                    source,
                )
            ]
        )
    frame = features.compute(
        feature_set.spec,
        overrides=[f"deployment={spec.deployment}", *deployment_overrides],
        data=files,
        start=data.format_utc(start),
        end=data.format_utc(end),
        every=spec.sample_every,
        horizons=[spec.label.horizon],
        engine_id=spec.engine,
        root=root,
    )
    label = features.label_column(m.horizon_ns(spec))
    names = [c for c in frame.columns if c not in ("ts_ns", "mid", label)]
    ts = frame["ts_ns"].to_numpy()
    results: list[m.FoldMetrics] = []
    trained: Any = None
    last_test: Any = None
    for fold in folds:
        train_rows = frame[(ts >= fold.train[0]) & (ts < fold.train[1])]
        test_rows = frame[(ts >= fold.test[0]) & (ts < fold.test[1])]
        x, y = m.make_xy(train_rows, names, spec)
        xt, yt = m.make_xy(test_rows, names, spec)
        if len(y) < 10 or (spec.label.kind == "direction" and len(set(y.tolist())) < 2):
            raise ConfigError(
                [
                    Diagnostic(
                        "walk_forward.train",
                        spec.walk_forward.train,
                        "model.train.rows",
                        f"fold {fold.index}'s training window holds {len(y)} labelled rows "
                        "(and both classes for a direction model): too few to train",
                        source,
                    )
                ]
            )
        estimator = m.build_estimator(spec).fit(x, y)
        metrics = m.evaluate(m.predict(estimator, xt, spec), yt, spec)
        in_sample = m.evaluate(m.predict(estimator, x, spec), y, spec)
        metrics |= {f"train_{k}": v for k, v in in_sample.items()}
        results.append(m.FoldMetrics(fold.index, fold.train, fold.test, len(y), len(yt), metrics))
        trained, last_test = estimator, xt
    assert trained is not None
    onnx_bytes = m.to_onnx(trained, len(names), spec)
    check_rows = last_test if len(last_test) else m.make_xy(frame, names, spec)[0][:1000]
    expected = np.asarray(m.predict(trained, check_rows, spec), dtype=np.float64)
    python_out = np.asarray(m.onnx_signal(onnx_bytes, check_rows), dtype=np.float64)
    target = (out_dir or root / "models" / name).resolve()
    target.mkdir(parents=True, exist_ok=True)
    onnx_path = target / "model.onnx"
    write_atomic(onnx_path, onnx_bytes)
    rust_out = np.asarray(
        [row[0] for row in engine.onnx_predict(str(onnx_path), check_rows)], dtype=np.float64
    )
    parity = float(np.max(np.abs(expected - python_out))) if len(expected) else 0.0
    rust_parity = float(np.max(np.abs(python_out - rust_out))) if len(expected) else 0.0
    digests = [{"file": f, "sha256": data.sha256_file(root / f)} for f in spec.data.files]
    text = m.model_json(
        name=name,
        spec=spec,
        features=feature_set.spec.model_dump(mode="json")["features"],
        feature_names=names,
        onnx_bytes=onnx_bytes,
        data=digests,
        folds=results,
        final=results[-1],
        parity_max_abs=parity,
    )
    body = json.loads(text) | {"parity_rust_vs_python_max_abs_diff": rust_parity}
    meta_bytes = (json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    # Every training keeps its model.json by sha256, so a plan that swaps this model out can
    # still say what the replaced one was (appliance/plan/models.py).
    write_atomic(target / "history" / f"{body['sha256']}.json", meta_bytes)
    write_atomic(target / "model.json", meta_bytes)
    summary = {
        "model": name,
        "written": [_rel(onnx_path, root), _rel(target / "model.json", root)],
        "sha256": body["sha256"],
        "features": names,
        "rows": len(frame),
        "folds": body["folds"],
        "parity_max_abs_diff": parity,
        "parity_rust_vs_python_max_abs_diff": rust_parity,
    }
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False))
        return
    _print(Console(width=160), spec, summary)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _print(console: Console, spec: Any, summary: dict[str, Any]) -> None:
    console.print(
        f"model {summary['model']}: {spec.estimator.kind} {spec.label.kind} over "
        f"{spec.label.horizon}, {len(summary['features'])} features ({spec.features}), "
        f"{summary['rows']} rows",
        markup=False,
    )
    keys = [k for k in summary["folds"][0]["metrics"] if not k.startswith("train_") and k != "rows"]
    table = Table(title="walk-forward: trained on each training window, scored on its test window")
    for col in ("fold", "train (UTC)", "test (UTC)", "rows"):
        table.add_column(col)
    for k in keys:
        table.add_column(f"IS {k}", justify="right")
        table.add_column(f"OOS {k}", justify="right")
    for f in summary["folds"]:
        row = [
            str(f["fold"]),
            f"{f['train'][0][11:19]}-{f['train'][1][11:19]}",
            f"{f['test'][0][11:19]}-{f['test'][1][11:19]}",
            f"{f['rows_train']}/{f['rows_test']}",
        ]
        for k in keys:
            row += [_num(f["metrics"].get(f"train_{k}")), _num(f["metrics"].get(k))]
        table.add_row(*row)
    console.print(table)
    console.print(
        f"exported the last fold's model; ONNX vs trained max |diff| "
        f"{summary['parity_max_abs_diff']:.3g}, Rust vs Python onnxruntime "
        f"{summary['parity_rust_vs_python_max_abs_diff']:.3g}",
        markup=False,
    )
    for path in summary["written"]:
        console.print(f"wrote {path}", markup=False)
    console.print(f"sha256 {summary['sha256']}", markup=False)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"
