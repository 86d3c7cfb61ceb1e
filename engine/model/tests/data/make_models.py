"""Regenerate the small ONNX fixtures of rt-model's tests (run from the project root):

    .venv/bin/python engine/model/tests/data/make_models.py

mlp_4.onnx: MLPRegressor 4 -> 8 -> 1 (float32 in, [N, 1] out); tree_4.onnx: a
GradientBoostingRegressor on 4 features (skl2onnx 1.20 fails on
HistGradientBoosting with scikit-learn 1.9); double_4.onnx: the MLP with a float64 input (a
signature the engine refuses). Seeded: the same files every run.
"""

from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.neural_network import MLPRegressor

HERE = Path(__file__).resolve().parent


def main() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 1] + np.tanh(x[:, 2] * x[:, 3])).astype(np.float32)
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0).fit(x, y)
    tree = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(x, y)
    (HERE / "mlp_4.onnx").write_bytes(to_onnx(mlp, x[:1]).SerializeToString())
    (HERE / "tree_4.onnx").write_bytes(to_onnx(tree, x[:1]).SerializeToString())
    (HERE / "double_4.onnx").write_bytes(
        to_onnx(mlp, x[:1].astype(np.float64)).SerializeToString()
    )
    probe = x[:3]
    for name, model in (("mlp_4", mlp), ("tree_4", tree)):
        print(name, [float(v) for v in model.predict(probe)])


if __name__ == "__main__":
    main()
