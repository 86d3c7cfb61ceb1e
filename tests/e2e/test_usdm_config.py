"""USD-M settings in config: `leverage` and `margin_type` of a USD-M instrument, their rules on
both sides of the contract, and their plan classes. No process is started."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import engine
from appliance.config.manifest import content_sha256, dumps
from appliance.plan.diff import ChangeClass, classify
from tests.conftest import CONTRACT, Run

BTC = "exchanges.sim_binance.instruments.BTCUSDT"


def _refused(cli: Callable[..., Run], project: Path, *args: str) -> list[dict[str, Any]]:
    run = cli("compile", *args, "--format", "json", root=project)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    diags: list[dict[str, Any]] = json.loads(run.stdout)["diagnostics"]
    return diags


def _paths(diags: list[dict[str, Any]]) -> list[str]:
    return [d["path"] for d in diags]


def test_paper_usdm_compiles_with_its_leverage_and_margin_type(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("compile", "deployment=paper_usdm", root=project)
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (project / "build").rglob("*.manifest.json")
    manifest = json.loads(path.read_text())
    inst = manifest["exchanges"]["sim_binance"]["instruments"]["BTCUSDT"]
    assert (inst["leverage"], inst["margin_type"]) == (5, "cross")
    assert manifest["exchanges"]["sim_binance"]["market"] == "usdm"


def test_a_leverage_outside_1_to_125_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    for bad in ("0", "126"):
        diags = _refused(cli, project, "deployment=paper_usdm", f"{BTC}.leverage={bad}")
        assert f"{BTC}.leverage" in _paths(diags), diags


def test_an_unknown_margin_type_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    diags = _refused(cli, project, "deployment=paper_usdm", f"{BTC}.margin_type=portfolio")
    assert f"{BTC}.margin_type" in _paths(diags), diags


def test_a_liquidation_distance_outside_1_to_10000_bps_is_refused(
    project: Path, cli: Callable[..., Run]
) -> None:
    for bad in ("0", "10001"):
        diags = _refused(
            cli, project, "deployment=paper_usdm", f"risk.min_liquidation_distance_bps={bad}"
        )
        assert "risk.min_liquidation_distance_bps" in _paths(diags), diags


def test_leverage_on_a_spot_exchange_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    diags = _refused(cli, project, f"+{BTC}.leverage=3")
    assert any("a derivative's setting (USD-M, or a swap)" in d["message"] for d in diags), diags


def test_the_engine_refuses_the_same_settings(tmp_path: Path) -> None:
    """The Rust side of the contract: a manifest the compiler would not write is refused by
    the engine's own rules, naming the field."""
    manifest: dict[str, Any] = json.loads((CONTRACT / "example.manifest.json").read_text())
    name, exchange = next(iter(manifest["exchanges"].items()))
    symbol = next(iter(exchange["instruments"]))
    exchange["instruments"][symbol]["leverage"] = 3
    manifest["content_sha256"] = content_sha256(manifest)
    rules = {(v["path"], v["rule"]) for v in engine.validate_manifest(dumps(manifest), tmp_path)}
    path = f"exchanges.{name}.instruments.{symbol}.leverage"
    assert exchange["market"] == "spot"
    assert (path, "instrument.derivative_setting") in rules, rules


def test_plan_classes_of_leverage_and_margin_type() -> None:
    more = classify(f"{BTC}.leverage", 5, 10)
    assert (more.change_class, more.critical) == (ChangeClass.LOOSEN, True)
    less = classify(f"{BTC}.leverage", 10, 5)
    assert less.change_class is ChangeClass.TIGHTEN
    to_cross = classify(f"{BTC}.margin_type", "isolated", "cross")
    assert (to_cross.change_class, to_cross.critical) == (ChangeClass.LOOSEN, True)
    assert classify(f"{BTC}.margin_type", "cross", "isolated").change_class is ChangeClass.TIGHTEN
    closer = classify("risk.min_liquidation_distance_bps", 500, 100)
    assert (closer.change_class, closer.critical) == (ChangeClass.LOOSEN, True)
