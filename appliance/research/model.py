"""Models are config: `conf/model/<name>.yaml` declares the feature set, the label, the
estimator and its hyper-parameters, the data and the walk-forward windows. `appliance train`
computes the features on the engine's Rust core (`research.features`, the code the engine runs
live), trains on each fold's training window, evaluates on its test window, and exports the
model of the most recent fold to ONNX: `models/<name>/model.onnx` and `model.json` (features
and their order, IO signature, opset, data files and sha256, windows, metrics, the file's
sha256). The exported model is checked against the trained one on the test rows.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.config.diagnostics import ConfigError, from_validation_error
from appliance.research.study import (
    Duration,
    StudyData,
    WalkForward,
    compose_option,
    duration_ns,
    make_folds,
)

MODEL_JSON_VERSION = 1
# ONNX opset of the exported graphs (the highest onnxmltools converts LightGBM to): every
# ONNX Runtime the engine can load runs it.
TARGET_OPSET = 15
_NAME = r"^[a-z][a-z0-9_]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Label(_Strict):
    """What the model predicts from the features at time t."""

    kind: Literal["regression", "direction"] = Field(
        description="regression: the mid's move over the horizon in bps; direction: whether "
        "the mid is higher after the horizon (a probability of up)"
    )
    horizon: Duration
    dead_zone_bps: Annotated[float, Field(ge=0, le=1000)] = Field(
        description="direction only: moves smaller than this are left out of training"
    )


class LightGBM(_Strict):
    kind: Literal["lightgbm"]
    n_estimators: Annotated[int, Field(ge=1, le=5000)]
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    num_leaves: Annotated[int, Field(ge=2, le=4096)]
    min_child_samples: Annotated[int, Field(ge=1, le=100_000)]


class MLP(_Strict):
    """A small multi-layer perceptron (scikit-learn; exported by skl2onnx)."""

    kind: Literal["mlp"]
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(min_length=1, max_length=8)
    alpha: Annotated[float, Field(ge=0, le=10)]
    max_iter: Annotated[int, Field(ge=1, le=10_000)]


Estimator = Annotated[LightGBM | MLP, Field(discriminator="kind")]


class ModelSpec(_Strict):
    """One model (`conf/model/<name>.yaml`)."""

    features: str = Field(pattern=_NAME, description="the feature set, conf/features/<name>.yaml")
    deployment: str = Field(pattern=_NAME, description="the deployment whose instrument it learns")
    engine: str | None = Field(description="the engine (null: the only one)")
    data: StudyData
    sample_every: Duration | None = Field(description="null: a row on every book update")
    label: Label
    estimator: Estimator
    walk_forward: WalkForward
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)]


@dataclass
class FoldMetrics:
    index: int
    train: tuple[int, int]
    test: tuple[int, int]
    rows_train: int
    rows_test: int
    metrics: dict[str, float | None]


def load_spec(root: Path, name: str, overrides: Sequence[str]) -> ModelSpec:
    """Compose `conf/model/<name>.yaml` with `model.*` overrides and validate it."""
    source = f"conf/model/{name}.yaml"
    raw = compose_option(root, "model", name, overrides)
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        overridden = {o.split("=", 1)[0].lstrip("+~").removeprefix("model.") for o in overrides}
        raise ConfigError(
            [
                d.with_source(
                    f"command line override model.{d.path}" if d.path in overridden else source
                )
                for d in from_validation_error(exc, [])
            ]
        ) from None


def make_xy(frame: Any, features: list[str], spec: ModelSpec) -> tuple[Any, Any]:
    """Feature matrix (float32) and label of the rows that have one (the last horizon of the
    data has no future mid)."""
    import numpy as np

    from appliance.research.features import label_column

    move = frame[label_column(horizon_ns(spec))].to_numpy(dtype=float)
    mid = frame["mid"].to_numpy(dtype=float)
    ok = np.isfinite(move) & np.isfinite(mid) & (mid > 0)
    bps = np.zeros_like(move)
    bps[ok] = move[ok] / mid[ok] * 1e4
    if spec.label.kind == "direction":
        ok &= np.abs(bps) > spec.label.dead_zone_bps
        y = (bps > 0).astype(np.int64)
    else:
        y = bps
    x = frame[features].to_numpy(dtype=np.float32)
    ok &= np.isfinite(x).all(axis=1)
    return x[ok], y[ok]


def build_estimator(spec: ModelSpec) -> Any:
    est = spec.estimator
    direction = spec.label.kind == "direction"
    if isinstance(est, LightGBM):
        import lightgbm

        cls = lightgbm.LGBMClassifier if direction else lightgbm.LGBMRegressor
        return cls(
            n_estimators=est.n_estimators,
            learning_rate=est.learning_rate,
            num_leaves=est.num_leaves,
            min_child_samples=est.min_child_samples,
            random_state=spec.seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,
            verbose=-1,
        )
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp_cls = MLPClassifier if direction else MLPRegressor
    return make_pipeline(
        StandardScaler(),
        mlp_cls(
            hidden_layer_sizes=tuple(est.hidden),
            alpha=est.alpha,
            max_iter=est.max_iter,
            random_state=spec.seed,
        ),
    )


def predict(model: Any, x: Any, spec: ModelSpec) -> Any:
    """The model's signal: P(up) for a direction model, the move in bps for a regression."""
    if spec.label.kind == "direction":
        return model.predict_proba(x)[:, 1]
    return model.predict(x)


def evaluate(signal: Any, y: Any, spec: ModelSpec) -> dict[str, float | None]:
    import numpy as np

    if len(y) == 0:
        return {"rows": 0.0}
    out: dict[str, float | None] = {"rows": float(len(y))}
    if spec.label.kind == "direction":
        out["accuracy"] = float(np.mean((signal > 0.5) == (y == 1)))
        out["base_rate_up"] = float(np.mean(y))
        if 0 < y.sum() < len(y):
            from sklearn.metrics import roc_auc_score

            out["auc"] = float(roc_auc_score(y, signal))
        else:
            out["auc"] = None
    else:
        resid = y - signal
        var = float(np.var(y))
        out["rmse_bps"] = float(np.sqrt(np.mean(resid**2)))
        out["r2"] = 1 - float(np.mean(resid**2)) / var if var > 0 else None
        same = np.sign(signal) == np.sign(y)
        out["hit_rate"] = float(np.mean(same[y != 0])) if (y != 0).any() else None
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in out.items()}


def to_onnx(model: Any, width: int, spec: ModelSpec) -> bytes:
    """The trained model as ONNX: input `features` float32 [N, width]; output `signal`
    float32 [N, 1] (P(up) or the move in bps)."""
    import onnx
    from onnx import TensorProto, helper

    if isinstance(spec.estimator, LightGBM):
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        kwargs: dict[str, Any] = {"zipmap": False} if spec.label.kind == "direction" else {}
        proto = convert_lightgbm(
            model,
            initial_types=[("features", FloatTensorType([None, width]))],
            target_opset=TARGET_OPSET,
            **kwargs,
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SkFloat

        options = {id(model): {"zipmap": False}} if spec.label.kind == "direction" else None
        proto = convert_sklearn(
            model,
            initial_types=[("features", SkFloat([None, width]))],
            target_opset=TARGET_OPSET,
            options=options,
        )
    graph = proto.graph
    # The converters name the graph with a random id: a fixed name keeps the bytes (and the
    # sha256 a manifest pins) the same for the same training.
    graph.name = "py_rt_model"
    # One output, `signal` [N, 1]: for a classifier, the probability of class 1.
    source = graph.output[-1].name if spec.label.kind == "direction" else graph.output[0].name
    nodes: list[Any] = []
    if spec.label.kind == "direction":
        nodes.append(
            helper.make_node(
                "Slice",
                [source, "_start", "_end", "_axis"],
                ["signal"],
                name="signal_up",
            )
        )
        for name, value in (("_start", 1), ("_end", 2), ("_axis", 1)):
            graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [1], [value]))
    else:
        nodes.append(helper.make_node("Identity", [source], ["signal"], name="signal_out"))
    graph.node.extend(nodes)
    # The added node is a standard operator: the default domain must be at the target opset.
    default = [o for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if default:
        default[0].version = max(default[0].version, TARGET_OPSET)
    else:
        proto.opset_import.append(helper.make_opsetid("", TARGET_OPSET))
    # The converters list opsets in set order (it varies with the process's hash seed): sort
    # them so the same training always gives the same bytes.
    opsets = sorted((o.domain, o.version) for o in proto.opset_import)
    del proto.opset_import[:]
    proto.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("signal", TensorProto.FLOAT, [None, 1]))
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def signature(onnx_bytes: bytes) -> dict[str, Any]:
    """Input/output names, shapes, dtypes and the opsets of an ONNX model (the compiler's own
    reading, config/models.py)."""
    import onnx

    from appliance.config import models

    return models.signature(onnx.load_from_string(onnx_bytes))


def onnx_signal(onnx_bytes: bytes, x: Any) -> Any:
    """Run the exported model with Python onnxruntime (the parity check)."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return session.run(["signal"], {"features": x})[0][:, 0]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folds_for(spec: ModelSpec, data_range: tuple[int, int]) -> list[Any]:
    return make_folds(spec.walk_forward, *data_range)


def horizon_ns(spec: ModelSpec) -> int:
    return duration_ns(spec.label.horizon)


def model_json(
    *,
    name: str,
    spec: ModelSpec,
    features: list[dict[str, Any]],
    feature_names: list[str],
    onnx_bytes: bytes,
    data: list[dict[str, str]],
    folds: list[FoldMetrics],
    final: FoldMetrics,
    parity_max_abs: float,
) -> str:
    sig = signature(onnx_bytes)
    body = {
        "model_json_version": MODEL_JSON_VERSION,
        "name": name,
        "sha256": sha256_bytes(onnx_bytes),
        "file": "model.onnx",
        "feature_set": spec.features,
        "features": features,
        "feature_names": feature_names,
        "input": sig["inputs"][0],
        "output": sig["outputs"][0],
        "opsets": sig["opsets"],
        "ir_version": sig["ir_version"],
        "label": spec.label.model_dump(),
        "estimator": spec.estimator.model_dump(),
        "deployment": spec.deployment,
        "data": data,
        "sample_every": spec.sample_every,
        "folds": [_fold_json(f) for f in folds],
        "final": _fold_json(final),
        "parity_max_abs_diff": parity_max_abs,
        "seed": spec.seed,
    }
    return json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _fold_json(f: FoldMetrics) -> dict[str, Any]:
    from appliance.research.data import format_utc

    return {
        "fold": f.index,
        "train": [format_utc(f.train[0]), format_utc(f.train[1])],
        "test": [format_utc(f.test[0]), format_utc(f.test[1])],
        "rows_train": f.rows_train,
        "rows_test": f.rows_test,
        "metrics": f.metrics,
    }
