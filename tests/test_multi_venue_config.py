"""Several venues in one engine, declared (issue 16 point 6; docs/venues.md): a market
maker's signal book on another exchange and per-asset limits across venues. Each bad input is
a diagnostic with path, value, rule and file, exit 2, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config.compiler import compile_config
from tests.conftest import Run

MULTI = "deployment=paper_multi"
SIGNAL = "strategies.mm_okx_binance.params.signal"


def test_paper_multi_carries_the_signal_and_the_asset_limit(project: Path) -> None:
    (m,) = compile_config(project, [MULTI]).manifests
    manifest = json.loads(m.text)
    mm = manifest["strategies"]["mm_okx_binance"]
    assert (mm["exchange"], mm["instruments"]) == ("okx", ["BTCUSDT"])
    assert mm["params"]["signal"] == {
        "exchange": "sim_binance",
        "instrument": "BTCUSDT",
        "basis_updates": 200,
    }
    assert manifest["risk"]["assets"] == {
        "BTC": {"max_position": "0.03", "instruments": ["BTCUSDT"]}
    }
    # A deployment without them renders neither key (its manifest and hash as before).
    (plain,) = compile_config(project, ["deployment=paper_okx"]).manifests
    body = json.loads(plain.text)
    assert "assets" not in body["risk"]
    assert "signal" not in body["strategies"]["mm_okx"]["params"]


@pytest.mark.parametrize(
    ("override", "path", "value", "rule", "words"),
    [
        (
            f"{SIGNAL}.exchange=kraken",
            f"{SIGNAL}.exchange",
            "kraken",
            "strategy.signal_exchange",
            "not an exchange of this engine",
        ),
        (
            f"{SIGNAL}.instrument=ETHUSDT",
            f"{SIGNAL}.instrument",
            "ETHUSDT",
            "strategy.signal_instrument",
            "not an instrument of exchange sim_binance",
        ),
        (
            f"{SIGNAL}.exchange=okx",
            f"{SIGNAL}.exchange",
            "okx",
            "strategy.signal_instrument",
            "the quoted instrument itself",
        ),
        (
            "risk.assets.BTC.instruments=[BTCUSDT,XBTUSD]",
            "risk.assets.BTC.instruments[1]",
            "XBTUSD",
            "risk.asset_instrument",
            "no risk.instruments entry",
        ),
    ],
)
def test_a_bad_multi_venue_config_is_refused_with_path_value_rule_and_file(
    project: Path,
    cli: Callable[..., Run],
    override: str,
    path: str,
    value: str,
    rule: str,
    words: str,
) -> None:
    run = cli("compile", MULTI, override, "--format", "json", root=project)
    assert run.exit_code == 2, run.stdout + run.stderr
    found = [d for d in json.loads(run.stdout)["diagnostics"] if d["rule"] == rule]
    assert len(found) == 1, run.stdout
    (d,) = found
    assert (d["path"], d["value"]) == (path, value)
    assert words in d["message"]
    assert d["source"].startswith(f"command line override {override}")
    assert not (project / "build").exists(), "nothing is written"
    text = cli("validate", MULTI, override, root=project)
    assert text.exit_code == 2 and f"rule:  {rule}" in text.stderr and path in text.stderr
