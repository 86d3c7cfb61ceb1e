"""The model strategy live: `rt-engine run` with paper_model (the shipped direction_lgbm ONNX
model, run by rt-model on the strategy thread's decisions) against the sim venue sends orders
and gets fills; `rt-engine check` reports the model; a library that is not ONNX Runtime is a
start-up refusal with exit code 2, not a panic.

The engine gets the onnxruntime wheel's library through ORT_DYLIB_PATH, as `appliance run` gives
it (appliance.bus.processes.engine_env).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.bus import bus_pb2 as pb
from appliance.bus.processes import engine_env
from appliance.engine import engine_binary, onnxruntime_library
from tests.e2e.harness import ROOT, live
from tests.e2e.test_live import kinds, wait_live

pytest.importorskip("onnxruntime")

# Thresholds the shipped model crosses often on the bundled capture.
MODEL = [
    "deployment=paper_model",
    "strategies.model_btcusdt.params.buy_above='0.6'",
    "strategies.model_btcusdt.params.sell_below='0.4'",
]
SENT = pb.OrderStatus.Value("SENT")


def ort_env() -> dict[str, str]:
    library = onnxruntime_library()
    assert library is not None
    return {"ORT_DYLIB_PATH": str(library)}


def test_the_model_taker_trades_live_against_the_sim(tmp_path: Path) -> None:
    with live(tmp_path, *MODEL, speed="8") as env:
        assert env.manifest["strategies"]["model_btcusdt"]["kind"] == "model_taker"
        # `appliance run` gives the engine the wheel's library for a model manifest.
        child_env = engine_env(env.manifest)
        if child_env is not None:
            assert child_env["ORT_DYLIB_PATH"] == ort_env()["ORT_DYLIB_PATH"]
        env.start_sim()
        engine = env.start_engine(env=ort_env())
        wait_live(env)
        env.pump_until(lambda e: e.WhichOneof("body") == "fill", 90, "a fill")
        env.pump(0.5)
        assert env.stop("engine") == 0, engine.text()
        orders = kinds(env.seen, "order")
        assert any(o.order.status == SENT for o in orders)
        assert kinds(env.seen, "fill")
        out = engine.text()
        assert "model model_btcusdt: models/direction_lgbm/model.onnx (11 features in" in out, out
        assert "ONNX Runtime" in out


def test_check_reports_the_model_and_a_foreign_library_refuses_the_start(tmp_path: Path) -> None:
    with live(tmp_path, *MODEL) as env:
        binary = str(engine_binary(ROOT))
        manifest = str(env.manifest_path)

        def engine(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [binary, *args],
                cwd=env.root,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, **ort_env()},
            )

        ok = engine("check", "--manifest", manifest)
        assert ok.returncode == 0, ok.stderr
        assert "model model_btcusdt: models/direction_lgbm/model.onnx sha256 " in ok.stdout
        assert "width 11 ok" in ok.stdout

        foreign = str(ROOT / "README.md")
        bad = engine("check", "--manifest", manifest, "--onnxruntime", foreign)
        assert bad.returncode == 2
        assert "strategies.model_btcusdt.params.model" in bad.stderr
        assert "ONNX Runtime library" in bad.stderr and "cannot be loaded" in bad.stderr

        run = engine("run", "--manifest", manifest, "--onnxruntime", foreign, "--duration", "5")
        assert run.returncode == 2, run.stderr
        assert "refused" in run.stderr and "cannot be loaded" in run.stderr
        assert "panicked" not in run.stderr
