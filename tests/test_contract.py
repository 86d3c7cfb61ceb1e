"""Python and Rust agree on the manifest contract, both ways.

- every manifest the compiler writes, from every shipped deployment, loads in Rust (the
  extension in process, and `rt-engine check` as a process);
- every fault of the corpus in tests/contract/bad_manifests.json is refused by the Python
  reader and by the Rust loader, each naming the field;
- the JSON Schema pydantic derives for the manifest and the one schemars derives from the Rust
  types have the same structure.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError
from appliance.config.manifest import content_sha256, dumps, load
from appliance.config.schema import DECIMAL_PATTERN, Manifest
from tests.conftest import CONTRACT, ROOT

EXAMPLE = json.loads((CONTRACT / "example.manifest.json").read_text())
CORPUS: list[dict[str, Any]] = json.loads((CONTRACT / "bad_manifests.json").read_text())
DEPLOYMENTS = sorted(p.stem for p in (ROOT / "conf/deployment").glob("*.yaml"))


def apply_fault(fault: dict[str, Any]) -> str:
    manifest = copy.deepcopy(EXAMPLE)
    for op in fault["ops"]:
        *parents, last = op["path"]
        node: Any = manifest
        for key in parents:
            node = node[key]
        if op["op"] == "set":
            node[last] = op["value"]
        elif op["op"] == "remove":
            del node[last]
        else:  # pragma: no cover - a corpus typo
            raise AssertionError(f"unknown op {op['op']!r} in {fault['name']}")
    if fault["rehash"]:
        manifest["content_sha256"] = content_sha256(manifest)
    return dumps(manifest)


def test_the_corpus_is_large_and_distinct() -> None:
    names = [f["name"] for f in CORPUS]
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert len({json.dumps(f["ops"], sort_keys=True) for f in CORPUS}) == len(CORPUS)


def test_the_example_is_valid_on_both_sides() -> None:
    text = (CONTRACT / "example.manifest.json").read_text()
    assert load(text).engine.id == EXAMPLE["engine"]["id"]
    assert engine.load_manifest(text)["engine_id"] == EXAMPLE["engine"]["id"]


@pytest.mark.parametrize("fault", CORPUS, ids=[f["name"] for f in CORPUS])
def test_python_refuses_each_fault_naming_the_field(fault: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        load(apply_fault(fault))
    message = str(info.value)
    for needle in fault["expect"]:
        assert needle in message, f"{fault['name']}: {needle!r} not in {message!r}"


@pytest.mark.parametrize("fault", CORPUS, ids=[f["name"] for f in CORPUS])
def test_rust_refuses_each_fault_naming_the_field(fault: dict[str, Any]) -> None:
    with pytest.raises(engine.ManifestError) as info:
        engine.load_manifest(apply_fault(fault))
    message = str(info.value)
    for needle in fault["expect"]:
        assert needle in message, f"{fault['name']}: {needle!r} not in {message!r}"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_compiled_manifest_loads_in_rust(deployment: str) -> None:
    for built in compile_config(ROOT, [f"deployment={deployment}"]).manifests:
        summary = engine.load_manifest(built.text)
        assert summary["engine_id"] == built.engine_id
        assert summary["content_sha256"] == built.content_sha256


def test_rt_engine_check_loads_compiled_manifests(tmp_path: Path) -> None:
    built = compile_config(ROOT, ["deployment=prod_example"]).manifests
    for b in built:
        path = tmp_path / b.filename
        path.write_text(b.text)
        proc = engine.check(path)
        assert proc.returncode == 0, proc.stderr
        assert b.engine_id in proc.stdout
        data = json.loads(engine.check(path, json_output=True).stdout)
        assert data["content_sha256"] == b.content_sha256


def test_rt_engine_check_refuses_a_bad_manifest(tmp_path: Path) -> None:
    fault = next(f for f in CORPUS if f["name"] == "hot_thread_not_isolated")
    path = tmp_path / "bad.manifest.json"
    path.write_text(apply_fault(fault))
    proc = engine.check(path)
    assert proc.returncode == 2
    assert "refused" in proc.stderr
    for needle in fault["expect"]:
        assert needle in proc.stderr


# --- schema agreement ---------------------------------------------------------------------


def _normalise(node: Any, defs: dict[str, Any]) -> Any:
    """A structural form of a JSON Schema that both generators map to the same value:
    objects (properties, required, closed or not), maps, arrays, nullable, unions, enums,
    decimal strings versus other strings, integers, booleans. Bounds and docs are ignored."""
    if "$ref" in node:
        return _normalise(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"]
            nullable = len(options) != len(node[key])
            inner = (
                _normalise(options[0], defs)
                if len(options) == 1
                else ("union", sorted(json.dumps(_normalise(o, defs)) for o in options))
            )
            return ("nullable", inner) if nullable else inner
    typ = node.get("type")
    if isinstance(typ, list):
        rest = [t for t in typ if t != "null"]
        inner = _normalise({**node, "type": rest[0]}, defs)
        return ("nullable", inner) if "null" in typ else inner
    if "const" in node or "enum" in node:
        values = node["enum"] if "enum" in node else [node["const"]]
        if all(isinstance(v, int) for v in values):
            return "integer"
        return ("enum", sorted(v for v in values if v is not None))
    if typ == "object":
        props = node.get("properties")
        if props is None:
            # pydantic writes constrained keys as patternProperties, schemars as a plain map.
            values = list(node.get("patternProperties", {}).values())
            return (
                "map",
                _normalise(values[0] if values else node.get("additionalProperties", {}), defs),
            )
        return (
            "object",
            {k: _normalise(v, defs) for k, v in sorted(props.items())},
            sorted(node.get("required", [])),
            node.get("additionalProperties", True) is False,
        )
    if typ == "array":
        items = node.get("items") or (node.get("prefixItems") or [{}])[0]
        return ("array", _normalise(items, defs))
    if typ == "string":
        return "decimal" if node.get("pattern") == DECIMAL_PATTERN else "string"
    if typ in ("integer", "boolean"):
        return typ
    if not node or set(node) <= {"description", "title"}:
        return "any"
    raise AssertionError(f"unexpected schema node {node}")


def _differences(a: Any, b: Any, path: str = "$") -> list[str]:
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "object":
        out = []
        for key in sorted(set(a[1]) | set(b[1])):
            if key not in a[1] or key not in b[1]:
                side = "pydantic" if key in a[1] else "schemars"
                out.append(f"{path}.{key}: only in {side}")
            else:
                out += _differences(a[1][key], b[1][key], f"{path}.{key}")
        if a[2] != b[2]:
            out.append(f"{path}: required {a[2]} (pydantic) vs {b[2]} (schemars)")
        if a[3] != b[3]:
            out.append(f"{path}: closed {a[3]} (pydantic) vs {b[3]} (schemars)")
        return out
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] and len(a) == len(b) == 2:
        return _differences(a[1], b[1], f"{path}/{a[0]}")
    return [] if a == b else [f"{path}: {a!r} (pydantic) vs {b!r} (schemars)"]


def test_pydantic_and_schemars_schemas_agree() -> None:
    python = Manifest.model_json_schema(mode="serialization")
    rust = engine.manifest_schema()
    ours = _normalise(python, python.get("$defs", {}))
    theirs = _normalise(rust, rust.get("$defs", {}))
    assert _differences(ours, theirs) == []
    assert ours == theirs
