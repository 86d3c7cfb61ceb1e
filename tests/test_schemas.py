"""The JSON Schemas editors use are generated from the models and kept fresh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.config import schemas
from tests.conftest import ROOT, Run


def test_checked_in_schemas_are_fresh() -> None:
    assert schemas.stale(ROOT / "schemas") == [], "run `appliance schema` and commit schemas/"


def test_schema_command_writes_every_group(tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("schema", "--out", str(tmp_path))
    assert run.exit_code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        f"{g}.schema.json"
        for g in (
            "deployment",
            "exchange",
            "features",
            "host",
            "manifest",
            "model",
            "policy",
            "risk",
            "strategy",
            "study",
            "target",
        )
    )
    assert cli("schema", "--check", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / "risk.schema.json").write_text("{}")
    stale = cli("schema", "--check", "--out", str(tmp_path))
    assert stale.exit_code == 1 and "risk.schema.json" in stale.stderr


def test_decimal_fields_accept_strings_in_config_schema() -> None:
    risk = schemas.group_schemas()["risk.schema.json"]
    loss = risk["properties"]["max_daily_loss"]
    assert {"type": "string", "pattern": r"^-?[0-9]{1,10}(\.[0-9]{1,8})?$"} in loss["anyOf"]
    assert risk["additionalProperties"] is False
