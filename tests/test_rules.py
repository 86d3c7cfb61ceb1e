"""One rule, one place (issue 10): the manifest-level rules are the engine's validator, called in
process by the compiler and the Python reader; the config-level ones stay in checks.py. Every
problem is reported at once, whatever section failed its schema."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance import engine
from appliance.config.diagnostics import ConfigError
from appliance.config.manifest import content_sha256, dumps, load
from tests.conftest import CONTRACT, ROOT, Run

EXAMPLE = (CONTRACT / "example.manifest.json").read_text()
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def _validate(cli: Callable[..., Run], project: Path, *overrides: str) -> list[tuple[str, str]]:
    """(path, rule) of each diagnostic of `appliance validate deployment=prod_example ...`."""
    run = cli("validate", "deployment=prod_example", *overrides, "--format", "json", root=project)
    assert run.exit_code == 2, run.stderr
    assert KEY not in run.stdout + run.stderr
    data = json.loads(run.stdout)
    assert data["ok"] is False
    return [(d["path"], d["rule"]) for d in data["diagnostics"]]


def _edited(**host_threads: int) -> str:
    manifest = json.loads(EXAMPLE)
    manifest["host"]["threads"].update(host_threads)
    manifest["content_sha256"] = content_sha256(manifest)
    return dumps(manifest)


def test_two_faults_on_one_host_are_both_reported(project: Path, cli: Callable[..., Run]) -> None:
    found = _validate(
        cli, project, "hosts.ny4_a.threads.gateway=9", "hosts.ny4_a.memory.hugepages=4"
    )
    assert found == [
        ("hosts.ny4_a.threads.gateway", "thread.hot_core_isolated"),
        # The budget rule read the override that was changed: it is named, not `rings`.
        ("hosts.ny4_a.memory.hugepages", "ring.fits_budget"),
    ]


def test_a_scrape_target_needs_a_fixed_metrics_port(project: Path, cli: Callable[..., Run]) -> None:
    # ny4's target publishes Prometheus targets: port 0 would publish one nothing answers on.
    found = _validate(
        cli,
        project,
        "deployment.engines.spot_a.metrics.listen=127.0.0.1:0",
        "deployment.engines.usdm_b.metrics.tick_to_order_p99_alert_us=0",
    )
    assert sorted(found) == [
        ("deployment.engines.spot_a.metrics.listen", "engine.metrics_scrape_port"),
        (
            "deployment.engines.usdm_b.metrics.tick_to_order_p99_alert_us",
            "schema.greater_than_equal",
        ),
    ]


def test_a_literal_key_does_not_hide_an_unknown_instrument(
    project: Path, cli: Callable[..., Run]
) -> None:
    found = _validate(
        cli,
        project,
        f"exchanges.binance_spot.credentials.api_key={KEY}",
        "strategies.mm_spot_btc.instruments=[DOGEUSDT]",
    )
    assert ("exchanges.binance_spot.credentials.api_key", "secret.literal") in found
    assert ("strategies.mm_spot_btc.instruments[0]", "strategy.instrument_listed") in found
    assert ("strategies.mm_spot_btc.instruments[0]", "strategy.risk_limits") in found


def test_a_failed_host_or_risk_section_hides_no_other_rule(
    project: Path, cli: Callable[..., Run]
) -> None:
    # ny4_b's host has an unknown key and the risk section a bad value: the engine on ny4_b
    # is still checked (its strategy's lot), and so is ny4_a's host, each reported once.
    found = _validate(
        cli,
        project,
        "+hosts.ny4_b.turbo=true",
        "risk.max_drawdown=-1",
        "strategies.mm_usdm_btc.params.quote_qty=0.0055",
        "hosts.ny4_a.threads.gateway=9",
    )
    assert sorted(found) == sorted(
        [
            ("hosts.ny4_b.turbo", "schema.extra_forbidden"),
            ("risk.max_drawdown", "schema.value_error"),
            ("strategies.mm_usdm_btc.params.quote_qty", "strategy.lot_multiple"),
            ("hosts.ny4_a.threads.gateway", "thread.hot_core_isolated"),
        ]
    )


def test_compiler_reports_every_engine(project: Path, cli: Callable[..., Run]) -> None:
    found = _validate(
        cli, project, "hosts.ny4_a.threads.gateway=9", "hosts.ny4_b.threads.gateway=9"
    )
    assert sorted(found) == sorted(
        {
            ("hosts.ny4_a.threads.gateway", "thread.hot_core_isolated"),
            ("hosts.ny4_b.threads.gateway", "thread.hot_core_isolated"),
        }
    )


def test_the_binding_returns_violations_and_raises_on_structure() -> None:
    assert engine.validate_manifest(EXAMPLE) == []
    assert engine.validate_manifest(_edited(gateway=9, strategy=99)) == [
        {
            "path": "host.threads.strategy",
            "rule": "thread.core_exists",
            "message": "core 99 is not in cpu.cores [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "
            "13, 14, 15] (the host has no such core)",
        },
        {
            "path": "host.threads.gateway",
            "rule": "thread.hot_core_isolated",
            "message": "core 9 is not in cpu.isolated [2, 3, 4, 5, 6, 7] (hot threads must run "
            "on isolated cores)",
        },
    ]
    for bad in ("{", EXAMPLE.replace('"gateway": 4', '"gateway": 5')):  # syntax, hash
        with pytest.raises(engine.ManifestError):
            engine.validate_manifest(bad)


def test_the_python_reader_reports_the_engine_rules_with_values() -> None:
    with pytest.raises(ConfigError) as info:
        load(_edited(gateway=9))
    (d,) = info.value.diagnostics
    assert (d.path, d.value, d.rule) == ("host.threads.gateway", 9, "thread.hot_core_isolated")
    assert d.message.startswith("core 9 is not in cpu.isolated")


def test_every_rule_is_documented_in_one_table() -> None:
    docs = (ROOT / "docs/manifest.md").read_text()
    rust = ROOT / "engine/manifest/src"
    ids: set[str] = set()
    for name in ("validate.rs", "features.rs", "files.rs", "error.rs"):
        body = (rust / name).read_text().split("#[cfg(test)]")[0]
        ids |= set(re.findall(r'"([a-z]+\.[a-z0-9_]+)",\s*\n', body))
    checks = (ROOT / "appliance/config/checks.py").read_text()
    ids |= set(re.findall(r'^\s+"([a-z]+\.[a-z_]+)",\s*$', checks, re.M))
    assert len(ids) > 50, ids
    missing = sorted(i for i in ids if f"`{i}`" not in docs)
    assert missing == []
