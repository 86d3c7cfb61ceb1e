"""Every config group option is composed (as part of a deployment) and validated (alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter

from appliance.config.compiler import compile_config
from appliance.config.schema import GROUP_TYPES
from tests.conftest import ROOT

CONF = ROOT / "conf"
DEPLOYMENTS = sorted(p.stem for p in (CONF / "deployment").glob("*.yaml"))
GROUP_OPTIONS = sorted(
    (group, p.stem) for group in GROUP_TYPES for p in (CONF / group).glob("*.yaml")
)


def test_the_groups_the_design_asks_for_exist() -> None:
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    assert {"deployment", "host", "exchange", "strategy", "risk"} <= groups
    assert {"paper_local", "prod_example"} <= set(DEPLOYMENTS)


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_deployment_composes_and_validates(deployment: str) -> None:
    result = compile_config(ROOT, [f"deployment={deployment}"])
    assert result.deployment == deployment
    assert len(result.manifests) == len(result.spec.engines) >= 1


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_group_option_validates_alone(group: str, option: str) -> None:
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
    TypeAdapter(GROUP_TYPES[group]).validate_python(data)


# `features` sets are read by `appliance features --set NAME`; no deployment composes one until
# a strategy that runs a model references its feature set.
NOT_YET_COMPOSED = {"features"}
# OKX and Kraken are composed by paper_venues (read); OKX spot also by paper_okx (traded).


@pytest.mark.parametrize(
    ("group", "option"),
    [g for g in GROUP_OPTIONS if g[0] not in NOT_YET_COMPOSED],
)
def test_every_group_option_is_composed_by_a_shipped_deployment(group: str, option: str) -> None:
    used = set()
    for deployment in DEPLOYMENTS:
        choices = compile_config(ROOT, [f"deployment={deployment}"]).composed.choices
        used |= {(key.split("@")[0], value) for key, value in choices.items()}
    assert (group, option) in used, f"conf/{group}/{option}.yaml is used by no deployment"


def test_a_group_can_be_swapped_from_the_command_line() -> None:
    result = compile_config(ROOT, ["risk=prod"])
    assert result.composed.choices["risk"] == "prod"
    assert result.composed.source_of("risk.max_daily_loss") == "conf/risk/prod.yaml"


def test_paper_local_is_the_embedded_default() -> None:
    result = compile_config(ROOT, [])
    assert result.deployment == "paper_local"
    assert result.spec.mode == "paper"
    manifest = json.loads(result.manifests[0].text)
    assert [ex["venue"] for ex in manifest["exchanges"].values()] == ["sim"]


# conf/tuned/ holds overlays the optimiser writes: any keys of a deployment, so no one schema.
@pytest.mark.parametrize(
    "path",
    sorted(p for p in CONF.glob("*/*.yaml") if p.parent.name != "tuned"),
    ids=lambda p: str(p.name),
)
def test_every_conf_file_names_its_schema(path: Path) -> None:
    first_lines = path.read_text().splitlines()[:3]
    modeline = f"# yaml-language-server: $schema=../../schemas/{path.parent.name}.schema.json"
    assert modeline in first_lines
