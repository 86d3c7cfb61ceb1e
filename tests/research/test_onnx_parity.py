"""Parity of the engine's ONNX path (rt-model through the PyO3 extension) with Python's
`onnxruntime`, on models exported in the test from synthetic data, and its errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from appliance import engine

ROWS = 10_000
WIDTH = 64
Rows = npt.NDArray[np.float32]


def _data() -> tuple[Rows, Rows]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(ROWS, WIDTH)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + np.tanh(x[:, 2] * x[:, 3]) + 0.1 * x[:, 4:8].sum(axis=1)).astype(
        np.float32
    )
    return x, y


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A gradient-boosted tree ensemble and an MLP 64 -> 64 -> 64 -> 1, exported with skl2onnx
    (LightGBM too when onnxmltools is installed)."""
    out = tmp_path_factory.mktemp("onnx")
    x, y = _data()
    estimators: dict[str, Any] = {
        "gbt": GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(
            x[:3000], y[:3000]
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimators["mlp"] = MLPRegressor(
            hidden_layer_sizes=(64, 64), max_iter=15, random_state=0
        ).fit(x, y)
    paths = {}
    for name, estimator in estimators.items():
        paths[name] = out / f"{name}.onnx"
        paths[name].write_bytes(to_onnx(estimator, x[:1]).SerializeToString())
    return paths


def _python(path: Path, x: Rows) -> Rows:
    """Python's onnxruntime, one row per `session.run` (the engine's call pattern)."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


@pytest.mark.parametrize("name", ["gbt", "mlp"])
def test_rust_matches_python_onnxruntime_on_10000_rows(name: str, models: dict[str, Path]) -> None:
    x, _ = _data()
    expected = _python(models[name], x)
    got = np.asarray(engine.onnx_predict(models[name], x), dtype=np.float32)
    assert got.shape == expected.shape == (ROWS, 1)
    assert float(np.abs(got - expected).max()) <= 1e-6
    # Lists of rows go through the same path; the outputs vary (not a constant model).
    as_lists = engine.onnx_predict(models[name], x[:50].tolist())
    assert np.abs(np.asarray(as_lists, dtype=np.float32) - expected[:50]).max() <= 1e-6
    assert float(expected.std()) > 0.01


def test_lightgbm_through_onnxmltools(tmp_path: Path) -> None:
    onnxmltools = pytest.importorskip("onnxmltools")
    lightgbm = pytest.importorskip("lightgbm")
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = _data()
    booster = lightgbm.LGBMRegressor(n_estimators=40, num_leaves=15, verbose=-1).fit(x, y)
    initial = [("X", FloatTensorType([None, WIDTH]))]
    model = onnxmltools.convert_lightgbm(booster, initial_types=initial)
    path = tmp_path / "lgbm.onnx"
    path.write_bytes(model.SerializeToString())
    expected = _python(path, x[:2000])
    got = np.asarray(engine.onnx_predict(path, x[:2000]), dtype=np.float32)
    assert float(np.abs(got - expected).max()) <= 1e-6


def test_runtime_info_names_the_wheels_library() -> None:
    info = engine.onnx_runtime_info()
    assert info["version"] == onnxruntime.__version__
    assert Path(info["path"]).name.startswith("libonnxruntime.so")
    assert info["min_version"] == "1.17"


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.onnx"
    with pytest.raises(engine.ModelError, match=r"^model file .*absent\.onnx does not exist$"):
        engine.onnx_predict(missing, [[0.0] * WIDTH])


def test_wrong_row_width_is_a_model_error(models: dict[str, Path]) -> None:
    with pytest.raises(engine.ModelError, match=r"the input row has 3 values, the model reads 64$"):
        engine.onnx_predict(models["mlp"], [[0.0, 1.0, 2.0]])


def test_a_library_that_is_not_onnx_runtime_is_refused(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    wheel = engine.onnxruntime_library()
    assert wheel is not None
    foreign = wheel.with_name("libonnxruntime_providers_shared.so")
    not_ort = r"is not an ONNX Runtime library: it does not export OrtGetApiBase$"
    with pytest.raises(engine.ModelError, match=not_ort):
        engine.onnx_predict(models["gbt"], [[0.0] * WIDTH], library_path=foreign)
    text = tmp_path / "libonnxruntime.so"
    text.write_text("not a library\n")
    with pytest.raises(engine.ModelError, match=r"^ONNX Runtime library .* cannot be loaded: "):
        engine.onnx_runtime_info(text)
    with pytest.raises(engine.ModelError, match=r"does not exist\); pass its path"):
        engine.onnx_runtime_info(tmp_path / "nowhere.so")
    # The process is intact: the real library still works afterwards.
    assert len(engine.onnx_predict(models["gbt"], [[0.0] * WIDTH])) == 1
