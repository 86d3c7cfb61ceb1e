"""`appliance train` and model strategies at compile time: the ONNX export, model.json, the
compiler's checks (signature, sha256, features, opset) and a model swap in a plan."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SHIPPED = ROOT / "models" / "direction_lgbm"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with a freshly trained direction_lgbm (the same command as the
    README), shared by the tests of this module."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("tuned"))
    (root / "data" / "binance").mkdir(parents=True)
    shutil.copy(ROOT / "data/binance/spot_btcusdt_20240808.gz", root / "data/binance")
    run = appliance(root, "train", "model=direction_lgbm", "-f", "json")
    assert run.returncode == 0, run.stderr
    return root


def appliance(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=root,
    )


def _meta(directory: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((directory / "model.json").read_text())
    return data


def test_training_writes_a_model_whose_signature_matches_its_features(project: Path) -> None:
    import yaml

    from appliance.config.models import sha256_file

    out = project / "models" / "direction_lgbm"
    meta = _meta(out)
    declared = yaml.safe_load((ROOT / "conf/features/book_basic.yaml").read_text())["features"]
    assert meta["features"] == declared
    assert meta["input"] == {"dtype": "float32", "name": "features", "shape": [None, 11]}
    assert meta["output"] == {"dtype": "float32", "name": "signal", "shape": [None, 1]}
    assert meta["sha256"] == sha256_file(out / "model.onnx")
    assert (out / "history" / f"{meta['sha256']}.json").read_bytes() == (
        out / "model.json"
    ).read_bytes()
    # The exported graph gives the trained model's output; Rust gives Python's.
    assert isinstance(meta["parity_max_abs_diff"], float) and meta["parity_max_abs_diff"] < 1e-5
    assert meta["parity_rust_vs_python_max_abs_diff"] == pytest.approx(0.0, abs=1e-6)
    folds = meta["folds"]
    assert isinstance(folds, list) and len(folds) == 3
    assert all(f["metrics"]["auc"] is not None for f in folds)


def test_training_is_deterministic(project: Path, tmp_path: Path) -> None:
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        run = appliance(project, "train", "model=direction_lgbm", "--out", str(out), "-f", "json")
        assert run.returncode == 0, run.stderr
    one, two = (_meta(o) for o in outs)
    assert one["folds"] == two["folds"]
    assert (outs[0] / "model.onnx").read_bytes() == (outs[1] / "model.onnx").read_bytes()


def test_the_shipped_model_is_what_training_gives_now(project: Path) -> None:
    """A stale checked-in model (other features, another signature) fails here."""
    fresh, shipped = _meta(project / "models" / "direction_lgbm"), _meta(SHIPPED)
    for key in ("features", "feature_names", "input", "output", "opsets", "label", "estimator"):
        assert shipped[key] == fresh[key], key


def _compile(root: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return appliance(root, "compile", "deployment=paper_model", *overrides, "-f", "json")


def _diag(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert run.returncode == 2, run.stdout + run.stderr
    diags = json.loads(run.stdout)["diagnostics"]
    assert len(diags) >= 1
    first: dict[str, str] = diags[0]
    assert "conf/strategy/model_taker_sim.yaml" in first["source"]
    return first


def test_the_compiler_writes_the_model_into_the_manifest(project: Path) -> None:
    run = _compile(project)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((project / "build/paper_model/local.manifest.json").read_text())
    params = manifest["strategies"]["model_btcusdt"]["params"]
    meta = _meta(project / "models" / "direction_lgbm")
    assert params["model"]["sha256"] == meta["sha256"]
    assert params["model"]["input_width"] == len(params["features"]["features"]) == 11
    assert params["model"]["path"] == "models/direction_lgbm/model.onnx"


def test_a_model_edited_after_training_is_refused(project: Path, tmp_path: Path) -> None:
    edited = project / "models" / "edited"
    shutil.copytree(project / "models" / "direction_lgbm", edited)
    with (edited / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    d = _diag(_compile(project, "strategies.model_btcusdt.params.model=models/edited"))
    assert (d["path"], d["rule"]) == ("strategies.model_btcusdt.params.model", "model.sha256")
    assert "changed after training" in d["message"]


def test_a_missing_model_is_refused(project: Path) -> None:
    run = _compile(project, "strategies.model_btcusdt.params.model=models/nothing_here")
    assert run.returncode == 2
    d = json.loads(run.stdout)["diagnostics"][0]
    assert (d["path"], d["rule"]) == ("strategies.model_btcusdt.params.model", "model.exists")


def test_features_other_than_the_trained_ones_are_refused(project: Path) -> None:
    small = project / "conf" / "features" / "book_small.yaml"
    lines = (project / "conf/features/book_basic.yaml").read_text().splitlines()
    small.write_text("\n".join(lines[:8]) + "\n")
    try:
        d = _diag(_compile(project, "strategies.model_btcusdt.params.features=book_small"))
    finally:
        small.unlink()
    assert (d["path"], d["rule"]) == ("strategies.model_btcusdt.params.features", "model.features")
    assert "trained on 11 features" in d["message"]


def _rewrite(src: Path, dst: Path, change: str) -> None:
    import onnx

    from appliance.config.models import sha256_file

    proto = onnx.load(str(src / "model.onnx"))
    if change == "opset":
        for o in proto.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 99
    else:  # a model that takes 12 inputs
        proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 12
    dst.mkdir(parents=True)
    onnx.save(proto, str(dst / "model.onnx"))
    meta = _meta(src) | {"sha256": sha256_file(dst / "model.onnx")}
    (dst / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "rule"), [("opset", "model.opset"), ("width", "model.signature")]
)
def test_an_unsupported_opset_or_a_wrong_width_is_refused(
    project: Path, change: str, rule: str
) -> None:
    target = project / "models" / f"bad_{change}"
    _rewrite(project / "models" / "direction_lgbm", target, change)
    d = _diag(_compile(project, f"strategies.model_btcusdt.params.model=models/bad_{change}"))
    assert (d["path"], d["rule"]) == ("strategies.model_btcusdt.params.model", rule)


def test_a_model_swap_is_an_artifact_change_with_both_models_metrics(project: Path) -> None:
    assert _compile(project).returncode == 0
    retrain = appliance(project, "train", "model=direction_lgbm", "model.estimator.n_estimators=20")
    assert retrain.returncode == 0, retrain.stderr
    plan = appliance(
        project, "plan", "deployment=paper_model", "--against", "build/paper_model", "-f", "json"
    )
    assert plan.returncode == 0, plan.stderr
    changes = {c["path"]: c for c in json.loads(plan.stdout)["changes"]}
    swap = changes["strategies.model_btcusdt.params.model.sha256"]
    assert swap["change_class"] == "ARTIFACT"
    assert swap["before"] != swap["after"]
    assert "model before: direction_lgbm sha256:" in swap["detail"]
    assert swap["detail"].count("auc") == 2
    text = appliance(project, "plan", "deployment=paper_model", "--against", "build/paper_model")
    assert "ARTIFACT" in text.stdout and "model before:" in text.stdout
