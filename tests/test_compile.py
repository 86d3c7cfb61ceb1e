"""The compiler end to end: deterministic output, all-or-nothing writes, every diagnostic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError
from appliance.config.manifest import content_sha256, load
from tests.conftest import ROOT, Run

THREE_BROKEN_RULES = [
    "deployment=prod_example",
    "hosts.ny4_a.threads.strategy=1",
    "hosts.ny4_a.rings.market_data.slots=1000",
    "risk.instruments.BTCUSDT.max_order_notional=100000",
]


def _diagnostics(root: Path, overrides: list[str]) -> list[tuple[str, str, str | None]]:
    with pytest.raises(ConfigError) as info:
        compile_config(root, overrides)
    return [(d.path, d.rule, d.source) for d in info.value.diagnostics]


def test_default_compiles_to_one_manifest(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("compile", root=project)
    assert run.exit_code == 0, run.stderr
    build = project / "build" / "paper_local"
    assert sorted(p.name for p in build.iterdir()) == [
        "index.json",
        "local.manifest.json",
        "local.sources.json",
    ]
    sources = json.loads((build / "local.sources.json").read_text())
    assert sources["risk.max_daily_loss"] == "conf/risk/conservative.yaml"
    manifest = json.loads((build / "local.manifest.json").read_text())
    assert manifest["deployment"] == {"mode": "paper", "name": "paper_local"}
    assert manifest["content_sha256"] == content_sha256(manifest)
    index = json.loads((build / "index.json").read_text())
    assert index["manifests"]["local"]["content_sha256"] == manifest["content_sha256"]


def test_same_input_gives_byte_identical_output(project: Path, cli: Callable[..., Run]) -> None:
    overrides = ["deployment=prod_example", "risk.max_daily_loss=5000"]
    assert cli("compile", *overrides, root=project).exit_code == 0
    first = {p.name: p.read_bytes() for p in (project / "build/prod_example").iterdir()}
    assert cli("compile", *overrides, root=project).exit_code == 0
    second = {p.name: p.read_bytes() for p in (project / "build/prod_example").iterdir()}
    assert first == second
    assert set(first) == {
        "index.json",
        "ny4_a.manifest.json",
        "ny4_a.sources.json",
        "ny4_b.manifest.json",
        "ny4_b.sources.json",
    }


def test_override_reaches_the_manifest(project: Path) -> None:
    result = compile_config(project, ["deployment=prod_example", "risk.max_daily_loss=5000"])
    for built in result.manifests:
        assert json.loads(built.text)["risk"]["max_daily_loss"] == "5000"
        assert json.loads(built.text)["provenance"]["overrides"] == [
            "deployment=prod_example",
            "risk.max_daily_loss=5000",
        ]


def test_three_broken_rules_give_three_diagnostics_and_no_output(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("compile", *THREE_BROKEN_RULES, root=project)
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.count("error: ") == 3
    for needle in (
        "hosts.ny4_a.threads.strategy",
        "thread.hot_core_isolated",
        "hosts.ny4_a.rings.market_data.slots",
        "ring.power_of_two",
        "risk.instruments.BTCUSDT.max_order_notional",
        "risk.order_within_position",
        "replaces conf/host/ny4_a.yaml",
        "replaces conf/risk/prod.yaml",
    ):
        assert needle in run.stderr
    assert not (project / "build").exists()


def test_failed_compile_keeps_the_previous_build(project: Path, cli: Callable[..., Run]) -> None:
    assert cli("compile", "deployment=prod_example", root=project).exit_code == 0
    before = {p.name: p.read_bytes() for p in (project / "build/prod_example").iterdir()}
    assert cli("compile", *THREE_BROKEN_RULES, root=project).exit_code == 2
    after = {p.name: p.read_bytes() for p in (project / "build/prod_example").iterdir()}
    assert before == after
    assert [p.name for p in (project / "build").iterdir()] == ["prod_example"]


def test_diagnostics_name_the_file_a_value_came_from(project: Path) -> None:
    risk = project / "conf/risk/prod.yaml"
    risk.write_text(risk.read_text().replace('max_drawdown: "4000"', 'max_drawdown: "-4000"'))
    host = project / "conf/host/ny4_b.yaml"
    host.write_text(host.read_text().replace("gateway: 4", "gateway: 3"))
    found = _diagnostics(project, ["deployment=prod_example"])
    assert ("risk.max_drawdown", "schema.value_error", "conf/risk/prod.yaml") in found
    assert ("hosts.ny4_b.threads.gateway", "thread.core_used_once", "conf/host/ny4_b.yaml") in found


def test_every_problem_is_reported_at_once(project: Path) -> None:
    found = _diagnostics(
        project,
        [
            "deployment=prod_example",
            "hosts.ny4_a.threads.gateway=10",  # SMT sibling of 2? no: 10 is sibling of 2
            "hosts.ny4_a.cpu.isolated=[2,3,4,5,6,7,10]",
            "exchanges.binance_spot.instruments.BTCUSDT.tick_size=abc",
            "strategies.mm_usdm_btc.params.quote_qty=0.0055",
            "risk.order_rate.burst=2",
            "+hosts.ny4_b.turbo=true",
        ],
    )
    rules = {(path, rule) for path, rule, _ in found}
    assert ("hosts.ny4_a.threads.gateway", "thread.smt_sibling") in rules
    assert ("exchanges.binance_spot.instruments.BTCUSDT.tick_size", "schema.value_error") in rules
    assert ("strategies.mm_usdm_btc.params.quote_qty", "strategy.lot_multiple") in rules
    assert ("risk.order_rate.burst", "risk.burst_at_least_rate") in rules
    assert ("hosts.ny4_b.turbo", "schema.extra_forbidden") in rules


@pytest.mark.parametrize(
    ("overrides", "path", "rule"),
    [
        (["hosts.local.threads.strategy=7"], "hosts.local.threads.strategy", "thread.core_exists"),
        (["deployment.mode=live"], "exchanges.sim_binance.venue", "live.no_sim"),
        (["deployment.mode=live"], "exchanges.sim_binance.credentials", "live.credentials"),
        (["deployment.mode=live"], "hosts.local.threads.strategy", "thread.pinned_in_live"),
        (["hosts.local.rings.market_data.slots=1048576"], "hosts.local.rings", "ring.fits_budget"),
        (
            ["hosts.local.rings.orders.slot_bytes=100"],
            "hosts.local.rings.orders.slot_bytes",
            "ring.slot_bytes",
        ),
        (
            ["strategies.mm_btcusdt.instruments=[ETHUSDT]"],
            "strategies.mm_btcusdt.instruments[0]",
            "strategy.instrument_listed",
        ),
        (
            ["strategies.mm_btcusdt.exchange=nowhere"],
            "strategies.mm_btcusdt.exchange",
            "strategy.exchange_declared",
        ),
        (
            ["strategies.mm_btcusdt.params.quote_qty=0.01"],
            "strategies.mm_btcusdt.params.quote_qty",
            "strategy.within_risk",
        ),
        (
            ["risk.instruments.BTCUSDT.max_order_qty=1"],
            "risk.instruments.BTCUSDT.max_order_qty",
            "risk.order_within_position",
        ),
        (
            ["exchanges.sim_binance.sim.capture=data/missing.gz"],
            "exchanges.sim_binance.sim.capture",
            "sim.capture_exists",
        ),
        (
            [
                "exchanges.sim_binance.market=usdm",
                "exchanges.sim_binance.venue=binance_spot",
                "exchanges.sim_binance.sim=null",
            ],
            "exchanges.sim_binance.market",
            "exchange.venue_market",
        ),
        (
            ["deployment.engines.paper_1.host=elsewhere"],
            "deployment.engines.paper_1.host",
            "engine.host_declared",
        ),
        (
            ["hosts.local.cpu.housekeeping=[0,5]"],
            "hosts.local.cpu.housekeeping",
            "cpu.subset_of_cores",
        ),
        (["hosts.local.nic.numa_node=3"], "hosts.local.nic.numa_node", "nic.numa_node"),
        (["risk.max_daily_loss=0"], "risk.max_daily_loss", "schema.value_error"),
        (["risk.max_daily_loss=1e-9"], "risk.max_daily_loss", "schema.value_error"),
        (["risk.max_open_orders=abc"], "risk.max_open_orders", "schema.int_type"),
        # No silent coercion (issue 10): a YAML 1.1 word or 0/1 is not a boolean, and a
        # boolean is not an integer; the kill switch must never be disarmed by `no`.
        (["risk.kill_switch.enabled=no"], "risk.kill_switch.enabled", "schema.bool_type"),
        (["risk.kill_switch.enabled=0"], "risk.kill_switch.enabled", "schema.bool_type"),
        (
            ["risk.kill_switch.cancel_on_trigger=off"],
            "risk.kill_switch.cancel_on_trigger",
            "schema.bool_type",
        ),
        (["risk.order_rate.per_second=true"], "risk.order_rate.per_second", "schema.int_type"),
        (
            ["deployment=paper_taker", "targets.local.become=yes"],
            "targets.local.become",
            "schema.bool_type",
        ),
        (["~risk.feed_stale_ms"], "risk.feed_stale_ms", "schema.missing"),
    ],
)
def test_each_rule_is_enforced(project: Path, overrides: list[str], path: str, rule: str) -> None:
    assert (path, rule) in {(p, r) for p, r, _ in _diagnostics(project, overrides)}


def test_a_literal_secret_is_refused_and_never_printed(
    project: Path, cli: Callable[..., Run]
) -> None:
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    run = cli(
        "compile",
        "deployment=prod_example",
        f"exchanges.binance_spot.credentials.api_key={key}",
        f"+exchanges.binance_spot.note={key[::-1]}",
        root=project,
    )
    assert run.exit_code == 2
    assert key not in run.stderr + run.stdout and key[::-1] not in run.stderr + run.stdout
    assert "exchanges.binance_spot.credentials.api_key" in run.stderr
    assert "secret.literal" in run.stderr
    assert "<redacted 64 characters>" in run.stderr
    assert not (project / "build").exists()


def test_show_redacts_and_names_sources(project: Path, cli: Callable[..., Run]) -> None:
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    run = cli(
        "show",
        "deployment=prod_example",
        f"exchanges.binance_usdm.credentials.api_secret={key}",
        root=project,
    )
    assert run.exit_code == 0
    assert key not in run.stdout
    assert "env:BINANCE_SPOT_API_KEY" in run.stdout
    line = next(ln for ln in run.stdout.splitlines() if "max_daily_loss" in ln)
    assert line.endswith("# conf/risk/prod.yaml")
    data = json.loads(cli("show", "--format", "json", root=project).stdout)
    assert data["values"]["risk.max_daily_loss"] == {
        "value": "200",
        "source": "conf/risk/conservative.yaml",
    }
    assert data["values"]["deployment.mode"]["source"] == "conf/deployment/paper_local.yaml"


def test_json_diagnostics_for_tools(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("validate", *THREE_BROKEN_RULES, "--format", "json", root=project)
    assert run.exit_code == 2
    data = json.loads(run.stdout)
    assert data["ok"] is False
    assert {d["rule"] for d in data["diagnostics"]} == {
        "thread.hot_core_isolated",
        "ring.power_of_two",
        "risk.order_within_position",
    }
    for d in data["diagnostics"]:
        assert set(d) == {"path", "value", "rule", "message", "source"}
        assert d["source"].startswith("command line override")


def test_bad_override_is_a_diagnostic_not_a_traceback(project: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "compile",
            "risk.no_such_key=1",
            "--root",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "risk.no_such_key" in proc.stderr
    assert "error:" in proc.stderr


def test_compiled_manifests_pass_the_python_reader(project: Path) -> None:
    for deployment in ("paper_local", "paper_taker", "prod_example"):
        for built in compile_config(project, [f"deployment={deployment}"]).manifests:
            assert load(built.text).engine.id == built.engine_id


def test_provenance_records_git_state() -> None:
    result = compile_config(ROOT, [])
    provenance = json.loads(result.manifests[0].text)["provenance"]
    assert provenance["compiler"].startswith("appliance ")
    assert provenance["choices"]["deployment"] == "paper_local"
    assert provenance["git_commit"] is None or len(provenance["git_commit"]) == 40
