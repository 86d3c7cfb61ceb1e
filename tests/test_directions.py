"""The direction table (appliance/config/directions.py) covers the manifest schema exactly,
and every rule of the plan's risk classes holds (a test per rule)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from appliance.config.directions import FIELDS, Direction, rule_for
from appliance.config.schema import Manifest
from appliance.plan.diff import ABSENT, ChangeClass, Verdict, classify
from tests.conftest import Run


def _models(annotation: Any) -> Iterator[Any]:
    """The types inside an annotation (Annotated, unions, Optional)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _models(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models(arg)
    else:
        yield annotation


def schema_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every path a plan can report for the model: leaves, nullable sections (null <-> set)
    and named entries of a dict (`exchanges.*`, added or removed as a whole)."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        nullable = False
        for typ in _models(info.annotation):
            if typ is type(None):
                nullable = True
            elif isinstance(typ, type) and issubclass(typ, BaseModel):
                out |= schema_paths(typ, path + ".")
            elif typing.get_origin(typ) is dict:
                value = typing.get_args(typ)[1]
                inner = [t for t in _models(value) if t is not type(None)]
                out.add(f"{path}.*")
                for t in inner:
                    if isinstance(t, type) and issubclass(t, BaseModel):
                        out |= schema_paths(t, f"{path}.*.")
            else:
                out.add(path)
        submodels = [
            t for t in _models(info.annotation) if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if nullable and submodels:
            out.add(path)
    return out


def test_every_manifest_field_has_a_direction() -> None:
    fields = schema_paths(Manifest)
    missing = sorted(fields - set(FIELDS))
    assert not missing, f"manifest fields without an entry in directions.FIELDS: {missing}"


def test_every_direction_entry_is_a_manifest_field() -> None:
    fields = schema_paths(Manifest)
    # Inner nodes that are sections of their own (a model file, a feature set) also have one.
    sections = {p.rsplit(".", 1)[0] for p in fields} | {
        p.rsplit(".", 2)[0] for p in fields if p.count(".") > 1
    }
    stale = sorted(set(FIELDS) - fields - sections)
    assert not stale, f"directions.FIELDS entries that name no manifest field: {stale}"


def test_a_literal_key_wins_over_a_name() -> None:
    assert rule_for("host.rings.backing") == ("host.rings.backing", FIELDS["host.rings.backing"])
    assert rule_for("host.threads.feeds.binance_spot")[0] == "host.threads.feeds.*"  # type: ignore[index]
    assert rule_for("risk.instruments.BTCUSDT.max_position")[0] == (  # type: ignore[index]
        "risk.instruments.*.max_position"
    )
    assert rule_for("nothing.here") is None


TRADED = ({"ETHUSDT", "SOLUSDT"}, {"ETHUSDT", "SOLUSDT"})


def _v(path: str, before: Any, after: Any, traded: Any = TRADED) -> Verdict:
    return classify(path, before, after, traded)


LOOSEN, TIGHTEN = ChangeClass.LOOSEN, ChangeClass.TIGHTEN

# (param, a smaller value, a larger value, the class of going larger)
STRATEGY_PARAMS = [
    ("quote_qty", "0.05", "0.1", LOOSEN),
    ("max_inventory", "1", "3", LOOSEN),
    ("order_qty", "1", "1.5", LOOSEN),
    ("max_slippage", "0.05", "5", LOOSEN),
    ("requote_threshold_ticks", 2, 4, LOOSEN),
    ("sell_below", "-0.2", "-0.1", LOOSEN),
    ("half_spread_ticks", 2, 3, TIGHTEN),
    ("inventory_skew_ticks", 4, 8, TIGHTEN),
    ("threshold", "0.7", "0.9", TIGHTEN),
    ("cooldown_ms", 250, 500, TIGHTEN),
    ("buy_above", "0.1", "0.2", TIGHTEN),
]


@pytest.mark.parametrize(("param", "small", "large", "up"), STRATEGY_PARAMS)
def test_each_strategy_parameter_has_a_direction(
    param: str, small: Any, large: Any, up: ChangeClass
) -> None:
    path = f"strategies.s.params.{param}"
    down = TIGHTEN if up is LOOSEN else LOOSEN
    assert _v(path, small, large).change_class is up
    assert _v(path, large, small).change_class is down
    assert ("looser" if up is LOOSEN else "tighter") in _v(path, small, large).reason


def test_every_strategy_parameter_is_reasoned() -> None:
    """Each numeric strategy parameter is in STRATEGY_PARAMS or declared neutral/artifact."""
    params = {p.split(".")[-1] for p in FIELDS if p.startswith("strategies.*.params.")}
    numeric = {
        p.split(".")[-1]
        for p, r in FIELDS.items()
        if p.startswith("strategies.*.params.")
        and r.direction in (Direction.HIGHER_LOOSER, Direction.HIGHER_TIGHTER)
    }
    assert numeric == {p for p, *_ in STRATEGY_PARAMS}
    assert {"reference", "levels", "model", "features"} <= params


def test_max_slippage_raised_100x_is_a_critical_loosening() -> None:
    verdict = _v("strategies.imb.params.max_slippage", "0.05", "5")
    assert (verdict.change_class, verdict.critical) == (LOOSEN, True)
    assert "x100" in verdict.reason


def test_adding_an_instrument_to_a_strategy_loosens() -> None:
    verdict = _v("strategies.mm.instruments", ["ETHUSDT"], ["ETHUSDT", "SOLUSDT"])
    assert (verdict.change_class, verdict.topology) == (LOOSEN, True)
    assert "SOLUSDT added: new exposure" in verdict.reason


def test_removing_an_instrument_from_a_strategy_tightens() -> None:
    verdict = _v("strategies.imb.instruments", ["SOLUSDT", "BNBUSDT"], ["BNBUSDT"])
    assert (verdict.change_class, verdict.topology) == (TIGHTEN, True)
    assert "SOLUSDT removed" in verdict.reason


def test_swapping_an_instrument_loosens() -> None:
    verdict = _v("strategies.mm.instruments", ["ETHUSDT"], ["SOLUSDT"])
    assert verdict.change_class is LOOSEN
    assert "SOLUSDT added" in verdict.reason and "ETHUSDT removed" in verdict.reason


@pytest.mark.parametrize("entity", ["exchanges.binance_spot", "strategies.mm_spot_sol"])
def test_adding_an_exchange_or_strategy_loosens_and_removing_tightens(entity: str) -> None:
    added, removed = _v(entity, ABSENT, {"x": 1}), _v(entity, {"x": 1}, ABSENT)
    assert (added.change_class, added.topology) == (LOOSEN, True)
    assert (removed.change_class, removed.topology) == (TIGHTEN, True)
    assert "new exposure" in added.reason and "exposure ends" in removed.reason


def test_a_listed_instrument_nobody_trades_is_topology_only() -> None:
    path = "exchanges.binance_spot.instruments.XRPUSDT"
    assert _v(path, ABSENT, {"tick_size": "1"}).change_class is ChangeClass.TOPOLOGY
    assert _v("exchanges.binance_spot.instruments.SOLUSDT", ABSENT, {}).change_class is LOOSEN


def test_limits_follow_their_instrument() -> None:
    gone = _v("risk.instruments.SOLUSDT", {"max_position": "1"}, ABSENT, ({"SOLUSDT"}, set()))
    assert (gone.change_class, gone.topology) == (TIGHTEN, True)
    dropped = _v("risk.instruments.SOLUSDT", {"max_position": "1"}, ABSENT, TRADED)
    assert (dropped.change_class, dropped.critical) == (LOOSEN, True)
    arrive = _v("risk.instruments.SOLUSDT", ABSENT, {"max_position": "1"}, (set(), {"SOLUSDT"}))
    assert arrive.change_class is ChangeClass.TOPOLOGY


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        ("deployment.mode", "paper", "live"),
        ("risk.kill_switch.enabled", True, False),
        ("exchanges.x.venue", "sim", "binance_spot"),
    ],
)
def test_critical_loosenings(path: str, before: Any, after: Any) -> None:
    verdict = _v(path, before, after)
    assert (verdict.change_class, verdict.critical) == (LOOSEN, True)
    assert _v(path, after, before).change_class is TIGHTEN


def test_a_model_swap_is_a_critical_artifact() -> None:
    verdict = _v("strategies.m.params.model.sha256", "a" * 64, "b" * 64)
    assert (verdict.change_class, verdict.critical) == (ChangeClass.ARTIFACT, True)


@pytest.mark.parametrize(
    "path",
    [
        "exchanges.x.endpoints.ws",
        "exchanges.x.endpoints.rest",
        "exchanges.x.credentials.api_key",
        "exchanges.x.credentials.api_secret",
        "exchanges.x.credentials",
        "engine.bus.control",
    ],
)
def test_credentials_keys_and_endpoints_are_security(path: str) -> None:
    verdict = _v(path, "env:A", "env:B")
    assert verdict.change_class is ChangeClass.SECURITY
    assert "always reviewed" in verdict.reason


def test_housekeeping_cores_need_a_reboot() -> None:
    from appliance.plan.diff import needs_reboot

    assert needs_reboot("host.cpu.housekeeping") and needs_reboot("host.cpu.isolated")
    assert not needs_reboot("host.threads.strategy")


REPRO = ["deployment=prod_example"]


@pytest.fixture
def built(project: Path, cli: Callable[..., Run]) -> Path:
    assert cli("compile", "deployment=prod_example", root=project).exit_code == 0
    return project / "build" / "prod_example"


def _plan(
    cli: Callable[..., Run], project: Path, built: Path, *overrides: str, fmt: str = "json"
) -> Run:
    against = ["--against", str(built), "--format", fmt, "--detailed-exitcode"]
    return cli("plan", *REPRO, *overrides, *against, root=project)


def test_plan_removing_an_instrument_is_tighten_topology_with_reasons(
    built: Path, project: Path, cli: Callable[..., Run]
) -> None:
    run = _plan(cli, project, built, "strategies.imb_usdm_alts.instruments=[BNBUSDT]")
    assert run.exit_code == 2, run.stdout
    changes = {c["path"]: c for c in json.loads(run.stdout)["changes"]}
    change = changes["strategies.imb_usdm_alts.instruments"]
    assert change["classes"] == ["TIGHTEN", "TOPOLOGY"]
    assert change["reason"] == "SOLUSDT removed: that exposure ends"
    assert changes["risk.instruments.SOLUSDT"]["classes"] == ["TIGHTEN", "TOPOLOGY"]


def test_plan_adding_an_instrument_is_loosen_topology(
    built: Path, project: Path, cli: Callable[..., Run]
) -> None:
    run = _plan(cli, project, built, "strategies.mm_spot_eth.instruments=[ETHUSDT,SOLUSDT]")
    assert run.exit_code == 3, run.stdout
    changes = {c["path"]: c for c in json.loads(run.stdout)["changes"]}
    assert changes["strategies.mm_spot_eth.instruments"]["classes"] == ["LOOSEN", "TOPOLOGY"]


def test_plan_endpoint_change_is_security_and_exits_3(
    built: Path, project: Path, cli: Callable[..., Run]
) -> None:
    run = _plan(cli, project, built, "exchanges.binance_spot.endpoints.rest=https://evil.example")
    assert run.exit_code == 3, run.stdout
    plan = json.loads(run.stdout)
    assert plan["summary"]["by_class"] == {"SECURITY": 1}
    endpoint = "exchanges.binance_spot.endpoints.rest=https://evil.example"
    markdown = _plan(cli, project, built, endpoint, fmt="markdown")
    assert "| SECURITY ⚠ critical |" not in markdown.stdout
    assert "where orders and credentials are sent (always reviewed)" in markdown.stdout
