"""Model strategies at compile time: a strategy's model directory (written by `appliance train`)
and feature set become the manifest's `ModelRef` and feature declarations, after checks no
single field can see:

- `model.onnx` and `model.json` exist, and the file is the one `model.json` describes (sha256);
- the ONNX file opens with the `onnx` package; its one input is float32 `[N, width]` with
  `width` the number of declared features, its output float32 `[N, k]`, its opset one the
  engine's ONNX Runtime runs;
- the declared feature set is the one the model was trained on (same features, same order).

Each problem is a diagnostic naming `strategies.<name>.params.model` (or `.features`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.featureset import load_set
from appliance.config.schema import MODEL_MAX_OPSET, ModelTaker, format_decimal


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def signature(proto: Any) -> dict[str, Any]:
    """Input/output names, shapes and dtypes and the opsets of a loaded ONNX model."""
    import onnx

    def io(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        return {
            "name": value.name,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
            "shape": dims,
        }

    initialisers = {i.name for i in proto.graph.initializer}
    return {
        "inputs": [io(v) for v in proto.graph.input if v.name not in initialisers],
        "outputs": [io(v) for v in proto.graph.output],
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import},
        "ir_version": int(proto.ir_version),
    }


def resolve(
    root: Path, name: str, st: ModelTaker
) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """The manifest params of a model strategy, or the diagnostics that stop it."""
    base = f"strategies.{name}.params"
    p = st.params
    where = root / p.model
    onnx_path, json_path = where / "model.onnx", where / "model.json"
    missing = [f.name for f in (onnx_path, json_path) if not f.is_file()]
    if missing:
        return None, [
            Diagnostic(
                f"{base}.model",
                p.model,
                "model.exists",
                f"{p.model}/ has no {' and no '.join(missing)}: train it with "
                "`appliance train model=<name>` (conf/model/)",
            )
        ]
    diags: list[Diagnostic] = []
    try:
        meta = json.loads(json_path.read_text())
        trained_sha = str(meta["sha256"])
        trained_features = list(meta["features"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, [
            Diagnostic(
                f"{base}.model", p.model, "model.metadata", f"{json_path.name} is unreadable: {exc}"
            )
        ]
    sha = sha256_file(onnx_path)
    if sha != trained_sha:
        diags.append(
            Diagnostic(
                f"{base}.model",
                p.model,
                "model.sha256",
                f"model.onnx (sha256:{sha[:16]}) is not the file model.json describes "
                f"(sha256:{trained_sha[:16]}): it changed after training; retrain it or "
                "restore the trained file",
            )
        )
    try:
        feature_set = load_set(root, p.features)
    except ConfigError as err:
        return None, [
            Diagnostic(f"{base}.features", p.features, d.rule, d.message) for d in err.diagnostics
        ]
    declared = feature_set.spec.model_dump(mode="json")["features"]
    if declared != trained_features:
        diags.append(
            Diagnostic(
                f"{base}.features",
                p.features,
                "model.features",
                f"the model was trained on {len(trained_features)} features "
                f"{_columns(trained_features)}; {feature_set.source} declares {len(declared)} "
                f"{_columns(declared)}",
            )
        )
    try:
        import onnx
    except ImportError:
        return None, [
            Diagnostic(
                f"{base}.model",
                p.model,
                "model.onnx_package",
                "checking a model needs the onnx package: pip install 'py-rt-appliance[research]'",
            )
        ]
    try:
        proto = onnx.load(str(onnx_path))
        sig = signature(proto)
    except Exception as exc:
        bad = f"not an ONNX model: {exc}"
        return None, [*diags, Diagnostic(f"{base}.model", p.model, "model.onnx_invalid", bad)]
    width = len(declared)
    inputs, outputs = sig["inputs"], sig["outputs"]
    problems = []
    if len(inputs) != 1:
        problems.append(f"it has {len(inputs)} inputs, the engine feeds one")
    elif inputs[0]["dtype"] != "float32" or len(inputs[0]["shape"]) != 2:
        problems.append(
            f"its input is {inputs[0]['dtype']} {inputs[0]['shape']}, not float32 [N, {width}]"
        )
    elif inputs[0]["shape"][1] != width:
        problems.append(
            f"its input width is {inputs[0]['shape'][1]} but {width} features are declared"
        )
    if not outputs or outputs[0]["dtype"] != "float32" or len(outputs[0]["shape"]) not in (1, 2):
        problems.append(f"its output is {outputs[0] if outputs else 'missing'}, not float32 [N, k]")
    if problems:
        diags.append(Diagnostic(f"{base}.model", p.model, "model.signature", "; ".join(problems)))
    opset = sig["opsets"].get("ai.onnx", 0)
    if opset > MODEL_MAX_OPSET:
        diags.append(
            Diagnostic(
                f"{base}.model",
                p.model,
                "model.opset",
                f"opset {opset} is above {MODEL_MAX_OPSET}, the newest the engine's ONNX "
                "Runtime (1.17 or later) is sure to run",
            )
        )
    if diags:
        return None, diags
    out_shape = outputs[0]["shape"]
    params = {
        "model": {
            "path": (Path(p.model) / "model.onnx").as_posix(),
            "sha256": sha,
            "input_name": inputs[0]["name"],
            "input_width": width,
            "output_name": outputs[0]["name"],
            "output_width": int(out_shape[1]) if len(out_shape) == 2 and out_shape[1] else 1,
            "opset": max(opset, 1),
            "intra_op_threads": p.intra_op_threads,
            "optimization": p.optimization,
        },
        "features": {"features": declared},
        "buy_above": format_decimal(p.buy_above),
        "sell_below": format_decimal(p.sell_below),
        "order_qty": format_decimal(p.order_qty),
        "max_slippage": format_decimal(p.max_slippage),
        "cooldown_ms": p.cooldown_ms,
    }
    return params, []


def _columns(features: list[dict[str, Any]]) -> str:
    from appliance.config.schema import FeatureSetSpec

    try:
        return (
            "[" + ", ".join(FeatureSetSpec.model_validate({"features": features}).columns()) + "]"
        )
    except ValueError:
        return json.dumps(features)
