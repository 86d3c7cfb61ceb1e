"""The model_taker strategy in the Rust backtest through the extension: the shipped model
(models/direction_lgbm) over the bundled capture with the onnxruntime wheel's library (what
`appliance.engine.run_backtest` passes by default), identical twice; a model that does not fit
its manifest is a ModelError; a changed model file is refused at load naming the key."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from appliance import engine
from appliance.config.manifest import content_sha256, dumps
from tests.conftest import CONTRACT, ROOT

pytest.importorskip("onnxruntime")

MODEL = ROOT / "models/direction_lgbm"
CAPTURE = str(ROOT / "data/binance/spot_btcusdt_20240808.gz")
NAME = "model_btcusdt"


def model_manifest(model_file: Path, card: dict[str, Any], **params: Any) -> str:
    """The contract example trading `model_file` with a model_taker (absolute path: the test
    does not depend on the working directory)."""
    manifest = json.loads((CONTRACT / "example.manifest.json").read_text())
    manifest["strategies"] = {
        NAME: {
            "kind": "model_taker",
            "exchange": "binance_spot",
            "instruments": ["BTCUSDT"],
            "params": {
                "model": {
                    "path": str(model_file),
                    "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
                    "input_name": card["input"]["name"],
                    "input_width": len(card["features"]),
                    "output_name": card["output"]["name"],
                    "output_width": 1,
                    "opset": 15,
                    "intra_op_threads": 1,
                    "optimization": "all",
                },
                "features": {"features": card["features"]},
                "buy_above": "0.6",
                "sell_below": "0.4",
                "order_qty": "0.001",
                "max_slippage": "0.5",
                "cooldown_ms": 1000,
            }
            | params,
        }
    }
    manifest["content_sha256"] = content_sha256(manifest)
    return dumps(manifest)


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MODEL / "model.json").read_text())
    return loaded


def test_the_shipped_model_trades_the_capture_identically_twice(card: dict[str, Any]) -> None:
    text = model_manifest(MODEL / "model.onnx", card)
    first = engine.run_backtest(text, [CAPTURE])
    counters, summary = first["counters"], first["summary"]
    assert counters["model_errors"] == 0
    assert counters["model_predictions"] >= counters["orders_placed"] > 0
    assert summary["fills"] > 0
    assert set(first["orders"]["kind"]) == {"ioc"}
    second = engine.run_backtest(text, [CAPTURE])
    assert second == first


def test_a_model_that_does_not_fit_is_a_model_error(card: dict[str, Any]) -> None:
    # A 4-input fixture model declared as reading 4 features: its output is not "signal".
    fixture = ROOT / "engine/model/tests/data/mlp_4.onnx"
    four = copy.deepcopy(card)
    four["features"] = card["features"][:4]
    with pytest.raises(engine.ModelError, match=rf"strategies\.{NAME}: params\.model: .*mlp_4"):
        engine.run_backtest(model_manifest(fixture, four), [CAPTURE])
    # A library that is not ONNX Runtime.
    with pytest.raises(engine.ModelError, match=r"not an ONNX Runtime library|cannot be loaded"):
        engine.run_backtest(
            model_manifest(MODEL / "model.onnx", card),
            [CAPTURE],
            onnx_library=str(ROOT / "README.md"),
        )


def test_a_changed_model_file_is_refused_naming_the_key(
    card: dict[str, Any], tmp_path: Path
) -> None:
    copied = tmp_path / "model.onnx"
    copied.write_bytes((MODEL / "model.onnx").read_bytes())
    text = model_manifest(copied, card)
    copied.write_bytes(copied.read_bytes() + b"\0")
    with pytest.raises(engine.ManifestError, match=rf"strategies\.{NAME}\.params\.model\.sha256"):
        engine.run_backtest(text, [CAPTURE])
    copied.unlink()
    with pytest.raises(engine.ManifestError, match=rf"strategies\.{NAME}\.params\.model\.path"):
        engine.run_backtest(text, [CAPTURE])
