"""JSON Schemas for editors and tools: one per config group, plus the manifest.

`appliance schema` writes them to `schemas/`; each file under `conf/` names its schema in a
`# yaml-language-server: $schema=...` modeline, so VS Code (YAML extension), Neovim and other
yaml-language-server clients complete and check config as it is typed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from appliance.config.schema import GROUP_TYPES, DeploymentSpec, Manifest

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def group_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every config group, the deployment file and the manifest."""
    out: dict[str, dict[str, Any]] = {}
    for group, typ in GROUP_TYPES.items():
        schema = TypeAdapter(typ).json_schema(mode="validation")
        out[f"{group}.schema.json"] = {
            "$schema": DRAFT,
            "title": f"py_rt config group '{group}' (conf/{group}/*.yaml)",
            **schema,
        }
    deployment = DeploymentSpec.model_json_schema(mode="validation")
    defs = deployment.pop("$defs", {})
    out["deployment.schema.json"] = {
        "$schema": DRAFT,
        "title": "py_rt deployment (conf/deployment/*.yaml, package _global_)",
        "type": "object",
        "properties": {
            "defaults": {"type": "array", "description": "Hydra defaults list"},
            "deployment": deployment,
        },
        "required": ["deployment"],
        "$defs": defs,
    }
    # A study (conf/study/*.yaml) is research config: its model lives with the optimiser.
    from appliance.research.study import Study

    out["study.schema.json"] = {
        "$schema": DRAFT,
        "title": "py_rt study (conf/study/*.yaml): appliance optimize study=<name>",
        **Study.model_json_schema(mode="validation"),
    }
    from appliance.research.model import ModelSpec

    out["model.schema.json"] = {
        "$schema": DRAFT,
        "title": "py_rt model (conf/model/*.yaml): appliance train model=<name>",
        **ModelSpec.model_json_schema(mode="validation"),
    }
    # The change policy (conf/policy/*.yaml) is read by `appliance plan`: its model lives there.
    from appliance.plan.policy import Policy

    out["policy.schema.json"] = {
        "$schema": DRAFT,
        "title": "py_rt change policy (conf/policy/*.yaml): checked by plan, enforced by apply",
        **Policy.model_json_schema(mode="validation"),
    }
    out["manifest.schema.json"] = {
        "$schema": DRAFT,
        "title": "py_rt engine manifest, version 1 (docs/manifest.md)",
        **Manifest.model_json_schema(mode="serialization"),
    }
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in group_schemas().items():
        path = out_dir / name
        path.write_text(render(schema))
        written.append(path)
    return written


def stale(out_dir: Path) -> list[str]:
    """Schema files that are missing or differ from what the models say."""
    return [
        name
        for name, schema in group_schemas().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text() != render(schema)
    ]
