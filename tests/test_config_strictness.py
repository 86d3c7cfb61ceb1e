"""Issue 10's classes of config faults, each through the CLI: bad values refused, good values
kept to the digit, strict JSON, redaction by content, every problem at once, and provenance
that names the change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config.compiler import compile_config
from tests.conftest import Run

# A key-shaped literal (the shape of an exchange API key): it must never be printed back.
LITERAL = "Xq7Lm2Pz9Rk4Tw8Vb3Nc6Hd1Jf5Gs0Ay7Ue2Oi9"


def _strict_json(text: str) -> Any:
    """Parse as RFC 8259 JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _diagnostics(run: Run) -> list[dict[str, Any]]:
    assert run.exit_code == 2, run.stdout + run.stderr
    body = _strict_json(run.stdout)
    assert body["ok"] is False
    diags: list[dict[str, Any]] = body["diagnostics"]
    return diags


def _manifest_value(root: Path, overrides: list[str], *path: str) -> Any:
    compiled = compile_config(root, overrides)
    node: Any = json.loads(compiled.manifests[0].text)
    for part in path:
        node = node[part]
    return node


# --- 1. bad values are refused -------------------------------------------------------------


@pytest.mark.parametrize(
    "override",
    [
        "risk.max_daily_loss=1e3",
        "risk.instruments.BTCUSDT.max_order_notional=1e3",
        "risk.max_drawdown=1E-5",
        "risk.max_daily_loss=inf",
        "risk.max_daily_loss=nan",
        "risk.max_daily_loss=1e400",
        "risk.max_daily_loss='5\n'",
        "risk.max_daily_loss=' 5'",
        "risk.instruments={BTCUSDT:{max_position:1e-2,max_order_qty:'0.005',"
        "max_order_notional:'400',max_position_notional:'4000',price_band_bps:50}}",
    ],
)
def test_exponent_non_finite_and_padded_decimals_are_refused(
    project: Path, cli: Callable[..., Run], override: str
) -> None:
    diags = _diagnostics(cli("validate", override, "--format", "json", root=project))
    key = override.partition("=")[0]
    assert [d["path"].startswith(key) for d in diags] == [True], diags
    assert diags[0]["rule"] == "schema.value_error"
    assert diags[0]["source"].startswith("command line override ")


def test_an_exponent_in_a_yaml_file_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    risk = project / "conf" / "risk" / "conservative.yaml"
    risk.write_text(risk.read_text().replace('max_daily_loss: "200"', "max_daily_loss: 2e2"))
    diags = _diagnostics(cli("validate", "--format", "json", root=project))
    assert [(d["path"], d["value"], d["source"]) for d in diags] == [
        ("risk.max_daily_loss", "2e2", "conf/risk/conservative.yaml")
    ]


# --- 2. good values are kept to the digit --------------------------------------------------


def test_small_lot_sizes_are_accepted_as_written(project: Path) -> None:
    lot = _manifest_value(
        project,
        ["deployment=prod_example", "exchanges.binance_spot.instruments.BTCUSDT.lot_size=0.00001"],
        "exchanges",
        "binance_spot",
        "instruments",
        "BTCUSDT",
        "lot_size",
    )
    assert lot == "0.00001"


def test_unquoted_decimals_in_yaml_keep_their_text(project: Path) -> None:
    exchange = project / "conf" / "exchange" / "sim_binance_spot.yaml"
    text = exchange.read_text()
    assert 'lot_size: "0.00001"' in text, "fixture changed"
    exchange.write_text(text.replace('lot_size: "0.00001"', "lot_size: 0.00001"))
    lot = _manifest_value(project, [], "exchanges")
    assert [i["lot_size"] for e in lot.values() for i in e["instruments"].values()] == ["0.00001"]


@pytest.mark.parametrize("value", ["1234567890.12345678", "9999999999.99999999", "0.00000001"])
def test_no_digit_is_lost_through_a_float(project: Path, value: str) -> None:
    got = _manifest_value(project, [f"risk.max_gross_exposure={value}"], "risk")
    assert got["max_gross_exposure"] == value


def test_more_decimals_than_the_engine_holds_are_refused_not_rounded(
    project: Path, cli: Callable[..., Run]
) -> None:
    diags = _diagnostics(
        cli("validate", "risk.max_gross_exposure=0.123456789", "--format", "json", root=project)
    )
    assert [d["path"] for d in diags] == ["risk.max_gross_exposure"]
    assert "8 fractional digits" in diags[0]["message"]


# --- 3. strict JSON ------------------------------------------------------------------------


def test_json_output_is_strict_with_non_finite_values(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli(
        "validate",
        "risk.max_daily_loss=inf",
        "risk.max_drawdown=NaN",
        "+risk.extra=1e400",
        "--format",
        "json",
        root=project,
    )
    assert run.exit_code == 2
    body = _strict_json(run.stdout)
    values = {d["path"]: d["value"] for d in body["diagnostics"]}
    assert values["risk.max_daily_loss"] == "inf"
    assert values["risk.max_drawdown"] == "NaN"


def test_jsonout_writes_non_finite_floats_as_strings() -> None:
    from appliance import jsonout

    text = jsonout.dumps({"a": [float("inf"), float("-inf"), float("nan"), 1.5]})
    assert _strict_json(text) == {"a": ["inf", "-inf", "nan", 1.5]}


# --- 4. redaction by content ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        [f"exchanges.sim_binance.credentials={{api_key:{LITERAL},api_secret:env:X}}"],
        [f"exchanges.sim_binance.credentials={{api_key:'{LITERAL}',api_secret:env:X}}"],
        [f"strategies.mm_btcusdt.instruments=[BTCUSDT,{LITERAL}]"],
        [f"+strategies.mm_btcusdt.params.signal_key='{LITERAL}'"],
        [f"+risk.{LITERAL}=1"],
        [f"risk.{LITERAL}=1"],
        [f"+exchanges.sim_binance.credentials.api_key={LITERAL}"],
        [f"exchanges.sim_binance.credentials={{api_key:short,api_secret:{LITERAL}}}"],
    ],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_literal_secret_is_never_printed(
    project: Path, cli: Callable[..., Run], overrides: list[str], fmt: str
) -> None:
    run = cli("validate", *overrides, "--format", fmt, root=project)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert LITERAL not in run.stdout + run.stderr
    assert "<redacted" in run.stdout + run.stderr
    if fmt == "json":
        _strict_json(run.stdout)


def test_show_never_prints_a_literal_inside_a_value(project: Path, cli: Callable[..., Run]) -> None:
    for fmt in ("yaml", "json"):
        run = cli("show", f"+risk.note='key {LITERAL}'", "--format", fmt, root=project)
        assert LITERAL not in run.stdout + run.stderr
        assert "<redacted" in run.stdout


def test_short_credentials_in_a_dict_are_redacted_by_their_key() -> None:
    from appliance.config.secrets import redact_override

    shown = redact_override("x.credentials={api_key:abc123,api_secret:env:BINANCE_SECRET}")
    assert shown == (
        "x.credentials={api_key:<redacted 6 characters>,api_secret:env:BINANCE_SECRET}"
    )


# --- 5. every problem at once --------------------------------------------------------------


def test_every_bad_override_is_reported_with_the_rest_of_the_checks(
    project: Path, cli: Callable[..., Run]
) -> None:
    diags = _diagnostics(
        cli(
            "validate",
            "risk.bogus_key=3",
            "risk=aggressive",
            "risk.max_daily_loss=-5",
            "hosts.local.nope=1",
            "--format",
            "json",
            root=project,
        )
    )
    got = {(d["path"], d["rule"]) for d in diags}
    assert got == {
        ("risk.bogus_key", "compose"),
        ("risk", "compose"),
        ("hosts.local.nope", "compose"),
        ("risk.max_daily_loss", "schema.value_error"),
    }, diags


def test_a_bad_model_file_is_reported_with_schema_faults(
    project: Path, cli: Callable[..., Run]
) -> None:
    diags = _diagnostics(
        cli(
            "validate",
            "deployment=paper_model",
            "strategies.model_btcusdt.params.model.path=models/none/model.onnx",
            "risk.max_daily_loss=-5",
            "--format",
            "json",
            root=project,
        )
    )
    paths = {d["path"] for d in diags}
    assert "risk.max_daily_loss" in paths
    assert any(p.startswith("strategies.model_btcusdt.params.model") for p in paths), diags


# --- 6. provenance names the change --------------------------------------------------------


def test_a_deletion_is_named_as_such(project: Path, cli: Callable[..., Run]) -> None:
    diags = _diagnostics(cli("validate", "~risk.max_daily_loss", "--format", "json", root=project))
    assert [(d["path"], d["rule"]) for d in diags] == [("risk.max_daily_loss", "schema.missing")]
    assert diags[0]["source"].startswith("command line deletion ~risk.max_daily_loss")


@pytest.mark.parametrize(
    ("override", "path"),
    [("risk=aggressive", "risk"), ("host@hosts.local=laptop", "hosts.local")],
)
def test_an_unknown_group_option_is_reported_at_its_group(
    project: Path, cli: Callable[..., Run], override: str, path: str
) -> None:
    diags = _diagnostics(cli("validate", override, "--format", "json", root=project))
    assert [(d["path"], d["source"]) for d in diags] == [
        (path, f"command line override {override}")
    ]
    assert "available:" in diags[0]["message"]


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        (
            ["risk.instruments.BTCUSDT.max_position_notional=100"],
            "risk.instruments.BTCUSDT.max_position_notional",
        ),
        (["risk.order_rate.per_second=50"], "risk.order_rate.per_second"),
        (
            ["deployment=prod_example", "hosts.ny4_a.cpu.housekeeping=[0,1,2]"],
            "hosts.ny4_a.cpu.housekeeping",
        ),
        (
            ["deployment=prod_example", "hosts.ny4_a.memory.hugepages=1"],
            "hosts.ny4_a.memory.hugepages",
        ),
    ],
)
def test_a_cross_check_names_the_key_that_was_edited(
    project: Path, cli: Callable[..., Run], overrides: list[str], path: str
) -> None:
    diags = _diagnostics(cli("validate", *overrides, "--format", "json", root=project))
    assert [d["path"] for d in diags] == [path], diags
    assert diags[0]["source"].startswith(f"command line override {overrides[-1]}")
